"""`microseg replay` against the real embedded broker: topic ranges, time ranges, filters.

The unfiltered file → Kafka → worker path and pacing are in test_cli.py; here the filtered one.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic

from tests.factories import BASE, valid_stream
from tests.integration.harness import metric_sum, read_topic, wait_for

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def replay(*args: str, env: dict[str, str]) -> dict:
    """Run ``microseg replay ... --json --no-progress``; its summary."""
    result = subprocess.run(
        [sys.executable, "-m", "stream.cli", "replay", *args, "--json", "--no-progress"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def create(bootstrap: str, topic: str, partitions: int) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(topic, partitions, 1)])
    finally:
        admin.close()


def produce(bootstrap: str, topic: str, records: list[dict]) -> list[dict]:
    """Produce records (key, value, optional headers / timestamp_ms); add partition and offset."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    futures = [
        producer.send(
            topic,
            key=r["key"],
            value=r["value"],
            headers=r.get("headers"),
            timestamp_ms=r.get("timestamp_ms"),
        )
        for r in records
    ]
    producer.flush()
    out = []
    for r, f in zip(records, futures, strict=True):
        md = f.get(30)
        out.append({**r, "partition": md.partition, "offset": md.offset})
    producer.close()
    return out


def as_set(records: list) -> Counter:
    return Counter((r.key, r.value, tuple(r.headers or ())) for r in records)


def test_topic_to_topic_by_offset_range(broker, names, worker_env) -> None:
    src, dst = names.topic("src"), names.topic("dst")
    create(broker.bootstrap, src, 3)
    events = valid_stream(90, customers=12, seed=5)
    records = [
        {"key": customer.encode(), "value": json.dumps(event).encode()}
        for _, customer, event in events
    ]
    # Anything goes through as bytes: not JSON, no key, headers.
    records[10] = {"key": b"cust-00001", "value": b"\xff not json"}
    records[11] = {"key": None, "value": b'{"type": "page_view"}'}
    records[12] = {**records[12], "headers": [("trace", b"t-12")]}
    sent = produce(broker.bootstrap, src, records)

    # [5, 15) of every partition, but partition 1 only up to 12.
    summary = replay(
        "--from-topic", src, "--to-topic", dst,
        "--start-offset", "5", "--end-offset", "15", "--end-offset", "1:12",
        env=worker_env,
    )  # fmt: skip
    end = {0: 15, 1: 12, 2: 15}
    want = [r for r in sent if 5 <= r["offset"] < end[r["partition"]]]
    assert len(want) < len(sent) and any(r.get("headers") for r in sent)
    got = read_topic(broker.bootstrap, dst, timeout=30)
    assert as_set(got) == Counter(
        (r["key"], r["value"], tuple(r.get("headers") or ())) for r in want
    )
    assert summary["read"] == summary["sent"] == len(want)
    assert summary["sent_by_topic"] == {dst: len(want)}

    # One partition only, default end (its high watermark when the replay starts).
    dst2 = names.topic("dst2")
    summary = replay("--from-topic", src, "--to-topic", dst2, "--partition", "2",
                     "--start-offset", "2:20", env=worker_env)  # fmt: skip
    want = [r for r in sent if r["partition"] == 2 and r["offset"] >= 20]
    assert want and summary["sent"] == len(want)
    got = read_topic(broker.bootstrap, dst2, timeout=30)
    assert sorted(r.value for r in got) == sorted(r["value"] for r in want)

    # A range past the end is empty (not reset to the beginning).
    summary = replay("--from-topic", src, "--to-topic", dst2, "--start-offset", "1000",
                     env=worker_env)  # fmt: skip
    assert (summary["read"], summary["sent"]) == (0, 0)


