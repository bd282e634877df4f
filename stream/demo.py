"""``microseg demo``: embedded broker, a worker, a replay of the bundled real data, a summary.

Runs end to end on a fresh machine: starts what it needs, prints where to look while it runs
(``/metrics``, ``/ready``), and shuts everything down when the summary is printed (or keeps the
worker running with ``--keep`` until Ctrl-C).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import defaultdict
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

from stream.adapters.embedded import broker_for, free_port
from stream.adapters.topics import ensure_topics
from stream.config import Settings
from stream.errors import MicrosegError
from stream.replay import Progress, make_producer, open_lines, produce_lines


def demo_files() -> list[Path]:
    """The bundled demo files (real data converted to the contract, plus some bad lines)."""
    root = Path(str(resources.files("stream.data.demo")))
    files = sorted(root.glob("*.jsonl.gz")) + sorted(root.glob("*.jsonl"))
    if not files:
        raise MicrosegError(f"no demo data found in {root}")
    return files


def _scrape(port: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    import re

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        m = re.match(r"^(\w+)(?:\{(.*)\})?\s+(\S+)$", line)
        if m and not line.startswith("#"):
            labels = frozenset(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
            out[(m.group(1), labels)] = float(m.group(3))
    return out


def _total(
    metrics: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **match: str
) -> float:
    return sum(
        v
        for (n, labels), v in metrics.items()
        if n == name and all((k, val) in labels for k, val in match.items())
    )


def _wait_ready(port: int, proc: subprocess.Popen[bytes], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise MicrosegError("the demo worker exited during start-up")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise MicrosegError(f"the demo worker was not ready within {timeout:.0f} s")


def _lines(files: list[Path]) -> Iterator[bytes]:
    for path in files:
        yield from open_lines(path)


def run_demo(args: argparse.Namespace) -> int:
    """CLI entry point."""
    settings = Settings.load()
    files = demo_files()
    total = sum(1 for _ in _lines(files))
    started = time.monotonic()
    with (
        broker_for(settings.brokers, settings.embedded_broker_port) as (bootstrap, embedded),
        tempfile.TemporaryDirectory(prefix="microseg-demo-") as tmp,
    ):
        print(
            f"broker: kafka://{bootstrap[0]}" + (" (embedded Tansu, in memory)" if embedded else "")
        )
        ensure_topics(settings, bootstrap)
        port = settings.web_port if _port_free(settings.web_port) else free_port()
        env = {
            **os.environ,
            "MICROSEG_BROKER": ",".join(bootstrap),
            "MICROSEG_WEB_PORT": str(port),
            "MICROSEG_DATA_DIR": os.environ.get("MICROSEG_DATA_DIR", str(Path(tmp) / "data")),
        }
        if embedded:
            env["MICROSEG_BROKER_KIND"] = "tansu"
        log = Path(tmp) / "worker.log"
        with open(log, "wb") as fh:
            worker = subprocess.Popen(
                [sys.executable, "-m", "stream.cli", "worker"],
                env=env,
                stdout=fh,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            try:
                _wait_ready(port, worker)
                print(f"worker ready: http://127.0.0.1:{port}/metrics  /health  /ready")
                print(f"replaying {total:,} events from {len(files)} files of real data ...")
                producer = make_producer(bootstrap, settings)
                try:
                    sent = produce_lines(_lines(files), producer, settings, None, Progress(total))
                finally:
                    producer.close()
                print(sent.render())
                metrics = _await_processed(port, total)
                print(_summary(metrics, files, time.monotonic() - started))
                if args.keep:
                    print(f"worker keeps running on http://127.0.0.1:{port}; Ctrl-C stops it")
                    with contextlib.suppress(KeyboardInterrupt):
                        worker.wait()
            except BaseException:
                sys.stderr.write(log.read_text(errors="replace")[-4000:])
                raise
            finally:
                if worker.poll() is None:
                    os.killpg(worker.pid, signal.SIGTERM)
                    try:
                        worker.wait(20)
                    except subprocess.TimeoutExpired:
                        os.killpg(worker.pid, signal.SIGKILL)
    print("demo finished: worker and broker stopped")
    return 0


def _port_free(port: int) -> bool:
    import socket

    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _await_processed(
    port: int, total: int, timeout: float = 300
) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    deadline = time.monotonic() + timeout
    while True:
        metrics = _scrape(port)
        if _total(metrics, "microseg_events_total") >= total or time.monotonic() > deadline:
            return metrics
        time.sleep(0.5)


def _summary(
    metrics: dict[tuple[str, frozenset[tuple[str, str]]], float], files: list[Path], seconds: float
) -> str:
    by_stream: dict[str, float] = defaultdict(float)
    by_type: dict[str, float] = defaultdict(float)
    reasons: dict[str, float] = defaultdict(float)
    for (name, labels), v in metrics.items():
        d = dict(labels)
        if name == "microseg_events_total" and d.get("outcome") == "accepted":
            by_stream[d["stream"]] += v
            by_type[d["type"]] += v
        elif name == "microseg_dead_letters_total":
            reasons[d["reason"]] += v
    accepted = sum(by_stream.values())
    dead = sum(reasons.values())
    dups = _total(metrics, "microseg_duplicates_skipped_total")
    lines = [
        "",
        "=== microseg demo summary ===",
        f"data: {', '.join(p.name for p in files)} (sources and licenses: stream/data/demo/SOURCES.md)",
        f"consumed and applied: {accepted:,.0f} events",
    ]
    lines += [f"  {s:<12} {n:>9,.0f}" for s, n in sorted(by_stream.items())]
    lines.append(
        "  by type: "
        + ", ".join(f"{t}={n:,.0f}" for t, n in sorted(by_type.items(), key=lambda x: -x[1]))
    )
    lines.append(f"dead-lettered: {dead:,.0f}")
    lines += [f"  {r:<18} {n:>5,.0f}" for r, n in sorted(reasons.items())]
    lines.append(f"duplicates skipped: {dups:,.0f}")
    late = _total(metrics, "microseg_late_events_total")
    lines.append(
        f"too old to apply (beyond MICROSEG_LATENESS_DAYS of the customer's newest): {late:,.0f}"
    )
    lines.append(f"wall time: {seconds:.1f} s")
    return "\n".join(lines)
