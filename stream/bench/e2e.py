"""``microseg bench``, end-to-end part: our worker against baseline Faust agents on one broker.

On the embedded broker (or ``MICROSEG_BROKER``), with topic and app names unique to the run:

1. The synthetic data set (`stream.bench.data`, event time over one hour, so the daily work —
   re-evaluations, samples, model publishes — happens at most once, as it would at these rates
   in production) is produced once into the three input topics (``MICROSEG_PARTITIONS``).
2. Each contender consumes it from the beginning with a fresh consumer group, in its own process
   (`stream.bench.contender`), measured by the same probe (`stream.adapters.probe`): the
   consume-and-count agent, the table-update-and-send agent, two workers of one group, then
   one worker. Throughput = events / (last record acknowledged − first record received). Our worker
   starts with a model on its ``segment-model`` topic (`offline.seed_model`), so every new
   customer is assigned (a segment change) from the first event.
3. After its run, the one worker gets a second data set (new event ids, later event times, some
   new customers) at a paced rate of ``load_share`` × its measured throughput; latency as in
   `stream.bench.latency`.

Worker memory: RSS after the first data set minus RSS when its probe noted the first record,
per distinct customer, scaled to 100,000 customers; and the same net of the consume-and-count
agent's growth on the same records (fetch buffers, allocator warm-up: what is not per customer).
"""

from __future__ import annotations

import functools
import os
import tempfile
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stream.adapters.embedded import broker_for, free_port
from stream.adapters.topics import ensure_topics, kafka_python_security
from stream.bench import data, latency
from stream.bench.procs import Contender, Ends, await_done, figures, start_gated
from stream.config import Settings
from stream.replay import make_producer, route

E2E_SPAN_MS = 3_600_000
ROLES = ("dead_letter", "segment_changes", "segment_events", "segment_model", "feature_samples")


@dataclass(frozen=True)
class E2EOptions:
    """Sizes of the end-to-end bench."""

    events: int = 60_000
    customers: int = 30_000
    latency_seconds: float = 15.0
    load_share: float = 0.7
    two_workers: bool = True
    timeout_s: float = 900.0
    seed_customers: int = 2000
    """Simulated customers the seed model is trained on."""
    workdir: Path | None = None
    """Where contenders keep their logs, probe files and state (default: a temporary directory)."""


def run_e2e(opts: E2EOptions, settings: Settings | None = None) -> dict[str, Any]:
    """Run every end-to-end measurement; return the figures (see the module docstring)."""
    settings = settings or Settings.load()
    with (
        broker_for(settings.brokers, settings.embedded_broker_port) as (bootstrap, embedded),
        tempfile.TemporaryDirectory(prefix="microseg-bench-e2e-") as tmp,
    ):
        run = _Run(settings, bootstrap, embedded, opts.workdir or Path(tmp), opts)
        try:
            return run.measure()
        finally:
            for c in run.retired:
                c.stop()
            if not embedded:
                run.delete_topics()


