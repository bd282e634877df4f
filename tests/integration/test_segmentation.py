"""Segmentation over the broker: two workers, one trainer, one model; online agrees with offline.

A simulated multi-stream file is replayed into Kafka while two workers share the partitions. The
trainer (on whichever worker owns ``feature-samples``) learns from the samples both send, in
whatever order they arrive, and publishes to ``segment-model``; both workers load it and score.
The final segment of each customer, read from ``segment-changes``, must agree with the offline
replay of the same file (issue 4: ARI ≥ 0.9).
"""

from __future__ import annotations

import json
import socket
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from stream.adapters.model_feed import MODEL_KEY, PROGRESS_KEY, read_progress
from stream.core.evaluation import adjusted_rand
from stream.simulate import run_simulate
from tests.integration.harness import key_partition, metric_sum, read_topic, wait_for
from tests.integration.test_cli import _cli

pytestmark = pytest.mark.integration

# Enough samples for a model within the first week of a 40-day stream of 600 customers.
SEGMENTATION = {
    "MICROSEG_SEGMENTS": "8",
    "MICROSEG_SAMPLE_RATE": "0.1",
    "MICROSEG_WARMUP_SAMPLES": "300",
    "MICROSEG_PUBLISH_EVERY": "300",
    "MICROSEG_API_TOKEN": "test-erasure-token",
}


