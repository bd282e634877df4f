"""What the demo knows while it runs: worker metrics, segments, and the output topics' records.

Pure and synchronous: the demo's feeds (`stream.demo.feed`) put scraped text and consumed
records in; the view (`stream.demo.view`) reads it. Nothing here does I/O.

>>> m = parse_metrics('microseg_events_total{stream="email",outcome="accepted"} 3\\n# x\\nup 1')
>>> metric_sum(m, "microseg_events_total", outcome="accepted"), metric_sum(m, "nope")
(3.0, 0.0)
"""

from __future__ import annotations

import json
import re
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

Metrics = dict[tuple[str, tuple[tuple[str, str], ...]], float]

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text: str) -> Metrics:
    """Prometheus text format → ``{(name, sorted labels): value}``."""
    out: Metrics = {}
    for line in text.splitlines():
        m = _SAMPLE.match(line)
        if m and not line.startswith("#"):
            labels = tuple(sorted(_LABEL.findall(m.group(2) or "")))
            out[(m.group(1), labels)] = float(m.group(3))
    return out


def metric_sum(metrics: Metrics, name: str, **match: str) -> float:
    """Sum of a metric's samples whose labels include ``match``."""
    return sum(
        (
            v
            for (n, labels), v in metrics.items()
            if n == name and all((k, val) in labels for k, val in match.items())
        ),
        0.0,
    )


def metric_by(metrics: Metrics, name: str, label: str, **match: str) -> dict[str, float]:
    """A metric summed per value of ``label`` (samples without it are left out)."""
    out: Counter[str] = Counter()
    for (n, labels), v in metrics.items():
        d = dict(labels)
        if n == name and label in d and all(d.get(k) == val for k, val in match.items()):
            out[d[label]] += v  # type: ignore[assignment]
    return dict(out)


@dataclass(frozen=True)
class Snapshot:
    """The figures of one ``/metrics`` scrape, at monotonic time ``at``."""

    at: float
    events_in: float
    """Every input record the worker consumed (all outcomes)."""
    outcomes: dict[str, float]
    dead_letters: dict[str, float]
    lag: float
    model_version: float
    segment_sizes: dict[str, float]
    changes_by_reason: dict[str, float]
    pace_timeouts: float = 0.0
    """Times the worker gave up waiting for the trainer (`stream.adapters.pace`)."""

    @classmethod
    def of(cls, metrics: Metrics, at: float) -> Snapshot:
        """Read the demo's figures out of parsed metrics."""
        return cls(
            at=at,
            events_in=metric_sum(metrics, "microseg_events_total"),
            outcomes=metric_by(metrics, "microseg_events_total", "outcome"),
            dead_letters=metric_by(metrics, "microseg_dead_letters_total", "reason"),
            lag=metric_sum(metrics, "microseg_consumer_lag_records"),
            model_version=metric_sum(metrics, "microseg_model_version"),
            segment_sizes=metric_by(metrics, "microseg_segment_customers", "segment"),
            changes_by_reason=metric_by(metrics, "microseg_segment_changes_total", "reason"),
            pace_timeouts=metric_sum(metrics, "microseg_input_pace_timeouts_total"),
        )


def rate(before: Snapshot | None, after: Snapshot) -> float:
    """Events consumed per second between two snapshots (0 without an earlier one).

    >>> a = Snapshot(0.0, 10, {}, {}, 0, 0, {}, {})
    >>> rate(a, Snapshot(2.0, 30, {}, {}, 0, 0, {}, {})), rate(None, a)
    (10.0, 0.0)
    """
    if before is None or after.at <= before.at:
        return 0.0
    return max(after.events_in - before.events_in, 0.0) / (after.at - before.at)


@dataclass
class Feed:
    """Records consumed from ``segment-changes`` and ``segment-events`` (newest last)."""

    keep: int = 8
    changes: deque[dict[str, Any]] = field(default_factory=deque)
    events: deque[dict[str, Any]] = field(default_factory=deque)
    change_count: int = 0
    change_reasons: Counter[str] = field(default_factory=Counter)
    event_kinds: Counter[str] = field(default_factory=Counter)
    unreadable: int = 0
    latest: dict[str, int] = field(default_factory=dict)
    """Each customer's segment id after their newest change (erased customers left out)."""

    def add_change(self, value: bytes | None) -> None:
        """Take one ``segment-changes`` record."""
        obj = self._decode(value)
        if obj is None:
            return
        self.change_count += 1
        self.change_reasons[str(obj.get("reason", "?"))] += 1
        cid, current = obj.get("customer_id"), obj.get("current")
        if isinstance(cid, str):
            if isinstance(current, dict) and isinstance(current.get("segment_id"), int):
                self.latest[cid] = current["segment_id"]
            else:
                self.latest.pop(cid, None)
        self.changes.append(obj)
        while len(self.changes) > self.keep:
            self.changes.popleft()

    def add_event(self, value: bytes | None) -> None:
        """Take one ``segment-events`` record (any kind, including ones added later)."""
        obj = self._decode(value)
        if obj is None:
            return
        self.event_kinds[str(obj.get("kind", "?"))] += 1
        if obj.get("kind") == "model_published" and self.events:
            last = self.events[-1]
            if last.get("kind") == "model_published":  # keep the feed for what is news
                self.events.pop()
        self.events.append(obj)
        while len(self.events) > self.keep:
            self.events.popleft()

    def sources(self) -> dict[str, Counter[str]]:
        """Per segment id, its members by source: the customer-id prefix (``sim``, ``cj``,
        ``r46`` …; each bundled file has its own), from the changes read so far.

        >>> f = Feed()
        >>> for cid, seg in (("cj-1", 2), ("sim-c1", 2), ("cj-2", 2), ("cj-1", 3)):
        ...     f.add_change(json.dumps({"customer_id": cid, "current": {"segment_id": seg}}).encode())
        >>> {k: dict(v) for k, v in f.sources().items()}
        {'3': {'cj': 1}, '2': {'sim': 1, 'cj': 1}}
        """
        out: dict[str, Counter[str]] = {}
        for cid, segment in self.latest.items():
            out.setdefault(str(segment), Counter())[cid.split("-", 1)[0]] += 1
        return out

    def example_customer(self) -> str | None:
        """The customer of the newest change that still has a segment."""
        for change in reversed(self.changes):
            if change.get("current") and isinstance(change.get("customer_id"), str):
                return str(change["customer_id"])
        return None

    def _decode(self, value: bytes | None) -> dict[str, Any] | None:
        try:
            obj = json.loads(value) if value is not None else None
        except ValueError:
            obj = None
        if not isinstance(obj, dict):
            self.unreadable += 1
            return None
        return obj


@dataclass
class DemoState:
    """Everything the view shows."""

    phase: str = "starting"
    lines_total: int = 0
    lines_sent: int = 0
    speed: float | None = None
    snapshot: Snapshot | None = None
    events_per_s: float = 0.0
    segments: list[dict[str, Any]] = field(default_factory=list)
    feed: Feed = field(default_factory=Feed)
    base_url: str = ""
    started: float = 0.0
    elapsed: float = 0.0

    def observe(self, metrics: Metrics, at: float) -> None:
        """Take a new ``/metrics`` scrape."""
        snap = Snapshot.of(metrics, at)
        self.events_per_s = rate(self.snapshot, snap)
        self.snapshot = snap
