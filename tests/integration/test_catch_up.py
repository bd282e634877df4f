"""A backlog: a worker started on topics that already hold 40 days of events computes what the
offline replay computes.

Faust hands a worker the records of its topics round-robin, one record per topic at a time, so
the topic with the fewest records per day (e-mail) runs ahead in event time while a backlog is
consumed. The worker releases its input records in event-time order (`stream.adapters.align`).
Measured on this file with that turned off (``MICROSEG_ALIGN_MAX_WAIT_S=0``): 2,246 of the 89,330
events ignored as older than their customer's newest by more than the 30-day lateness bound,
each day's organic touches a third of the offline count, 4,274 of 6,445 samples reaching the
trainer after their day had been learnt (partitions consumed days apart), and every published
model different from the offline one. With it on: none ignored, every day's count and every
model as offline.

The worker also paces its input by the trainer's progress (`stream.adapters.pace`), so each day
is scored with the models of its time: the final segments agree with the offline replay's at ARI
.940–.945, against .656 with ``MICROSEG_PACE_MAX_WAIT_S=0`` (every customer scored once, by an
early model, when the worker outran the trainer).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from stream.adapters.model_feed import MODEL_KEY
from stream.core.collate import Collator, SampleReport
from stream.core.evaluation import adjusted_rand
from tests.integration.harness import key_partition, metric_sum, read_topic, wait_for
from tests.integration.test_cli import _cli
from tests.integration.test_segmentation import (
    SEGMENTATION,
    final_segments,
    simulated_with_offline,
    touches_against_offline,
)

pytestmark = pytest.mark.integration


def test_a_backlog_is_consumed_in_event_time_order_as_offline(
    broker, names, spawn, worker_env, tmp_path: Path
) -> None:
    env = {**worker_env, **SEGMENTATION}
    events, total = simulated_with_offline(tmp_path, env)
    # The whole file into the topics first, as fast as it goes; then the worker.
    result = _cli("replay", str(events), "--no-progress", env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    worker = spawn(**SEGMENTATION, MICROSEG_DATA_DIR=str(tmp_path / "w"))
    worker.wait_ready()

    def consumed() -> float:
        return metric_sum(worker.metrics(), "microseg_events_total")

    wait_for(lambda: consumed() >= total, 300, f"the worker to consume {total} events", 1.0)
    m = worker.metrics()
    assert metric_sum(m, "microseg_events_total", outcome="too_old") == 0
    assert metric_sum(m, "microseg_events_total", outcome="accepted") == total
    assert metric_sum(m, "microseg_input_held_records") == 0
    # Held records that went ahead after MICROSEG_ALIGN_MAX_WAIT_S (none in the runs measured)
    # would explain a difference below.
    forced = metric_sum(m, "microseg_input_forced_releases_total")

    # Each day's organic touches, summed over the partitions, as the offline replay counted.
    records = read_topic(broker.bootstrap, names.topic("feature-samples"))
    reports = [json.loads(r.value) for r in records]
    pairs = touches_against_offline(reports, names.partitions, tmp_path / "off")
    print("organic touches a day, online and offline:", pairs)
    assert len(pairs) >= 35
    assert all(abs(on - off) <= 0.01 * off + 1 for _, on, off in pairs), (forced, pairs)

    # No report reached the trainer after its day had been learnt: the partitions were consumed
    # in step, so the trainer learnt what the offline replay learnt, and published its models.
    collator = Collator(names.partitions)
    for r in records:
        collator.add(SampleReport.decode(r.value))
    assert collator.late == 0, forced
    with open(tmp_path / "off" / "segment-model.jsonl") as fh:
        want = [json.loads(line) for line in fh]

    def published() -> list[dict[str, Any]]:
        records = read_topic(broker.bootstrap, names.topic("segment-model"))
        return [json.loads(r.value) for r in records if r.key == MODEL_KEY]

    # The trainer agent learns the reports after the worker sent them: let it catch up.
    wait_for(
        lambda: len(published()) >= len(want), 120, f"the trainer to publish {len(want)} models"
    )
    online = published()
    assert metric_sum(worker.metrics(), "microseg_trainer_late_samples_total") == 0
    assert [m["version"] for m in online] == [m["version"] for m in want]
    for got, exp in zip(online, want, strict=True):
        assert [s["id"] for s in got["segments"]] == [s["id"] for s in exp["segments"]]
        a = np.asarray([s["centroid"] for s in got["segments"]])
        b = np.asarray([s["centroid"] for s in exp["segments"]])
        assert float(np.abs(a - b).max()) < 1e-6, (got["version"], forced)

    # Paced by the trainer's progress, the worker scored each day with the models of its time,
    # so its customers end in the offline replay's segments.
    wait_for(
        lambda: metric_sum(worker.metrics(), "microseg_model_version") == online[-1]["version"],
        60,
        "the worker to score with the newest model",
    )
    with open(tmp_path / "off" / "segment-changes.jsonl") as fh:
        want_segments = final_segments([json.loads(line) for line in fh])
    changes = [
        json.loads(r.value) for r in read_topic(broker.bootstrap, names.topic("segment-changes"))
    ]
    got_segments = final_segments(changes)
    customers = sorted(want_segments)
    ari = adjusted_rand(
        [got_segments.get(c, 0) for c in customers], [want_segments[c] for c in customers]
    )
    m = worker.metrics()
    timeouts = metric_sum(m, "microseg_input_pace_timeouts_total")
    print(f"online vs offline final segments: ARI {ari:.3f}; pace timeouts {timeouts}")
    assert ari >= 0.9, (ari, timeouts, forced)


QUIET = range(3, 13)
"""Days on which partition 0's customers do nothing, in `test_a_partition_with_quiet_days_...`."""