class _Run:
    def __init__(
        self, settings: Settings, bootstrap: list[str], embedded: bool, tmp: Path, opts: E2EOptions
    ) -> None:
        self.base = settings
        self.bootstrap = bootstrap
        self.tansu = embedded or settings.broker_kind == "tansu"
        self.tmp = tmp
        self.opts = opts
        self.prefix = f"bench-{uuid.uuid4().hex[:8]}"
        self.ends: Ends = {}
        self.sent: latency.Sent = {}
        self.model = b""
        self.retired: list[Contender] = []

    def settings(self, run: str) -> Settings:
        """Settings of one contender run: shared input topics, its own group and outputs."""
        over: dict[str, Any] = {
            "broker": ",".join(self.bootstrap),
            "broker_kind": "tansu" if self.tansu else self.base.broker_kind,
            "app_id": f"{self.prefix}-{run}",
            "data_dir": str(self.tmp / run / "data"),
            "topic_clickstream": f"{self.prefix}-clickstream",
            "topic_email": f"{self.prefix}-email",
            "topic_purchases": f"{self.prefix}-purchases",
        }
        for role in ROLES:
            over[f"topic_{role}"] = f"{self.prefix}-{run}-{role.replace('_', '-')}"
        return Settings.load(**over)

    def contender(self, kind: str, s: Settings, name: str) -> Contender:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MICROSEG_")}
        for key, value in s.model_dump(exclude_none=True).items():
            if key not in ("sasl_password", "api_token"):
                env[f"MICROSEG_{key.upper()}"] = str(value)
        for secret in ("MICROSEG_SASL_PASSWORD", "MICROSEG_API_TOKEN"):
            if secret in os.environ:
                env[secret] = os.environ[secret]
        env["MICROSEG_WEB_PORT"] = str(free_port())
        env["MICROSEG_DATA_DIR"] = str(self.tmp / name / "data")
        return Contender(kind, env, self.tmp / name)

    def produce(
        self, lines: Iterable[bytes], s: Settings, rate: float | None, record: bool
    ) -> tuple[int, int]:
        """Produce to the input topics (paced at ``rate``/s when given); (records, customers)."""
        producer = make_producer(self.bootstrap, s)
        topics, customers, n = s.input_topics, set(), 0
        started = time.monotonic()
        try:
            for line in lines:
                if rate:
                    delay = started + n / rate - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                r = route(line, topics, s.topic_clickstream)
                now_ms = int(time.time() * 1000)
                fut = producer.send(r.topic, key=r.key, value=r.value, timestamp_ms=now_ms)
                info = (r.key.decode(), r.ts_ms, now_ms) if record and r.key and r.ts_ms else None
                fut.add_callback(functools.partial(self._sent, info))
                customers.add(r.key)
                n += 1
            producer.flush()
        finally:
            producer.close()
        return n, len(customers - {None})

    def _sent(self, info: tuple[str, int, int] | None, meta: Any) -> None:
        tp = (meta.topic, meta.partition)
        self.ends[tp] = max(meta.offset, self.ends.get(tp, -1))
        if info is not None:
            self.sent[(meta.topic, meta.partition, meta.offset)] = info

    def seed(self, s: Settings) -> None:
        """Put the seed model on the run's ``segment-model`` topic."""
        from stream.adapters.model_feed import MODEL_KEY

        producer = make_producer(self.bootstrap, s)
        try:
            producer.send(s.topic_segment_model, key=MODEL_KEY, value=self.model)
            producer.flush()
        finally:
            producer.close()

    def measure(self) -> dict[str, Any]:
        from stream.bench.offline import seed_model

        o = self.opts
        first = self.settings("count")
        ensure_topics(first, self.bootstrap)
        self.model = seed_model(first, o.seed_customers).encode()
        events, customers = self.produce(
            data.lines(o.events, o.customers, span_ms=E2E_SPAN_MS), first, None, False
        )
        phase1 = dict(self.ends)
        out: dict[str, Any] = {"events": events, "customers": customers,
                               "partitions": first.partitions, "contenders": {}}  # fmt: skip
        for kind in ("count", "table_send"):
            out["contenders"][kind] = self.one(kind, events, phase1)
        if o.two_workers:
            out["contenders"]["two_workers"] = self.two(events, phase1)
        # last: the paced phase adds records to the input topics
        out["contenders"]["worker"], out["latency"] = self.worker(events, customers, phase1)
        grown = [
            p["rss_after_bytes"] - p["rss_first_in_bytes"]
            for p in (out["contenders"][k]["processes"][0] for k in ("worker", "count"))
        ]
        out["contenders"]["worker"]["rss_bytes_per_100k_customers_net_of_count"] = round(
            (grown[0] - grown[1]) / customers * 100_000
        )
        return out

    def one(self, kind: str, events: int, ends: Ends) -> dict[str, Any]:
        s = self.settings(kind)
        ensure_topics(s, self.bootstrap)
        c = self.contender(kind, s, kind)
        try:
            before = start_gated([c], 3 * s.partitions, self.opts.timeout_s, self.retired)
            return figures(await_done([c], ends, events, self.opts.timeout_s), events, before)
        finally:
            c.terminate()
            self.retired.append(c)

    def worker(self, events: int, customers: int, ends: Ends) -> tuple[dict[str, Any], Any]:
        s = self.settings("worker")
        ensure_topics(s, self.bootstrap)
        self.seed(s)
        c = self.contender("worker", s, "worker")
        try:
            before = start_gated([c], 3 * s.partitions, self.opts.timeout_s, self.retired)
            snap = await_done([c], ends, events, self.opts.timeout_s)
            fig = figures(snap, events, before)
            grown = snap[0]["rss_now"] - snap[0]["rss_first_in"]
            fig["rss_bytes_per_100k_customers"] = round(grown / customers * 100_000)
            rate = self.opts.load_share * fig["events_per_s"]
            n = max(int(rate * self.opts.latency_seconds), 200)
            since = int(time.time() * 1000)
            lines = data.lines(n, customers * 3 // 2, seed=11, span_ms=E2E_SPAN_MS,
                               start_ms=data.T0_MS + 2 * E2E_SPAN_MS, prefix="l")  # fmt: skip
            produced, _ = self.produce(lines, s, rate, True)
            await_done([c], self.ends, events + produced, self.opts.timeout_s)
            lat = c.latencies()
            security = kafka_python_security(s)
            changes = latency.read_changes(self.bootstrap, s.topic_segment_changes, since, security)
            result = latency.summarize(lat, self.sent, changes)
            result.update(offered_events_per_s=round(rate), events=produced,
                          seconds=round(produced / rate, 2), load_share=self.opts.load_share)  # fmt: skip
            return fig, result
        finally:
            c.stop()

    def two(self, events: int, ends: Ends) -> dict[str, Any]:
        s = self.settings("two")
        ensure_topics(s, self.bootstrap)
        self.seed(s)
        cs = [self.contender("worker", s, f"two-{i}") for i in (0, 1)]
        try:
            before = start_gated(cs, 3 * s.partitions, self.opts.timeout_s, self.retired)
            return figures(await_done(cs, ends, events, self.opts.timeout_s), events, before)
        finally:
            for c in cs:
                c.terminate()
            self.retired += cs

    def delete_topics(self) -> None:
        """Delete every topic of this run (an external broker keeps them otherwise)."""
        from kafka import KafkaAdminClient

        admin = KafkaAdminClient(
            bootstrap_servers=self.bootstrap, **kafka_python_security(self.base)
        )
        try:
            mine = [t for t in admin.list_topics() if t.startswith(self.prefix)]
            if mine:
                admin.delete_topics(mine)
        finally:
            admin.close()
