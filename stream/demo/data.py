"""The demo's input: the bundled files on one timeline, split into a backfill and a live part.

The bundled files are separate populations from different years (2008 … 2025, see
``stream/data/demo/SOURCES.md``). To make one customer base that is active at the same time, each
file is moved forward in time by whole weeks (so weekday and local time of day stay what they
were) until its last event falls in the last week of the newest file, the simulated one; only the
``ts`` field of a line is rewritten. The files are then merged by event time. Lines without a
usable timestamp (the malformed ones) go first, unchanged.

The demo sends what is older than the last ``live_days`` of the timeline as fast as it can (the
backfill: a year or two of history), then paces the rest by event time.

>>> week_shift(last_ms=0, end_ms=20 * DAY_MS)
1209600000
>>> shift_line(b'{"ts":"2008-03-03T09:00:00+00:00","type":"x"}', 2 * WEEK_MS)
(1205744400000, b'{"ts":"2008-03-17T09:00:00+00:00","type":"x"}')
>>> shift_line(b'{"ts":"2025-01-05T19:00:00.123-05:00"}', WEEK_MS)[1]
b'{"ts":"2025-01-12T19:00:00.123000-05:00"}'
>>> shift_line(b'not json', WEEK_MS)
(None, b'not json')
"""

from __future__ import annotations

import heapq
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from importlib import resources
from pathlib import Path

from stream.errors import MicrosegError
from stream.replay import open_lines, route

_NO_TOPICS = {"clickstream": "c", "email": "e", "purchases": "p"}


def event_ms(line: bytes) -> int | None:
    """The event time of a line (Unix ms), as the replay paces by; None without one."""
    return route(line, _NO_TOPICS, "c").ts_ms


@dataclass(frozen=True, slots=True)
class DemoFile:
    """One replay file: its line count and the event-time span of its routable lines."""

    path: Path
    lines: int
    first_ms: int | None
    last_ms: int | None

    @property
    def span_s(self) -> float:
        """Event time from the first to the last event, in seconds (0 without timestamps)."""
        if self.first_ms is None or self.last_ms is None:
            return 0.0
        return max(self.last_ms - self.first_ms, 0) / 1000.0


def bundled_files() -> list[Path]:
    """The bundled demo files (real data, the simulated file, the malformed lines)."""
    root = Path(str(resources.files("stream.data.demo")))
    files = sorted(root.glob("*.jsonl.gz")) + sorted(root.glob("*.jsonl"))
    if not files:
        raise MicrosegError(f"no demo data found in {root}")
    return files


def scan(path: Path, limit: int | None = None) -> DemoFile:
    """Count the lines of ``path`` (at most ``limit``) and find their event-time span."""
    n = 0
    first = last = None
    for line in open_lines(path):
        if limit is not None and n >= limit:
            break
        n += 1
        ts = event_ms(line)
        if ts is not None:
            first = ts if first is None else min(first, ts)
            last = ts if last is None else max(last, ts)
    return DemoFile(path, n, first, last)


DAY_MS = 86_400_000
WEEK_MS = 7 * DAY_MS


def week_shift(last_ms: int, end_ms: int) -> int:
    """Whole weeks (in ms) that move ``last_ms`` to within the week before ``end_ms``."""
    return max(end_ms - last_ms, 0) // WEEK_MS * WEEK_MS


def shift_line(line: bytes, shift_ms: int) -> tuple[int | None, bytes]:
    """``(event time after the shift, line)``; only the ``ts`` value changes. Lines without a
    readable ``ts`` come back as they are, with ``None``."""
    try:
        obj = json.loads(line)
        ts = obj["ts"]
        when = datetime.fromisoformat(ts)
    except (ValueError, TypeError, KeyError):
        return None, line
    if not isinstance(ts, str) or when.tzinfo is None:
        return None, line
    if shift_ms:
        moved = (when + timedelta(milliseconds=shift_ms)).isoformat()
        field = b'"ts":' + json.dumps(ts).encode()
        if field in line:  # compact JSON, as the bundled files: keep every other byte
            line = line.replace(field, b'"ts":' + json.dumps(moved).encode(), 1)
        else:
            obj["ts"] = moved
            line = json.dumps(obj, separators=(",", ":")).encode()
        when += timedelta(milliseconds=shift_ms)
    return int(when.timestamp() * 1000), line


def _limited(path: Path, limit: int | None) -> Iterator[bytes]:
    for n, line in enumerate(open_lines(path)):
        if limit is not None and n >= limit:
            return
        yield line


def _shifted(f: DemoFile, shift_ms: int, limit: int | None) -> Iterator[tuple[int, bytes]]:
    for line in _limited(f.path, limit):
        t, out = shift_line(line, shift_ms)
        yield (t if t is not None else 0), out


def _time(item: tuple[int, bytes]) -> int:
    return item[0]


def timeline(files: list[DemoFile], limit: int | None = None) -> list[tuple[int | None, bytes]]:
    """Every line of ``files`` (at most ``limit`` per file) as ``(event time, line)``: the
    lines without timestamps first, then the files aligned on the newest and merged by time."""
    untimed = [f for f in files if f.last_ms is None]
    timed = [f for f in files if f.last_ms is not None]
    out: list[tuple[int | None, bytes]] = [
        (None, line) for f in untimed for line in _limited(f.path, limit)
    ]
    if timed:
        end = max(f.last_ms or 0 for f in timed)
        streams = [_shifted(f, week_shift(f.last_ms or 0, end), limit) for f in timed]
        merged: Iterator[tuple[int, bytes]] = heapq.merge(*streams, key=_time)
        out.extend(merged)
    return out


def split_live(
    lines: list[tuple[int | None, bytes]], live_days: float
) -> tuple[list[bytes], list[bytes]]:
    """``(backfill, live)``: the live part is the last ``live_days`` of event time.

    >>> split_live([(None, b"bad"), (0, b"old"), (5 * DAY_MS, b"new")], live_days=2)
    ([b'bad', b'old'], [b'new'])
    """
    times = [t for t, _ in lines if t is not None]
    if not times:
        return [line for _, line in lines], []
    live_from = max(times) - live_days * DAY_MS
    back = [line for t, line in lines if t is None or t < live_from]
    live = [line for t, line in lines if t is not None and t >= live_from]
    return back, live


def span_s(lines: list[bytes]) -> float:
    """Event time from the first to the last timed line of ``lines`` (in time order), seconds."""
    first = next((t for t in map(event_ms, lines) if t is not None), None)
    last = next((t for t in map(event_ms, reversed(lines)) if t is not None), None)
    return (last - first) / 1000.0 if first is not None and last is not None else 0.0


def speed_to_fit(lines: list[bytes], seconds: float) -> float | None:
    """The event-time speed-up that replays ``lines`` in about ``seconds`` (None: no pacing).

    >>> line = b'{"ts":"2024-01-%02dT00:00:00+00:00"}'
    >>> speed_to_fit([line % 1, line % 11], seconds=10)
    86400.0
    >>> speed_to_fit([line % 1], seconds=10), speed_to_fit([line % 1, line % 11], seconds=0)
    (None, None)
    """
    span = span_s(lines)
    return span / seconds if span > 0 and seconds > 0 else None