def _quiet_partition_backlog(
    path: Path, partitions: int, days: int | range = 20, quiet: range = QUIET
) -> tuple[int, int]:
    """A backlog of ``days`` days (or those of a range), 10 customers a partition, visiting
    every day, except that partition 0's are silent on ``quiet`` days. Returns (events, start
    in ms: of day 0)."""
    start = 1_717_200_000_000  # 2024-06-01T00:00:00Z
    by_partition: dict[int, list[str]] = {p: [] for p in range(partitions)}
    i = 0
    while any(len(ids) < 10 for ids in by_partition.values()):
        cid = f"quiet-{i:04d}"
        ids = by_partition[key_partition(cid.encode(), partitions)]
        if len(ids) < 10:
            ids.append(cid)
        i += 1
    rows: list[tuple[int, dict[str, Any]]] = []
    for day in days if isinstance(days, range) else range(days):
        for p, ids in by_partition.items():
            if p == 0 and day in quiet:
                continue
            for k, cid in enumerate(ids):
                t = start + day * 86_400_000 + (9 * 60 + 47 * k) * 60_000
                base = {"customer_id": cid, "channel": "web"}
                rows.append((t, {**base, "type": "session_start"}))
                rows.append((t + 60_000, {**base, "type": "page_view"}))
                if (day + k) % 4 == 0:
                    rows.append((t + 120_000, {**base, "type": "purchase", "order_id":
                                               f"o-{cid}-{day}", "amount": 20.0 + k}))  # fmt: skip
    rows.sort(key=lambda r: r[0])
    with path.open("w") as fh:
        for n, (t, ev) in enumerate(rows):
            ts = datetime.fromtimestamp(t / 1000, UTC).isoformat().replace("+00:00", "Z")
            fh.write(json.dumps({"event_id": f"q-{t}-{n}", "ts": ts, **ev}) + "\n")
    return len(rows), start


