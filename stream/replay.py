"""``microseg replay``: JSONL event files (plain or .gz) into Kafka.

Each line goes to its stream's topic by ``type``, keyed by ``customer_id``. Lines that cannot be
routed (not JSON, not an object, unknown type) are reported and produced as they are to the
clickstream topic, so the worker dead-letters them like any bad input.
"""

from __future__ import annotations

import argparse
import gc
import gzip
import json
import sys
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from itertools import count, repeat
from pathlib import Path
from typing import IO, Any

from stream.config import Settings, make_segmentation_stage, segmentation_config
from stream.core.events import STREAM_OF_TYPE
from stream.errors import ReplayError


def open_lines(path: Path) -> Iterator[bytes]:
    """The lines of a JSONL file (``.gz`` decompressed), without line endings; blank lines skipped."""
    for _, line in numbered_lines(path):
        yield line


_BLOCK = 1 << 20


def numbered_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """``(line number, line)`` of a JSONL file (1-based; blank lines skipped but counted)."""
    for first, lines in _blocks(path):
        for number, line in enumerate(lines, first):
            if line and not line.isspace():  # (as `line.strip()`, without the copy)
                yield number, line


def sourced_lines(path: Path) -> Iterator[tuple[str, int, bytes]]:
    """``(file name, line number, line)`` of a JSONL file, as `Engine.feed` takes them."""
    name = path.name
    for first, lines in _blocks(path):
        if all(lines) and not any(map(bytes.isspace, lines)):  # no blank line: all of them
            yield from zip(repeat(name), count(first), lines)
        else:
            for number, line in enumerate(lines, first):
                if line and not line.isspace():
                    yield name, number, line


def _blocks(path: Path) -> Iterator[tuple[int, list[bytes]]]:
    """``(number of the first, lines)`` per block read: line endings removed, blank lines kept."""
    try:
        fh: IO[bytes] = (
            gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")  # type: ignore[assignment]  # noqa: SIM115
        )
    except OSError as exc:
        raise ReplayError(f"cannot open {path}: {exc}") from exc
    with fh:
        # Read large blocks and split them: much faster than one readline() per line.
        number = 1
        rest = b""
        while True:
            block = fh.read(_BLOCK)
            if not block:
                break
            data = rest + block
            lines = data.split(b"\n")
            rest = lines.pop()
            if b"\r" in data:
                lines = [line.rstrip(b"\r") for line in lines]
            yield number, lines
            number += len(lines)
        if rest:
            yield number, [rest.rstrip(b"\r")]


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
    try:
        obj = json.loads(line)
    except ValueError:
        return Routed(fallback, None, line, None, False)
    if not isinstance(obj, dict):
        return Routed(fallback, None, line, None, False)
    cid = obj.get("customer_id")
    key = cid.encode() if isinstance(cid, str) else None
    type_ = obj.get("type")
    stream = STREAM_OF_TYPE.get(type_) if isinstance(type_, str) else None
    ts_ms = None
    if isinstance(obj.get("ts"), str):
        try:
            ts_ms = int(datetime.fromisoformat(obj["ts"]).timestamp() * 1000)
        except ValueError:
            ts_ms = None
    if stream is None:
        return Routed(fallback, key, line, ts_ms, False)
    return Routed(topics[stream.value], key, line, ts_ms, True)


@dataclass
class ReplaySummary:
    """Counts of one replay."""

    lines: int = 0
    produced: Counter[str] = field(default_factory=Counter)
    unroutable: int = 0
    seconds: float = 0.0

    def render(self) -> str:
        rate = self.lines / self.seconds if self.seconds > 0 else 0.0
        per_topic = ", ".join(f"{t}={n}" for t, n in sorted(self.produced.items()))
        return (
            f"replayed {self.lines} lines in {self.seconds:.1f} s ({rate:,.0f}/s): {per_topic}; "
            f"{self.unroutable} unroutable (sent as-is to be dead-lettered)"
        )


class Progress:
    """A one-line progress bar on stderr with rate and ETA."""

    def __init__(self, total: int | None, enabled: bool = True) -> None:
        self.total = total
        self.enabled = enabled and sys.stderr.isatty()
        self.started = time.monotonic()
        self._last = 0.0

    def update(self, done: int, force: bool = False) -> None:
        now = time.monotonic()
        if not self.enabled or (not force and now - self._last < 0.2):
            return
        self._last = now
        elapsed = max(now - self.started, 1e-9)
        rate = done / elapsed
        if self.total:
            frac = min(done / self.total, 1.0)
            bar = "#" * int(30 * frac) + "-" * (30 - int(30 * frac))
            eta = (self.total - done) / rate if rate > 0 else 0.0
            text = f"[{bar}] {done}/{self.total} {rate:,.0f}/s ETA {eta:.0f}s"
        else:
            text = f"{done} lines {rate:,.0f}/s"
        sys.stderr.write("\r" + text)
        if force:
            sys.stderr.write("\n")
        sys.stderr.flush()


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


