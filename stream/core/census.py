"""Cluster-wide segment sizes and movement, counted from the ``segment-changes`` stream.

Every worker scores only its own partitions, but every change is published: a customer's change
moves them out of ``previous`` and into ``current``, so summing changes over all partitions gives
the size of every segment and micro-segment across the cluster, in constant memory per segment.
Movement between segments is kept per day of event time for a recent window.

Changes are at-least-once on the topic (a worker that crashes re-sends a batch's changes with the
same deterministic ``event_id``): the last `RECENT_IDS` event ids are remembered and a repeat is
not counted twice. A customer who comes back after an erasure starts again at version 1, under
ids of their own (`stream.core.outputs.change_id` tells the lives apart), so they are counted
again.

>>> c = Census(window_days=7)
>>> day = 86_400_000
>>> c.add("e1", None, (1, 11), 0)
>>> c.add("e2", None, (1, 12), 0)
>>> c.add("e3", (1, 12), (2, 21), 3 * day)
>>> c.add("e3", (1, 12), (2, 21), 3 * day)  # a redelivered change
>>> c.sizes(), c.micro_sizes()[21], c.movement(2)
({1: 1, 2: 1}, 1, {'window_days': 7, 'in': {'1': 1}, 'out': {}})

A census is kept as a checkpoint with the topic positions it covers (`checkpoint`, `restore`), so
a worker starting later reads ``segment-changes`` from there, not from a beginning that the
topic's retention may have dropped:

>>> again, positions = Census.restore(c.checkpoint({0: 3}))
>>> again.sizes(), again.movement(2)["in"], positions
({1: 1, 2: 1}, {'1': 1}, {0: 3})
>>> again.add("e3", (1, 12), (2, 21), 3 * day); again.changes  # still known as counted
3
"""

from __future__ import annotations

import json
from collections import Counter, OrderedDict

from stream.core.features import DAY_MS
from stream.core.outputs import parse_rfc3339_ms

RECENT_IDS = 100_000
CHECKPOINT_IDS = 5_000
"""Event ids a checkpoint remembers: a change re-sent after a crash comes seconds after the first
copy, so a census restored from a checkpoint still counts it once."""
CHECKPOINT_ENCODING = 1

Ref = tuple[int, int]
"""(segment id, micro-segment id)."""


class Census:
    """Segment and micro-segment sizes and recent movement from segment-change records.

    Parameters
    ----------
    window_days
        Movement counts cover this many days of event time up to the newest change.
    """

    def __init__(self, window_days: int = 7) -> None:
        self.window_days = window_days
        self._sizes: Counter[int] = Counter()
        self._micro: Counter[int] = Counter()
        self._moves: dict[int, Counter[tuple[int, int]]] = {}  # day → (from, to) → count
        self._seen: OrderedDict[str, None] = OrderedDict()
        self.newest_day = 0
        self.changes = 0

    def add(self, event_id: str, previous: Ref | None, current: Ref | None, t: int) -> None:
        """Count one change (event time ``t`` ms); a repeated ``event_id`` is ignored."""
        if event_id in self._seen:
            return
        self._seen[event_id] = None
        if len(self._seen) > RECENT_IDS:
            self._seen.popitem(last=False)
        self.changes += 1
        if previous is not None:
            self._sizes[previous[0]] -= 1
            self._micro[previous[1]] -= 1
        if current is not None:
            self._sizes[current[0]] += 1
            self._micro[current[1]] += 1
        if previous is not None and current is not None and previous[0] != current[0]:
            day = t // DAY_MS
            self._moves.setdefault(day, Counter())[(previous[0], current[0])] += 1
            if day > self.newest_day:
                self.newest_day = day
                for old in [d for d in self._moves if d <= day - self.window_days]:
                    del self._moves[old]

    def add_record(self, record: dict[str, object]) -> None:
        """`add` a decoded ``segment-changes`` record."""

        def ref(x: object) -> Ref | None:
            if not isinstance(x, dict):
                return None
            return int(x["segment_id"]), int(x["micro_segment_id"])

        self.add(str(record["event_id"]), ref(record.get("previous")),
                 ref(record.get("current")), parse_rfc3339_ms(str(record["event_time"])))  # fmt: skip

    def checkpoint(self, positions: dict[int, int]) -> bytes:
        """The census as canonical JSON, with the ``segment-changes`` positions (partition → next
        offset) it has counted up to; `restore` reads it."""
        moves = {str(d): sorted([a, b, n] for (a, b), n in m.items())
                 for d, m in sorted(self._moves.items())}  # fmt: skip
        body = {
            "encoding": CHECKPOINT_ENCODING,
            "window_days": self.window_days,
            "sizes": {str(k): v for k, v in sorted(self._sizes.items()) if v},
            "micro": {str(k): v for k, v in sorted(self._micro.items()) if v},
            "moves": moves,
            "newest_day": self.newest_day,
            "changes": self.changes,
            "recent_ids": list(self._seen)[-CHECKPOINT_IDS:],
            "positions": {str(p): o for p, o in sorted(positions.items())},
        }
        return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def restore(cls, data: bytes) -> tuple[Census, dict[int, int]]:
        """A census and its positions from a `checkpoint`; ValueError if ``data`` is not one."""
        try:
            body = json.loads(data)
            if body["encoding"] != CHECKPOINT_ENCODING:
                raise ValueError(f"checkpoint encoding {body['encoding']!r}")
            c = cls(int(body["window_days"]))
            c._sizes.update({int(k): int(v) for k, v in body["sizes"].items()})
            c._micro.update({int(k): int(v) for k, v in body["micro"].items()})
            for day, moves in body["moves"].items():
                c._moves[int(day)] = Counter({(int(a), int(b)): int(n) for a, b, n in moves})
            c.newest_day, c.changes = int(body["newest_day"]), int(body["changes"])
            c._seen.update(dict.fromkeys(str(i) for i in body["recent_ids"]))
            positions = {int(p): int(o) for p, o in body["positions"].items()}
        except (TypeError, KeyError, AttributeError, ValueError) as exc:
            raise ValueError(f"not a census checkpoint: {exc}") from None
        return c, positions

    def sizes(self) -> dict[int, int]:
        """Members per segment (segments with members)."""
        return {s: n for s, n in sorted(self._sizes.items()) if n > 0}

    def micro_sizes(self) -> dict[int, int]:
        """Members per micro-segment."""
        return {m: n for m, n in sorted(self._micro.items()) if n > 0}

    def movement(self, segment_id: int) -> dict[str, object]:
        """Moves into and out of ``segment_id`` over the window, by the other segment."""
        into: Counter[int] = Counter()
        out: Counter[int] = Counter()
        for day, moves in self._moves.items():
            if day <= self.newest_day - self.window_days:
                continue
            for (a, b), n in moves.items():
                if b == segment_id:
                    into[a] += n
                if a == segment_id:
                    out[b] += n
        return {
            "window_days": self.window_days,
            "in": {str(k): v for k, v in sorted(into.items())},
            "out": {str(k): v for k, v in sorted(out.items())},
        }