def outward_ip() -> str | None:
    """This machine's address on its default route (no packet is sent), if it has one."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.connect(("10.255.255.255", 1))
        ip = str(sock.getsockname()[0])
    except OSError:
        return None
    finally:
        sock.close()
    return None if ip.startswith("127.") else ip


def _day(text: object) -> int:
    at = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    return int(at.timestamp() * 1000) // 86_400_000


def simulated_with_offline(tmp_path: Path, env: dict[str, str]) -> tuple[Path, int]:
    """These tests' simulated file (600 customers, 40 days) and its number of events; its
    offline replay is in ``tmp_path / "off"``."""
    events, truth = tmp_path / "sim.jsonl.gz", tmp_path / "truth.json"
    total = run_simulate(events, truth, customers=600, days=40, seed=11)["total"]
    offline = _cli("replay", str(events), "--offline", "--out", str(tmp_path / "off"), env=env)
    assert offline.returncode == 0, offline.stderr
    return events, int(total)


def touches_against_offline(
    reports: list[dict[str, Any]], partitions: int, offline_dir: Path
) -> list[tuple[str, int, int]]:
    """``(date, online, offline)`` organic touches of each day every partition reported in full
    (the first report of a partition and day counts, as the trainer's collator takes it), from
    the ``feature-samples`` reports and the offline replay's ``report.json``."""
    activity = json.loads((offline_dir / "report.json").read_text())["activity"]
    offline_days = {a["day"]: a["touches"] for a in activity}
    by_day: dict[int, dict[int, list[int] | None]] = {}
    for r in reports:
        by_day.setdefault(r["day"], {}).setdefault(r["partition"], r["touches"])
    pairs = []
    for day, parts in sorted(by_day.items()):
        if len(parts) == partitions and all(c is not None for c in parts.values()):
            date = datetime.fromtimestamp((day - 86_400_000) / 1000, UTC).date().isoformat()
            pairs.append((date, sum(sum(c) for c in parts.values() if c), sum(offline_days[date])))
    return pairs


def final_segments(changes: list[dict[str, object]]) -> dict[str, int]:
    """Each customer's segment after their newest change."""
    newest: dict[str, dict[str, object]] = {}
    for c in changes:
        cid = str(c["customer_id"])
        if cid not in newest or int(c["version"]) > int(newest[cid]["version"]):  # type: ignore[call-overload]
            newest[cid] = c
    return {
        cid: int(c["current"]["segment_id"])  # type: ignore[index]
        for cid, c in newest.items()
        if c["current"] is not None
    }


def disagreement(
    online_models: list[Any],
    offline_dir: Path,
    changes: list[dict[str, Any]],
    got: dict[str, int],
    want: dict[str, int],
) -> list[str]:
    """What tells online from offline, for the log: the first model version that differs, and
    the newest changes of the customers whose final segments disagree (in the offline replay's
    segment ids, mapped online → offline by the most customers shared)."""
    offline_models = {}
    with open(offline_dir / "segment-model.jsonl") as fh:
        for line in fh:
            m = json.loads(line)
            offline_models[m["version"]] = m
    lines = []
    for r in sorted(online_models, key=lambda r: json.loads(r.value)["version"]):
        m = json.loads(r.value)
        if m != offline_models.get(m["version"]):
            o = offline_models.get(m["version"], {})
            keys = sorted(k for k in m.keys() | o.keys() if m.get(k) != o.get(k))
            lines.append(
                f"model v{m['version']} differs from offline in {keys} "
                f"(offline has {sorted(offline_models)})"
            )
            if "segments" in keys and o:
                for a, b in zip(m["segments"], o["segments"], strict=False):
                    lines.append(
                        f"  segment {a['id']}/{b['id']} {a['name']}/{b['name']} "
                        f"weight {a['weight']}/{b['weight']} centroid Δ "
                        f"{max(abs(x - y) for x, y in zip(a['centroid'], b['centroid']))}"
                    )
            break
    else:
        lines.append(f"online models v1..v{len(online_models)} equal offline's")
    pairs = Counter((got[c], want[c]) for c in want)
    to_off = {on: max((n, off) for (o, off), n in pairs.items() if o == on)[1] for on, _ in pairs}
    apart = sorted(c for c in want if to_off[got[c]] != want[c])
    lines.append(f"{len(apart)} customers apart; online→offline segments {sorted(pairs.items())}")
    with open(offline_dir / "segment-changes.jsonl") as fh:
        offline_changes = [json.loads(line) for line in fh]
    for cid in apart[:12]:
        for label, seq in (("on ", changes), ("off", offline_changes)):
            mine = sorted((c for c in seq if c["customer_id"] == cid), key=lambda c: c["version"])
            lines.append(
                f"  {cid} {label}: "
                + "; ".join(
                    f"{c['event_time'][:13]} {c['previous'] and c['previous']['segment_id']}->"
                    f"{c['current'] and c['current']['segment_id']} {c['reason']} m{c['model_version']}"
                    for c in mine[-4:]
                )
            )
    return lines


def test_two_workers_score_with_one_model_and_agree_with_offline(
    broker, names, spawn, worker_env, tmp_path: Path
) -> None:
    env = {**worker_env, **SEGMENTATION}
    events, total = simulated_with_offline(tmp_path, env)
    with open(tmp_path / "off" / "segment-changes.jsonl") as fh:
        want = final_segments([json.loads(line) for line in fh])

    workers = [spawn(**SEGMENTATION, MICROSEG_DATA_DIR=str(tmp_path / f"w{i}")) for i in (1, 2)]
    for w in workers:
        w.wait_ready()
    # Paced by event time (40 days in about a minute), as a live stream is: a model then reaches
    # the scorers while the events it was trained on are still current.
    result = _cli("replay", str(events), "--speed", "60000", "--no-progress", env=env, timeout=300)
    assert result.returncode == 0, result.stderr

    def accepted() -> float:
        return sum(
            metric_sum(w.metrics(), "microseg_events_total", outcome="accepted") for w in workers
        )

    wait_for(lambda: accepted() >= total, 300, f"both workers to apply {total} events", 1.0)
    on_model_topic = read_topic(broker.bootstrap, names.topic("segment-model"))
    models = [r for r in on_model_topic if r.key == MODEL_KEY]
    newest = max(json.loads(r.value)["version"] for r in models)
    # The trainer's progress reports (which pace the workers' input) only go forward, and the
    # newest covers the day of the newest model.
    reports = [read_progress(r.value) for r in on_model_topic if r.key == PROGRESS_KEY]
    progress = [p.learnt_until for p in reports]
    assert progress == sorted(set(progress)), progress
    trained = max(json.loads(r.value)["trained_at"] for r in models)
    assert progress[-1] >= trained
    # With what a trainer taking over continues from: the population-activity counts and when
    # the stream began (*Drift*).
    assert reports[-1].trainer["activity"]["days"][-1][0] == progress[-1] // 86_400_000 - 1
    assert reports[-1].trainer["since"] <= min(json.loads(r.value)["trained_at"] for r in models)
    assert newest >= 2, "the trainer should have published and then refined the model"
    wait_for(
        lambda: all(metric_sum(w.metrics(), "microseg_model_version") == newest for w in workers),
        60,
        f"both workers to score with model v{newest}",
    )
    per_worker = [metric_sum(w.metrics(), "microseg_segment_changes_total") for w in workers]
    assert all(n > 0 for n in per_worker), f"each worker emits its customers' changes: {per_worker}"
    reports = [
        json.loads(r.value) for r in read_topic(broker.bootstrap, names.topic("feature-samples"))
    ]
    sent = sum(len(r["samples"]) for r in reports)
    trained = sum(metric_sum(w.metrics(), "microseg_trainer_samples_total") for w in workers)
    offline_trained = json.loads((tmp_path / "off" / "report.json").read_text())["segmentation"][
        "training_samples"
    ]
    print(f"samples sent {sent}, trained online {trained}, offline {offline_trained}")
    # The trainer learns a day once every partition has passed it: the last day may be pending.
    assert offline_trained - 100 <= trained <= sent
    assert sent >= offline_trained - 100

    # Each partition counts its customers' organic touches a day (issue 5's churn-wave signal,
    # `stream.core.activity`): summed over the partitions, the days all of them counted in full
    # are what the offline replay counted, up to the order in which the worker happened to
    # consume the three topics (a click consumed after the visit it prompted, a visit after its
    # day was reported; at this replay speed a day is 1.4 s). Measured with the topics consumed
    # in step by event time (`stream.adapters.align`): 0.2 % more in all, each day within 1.4 %
    # (before: 3.4 % more, each day within 8.5 %, one run with a day 14 % short). A partition's
    # count missing or counted twice would be off by a quarter or more.
    pairs = touches_against_offline(reports, names.partitions, tmp_path / "off")
    assert len(pairs) >= 20, f"days counted in full by every partition: {pairs}"
    print("organic touches a day, online and offline:", pairs)
    assert all(abs(on - off) <= 0.2 * off + 5 for _, on, off in pairs), pairs
    on, off = sum(p[1] for p in pairs), sum(p[2] for p in pairs)
    assert abs(on - off) <= 0.1 * off, (on, off)
    sent_touches = sum(sum(r["touches"]) for r in reports if r["touches"] is not None)
    counted = [
        sum(metric_sum(w.metrics(), "microseg_organic_touches_total", outcome=o) for w in workers)
        for o in ("reported", "late")
    ]
    print(f"organic touches reported {counted[0]}, late {counted[1]}, on the topic {sent_touches}")
    assert counted[0] >= sent_touches > 0, (counted, sent_touches)

    records = read_topic(broker.bootstrap, names.topic("segment-changes"))
    changes = [json.loads(r.value) for r in records]
    assert all(r.key.decode() == c["customer_id"] for r, c in zip(records, changes, strict=True))
    # In the key's partition (the producer's partitioner, as `Topic.send`), without headers, and
    # each customer's versions in offset order.
    assert all(
        r.partition == key_partition(r.key, names.partitions) and not r.headers for r in records
    )
    last_version: dict[str, int] = {}
    for r, c in sorted(
        zip(records, changes, strict=True), key=lambda rc: (rc[0].partition, rc[0].offset)
    ):
        assert c["version"] > last_version.get(c["customer_id"], 0), c
        last_version[c["customer_id"]] = c["version"]
    ids = [c["event_id"] for c in changes]
    assert len(ids) == len(set(ids)), "a change is emitted once"
    got = final_segments(changes)
    assert set(got) == set(want), "every customer the offline replay assigns is assigned online"
    customers = sorted(want)
    ari = adjusted_rand([got[c] for c in customers], [want[c] for c in customers])
    print(f"online vs offline final segments: ARI {ari:.3f} over {len(customers)} customers")
    print(*disagreement(models, tmp_path / "off", changes, got, want), sep="\n")
    # Issue 4 asks for ≥ 0.9. The trainer learns the same samples in the same order as offline
    # (the collator's canonical order; each day's sample taken as of the day boundary, before any
    # later event of the batch), so both publish the same models; what remains is scoring at
    # slightly different moments: 0.981, 0.979, 0.984, 0.981 measured. Before samples were taken
    # at the boundary, 1.4 % of them held an event or two from after midnight, the models parted
    # from the first version on, and one run in seven gave 0.847. Until the sums were float32 in
    # memory as in the table (`stream.core.state`), every sample differed from offline in its
    # last bits (centroids of the first model 1e-8 apart) and one run in nine gave 0.804: a
    # k-means choice on a knife's edge; now the first models are equal and later ones at most
    # 1e-9 apart (the order of one customer's events from three topics). The lines printed
    # above say which model first differs and how the customers apart got there.
    assert ari >= 0.9

    lifecycle = [
        json.loads(r.value) for r in read_topic(broker.bootstrap, names.topic("segment-events"))
    ]
    published = sorted(e["model_version"] for e in lifecycle if e["kind"] == "model_published")
    assert published == sorted(json.loads(r.value)["version"] for r in models)

    # Metrics agree with what came out of Kafka; no customer id in any label.
    scraped = [w.metrics() for w in workers]
    sizes: dict[str, float] = {}
    for m in scraped:
        for (name, labels), v in m.items():
            if name == "microseg_segment_customers":
                sizes[dict(labels)["segment"]] = sizes.get(dict(labels)["segment"], 0) + v
            assert not any(val.startswith("sim-c") for _, val in labels), (name, labels)
    want_sizes = Counter(str(s) for s in got.values())
    assert {k: v for k, v in sizes.items() if v} == want_sizes
    print("customers", [metric_sum(m, "microseg_customers") for m in scraped])
    assert sum(metric_sum(m, "microseg_customers") for m in scraped) == len(got)
    lag = [(n, dict(lb)) for m in scraped for (n, lb) in m if n == "microseg_consumer_lag_records"]
    assert len(lag) == 3 * names.partitions, "a lag per assigned input partition"
    assert sum(metric_sum(m, "microseg_consumer_lag_records") for m in scraped) == 0
    assert sum(metric_sum(m, "microseg_event_time_lag_seconds_count") for m in scraped) > 0
    assert all(metric_sum(m, "microseg_model_age_seconds") > 0 for m in scraped)

    # HTTP: a lookup answers the same on both workers (one of them routes it to the owner).
    for cid in customers[:5]:
        answers = [w.get(f"/customers/{cid}") for w in workers]
        assert answers[0] == answers[1] and answers[0][0] == 200, answers
        body = json.loads(answers[0][1])
        assert body["segment"]["segment_id"] == got[cid] and body["model_version"] == newest
        assert body["explanation"] and set(body["features"]) >= {"spend_30d", "share_app"}
        assert 0 <= body["confidence"] <= 1 and body["since"]
        moved = [c for c in changes if c["customer_id"] == cid and (
            not c["previous"] or c["previous"]["segment_id"] != c["current"]["segment_id"])]  # fmt: skip
        moved.sort(key=lambda c: -c["version"])
        assert [(m["from"] and m["from"]["segment_id"], m["to"]["segment_id"], m["reason"])
                for m in body["recent_changes"]] == [
            (c["previous"] and c["previous"]["segment_id"], c["current"]["segment_id"], c["reason"])
            for c in moved[:3]]  # fmt: skip
        assert [m["at"][:16] for m in body["recent_changes"]] == [
            c["event_time"][:16] for c in moved[:3]
        ]
    status, raw = workers[0].get("/customers/no-such-customer")
    assert status == 404 and json.loads(raw)["error"] == "not_found"
    # /segments: cluster-wide sizes on every worker (counted from segment-changes), as in Kafka.
    want_by_id = {int(k): v for k, v in want_sizes.items()}

    def listed_sizes() -> list[dict[str, Any]]:
        return [json.loads(w.get("/segments")[1]) for w in workers]

    def census_done() -> bool:
        return all({s["segment_id"]: s["size"] for s in body["segments"] if s["size"]} == want_by_id
                   for body in listed_sizes())  # fmt: skip

    wait_for(census_done, 30, "cluster-wide segment sizes from the change feed")
    listed = listed_sizes()
    assert listed[0] == listed[1] and listed[0]["model_version"] == newest
    assert listed[0]["customers"] == len(got)
    assert {s["segment_id"] for s in listed[0]["segments"]} >= set(got.values())
    assert abs(sum(s["share"] for s in listed[0]["segments"]) - 1) < 0.01
    one = max(listed[0]["segments"], key=lambda s: s["size"])["segment_id"]
    status, raw = workers[1].get(f"/segments/{one}")
    detail = json.loads(raw)
    assert status == 200 and detail["micro_segments"]
    micro = sum(m["size"] for m in detail["micro_segments"])
    assert micro + detail["micro_pending"] == want_by_id[one] and micro > 0
    moves = [(_day(c["event_time"]), c["previous"]["segment_id"], c["current"]["segment_id"])
             for c in changes if c["previous"] and c["current"]
             and c["previous"]["segment_id"] != c["current"]["segment_id"]]  # fmt: skip
    last = max(d for d, _, _ in moves)
    recent = [(a, b) for d, a, b in moves if d > last - 7]
    assert detail["movement"] == {
        "window_days": 7,
        "in": {str(a): n for a, n in sorted(Counter(a for a, b in recent if b == one).items())},
        "out": {str(b): n for b, n in sorted(Counter(b for a, b in recent if a == one).items())},
    }
    assert workers[1].get("/segments/999999")[0] == 404

    # Erasure: refused without the token; accepted by either worker; then nothing is left.
    cid = customers[0]
    assert workers[0].request("DELETE", f"/customers/{cid}")[0] == 401
    bad = {"Authorization": "Bearer wrong"}
    assert workers[0].request("DELETE", f"/customers/{cid}", headers=bad)[0] == 401
    auth = {"Authorization": "Bearer test-erasure-token"}
    status, raw = workers[1].request("DELETE", f"/customers/{cid}", headers=auth)
    assert status == 202, raw
    wait_for(lambda: all(w.get(f"/customers/{cid}")[0] == 404 for w in workers), 30, "the erasure")
    assert workers[0].request("DELETE", f"/customers/{cid}", headers=auth)[0] == 404
    erased = [
        json.loads(r.value)
        for r in read_topic(broker.bootstrap, names.topic("segment-changes"))
        if r.key == cid.encode() and json.loads(r.value)["reason"] == "erased"
    ]
    assert len(erased) == 1 and erased[0]["current"] is None
    assert erased[0]["version"] == max(c["version"] for c in changes if c["customer_id"] == cid) + 1
    tombstones = [r for r in read_topic(broker.bootstrap, names.changelog) if r.key == cid.encode()]
    assert tombstones and tombstones[-1].value is None, "a tombstone on the changelog"
    assert sum(metric_sum(w.metrics(), "microseg_erasures_total") for w in workers) == 1
    for w in workers:
        assert "test-erasure-token" not in w.tail(10_000)

    # Security: by default the HTTP server listens on loopback only.
    ip = outward_ip()
    if ip is not None:
        for w in workers:
            socket.create_connection(("127.0.0.1", w.port), timeout=1.0).close()
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection((ip, w.port), timeout=1.0).close()
