"""Faust agents. Thin: they turn Kafka messages into `RawRecord`s, run the core, and write back.

Hazards of faust-streaming 0.15 designed around (see README, "Delivery"):

* ``concurrency=1``: with more, the consumer can commit past an event still in flight.
* An exception escaping an agent acks the message: every agent catches everything, retries the
  batch record by record, and dead-letters (``processing_error``) any record that still fails.
  A failed attempt's partitions are re-read from the store before the retry (`_rewind`).
* Faust picks the table partition (changelog and RocksDB) from the *current event*. A batch spans
  partitions, so each table read and write runs with the customer's own last event as current.

Table writes and output records go through `stream.adapters.outbox` (``svc.outbox``): queued
while a batch is processed, produced in bulk and written to the store at its end, before its
events are acknowledged. The outbox is only used under ``svc.lock`` and is empty when the lock is
free; a batch that fails discards what it had queued before it is retried record by record.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import time
import weakref
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from faust.streams import _current_event
from faust.types import TP

from stream.adapters import segments, tablestore
from stream.core.deadletter import DeadLetter, Origin
from stream.core.ingest import BatchResult, RawRecord
from stream.core.reasons import Reason
from stream.core.state import CustomerState, StateDecodeError

if TYPE_CHECKING:
    from stream.adapters.app import Service

log = logging.getLogger(__name__)


@contextlib.contextmanager
def as_current(event: Any) -> Iterator[None]:
    """Make ``event`` Faust's current event (table partition routing) for the block."""
    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)


def load_state(svc: Service, customer_id: str, event: Any) -> CustomerState | None:
    """A stored state, read from the partition of ``event`` (the customer's, as Faust routes it
    with ``event`` current); None if there is none or it is unreadable (counted and logged: the
    customer starts afresh)."""
    partition = event.message.partition
    return decode_state(
        svc, tablestore.get(svc.customers, partition, customer_id.encode()), partition
    )


def decode_state(svc: Service, raw: bytes | None, partition: int) -> CustomerState | None:
    """A stored state's bytes decoded; None if there are none or they are unreadable (counted
    and logged)."""
    if raw is None:
        return None
    try:
        return CustomerState.decode(raw)
    except StateDecodeError:
        svc.metrics.agent_errors.labels("state_decode").inc()
        log.error("unreadable customer state in partition %d; starting it afresh", partition)
        return None


def read_batch(svc: Service, by_key: dict[Any, Any]) -> dict[bytes, bytes | None]:
    """The stored states of a batch's customers (key → its last event), one multi-get per
    partition (`stream.adapters.tablestore`)."""
    keys: dict[int, list[bytes]] = {}
    for key, event in by_key.items():
        if key is not None:
            keys.setdefault(event.message.partition, []).append(key)
    stored: dict[bytes, bytes | None] = {}
    for partition, ks in keys.items():
        stored.update(zip(ks, tablestore.get_many(svc.customers, partition, ks), strict=True))
    return stored


def to_record(svc: Service, event: Any) -> RawRecord:
    """A Faust event as a core `RawRecord`."""
    m = event.message
    ts = m.timestamp
    return RawRecord(
        topic=m.topic,
        stream=svc.stream_of_topic.get(m.topic),
        partition=m.partition,
        offset=m.offset,
        timestamp_ms=int(ts * 1000) if ts else None,
        key=m.key,
        value=m.value,
    )


def register(svc: Service) -> None:
    """Attach the agents to ``svc.app``."""

    @svc.app.agent(svc.input_topic, name="ingest", concurrency=1)
    async def ingest(stream: Any) -> None:
        settings = svc.settings
        async for events in stream.take_events(settings.batch_size, within=settings.batch_window_s):
            await process_events(svc, events)


async def process_events(svc: Service, events: Sequence[Any]) -> None:
    """Process one batch; never raises."""
    async with svc.lock:  # no step between batches (`stream.adapters.catch_up`) meanwhile
        valid_ms = await _process(svc, events)
        if svc.aligner is not None:  # what it let go is no longer in flight
            offsets: dict[Any, int] = {}
            for e in events:
                m = e.message
                tp = TP(m.topic, m.partition)
                offsets[tp] = max(offsets.get(tp, -1), m.offset)
            svc.aligner.processed(offsets, valid_ms)
            svc.may_step.set()


