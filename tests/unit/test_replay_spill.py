"""The offline replay's external sort: runs in temporary files (`FileRuns`), merged by `Engine`."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from stream.config import Settings, make_segmentation_stage
from stream.core.engine import Engine, Entry
from stream.core.facts import EFFECTS
from stream.core.ingest import Ingest
from stream.core.render import render_outputs
from stream.errors import ReplayError
from stream.replay import run_offline
from stream.replay_spill import FileRuns
from tests.factories import bare_settings
from tests.unit.test_replay_offline import (
    MALFORMED,
    clean_lines,
    generate,
    read_outputs,
    write,
)


def _entries(n: int, seed: int) -> list[Entry]:
    rng = random.Random(seed)
    return sorted(
        (rng.randrange(10**12), f"e{rng.random()}", i, f"c{rng.randrange(50)}",
         EFFECTS[rng.randrange(len(EFFECTS))], rng.choice([0.0, 12.5, 1e-3]), rng.getrandbits(63))
        for i in range(n)
    )  # fmt: skip


@pytest.mark.parametrize("n", [0, 1, 6, 7, 1000])
def test_a_run_reads_back_as_written(n: int) -> None:
    runs = FileRuns(block=3)
    first, second = _entries(n, 1), _entries(5, 2)
    runs.add(first)
    runs.add(second)
    taken = [list(run) for run in runs.take()]
    assert taken == [first, second]
    assert all(got[4] is want[4] for got, want in zip(taken[0], first, strict=True))  # shared
    assert runs.take() == []


def test_an_unwritable_directory_says_what_to_do(tmp_path: Path) -> None:
    runs = FileRuns(directory=tmp_path / "missing")
    with pytest.raises(ReplayError, match="MICROSEG_REPLAY_RUN_EVENTS") as err:
        runs.add(_entries(3, 1))
    assert str(tmp_path / "missing") in str(err.value)


@pytest.fixture(scope="module")
def settings() -> Settings:
    # a few models published over the 300 customers' 60 days, the scorer busy from day ~20
    return bare_settings(sample_rate=0.1, warmup_samples=300, publish_every=300)


def _events(copies: int) -> list[dict[str, Any]]:
    """`generate`'s 5,000 events ``copies`` times over, under other event ids and times."""
    out = []
    for k in range(copies):
        for ev in generate(seed=20240301 + k):
            out.append({**ev, "event_id": f"{ev['event_id']}-{k}"})
    return out


def _lines(events: list[dict[str, Any]]) -> list[tuple[str, int, bytes]]:
    return [("f.jsonl", i, line) for i, line in enumerate(clean_lines(events), 1)]


@pytest.mark.parametrize("segments", [True, False])
def test_the_engine_in_runs_gives_the_same_outputs(
    settings: Settings,
    segments: bool,
) -> None:
    lines = _lines(_events(1))
    outputs = []
    for runs in (None, FileRuns()):
        stages = [make_segmentation_stage(settings)] if segments else []
        engine = Engine(Ingest(check_future=False), stages, runs=runs, run_events=700)
        engine.feed(lines)
        held = len(engine._pending)
        assert held < 700 if runs else held > 4_000
        result = engine.run()
        assert result.counts["dead_lettered"] >= 2 * len(MALFORMED)
        outputs.append(render_outputs(result, {}))
    in_memory, in_runs = outputs
    assert set(in_memory) == set(in_runs)
    for name, data in in_memory.items():
        assert in_runs[name] == data, name
    if segments:
        assert in_memory["segment-changes.jsonl"].count(b"\n") > 100


def test_erasure_rewrites_the_runs_without_the_customer() -> None:
    lines = _lines(_events(1))
    gone = "cust-0007"
    kept = []
    for runs in (None, FileRuns()):
        engine = Engine(Ingest(check_future=False), runs=runs, run_events=300)
        engine.feed(lines)
        assert engine.erase(gone) is False  # nothing applied yet; queued and spilled events go
        if runs is not None:
            taken = [list(run) for run in runs.take()]
            assert len(taken) >= 10  # 5,000 events, 300 a run
            assert all(e[3] != gone for run in taken for e in run)
            for run in taken:
                runs.add(run)
        result = engine.run()
        assert gone not in result.features
        kept.append(render_outputs(result, {}))
    assert kept[0] == kept[1]


def test_the_offline_replay_keeps_its_queue_in_runs(
    tmp_path: Path,
    settings: Settings,
) -> None:
    src = write(tmp_path / "events.jsonl.gz", clean_lines(_events(3)))
    in_memory = settings.model_copy(update={"replay_run_events": 0})
    in_runs = settings.model_copy(update={"replay_run_events": 10_000})
    first = run_offline([src], tmp_path / "memory", in_memory, segments=False)
    second = run_offline([src], tmp_path / "runs", in_runs, segments=False)
    assert first == second
    assert read_outputs(tmp_path / "memory") == read_outputs(tmp_path / "runs")
    assert first["counts"]["accepted"] > 10_000  # at least one run, merged with the rest
