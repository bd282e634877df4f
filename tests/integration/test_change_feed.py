"""Segment sizes without the topic's whole history (`stream.adapters.census`), over the broker.

Kafka drops ``segment-changes`` records after its retention (7 days by default); a worker that
counted sizes from the topic's beginning then saw what was left (38 of 1,500 customers, in a
consumer-side audit). The embedded broker keeps everything, so what is shown here is that a feed
started later goes on from the newest checkpoint and reads only the records after it, and counts
exactly what a feed that read everything counts.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from kafka import KafkaProducer

from stream.adapters.census import CHECKPOINT_KEY, ChangeFeed
from stream.adapters.embedded import EmbeddedBroker
from stream.adapters.metrics import Metrics
from stream.adapters.topics import census_topic, ensure_topics
from stream.core.census import Census
from stream.core.outputs import change_id, rfc3339_ms
from tests.factories import bare_settings
from tests.integration.harness import Names, read_topic

DAY = 86_400_000


def _change(cid: str, version: int, previous: int | None, current: int, t: int) -> bytes:
    def ref(s: int | None) -> dict[str, Any] | None:
        return None if s is None else {"segment_id": s, "segment_name": f"S{s}",
                                       "micro_segment_id": 10 * s}  # fmt: skip

    return json.dumps({"event_id": change_id(cid, 0, version), "customer_id": cid,
                       "version": version, "previous": ref(previous), "current": ref(current),
                       "reason": "new_customer" if previous is None else "behaviour",
                       "event_time": rfc3339_ms(t)}).encode()  # fmt: skip


async def _run_until(feed: ChangeFeed, done: Any, timeout: float = 30.0) -> None:
    task = asyncio.create_task(feed.run())
    try:
        async with asyncio.timeout(timeout):
            while not done():
                if task.done():
                    task.result()
                await asyncio.sleep(0.1)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def test_a_feed_started_later_goes_on_from_the_newest_checkpoint(
    broker: EmbeddedBroker, names: Names
) -> None:
    settings = bare_settings(broker=broker.url, broker_kind="tansu", **names.settings_kwargs())
    ensure_topics(settings, [broker.bootstrap])
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap)
    first = [_change(f"c{i}", 1, None, 1 + i % 3, i * 1000) for i in range(60)]
    for value in first:
        producer.send(settings.topic_segment_changes, value, key=b"k")
    producer.flush()

    feed = ChangeFeed(settings, Metrics(), [broker.bootstrap], tansu=True, checkpoint_every_s=0)
    asyncio.run(_run_until(feed, lambda: feed.read == 60))
    checkpoints = read_topic(broker.bootstrap, census_topic(settings), expect=1)
    assert checkpoints and all(r.key == CHECKPOINT_KEY for r in checkpoints)
    saved, positions = Census.restore(checkpoints[-1].value)
    assert saved.sizes() == {1: 20, 2: 20, 3: 20} and sum(positions.values()) == 60

    later = [_change(f"c{i}", 2, 1 + i % 3, 3, DAY + i) for i in range(10)]  # 10 move to 3
    for value in [*later, later[0]]:  # one re-sent: counted once
        producer.send(settings.topic_segment_changes, value, key=b"k")
    producer.flush()
    producer.close()

    again = ChangeFeed(settings, Metrics(), [broker.bootstrap], tansu=True, checkpoint_every_s=60)
    asyncio.run(_run_until(again, lambda: again.read == 11))
    assert again.restored and again.complete
    assert again.census.sizes() == {1: 16, 2: 17, 3: 27}
    assert again.census.changes == 70
    whole = Census()
    for value in [*first, *later]:
        whole.add_record(json.loads(value))
    assert again.census.checkpoint({}) == whole.checkpoint({})
