"""Daily sample reports from the partitions, put into one canonical order for the trainer.

River's clusterers depend on the order of what they learn. Offline, each day's sample is learnt in
`stream.core.schedule.sample_key` order. In the worker every input partition sends one
`SampleReport` per day its watermark passes (possibly empty), and they reach the trainer in
whatever order the workers and the broker make. The `Collator` holds a day back until every
partition has passed it — or until some partition is ``max_lag_days`` ahead, so an idle partition
cannot stall training — and then releases that day's samples from all partitions merged in
`sample_key` order: the same sequence the offline replay learns. Each sample comes out flagged
as training or monitoring only (`stream.core.schedule.training_flags` over the merged day, as
offline).

>>> col = Collator(partitions=2, max_daily_samples=2)
>>> col.add(SampleReport(0, 86_400_000, [(7, [1.0]), (3, [2.0])]))
[]
>>> col.add(SampleReport(1, 86_400_000, [(5, [3.0])]))
[Due(day=86400000, vector=[2.0], train=True), Due(day=86400000, vector=[3.0], train=True), Due(day=86400000, vector=[1.0], train=False)]
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import NamedTuple

from stream.core.activity import N_BANDS
from stream.core.features import FEATURES
from stream.core.schedule import DAY_MS, training_flags


class Due(NamedTuple):
    """A released sample: its day, raw vector, and whether the trainer learns it (else it only
    feeds the drift detectors)."""

    day: int
    vector: list[float]
    train: bool


@dataclass
class SampleReport:
    """One partition's training sample for one day: ``(sample_key, raw vector)`` pairs; and the
    day's organic touches by tenure band (`stream.core.activity.DailyTouches.take`; None: not
    counted in full, e.g. the partition was assigned during the day)."""

    partition: int
    day: int
    samples: list[tuple[int, list[float]]] = field(default_factory=list)
    touches: list[int] | None = None

    def encode(self) -> bytes:
        """The ``feature-samples`` record (JSON; no customer id, only the sampling hash)."""
        obj = {"partition": self.partition, "day": self.day, "samples": self.samples,
               "touches": self.touches}  # fmt: skip
        return json.dumps(obj, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, data: bytes) -> SampleReport:
        """Read a record; raise ValueError if it is not a valid report."""
        obj = json.loads(data)
        if not isinstance(obj, dict):
            raise ValueError("not a sample report")
        p, day, rows = obj.get("partition"), obj.get("day"), obj.get("samples")
        if not (isinstance(p, int) and isinstance(day, int) and isinstance(rows, list)):
            raise ValueError("a sample report needs partition, day and samples")
        samples = []
        for row in rows:
            if not (isinstance(row, list) and len(row) == 2 and isinstance(row[0], int)):
                raise ValueError("a sample is [key, vector]")
            vec = row[1]
            if not (
                isinstance(vec, list)
                and len(vec) == len(FEATURES)
                and all(isinstance(v, int | float) and math.isfinite(v) for v in vec)
            ):
                raise ValueError(f"a sample vector has {len(FEATURES)} finite numbers")
            samples.append((row[0], [float(v) for v in vec]))
        touches = obj.get("touches")  # absent from the reports of older workers
        if touches is not None and not (
            isinstance(touches, list)
            and len(touches) == N_BANDS
            and all(isinstance(n, int) and n >= 0 for n in touches)
        ):
            raise ValueError(f"touches are {N_BANDS} counts")
        return cls(p, day, samples, touches)


class Collator:
    """Releases the partitions' daily samples in canonical order.

    Parameters
    ----------
    partitions
        Number of input partitions (each sends one report per day).
    max_lag_days
        A day is released without the partitions that have not reported it once another
        partition is this many days ahead of it.
    sample_rate, max_daily_samples
        Which samples are training samples (`training_flags`; by default all).
    """

    def __init__(
        self,
        partitions: int,
        max_lag_days: int = 2,
        sample_rate: float = 1.0,
        max_daily_samples: int | None = None,
    ) -> None:
        self.partitions = partitions
        self.max_lag_days = max_lag_days
        self.sample_rate = sample_rate
        self.max_daily_samples = max_daily_samples
        self._pending: dict[int, dict[int, SampleReport]] = {}  # day → partition → report
        self._front: dict[int, int] = {}  # partition → newest day reported
        self._released: int | None = None  # newest day released
        self._complete = False  # whether every partition had reported it
        self.late = 0  # samples released after their day (a partition reported it too late)
        self._days: list[tuple[int, list[int] | None]] = []

    @property
    def released(self) -> int | None:
        """The newest day released (its boundary, as reported), if any."""
        return self._released

    @property
    def complete(self) -> bool:
        """Whether every partition had reported the newest day released when it was."""
        return self._complete

    def take_days(self) -> list[tuple[int, list[int] | None]]:
        """The days released since the last call, in order, each with the partitions' organic
        touches summed (None unless every partition reported the day in full in time): for
        `stream.core.trainer.Trainer.observe_day`, before the day's samples."""
        out, self._days = self._days, []
        return out

    def add(self, report: SampleReport) -> list[Due]:
        """Take a report; return the samples now due, in order."""
        p, day = report.partition, report.day
        self._front[p] = max(self._front.get(p, day), day)
        if self._released is not None and day <= self._released:
            self.late += len(report.samples)
            return self._due(day, report.samples)
        self._pending.setdefault(day, {}).setdefault(p, report)  # a repeated report is dropped
        out: list[Due] = []
        while self._pending:
            first = min(self._pending)
            passed = len(self._front) == self.partitions and min(self._front.values()) >= first
            ahead = max(self._front.values()) >= first + self.max_lag_days * DAY_MS
            if not (passed or ahead):
                break
            reports = self._pending.pop(first)
            rows = [kv for r in reports.values() for kv in r.samples]
            counts = [r.touches for r in reports.values() if r.touches is not None]
            full = len(counts) == self.partitions
            self._days.append(
                (first, [sum(c) for c in zip(*counts, strict=True)] if full else None)
            )
            out += self._due(first, rows)
            self._released, self._complete = first, len(reports) == self.partitions
        return out

    def _due(self, day: int, rows: list[tuple[int, list[float]]]) -> list[Due]:
        rows = sorted(rows, key=lambda kv: kv[0])
        cap = len(rows) if self.max_daily_samples is None else self.max_daily_samples
        flags = training_flags([k for k, _ in rows], self.sample_rate, cap)
        return [Due(day, v, f) for (_, v), f in zip(rows, flags, strict=True)]
