"""Replay into Kafka: filter, route (by stream, or all to one topic), pace, produce, count.

By stream, each record goes to its stream's input topic by ``type``; one that cannot be routed
(not JSON, not an object, unknown type) goes as it is to the clickstream topic, so the worker
dead-letters it like any bad input. The key is the record's own Kafka key (topic sources) or
else the value's ``customer_id``. Record timestamps are the producer's (now), as for any new
input, so the worker's future-timestamp check judges replayed events as it judges live ones.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from stream.config import Settings
from stream.replay_filter import Attribution, ReplayFilter, attribute
from stream.replay_source import Item


@dataclass(frozen=True, slots=True)
class Routed:
    """Where one line goes."""

    topic: str
    key: bytes | None
    value: bytes
    ts_ms: int | None
    routable: bool


def route(line: bytes, topics: dict[str, str], fallback: str) -> Routed:
    """Decide topic and key for one line from its ``type`` and ``customer_id``."""
    a = attribute(line)
    key = a.customer.encode() if a.customer is not None else None
    if a.stream is None:
        return Routed(fallback, key, line, a.ts_ms, False)
    return Routed(topics[a.stream.value], key, line, a.ts_ms, True)


@dataclass
class ReplaySummary:
    """Counts of one replay into Kafka."""

    lines: int = 0
    produced: Counter[str] = field(default_factory=Counter)
    filtered: Counter[str] = field(default_factory=Counter)
    streams: Counter[str] = field(default_factory=Counter)
    unroutable: int = 0
    seconds: float = 0.0

    @property
    def sent(self) -> int:
        """Records produced."""
        return sum(self.produced.values())

    def as_dict(self) -> dict[str, Any]:
        """The summary as one JSON-able object."""
        return {
            "read": self.lines,
            "filtered_out": dict(sorted(self.filtered.items())),
            "sent": self.sent,
            "sent_by_topic": dict(sorted(self.produced.items())),
            "sent_by_stream": dict(sorted(self.streams.items())),
            "unroutable": self.unroutable,
            "seconds": round(self.seconds, 3),
            "rate_per_s": round(self.lines / self.seconds) if self.seconds > 0 else None,
        }

    def render(self) -> str:
        """One paragraph for people."""
        rate = self.lines / self.seconds if self.seconds > 0 else 0.0
        per_topic = ", ".join(f"{t}={n}" for t, n in sorted(self.produced.items())) or "none"
        text = (
            f"replayed {self.lines} lines in {self.seconds:.1f} s ({rate:,.0f}/s): "
            f"{self.sent} sent ({per_topic})"
        )
        if self.filtered:
            why = ", ".join(f"{k}={n}" for k, n in sorted(self.filtered.items()))
            text += f"; {sum(self.filtered.values())} filtered out ({why})"
        if self.streams:
            text += "; by stream: " + ", ".join(f"{k}={n}" for k, n in sorted(self.streams.items()))
        return text + f"; {self.unroutable} unroutable (sent as-is to be dead-lettered)"


class Progress:
    """A one-line progress bar on stderr with rate and ETA (only on a terminal)."""

    def __init__(self, total: int | None, enabled: bool = True) -> None:
        self.total = total
        self.enabled = enabled and sys.stderr.isatty()
        self.started = time.monotonic()
        self._last = 0.0

    def update(self, done: int, force: bool = False, note: str = "") -> None:
        """Redraw (at most 5 times a second unless ``force``, which also ends the line)."""
        now = time.monotonic()
        if not self.enabled or (not force and now - self._last < 0.2):
            return
        self._last = now
        sys.stderr.write("\r" + self.line(done, now - self.started, note) + "\x1b[K")
        if force:
            sys.stderr.write("\n")
        sys.stderr.flush()

    def line(self, done: int, elapsed: float, note: str = "") -> str:
        """The text of the bar after ``done`` records in ``elapsed`` seconds."""
        rate = done / max(elapsed, 1e-9)
        if self.total:
            frac = min(done / self.total, 1.0)
            bar = "#" * int(30 * frac) + "-" * (30 - int(30 * frac))
            eta = max(self.total - done, 0) / rate if rate > 0 else 0.0
            text = f"[{bar}] {done}/{self.total} {rate:,.0f}/s ETA {eta:.0f}s"
        else:
            text = f"{done} lines {rate:,.0f}/s"
        return f"{text} {note}" if note else text


class Pacer:
    """Waits until an event is due: event-time offsets from the first timed event, ÷ ``speed``.

    An event whose time is earlier than the pace already reached (out of order, or from another
    partition) is due at once.
    """

    def __init__(
        self,
        speed: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.speed = speed
        self._clock, self._sleep = clock, sleep
        self._first: int | None = None
        self._started = 0.0

    def wait(self, ts_ms: int | None) -> None:
        """Sleep until the event at ``ts_ms`` is due (no time: due now)."""
        if ts_ms is None:
            return
        if self._first is None:
            self._first, self._started = ts_ms, self._clock()
            return
        delay = self._started + (ts_ms - self._first) / 1000.0 / self.speed - self._clock()
        if delay > 0:
            self._sleep(delay)


def make_producer(bootstrap: list[str], settings: Settings) -> Any:
    """A kafka-python producer for replays (acks=all, large requests allowed)."""
    from kafka import KafkaProducer

    from stream.adapters.topics import kafka_python_security

    return KafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        linger_ms=5,
        batch_size=512 * 1024,
        max_request_size=4 * settings.max_message_bytes + 65_536,
        client_id=f"{settings.app_id}-replay",
        **kafka_python_security(settings),
    )


def produce_items(
    items: Iterable[Item],
    producer: Any,
    settings: Settings,
    speed: float | None = None,
    progress: Progress | None = None,
    keep: ReplayFilter | None = None,
    to_topic: str | None = None,
) -> ReplaySummary:
    """Filter, route and produce records; pace by event time at ``speed``× when given.

    With ``to_topic`` every kept record goes there unchanged (key and headers kept); the value
    is then decoded only when the filter or the pacing needs it.
    """
    topics = settings.input_topics
    fallback = settings.topic_clickstream
    keep = keep if keep is not None and keep.active else None
    pacer = Pacer(speed) if speed else None
    summary = ReplaySummary()
    started = time.monotonic()
    send = producer.send
    for item in items:
        summary.lines += 1
        value = item.value
        a: Attribution | None = None
        if to_topic is None or pacer or (keep and keep.needs_value(item.key is not None)):
            a = attribute(value)
        if keep and (why := keep.drop(item.key, item.timestamp_ms, a)):
            summary.filtered[why] += 1
        else:
            if pacer and a is not None:
                pacer.wait(a.ts_ms)
            key = item.key
            if key is None and a is not None and a.customer is not None:
                key = a.customer.encode()
            if to_topic is not None:
                topic = to_topic
            elif a is not None and a.stream is not None:
                topic = topics[a.stream.value]
            else:
                topic, summary.unroutable = fallback, summary.unroutable + 1
            headers = list(item.headers) if item.headers else None
            send(topic, key=key, value=value, headers=headers)
            summary.produced[topic] += 1
            if a is not None:
                summary.streams[a.stream.value if a.stream else "unattributed"] += 1
        if progress is not None and progress.enabled:
            progress.update(summary.lines, note=f"sent {summary.sent}")
    producer.flush()
    summary.seconds = time.monotonic() - started
    if progress:
        progress.update(summary.lines, force=True, note=f"sent {summary.sent}")
    return summary


def produce_lines(
    lines: Iterable[bytes],
    producer: Any,
    settings: Settings,
    speed: float | None = None,
    progress: Progress | None = None,
) -> ReplaySummary:
    """Produce lines to their topics by stream; pace by event time at ``speed``× when given."""
    items = (Item("", n, None, line) for n, line in enumerate(lines, 1))
    return produce_items(items, producer, settings, speed, progress)
