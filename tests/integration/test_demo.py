"""``microseg demo`` end to end on the session broker: a reduced data set, as fast as possible.

The demo starts its own worker (trainer included), replays the first lines of every bundled file,
and prints and writes its summary. The figures are cross-checked against the files, against each
other, and against the ``segment-changes`` topic read back independently.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from importlib.resources import files
from pathlib import Path

import pytest

from stream.adapters.embedded import EmbeddedBroker, free_port
from tests.integration.harness import Names, read_topic

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
DEMO = Path(str(files("stream.data.demo")))
# Lines per file: ~5,000 in all, spread over two years of event time. The worker is paced by the
# trainer (`stream.adapters.pace`) through them: about 60 s alone, 150 s beside the other
# integration tests on a 2-core machine.
LIMIT = 1000
# A first model after a few hundred samples (the worker inherits the demo's environment), so that
# the reduced data set still has events to score after it.
FAST_LEARNING = {
    "MICROSEG_SAMPLE_RATE": "0.3",
    "MICROSEG_WARMUP_SAMPLES": "200",
    "MICROSEG_PUBLISH_EVERY": "300",
}


def _lines(path: Path) -> list[bytes]:
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    return [line for line in raw.splitlines() if line.strip()][:LIMIT]


def test_demo_reports_segments_and_changes_that_add_up(
    broker: EmbeddedBroker, names: Names, worker_env: dict[str, str], tmp_path: Path
) -> None:
    out = tmp_path / "summary.json"
    env = {**worker_env, "MICROSEG_WEB_PORT": str(free_port()), **FAST_LEARNING}
    proc = subprocess.run(
        [sys.executable, "-m", "stream.cli", "demo", "--plain", "--speed", "0",
         "--limit", str(LIMIT), "--drain-timeout", "300", "--summary-json", str(out)],
        capture_output=True, text=True, env=env, timeout=420, cwd=ROOT,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    s = json.loads(out.read_text())

    # Every line sent was consumed, and the outcomes add up to it.
    bundled = sorted(DEMO.glob("*.jsonl.gz")) + sorted(DEMO.glob("*.jsonl"))
    sent = sum(len(_lines(p)) for p in bundled)
    assert s["lines_sent"] == sent == s["events_in"] == sum(s["outcomes"].values())
    o = s["outcomes"]
    dead = sum(s["dead_lettered"].values())
    assert dead == o["dead_lettered"] == len(_lines(DEMO / "bad_events.jsonl"))
    assert o["accepted"] == sent - dead - o.get("too_old", 0) - o.get("duplicate", 0)

    # Segments with names and profiles; sizes that are the members the changes put there. Customers
    # may still sit in segments the newest model dropped (moved on their partition's next events),
    # so the live segments hold at most every assigned customer.
    segments = s["segments"]
    assert len(segments) >= 2 and s["model_version"] >= 1
    assert all(isinstance(r["name"], str) and r["name"] for r in segments)
    assert all(r["value_tier"] and r["suggested_action"] for r in segments)
    for r in segments:
        assert sum(r["sources"].values()) == r["size"], r
    live = sum(r["size"] for r in segments)
    assert 0 <= live <= s["customers_assigned"]
    if live:
        assert abs(sum(r["share"] for r in segments) - 1.0) < 0.01

    # Changes: emitted (worker metrics) == read by the demo == on the topic; every customer's
    # first assignment is a new_customer change.
    changes = read_topic(broker.url, names.topic("segment-changes"), expect=s["changes_emitted"])
    assert s["changes_emitted"] > 0
    assert s["changes_emitted"] == s["changes_consumed"] == len(changes)
    first = {json.loads(r.value)["customer_id"] for r in changes}
    assert s["changes_by_reason"]["new_customer"] == len(first) == s["customers_assigned"]
    assert 1 <= s["segment_events"].get("model_published", 0) <= s["model_version"]
    # Paced through two years of sparse history, the worker never waited for a trainer that
    # waited for it (`stream.adapters.pace`; each such stall cost MICROSEG_PACE_MAX_WAIT_S).
    assert s["pace_timeouts"] == 0

    text = proc.stdout
    assert "=== microseg demo summary ===" in text
    assert all(r["name"] in text for r in segments)
    assert f"changes emitted: {s['changes_emitted']:,}" in text
    assert "/customers/" in text and "demo finished" in text
