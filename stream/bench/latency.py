"""Latency of the bench's paced phase: produce time → segment change, or → processed mark.

For each record of the paced phase:

* produce time: the record's timestamp, set by the bench's producer when it hands the record over
  (the same wall clock as the worker: one machine);
* if the worker emitted a segment change for it, the latency is the change record's timestamp (set
  by the worker's producer when the change was sent) minus the produce time. A change is
  attributed to the customer's newest record produced before it: the change's ``event_time`` (the
  customer's newest event time) does not name the cause when a late or re-sent record caused it;
* otherwise the processed mark: when the worker acknowledged the record (its batch processed,
  state written, outputs handed to the producer; `stream.adapters.probe`) minus the produce time.
"""

from __future__ import annotations

import bisect
import json
import time
from typing import Any

import numpy as np

Sent = dict[tuple[str, int, int], tuple[str, int, int]]
"""(topic, partition, offset) → (customer id, event time ms, produce time ms) of a paced record."""


def read_changes(
    bootstrap: list[str], topic: str, since_ms: int, security: dict[str, Any], quiet_s: float = 1.5
) -> list[tuple[str, int]]:
    """(customer id, record timestamp) of each change to a segment sent after ``since_ms``.

    Reads ``topic`` from the beginning until it has been quiet for ``quiet_s`` (at most 60 s).
    """
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        fetch_max_wait_ms=100,
        max_partition_fetch_bytes=16 * 1024 * 1024,
        **security,
    )
    out: list[tuple[str, int]] = []
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        deadline = time.monotonic() + 60
        quiet_since = time.monotonic()
        while time.monotonic() < deadline and time.monotonic() - quiet_since < quiet_s:
            batch = consumer.poll(timeout_ms=200)
            for records in batch.values():
                quiet_since = time.monotonic()
                for r in records:
                    if r.timestamp < since_ms:
                        continue
                    change = json.loads(r.value)
                    if change.get("current") is None:
                        continue
                    out.append((change["customer_id"], r.timestamp))
    finally:
        consumer.close()
    return out


def _pcts(values: list[float]) -> dict[str, float | int]:
    if not values:
        return {"count": 0}
    a = np.asarray(values)
    p50, p99 = np.percentile(a, [50, 99])
    return {"count": len(values), "p50_ms": round(float(p50), 1), "p99_ms": round(float(p99), 1),
            "max_ms": round(float(a.max()), 1)}  # fmt: skip


def attribute(sent: Sent, changes: list[tuple[str, int]]) -> dict[tuple[str, int, int], int]:
    """(topic, partition, offset) → time of the first change attributed to that record."""
    by_customer: dict[str, list[tuple[int, tuple[str, int, int]]]] = {}
    for tpo, (cid, _, produced) in sent.items():
        by_customer.setdefault(cid, []).append((produced, tpo))
    for records in by_customer.values():
        records.sort()
    out: dict[tuple[str, int, int], int] = {}
    for cid, at in changes:
        records = by_customer.get(cid, [])
        i = bisect.bisect_right([produced for produced, _ in records], at) - 1
        if i >= 0:
            tpo = records[i][1]
            out[tpo] = min(at, out.get(tpo, at))
    return out


def summarize(lat: dict[str, Any], sent: Sent, changes: list[tuple[str, int]]) -> dict[str, Any]:
    """p50/p99 of the combined latency (change, else processed mark) and of each kind."""
    changed = attribute(sent, changes)
    combined: list[float] = []
    to_change: list[float] = []
    processed: list[float] = []
    for t, p, o, ms in zip(lat["topic"], lat["partition"], lat["offset"], lat["ms"], strict=True):
        processed.append(ms)
        at = changed.get((t, p, o))
        if at is not None:
            to_change.append(float(at - sent[(t, p, o)][2]))
            combined.append(to_change[-1])
        else:
            combined.append(ms)
    out: dict[str, Any] = dict(_pcts(combined))
    out["to_segment_change"] = _pcts(to_change)
    out["to_processed_mark"] = _pcts(processed)
    return out