def produce_lines(
    lines: Iterable[bytes],
    producer: Any,
    settings: Settings,
    speed: float | None = None,
    progress: Progress | None = None,
) -> ReplaySummary:
    """Produce lines to their topics; pace by event time at ``speed``× when given."""
    topics = settings.input_topics
    summary = ReplaySummary()
    started = time.monotonic()
    first_ts: int | None = None
    for line in lines:
        r = route(line, topics, settings.topic_clickstream)
        if speed and r.ts_ms is not None:
            if first_ts is None:
                first_ts = r.ts_ms
            due = started + (r.ts_ms - first_ts) / 1000.0 / speed
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        producer.send(r.topic, key=r.key, value=r.value)
        summary.lines += 1
        summary.produced[r.topic] += 1
        summary.unroutable += 0 if r.routable else 1
        if progress:
            progress.update(summary.lines)
    producer.flush()
    summary.seconds = time.monotonic() - started
    if progress:
        progress.update(summary.lines, force=True)
    return summary


def _count(paths: list[Path]) -> int:
    return sum(1 for p in paths for _ in open_lines(p))


def run_offline(
    paths: list[Path],
    out: Path,
    settings: Settings,
    as_of: str | None = None,
    segments: bool = True,
) -> dict[str, Any]:
    """Replay files through the core in-process (no broker); write outputs to ``out``.

    Returns the report. Same files and settings → byte-identical output files. With
    ``segments=False`` only features are computed (no trainer, no scorer).
    """
    from stream.core.engine import Engine, Stage, render_outputs
    from stream.core.ingest import Ingest
    from stream.core.validation import Limits

    reference_ms = None
    if as_of:
        try:
            reference_ms = int(datetime.fromisoformat(as_of).timestamp() * 1000)
        except ValueError as exc:
            raise ReplayError(f"--as-of must be RFC 3339, got {as_of!r}") from exc
    limits = Limits(settings.max_message_bytes, int(settings.future_tolerance_s * 1000))
    config = {
        "inputs": [p.name for p in paths],
        "as_of": as_of,
        "lateness_days": settings.lateness_days,
        "max_message_bytes": settings.max_message_bytes,
        "future_tolerance_s": settings.future_tolerance_s,
        **(segmentation_config(settings) if segments else {"segments": None}),
    }
    stages: list[Stage] = [make_segmentation_stage(settings)] if segments else []
    # The engine holds every event until the run and every customer until the end; none of them
    # is in a reference cycle, so the cyclic collector would only re-scan an ever-growing heap
    # (≈ 40 % of the time). Pause it until they are all gone.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        engine = Engine(
            Ingest(limits, lateness_days=settings.lateness_days), stages, reference_ms=reference_ms
        )
        for path in paths:
            engine.feed(sourced_lines(path))
        result = engine.run()
        del engine, stages
        files = render_outputs(result, config)
        del result
    finally:
        if gc_was_enabled:
            gc.enable()
    out.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (out / name).write_bytes(data)
    report: dict[str, Any] = json.loads(files["report.json"])
    return report


def run_replay(args: argparse.Namespace) -> int:
    """CLI entry: replay files into the configured (or an embedded) broker, or offline."""
    from stream.adapters.embedded import broker_for
    from stream.adapters.topics import ensure_topics

    settings = Settings.load()
    paths: list[Path] = args.files
    for p in paths:
        if not p.is_file():
            raise ReplayError(f"no such file: {p}")
    if args.offline:
        if args.out is None:
            raise ReplayError("--offline needs --out DIR")
        started = time.monotonic()
        report = run_offline(paths, args.out, settings, args.as_of, not args.no_segments)
        c = report["counts"]
        print(f"offline replay of {c.get('lines', 0)} lines in {time.monotonic() - started:.1f} s: "
              f"{c.get('accepted', 0)} applied, {c.get('dead_lettered', 0)} dead-lettered, "
              f"{c.get('duplicate', 0)} duplicates, {c.get('too_old', 0)} too old, "
              f"{c.get('customers', 0)} customers → {args.out}")  # fmt: skip
        return 0

    def lines() -> Iterator[bytes]:
        n = 0
        for p in paths:
            for line in open_lines(p):
                if args.limit is not None and n >= args.limit:
                    return
                n += 1
                yield line

    with broker_for(settings.brokers, settings.embedded_broker_port) as (bootstrap, embedded):
        if embedded:
            print(
                f"embedded broker on kafka://{bootstrap[0]} (stops when the replay ends)",
                file=sys.stderr,
            )
        ensure_topics(settings, bootstrap)
        total = _count(paths) if args.limit is None else args.limit
        producer = make_producer(bootstrap, settings)
        try:
            summary = produce_lines(
                lines(), producer, settings, args.speed, Progress(total, not args.no_progress)
            )
        finally:
            producer.close()
    print(summary.render())
    return 0
