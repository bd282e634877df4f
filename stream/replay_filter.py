"""Replay filters: by customer, stream and time, deciding on as little of a record as possible.

A record is *attributed* to a customer, a stream and an event time when it says so:

* customer: the Kafka key when the record has one (topic sources; that is what Kafka partitions
  by), else the value's ``customer_id`` string;
* stream: the stream of the value's ``type`` (`stream.core.events.STREAM_OF_TYPE`);
* event time: the value's ``ts`` (RFC 3339 with an offset), or with ``record_time`` the Kafka
  record timestamp.

A filter drops a record only on an attribute the record has. A record that cannot be attributed
for a filter (bytes that are not JSON, no ``customer_id``, an unknown ``type``, a missing or bad
``ts``) passes that filter, so a replay still delivers it to be dead-lettered. A record attributed
to another customer, stream or time is dropped even if it is otherwise invalid.

The value is decoded (once) only when a filter, the routing by stream or the pacing needs it;
a customer filter on keyed records and a record-time range never decode it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from stream.core.events import STREAM_OF_TYPE, Stream
from stream.errors import ReplayError


@dataclass(frozen=True, slots=True)
class Attribution:
    """What a record's value says about itself (``None``: it does not say, or not validly)."""

    customer: str | None
    stream: Stream | None
    ts_ms: int | None


UNATTRIBUTED = Attribution(None, None, None)


def parse_ts_ms(text: str) -> int | None:
    """Epoch milliseconds of an RFC 3339 time with an offset; ``None`` if it is not one."""
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    if when.tzinfo is None:
        return None
    return int(when.timestamp() * 1000)


def attribute(value: bytes | None) -> Attribution:
    """Decode a value once and read its customer, stream and event time."""
    if not value:
        return UNATTRIBUTED
    try:
        obj = json.loads(value)
    except ValueError:  # (UnicodeDecodeError is one)
        return UNATTRIBUTED
    if not isinstance(obj, dict):
        return UNATTRIBUTED
    cid, type_, ts = obj.get("customer_id"), obj.get("type"), obj.get("ts")
    return Attribution(
        cid if isinstance(cid, str) else None,
        STREAM_OF_TYPE.get(type_) if isinstance(type_, str) else None,
        parse_ts_ms(ts) if isinstance(ts, str) else None,
    )


def rfc3339_ms(text: str, flag: str) -> int:
    """A command-line time (RFC 3339 with an offset) in epoch ms; `ReplayError` naming ``flag``."""
    ms = parse_ts_ms(text)
    if ms is None:
        raise ReplayError(f"{flag} must be RFC 3339 with an offset (e.g. 2025-01-31T00:00:00Z)")
    return ms


_COMMENT = re.compile(r"(?:^|\s)#.*")
"""A ``#`` comment: a whole line, or the rest of a line after whitespace (an id may hold ``#``)."""


def read_ids(path: Path) -> list[str]:
    """Customer ids from a file: one per line, surrounding whitespace and ``#`` comments (whole
    lines, or after the id and a space) stripped, blank lines skipped."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ReplayError(f"cannot read {path}: {exc}") from exc
    except UnicodeDecodeError:
        raise ReplayError(
            f"--customers-file {path} is not UTF-8 text: give a text file, one customer id a line"
        ) from None
    return [s for line in text.splitlines() if (s := _COMMENT.sub("", line, count=1).strip())]


@dataclass(frozen=True)
class ReplayFilter:
    """Which records a replay keeps. Time range ``[since_ms, until_ms)``; empty: keep all."""

    customers: frozenset[str] | None = None
    streams: frozenset[Stream] | None = None
    since_ms: int | None = None
    until_ms: int | None = None
    record_time: bool = False

    @property
    def active(self) -> bool:
        """Whether any record can be dropped."""
        return bool(
            self.customers is not None
            or self.streams is not None
            or self.since_ms is not None
            or self.until_ms is not None
        )

    @property
    def timed(self) -> bool:
        """Whether a time range is set."""
        return self.since_ms is not None or self.until_ms is not None

    def needs_value(self, keyed: bool) -> bool:
        """Whether deciding needs the decoded value (``keyed``: records carry Kafka keys)."""
        return bool(
            (self.customers is not None and not keyed)
            or self.streams is not None
            or (self.timed and not self.record_time)
        )

    def drop(
        self,
        key: bytes | None,
        record_ts_ms: int | None,
        attribution: Attribution | None,
    ) -> str | None:
        """Which filter drops a record (``"customer"``, ``"stream"``, ``"time"``), or ``None``.

        ``attribution`` is the decoded value's (`attribute`); it may be ``None`` only when
        `needs_value` is false for this record.
        """
        if self.customers is not None:
            if key is not None:
                customer: str | None = key.decode("utf-8", "replace")
            else:
                customer = attribution.customer if attribution else None
            if customer is not None and customer not in self.customers:
                return "customer"
        stream = attribution.stream if attribution else None
        if self.streams is not None and stream is not None and stream not in self.streams:
            return "stream"
        if self.timed:
            t = record_ts_ms if self.record_time else (attribution.ts_ms if attribution else None)
            if t is not None and not self._in_range(t):
                return "time"
        return None

    def _in_range(self, t: int) -> bool:
        return (self.since_ms is None or t >= self.since_ms) and (
            self.until_ms is None or t < self.until_ms
        )

    def describe(self) -> dict[str, object]:
        """The filter as JSON-able settings (for reports)."""
        return {
            "customers": len(self.customers) if self.customers is not None else None,
            "streams": sorted(self.streams) if self.streams is not None else None,
            "since_ms": self.since_ms,
            "until_ms": self.until_ms,
            "time": "record" if self.record_time else "event",
        }
