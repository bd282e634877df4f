"""The worker's bulk producing (`stream.adapters.outbox`) and the commit's wait for it, without a
broker: a stand-in for the aiokafka producer that builds real record batches."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka.producer.message_accumulator import BatchBuilder
from aiokafka.record.default_records import DefaultRecordBatch
from aiokafka.structs import RecordMetadata
from faust.stores.memory import Store as MemoryStore
from faust.stores.rocksdb import Store as RocksDBStore

from stream.adapters import tablestore
from stream.adapters.commit import Deliveries
from stream.adapters.outbox import Outbox


class FakeProducer:
    """`create_batch` / `send_batch` / `_partition` of aiokafka's producer; deliveries are
    resolved by the test (`ack`, `fail`)."""

    def __init__(self, batch_size: int = 16_384) -> None:
        self.batch_size = batch_size
        self.sent: list[tuple[str, int, list[tuple[bytes | None, bytes | None]]]] = []
        self.futures: list[asyncio.Future[Any]] = []
        self.client = SimpleNamespace(_wait_on_metadata=self._wait_on_metadata)
        self.metadata_waits: list[str] = []
        self.offsets: dict[tuple[str, int], int] = {}

    async def _wait_on_metadata(self, topic: str) -> None:
        self.metadata_waits.append(topic)

    def _partition(
        self, topic: str, partition: Any, key: Any, value: Any, kb: bytes, vb: Any
    ) -> int:
        return len(kb) % 3  # a stand-in partitioner: what matters is that it is the one used

    def create_batch(self) -> BatchBuilder:
        return BatchBuilder(self.batch_size, 0)

    async def send_batch(self, batch: BatchBuilder, topic: str, *, partition: int) -> Any:
        assert batch.closed()
        records = [(r.key, r.value) for r in DefaultRecordBatch(bytearray(batch._build()))]
        self.sent.append((topic, partition, records))
        fut = asyncio.get_running_loop().create_future()
        base = self.offsets.get((topic, partition), 0)
        self.offsets[(topic, partition)] = base + len(records)
        fut.base = base  # type: ignore[attr-defined]
        self.futures.append(fut)
        return fut

    def ack(self) -> None:
        for (topic, partition, _), fut in zip(self.sent, self.futures, strict=True):
            if not fut.done():
                tp = SimpleNamespace(topic=topic, partition=partition)
                fut.set_result(RecordMetadata(topic, partition, tp, fut.base, -1, 0, 0))  # type: ignore[attr-defined]


class FakeStore(MemoryStore):  # type: ignore[misc]
    """Faust's memory store (its ``data`` dict), recording the persisted offsets."""

    def __init__(self) -> None:  # no Faust app: only what the outbox and tablestore use
        self.data: dict[bytes, bytes] = {}
        self.persisted: dict[int, int] = {}

    def set_persisted_offset(self, tp: Any, offset: int) -> None:
        self.persisted[tp.partition] = offset


def table(name: str = "app-customers-changelog") -> Any:
    return SimpleNamespace(
        changelog_topic=SimpleNamespace(get_topic_name=lambda: name), data=FakeStore()
    )


def outbox(producer: FakeProducer) -> tuple[Outbox, Deliveries]:
    async def maybe_start_producer() -> None:
        return None

    app = SimpleNamespace(
        producer=SimpleNamespace(_ensure_producer=lambda: producer),
        maybe_start_producer=maybe_start_producer,
    )
    deliveries = Deliveries()
    return Outbox(app, deliveries), deliveries  # type: ignore[arg-type]


