"""The worker's segmentation step: score a batch's customers, re-evaluate quiet ones, sample.

An `Assigner` is what a worker runs after the feature update of each input batch, for each input
partition the batch touched (pure: the agent does the I/O). It keeps one `Schedule` per
partition, so customers are re-evaluated when *their partition's* event-time watermark passes a
day boundary, and samples are drawn per partition (their union is the offline replay's sample)
and sent as one `SampleReport` per partition and day.
When a newer model has arrived since a partition was last stepped, that partition's customers
who are unassigned or whose segment no longer exists are re-scored first
(`Segmenter.reassess`).

State is read through a ``load`` callback; every state the step touched is returned to be
written back.

>>> from stream.core.model import MicroSegment, Segment, SegmentModel
>>> from stream.core.segmentation import Segmenter
>>> from stream.core.state import CustomerState
>>> from stream.core.features import NAMES
>>> D = len(NAMES)
>>> m = SegmentModel(1, 0, [0.0] * D, [1.0] * D,
...                  [Segment(1, "Quiet", [0.0] * D, [MicroSegment(1, [0.0] * D)])], 2, 2)
>>> seg = Segmenter(holdout_share=0.0)
>>> seg.set_model(m)
>>> a = Assigner(seg, sample_rate=1.0)
>>> states = {"c1": CustomerState(last_ts=5)}
>>> a.adopt(0, [])
>>> step = a.step(0, {"c1": states["c1"]}, 5, states.get, emitted_at=9)
>>> [c.current.segment_name for c in step.changes], list(step.states)
(['Quiet'], ['c1'])
>>> [len(r.samples) for r in a.step(0, {}, 86_400_000, states.get, emitted_at=9).reports]
[1]
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from stream.core.activity import DailyTouches
from stream.core.collate import SampleReport
from stream.core.features import DAY_MS, vector
from stream.core.outputs import SegmentChange
from stream.core.schedule import Schedule
from stream.core.segmentation import Segmenter
from stream.core.state import NO_TIME, CustomerState

Loader = Callable[[str], CustomerState | None]


@dataclass
class Step:
    """What one partition's step produced."""

    changes: list[SegmentChange] = field(default_factory=list)
    states: dict[str, CustomerState] = field(default_factory=dict)
    """Every state the step read or changed (scored states record when they were scored)."""
    reports: list[SampleReport] = field(default_factory=list)
    """One training-sample report per day boundary passed (`stream.core.collate`)."""
    rescored: int = 0
    """Quiet customers re-evaluated at a day boundary."""
    late_touches: int = 0
    """Organic touches that came after their day's report had gone (`stream.core.activity`)."""