async def _process(svc: Service, events: Sequence[Any]) -> int | None:
    """Apply a batch (one by one if it fails); return the newest time of its valid events."""
    started = time.perf_counter()
    valid_ms = None
    try:
        valid_ms = await _apply(svc, events, [to_record(svc, e) for e in events])
    except Exception:
        svc.outbox.discard()
        _rewind(svc, events)
        svc.metrics.agent_errors.labels("ingest").inc()
        log.exception("batch of %d records failed; retrying one by one", len(events))
        for event in events:
            try:
                t = await _apply(svc, [event], [to_record(svc, event)])
                if t is not None and (valid_ms is None or t > valid_ms):
                    valid_ms = t
            except Exception as exc:
                svc.outbox.discard()
                _rewind(svc, [event])
                log.exception(
                    "record %s[%d]@%d failed",
                    event.message.topic,
                    event.message.partition,
                    event.message.offset,
                )
                await _dead_letter_failure(svc, event, exc)
    svc.metrics.batch_seconds.observe(time.perf_counter() - started)
    svc.metrics.batch_size.observe(len(events))
    return valid_ms


async def _apply(svc: Service, events: Sequence[Any], records: list[RawRecord]) -> int | None:
    table = svc.customers
    by_key = {e.message.key: e for e in events}
    stored = read_batch(svc, by_key)  # the store is written only at the batch's end (flush)

    # States a day's step re-scored before the batch ended (see `segments.day_passer`): the
    # batch goes on with these objects, and they are written back with the rest.
    stepped: dict[str, tuple[Any, CustomerState]] = {}

    def load_under(customer_id: str, event: Any) -> CustomerState | None:
        if customer_id in stepped:
            return stepped[customer_id][1]
        key = customer_id.encode()
        if key in stored:
            return decode_state(svc, stored[key], event.message.partition)
        return load_state(svc, customer_id, event)

    def load(customer_id: str) -> CustomerState | None:
        return load_under(customer_id, by_key[customer_id.encode()])

    before = segments.day_passer(svc, events, load_under, stepped)
    result: BatchResult = svc.ingest.process(
        records, load, before, svc.assigner.touched, now_ms=int(time.time() * 1000)
    )
    outbox = svc.outbox
    for dl in result.dead_letters:
        _queue_dead_letter(svc, dl)
    writes = dict(stepped)
    writes.update({cid: (by_key[cid.encode()], s) for cid, s in result.changed.items()})
    writes.update(segments.score_batch(svc, events, result.changed, load_under))
    for customer_id, (event, state) in writes.items():  # one table write per customer per batch
        outbox.put(table, event.message.partition, customer_id.encode(), state.encode())
    await outbox.flush()
    svc.metrics.observe(result)
    now = time.time()
    for state in result.changed.values():
        svc.metrics.event_time_lag.observe(max(now - state.last_ts / 1000, 0.0))
    return result.newest_ms


def _rewind(svc: Service, events: Sequence[Any]) -> None:
    """Undo what a failed attempt did to its partitions' calendars (`Assigner`: day clock,
    re-evaluations due, segment sizes) by releasing them: the retry adopts them again from the
    store, which the attempt did not write. Otherwise a day boundary the failed attempt passed
    stays passed, and that day's re-evaluations and sample, discarded with the outbox, are lost
    (the trainer would learn that day without the partition). Costs one scan of each partition's
    stored customers per failed attempt."""
    for partition in sorted({e.message.partition for e in events}):
        svc.assigner.release(partition)


def _queue_dead_letter(svc: Service, dl: DeadLetter) -> None:
    key = None if dl.key_b64 is None else base64.b64decode(dl.key_b64)
    svc.outbox.send(svc.settings.topic_dead_letter, key, dl.to_bytes(), dl.source.partition)


async def _dead_letter_failure(svc: Service, event: Any, exc: Exception) -> None:
    rec = to_record(svc, event)
    dl = DeadLetter.build(
        rec.value,
        rec.key,
        Origin(rec.topic, rec.partition, rec.offset, rec.timestamp_ms),
        Reason.PROCESSING_ERROR,
        f"{type(exc).__name__} while processing",
        max_bytes=svc.settings.max_message_bytes,
    )
    try:
        _queue_dead_letter(svc, dl)
        await svc.outbox.flush()
        stream = rec.stream.value if rec.stream else "unknown"
        svc.metrics.dead_letters.labels(stream, Reason.PROCESSING_ERROR.value).inc()
        svc.metrics.events.labels(stream, "invalid", "dead_lettered").inc()
    except Exception:
        svc.outbox.discard()
        log.exception("could not dead-letter a failed record")
