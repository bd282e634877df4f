"""Client-side settings and workarounds for the embedded Tansu broker, and only for it.

Applied only when microseg starts its own broker (no ``MICROSEG_BROKER``); nothing in the
production path depends on them. Each item answers a measured quirk in docs/BROKER.md:

* JoinGroup is held for session_timeout / 2 → short session, heartbeat and rebalance timeouts
  (worker start to first event: 31 s → 4 s).
* Fetch long-poll sleeps for the whole ``fetch_max_wait_ms``, which Faust hard-codes to 1,500 ms
  (``faust/transport/drivers/aiokafka.py: _create_worker_consumer``) → capped at 20 ms
  (send → processed median: 398 ms → 5 ms at 100 ms; a Faust count agent at 1,500 records/s:
  median 39 → 22 ms, p99 ≈ 85 → 50 ms from 100 to 20 ms). A fetch that finds nothing costs
  the broker a wake-up per 20 ms per consumer instead of per 100 ms; a fetch that finds data
  returns at once either way.
* ListOffsets(LATEST) returns the base offset of the newest batch + 1 → the end offsets that table
  recovery reads come from the high watermark of a Fetch response instead (`true_end_offsets`).
  Unpatched, recovery silently drops records (memory store) or raises a false
  ``ConsistencyError`` (RocksDB).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

import faust
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition
from faust.transport.drivers import aiokafka as fa

from stream.adapters import fetch

FETCH_MAX_WAIT_MS = 20


def faust_settings() -> dict[str, Any]:
    """Faust settings overrides for Tansu."""
    return {
        "broker_session_timeout": 6.0,
        "broker_heartbeat_interval": 1.0,
        "broker_rebalance_timeout": 6.0,
    }


async def true_end_offsets(
    bootstrap: list[str], partitions: Iterable[Any], timeout: float = 10.0
) -> dict[TopicPartition, int]:
    """End offset of each partition, from a Fetch response's high watermark.

    ListOffsets gives a lower bound; fetching from just below it always returns a batch, and the
    response carries the true high watermark.
    """
    tps = [TopicPartition(tp.topic, tp.partition) for tp in partitions]
    if not tps:
        return {}
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        fetch_max_wait_ms=10,
        max_partition_fetch_bytes=1,
    )
    await consumer.start()
    try:
        consumer.assign(tps)
        listed = await consumer.end_offsets(tps)
        result: dict[TopicPartition, int] = {}
        todo = []
        for tp in tps:
            if listed[tp] <= 0:
                result[tp] = listed[tp]
            else:
                consumer.seek(tp, listed[tp] - 1)
                todo.append(tp)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while todo:
            if loop.time() > deadline:
                raise TimeoutError(f"no fetch response for {todo}")
            await consumer.getmany(*todo, timeout_ms=100)
            for tp in list(todo):
                hw = consumer.highwater(tp)
                if hw is not None:
                    result[tp] = max(hw, listed[tp])
                    todo.remove(tp)
        return result
    finally:
        await consumer.stop()


class TansuConsumerThread(fa.AIOKafkaConsumerThread):
    """Faust's aiokafka consumer thread with the fetch-wait cap and true end offsets."""

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS  # the Fetcher is built from it at start
        return consumer

    async def _highwaters(self, partitions: Any) -> Any:
        if self.consumer.in_transaction:
            return await super()._highwaters(partitions)
        transport: Any = self.transport
        bootstrap = fa.server_list(transport.url, transport.default_port)
        return await true_end_offsets(bootstrap, list(partitions))


class TansuConsumer(fetch.AlignedConsumer):
    """The worker's consumer (`stream.adapters.fetch`) using `TansuConsumerThread`."""

    def _new_consumer_thread(self) -> Any:
        return TansuConsumerThread(self, loop=self.loop, beacon=self.beacon)


class TansuTransport(fetch.AlignedTransport):
    """Transport whose consumer is `TansuConsumer`."""

    Consumer = TansuConsumer


def apply(app: faust.App) -> faust.App:
    """Make ``app`` use the Tansu consumer; call right after ``faust.App(...)``."""
    return fetch.apply(app, TansuTransport)
