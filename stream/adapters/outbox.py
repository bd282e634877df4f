"""Bulk producing for the worker: one aiokafka batch per topic partition per processing batch.

Faust's per-record produce path (``Table.__setitem__`` → ``send_soon`` → ``FutureMessage`` /
``PendingMessage`` → the producer buffer → ``Topic.publish_message`` → ``AIOKafkaProducer.send``,
with a callback per record) was the largest cost of the worker (BENCHMARKS.md, "Where the
worker's time goes"). An `Outbox` collects what one batch writes — customer table rows, segment
changes, feature samples, dead letters — and at `Outbox.flush` hands it to the aiokafka producer
Faust already runs (``app.producer``) as one record batch per topic partition
(``create_batch`` / ``send_batch``), then writes the rows to the table's local store
(`stream.adapters.tablestore`: one write batch per partition).

What lands on the broker is what Faust would have written:

* a table row: key and value as raw bytes (the table's serializers are ``raw``: its key and value
  types are ``bytes``; a deletion is a ``None`` value, Faust's tombstone), on the table's
  changelog topic, in the partition given: that of the customer's input event (Faust's
  ``Table.partition_for_key`` with that event current), no headers, timestamp = now. The row goes
  to that partition of the local store (RocksDB or memory), as ``Table.__setitem__`` does, and
  when the changelog batch is acknowledged the store's persisted changelog offset moves to
  its last record (Faust's ``Table._on_changelog_sent``), so recovery after a restart starts
  where Faust's would;
* a topic record: raw bytes, in the given partition, or else where the producer's own
  partitioner puts its key (the one ``Topic.send`` uses).

So Faust's changelog recovery restores the table from these records as from its own, and a
record's partition and order per key are unchanged (one path per topic; flushes do not overlap).

At-least-once: `flush` runs at the end of each batch, before the batch's events are acknowledged;
every batch future is handed to `stream.adapters.commit.Deliveries`, whose strict pre-commit
flush waits for all of them and refuses to commit after a failed one. Rows go to the local store
only once their changelog records are in the producer's hands (Faust's ``Table.__setitem__``
writes the store as it queues the record), and `discard` drops what a failed batch had queued,
so a batch that fails is retried from the states it started from.

Relies on the pinned aiokafka 0.14.0 (``AIOKafkaProducer._partition``, ``client``) and
faust-streaming 0.15.3 (``Producer._ensure_producer``, a store's ``set_persisted_offset``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from faust.types import TP

from stream.adapters import tablestore

if TYPE_CHECKING:
    import faust

    from stream.adapters.commit import Deliveries

_Row = tuple[Any, int, bytes, bytes | None]
"""(table, partition, key, value or None for a deletion)."""


class Outbox:
    """Table rows and topic records of one processing batch, produced in bulk by `flush`."""

    def __init__(self, app: faust.App, deliveries: Deliveries) -> None:
        self.app = app
        self.deliveries = deliveries
        self._rows: list[_Row] = []
        self._records: list[tuple[str, int | None, bytes | None, bytes | None]] = []
        self._lock = asyncio.Lock()

    def put(self, table: Any, partition: int, key: bytes, value: bytes) -> None:
        """Queue ``table[key] = value`` in ``partition`` (that of the key's input event)."""
        self._rows.append((table, partition, key, value))

    def delete(self, table: Any, partition: int, key: bytes) -> None:
        """Queue ``del table[key]`` (a changelog tombstone) in ``partition``."""
        self._rows.append((table, partition, key, None))

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
            for table, partition, key, value in rows:
                topic = table.changelog_topic.get_topic_name()
                changelogs[topic] = table
                groups.setdefault((topic, partition), []).append((key, value))
            known: set[str] = set()
            for topic, given, rkey, rvalue in records:
                if given is None:
                    if topic not in known:
                        await producer.client._wait_on_metadata(topic)
                        known.add(topic)
                    given = producer._partition(topic, None, None, None, rkey, rvalue)
                groups.setdefault((topic, given), []).append((rkey, rvalue))
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
    """Write rows to their tables' local stores: one write per table and partition, in order
    (a key is always in one partition, so its rows keep their order)."""
    groups: dict[tuple[int, int], tuple[Any, list[tuple[bytes, bytes | None]]]] = {}
    for table, partition, key, value in rows:
        group = groups.get((id(table), partition))
        if group is None:
            group = groups[(id(table), partition)] = (table, [])
        group[1].append((key, value))
    for (_, partition), (table, items) in groups.items():
        tablestore.write(table, partition, items)
