"""The end-to-end bench on a tiny data set against the session broker: every figure is there,
positive, and every contender processed exactly the records produced (no timing asserts)."""

from __future__ import annotations

import pytest

from stream.adapters.embedded import EmbeddedBroker
from stream.bench.e2e import E2EOptions, run_e2e
from stream.bench.report import e2e_targets, render_e2e
from stream.config import Settings

EVENTS = 1500


@pytest.fixture(scope="module")
def result(broker: EmbeddedBroker) -> dict:
    settings = Settings.load(broker=broker.url, broker_kind="tansu", partitions=2)
    r = run_e2e(
        E2EOptions(events=EVENTS, customers=200, latency_seconds=1.0, seed_customers=400), settings
    )
    r["broker"] = "session"
    return r


def test_every_contender_processed_exactly_what_was_produced(result: dict) -> None:
    assert result["events"] == EVENTS
    assert 0 < result["customers"] <= 200
    contenders = result["contenders"]
    assert set(contenders) == {"count", "table_send", "worker", "two_workers"}
    for name, c in contenders.items():
        assert c["processed"] == EVENTS, name
        assert c["redelivered"] == 0, name
        assert c["rebalances"] == 0, name
        assert c["events_per_s"] > 0 and c["seconds"] > 0, name
        assert sum(p["count"] for p in c["processes"]) == EVENTS, name
        for p in c["processes"]:
            assert p["cpu_seconds"] > 0 and p["cpu_share"] > 0, name
            assert p["rss_after_bytes"] > 0 and p["rss_first_in_bytes"] > 0, name
    assert len(contenders["two_workers"]["processes"]) == 2
    assert all(p["count"] > 0 for p in contenders["two_workers"]["processes"])
    assert contenders["worker"]["rss_bytes_per_100k_customers"] > 0
    assert "rss_bytes_per_100k_customers_net_of_count" in contenders["worker"]


def test_latency_of_the_paced_phase(result: dict) -> None:
    lat = result["latency"]
    assert lat["offered_events_per_s"] > 0 and lat["load_share"] == 0.7
    # every paced record was acknowledged once and has a latency
    assert lat["count"] == lat["events"] == lat["to_processed_mark"]["count"] > 0
    assert 0 < lat["p50_ms"] <= lat["p99_ms"] <= lat["max_ms"]
    changes = lat["to_segment_change"]
    assert 0 < changes["count"] <= lat["count"]  # new customers in the paced set get assigned
    assert 0 < changes["p50_ms"] <= changes["p99_ms"]


def test_targets_and_table(result: dict) -> None:
    targets = e2e_targets(result)
    assert set(targets) == {"throughput_over_count", "throughput_over_table_send", "p99_latency_ms"}
    for t in targets.values():
        assert t["value"] > 0 and isinstance(t["met"], bool)
    table = render_e2e(result, targets)
    assert "consume-and-count" in table and "latency p99" in table and "RSS" in table
