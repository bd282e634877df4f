"""Prometheus metrics. Names are prefixed ``microseg_``; units are seconds and bytes; no label
ever carries a customer id (labels are streams, event types, outcomes and reason codes, all from
closed sets).

Each worker owns one `Metrics` (its own registry), so several apps can live in one process
(tests) without colliding.

No ``*_created`` series: prometheus_client's creation-time samples of counters, histograms and
summaries are turned off when a `Metrics` is set up (the switch is process-wide; nothing here
reads them, nor does any dashboard or alert).
"""

from __future__ import annotations

import time

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from stream.core.ingest import BatchResult
from stream.core.model import SegmentModel

CONTENT_TYPE = CONTENT_TYPE_LATEST


class Metrics:
    """The worker's metrics."""

    def __init__(self) -> None:
        # Here, not at import: no *_created noise on /metrics.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.events = Counter(
            "microseg_events",
            "Input events by stream, type and outcome (accepted, duplicate, dead_lettered).",
            ["stream", "type", "outcome"],
            registry=r,
        )
        self.dead_letters = Counter(
            "microseg_dead_letters",
            "Events sent to the dead-letter topic, by source stream and reason code.",
            ["stream", "reason"],
            registry=r,
        )
        self.duplicates = Counter(
            "microseg_duplicates_skipped",
            "Redelivered records recognised and skipped, by stream.",
            ["stream"],
            registry=r,
        )
        self.too_old = Counter(
            "microseg_late_events",
            "Events older than the lateness bound (relative to the customer's newest), ignored.",
            ["stream"],
            registry=r,
        )
        self.batch_seconds = Histogram(
            "microseg_batch_processing_seconds",
            "Wall time to process one batch of input records.",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=r,
        )
        self.batch_size = Histogram(
            "microseg_batch_records",
            "Records per processed batch.",
            buckets=(1, 5, 10, 50, 100, 250, 500, 1000, 2500, 5000),
            registry=r,
        )
        self.agent_errors = Counter(
            "microseg_agent_errors",
            "Unexpected exceptions caught in an agent (the batch is retried record by record).",
            ["agent"],
            registry=r,
        )
        for agent in ("ingest", "state_decode", "erasure", "feature_sample", "trainer",
                      "segment_model", "change_feed"):  # fmt: skip
            self.agent_errors.labels(agent)  # every series exists from the start (alerts)
        self.ready = Gauge(
            "microseg_ready", "1 when the worker has its partitions and has recovered.", registry=r
        )

        self.segment_changes = Counter(
            "microseg_segment_changes",
            "Segment-change events emitted, by previous and new segment id and reason.",
            ["from_segment", "to_segment", "reason"],
            registry=r,
        )
        self.rescored = Counter(
            "microseg_quiet_rescored",
            "Quiet customers re-evaluated as the event-time watermark passed a day boundary.",
            registry=r,
        )
        self.samples_sent = Counter(
            "microseg_feature_samples_sent",
            "Feature vectors sent to the trainer (feature-samples topic).",
            registry=r,
        )
        self.organic_touches = Counter(
            "microseg_organic_touches",
            "Customers' organic touches (visits and orders of their own accord) counted for the "
            "population-activity drift test: in a day's report, or too late for it.",
            ["outcome"],
            registry=r,
        )
        for outcome in ("reported", "late"):
            self.organic_touches.labels(outcome)
        self.trainer_samples = Counter(
            "microseg_trainer_samples",
            "Feature samples the trainer learnt (only on the worker running the trainer).",
            registry=r,
        )
        self.trainer_late_samples = Counter(
            "microseg_trainer_late_samples",
            "Feature samples that reached the trainer after their day had been learnt without "
            "them (a partition more than 2 days of event time behind another: workers far apart "
            "while catching up); learnt late, out of the offline replay's order.",
            registry=r,
        )
        self.model_version = Gauge(
            "microseg_model_version", "Version of the segment model this worker scores with.",
            registry=r,
        )  # fmt: skip
        self.model_segments = Gauge(
            "microseg_model_segments", "Live segments in the model this worker scores with.",
            registry=r,
        )  # fmt: skip
        self.model_trained_at = Gauge(
            "microseg_model_trained_at_seconds",
            "Event time (Unix seconds) the current model was trained at.",
            registry=r,
        )

        self.erasures = Counter(
            "microseg_erasures", "Customers erased (GDPR) on this worker.", registry=r
        )
        self.drift = Counter(
            "microseg_drift_detections",
            "Drift detections by level (model_fit, segment: the trainer; customer: the scorer) "
            "and river.drift detector.",
            ["level", "detector"],
            registry=r,
        )
        for level, detector in (("model_fit", "adwin"), ("model_fit", "page_hinkley"),
                                ("segment", "adwin"), ("customer", "page_hinkley")):  # fmt: skip
            self.drift.labels(level, detector)
        self.event_time_lag = Histogram(
            "microseg_event_time_lag_seconds",
            "Wall clock minus event time of each updated customer's newest event, per batch.",
            buckets=(
                0.05,
                0.1,
                0.25,
                0.5,
                1,
                2.5,
                5,
                10,
                30,
                60,
                300,
                900,
                3600,
                86_400,
                2_592_000,
            ),
            registry=r,
        )
        self.consumer_lag = Gauge(
            "microseg_consumer_lag_records",
            "Records not yet read per assigned partition (Fetch high watermark minus position).",
            ["topic", "partition"],
            registry=r,
        )
        self.customers = Gauge(
            "microseg_customers", "Customers whose state this worker holds.", registry=r
        )
        self.state_bytes = Gauge(
            "microseg_state_bytes", "Encoded customer state this worker holds, in bytes.",
            registry=r,
        )  # fmt: skip
        self.segment_customers = Gauge(
            "microseg_segment_customers",
            "This worker's customers per segment id (sum over workers for the population).",
            ["segment"],
            registry=r,
        )
        self.model_age = Gauge(
            "microseg_model_age_seconds",
            "Wall-clock seconds since this worker loaded the model it scores with.",
            registry=r,
        )
        self.input_held = Gauge(
            "microseg_input_held_records",
            "Input records fetched and held back so that the three input topics are consumed in "
            "step by event time (MICROSEG_ALIGN_MAX_WAIT_S), or until the trainer has learnt "
            "far enough (MICROSEG_PACE_MAX_WAIT_S).",
            registry=r,
        )
        self.input_forced = Counter(
            "microseg_input_forced_releases",
            "Times a partition's held input records went ahead after MICROSEG_ALIGN_MAX_WAIT_S "
            "without the earlier records of another topic they waited for.",
            registry=r,
        )
        self.input_pace_timeouts = Counter(
            "microseg_input_pace_timeouts",
            "Times input went ahead of the trainer's progress after MICROSEG_PACE_MAX_WAIT_S "
            "without any (trainer down or far behind).",
            registry=r,
        )
        self.paced_steps = Counter(
            "microseg_input_paced_steps",
            "Times a partition whose next input records all waited for the trainer stepped its "
            "calendar to the pace horizon, sending the samples of the days it passed.",
            registry=r,
        )
        self.trainer_learnt_until = Gauge(
            "microseg_trainer_learnt_until_seconds",
            "Event time (Unix seconds) up to which the trainer has learnt every day, as it "
            "reported last; input is paced to a few days past it.",
            registry=r,
        )
        self._totals: dict[str, int] = {}
        self._model_loaded_at: float | None = None

    def model(self, model: SegmentModel) -> None:
        """Record the model now scored with."""
        self._model_loaded_at = time.time()
        self.model_version.set(model.version)
        self.model_segments.set(len(model.segments))
        self.model_trained_at.set(model.trained_at / 1000)

    def observe(self, result: BatchResult) -> None:
        """Count what a batch did."""
        for (stream, type_, outcome), n in result.counts.items():
            self.events.labels(stream, type_, outcome).inc(n)
            if outcome == "duplicate":
                self.duplicates.labels(stream).inc(n)
            elif outcome == "too_old":
                self.too_old.labels(stream).inc(n)
        for (stream, reason), n in result.rejected.items():
            self.dead_letters.labels(stream, reason).inc(n)

    def refresh(
        self,
        lags: dict[tuple[str, int], int],
        customers: int,
        state_bytes: int,
        sizes: dict[int, int],
    ) -> None:
        """Set the gauges that are read at scrape time."""
        self.consumer_lag.clear()
        for (topic, partition), lag in sorted(lags.items()):
            self.consumer_lag.labels(topic, str(partition)).set(lag)
        self.customers.set(customers)
        self.state_bytes.set(state_bytes)
        self.segment_customers.clear()
        for segment, n in sorted(sizes.items()):
            self.segment_customers.labels(str(segment)).set(n)
        if self._model_loaded_at is not None:
            self.model_age.set(time.time() - self._model_loaded_at)

    def aligned(self, held: int, forced: int, pace_timeouts: int = 0) -> None:
        """Record the input alignment's held records now, its forced releases and the pacing's
        timeouts (both so far)."""
        self.input_held.set(held)
        self._count_up(self.input_forced, "forced", forced)
        self._count_up(self.input_pace_timeouts, "pace_timeouts", pace_timeouts)

    def trainer_progress(self, learnt_until: int) -> None:
        """Record the trainer's reported progress (event time, ms)."""
        self.trainer_learnt_until.set(learnt_until / 1000)

    def exposition(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)

    def customer_drifts(self, total: int) -> None:
        """Count the scorer's customer-level drift detections (``total`` so far)."""
        self._count_up(self.drift.labels("customer", "page_hinkley"), "customer_drifts", total)

    def _count_up(self, counter: Counter, name: str, total: int) -> None:
        """Advance ``counter`` to ``total``, a running count kept elsewhere (what it was last
        advanced to is ``self._totals[name]``)."""
        done = self._totals.get(name, 0)
        if total > done:
            counter.inc(total - done)
            self._totals[name] = total
