"""The change feed: every worker counts segment sizes and movement over the whole cluster.

`ChangeFeed` reads ``segment-changes`` (all partitions), outside the consumer group, into a
`stream.core.census.Census`; ``GET /segments`` and ``GET /segments/{id}`` answer from it, so every
worker gives the same cluster-wide sizes, shares and movement.

It does not need the topic's whole history. Every ``checkpoint_every_s`` (5 minutes) in which it
counted something, a worker whose count is complete writes the census, with the positions it has
read up to, to the compacted internal topic ``<app id>-census`` (`stream.adapters.topics.
census_topic`, key ``census``). A worker starting reads the newest checkpoint and goes on from its
positions; only without one (or when the topic's retention has dropped records past it) does it
read from the beginning. Kafka's default retention keeps ``segment-changes`` for 7 days: counted
from what was left, a worker started later saw 38 of 1,500 customers (a consumer-side audit). A
count that began after records were dropped is incomplete: such a worker says so in its log and
never writes a checkpoint, so it cannot replace a complete one.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from stream.adapters.metrics import Metrics
from stream.adapters.topics import census_topic, end_offset
from stream.config import Settings
from stream.core.census import Census

log = logging.getLogger(__name__)

CHECKPOINT_KEY = b"census"


class ChangeFeed:
    """Tails ``segment-changes`` into ``census`` until cancelled, checkpointing it."""

    def __init__(
        self, settings: Settings, metrics: Metrics, bootstrap: list[str], tansu: bool = False,
        checkpoint_every_s: float = 300.0,
    ) -> None:  # fmt: skip
        self.settings = settings
        self.metrics = metrics
        self.bootstrap = bootstrap
        self.tansu = tansu
        self.checkpoint_every_s = checkpoint_every_s
        self.census = Census()
        self.complete = True
        """The census counts every change since the first (else: retention had dropped some)."""
        self.restored = False
        """It went on from a checkpoint."""
        self.read = 0
        """``segment-changes`` records read by this feed."""

    async def run(self) -> None:
        """Consume until cancelled."""
        from aiokafka import AIOKafkaConsumer
        from aiokafka.structs import TopicPartition

        from stream.adapters.topics import aiokafka_security

        settings = self.settings
        tps = [
            TopicPartition(settings.topic_segment_changes, p) for p in range(settings.partitions)
        ]
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=None,
            enable_auto_commit=False,
            fetch_max_wait_ms=200,
            max_partition_fetch_bytes=4 * settings.max_message_bytes + 65_536,
            **aiokafka_security(settings),
        )
        await consumer.start()
        producer: Any = None
        try:
            positions = await self._start(consumer, tps)
            last, counted = time.monotonic(), False
            while True:
                batch = await consumer.getmany(*tps, timeout_ms=500, max_records=5000)
                for tp, records in batch.items():
                    for record in records:
                        self._apply(record.value)
                    if records:
                        positions[tp.partition] = records[-1].offset + 1
                        self.read += len(records)
                        counted = True
                due = time.monotonic() - last >= self.checkpoint_every_s
                if counted and due and self.complete:
                    producer = producer or await self._producer()
                    await producer.send_and_wait(
                        census_topic(settings), self.census.checkpoint(positions),
                        key=CHECKPOINT_KEY,
                    )  # fmt: skip
                    last, counted = time.monotonic(), False
        finally:
            await consumer.stop()
            if producer is not None:
                await producer.stop()

    async def _start(self, consumer: Any, tps: list[Any]) -> dict[int, int]:
        """Assign ``tps`` at the newest usable checkpoint's positions, else at the beginning."""
        saved = await self._newest_checkpoint(consumer)
        consumer.assign(tps)
        first = {tp: 0 for tp in tps} if self.tansu else await consumer.beginning_offsets(tps)
        if saved is not None:
            census, positions = saved
            usable = set(positions) == {tp.partition for tp in tps} and all(
                positions[tp.partition] >= first[tp] for tp in tps
            )
            if usable:
                self.census, self.restored = census, True
                for tp in tps:
                    consumer.seek(tp, positions[tp.partition])
                log.info("segment sizes: went on from a checkpoint (%d changes)", census.changes)
                return dict(positions)
            log.warning("segment sizes: the newest checkpoint does not fit the topic; recounting")
        self.complete = all(first[tp] == 0 for tp in tps)
        if not self.complete:
            log.warning(
                "segment sizes count only the changes %s still holds: its retention has dropped "
                "older ones and no checkpoint covers them (README, HTTP)",
                self.settings.topic_segment_changes,
            )
        await consumer.seek_to_beginning(*tps)
        return {tp.partition: int(first[tp]) for tp in tps}

    async def _newest_checkpoint(self, consumer: Any) -> tuple[Census, dict[int, int]] | None:
        from aiokafka.structs import TopicPartition

        tp = TopicPartition(census_topic(self.settings), 0)
        consumer.assign([tp])
        end = await end_offset(consumer, tp, self.bootstrap, self.tansu)
        await consumer.seek_to_beginning(tp)
        newest: bytes | None = None
        deadline = time.monotonic() + 30.0
        while end > 0 and await consumer.position(tp) < end:
            if time.monotonic() > deadline:
                log.warning("segment sizes: checkpoints not read within 30 s; recounting")
                return None
            batch = await consumer.getmany(tp, timeout_ms=500)
            for record in batch.get(tp, []):
                if record.key == CHECKPOINT_KEY and record.value:
                    newest = record.value
        if newest is None:
            return None
        try:
            return Census.restore(newest)
        except ValueError:
            self.metrics.agent_errors.labels("change_feed").inc()
            log.error("unreadable census checkpoint skipped")
            return None

    async def _producer(self) -> Any:
        from aiokafka import AIOKafkaProducer

        from stream.adapters.topics import aiokafka_security

        producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap,
            max_request_size=4 * self.settings.max_message_bytes,
            **aiokafka_security(self.settings),
        )
        await producer.start()
        return producer

    def _apply(self, value: bytes | None) -> None:
        if value is None:
            return
        try:
            self.census.add_record(json.loads(value))
        except (ValueError, TypeError, KeyError):
            self.metrics.agent_errors.labels("change_feed").inc()
            log.error("unreadable segment-changes record skipped")