class Assigner:
    """Per-partition scoring, re-evaluation and sampling for the partitions a worker owns.

    Parameters
    ----------
    segmenter
        The scorer (its model is replaced as snapshots arrive).
    seed, sample_rate, max_daily_samples, horizon_days, idle_days
        As in `Schedule`; ``max_daily_samples`` applies per partition. This is the whole daily
        sample — training and monitoring: the trainer's `Collator` picks the training part.
    """

    def __init__(
        self,
        segmenter: Segmenter,
        seed: int = 42,
        sample_rate: float = 0.05,
        max_daily_samples: int = 100,
        horizon_days: float = 90.0,
        idle_days: float = 1.0,
    ) -> None:
        self.segmenter = segmenter
        self.seed = seed
        self.sample_rate = sample_rate
        self.max_daily_samples = max_daily_samples
        self.horizon_days = horizon_days
        self.idle_days = idle_days
        self.schedules: dict[int, Schedule] = {}
        self.sizes: dict[int, Counter[int]] = {}  # partition → segment id → customers
        self._model_version: dict[int, int] = {}  # partition → model version it was reassessed at
        self._watermark: dict[int, int] = {}  # partition → newest watermark it was stepped to
        self.touches: dict[int, DailyTouches] = {}  # partition → its organic touches by day

    def owns(self, partition: int) -> bool:
        """Whether the partition's schedule is built."""
        return partition in self.schedules

    def passes_day(self, partition: int, t: int) -> bool:
        """Whether an event at ``t`` passes a day boundary the partition has not passed yet (the
        day's sample is due before that event is applied: `step` the partition first). So does
        the first event of a partition without a day clock yet: the step starts the clock at
        ``t`` (as offline) and reports the boundary before ``t`` as passed, with no samples."""
        sch = self.schedules.get(partition)
        if sch is None:
            return False
        return sch.next_day is None or t >= sch.next_day

    def laggards(self, limits: Mapping[int, int]) -> dict[int, int]:
        """Partitions behind the newest day boundary another has passed, each with the time to
        `step` it to: that boundary, or its limit if earlier.

        ``limits``: the partitions that may step, each with the latest time it may step to. The
        trainer's collator waits for every partition to pass a day (or for one to be days ahead
        of it), so each one behind holds the trainer back, one that days were learnt without
        too: it fell behind when the collator let a day go without it, and then waited for it
        again at the next (the demo stalled there at its start until
        ``MICROSEG_PACE_MAX_WAIT_S`` ran out).
        """
        passed = [s.next_day - DAY_MS for s in self.schedules.values() if s.next_day is not None]
        if not passed:
            return {}
        frontier = max(passed)
        out = {}
        for p, limit in sorted(limits.items()):
            sch = self.schedules.get(p)
            t = min(limit, frontier)
            if sch is not None and sch.next_day is not None and sch.next_day <= t:
                out[p] = t
        return out

    def reached(self) -> int | None:
        """The end of the newest day any partition has got into (its next day boundary − 1 ms),
        as adopted from the store or stepped since; None if none has a calendar yet."""
        days = [s.next_day for s in self.schedules.values() if s.next_day is not None]
        return max(days) - 1 if days else None

    def adopt(self, partition: int, customers: Iterable[tuple[str, CustomerState]]) -> None:
        """Build a partition's schedule from its stored customers (after an assignment)."""
        sch = Schedule(
            self.seed, self.sample_rate, self.max_daily_samples, self.horizon_days, self.idle_days
        )
        sizes: Counter[int] = Counter()
        newest = NO_TIME
        for cid, state in customers:
            sch.seen(cid, state.last_ts)
            sch.scored(cid, state)
            newest = max(newest, state.last_ts)
            if state.segment_id:
                sizes[state.segment_id] += 1
        if newest != NO_TIME:  # the day clock goes on from the partition's newest event, so the
            sch.advance(newest)  # first day boundary after a restart is sampled like any other
        self.schedules[partition] = sch
        self.sizes[partition] = sizes
        self.touches[partition] = DailyTouches(None if newest == NO_TIME else newest)
        self._model_version[partition] = 0  # reassess once a model is there

    def release(self, partition: int) -> None:
        """Forget a partition this worker no longer owns."""
        self.schedules.pop(partition, None)
        self._model_version.pop(partition, None)
        self._watermark.pop(partition, None)
        self.sizes.pop(partition, None)
        self.touches.pop(partition, None)

    def touched(self, partition: int, t: int, state: CustomerState) -> None:
        """Note an event at ``t`` just applied to ``state`` (`Ingest.process`'s ``after``): the
        partition's daily report counts it if it was an organic touch (`stream.core.activity`)."""
        days = self.touches.get(partition)
        if days is not None:
            days.add(state, t)

    def forget(self, partition: int, customer_id: str, segment_id: int = 0) -> None:
        """Drop an erased customer (who was in ``segment_id``, 0 for none)."""
        if partition in self.schedules:
            self.schedules[partition].forget(customer_id)
            if segment_id:
                self.sizes[partition][segment_id] -= 1

    def customers(self) -> int:
        """Customers in the partitions adopted (those the worker owns)."""
        return sum(len(s) for s in self.schedules.values())

    def segment_sizes(self) -> dict[int, int]:
        """Members per segment over those partitions."""
        total: Counter[int] = Counter()
        for sizes in self.sizes.values():
            total.update(sizes)
        return {sid: n for sid, n in sorted(total.items()) if n > 0}

    def step(
        self,
        partition: int,
        updated: dict[str, CustomerState],
        watermark: int,
        load: Loader,
        emitted_at: int,
    ) -> Step:
        """Score ``updated`` customers of ``partition`` and move its watermark to ``watermark``.

        ``load`` reads a stored state (the agent's table); ``emitted_at`` is the wall clock.
        """
        sch = self.schedules[partition]
        out = Step(states=dict(updated))
        seg = self.segmenter
        for cid, state in updated.items():
            sch.seen(cid, state.last_ts)

        score = self._scorer(partition, out, emitted_at)

        model = seg.model
        self._watermark[partition] = max(self._watermark.get(partition, watermark), watermark)
        self._reassess(partition, out, load, score, watermark, skip=updated)
        if model is not None:
            score([(cid, s, s.last_ts) for cid, s in updated.items()])
        if sch.next_day is None:  # the partition's first event ever: its day clock starts
            # The trainer's collator waits for every partition to pass a day (or for one to be
            # days ahead): now it knows this one is there, and past the days before.
            sch.advance(watermark)
            out.reports.append(SampleReport(partition, watermark - watermark % DAY_MS))
        days = sch.advance(watermark)
        for day in days:
            idle = sch.idle(day, lambda c: out.states.get(c) or load(c))
            out.rescored += len(idle)
            score(idle)
        touches = self.touches[partition]
        late = touches.late
        for day in days:  # a batch may pass several days: each has its sample
            report = SampleReport(partition, day, touches=touches.take(day))
            for key, cid in sch.sample_keyed(day):
                s = out.states.get(cid) or load(cid)
                if s is not None:  # features as of the day, or of a newer event in the batch
                    report.samples.append((key, vector(s, max(day, s.last_ts))))
            out.reports.append(report)
        out.late_touches = touches.late - late
        return out

    def stale(self) -> list[int]:
        """Partitions stepped before the newest model arrived (their members wait for it)."""
        model = self.segmenter.model
        if model is None:
            return []
        return [p for p, v in sorted(self._model_version.items())
                if v < model.version and p in self._watermark]  # fmt: skip

    def catch_up(self, partition: int, load: Loader, emitted_at: int) -> Step:
        """Apply the newest model to a partition without new events: its unassigned customers and
        the members of segments the model no longer has are re-scored at its watermark (what
        `step` does first when events come)."""
        out = Step()
        score = self._scorer(partition, out, emitted_at)
        self._reassess(partition, out, load, score, self._watermark[partition])
        return out

    def _scorer(
        self, partition: int, out: Step, emitted_at: int
    ) -> Callable[[list[tuple[str, CustomerState, int]]], None]:
        """Score rows of ``partition`` into ``out``, keeping its sizes and schedule."""
        sch, sizes, seg = self.schedules[partition], self.sizes[partition], self.segmenter

        def score(rows: list[tuple[str, CustomerState, int]]) -> None:
            changes = seg.score(rows, emitted_at)
            for c in changes:
                if c.previous:
                    sizes[c.previous.segment_id] -= 1
                if c.current:
                    sizes[c.current.segment_id] += 1
            out.changes += changes
            for cid, state, _ in rows:
                sch.scored(cid, state)
                out.states[cid] = state

        return score

    def _reassess(
        self,
        partition: int,
        out: Step,
        load: Loader,
        score: Callable[[list[tuple[str, CustomerState, int]]], None],
        at: int,
        skip: dict[str, CustomerState] | None = None,
    ) -> None:
        """Once per model version: re-score unassigned customers and members of dropped
        segments (`Segmenter.reassess` at ``at``), except those in ``skip``."""
        model = self.segmenter.model
        if model is None or self._model_version[partition] >= model.version:
            return
        self._model_version[partition] = model.version
        sch = self.schedules[partition]
        skip = skip or {}
        stored = ((c, out.states.get(c) or load(c)) for c in sch.customers() if c not in skip)
        rows = self.segmenter.reassess(((c, s) for c, s in stored if s is not None), at)
        score(rows)
