"""The worker's ``/metrics`` text (`Metrics.exposition`, what the web view serves).

prometheus_client adds a ``<name>_created`` sample (the series' creation time) to every counter,
histogram and summary child unless told not to: over a hundred series of noise that no dashboard
or alert reads. `Metrics` turns them off when it is set up.
"""

from __future__ import annotations

from prometheus_client import enable_created_metrics
from prometheus_client.parser import text_string_to_metric_families

from stream.adapters.metrics import Metrics


def test_exposition_has_no_created_series() -> None:
    # As in a fresh process: the switch is process-wide, and setting up Metrics must flip it.
    enable_created_metrics()
    metrics = Metrics()
    # Children of every kind: labelled and plain counters, histograms, gauges.
    metrics.events.labels("clickstream", "view", "accepted").inc(3)
    metrics.dead_letters.labels("email", "invalid_json").inc()
    metrics.samples_sent.inc(2)
    metrics.customer_drifts(5)
    metrics.batch_seconds.observe(0.01)
    metrics.batch_size.observe(42)
    metrics.event_time_lag.observe(3.0)
    metrics.ready.set(1)

    text = metrics.exposition().decode()
    names = {
        sample.name for family in text_string_to_metric_families(text) for sample in family.samples
    }
    assert "_created" not in text
    assert not {name for name in names if name.endswith("_created")}
    # The series themselves are still there.
    assert {
        "microseg_events_total",
        "microseg_feature_samples_sent_total",
        "microseg_drift_detections_total",
        "microseg_batch_processing_seconds_bucket",
        "microseg_batch_processing_seconds_count",
        "microseg_ready",
    } <= names
