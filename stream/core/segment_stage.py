"""Segmentation inside the offline engine: the trainer inline, the scorer in event-time ticks.

`SegmentationStage` plugs into `stream.core.engine.Engine` and does, in-process and in event-time
order, what the worker does with its agents: when the watermark passes a day boundary, a seeded
sample of the customers active within ``sample_horizon_days`` feeds their feature vectors at the
watermark to the `Trainer` — quiet customers included, so the model knows what lapsing looks
like, and all of a day's samples are taken at one time; every published
snapshot goes to the `Segmenter` (and its lifecycle to ``segment-events``); customers updated
during a tick of event time (``tick_minutes``) are scored together at the end of the tick, like
a worker scores a batch; quiet customers are re-evaluated at day boundaries of the watermark
(`rescore_due`: every ``idle_days`` for their first 14 quiet days, then each time their quiet
time doubles), so customers who go quiet still move. Outputs:
``segment-changes``, ``segment-events``, ``segment-model`` (the snapshots), segment profiles and
each day's organic touches (``activity``: what the population-activity detector saw,
`stream.core.activity`; the worker's partitions report the same counts on ``feature-samples``).

Everything depends only on the applied events in order: same input → same outputs.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from stream.core.activity import DailyTouches
from stream.core.features import DAY_MS, vector
from stream.core.outputs import SegmentChange, json_line, rfc3339_ms
from stream.core.schedule import Schedule, training_flags
from stream.core.segmentation import Segmenter, drift_events, lifecycle_events, rescore_due
from stream.core.state import CustomerState
from stream.core.trainer import Trainer

MINUTE_MS = 60_000


class SegmentationStage:
    """Trainer and scorer as an engine `Stage`.

    Parameters
    ----------
    trainer
        The trainer (its seed and cadence decide the models).
    segmenter
        The scorer and change publisher.
    sample_rate
        Share of recently active customers whose vector is a training sample each day.
    max_daily_samples
        At most this many training samples a day (the trainer's cost grows with them).
    monitor_rate, max_daily_monitor
        Share of recently active customers whose vector feeds the drift detectors each day, and
        at most how many (a superset of the training sample: the smallest hashes train).
    sample_horizon_days
        Customers with an event within this many days are sampled (lapsing ones included).
    tick_minutes
        Customers updated within one tick of event time are scored together at its end.
    idle_days
        A customer without events for this long is re-evaluated as the watermark moves on.
    """

    def __init__(
        self,
        trainer: Trainer,
        segmenter: Segmenter,
        sample_rate: float = 0.05,
        tick_minutes: float = 60.0,
        idle_days: float = 1.0,
        max_daily_samples: int = 100,
        sample_horizon_days: float = 90.0,
        monitor_rate: float | None = None,
        max_daily_monitor: int | None = None,
    ) -> None:
        self.trainer = trainer
        self.segmenter = segmenter
        self.sample_rate = sample_rate
        self.tick_minutes = tick_minutes
        self.idle_days = idle_days
        self.max_daily_samples = max_daily_samples
        self.sample_horizon_days = sample_horizon_days
        self.monitor_rate = monitor_rate
        self.max_daily_monitor = max_daily_monitor
        self.schedule = Schedule(
            trainer.seed,
            max(sample_rate, monitor_rate or 0.0),
            max(max_daily_samples, max_daily_monitor or 0),
            sample_horizon_days,
            idle_days,
        )
        self._tick_ms = max(1, int(tick_minutes * MINUTE_MS))
        self._idle_ms = int(idle_days * DAY_MS)
        self.customers: dict[str, CustomerState] = {}
        self._dirty: dict[str, CustomerState] = {}
        self._tick_end: int | None = None
        self.changes: list[bytes] = []
        """Every segment change as its output line (`json_line`): a seventh of a change's size as a
        model, and all that is written of it; `by_reason` and `moved` keep what the report needs."""
        self.by_reason: Counter[str] = Counter()
        self.moved: Counter[tuple[int, int]] = Counter()
        """Changes between two segments, by (from, to) segment id."""
        self.events: list[dict[str, Any]] = []
        self.models: list[dict[str, Any]] = []
        self.drift_counts: Counter[tuple[str, str]] = Counter()
        self.touches = DailyTouches()
        self.activity: list[tuple[int, list[int] | None]] = []
        """Each day's organic touches by tenure band (`stream.core.activity`), by the boundary
        that ended the day."""

    def before_applied(self, t: int) -> None:
        """Close the ticks and days that ``t`` has passed, before its event is applied: a day's
        sample is every state as of the day boundary (the worker's `Assigner` samples at the
        same point, so both learn from the same vectors)."""
        if self._tick_end is None:
            self._tick_end = t - t % self._tick_ms + self._tick_ms
            self.schedule.advance(t)
        if t >= self._tick_end:
            self._close_tick(t)

    def on_applied(self, customer_id: str, state: CustomerState, event_id: str, t: int) -> None:
        """Note the update (ticks and days were closed by `before_applied`) and count it if it
        was an organic touch (`stream.core.activity`)."""
        self.touches.add(state, t)
        self.customers[customer_id] = state
        self.schedule.seen(customer_id, state.last_ts)
        self._dirty[customer_id] = state

    def _close_tick(self, t: int) -> None:
        self._score_dirty()
        days = self.schedule.advance(t)
        for day in days:
            self._rescore_idle(day)
        for day in days:  # each day's sample, also after a gap without events
            self._learn(day)
        self._tick_end = t - t % self._tick_ms + self._tick_ms

    def _score(self, batch: list[tuple[str, CustomerState, int]]) -> None:
        """Score a batch and schedule each customer's next quiet-time re-evaluation."""
        self._keep(self.segmenter.score(batch))
        for cid, state, _ in batch:
            self.schedule.scored(cid, state)

    def _keep(self, changes: list[SegmentChange]) -> None:
        for c in changes:
            self.changes.append(json_line(c.model_dump(mode="json")))
            self.by_reason[c.reason] += 1
            if c.previous and c.current and c.previous.segment_id != c.current.segment_id:
                self.moved[c.previous.segment_id, c.current.segment_id] += 1

    def _score_dirty(self) -> None:
        if self._dirty:
            self._score([(cid, s, s.last_ts) for cid, s in self._dirty.items()])
            self._dirty = {}

    def _rescore_idle(self, watermark: int) -> None:
        self._score(self.schedule.idle(watermark, self.customers.get))

    def _learn(self, watermark: int) -> None:
        """Feed the day's sample (`Schedule.sample`) to the trainer: the training samples
        (`training_flags`) to learn, the others to its drift detectors only; the day's organic
        touches first (`Trainer.observe_day`)."""
        touches = self.touches.take(watermark)
        self.activity.append((watermark, touches))
        self.trainer.observe_day(watermark, touches)
        self._drift()
        keyed = self.schedule.sample_keyed(watermark)
        flags = training_flags([k for k, _ in keyed], self.sample_rate, self.max_daily_samples)
        for (_, cid), train in zip(keyed, flags, strict=True):
            s = self.customers[cid]
            x = vector(s, max(watermark, s.last_ts))
            if not train:
                self.trainer.watch_one(x, watermark)
                self._drift()
                continue
            published = self.trainer.learn_one(x, watermark) is not None
            self._drift()
            if published:
                self._publish(watermark)

    def _drift(self) -> None:
        found = self.trainer.take_detections()
        if found:
            model = self.segmenter.model
            self.events += [e.model_dump(mode="json")
                            for e in drift_events(found, model.version if model else 0)]  # fmt: skip
            self.drift_counts.update((d.level, d.detector) for d in found)

    def _publish(self, t: int) -> None:
        model = self.trainer.model
        assert model is not None
        matching = self.trainer.history[-1]["matching"]
        self._score_dirty()  # what happened before the model changed is scored with the old one
        self.segmenter.set_model(model)
        self.events += [e.model_dump(mode="json") for e in lifecycle_events(model, matching)]
        self.models.append(json.loads(model.encode()))
        # Members of segments that no longer exist move now; the first model assigns everyone.
        self._score(self.segmenter.reassess(self.customers.items(), t))

    def forget(self, customer_id: str) -> None:
        """Drop an erased customer."""
        self.customers.pop(customer_id, None)
        self.schedule.forget(customer_id)
        self._dirty.pop(customer_id, None)

    def finish(self, watermark: int, out: dict[str, list[bytes]]) -> None:
        """Score what is pending, re-evaluate quiet customers at the watermark, write outputs."""
        self._score_dirty()
        final = [(c, s, watermark) for c, s in self.customers.items()
                 if (due := rescore_due(s, self._idle_ms)) is not None and due <= watermark]  # fmt: skip
        self._score(final)
        out["segment-changes"] = self.changes
        out["segment-events"] = [json_line(e) for e in self.events]
        out["segment-model"] = [json_line(m) for m in self.models]

    def report(self) -> dict[str, Any]:
        """The segmentation sections of ``report.json``: model, changes, segment profiles."""
        model = self.segmenter.model
        return {
            "segmentation": {
                "model_version": model.version if model else 0,
                "training_samples": self.trainer.n,
                "snapshots": len(self.models),
                "changes": len(self.changes),
                "changes_by_reason": dict(sorted(self.by_reason.items())),
                "assigned_customers": sum(1 for s in self.customers.values() if s.segment_id),
                "drift_detections": {
                    **{f"{lvl}/{det}": n for (lvl, det), n in sorted(self.drift_counts.items())},
                    "customer/page_hinkley": self.segmenter.customer_drifts,
                },
            },
            "segments": self.profiles(),
            "activity": [
                {"day": rfc3339_ms(end - DAY_MS)[:10], "touches": touches}
                for end, touches in self.activity
            ],
        }

    def profiles(self) -> list[dict[str, Any]]:
        """Per live segment: name, size, share, traits, value tier, action, micro-segment sizes
        and movement in and out (behavioural and model-driven changes between segments)."""
        model = self.segmenter.model
        if model is None:
            return []
        sizes = Counter(s.segment_id for s in self.customers.values() if s.segment_id)
        micro = Counter(s.micro_id for s in self.customers.values() if s.segment_id)
        moved_in: Counter[int] = Counter()
        moved_out: Counter[int] = Counter()
        for (before, after), n in self.moved.items():
            moved_in[after] += n
            moved_out[before] += n
        total = max(sum(sizes.values()), 1)
        return [
            {
                "segment_id": s.id,
                "name": s.name,
                "size": sizes[s.id],
                "share": round(sizes[s.id] / total, 4),
                "traits": s.traits,
                "value_tier": s.value_tier,
                "suggested_action": s.action,
                "micro_segments": [{"id": m.id, "size": micro[m.id]} for m in s.micro],
                "moved_in": moved_in[s.id],
                "moved_out": moved_out[s.id],
            }
            for s in model.segments
        ]
