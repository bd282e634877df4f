"""The worker's customer gauges after a restart and a rebalance, without a broker.

``microseg_customers``, ``microseg_state_bytes`` and ``microseg_segment_customers`` count the
customers of the partitions the `Assigner` has adopted. The worker adopts its assigned partitions
from the store when the table has recovered (`stream.adapters.segments.adopt_assigned`, the
table's recovery callback), not only at a partition's first batch: after a restart, or a
rebalance that hands it partitions, the gauges count what it holds before any event arrives, and
what it no longer owns drops out.

The worker is the real app (`build_app`, memory store) with the table's recovery callbacks and
the revocation signal run as Faust runs them, its assignment stubbed and ``/metrics`` read from
its view.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from faust.types import TP
from kafka.partitioner.default import murmur2
from prometheus_client.parser import text_string_to_metric_families

from stream.adapters.app import Service, build_app
from stream.core.state import CustomerState, encoded_size
from tests.factories import bare_settings

PARTITIONS = 4


def _partition(key: bytes) -> int:
    return (murmur2(key) & 0x7FFFFFFF) % PARTITIONS


class _Consumer:
    """What ``/metrics`` asks of Faust's consumer, with no partition lags to report."""

    def assignment(self) -> set[TP]:
        return set()


@pytest.fixture
def worker(tmp_path: Path) -> Service:
    """A worker whose table already holds 40 customers (as recovered after a restart), 30 of
    them in segments 1–3."""
    settings = bare_settings(store="memory://", data_dir=tmp_path, partitions=PARTITIONS)
    svc = build_app(settings, ["127.0.0.1:1"])
    svc.app.consumer = _Consumer()  # type: ignore[assignment]
    store = svc.customers.data.data
    for i in range(40):
        state = CustomerState(last_ts=86_400_000 + i, first_ts=0, t0=0)
        state.segment_id = i % 4  # 0: not yet in a segment
        store[f"c{i}".encode()] = state.encode()
    return svc


def _held(svc: Service, partitions: set[int]) -> tuple[int, dict[str, float]]:
    """Customers in ``partitions`` of the store, and their members per segment."""
    states = [CustomerState.decode(v) for k, v in svc.customers.data.data.items()
              if _partition(k) in partitions]  # fmt: skip
    sizes = Counter(str(s.segment_id) for s in states if s.segment_id)
    return len(states), {k: float(v) for k, v in sizes.items()}


def _assign(svc: Service, monkeypatch: pytest.MonkeyPatch, partitions: set[int]) -> None:
    """Faust's assignor hands the worker ``partitions`` of every input topic and the changelog."""
    topics = [*svc.stream_of_topic, svc.customers.changelog_topic.get_topic_name()]
    actives = {TP(t, p) for t in topics for p in partitions}
    monkeypatch.setattr(svc.app.assignor, "assigned_actives", lambda: actives)


def _gauges(svc: Service) -> tuple[float, float, dict[str, float]]:
    """``microseg_customers``, ``microseg_state_bytes`` and ``microseg_segment_customers`` as
    ``GET /metrics`` answers."""
    view: Any = svc.app.web.views["/metrics"]
    response = asyncio.run(view.get(SimpleNamespace()))
    samples = [
        sample
        for family in text_string_to_metric_families(response.body.decode())
        for sample in family.samples
    ]
    customers = sum(s.value for s in samples if s.name == "microseg_customers")
    state_bytes = sum(s.value for s in samples if s.name == "microseg_state_bytes")
    sizes = {s.labels["segment"]: s.value for s in samples
             if s.name == "microseg_segment_customers"}  # fmt: skip
    return customers, state_bytes, sizes


def _recovered(svc: Service) -> None:
    """Table recovery completed: Faust calls the table's recovery callbacks."""
    asyncio.run(svc.customers.call_recover_callbacks())


def _revoked(svc: Service, partitions: set[int]) -> None:
    """Faust revokes ``partitions`` of every input topic (the start of a rebalance)."""
    tps = {TP(t, p) for t in svc.stream_of_topic for p in partitions}
    asyncio.run(svc.app.on_partitions_revoked.send(tps))


def test_after_a_restart_the_gauges_count_every_recovered_customer(
    worker: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    everything = set(range(PARTITIONS))
    _assign(worker, monkeypatch, everything)
    assert _gauges(worker) == (0, 0, {})  # before recovery: nothing adopted
    _recovered(worker)
    n, sizes = _held(worker, everything)
    assert n == 40 and sum(sizes.values()) == 30
    assert _gauges(worker) == (n, n * encoded_size(), sizes)


def test_a_rebalance_counts_the_partitions_handed_over_and_drops_those_taken(
    worker: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    _assign(worker, monkeypatch, {0, 1})
    _recovered(worker)
    n, sizes = _held(worker, {0, 1})
    assert 0 < n < 40
    assert _gauges(worker) == (n, n * encoded_size(), sizes)

    # Another worker leaves: every partition is revoked, then this one gets all four.
    _revoked(worker, {0, 1})
    _assign(worker, monkeypatch, {0, 1, 2, 3})
    _recovered(worker)
    n, sizes = _held(worker, {0, 1, 2, 3})
    assert _gauges(worker) == (40, 40 * encoded_size(), sizes)

    # One joins: partitions 2 and 3 go to it; what this worker no longer owns drops out (also
    # without a revocation for it, should the assignment change without one).
    _assign(worker, monkeypatch, {0, 1})
    _recovered(worker)
    n, sizes = _held(worker, {0, 1})
    assert _gauges(worker) == (n, n * encoded_size(), sizes)
    assert set(worker.assigner.schedules) == {0, 1}


def test_a_partition_already_adopted_is_not_scanned_again(
    worker: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    _assign(worker, monkeypatch, {0, 1})
    _recovered(worker)
    schedule = worker.assigner.schedules[0]
    _recovered(worker)  # a recovery with no revocation before it: partition 0 kept as it was
    assert worker.assigner.schedules[0] is schedule
