"""Offline replay (`run_offline`): deterministic, duplicate-proof, order-proof, with a report."""

from __future__ import annotations

import gzip
import json
import math
import random
from collections import Counter
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from stream.config import Settings
from stream.core.events import STREAM_OF_TYPE, Stream
from stream.core.features import FEATURES, NAMES
from stream.core.outputs import SegmentChange, SegmentEvent
from stream.errors import ReplayError
from stream.replay import Progress, run_offline
from tests.factories import CLICK_TYPES, EMAIL_TYPES, bare_settings

N_EVENTS = 5_000
N_CUSTOMERS = 300
START = datetime(2024, 3, 1, tzinfo=UTC)
SPAN_S = 60 * 86_400
SEGMENT_OUTPUTS = ("segment-changes.jsonl", "segment-events.jsonl", "segment-model.jsonl")
OUTPUTS = {"dead-letter.jsonl", "features.jsonl", "report.json", *SEGMENT_OUTPUTS}

_M = '{"event_id":"%s","customer_id":"cm","ts":"2024-03-05T00:00:00Z",'
MALFORMED: list[tuple[str, bytes]] = [
    ("not_json", b"not json at all"),
    ("not_json", b'{"event_id": "x", '),
    ("not_object", b"[1, 2, 3]"),
    ("unknown_type", (_M % "m1" + '"type":"teleport"}').encode()),
    ("missing_field", (_M % "m2" + '"type":"email_open"}').encode()),
    ("negative_amount", (_M % "m3" + '"type":"purchase","order_id":"o","amount":-1}').encode()),
    ("wrong_type", (_M % "m4" + '"type":"purchase","order_id":"o","amount":"12.50"}').encode()),
    ("bad_timestamp", b'{"event_id":"m5","customer_id":"cm","type":"page_view","ts":"yesterday"}'),
    ("invalid_value", (_M % "m6" + '"type":"page_view","channel":"tv"}').encode()),
]


def generate(seed: int = 20240301) -> list[dict[str, Any]]:
    """``N_EVENTS`` valid events of all three streams, ``N_CUSTOMERS`` customers, 60 days."""
    rng = random.Random(seed)
    offsets = [timezone(timedelta(hours=h)) for h in (-7, -5, 0, 1, 2, 9)]
    events = []
    for i in range(N_EVENTS):
        cid = f"cust-{i:04d}" if i < N_CUSTOMERS else f"cust-{rng.randrange(N_CUSTOMERS):04d}"
        when = START + timedelta(seconds=rng.randrange(SPAN_S))
        ts = when.astimezone(rng.choice(offsets)).isoformat()
        stream = rng.choices(["clickstream", "email", "purchases"], [6, 3, 1])[0]
        ev: dict[str, Any] = {"event_id": f"ev-{i:05d}", "customer_id": cid, "ts": ts}
        if stream == "clickstream":
            ev["type"] = rng.choice(CLICK_TYPES)
            ev["session_id"] = f"s-{cid}-{rng.randrange(20)}"
            if rng.random() < 0.9:
                ev["channel"] = rng.choice(["web", "mobile", "app", "other"])
        elif stream == "email":
            ev["type"] = rng.choice(EMAIL_TYPES)
            ev["campaign_id"] = f"camp-{rng.randrange(6)}"
        else:
            ev["type"] = "purchase" if rng.random() < 0.85 else "refund"
            ev["order_id"] = f"o-{i}"
            ev["amount"] = round(rng.uniform(3, 400), 2)
            ev["currency"] = "EUR"
            ev["channel"] = rng.choice(["web", "app", "store", "phone"])
            if rng.random() < 0.3:
                ev["discount"] = round(rng.uniform(1, 20), 2)
            elif rng.random() < 0.2:
                ev["coupon_code"] = "SPRING"
        events.append(ev)
    return events


def _dump(ev: dict[str, Any]) -> bytes:
    return json.dumps(ev).encode()


