"""Test order under ``pytest -n``: the slowest test files first, so the two processes finish together.

`make test` runs each phase as ``pytest -n 2 --dist loadfile --no-loadscope-reorder``: a test
file at a time on each process, handed out in the order collected. xdist's own order (files with
the most tests first) left the single-test files, the slowest of all, to the end: in one
integration run one process sat idle for the last 146 s of 389 while the other ran the demo and
then the two-worker segmentation test; in a unit run, 142 s of 424.

`SLOWEST_FIRST` is that order (seconds each file took, two processes on 2 cores). xdist hands a
process its next file while it still runs one that has two tests or fewer left, so the first
files go: 1st and 3rd to one process, 2nd and 4th to the other, then to whichever asks first;
the integration order pairs the demo (160 s) with the two-worker segmentation test (100 s) and
leaves the catch-up, crash, restart, ingest and bench files to the other. Files not listed go
last, in the order collected. Without xdist nothing is reordered.
"""

from __future__ import annotations

import pytest

SLOWEST_FIRST = (
    # tests/integration: each process runs its own broker
    "tests/integration/test_demo.py",  # 160 s
    "tests/integration/test_crash.py",  # 55 s
    "tests/integration/test_segmentation.py",  # 100 s
    "tests/integration/test_catch_up.py",  # 95 s
    "tests/integration/test_restart.py",  # 55 s
    "tests/integration/test_ingest.py",  # 55 s
    "tests/integration/test_bench_e2e.py",  # 40 to 70 s
    "tests/integration/test_demo_stop.py",  # 14 s
    "tests/integration/test_replay.py",  # 20 s
    "tests/integration/test_cli.py",  # 18 s
    # tests/unit
    "tests/unit/core/test_drift.py",  # 70 s
    "tests/unit/test_evaluate_drift.py",  # 62 s
    "tests/unit/test_replay_offline.py",  # 60 s
    "tests/unit/test_evaluate.py",  # 55 s
    "tests/unit/bench/test_bench.py",  # 42 s
    "tests/unit/core/test_facts.py",  # 12 s
    "tests/unit/core/test_engine_properties.py",  # 8 s
    "tests/unit/data/test_demo_data.py",  # 8 s
    "tests/unit/test_replay_spill.py",  # 8 s
    "tests/unit/core/test_simulate.py",  # 7 s
)
_RANK = {path: rank for rank, path in enumerate(SLOWEST_FIRST)}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not hasattr(config, "workerinput"):  # not an xdist worker
        return
    # stable: a file's tests keep their order, and so do the files not listed
    items.sort(key=lambda item: _RANK.get(item.nodeid.split("::", 1)[0], len(_RANK)))
