"""``microseg demo``: broker, worker (with the trainer), a paced replay, a live view, a summary.

Runs end to end on a fresh machine. It starts the embedded broker (unless ``MICROSEG_BROKER``
names one), creates the topics, starts a worker subprocess and waits until it is ready. Then it
replays the bundled files (`stream.demo.data`: aligned on one timeline, the older history paced
to ``--backfill-seconds``, the last ``--live-days`` at ``--speed``× event time) while showing, live, the
segments (``GET /segments``, sizes from ``/metrics``), the ``segment-changes`` and
``segment-events`` topics, throughput and consumer lag. When the worker has consumed every line
and its output has settled it prints a summary and stops the worker and the broker, or keeps them
running with ``--follow`` until Ctrl-C. Without a terminal it prints plain status lines instead.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from stream.adapters.embedded import bind_error, broker_for, free_port
from stream.adapters.topics import ensure_topics
from stream.config import Settings
from stream.demo.data import (
    DemoFile,
    bundled_files,
    scan,
    span_s,
    speed_to_fit,
    split_live,
    timeline,
)
from stream.demo.drive import Monitor, Replayer
from stream.demo.feed import TopicFeed
from stream.demo.state import DemoState
from stream.demo.view import live_view, render_summary, status_line, summary, urls
from stream.errors import MicrosegError


def worker_environ(
    environ: Mapping[str, str], bootstrap: list[str], port: int, data_dir: Path, embedded: bool
) -> dict[str, str]:
    """The demo worker's environment: ours, with its broker, web port and data directory (unless
    ``MICROSEG_DATA_DIR`` is set). The rest is the service's defaults, or what ``environ`` sets.

    (The demo used to set ``MICROSEG_PACE_MAX_WAIT_S=5``: at the default 30 its view froze for
    30 s at the start of its sparse history, and twice before that, while the worker waited for a
    trainer that waited for the worker. Those waits are gone: see `stream.adapters.pace`.)

    >>> env = worker_environ({"MICROSEG_SEED": "7"}, ["h:1"], 6066, Path("/d"), embedded=True)
    >>> env["MICROSEG_BROKER"], env["MICROSEG_BROKER_KIND"], env["MICROSEG_SEED"]
    ('h:1', 'tansu', '7')
    >>> "MICROSEG_PACE_MAX_WAIT_S" in env
    False
    """
    env = {
        **environ,
        "MICROSEG_BROKER": ",".join(bootstrap),
        "MICROSEG_WEB_PORT": str(port),
        "MICROSEG_DATA_DIR": environ.get("MICROSEG_DATA_DIR", str(data_dir)),
    }
    if embedded:
        env["MICROSEG_BROKER_KIND"] = "tansu"
    return env


def _wait_ready(base_url: str, proc: subprocess.Popen[bytes], timeout: float = 120) -> None:
    from stream.demo.feed import http_get

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise MicrosegError("the demo worker exited during start-up")
        if http_get(f"{base_url}/ready", timeout=1) is not None:
            return
        time.sleep(0.3)
    raise MicrosegError(f"the demo worker was not ready within {timeout:.0f} s")


@contextlib.contextmanager
def _worker(env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``microseg worker`` in its own process group; SIGTERM (then SIGKILL) on the way out."""
    with open(log, "wb") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "stream.cli", "worker"],
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            yield proc
        except Exception:  # not on Ctrl-C: that is no failure of the worker's
            sys.stderr.write(log.read_text(errors="replace")[-3000:])
            raise
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(10)


def _loop(step: Callable[[], bool], render: Callable[[], None], every: float = 1.0) -> None:
    while not step():
        render()
        time.sleep(every)
    render()


def run_demo(args: argparse.Namespace) -> int:
    """CLI entry point. Ctrl-C or SIGTERM stop the worker and the broker on the way out."""
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        return _run(args)
    except _Terminated:
        print("demo terminated: worker and broker stopped", flush=True)
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        print("demo interrupted: worker and broker stopped", flush=True)
        return 128 + signal.SIGINT
    finally:
        signal.signal(signal.SIGTERM, previous)


class _Terminated(KeyboardInterrupt):
    """SIGTERM, unwound as Ctrl-C is (so everything stops on the way out), told apart by the
    exit code (143, as a shell reports a process ended by SIGTERM)."""


def _interrupt(signum: int, frame: object) -> None:
    raise _Terminated


