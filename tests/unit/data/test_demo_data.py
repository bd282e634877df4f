"""The bundled demo data (stream/data/demo) honours the v1 input contract.

The real files are made by scripts/convert_data.py from the datasets in ../shared/data, the
simulated one by `make demo-data-sim` (`microseg simulate`); see stream/data/demo/SOURCES.md. The
reproducibility test of the real files needs those datasets and is skipped without them.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from importlib.resources import files
from pathlib import Path

import pytest

from stream.core.events import parse_event
from stream.core.validation import Rejection, Validator

ROOT = Path(__file__).resolve().parents[3]
DEMO = Path(str(files("stream.data.demo")))
SHARED = ROOT.parent / "shared" / "data"
SCRIPT = ROOT / "scripts" / "convert_data.py"

PREFIX = {
    "completejourney.jsonl.gz": "cj-",
    "online_retail_ii.jsonl.gz": "ori-",
    "rees46.jsonl.gz": "r46-",
    "hillstrom.jsonl.gz": "hill-",
    "simulated.jsonl.gz": "sim-",
}
SIMULATED = "simulated.jsonl.gz"
SIMULATED_TRUTH = "simulated.truth.json"
GOOD_FILES = sorted(PREFIX)
BAD_FILE = "bad_events.jsonl"


def _lines(name: str) -> list[bytes]:
    with gzip.open(DEMO / name, "rb") as fh:
        return fh.read().splitlines()


def test_bundled_files_are_the_expected_ones() -> None:
    assert sorted(p.name for p in DEMO.glob("*.jsonl.gz")) == GOOD_FILES
    assert (DEMO / BAD_FILE).is_file()
    assert (DEMO / "SOURCES.md").is_file()
    assert (DEMO / SIMULATED_TRUTH).is_file()
    total = sum(p.stat().st_size for p in DEMO.iterdir() if p.is_file())
    assert total < 3_800_000, f"demo data is {total} bytes; keep it under ~3.6 MB"


@pytest.mark.parametrize("name", GOOD_FILES)
def test_every_line_parses_sorted_with_expected_prefix(name: str) -> None:
    lines = _lines(name)
    assert lines, f"{name} is empty"
    previous = None
    for n, line in enumerate(lines, 1):
        event = parse_event(line)
        assert event.customer_id.startswith(PREFIX[name]), f"{name}:{n}: {event.customer_id}"
        key = (event.ts, event.event_id)
        assert previous is None or previous <= key, f"{name}:{n} is out of (ts, event_id) order"
        previous = key


def test_event_ids_are_unique_across_files() -> None:
    seen: dict[str, str] = {}
    for name in GOOD_FILES:
        for line in _lines(name):
            event_id = json.loads(line)["event_id"]
            assert event_id not in seen, f"{event_id} in {name} and {seen[event_id]}"
            seen[event_id] = name


def _key_of(line: bytes) -> bytes | None:
    """The message key a producer would use: the customer_id if there is a string one."""
    try:
        obj = json.loads(line)
    except ValueError:
        return None
    customer_id = obj.get("customer_id") if isinstance(obj, dict) else None
    return customer_id.encode() if isinstance(customer_id, str) else None


def test_every_bad_event_is_rejected() -> None:
    lines = (DEMO / BAD_FILE).read_bytes().splitlines()
    assert len(lines) >= 30
    validator = Validator()
    for n, line in enumerate(lines, 1):
        result = validator.validate(line, _key_of(line), stream=None)
        assert isinstance(result, Rejection), f"{BAD_FILE}:{n} was accepted: {line!r}"


def test_simulated_file_is_reproducible_from_its_recorded_parameters(tmp_path: Path) -> None:
    from stream.simulate import run_simulate

    truth = json.loads((DEMO / SIMULATED_TRUTH).read_text())
    params = truth["parameters"]
    assert params["customers"] <= 800 and params["days"] <= 40  # small enough to ship and replay
    run_simulate(
        tmp_path / SIMULATED, tmp_path / SIMULATED_TRUTH,
        params["customers"], params["days"], truth["seed"],
    )  # fmt: skip
    for name in (SIMULATED, SIMULATED_TRUTH):
        assert (tmp_path / name).read_bytes() == (DEMO / name).read_bytes(), (
            f"{name} differs from a fresh simulation; re-run `make demo-data-sim`"
        )


def test_conversion_is_reproducible(tmp_path: Path) -> None:
    if not SHARED.is_dir():
        pytest.skip(f"the shared datasets are not here ({SHARED})")
    subprocess.run(
        [sys.executable, str(SCRIPT), "--shared", str(SHARED), "--out", str(tmp_path)],
        check=True,
        capture_output=True,
        cwd=tmp_path,
    )
    for name in [*(n for n in GOOD_FILES if n != SIMULATED), BAD_FILE]:
        assert (tmp_path / name).read_bytes() == (DEMO / name).read_bytes(), (
            f"{name} differs from a fresh conversion; re-run scripts/convert_data.py"
        )