def test_a_partition_with_quiet_days_does_not_stall_a_paced_backlog(
    broker, names, spawn, worker_env, tmp_path: Path
) -> None:
    """Paced by the trainer's progress, the trainer learns a day once every partition has passed
    it, and a partition passes a day with its next record, which the pacer holds back when it is
    days ahead: everyone waited for ``MICROSEG_PACE_MAX_WAIT_S`` at each such gap (the demo's
    sparse history froze twice a run). The worker now steps that partition's calendar without
    the record, to the days its other partitions have reached
    (`stream.adapters.catch_up.step_paced`)."""
    path = tmp_path / "quiet.jsonl"
    total, start = _quiet_partition_backlog(path, names.partitions)
    env = {**worker_env, **SEGMENTATION}
    result = _cli("replay", str(path), "--no-progress", env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    # Waiting for the trainer at a gap would now outlast the test.
    worker = spawn(**SEGMENTATION, MICROSEG_PACE_MAX_WAIT_S="900",
                   MICROSEG_DATA_DIR=str(tmp_path / "w"))  # fmt: skip
    worker.wait_ready()

    def consumed() -> float:
        return metric_sum(worker.metrics(), "microseg_events_total")

    wait_for(lambda: consumed() >= total, 150, f"the worker to consume {total} events", 1.0)
    m = worker.metrics()
    assert metric_sum(m, "microseg_events_total", outcome="accepted") == total
    assert metric_sum(m, "microseg_input_pace_timeouts_total") == 0
    assert metric_sum(m, "microseg_input_paced_steps_total") >= 1
    # Partition 0 sent its sample for every day, its quiet days included, in time for the
    # trainer: no day was learnt without it.
    records = read_topic(broker.bootstrap, names.topic("feature-samples"))
    reports = [SampleReport.decode(r.value) for r in records]
    days: dict[int, set[int]] = {}
    for r in reports:
        days.setdefault(r.partition, set()).add(r.day)
    quiet_ends = {start + (d + 1) * 86_400_000 for d in QUIET}
    assert quiet_ends <= days[0], sorted(quiet_ends - days[0])
    assert days[0] >= {d for p in days for d in days[p] if d <= start + 18 * 86_400_000}
    collator = Collator(names.partitions)
    for r in reports:
        collator.add(r)
    assert collator.late == 0
    learnt = metric_sum(worker.metrics(), "microseg_trainer_learnt_until_seconds")
    assert learnt * 1000 >= start + 18 * 86_400_000, learnt


def test_a_restarted_worker_crosses_a_gap_in_event_time_without_waiting(
    broker, names, spawn, worker_env, tmp_path: Path
) -> None:
    """Days 0–5, a restart, then days 9–11: past the trainer's horizon (it learnt up to day 5,
    the narrow lead lets records before day 7 go). The trainer waits for day 5 from the worker
    and the worker can only pass it with the held records: the gap rule lets them go
    (`stream.adapters.pace.Pacer.gap`), but a restarted worker, which had processed nothing
    yet, saw no gap and waited ``MICROSEG_PACE_MAX_WAIT_S`` (30 s by default; an operator saw
    every worker stall so). It now counts from where its stored partitions had got."""
    env = {**worker_env, **SEGMENTATION}
    worker_settings = {**SEGMENTATION, "MICROSEG_PACE_MAX_WAIT_S": "900",
                       "MICROSEG_DATA_DIR": str(tmp_path / "w")}  # fmt: skip
    first, second = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    n1, start = _quiet_partition_backlog(first, names.partitions, range(6), quiet=range(0))
    n2, _ = _quiet_partition_backlog(second, names.partitions, range(9, 12), quiet=range(0))
    assert _cli("replay", str(first), "--no-progress", env=env, timeout=120).returncode == 0
    worker = spawn(**worker_settings)
    worker.wait_ready()

    def accepted(w: Any) -> float:
        return metric_sum(w.metrics(), "microseg_events_total", outcome="accepted")

    def learnt(w: Any) -> float:
        return metric_sum(w.metrics(), "microseg_trainer_learnt_until_seconds") * 1000

    wait_for(lambda: accepted(worker) >= n1, 120, f"the first {n1} events", 1.0)
    wait_for(lambda: learnt(worker) >= start + 5 * 86_400_000, 60, "the trainer to learn day 4")
    worker.stop()
    again = spawn(**worker_settings)
    again.wait_ready()
    assert _cli("replay", str(second), "--no-progress", env=env, timeout=120).returncode == 0
    wait_for(lambda: accepted(again) >= n2, 60, f"the restarted worker to apply {n2} events", 1.0)
    m = again.metrics()
    assert metric_sum(m, "microseg_input_pace_timeouts_total") == 0
    wait_for(lambda: learnt(again) >= start + 11 * 86_400_000, 60, "the trainer to learn day 10")
