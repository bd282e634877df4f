"""What happens to customers as event time passes day boundaries: re-evaluation and sampling.

A `Schedule` covers a set of customers — all of them offline, one input partition's in the worker
— and knows, for each, the time of their newest event and when they are next due for a quiet-time
re-evaluation (`stream.core.segmentation.rescore_due`). When the watermark passes a day boundary
(`advance`), the caller re-evaluates the customers `due` at it and sends the day's training
`sample` to the trainer.

The sample does not depend on the order in which customers were seen, nor on how they are split
into partitions: a customer active within ``horizon_days`` is drawn on a given day when a seeded
hash of (seed, day, customer) falls below ``sample_rate``; at most ``max_daily_samples`` are kept
(those with the smallest hashes). The union of the partitions' samples is the whole stream's
sample, so the worker trains on the same customers as the offline replay.

>>> from stream.core.state import CustomerState
>>> sch = Schedule(seed=1, sample_rate=0.5, idle_days=1.0)
>>> DAY = 86_400_000
>>> for i in range(8):
...     sch.seen(f"c{i}", 1000)
>>> sch.scored("c0", CustomerState(last_ts=1000, segment_id=1, scored_at=1000))
>>> sch.advance(DAY - 1), sch.advance(2 * DAY)
([], [86400000, 172800000])
>>> sch.due(DAY), sch.due(2 * DAY), len(sch.sample(2 * DAY))
([], ['c0'], 5)
"""

from __future__ import annotations

import hashlib
import heapq
from collections.abc import Callable, Iterator, Sequence

from stream.core.segmentation import rescore_due
from stream.core.state import CustomerState

DAY_MS = 86_400_000
_SCALE = 2.0**64


def training_flags(keys: Sequence[int], sample_rate: float, max_daily: int) -> list[bool]:
    """Which of a day's sampled keys (ascending) are training samples: a key below
    ``sample_rate`` of the hash range, at most ``max_daily`` of them. The rest of a day's sample
    only feeds the drift detectors (see ``monitor_rate`` in README, "Drift").

    >>> training_flags([1, 5, 2**62, 2**63], sample_rate=0.5, max_daily=2)
    [True, True, False, False]
    """
    limit = sample_rate * _SCALE
    return [k < limit and i < max_daily for i, k in enumerate(keys)]


def sample_key(seed: int, day: int, customer_id: str) -> int:
    """The seeded 64-bit hash that decides whether a customer is sampled on ``day`` (ms)."""
    data = f"{seed}:{day // DAY_MS}:{customer_id}".encode()
    return int.from_bytes(hashlib.blake2b(data, digest_size=8, person=b"sample").digest(), "little")


class Schedule:
    """Re-evaluation and sampling calendar of a set of customers.

    Parameters
    ----------
    seed
        Seeds the daily sample.
    sample_rate
        Share of recently active customers whose vector is a training sample each day.
    max_daily_samples
        At most this many samples a day from this schedule.
    horizon_days
        Customers with an event within this many days are sampled (lapsing ones included).
    idle_days
        A customer without events for this long is re-evaluated as the watermark moves on.
    """

    def __init__(
        self,
        seed: int = 42,
        sample_rate: float = 0.05,
        max_daily_samples: int = 100,
        horizon_days: float = 90.0,
        idle_days: float = 1.0,
    ) -> None:
        self.seed = seed
        self.sample_rate = sample_rate
        self.max_daily_samples = max_daily_samples
        self.horizon_days = horizon_days
        self.idle_days = idle_days
        self._horizon_ms = int(horizon_days * DAY_MS)
        self._idle_ms = int(idle_days * DAY_MS)
        self._last: dict[str, int] = {}  # customer → time of newest event
        self._due: dict[int, dict[str, None]] = {}  # day boundary → customers to re-evaluate
        self.next_day: int | None = None

    def __len__(self) -> int:
        return len(self._last)

    def seen(self, customer_id: str, last_ts: int) -> None:
        """Note the time of a customer's newest event."""
        self._last[customer_id] = last_ts

    def scored(self, customer_id: str, state: CustomerState) -> None:
        """Plan the next quiet-time re-evaluation of a customer just scored."""
        self._last[customer_id] = state.last_ts
        due = rescore_due(state, self._idle_ms)
        if due is not None:
            day = -(-due // DAY_MS) * DAY_MS  # the first day boundary at or after it
            self._due.setdefault(day, {})[customer_id] = None

    def forget(self, customer_id: str) -> None:
        """Drop an erased customer."""
        self._last.pop(customer_id, None)

    def advance(self, t: int) -> list[int]:
        """Move the watermark to ``t``; return the day boundaries passed (oldest first)."""
        if self.next_day is None:
            self.next_day = t - t % DAY_MS + DAY_MS
        days = []
        while self.next_day <= t:
            days.append(self.next_day)
            self.next_day += DAY_MS
        return days

    def customers(self) -> Iterator[str]:
        """The customers covered (in order of first sight)."""
        return iter(list(self._last))

    def due(self, day: int) -> list[str]:
        """Customers planned for re-evaluation at the boundary ``day`` (check `rescore_due`)."""
        return [c for c in self._due.pop(day, {}) if c in self._last]

    def idle(
        self, day: int, load: Callable[[str], CustomerState | None]
    ) -> list[tuple[str, CustomerState, int]]:
        """The ``(customer, state, day)`` rows to re-evaluate at the boundary ``day``."""
        rows = []
        for cid in self.due(day):
            s = load(cid)
            when = rescore_due(s, self._idle_ms) if s is not None else None
            if s is not None and when is not None and when <= day:
                rows.append((cid, s, day))
        return rows

    def sample(self, day: int) -> list[str]:
        """The day's training sample: customers active within the horizon, in hash order."""
        return [c for _, c in self.sample_keyed(day)]

    def sample_keyed(self, day: int) -> list[tuple[int, str]]:
        """`sample` with each customer's `sample_key` (the canonical order across partitions)."""
        since, limit = day - self._horizon_ms, self.sample_rate * _SCALE
        keyed = [
            (k, c)
            for c, last in self._last.items()
            if last >= since and (k := sample_key(self.seed, day, c)) < limit
        ]
        return heapq.nsmallest(self.max_daily_samples, keyed)
