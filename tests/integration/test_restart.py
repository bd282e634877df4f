"""After a worker restart, the table state equals that of an uninterrupted run, and the worker's
customer gauges count what it holds: at once after the restart, and after a rebalance."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter

import pytest

from stream.core.state import CustomerState, encoded_size
from tests.factories import valid_stream
from tests.integration.harness import (
    WorkerProcess,
    assert_same_state,
    key_partition,
    metric_sum,
    uninterrupted_states,
    wait_for,
)
from tests.integration.test_ingest import final_states, producer_for

pytestmark = pytest.mark.integration

# A model within the first half (its first 2.8 days), so the workers hold segment members.
MODEL = {
    "MICROSEG_SAMPLE_RATE": "0.5",
    "MICROSEG_MONITOR_RATE": "0.5",
    "MICROSEG_WARMUP_SAMPLES": "50",
    "MICROSEG_PUBLISH_EVERY": "100",
    "MICROSEG_SEGMENTS": "4",
}


class Lookups:
    """``GET /customers/{id}`` of known customers on one worker, round and round in a thread,
    counting the answers by status, or by what was wrong with them."""

    def __init__(self, worker: WorkerProcess, customers: list[str]) -> None:
        self.worker, self.customers = worker, customers
        self.answers: Counter[int | str] = Counter()
        self.odd: list[tuple[str, str, int | str]] = []
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Lookups:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._done.is_set():
            for cid in self.customers:
                answer = self._ask(cid)
                self.answers[answer] += 1
                if answer not in (200, 503):
                    self.odd.append((time.strftime("%H:%M:%S"), cid, answer))
                time.sleep(0.02)

    def _ask(self, cid: str) -> int | str:
        """The status, or what was wrong with the answer."""
        try:
            status, body = self.worker.get(f"/customers/{cid}", timeout=30)
        except OSError as exc:
            return type(exc).__name__
        try:
            obj = json.loads(body)
        except ValueError:
            return f"{status} not JSON"
        if status == 200 and obj.get("customer_id") != cid:
            return "200 for another customer"
        if status == 503 and obj.get("error") != "unavailable":
            return f"503 {obj.get('error')}"
        return status

    def stop(self) -> Counter[int | str]:
        self._done.set()
        self._thread.join(60)
        assert not self._thread.is_alive()
        return self.answers


def assigned(worker: WorkerProcess, topic: str) -> set[int]:
    """The partitions of ``topic`` assigned to ``worker`` (its consumer-lag series)."""
    return {
        int(dict(labels)["partition"])
        for (name, labels), _ in worker.metrics().items()
        if name == "microseg_consumer_lag_records" and dict(labels)["topic"] == topic
    }


def assert_gauges_count(
    worker: WorkerProcess, states: dict[str, CustomerState], partitions: set[int], of: int
) -> None:
    """``microseg_customers``, ``microseg_state_bytes`` and ``microseg_segment_customers`` of
    ``worker`` are the customers of ``states`` (the changelog's) in ``partitions`` (of ``of``)."""
    held = [s for cid, s in states.items() if key_partition(cid.encode(), of) in partitions]
    m = worker.metrics()
    sizes = {
        dict(lb)["segment"]: v for (n, lb), v in m.items() if n == "microseg_segment_customers"
    }
    got = (metric_sum(m, "microseg_customers"), metric_sum(m, "microseg_state_bytes"), sizes)
    want_sizes = Counter(str(s.segment_id) for s in held if s.segment_id)
    assert got == (len(held), len(held) * encoded_size(), dict(want_sizes)), partitions


def test_state_after_graceful_restart_equals_uninterrupted_run(broker, names, spawn):
    events = valid_stream(8_000, customers=400, seed=5)
    topics = {s: names.topic(s) for s in ("clickstream", "email", "purchases")}

    def produce(part):
        producer = producer_for(broker.bootstrap)
        for stream, customer, event in part:
            producer.send(topics[stream], key=customer.encode(), value=json.dumps(event).encode())
        producer.flush()
        producer.close()

    first = spawn(**MODEL)
    first.wait_ready()
    produce(events[:4_000])
    wait_for(
        lambda: metric_sum(first.metrics(), "microseg_events_total", outcome="accepted") >= 4_000,
        120,
        "the first half to be applied",
    )
    first.stop()  # SIGTERM: a graceful stop, state kept in RocksDB and on the changelog
    assert not first.alive

    second = spawn(**MODEL)  # same data directory: RocksDB state plus changelog recovery
    second.wait_ready()
    # Before any new event, the gauges count every customer recovered (they read 0 when a
    # partition was counted only from its first batch after the restart).
    held = final_states(broker.bootstrap, names.changelog)
    assert held, "the first half is on the changelog"
    assert_gauges_count(second, held, set(range(names.partitions)), names.partitions)
    produce(events[4_000:])
    wait_for(
        lambda: metric_sum(second.metrics(), "microseg_events_total", outcome="accepted") >= 4_000,
        120,
        "the second half to be applied",
    )

    want = uninterrupted_states(broker.bootstrap, topics, expect=8_000)

    def changelog_caught_up() -> bool:
        states = final_states(broker.bootstrap, names.changelog)
        return sum(s.total_events for s in states.values()) >= 8_000

    wait_for(changelog_caught_up, 60, "the changelog to hold every applied event", interval=2)
    got = final_states(broker.bootstrap, names.changelog)
    assert set(got) == set(want)
    for customer, state in want.items():
        assert_same_state(got[customer], state)
    assert metric_sum(second.metrics(), "microseg_duplicates_skipped_total") == 0

    # A rebalance: a third worker (its own data directory) joins and takes some partitions,
    # recovered from the changelog; each worker's gauges count the partitions it now has.
    # Meanwhile customers are looked up on the second worker (`stream.adapters.owner`).
    looked_up = Lookups(second, sorted(want)[:50]).start()
    third = spawn(**MODEL, MICROSEG_DATA_DIR=str(second.env["MICROSEG_DATA_DIR"]) + "-third")
    third.wait_ready()
    workers, everything = (second, third), set(range(names.partitions))

    def split() -> bool:
        parts = [assigned(w, topics["clickstream"]) for w in workers]
        return (all(p and w.get("/ready")[0] == 200 for w, p in zip(workers, parts, strict=True))
                and parts[0].isdisjoint(parts[1]) and parts[0] | parts[1] == everything)  # fmt: skip

    wait_for(split, 90, "the two workers to share the partitions")
    # Read after the rebalance: until a partition's next event no step writes to it (a
    # catch-up to a model published after the last batch could have, before).
    held = final_states(broker.bootstrap, names.changelog)
    assert set(held) == set(want) and any(s.segment_id for s in held.values())
    for w in workers:
        assert_gauges_count(w, held, assigned(w, topics["clickstream"]), names.partitions)

    # The third worker leaves (SIGTERM) while look-ups go on; then the second owns everything.
    third.stop()
    wait_for(lambda: assigned(second, topics["clickstream"]) == everything
             and second.get("/ready")[0] == 200, 90, "the second worker to own every partition")  # fmt: skip
    answers = looked_up.stop()
    # Every customer exists: each answer is the customer, or 503 with Retry-After while the
    # worker cannot answer right (rebalancing, the owner gone); never 404, never a 500.
    assert answers[200] > 0 and set(answers) <= {200, 503}, (answers, looked_up.odd)
    print("look-ups during the join and the leave:", dict(answers))
    for cid in sorted(want)[:50]:
        assert second.get(f"/customers/{cid}")[0] == 200
