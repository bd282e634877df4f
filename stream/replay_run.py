"""The ``microseg replay`` command: a source, filters, a sink, a progress bar and a summary.

Sources: JSONL files, or ``--from-topic`` with an offset range. Filters: `ReplayFilter`. Sinks:
the input topics by stream (default), ``--to-topic``, or ``--offline --out DIR``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

from stream import paths
from stream.config import Settings
from stream.core.events import STREAM_OF_TYPE, Stream
from stream.errors import ReplayError
from stream.replay import count_lines, file_items, run_offline
from stream.replay_filter import ReplayFilter, attribute, read_ids, rfc3339_ms
from stream.replay_sink import Progress, make_producer, produce_items
from stream.replay_source import Item, OffsetRange, TopicRange


def filter_from_args(args: argparse.Namespace) -> ReplayFilter:
    """The `ReplayFilter` of ``--customer``, ``--customers-file``, ``--stream``, ``--since``…"""
    ids: list[str] = list(args.customer or [])
    for path in args.customers_file or []:
        ids.extend(read_ids(path))
    has_ids = bool(args.customer or args.customers_file)
    since = rfc3339_ms(args.since, "--since") if args.since else None
    until = rfc3339_ms(args.until, "--until") if args.until else None
    if since is not None and until is not None and until <= since:
        raise ReplayError("--until must be later than --since")
    if args.time == "record" and not args.from_topic:
        raise ReplayError("--time record needs --from-topic (files carry no record time)")
    return ReplayFilter(
        frozenset(ids) if has_ids else None,
        frozenset(Stream(s) for s in args.stream) if args.stream else None,
        since,
        until,
        record_time=args.time == "record",
    )


@dataclass
class Kept:
    """Counts of a filtered read (offline: what the core got)."""

    read: int = 0
    filtered: Counter[str] = field(default_factory=Counter)

    def lines(self, items: Iterable[Item], keep: ReplayFilter) -> Iterator[tuple[str, int, bytes]]:
        """``(origin, position, value)`` of the kept items, as `Engine.feed` takes them."""
        for item in items:
            self.read += 1
            if keep.active:
                a = attribute(item.value) if keep.needs_value(item.key is not None) else None
                if why := keep.drop(item.key, item.timestamp_ms, a):
                    self.filtered[why] += 1
                    continue
            yield item.origin, item.position, item.value or b""


def _offline(
    args: argparse.Namespace,
    settings: Settings,
    items: Iterable[Item] | None,
    inputs: list[str] | None,
    keep: ReplayFilter,
    total: int | None = None,
) -> dict[str, Any]:
    out: Path | None = args.out
    if out is None:
        raise ReplayError("--offline needs --out DIR")
    started = time.monotonic()
    kept = Kept()
    bar = Progress(total, not args.no_progress)
    if bar.enabled and items is None:  # (counting costs a read of the files: only on a terminal)
        bar.total = count_lines(args.files)
        if args.limit is not None:
            bar.total = min(bar.total, args.limit)
    progress = bar if bar.enabled else None
    if items is None and not keep.active and args.limit is None:  # the fast path: files as such
        report = run_offline(
            args.files, out, settings, args.as_of, not args.no_segments, progress=progress
        )
        kept.read = report["counts"].get("lines", 0)
    else:
        items = file_items(args.files) if items is None else items
        if args.limit is not None:
            items = islice(items, args.limit)
        report = run_offline(
            args.files,
            out,
            settings,
            args.as_of,
            not args.no_segments,
            lines=kept.lines(items, keep),
            inputs=inputs,
            filters=keep.describe() if keep.active else None,
            progress=progress,
        )
    seconds = time.monotonic() - started
    c = report["counts"]
    by_stream: Counter[str] = Counter()
    for type_, n in report.get("accepted_by_type", {}).items():
        by_stream[STREAM_OF_TYPE[type_].value if type_ in STREAM_OF_TYPE else type_] += n
    return {
        "read": kept.read,
        "filtered_out": dict(sorted(kept.filtered.items())),
        "processed": c.get("lines", 0),
        "applied": c.get("accepted", 0),
        "applied_by_stream": dict(sorted(by_stream.items())),
        "dead_lettered": c.get("dead_lettered", 0),
        "duplicates": c.get("duplicate", 0),
        "too_old": c.get("too_old", 0),
        "customers": c.get("customers", 0),
        "seconds": round(seconds, 3),
        "rate_per_s": round(kept.read / seconds) if seconds > 0 else None,
        "out": str(out),
    }


def _render_offline(s: dict[str, Any]) -> str:
    filtered = sum(s["filtered_out"].values())
    why = ", ".join(f"{k}={n}" for k, n in s["filtered_out"].items())
    streams = ", ".join(f"{k}={n}" for k, n in s["applied_by_stream"].items()) or "none"
    return (
        f"offline replay of {s['read']} lines in {s['seconds']:.1f} s ({s['rate_per_s'] or 0:,}/s): "
        f"{filtered} filtered out{f' ({why})' if why else ''}, {s['processed']} processed: "
        f"{s['applied']} applied ({streams}), {s['dead_lettered']} dead-lettered, "
        f"{s['duplicates']} duplicates, {s['too_old']} too old, {s['customers']} customers "
        f"→ {s['out']}"
    )


def run_replay(args: argparse.Namespace) -> int:
    """CLI entry: replay files or a topic range into topics (by stream or one), or offline."""
    from stream.adapters.embedded import broker_for
    from stream.adapters.topics import ensure_topics

    settings = Settings.load()
    if bool(args.files) == bool(args.from_topic):
        raise ReplayError("give either FILE... or --from-topic TOPIC (or --compare DIR_A DIR_B)")
    for p in args.files:
        paths.input_file(p, "FILE")
    for p in args.customers_file or []:
        paths.input_file(p, "--customers-file")
    if args.out is not None:
        paths.output_dir(args.out, "--out")
    if not args.from_topic and (args.partition or args.start_offset or args.end_offset):
        raise ReplayError("--partition, --start-offset and --end-offset need --from-topic")
    if args.offline and (args.to_topic or args.speed):
        raise ReplayError("--offline takes neither --to-topic nor --speed")
    if args.from_topic and not settings.brokers:
        raise ReplayError("--from-topic needs MICROSEG_BROKER (an embedded broker starts empty)")
    keep = filter_from_args(args)

    if args.offline and not args.from_topic:
        summary = _offline(args, settings, None, None, keep)
        print(json.dumps(summary, sort_keys=True) if args.json else _render_offline(summary))
        return 0

    with broker_for(settings.brokers, settings.embedded_broker_port) as (bootstrap, embedded):
        if embedded:
            print(f"embedded broker on kafka://{bootstrap[0]} (stops when the replay ends)",
                  file=sys.stderr)  # fmt: skip
        items: Iterable[Item]
        if args.from_topic:
            offsets = OffsetRange.from_args(args.partition, args.start_offset, args.end_offset)
            source = TopicRange(bootstrap, settings, args.from_topic, offsets)
            total = source.total
            inputs = [f"{args.from_topic}:{p}[{a},{b})" for p, (a, b) in source.ends.items()]
            items = source
        else:
            total, inputs, items = count_lines(args.files), None, file_items(args.files)
        if args.limit is not None:
            items, total = islice(items, args.limit), min(total, args.limit)
        if args.offline:
            summary = _offline(args, settings, items, inputs, keep, total)
            print(json.dumps(summary, sort_keys=True) if args.json else _render_offline(summary))
            return 0
        if args.to_topic:
            _ensure_topic(settings, bootstrap, args.to_topic)
        else:
            ensure_topics(settings, bootstrap)
        producer = make_producer(bootstrap, settings)
        try:
            result = produce_items(items, producer, settings, args.speed,
                                   Progress(total, not args.no_progress), keep, args.to_topic)  # fmt: skip
        finally:
            producer.close()
    print(json.dumps(result.as_dict(), sort_keys=True) if args.json else result.render())
    return 0


def _ensure_topic(settings: Settings, bootstrap: list[str], name: str) -> None:
    """Create ``--to-topic`` with ``MICROSEG_PARTITIONS`` partitions if it does not exist."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    from stream.adapters.topics import kafka_python_security

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15_000,
                             **kafka_python_security(settings))  # fmt: skip
    try:
        if name not in admin.list_topics():
            with contextlib.suppress(TopicAlreadyExistsError):  # created meanwhile: fine
                admin.create_topics(
                    [NewTopic(name, settings.partitions, settings.replication_factor)]
                )
    finally:
        admin.close()
