"""``microseg bench``: run the offline and end-to-end parts, check the targets, print them."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from stream.bench.offline import render as render_offline
from stream.bench.offline import run_bench

TARGET_OVER_COUNT = 0.7
TARGET_OVER_TABLE_SEND = 3.0
TARGET_P99_MS = 100.0
QUICK_LATENCY_S = 2.0


def e2e_targets(e2e: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The end-to-end targets: throughput against both baselines, p99 latency."""
    c = e2e["contenders"]
    worker = c["worker"]["events_per_s"]
    over_count = worker / c["count"]["events_per_s"]
    over_table = worker / c["table_send"]["events_per_s"]
    p99 = e2e["latency"].get("p99_ms", float("inf"))
    return {
        "throughput_over_count": {"target": TARGET_OVER_COUNT, "value": round(over_count, 3),
                                  "met": over_count >= TARGET_OVER_COUNT},
        "throughput_over_table_send": {"target": TARGET_OVER_TABLE_SEND,
                                       "value": round(over_table, 3),
                                       "met": over_table >= TARGET_OVER_TABLE_SEND},
        "p99_latency_ms": {"target": TARGET_P99_MS, "value": p99, "met": p99 <= TARGET_P99_MS},
    }  # fmt: skip


def render_e2e(e2e: dict[str, Any], targets: dict[str, dict[str, Any]]) -> str:
    """The end-to-end table."""
    c = e2e["contenders"]

    def verdict(name: str) -> str:
        t = targets[name]
        return f"target {t['target']}: " + ("met" if t["met"] else "NOT met")

    rows = [
        ("consume-and-count agent", f"{c['count']['events_per_s']:>10,} events/s", ""),
        ("table-update-and-send agent", f"{c['table_send']['events_per_s']:>10,} events/s", ""),
        ("our worker (one process)", f"{c['worker']['events_per_s']:>10,} events/s", ""),
        ("  worker / count", f"{targets['throughput_over_count']['value']:>10.2f} ×",
         verdict("throughput_over_count")),
        ("  worker / table-update-and-send",
         f"{targets['throughput_over_table_send']['value']:>10.2f} ×",
         verdict("throughput_over_table_send")),
    ]  # fmt: skip
    if "two_workers" in c:
        two = c["two_workers"]
        rows.append(("two workers, one group", f"{two['events_per_s']:>10,} events/s",
                     f"{two['events_per_s'] / c['worker']['events_per_s']:.2f} × one; "
                     f"rebalances {two['rebalances']}, redelivered {two['redelivered']}"))  # fmt: skip
    lat = e2e["latency"]
    rows += [
        ("offered load (paced)", f"{lat['offered_events_per_s']:>10,} events/s",
         f"{lat['load_share']:.0%} of one worker, {lat['events']:,} events"),
        ("latency p50 (change, else processed)", f"{lat.get('p50_ms', 0):>10,.1f} ms", ""),
        ("latency p99 (change, else processed)", f"{lat.get('p99_ms', 0):>10,.1f} ms",
         verdict("p99_latency_ms")),
        ("  to a segment change: p50 / p99",
         f"{lat['to_segment_change'].get('p50_ms', 0):>10,.1f} ms",
         f"p99 {lat['to_segment_change'].get('p99_ms', 0):,.1f} ms, "
         f"{lat['to_segment_change']['count']:,} events"),
        ("  to the processed mark: p50 / p99",
         f"{lat['to_processed_mark'].get('p50_ms', 0):>10,.1f} ms",
         f"p99 {lat['to_processed_mark'].get('p99_ms', 0):,.1f} ms"),
        ("worker RSS per 100,000 customers",
         f"{c['worker']['rss_bytes_per_100k_customers'] / 1e6:>10,.1f} MB",
         f"{c['worker']['rss_bytes_per_100k_customers_net_of_count'] / 1e6:,.1f} MB net of "
         "the count agent's growth"),
    ]  # fmt: skip
    for name in ("count", "table_send", "worker"):
        p = c[name]["processes"][0]
        rows.append((f"  CPU share, {name}", f"{p['cpu_share']:>10.2f}", "of one core"))
    head = (
        f"end to end: {e2e['events']:,} events, {e2e['customers']:,} customers, "
        f"{e2e['partitions']} partitions, broker {e2e['broker']}\n"
    )
    width = max(len(a) for a, _, _ in rows)
    return head + "\n".join(f"  {a:<{width}}  {b}  {d}".rstrip() for a, b, d in rows)


def collect(args: argparse.Namespace) -> dict[str, Any]:
    """Every figure of one bench run, targets included."""
    repeat = 1 if args.quick else args.repeat
    result = run_bench(args.events, args.customers, repeat) if not args.no_offline else {}
    if not args.no_e2e:
        from stream.bench.e2e import E2EOptions, run_e2e
        from stream.config import Settings

        settings = Settings.load()
        events = min(args.events, args.e2e_events) if args.quick else args.e2e_events
        opts = E2EOptions(
            events=events,
            customers=min(args.customers, events),
            latency_seconds=QUICK_LATENCY_S if args.quick else args.latency_seconds,
            seed_customers=400 if args.quick else E2EOptions.seed_customers,
        )
        e2e = run_e2e(opts, settings)
        e2e["broker"] = "MICROSEG_BROKER" if settings.brokers else "embedded Tansu"
        result["e2e"] = e2e
        result.setdefault("targets", {}).update(e2e_targets(e2e))
    return result


QUICK_EVENTS, QUICK_CUSTOMERS = 20_000, 2_000
"""``--quick``'s sizes when ``--events`` / ``--customers`` are not given."""


def main(args: argparse.Namespace) -> int:
    """CLI entry of ``microseg bench``."""
    if args.events is None:
        args.events = QUICK_EVENTS if args.quick else 300_000
    if args.customers is None:
        args.customers = QUICK_CUSTOMERS if args.quick else 30_000
    if min(args.events, args.customers, args.repeat, args.e2e_events) < 1:
        print("microseg bench: sizes and --repeat must be ≥ 1", file=sys.stderr)
        return 2
    result = collect(args)
    if args.json:
        print(json.dumps(result, sort_keys=True))
        return 0
    parts = []
    if "events" in result:
        parts.append(render_offline(result))
    if "e2e" in result:
        parts.append(render_e2e(result["e2e"], result["targets"]))
    print("\n\n".join(parts))
    return 0
