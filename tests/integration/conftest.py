"""Integration fixtures: one real embedded broker per session (per test process, under
``pytest -n``), fresh names per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from stream.adapters.embedded import EmbeddedBroker
from tests.factories import without_settings
from tests.integration.harness import Names, WorkerProcess


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    """A Tansu broker for the whole session of this test process (state is in memory; tests use
    unique names)."""
    log = tmp_path_factory.mktemp("broker") / "tansu.log"
    with EmbeddedBroker(log=log) as b:
        yield b


@pytest.fixture
def names() -> Names:
    """Unique app id and topic names for one test."""
    return Names(uuid.uuid4().hex[:10])


@pytest.fixture
def worker_env(broker: EmbeddedBroker, names: Names, tmp_path: Path) -> dict[str, str]:
    """Environment for a worker subprocess on the session broker with this test's names."""
    env = without_settings(os.environ)
    env.update(names.env(broker.url, tmp_path / "data"))
    return env


@pytest.fixture
def spawn(worker_env: dict[str, str], tmp_path: Path) -> Iterator[object]:
    """Start worker subprocesses; every one still running is stopped after the test."""
    started: list[WorkerProcess] = []

    def _spawn(**extra_env: str) -> WorkerProcess:
        env = {**worker_env, **extra_env}
        w = WorkerProcess(env, tmp_path / f"worker-{len(started)}.log").start()
        started.append(w)
        return w

    yield _spawn
    for w in started:
        w.stop()
