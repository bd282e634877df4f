"""``microseg bench``: the offline part runs and reports every figure; the end-to-end figures are
put together right (the end-to-end run itself: tests/integration/test_bench_e2e.py). No timing
asserts."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from stream.bench import generate
from stream.bench.data import lines
from stream.bench.latency import summarize
from stream.bench.procs import covered, figures
from stream.bench.report import e2e_targets, render_e2e
from stream.cli import main

FIGURES = (
    "read_decode_events_per_s",
    "read_validate_events_per_s",
    "offline_replay_events_per_s",
    "offline_over_read_decode",
    "state_bytes_per_customer",
    "engine_memory_bytes_per_customer",
)


def test_bench_json_has_every_figure(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(
            [
                "bench",
                "--events",
                "2000",
                "--customers",
                "300",
                "--repeat",
                "1",
                "--json",
                "--no-e2e",
            ]
        )
        == 0
    )
    result = json.loads(capsys.readouterr().out)
    for name in FIGURES:
        value = result[name]
        assert isinstance(value, int | float) and not isinstance(value, bool), name
        assert value > 0, name
    assert result["events"] == 2000
    assert result["counts"]["lines"] == 2000
    assert result["counts"]["dead_lettered"] > 0  # the synthetic data carries bad lines
    assert set(result["machine"]) >= {"cpu_count", "python", "platform"}
    for target in ("offline_events_per_s", "state_bytes_per_customer"):
        assert isinstance(result["targets"][target]["met"], bool)
        assert result["targets"][target]["target"] > 0


def test_bench_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--events", "500", "--customers", "50", "--repeat", "1", "--no-e2e"]) == 0
    out = capsys.readouterr().out
    assert "offline replay" in out and "events/s" in out and "bytes" in out


@pytest.mark.parametrize(
    ("flags", "sizes"),
    [([], (300_000, 30_000, 3)), (["--quick"], (20_000, 2_000, 1)),
     (["--quick", "--events", "700"], (700, 2_000, 1))],
)  # fmt: skip
def test_quick_is_small_unless_told_otherwise(
    flags: list[str], sizes: tuple[int, int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    from stream.bench import report

    seen: list[tuple[int, int, int]] = []

    def run_bench(events: int, customers: int, repeat: int) -> dict[str, object]:
        seen.append((events, customers, repeat))
        return {}

    monkeypatch.setattr(report, "run_bench", run_bench)
    assert main(["bench", "--no-e2e", "--json", *flags]) == 0
    assert seen == [sizes]


def test_synthetic_data_is_deterministic(tmp_path: Path) -> None:
    a, b = tmp_path / "a.jsonl.gz", tmp_path / "b.jsonl.gz"
    generate(a, 300, 40)
    generate(b, 300, 40)
    assert gzip.decompress(a.read_bytes()) == gzip.decompress(b.read_bytes())


def test_lines_with_a_prefix_and_start_are_new_events() -> None:
    a = list(lines(200, 30))
    b = list(lines(200, 30, start_ms=1_800_000_000_000, prefix="l"))
    ids_a = {json.loads(x)["event_id"] for x in a if x.startswith(b"{") and b"event_id" in x}
    ids_b = {json.loads(x)["event_id"] for x in b if x.startswith(b"{") and b"event_id" in x}
    assert ids_b and all(i.startswith("l") for i in ids_b - {"x"})
    assert not (ids_a - {"x"}) & (ids_b - {"x"})


def _snap(count: int, first: float, last: float, offsets: list[list[object]]) -> dict[str, object]:
    return {"count": count, "first_in": first, "last_out": last, "cpu_first_in": 1.0,
            "cpu_last_out": 2.0, "rss_first_in": 100, "rss_now": 300, "max_offset": offsets,
            "assignments": 2}  # fmt: skip


def test_figures_span_every_process_and_coverage_needs_every_partition() -> None:
    a = _snap(600, 10.0, 12.0, [["t", 0, 599]])
    b = _snap(400, 10.5, 14.0, [["t", 1, 399]])
    fig = figures([a, b], 1000, [2, 1])
    assert fig["events_per_s"] == 250 and fig["seconds"] == 4.0
    assert fig["processed"] == 1000 and fig["redelivered"] == 0
    assert fig["rebalances"] == 1  # the second process was assigned again after the gate opened
    assert [p["cpu_share"] for p in fig["processes"]] == [0.25, 0.25]
    assert covered([a, b], {("t", 0): 599, ("t", 1): 399})
    assert not covered([a], {("t", 0): 599, ("t", 1): 399})
    assert not covered([a, b], {("t", 0): 600, ("t", 1): 399})


def test_latency_takes_the_change_when_there_is_one() -> None:
    lat = {"topic": ["t", "t", "t", "t"], "partition": [0, 0, 1, 1], "offset": [5, 6, 7, 8],
           "ms": [40.0, 50.0, 60.0, 70.0]}  # fmt: skip
    sent = {("t", 0, 5): ("c1", 1000, 10_000), ("t", 0, 6): ("c2", 2000, 10_010),
            ("t", 1, 7): ("c3", 3000, 10_020), ("t", 1, 8): ("c3", 2500, 10_040)}  # fmt: skip
    # c1's change is its record's; c3's second record (late: older event time) caused the change
    # that carries the first one's event time; a change before any record of c2 is not c2's
    changes = [("c1", 10_030), ("c3", 10_045), ("c2", 10_005), ("c1", 10_090)]
    r = summarize(lat, sent, changes)
    assert r["count"] == 4
    assert r["to_segment_change"]["count"] == 2
    assert sorted([r["to_segment_change"]["p50_ms"], r["to_segment_change"]["max_ms"]]) == [
        17.5,
        30.0,
    ]
    assert r["to_processed_mark"]["max_ms"] == 70.0
    assert r["max_ms"] == 60.0  # combined: 30 (change), 50, 60, 5 (change)


def _e2e(worker: int, p99: float) -> dict[str, object]:
    def contender(rate: int) -> dict[str, object]:
        proc = {"count": 10, "cpu_seconds": 1.0, "cpu_share": 0.5, "rss_first_in_bytes": 1,
                "rss_after_bytes": 2}  # fmt: skip
        return {"events_per_s": rate, "redelivered": 0, "processes": [proc]}

    c = {"count": contender(10_000), "table_send": contender(2_000), "worker": contender(worker)}
    c["worker"]["rss_bytes_per_100k_customers"] = 50_000_000
    c["worker"]["rss_bytes_per_100k_customers_net_of_count"] = 40_000_000
    stats = {"count": 5, "p50_ms": 10.0, "p99_ms": p99}
    lat = {**stats, "offered_events_per_s": 100, "load_share": 0.7, "events": 5,
           "to_segment_change": stats, "to_processed_mark": stats}  # fmt: skip
    return {"events": 10, "customers": 3, "partitions": 6, "broker": "x", "contenders": c,
            "latency": lat}  # fmt: skip


def test_targets_are_met_exactly_at_the_line() -> None:
    t = e2e_targets(_e2e(7_000, 100.0))
    assert t["throughput_over_count"] == {"target": 0.7, "value": 0.7, "met": True}
    assert (
        t["throughput_over_table_send"]["value"] == 3.5 and t["throughput_over_table_send"]["met"]
    )
    assert t["p99_latency_ms"]["met"]
    t = e2e_targets(_e2e(5_000, 100.1))
    assert not t["throughput_over_count"]["met"] and t["throughput_over_table_send"]["met"] is False
    assert not t["p99_latency_ms"]["met"]
    assert "NOT met" in render_e2e(_e2e(5_000, 100.1), t)