def write(path: Path, lines: list[bytes]) -> Path:
    with gzip.open(path, "wb") as fh:
        for line in lines:
            fh.write(line + b"\n")
    return path


def clean_lines(events: list[dict[str, Any]]) -> list[bytes]:
    """The events, with every malformed line (twice) spread through them and a blank line."""
    lines = [_dump(ev) for ev in events]
    rng = random.Random(5)
    for _, bad in MALFORMED * 2:
        lines.insert(rng.randrange(len(lines) + 1), bad)
    lines.insert(1234, b"   ")
    return lines


def read_outputs(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.iterdir())}


@pytest.fixture(scope="module")
def settings() -> Settings:
    # a small population: sample more of it, so models are published within 60 days
    return bare_settings(sample_rate=0.25, warmup_samples=300, publish_every=300)


@pytest.fixture(scope="module")
def events() -> list[dict[str, Any]]:
    return generate()


@pytest.fixture(scope="module")
def clean(
    tmp_path_factory: pytest.TempPathFactory, settings: Settings, events: list[dict[str, Any]]
) -> tuple[Path, dict[str, Any], dict[str, bytes]]:
    root = tmp_path_factory.mktemp("clean")
    src = write(root / "events.jsonl.gz", clean_lines(events))
    report = run_offline([src], root / "out", settings)
    return src, report, read_outputs(root / "out")


def test_the_same_file_twice_gives_byte_identical_outputs(
    tmp_path: Path, settings: Settings, clean: tuple[Path, dict[str, Any], dict[str, bytes]]
) -> None:
    src, report, first = clean
    again = run_offline([src], tmp_path / "again", settings)
    second = read_outputs(tmp_path / "again")
    assert set(first) == set(second) == OUTPUTS
    for name in OUTPUTS:
        assert first[name] == second[name], name
    assert again == report
    assert first["features.jsonl"].count(b"\n") == N_CUSTOMERS
    assert first["dead-letter.jsonl"].count(b"\n") == 2 * len(MALFORMED)


