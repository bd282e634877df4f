"""The command line against real processes: broker lifecycle, schema check, replay into Kafka."""

from __future__ import annotations

import gzip
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from stream.adapters.embedded import free_port
from tests.factories import malformed, valid_stream
from tests.integration.harness import metric_sum, read_topic, wait_for

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def _cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stream.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        cwd=ROOT,
    )


def test_broker_command_serves_on_loopback_and_stops_on_sigterm() -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "stream.cli", "broker", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        else:
            pytest.fail("broker never accepted connections")
        out = subprocess.run(["ss", "-ltn"], capture_output=True, text=True).stdout
        listening = [line for line in out.splitlines() if f":{port} " in line]
        assert listening and all("127.0.0.1:" in line for line in listening), listening
        assert proc.stdout is not None  # the banner says how to point a worker at it
        banner = proc.stdout.readline() + proc.stdout.readline()
        url = f"kafka://127.0.0.1:{port}"
        assert f"MICROSEG_BROKER={url} MICROSEG_BROKER_KIND=tansu" in banner, banner
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    finally:
        if proc.poll() is None:
            proc.kill()


def test_schemas_check_passes_on_the_committed_schemas(tmp_path: Path) -> None:
    assert _cli("schemas", "export", "--check").returncode == 0
    (tmp_path / "input-event.schema.json").write_text("{}")
    assert _cli("schemas", "export", "--check", "--dir", str(tmp_path)).returncode == 1


def test_worker_refuses_topics_with_another_partition_count(broker, names, worker_env) -> None:
    from kafka.admin import KafkaAdminClient, NewTopic

    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    admin.create_topics([NewTopic(names.topic("email"), 2, 1)])
    admin.close()
    result = _cli("worker", env=worker_env, timeout=60)
    assert result.returncode == 2
    assert "has 2 partitions" in result.stderr and "MICROSEG_PARTITIONS" in result.stderr


def test_bad_setting_fails_at_start_up_with_what_to_fix() -> None:
    env = {**os.environ, "MICROSEG_WEB_PORT": "0"}
    result = _cli("worker", env=env, timeout=30)
    assert result.returncode == 2
    assert "MICROSEG_WEB_PORT" in result.stderr


def test_replay_file_into_kafka_reaches_the_worker(
    broker, names, spawn, worker_env, tmp_path: Path
) -> None:
    from datetime import UTC, datetime

    events = valid_stream(2_000, customers=100, seed=3)
    path = tmp_path / "events.jsonl.gz"
    with gzip.open(path, "wt") as fh:
        for _, _, event in events:
            fh.write(json.dumps(event) + "\n")
        fh.write("this line is not json\n")
        fh.write(json.dumps({"type": "teleport", "customer_id": "c"}) + "\n")
        fh.write(malformed(12, datetime.now(UTC))[3].decode() + "\n")  # negative amount
    worker = spawn()
    worker.wait_ready()
    result = _cli("replay", str(path), "--no-progress", env=worker_env)
    assert result.returncode == 0, result.stderr
    assert "replayed 2003 lines" in result.stdout and "2 unroutable" in result.stdout

    def done() -> bool:
        m = worker.metrics()
        return (
            metric_sum(m, "microseg_events_total", outcome="accepted") >= 2_000
            and metric_sum(m, "microseg_dead_letters_total") >= 3
        )

    wait_for(done, 120, "the replayed events in /metrics")
    m = worker.metrics()
    per_stream = Counter(s for s, _, _ in events)
    for stream, n in per_stream.items():
        assert metric_sum(m, "microseg_events_total", stream=stream, outcome="accepted") == n
    reasons = Counter(
        json.loads(r.value)["reason"]
        for r in read_topic(broker.bootstrap, names.topic("dead-letter"), expect=3)
    )
    assert reasons == {"not_json": 1, "unknown_type": 1, "negative_amount": 1}


def test_replay_paces_by_event_time(broker, names, worker_env, tmp_path: Path) -> None:
    path = tmp_path / "paced.jsonl"
    lines = [
        {
            "event_id": f"p{i}",
            "customer_id": "c1",
            "type": "page_view",
            "ts": f"2024-01-01T00:00:{i * 10:02d}+00:00",
        }
        for i in range(4)
    ]
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    started = time.monotonic()
    result = _cli("replay", str(path), "--speed", "20", "--no-progress", env=worker_env)
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert elapsed >= 1.5  # 30 s of event time at 20× is 1.5 s
    assert len(read_topic(broker.bootstrap, names.topic("clickstream"), expect=4)) == 4