def test_topic_by_event_time_and_record_time_into_the_input_topics(
    broker, names, worker_env
) -> None:
    src = names.topic("src")
    create(broker.bootstrap, src, 2)
    events = valid_stream(120, customers=10, seed=9)  # ts = BASE + i minutes
    order = list(range(len(events)))
    random.Random(1).shuffle(order)  # event time is not offset order
    records = [
        {
            "key": events[i][1].encode(),
            "value": json.dumps(events[i][2]).encode(),
            "timestamp_ms": 1_700_000_000_000 + 1000 * n,  # record time: the n-th produced
            "i": i,
        }
        for n, i in enumerate(order)
    ]
    bad_ts = {"event_id": "bad-ts", "customer_id": "cust-00004", "type": "page_view", "ts": "-"}
    unattributable = [
        {"key": b"cust-00003", "value": b"not json", "timestamp_ms": 1_600_000_000_000},
        {"key": b"cust-00004", "value": json.dumps(bad_ts).encode()},
    ]
    sent = produce(broker.bootstrap, src, records + unattributable)

    since, until = BASE + timedelta(minutes=30), BASE + timedelta(minutes=75)
    summary = replay(
        "--from-topic", src, "--since", since.isoformat(), "--until", until.isoformat(),
        env=worker_env,
    )  # fmt: skip
    kept = [events[i] for i in range(30, 75)]
    per_stream = Counter(s for s, _, _ in kept)
    assert summary["read"] == len(sent)
    assert summary["filtered_out"] == {"time": len(events) - len(kept)}
    got: Counter = Counter()
    for stream in ("clickstream", "email", "purchases"):
        want_n = per_stream[stream] + (len(unattributable) if stream == "clickstream" else 0)
        recs = read_topic(broker.bootstrap, names.topic(stream), timeout=30, expect=want_n)
        assert len(recs) == want_n, stream
        got.update((r.key, r.value) for r in recs)
    want = Counter((c.encode(), json.dumps(e).encode()) for _, c, e in kept)
    want.update((r["key"], r["value"]) for r in unattributable)  # cannot be attributed: pass
    assert got == want
    assert summary["unroutable"] == 1  # "not json", sent to the clickstream topic

    # By record time (1_700_000_020_000 to 1_700_000_050_000 ms): the 20th to 49th produced
    # records, whatever their event time; the others, with their own or the producer's clock, not.
    dst = names.topic("by-record-time")
    summary = replay(
        "--from-topic", src, "--to-topic", dst, "--time", "record",
        "--since", "2023-11-14T22:13:40Z", "--until", "2023-11-14T22:14:10Z",
        env=worker_env,
    )  # fmt: skip
    want_values = sorted(r["value"] for r in records[20:50])
    got_values = sorted(r.value for r in read_topic(broker.bootstrap, dst, timeout=30))
    assert got_values == want_values
    assert summary["sent"] == 30


def test_filtered_file_to_kafka_reaches_the_worker(
    broker, names, spawn, worker_env, tmp_path: Path
) -> None:
    events = valid_stream(1_500, customers=40, seed=4)
    path = tmp_path / "events.jsonl"
    keep_customers = {"cust-00001", "cust-00002", "cust-00003"}
    ids = tmp_path / "ids.txt"
    ids.write_text("# kept\ncust-00003\n\n")
    bad_kept = {**events[0][2], "customer_id": "cust-00001", "event_id": "x1"}
    bad_kept.update(type="purchase", order_id="o", amount=-5)  # attributed, kept: dead-lettered
    bad_other = {**bad_kept, "customer_id": "cust-00009", "event_id": "x2"}  # attributed: dropped
    with path.open("w") as fh:
        for _, _, event in events:
            fh.write(json.dumps(event) + "\n")
        fh.write("not json at all\n")  # unattributable: passes every filter
        fh.write(json.dumps(bad_kept) + "\n")
        fh.write(json.dumps(bad_other) + "\n")
    worker = spawn()
    worker.wait_ready()
    summary = replay(
        str(path), "--customer", "cust-00001", "--customer", "cust-00002",
        "--customers-file", str(ids), "--stream", "clickstream", "--stream", "purchases",
        env=worker_env,
    )  # fmt: skip
    kept = [
        (s, c) for s, c, _ in events if c in keep_customers and s in ("clickstream", "purchases")
    ]
    by_stream = Counter(s for s, _ in kept)
    assert summary["read"] == len(events) + 3
    assert summary["sent"] == len(kept) + 2
    assert sum(summary["filtered_out"].values()) == len(events) - len(kept) + 1  # + bad_other

    def done() -> bool:
        m = worker.metrics()
        return (
            metric_sum(m, "microseg_events_total", outcome="accepted") >= len(kept)
            and metric_sum(m, "microseg_dead_letters_total") >= 2
        )

    wait_for(done, 120, "the kept events in /metrics")
    m = worker.metrics()
    assert metric_sum(m, "microseg_events_total", outcome="accepted") == len(kept)
    for stream in ("clickstream", "purchases"):
        assert (
            metric_sum(m, "microseg_events_total", stream=stream, outcome="accepted")
            == by_stream[stream]
        )
    reasons = Counter(
        json.loads(r.value)["reason"]
        for r in read_topic(broker.bootstrap, names.topic("dead-letter"), expect=2)
    )
    assert reasons == {"not_json": 1, "negative_amount": 1}
