"""The demo's inputs from the running system: the worker's HTTP views and the output topics.

`TopicFeed` reads ``segment-changes`` and ``segment-events`` from their beginning in a background
thread (kafka-python, outside any consumer group) into a `Feed`; `scrape` and `live_segments`
read ``/metrics`` and ``/segments`` of the worker. Network errors are answered with ``None``: the
worker may be starting or stopping, and the view simply keeps what it last had.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.request
from typing import Any

from stream.config import Settings
from stream.demo.state import Feed, Metrics, parse_metrics

log = logging.getLogger(__name__)


def http_get(url: str, timeout: float = 3.0) -> bytes | None:
    """The body of a 200 response, or None (any error, any other status)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:  # noqa: S310 (our loopback URL)
            return r.read() if r.status == 200 else None
    except OSError:
        return None


def scrape(base_url: str) -> Metrics | None:
    """The worker's ``/metrics``, parsed."""
    body = http_get(f"{base_url}/metrics")
    return parse_metrics(body.decode()) if body is not None else None


def live_segments(base_url: str) -> list[dict[str, Any]] | None:
    """The worker's ``GET /segments`` list."""
    body = http_get(f"{base_url}/segments")
    if body is None:
        return None
    try:
        segments = json.loads(body).get("segments")
    except (ValueError, AttributeError):
        return None
    return segments if isinstance(segments, list) else None


class TopicFeed:
    """Consume ``segment-changes`` and ``segment-events`` into ``feed`` until `stop`.

    Parameters
    ----------
    bootstrap
        ``host:port`` of the brokers.
    settings
        Topic names and client security.
    feed
        Where the records go; guarded by ``lock``.
    lock
        Held while a record is added (the view reads ``feed`` under it).
    """

    def __init__(
        self, bootstrap: list[str], settings: Settings, feed: Feed, lock: threading.Lock
    ) -> None:
        self.bootstrap = bootstrap
        self.settings = settings
        self.feed = feed
        self.lock = lock
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="demo-feed", daemon=True)

    def start(self) -> TopicFeed:
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        try:
            self._consume()
        except Exception as exc:  # shown in the summary's absence of changes; logged here
            self.error = exc
            log.exception("the demo's topic feed stopped")

    def _consume(self) -> None:
        from kafka import KafkaConsumer, TopicPartition

        from stream.adapters.topics import kafka_python_security

        s = self.settings
        handlers = {
            s.topic_segment_changes: self.feed.add_change,
            s.topic_segment_events: self.feed.add_event,
        }
        consumer = KafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=100,
            client_id=f"{s.app_id}-demo-feed",
            **kafka_python_security(s),
        )
        try:
            tps = []
            for topic in handlers:
                parts: set[int] = set()
                deadline = time.monotonic() + 30
                while not parts and time.monotonic() < deadline and not self._stop.is_set():
                    parts = consumer.partitions_for_topic(topic) or set()
                    if not parts:
                        time.sleep(0.2)
                tps += [TopicPartition(topic, p) for p in sorted(parts)]
            consumer.assign(tps)
            consumer.seek_to_beginning(*tps)
            while not self._stop.is_set():
                batch = consumer.poll(timeout_ms=200)
                for tp, records in batch.items():
                    with self.lock:
                        for r in records:
                            handlers[tp.topic](r.value)
        finally:
            consumer.close()
