"""A worker killed with SIGKILL mid-stream and restarted loses no valid event."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter

import pytest

from tests.factories import valid_stream
from tests.integration.harness import assert_same_state, metric_sum, uninterrupted_states, wait_for
from tests.integration.test_ingest import applied_per_customer, final_states, producer_for

pytestmark = pytest.mark.integration

N_EVENTS = 30_000


def test_sigkill_mid_stream_then_restart_loses_nothing(broker, names, spawn):
    first = spawn()
    first.wait_ready()
    events = valid_stream(N_EVENTS, customers=1_500, seed=11)
    expected: Counter[tuple[str, str]] = Counter((c, s) for s, c, _ in events)

    def produce() -> None:
        producer = producer_for(broker.bootstrap)
        for i, (stream, customer, event) in enumerate(events):
            producer.send(
                names.topic(stream), key=customer.encode(), value=json.dumps(event).encode()
            )
            if i % 1_000 == 999:
                producer.flush()
                time.sleep(0.15)
        producer.flush()
        producer.close()

    sender = threading.Thread(target=produce)
    sender.start()
    wait_for(
        lambda: metric_sum(first.metrics(), "microseg_events_total", outcome="accepted") >= 6_000,
        120,
        "the first worker to apply 6,000 events",
        interval=0.1,
    )
    first.kill()
    assert not first.alive
    sender.join(120)
    assert not sender.is_alive()

    second = spawn()
    second.wait_ready()

    def totals_match() -> bool:
        states = final_states(broker.bootstrap, names.changelog)
        return sum(st.total_events for st in states.values()) >= N_EVENTS

    wait_for(totals_match, 240, "the restarted worker to apply every event", interval=2)
    states = final_states(broker.bootstrap, names.changelog)
    got = applied_per_customer(states)
    assert got == expected, "per-customer counts differ from what was produced"
    # And the whole state (features, marks) equals an uninterrupted run of the same records.
    topics = {s: names.topic(s) for s in ("clickstream", "email", "purchases")}
    want = uninterrupted_states(broker.bootstrap, topics, expect=N_EVENTS)
    for customer, state in want.items():
        assert_same_state(states[customer], state, ignore_duplicates=True)
    # Redeliveries after the crash are recognised, counted and skipped, never applied twice.
    skipped = metric_sum(second.metrics(), "microseg_duplicates_skipped_total")
    assert skipped == sum(st.duplicates for st in states.values())
    print(f"redelivered after SIGKILL and skipped: {skipped:.0f}")
    assert second.alive