def test_a_progress_bar_draws_the_lines_read_then_the_events_applied(
    tmp_path: Path,
    settings: Settings,
    clean: tuple[Path, dict[str, Any], dict[str, bytes]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    src, report, first = clean
    bar = Progress(None)
    bar.enabled = True  # (stderr is no terminal here)
    assert run_offline([src], tmp_path / "bar", settings, progress=bar) == report
    assert read_outputs(tmp_path / "bar") == first  # drawing changes nothing
    lines = capsys.readouterr().err.split("\n")
    n_lines = N_EVENTS + 2 * len(MALFORMED)
    assert [ln.rsplit("\r", 1)[-1].split(" ")[0] for ln in lines[:2]] == [
        f"{n_lines}",  # no total given: a count of the lines read
        "[##############################]",
    ]
    assert f"\r{n_lines} lines " in lines[0] and lines[0].endswith("read\x1b[K")
    assert f" {N_EVENTS}/{N_EVENTS} " in lines[1] and lines[1].endswith("applied\x1b[K")
    assert lines[2:] == [""]


def test_duplicates_change_the_counts_but_not_the_features(
    tmp_path: Path,
    settings: Settings,
    events: list[dict[str, Any]],
    clean: tuple[Path, dict[str, Any], dict[str, bytes]],
) -> None:
    _, clean_report, clean_out = clean
    rng = random.Random(11)
    lines = clean_lines(events)
    chosen = rng.sample(range(len(events)), N_EVENTS // 10)
    in_file, in_second = chosen[: len(chosen) // 2], chosen[len(chosen) // 2 :]
    distances = []
    for i in in_file:
        dup = _dump(events[i])
        at = rng.randrange(len(lines) + 1)
        distances.append(abs(at - lines.index(dup)))
        lines.insert(at, dup)
    assert max(distances) > 2_000  # some re-sends arrive long after (or before) the original
    second = [_dump(events[i]) for i in in_second]
    rng.shuffle(second)
    paths = [
        write(tmp_path / "events.jsonl.gz", lines),
        write(tmp_path / "resent.jsonl.gz", second),
    ]
    report = run_offline(paths, tmp_path / "out", settings)
    out = read_outputs(tmp_path / "out")

    assert out["features.jsonl"] == clean_out["features.jsonl"]
    assert report["features"] == clean_report["features"]
    for name in SEGMENT_OUTPUTS:  # re-sends change nothing a segment depends on
        assert out[name] == clean_out[name], name
    assert report["segments"] == clean_report["segments"]
    counts, before = report["counts"], clean_report["counts"]
    assert counts["duplicate"] == len(chosen) == 500
    assert counts["accepted"] == before["accepted"] == N_EVENTS
    assert counts["lines"] == before["lines"] + len(chosen)
    assert counts["dead_lettered"] == before["dead_lettered"]
    assert counts["customers"] == before["customers"]
    assert counts.get("too_old", 0) == 0
    assert report["accepted_by_type"] == clean_report["accepted_by_type"]
    assert report["watermark_ms"] == clean_report["watermark_ms"]
    assert report["config"]["inputs"] == ["events.jsonl.gz", "resent.jsonl.gz"]


def test_line_order_does_not_matter(
    tmp_path: Path,
    settings: Settings,
    events: list[dict[str, Any]],
    clean: tuple[Path, dict[str, Any], dict[str, bytes]],
) -> None:
    _, clean_report, clean_out = clean
    lines = clean_lines(events)
    random.Random(3).shuffle(lines)
    src = write(tmp_path / "events.jsonl.gz", lines)
    report = run_offline([src], tmp_path / "out", settings)
    out = read_outputs(tmp_path / "out")
    assert out["features.jsonl"] == clean_out["features.jsonl"]
    assert report["features"] == clean_report["features"]
    for name in SEGMENT_OUTPUTS:
        assert out[name] == clean_out[name], name
    assert report["counts"] == clean_report["counts"]
    assert report["dead_lettered_by_reason"] == clean_report["dead_lettered_by_reason"]


def test_the_report(
    events: list[dict[str, Any]], clean: tuple[Path, dict[str, Any], dict[str, bytes]]
) -> None:
    _, report, out = clean
    assert report == json.loads(out["report.json"])
    counts = report["counts"]
    n_bad = 2 * len(MALFORMED)
    assert counts["lines"] == N_EVENTS + n_bad  # the blank line is not one
    assert counts["accepted"] == N_EVENTS
    assert counts["dead_lettered"] == n_bad
    assert counts["customers"] == N_CUSTOMERS
    assert counts.get("duplicate", 0) == counts.get("too_old", 0) == 0
    expected_reasons = Counter(reason for reason, _ in MALFORMED * 2)
    assert report["dead_lettered_by_reason"] == dict(expected_reasons)
    assert report["accepted_by_type"] == dict(Counter(ev["type"] for ev in events))
    assert {STREAM_OF_TYPE[t] for t in report["accepted_by_type"]} == set(Stream)
    assert report["state_bytes_per_customer"] == 399 <= 400
    last = max(datetime.fromisoformat(ev["ts"]) for ev in events)
    assert report["watermark_ms"] == int(last.timestamp() * 1000)
    assert report["config"]["lateness_days"] == 30.0

    rows = [json.loads(line) for line in out["features.jsonl"].splitlines()]
    assert [r["customer_id"] for r in rows] == sorted(f"cust-{i:04d}" for i in range(N_CUSTOMERS))
    stats = report["features"]
    assert list(stats) == sorted(NAMES)
    for f in FEATURES:
        s = stats[f.name]
        assert set(s) == {"mean", "std", "min", "p25", "p50", "p75", "p90", "max", "unit"}
        assert s["unit"] == f.unit
        assert f.low <= s["min"] <= s["p25"] <= s["p50"] <= s["p75"] <= s["p90"] <= s["max"]
        if f.high is not None:
            assert s["max"] <= f.high
        column = [r["features"][f.name] for r in rows]
        assert math.isclose(s["mean"], sum(column) / len(column), rel_tol=1e-6, abs_tol=1e-9)
        assert math.isclose(s["max"], max(column), rel_tol=1e-6, abs_tol=1e-9)
        assert math.isclose(s["min"], min(column), rel_tol=1e-6, abs_tol=1e-9)
    # a 60-day history: the data is not degenerate
    assert stats["tenure_days"]["max"] > 50
    assert 0 < stats["email_open_rate_30d"]["mean"] < 1
    assert stats["spend_30d"]["max"] > 0
    assert 0 < stats["share_web"]["mean"] < 1
    dead = [json.loads(line) for line in out["dead-letter.jsonl"].splitlines()]
    assert Counter(d["reason"] for d in dead) == expected_reasons


def test_segment_outputs(clean: tuple[Path, dict[str, Any], dict[str, bytes]]) -> None:
    _, report, out = clean
    changes = [SegmentChange.model_validate_json(line)
               for line in out["segment-changes.jsonl"].splitlines()]  # fmt: skip
    events = [SegmentEvent.model_validate_json(line)
              for line in out["segment-events.jsonl"].splitlines()]  # fmt: skip
    models = [json.loads(line) for line in out["segment-model.jsonl"].splitlines()]
    seg = report["segmentation"]
    assert seg["snapshots"] == len(models) >= 2
    assert [m["version"] for m in models] == list(range(1, len(models) + 1))
    assert [e.model_version for e in events if e.kind == "model_published"] == [
        m["version"] for m in models
    ]
    assert seg["changes"] == len(changes) > 0
    # every customer was assigned once (new_customer, version 1), then versions count up by one
    last: dict[str, int] = {}
    for c in changes:
        assert c.version == last.get(c.customer_id, 0) + 1
        last[c.customer_id] = c.version
        assert (c.previous is None) == (c.reason == "new_customer")
        assert c.current is not None and c.explanation and 0 <= c.confidence <= 1
        assert c.emitted_at >= c.event_time or c.emitted_at == c.event_time
    assert len(last) == seg["assigned_customers"] == N_CUSTOMERS
    assert len({c.event_id for c in changes}) == len(changes)
    profiles = report["segments"]
    assert sum(p["size"] for p in profiles) == N_CUSTOMERS
    assert {p["segment_id"] for p in profiles} == set(models[-1]["segments"][i]["id"]
                                                       for i in range(len(profiles)))  # fmt: skip
    for p in profiles:
        assert p["name"] and p["value_tier"] in {"high", "mid", "low"} and p["suggested_action"]


def test_an_input_in_out_with_an_output_name_is_not_overwritten(
    tmp_path: Path, settings: Settings, events: list[dict[str, Any]]
) -> None:
    """Replaying a run's own dead letters into the same directory would replace them."""
    src = write(tmp_path / "events.jsonl", clean_lines(events[:200]))
    out = tmp_path / "run"
    out.mkdir()
    dead = out / "dead-letter.jsonl"
    dead.write_bytes(b'{"type": "page_view"}\n')
    with pytest.raises(ReplayError) as err:
        run_offline([src, dead], out, settings)
    assert str(err.value) == (
        f"--out {out} would overwrite the input dead-letter.jsonl with an output of the same "
        "name: give another --out (nothing was written)"
    )
    assert [p.name for p in out.iterdir()] == ["dead-letter.jsonl"]
    assert dead.read_bytes() == b'{"type": "page_view"}\n'
    run_offline([src], out, settings)  # an input elsewhere: the directory is written over
    run_offline([src], tmp_path / "fresh", settings)
    assert read_outputs(out) == read_outputs(tmp_path / "fresh")
