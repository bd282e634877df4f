"""Ingest over the real embedded broker: valid events applied once, bad ones dead-lettered."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime

import pytest
from kafka import KafkaProducer

from stream.core.deadletter import DeadLetter
from stream.core.reasons import Reason
from stream.core.state import STREAMS, CustomerState
from tests.factories import REASONS_COVERED, malformed, valid_stream
from tests.integration.harness import key_partition, metric_sum, read_topic, wait_for

pytestmark = pytest.mark.integration


def producer_for(bootstrap: str) -> KafkaProducer:
    return KafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=5, max_request_size=8 * 1024 * 1024
    )


def applied_per_customer(states: dict[str, CustomerState]) -> Counter[tuple[str, str]]:
    """(customer, stream) → events applied, from final states."""
    return Counter(
        {
            (c, s.value): st.events[i]
            for c, st in states.items()
            for i, s in enumerate(STREAMS)
            if st.events[i]
        }
    )


def final_states(bootstrap: str, changelog: str) -> dict[str, CustomerState]:
    """The last state per customer on the table's changelog topic."""
    out: dict[str, CustomerState] = {}
    for rec in read_topic(bootstrap, changelog, timeout=60):
        if rec.value is None:
            out.pop(rec.key.decode(), None)
        else:
            out[rec.key.decode()] = CustomerState.decode(rec.value)
    return out


def test_valid_events_once_and_every_bad_event_dead_lettered(broker, names, spawn):
    worker = spawn()
    worker.wait_ready()
    producer = producer_for(broker.bootstrap)
    now = datetime.now(UTC)

    expected: Counter[tuple[str, str]] = Counter()
    for stream, customer, event in valid_stream(10_000, customers=700):
        producer.send(names.topic(stream), key=customer.encode(), value=json.dumps(event).encode())
        expected[(customer, stream)] += 1
    sent_bad = []
    for i in range(1_000):
        reason, role, key, value = malformed(i, now)
        sent_bad.append(
            (
                reason,
                names.topic(role),
                key,
                value,
                producer.send(names.topic(role), key=key, value=value),
            )
        )
    producer.flush()
    origins = {}
    for reason, topic, key, value, fut in sent_bad:
        md = fut.get(30)
        origins[(topic, md.partition, md.offset)] = (reason, key, value)
    producer.close()

    def all_accounted() -> bool:
        m = worker.metrics()
        return (
            metric_sum(m, "microseg_events_total", outcome="accepted") >= 10_000
            and metric_sum(m, "microseg_dead_letters_total") >= 1_000
        )

    wait_for(all_accounted, 180, "10,000 accepted and 1,000 dead-lettered in /metrics")

    # Every malformed record is on dead-letter exactly once, with its reason, origin and bytes.
    records = read_topic(broker.bootstrap, names.topic("dead-letter"), timeout=60)
    assert len(records) == 1_000
    seen = set()
    reasons: Counter[str] = Counter()
    for rec in records:
        dl = DeadLetter.model_validate_json(rec.value)
        origin = (dl.source.topic, dl.source.partition, dl.source.offset)
        assert origin in origins, origin
        assert origin not in seen, f"dead-lettered twice: {origin}"
        seen.add(origin)
        want_reason, key, value = origins[origin]
        assert dl.reason is want_reason, (origin, dl.reason, dl.detail)
        assert dl.detail
        assert rec.key == key
        assert dl.value_size == len(value)
        original = dl.original_value()
        if dl.value_truncated:
            assert want_reason is Reason.OVERSIZED and value.startswith(original)
        else:
            assert original == value
        reasons[dl.reason.value] += 1
    assert {Reason(r) for r in reasons} == REASONS_COVERED
    assert any(o[0] == Reason.NOT_JSON and o[2][:1] == b"\xff" for o in origins.values())
    assert max(len(v) for _, _, v in origins.values()) > 2_000_000

    # Records are where Faust's own produce path puts them (the worker produces in bulk,
    # `stream.adapters.outbox`): a dead letter in its source partition; a changelog record in
    # its customer's input partition (the input is keyed by customer id); no headers.
    for rec in records:
        assert rec.partition == DeadLetter.model_validate_json(rec.value).source.partition
        assert not rec.headers
    changelog = read_topic(broker.bootstrap, names.changelog, timeout=60)
    assert changelog
    for rec in changelog:
        assert rec.partition == key_partition(rec.key, names.partitions) and not rec.headers

    # Every valid event was applied exactly once, per customer and stream.
    states = final_states(broker.bootstrap, names.changelog)
    got = applied_per_customer(states)
    assert got == expected
    assert sum(st.duplicates for st in states.values()) == 0

    # The worker is still running and its counters agree with what was produced.
    assert worker.alive
    m = worker.metrics()
    assert metric_sum(m, "microseg_events_total", outcome="accepted") == 10_000
    assert metric_sum(m, "microseg_events_total", outcome="dead_lettered") == 1_000
    assert metric_sum(m, "microseg_duplicates_skipped_total") == 0
    for reason, n in reasons.items():
        assert metric_sum(m, "microseg_dead_letters_total", reason=reason) == n
    per_stream = Counter(s for (_, s), n in expected.items() for _ in range(n))
    for stream, n in per_stream.items():
        assert metric_sum(m, "microseg_events_total", stream=stream, outcome="accepted") == n
