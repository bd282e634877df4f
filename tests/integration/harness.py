"""Helpers for integration tests: names, worker subprocesses, reading topics, scraping metrics."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from stream.adapters.embedded import free_port


@dataclass(frozen=True)
class Names:
    """Topic and app names unique to one test."""

    suffix: str
    partitions: int = 4

    @property
    def app_id(self) -> str:
        return f"ms-{self.suffix}"

    def topic(self, role: str) -> str:
        return f"{role}-{self.suffix}"

    @property
    def changelog(self) -> str:
        return f"{self.app_id}-customers-changelog"

    def env(self, broker_url: str, data_dir: Path) -> dict[str, str]:
        roles = [
            "clickstream",
            "email",
            "purchases",
            "dead-letter",
            "segment-changes",
            "segment-events",
            "segment-model",
            "feature-samples",
        ]
        env = {
            "MICROSEG_BROKER": broker_url,
            "MICROSEG_BROKER_KIND": "tansu",
            "MICROSEG_APP_ID": self.app_id,
            "MICROSEG_PARTITIONS": str(self.partitions),
            "MICROSEG_DATA_DIR": str(data_dir),
        }
        for role in roles:
            env["MICROSEG_TOPIC_" + role.upper().replace("-", "_")] = self.topic(role)
        return env

    def settings_kwargs(self) -> dict[str, Any]:
        """The same names as `Settings` keyword arguments."""
        return {
            k[len("MICROSEG_") :].lower(): v
            for k, v in self.env("kafka://x:1", Path("d")).items()
            if k.startswith("MICROSEG_TOPIC_") or k in ("MICROSEG_APP_ID", "MICROSEG_PARTITIONS")
        }


class WorkerProcess:
    """``microseg worker`` in a subprocess, with its own web port and log file."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        self.env = {**env, "MICROSEG_WEB_PORT": str(self.port)}
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        fh = open(self.log, "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "stream.cli", "worker"],
            env=self.env,
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def get(self, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
        return self.request("GET", path, timeout=timeout)

    def request(
        self, method: str, path: str, headers: dict[str, str] | None = None, timeout: float = 5.0
    ) -> tuple[int, bytes]:
        req = urllib.request.Request(self.url(path), method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def wait_ready(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive:
                raise AssertionError(f"worker exited early; log:\n{self.tail()}")
            try:
                status, _ = self.get("/ready", timeout=1.0)
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.25)
        raise AssertionError(f"worker not ready within {timeout} s; log:\n{self.tail()}")

    def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        _, body = self.get("/metrics")
        return parse_metrics(body.decode())

    def kill(self) -> None:
        if self.proc and self.alive:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.alive:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()

    def tail(self, n: int = 60) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "<no log>"


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Prometheus text format → {(name, sorted labels): value}."""
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        if m:
            labels = tuple(sorted(_LABEL.findall(m.group(2) or "")))
            out[(m.group(1), labels)] = float(m.group(3))
    return out


def metric_sum(
    metrics: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **match: str
) -> float:
    """Sum of a metric's samples whose labels include ``match``."""
    total = 0.0
    for (n, labels), v in metrics.items():
        d = dict(labels)
        if n == name and all(d.get(k) == val for k, val in match.items()):
            total += v
    return total


def wait_for(
    predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.5
) -> None:
    """Poll ``predicate`` until true; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def read_topic(
    bootstrap: str, topic: str, timeout: float = 30.0, expect: int | None = None
) -> list[Any]:
    """Every record of ``topic`` from the beginning (until ``expect`` records or quiet)."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=100,
        max_partition_fetch_bytes=16 * 1024 * 1024,
        fetch_max_bytes=64 * 1024 * 1024,
        consumer_timeout_ms=1000,
    )
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        deadline = time.monotonic() + 10
        while not parts and time.monotonic() < deadline:
            time.sleep(0.2)
            parts = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        records: list[Any] = []
        deadline = time.monotonic() + timeout
        quiet_since = time.monotonic()
        while time.monotonic() < deadline:
            batch = consumer.poll(timeout_ms=200)
            got = sum(len(v) for v in batch.values())
            for recs in batch.values():
                records.extend(recs)
            if got:
                quiet_since = time.monotonic()
            if expect is not None and len(records) >= expect:
                break
            if expect is None and time.monotonic() - quiet_since > 2.0:
                break
        return records
    finally:
        consumer.close()


def key_partition(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner (murmur2, as Faust's and kafka-python's) gives
    ``key`` among ``partitions``."""
    from kafka.partitioner.default import murmur2

    return (murmur2(key) & 0x7FFFFFFF) % partitions


def uninterrupted_states(bootstrap: str, topics: dict[str, str], expect: int) -> dict[str, Any]:
    """Customer states of an uninterrupted run: the core applied in-process to the input topics.

    Reads every record of the input topics back from Kafka (with partition and offset) and feeds
    them, in offset order per partition, through the same `Ingest` the worker runs.
    """
    from stream.core.events import Stream
    from stream.core.ingest import Ingest, RawRecord
    from stream.core.state import CustomerState

    records = []
    for stream, topic in topics.items():
        for r in read_topic(bootstrap, topic, timeout=60):
            records.append(
                RawRecord(topic, Stream(stream), r.partition, r.offset, r.timestamp, r.key, r.value)
            )
    assert len(records) == expect, f"read {len(records)} input records, produced {expect}"
    records.sort(key=lambda r: (r.topic, r.partition, r.offset))
    states: dict[str, CustomerState] = {}
    result = Ingest().process(records, states.get)
    return result.changed


def assert_same_state(got: Any, want: Any, *, ignore_duplicates: bool = False) -> None:
    """Two customer states agree: counts and marks exactly, decayed sums within float32 rounding."""
    import math

    assert got.events == want.events
    assert got.partitions == want.partitions and got.offsets == want.offsets
    assert (got.first_ts, got.last_ts, got.last_purchase_ts, got.last_active_ts) == (
        want.first_ts,
        want.last_ts,
        want.last_purchase_ts,
        want.last_active_ts,
    )
    # recent_ids holds the last ids in arrival order, which depends on how topics interleave.
    if not ignore_duplicates:
        assert got.duplicates == want.duplicates
    # The worker rounds sums to float32 at every batch; the reference time may differ by rebase.
    from stream.core.features import vector

    at = want.last_ts
    for a, b in zip(vector(got, at), vector(want, at), strict=True):
        assert math.isclose(a, b, rel_tol=1e-5, abs_tol=1e-6), (a, b)