def _run(args: argparse.Namespace) -> int:
    logging.getLogger().setLevel(logging.WARNING)  # the view is the output, not client chatter
    logging.getLogger("kafka").setLevel(logging.ERROR)
    settings = Settings.load()
    paths: list[Path] = args.files or bundled_files()
    files = [scan(p, args.limit) for p in paths]
    back, live = split_live(timeline(files, args.limit), args.live_days)
    speed = args.speed if args.speed and args.speed > 0 else None
    parts = [
        ("backfill", back, speed_to_fit(back, args.backfill_seconds) if speed else None),
        ("live", live, speed),
    ]
    state = DemoState(lines_total=len(back) + len(live))
    lock = threading.Lock()
    plain = args.plain or not sys.stdout.isatty()
    started = time.monotonic()
    with (
        broker_for(settings.brokers, settings.embedded_broker_port) as (bootstrap, embedded),
        tempfile.TemporaryDirectory(prefix="microseg-demo-") as tmp,
    ):
        kind = " (embedded Tansu, in memory)" if embedded else ""
        print(f"broker: kafka://{bootstrap[0]}{kind}", flush=True)
        ensure_topics(settings, bootstrap)
        port = (
            settings.web_port if bind_error("127.0.0.1", settings.web_port) is None else free_port()
        )
        env = worker_environ(os.environ, bootstrap, port, Path(tmp) / "data", embedded)
        state.base_url = f"http://127.0.0.1:{port}"
        with _worker(env, Path(tmp) / "worker.log") as proc:
            _wait_ready(state.base_url, proc)
            state.started = time.monotonic()
            print(_intro(files, parts, args.live_days, not args.files), flush=True)
            print("worker ready; while it runs: " + "  ".join(urls(state)), flush=True)
            feed = TopicFeed(bootstrap, settings, state.feed, lock).start()
            replayer = Replayer(bootstrap, settings, state, parts)
            try:
                replayer.start()
                monitor = Monitor(state, lock, replayer)
                paced = sum(span_s(lines) / s for _, lines, s in parts if s)
                deadline = time.monotonic() + args.drain_timeout + paced

                def step() -> bool:
                    if proc.poll() is not None:
                        raise MicrosegError("the demo worker stopped unexpectedly")
                    monitor.poll()
                    return monitor.settled() or time.monotonic() > deadline

                _show(state, lock, plain, step)
                if replayer.error is not None:
                    raise MicrosegError(f"the replay failed: {replayer.error}")
                if not monitor.settled(quiet_s=0.0):
                    print(f"not settled within --drain-timeout {args.drain_timeout:g} s: the "
                          "figures below are what the worker had done by then", flush=True)  # fmt: skip
                monitor.poll()
                state.phase = "done"
                if state.snapshot is None:
                    raise MicrosegError("the demo worker never answered /metrics")
                result = summary(state, state.snapshot, time.monotonic() - started)
                print(render_summary(result), flush=True)
                if args.summary_json:
                    Path(args.summary_json).write_text(json.dumps(result, indent=1) + "\n")
                if args.follow:
                    _follow(state, lock, plain, monitor, proc)
            finally:
                replayer.stop()
                feed.stop()
    print("demo finished: worker and broker stopped", flush=True)
    return 0


def _intro(
    files: list[DemoFile], parts: list[tuple[str, list[bytes], float | None]], days: float,
    bundled: bool = True,
) -> str:  # fmt: skip
    names = ", ".join(f.path.name for f in files)
    lines = [f"replaying {sum(len(p[1]) for p in parts):,} lines of {names}"]
    if bundled:
        lines.append(
            "  the real files are moved forward by whole weeks to end with the simulated one "
            "(sources and licences: stream/data/demo/SOURCES.md)"
        )
    elif len(files) > 1:
        lines.append("  the files are moved forward by whole weeks to end with the newest one")
    for phase, part, speed in parts:
        pace = f"at {speed:,.0f}× event time" if speed else "as fast as possible"
        what = f"the last {days:g} days" if phase == "live" else "the history before"
        lines.append(f"  {phase}: {what}, {len(part):,} lines, {pace}")
    return "\n".join(lines)


def _show(state: DemoState, lock: threading.Lock, plain: bool, step: Callable[[], bool]) -> None:
    """Run ``step`` every second until it says done, showing the state live or as lines."""
    if plain:
        last = [0.0]

        def line() -> None:
            if time.monotonic() - last[0] >= 5.0:
                last[0] = time.monotonic()
                with lock:
                    print(status_line(state) + " | " + urls(state)[1], flush=True)

        _loop(step, line)
        return
    from rich.live import Live

    with Live(live_view(state), refresh_per_second=2, transient=False) as live:

        def render() -> None:
            with lock:
                live.update(live_view(state))

        _loop(step, render)


def _follow(
    state: DemoState, lock: threading.Lock, plain: bool, monitor: Monitor,
    proc: subprocess.Popen[bytes],
) -> None:  # fmt: skip
    print("following: worker and broker keep running; Ctrl-C stops them", flush=True)
    state.phase = "following"
    for url in urls(state):
        print(f"  {url}", flush=True)

    def step() -> bool:
        monitor.poll()
        return proc.poll() is not None

    with contextlib.suppress(KeyboardInterrupt):
        _show(state, lock, plain, step)
