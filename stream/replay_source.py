"""Replay sources: records as `Item`; a topic's offset range (files: `stream.replay`).

A topic range is read with a group-less kafka-python consumer (nothing is committed, no group
joins). Its end is each partition's high watermark as the first Fetch response reports it, never
ListOffsets: that is right on Kafka and on the embedded broker alike (whose ListOffsets(LATEST)
is wrong for multi-record batches, see docs/BROKER.md). Records produced after the replay started are
not read, so a replay always ends.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from stream.config import Settings
from stream.errors import ReplayError


@dataclass(frozen=True, slots=True)
class Item:
    """One record to replay: where it comes from, its key, value and (topics) time and headers."""

    origin: str
    position: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int | None = None
    headers: tuple[tuple[str, bytes], ...] = ()


def parse_offsets(values: list[str] | None, flag: str) -> tuple[int | None, dict[int, int]]:
    """``N`` (every partition) and ``P:N`` (partition P) offsets → (default, per partition)."""
    default: int | None = None
    per: dict[int, int] = {}
    for value in values or []:
        part, sep, offset = value.rpartition(":")
        try:
            n = int(offset)
            p = int(part) if sep else None
        except ValueError:
            raise ReplayError(f"{flag} takes OFFSET or PARTITION:OFFSET, got {value!r}") from None
        if n < 0 or (p is not None and p < 0):
            raise ReplayError(f"{flag} takes non-negative numbers, got {value!r}")
        if p is None:
            default = n
        else:
            per[p] = n
    return default, per


@dataclass(frozen=True)
class OffsetRange:
    """Which partitions, and which offsets ``[start, end)`` of each, to read (``None``: all)."""

    partitions: frozenset[int] | None = None
    start: int | None = None
    start_at: tuple[tuple[int, int], ...] = ()
    end: int | None = None
    end_at: tuple[tuple[int, int], ...] = ()

    @classmethod
    def from_args(
        cls, partitions: list[int] | None, starts: list[str] | None, ends: list[str] | None
    ) -> OffsetRange:
        """From ``--partition``, ``--start-offset`` and ``--end-offset`` values."""
        start, start_at = parse_offsets(starts, "--start-offset")
        end, end_at = parse_offsets(ends, "--end-offset")
        return cls(
            frozenset(partitions) if partitions else None,
            start,
            tuple(sorted(start_at.items())),
            end,
            tuple(sorted(end_at.items())),
        )

    def start_of(self, partition: int) -> int | None:
        """First offset to read of ``partition`` (``None``: its beginning)."""
        return dict(self.start_at).get(partition, self.start)

    def end_of(self, partition: int) -> int | None:
        """Offset to stop before in ``partition`` (``None``: its high watermark)."""
        return dict(self.end_at).get(partition, self.end)


class TopicRange:
    """The records of ``topic`` in an `OffsetRange`, partitions interleaved as fetched.

    Call `plan` (done by `total` and iteration) to learn every partition's end; `total` is the
    number of offsets in the range (an upper bound on records: transaction markers use offsets).
    """

    def __init__(
        self,
        bootstrap: list[str],
        settings: Settings,
        topic: str,
        offsets: OffsetRange,
        stall_s: float = 30.0,
    ) -> None:
        self.topic = topic
        self.offsets = offsets
        self.stall_s = stall_s
        self._bootstrap = bootstrap
        self._settings = settings
        self._consumer: Any = None
        self._closed = False
        self._tps: list[Any] = []
        self._first: dict[Any, int] = {}
        self._stop: dict[Any, int] = {}
        self._buffer: deque[Any] = deque()

    def plan(self) -> None:
        """Assign the partitions, seek to the starts, and fetch until every end is known."""
        if self._consumer is not None:
            return
        from kafka import KafkaConsumer, TopicPartition

        from stream.adapters.topics import kafka_python_security, reaching

        with reaching(self._bootstrap):
            consumer = KafkaConsumer(
                bootstrap_servers=self._bootstrap,
                group_id=None,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                fetch_max_wait_ms=100,  # also bounds the embedded broker's non-waking long poll
                max_partition_fetch_bytes=4 * self._settings.max_message_bytes + 65_536,
                client_id=f"{self._settings.app_id}-replay",
                **kafka_python_security(self._settings),
            )
        self._consumer = consumer
        parts = consumer.partitions_for_topic(self.topic)
        if not parts:
            consumer.close()
            raise ReplayError(f"topic {self.topic!r} does not exist (or has no partitions)")
        wanted = self.offsets.partitions
        if wanted is not None and not wanted <= parts:
            consumer.close()
            missing = ", ".join(str(p) for p in sorted(wanted - parts))
            raise ReplayError(f"topic {self.topic!r} has no partition {missing}")
        self._tps = [TopicPartition(self.topic, p) for p in sorted(wanted or parts)]
        consumer.assign(self._tps)
        for tp in self._tps:
            start = self.offsets.start_of(tp.partition)
            if start is None:
                consumer.seek_to_beginning(tp)
            else:
                consumer.seek(tp, start)
            self._first[tp] = consumer.position(tp)
        deadline = time.monotonic() + self.stall_s
        while len(self._stop) < len(self._tps):
            self._fetch()
            if time.monotonic() > deadline:
                consumer.close()
                raise ReplayError(f"no Fetch answer for {self.topic!r} in {self.stall_s:.0f} s")

    def _fetch(self) -> None:
        """Poll once: buffer the records, learn ends, pause partitions that are done."""
        consumer = self._consumer
        batch = consumer.poll(timeout_ms=200)
        for tp in self._tps:
            if tp not in self._stop and (hw := consumer.highwater(tp)) is not None:
                end = self.offsets.end_of(tp.partition)
                self._stop[tp] = hw if end is None else min(end, hw)
        for tp, records in batch.items():
            # (a start past the end is reset to the beginning by the consumer: skip up to it)
            first, stop = self._first[tp], self._stop.get(tp)
            self._buffer.extend(
                r for r in records if r.offset >= first and (stop is None or r.offset < stop)
            )
        for tp, stop in self._stop.items():
            if consumer.position(tp) >= stop and tp not in consumer.paused():
                consumer.pause(tp)

    @property
    def total(self) -> int:
        """Offsets in the range (records, transaction markers aside)."""
        self.plan()
        return sum(max(0, self._stop[tp] - self._first[tp]) for tp in self._tps)

    @property
    def ends(self) -> dict[int, tuple[int, int]]:
        """Partition → ``(start, end)`` offsets of the range."""
        self.plan()
        return {tp.partition: (self._first[tp], self._stop[tp]) for tp in self._tps}

    def __iter__(self) -> Iterator[Item]:
        self.plan()
        consumer = self._consumer
        origin = {tp: f"{tp.topic}:{tp.partition}" for tp in self._tps}
        last_progress = time.monotonic()
        try:
            while True:
                while self._buffer:
                    r = self._buffer.popleft()
                    yield Item(
                        origin.get((r.topic, r.partition), r.topic),
                        r.offset,
                        r.key,
                        r.value,
                        r.timestamp,
                        tuple((k, v) for k, v in r.headers or ()),
                    )
                    last_progress = time.monotonic()
                if all(consumer.position(tp) >= self._stop[tp] for tp in self._tps):
                    return
                if time.monotonic() - last_progress > self.stall_s:
                    raise ReplayError(
                        f"reading {self.topic!r} made no progress in {self.stall_s:.0f} s"
                    )
                self._fetch()
        finally:
            self.close()

    def close(self) -> None:
        """Close the consumer (idempotent)."""
        if self._consumer is not None and not self._closed:
            self._closed = True
            self._consumer.close()
