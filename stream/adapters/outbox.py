"""Bulk producing for the worker: one aiokafka batch per topic partition per processing batch.

Faust's per-record produce path (``Table.__setitem__`` → ``send_soon`` → ``FutureMessage`` /
``PendingMessage`` → the producer buffer → ``Topic.publish_message`` → ``AIOKafkaProducer.send``,
with a callback per record) was the largest cost of the worker (BENCHMARKS.md, "Where the
worker's time goes"). An `Outbox` collects what one batch writes — customer table rows, segment
changes, feature samples, dead letters — and at `Outbox.flush` hands it to the aiokafka producer
Faust already runs (``app.producer``) as one record batch per topic partition
(``create_batch`` / ``send_batch``), then writes the rows to the table's local store.

What lands on the broker is what Faust would have written:

* a table row: key and value as raw bytes (the table's serializers are ``raw``: its key and value
  types are ``bytes``; a deletion is a ``None`` value, Faust's tombstone), on the table's
  changelog topic, in the partition of the event it is written under (Faust's
  ``Table.partition_for_key`` with that event current), no headers, timestamp = now. The row goes
  to the local store (RocksDB or memory) with that event current, as ``Table.__setitem__`` does,
  and when the changelog batch is acknowledged the store's persisted changelog offset moves to
  its last record (Faust's ``Table._on_changelog_sent``), so recovery after a restart starts
  where Faust's would;
* a topic record: raw bytes, in the given partition, or else where the producer's own
  partitioner puts its key (the one ``Topic.send`` uses).

So Faust's changelog recovery restores the table from these records as from its own, and a
record's partition and order per key are unchanged (one path per topic; flushes do not overlap).

At-least-once: `flush` runs at the end of each batch, before the batch's events are acknowledged;
every batch future is handed to `stream.adapters.commit.Deliveries`, whose strict pre-commit
flush waits for all of them and refuses to commit after a failed one. Rows go to the local store
only after their records were handed to the producer, and `discard` drops what a failed batch had
queued, so the store never holds a row its changelog lacks.

Relies on the pinned aiokafka 0.14.0 (``AIOKafkaProducer._partition``, ``client``) and
faust-streaming 0.15.3 (``Producer._ensure_producer``, a store's ``set_persisted_offset``).
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from faust.streams import _current_event
from faust.types import TP

if TYPE_CHECKING:
    import faust

    from stream.adapters.commit import Deliveries

_Row = tuple[Any, Any, bytes, bytes | None]
"""(table, event written under, key, value or None for a deletion)."""


class Outbox:
    """Table rows and topic records of one processing batch, produced in bulk by `flush`."""

    def __init__(self, app: faust.App, deliveries: Deliveries) -> None:
        self.app = app
        self.deliveries = deliveries
        self._rows: list[_Row] = []
        self._records: list[tuple[str, int | None, bytes | None, bytes | None]] = []
        self._lock = asyncio.Lock()

    def put(self, table: Any, event: Any, key: bytes, value: bytes) -> None:
        """Queue ``table[key] = value`` as Faust would write it with ``event`` current."""
        self._rows.append((table, event, key, value))

    def delete(self, table: Any, event: Any, key: bytes) -> None:
        """Queue ``del table[key]`` (a changelog tombstone) with ``event`` current."""
        self._rows.append((table, event, key, None))

    def send(
        self, topic: str, key: bytes | None, value: bytes, partition: int | None = None
    ) -> None:
        """Queue a record for ``topic`` (``partition`` None: the producer's partitioner)."""
        self._records.append((topic, partition, key, value))

    def discard(self) -> int:
        """Drop everything queued (a batch that failed before its flush); how many."""
        n = len(self._rows) + len(self._records)
        self._rows.clear()
        self._records.clear()
        return n

    def __len__(self) -> int:
        return len(self._rows) + len(self._records)

    async def flush(self) -> None:
        """Hand everything queued to the producer (one batch per topic partition), then write
        the rows to their local stores. Returns once all of it is in the producer's hands;
        delivery is awaited by the pre-commit flush (`Deliveries.settle`)."""
        if not self._rows and not self._records:
            return
        async with self._lock:  # flushes keep their order per partition
            rows, self._rows = self._rows, []
            records, self._records = self._records, []
            await self.app.maybe_start_producer()
            faust_producer: Any = self.app.producer
            producer = faust_producer._ensure_producer()  # the aiokafka producer
            groups: dict[tuple[str, int], list[tuple[bytes | None, bytes | None]]] = {}
            changelogs: dict[str, Any] = {}
            for table, event, key, value in rows:
                topic = table.changelog_topic.get_topic_name()
                changelogs[topic] = table
                groups.setdefault((topic, event.message.partition), []).append((key, value))
            known: set[str] = set()
            for topic, partition, rkey, rvalue in records:
                if partition is None:
                    if topic not in known:
                        await producer.client._wait_on_metadata(topic)
                        known.add(topic)
                    partition = producer._partition(topic, None, None, None, rkey, rvalue)
                groups.setdefault((topic, partition), []).append((rkey, rvalue))
            for (topic, partition), items in groups.items():
                table = changelogs.get(topic)
                for batch in _batches(producer, items):
                    fut = await producer.send_batch(batch, topic, partition=partition)
                    self.deliveries.track(fut)
                    if table is not None:
                        fut.add_done_callback(
                            _persist_offset(table, TP(topic, partition), batch.record_count())
                        )
            _write_rows(rows)


def _batches(producer: Any, items: list[tuple[bytes | None, bytes | None]]) -> Iterator[Any]:
    """Closed record batches (at most the producer's batch size each) holding ``items``."""
    batch = producer.create_batch()
    for key, value in items:
        if batch.append(key=key, value=value, timestamp=None) is None:
            yield batch  # full: `append` closed it
            batch = producer.create_batch()
            batch.append(key=key, value=value, timestamp=None)  # a first record always fits
    batch.close()
    yield batch


def _persist_offset(table: Any, tp: TP, count: int) -> Any:
    """A done-callback that moves ``table``'s persisted offset to a changelog batch's end."""

    def done(fut: asyncio.Future[Any]) -> None:
        if fut.cancelled() or fut.exception() is not None:
            return  # `Deliveries` records the failure; the offset stays where it was
        meta = fut.result()
        if meta is not None and meta.offset is not None and meta.offset >= 0:
            table.data.set_persisted_offset(tp, meta.offset + count - 1)

    return done


def _write_rows(rows: list[_Row]) -> None:
    """Write rows to their tables' local stores, each with its event current (its partition),
    as ``Table.__setitem__`` / ``__delitem__`` do after sending their changelog record."""
    current: Any = None
    token: Any = None
    try:
        for table, event, key, value in rows:
            if event is not current:
                if token is not None:
                    _current_event.reset(token)
                token = _current_event.set(weakref.ref(event))
                current = event
            if value is None:
                if key in table.data:
                    del table.data[key]
            else:
                table.data[key] = value
    finally:
        if token is not None:
            _current_event.reset(token)
