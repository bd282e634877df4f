"""The change feed: every worker counts segment sizes and movement over the whole cluster.

`ChangeFeed` reads ``segment-changes`` (all partitions) from the beginning, outside the consumer
group, into a `stream.core.census.Census`; ``GET /segments`` and ``GET /segments/{id}`` answer
from it, so every worker gives the same cluster-wide sizes, shares and movement.
"""

from __future__ import annotations

import json
import logging

from stream.adapters.metrics import Metrics
from stream.config import Settings
from stream.core.census import Census

log = logging.getLogger(__name__)


class ChangeFeed:
    """Tails ``segment-changes`` into ``census`` until cancelled."""

    def __init__(self, settings: Settings, metrics: Metrics, bootstrap: list[str]) -> None:
        self.settings = settings
        self.metrics = metrics
        self.bootstrap = bootstrap
        self.census = Census()

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
            **aiokafka_security(settings),
        )
        await consumer.start()
        try:
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            while True:
                batch = await consumer.getmany(*tps, timeout_ms=500, max_records=5000)
                for records in batch.values():
                    for record in records:
                        self._apply(record.value)
        finally:
            await consumer.stop()

    def _apply(self, value: bytes | None) -> None:
        if value is None:
            return
        try:
            self.census.add_record(json.loads(value))
        except (ValueError, TypeError, KeyError):
            self.metrics.agent_errors.labels("change_feed").inc()
            log.error("unreadable segment-changes record skipped")