def test_rows_and_records_go_out_as_one_batch_per_topic_partition() -> None:
    async def main() -> None:
        producer = FakeProducer()
        box, deliveries = outbox(producer)
        t = table()
        t.data.data[b"gone"] = b"old"
        box.put(t, 1, b"a", b"A1")
        box.put(t, 4, b"b", b"B1")
        box.put(t, 1, b"c", b"C1")
        box.delete(t, 4, b"gone")
        box.send("changes", b"a", b"change-a")  # partition by the producer's partitioner
        box.send("changes", b"bb", b"change-bb")
        box.send("dead", None, b"dl", partition=2)
        assert len(box) == 7
        await box.flush()
        assert len(box) == 0
        got = {(topic, p): recs for topic, p, recs in producer.sent}
        assert got == {
            ("app-customers-changelog", 1): [(b"a", b"A1"), (b"c", b"C1")],
            ("app-customers-changelog", 4): [(b"b", b"B1"), (b"gone", None)],
            ("changes", 1): [(b"a", b"change-a")],
            ("changes", 2): [(b"bb", b"change-bb")],
            ("dead", 2): [(None, b"dl")],
        }
        assert producer.metadata_waits == ["changes"]  # once per topic and flush
        # rows are in the store
        assert t.data.data == {b"a": b"A1", b"b": b"B1", b"c": b"C1"}
        assert tablestore.get_many(t, 1, [b"a", b"b", b"gone"]) == [b"A1", b"B1", None]
        # the commit waits for every batch; the persisted offsets move when acknowledged
        assert deliveries.pending == 5
        settle = asyncio.ensure_future(deliveries.settle())
        await asyncio.sleep(0)
        assert not settle.done()
        assert t.data.persisted == {}
        producer.ack()
        await settle
        assert t.data.persisted == {1: 1, 4: 1}
        assert deliveries.errors == []

    asyncio.run(main())


def test_full_batches_are_split_in_order() -> None:
    async def main() -> None:
        producer = FakeProducer(batch_size=200)
        box, _ = outbox(producer)
        t = table()
        for i in range(20):
            box.put(t, 0, b"k%02d" % i, b"x" * 40)
        await box.flush()
        assert len(producer.sent) > 1
        keys = [k for _, _, recs in producer.sent for k, _ in recs]
        assert keys == [b"k%02d" % i for i in range(20)]
        producer.ack()
        await asyncio.sleep(0)
        assert t.data.persisted == {0: 19}

    asyncio.run(main())


def test_a_failed_delivery_is_kept_for_the_commit_and_discard_drops_the_queue() -> None:
    async def main() -> None:
        producer = FakeProducer()
        box, deliveries = outbox(producer)
        t = table()
        box.put(t, 0, b"a", b"A")
        await box.flush()
        producer.futures[0].set_exception(RuntimeError("broker said no"))
        await deliveries.settle()
        assert [str(e) for e in deliveries.errors] == ["broker said no"]
        assert t.data.persisted == {}
        box.put(t, 0, b"b", b"B")
        box.send("changes", b"b", b"x")
        assert box.discard() == 2
        await box.flush()
        assert len(producer.sent) == 1 and b"b" not in t.data.data

    asyncio.run(main())


def test_rows_reach_the_store_only_after_their_records_reached_the_producer() -> None:
    async def main() -> None:
        producer = FakeProducer()

        async def refuse(*args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("producer closed")

        producer.send_batch = refuse  # type: ignore[method-assign]
        box, _ = outbox(producer)
        t = table()
        box.put(t, 0, b"a", b"A")
        with pytest.raises(RuntimeError):
            await box.flush()
        assert b"a" not in t.data.data

    asyncio.run(main())


class FakeRocksDB(RocksDBStore):  # type: ignore[misc]
    """Faust's RocksDB store over real rocksdict databases (one per partition), no Faust app."""

    def __init__(self, path: Any) -> None:
        self.where = path
        self._dbs: dict[int, Any] = {}
        self._key_index: dict[bytes, int] = {}

    def _open_for_partition(self, partition: int) -> Any:
        from rocksdict import Options, Rdict

        return Rdict(str(self.where / f"p{partition}"), Options(raw_mode=True))


def test_tablestore_on_rocksdb_reads_and_writes_the_partitions_database(tmp_path: Any) -> None:
    store = FakeRocksDB(tmp_path)
    t = SimpleNamespace(data=store)
    try:
        tablestore.write(t, 2, [(b"a", b"A"), (b"b", b"B"), (b"a", b"A2"), (b"b", None)])
        assert tablestore.get_many(t, 2, [b"a", b"b", b"c"]) == [b"A2", None, None]
        assert tablestore.get(t, 2, b"a") == b"A2"
        assert tablestore.get(t, 3, b"a") is None  # another partition's database
        assert tablestore.get_many(t, 3, []) == []
        assert store._key_index == {b"a": 2, b"b": 2}  # as Faust's `Store._set` keeps it
        assert store._dbs[2].get(b"a") == b"A2"
    finally:
        for db in store._dbs.values():
            db.close()
