"""After a worker restart, the table state equals that of an uninterrupted run."""

from __future__ import annotations

import json

import pytest

from tests.factories import valid_stream
from tests.integration.harness import (
    assert_same_state,
    metric_sum,
    uninterrupted_states,
    wait_for,
)
from tests.integration.test_ingest import final_states, producer_for

pytestmark = pytest.mark.integration


def test_state_after_graceful_restart_equals_uninterrupted_run(broker, names, spawn):
    events = valid_stream(8_000, customers=400, seed=5)
    topics = {s: names.topic(s) for s in ("clickstream", "email", "purchases")}

    def produce(part):
        producer = producer_for(broker.bootstrap)
        for stream, customer, event in part:
            producer.send(topics[stream], key=customer.encode(), value=json.dumps(event).encode())
        producer.flush()
        producer.close()

    first = spawn()
    first.wait_ready()
    produce(events[:4_000])
    wait_for(
        lambda: metric_sum(first.metrics(), "microseg_events_total", outcome="accepted") >= 4_000,
        120,
        "the first half to be applied",
    )
    first.stop()  # SIGTERM: a graceful stop, state kept in RocksDB and on the changelog
    assert not first.alive

    second = spawn()  # same data directory: RocksDB state plus changelog recovery
    second.wait_ready()
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
