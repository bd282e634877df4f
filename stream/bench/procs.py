"""Bench contender subprocesses (`stream.bench.contender`) and waiting for their probes."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stream.errors import MicrosegError

Ends = dict[tuple[str, int], int]
"""Highest offset produced per input (topic, partition)."""


@dataclass
class Contender:
    """One ``python -m stream.bench.contender KIND`` process with its probe file and log."""

    kind: str
    env: dict[str, str]
    workdir: Path
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def probe(self) -> Path:
        """The probe's snapshot file."""
        return self.workdir / "probe.json"

    @property
    def log(self) -> Path:
        """The process's output."""
        return self.workdir / "contender.log"

    def start(self) -> Contender:
        """Start the process (its own session, so it is stopped with its children)."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "stream.bench.contender", self.kind, str(self.probe)],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        return self

    def snapshot(self) -> dict[str, Any] | None:
        """The probe's newest snapshot, or None before the first."""
        try:
            return dict(json.loads(self.probe.read_text()))
        except (OSError, ValueError):
            return None

    def open_gate(self) -> None:
        """Let the process consume (`stream.adapters.probe`: the gate)."""
        self.probe.with_name(self.probe.name + ".go").touch()

    def latencies(self, timeout: float = 30.0) -> dict[str, Any]:
        """Ask the probe for its latencies and wait for them."""
        lat = self.probe.with_name(self.probe.name + ".lat.json")
        lat.unlink(missing_ok=True)
        self.probe.with_name(self.probe.name + ".dump").touch()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            with contextlib.suppress(OSError, ValueError):
                return dict(json.loads(lat.read_text()))
            time.sleep(0.1)
        raise MicrosegError(f"bench contender {self.kind}: no latencies within {timeout:.0f} s")

    def check_alive(self) -> None:
        """Raise, with the end of the log, if the process has exited."""
        if self.proc is None or self.proc.poll() is not None:
            raise MicrosegError(f"bench contender {self.kind} exited; log:\n{self.tail()}")

    def tail(self, chars: int = 3000) -> str:
        """The end of the log."""
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return "<no log>"

    def terminate(self) -> None:
        """SIGTERM the process group without waiting (`stop` waits)."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM the process group; SIGKILL after ``timeout``."""
        self.terminate()
        proc, self.proc = self.proc, None
        if proc is None:
            return
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout)


def covered(snaps: list[dict[str, Any]], ends: Ends) -> bool:
    """Whether the probes together acknowledged every partition up to its last offset."""
    seen: dict[tuple[str, int], int] = {}
    for s in snaps:
        for t, p, o in s["max_offset"]:
            seen[(t, p)] = max(o, seen.get((t, p), -1))
    return all(seen.get(tp, -1) >= end for tp, end in ends.items())


def await_assigned(contenders: list[Contender], partitions: int, timeout: float) -> None:
    """Wait until every process holds input partitions and together they hold all of them."""
    deadline = time.monotonic() + timeout
    while True:
        snaps = [c.snapshot() for c in contenders]
        held = [s["assigned"] if s else 0 for s in snaps]
        if min(held) > 0 and sum(held) == partitions:
            return
        for c in contenders:
            c.check_alive()
        if time.monotonic() > deadline:
            raise MicrosegError(
                f"bench: {'+'.join(c.kind for c in contenders)} hold {held} of {partitions} "
                f"input partitions after {timeout:.0f} s; log:\n{contenders[0].tail()}"
            )
        time.sleep(0.1)


def start_gated(
    contenders: list[Contender], partitions: int, timeout: float, retired: list[Contender]
) -> list[int]:
    """Start the processes, wait for one stable assignment, then open their gates.

    The ``retired`` contenders (stopping, from the previous measurement) are waited for before
    the gates open, so their shutdown overlaps this start-up and not this measurement. Returns
    each process's number of assignments so far (`figures` compares).
    """
    for c in contenders:
        c.start()
    await_assigned(contenders, partitions, timeout)
    if len(contenders) > 1:
        time.sleep(1.0)  # a second member's join can still be under way: let it show
        await_assigned(contenders, partitions, timeout)
    while retired:
        retired.pop().stop()
    for c in contenders:
        c.open_gate()
    return [s["assignments"] for s in (c.snapshot() for c in contenders) if s]


def await_done(
    contenders: list[Contender], ends: Ends, expect: int, timeout: float
) -> list[dict[str, Any]]:
    """Wait until the contenders acknowledged ``expect`` records covering ``ends``; snapshots."""
    deadline = time.monotonic() + timeout
    while True:
        snaps = [c.snapshot() for c in contenders]
        done = [s for s in snaps if s is not None]
        if (
            len(done) == len(snaps)
            and sum(s["count"] for s in done) >= expect
            and covered(done, ends)
        ):
            return done
        for c in contenders:
            c.check_alive()
        if time.monotonic() > deadline:
            got = sum(s["count"] for s in done)
            raise MicrosegError(
                f"bench: {'+'.join(c.kind for c in contenders)} acknowledged {got} of {expect} "
                f"records within {timeout:.0f} s; log:\n{contenders[0].tail()}"
            )
        time.sleep(0.1)


def figures(snaps: list[dict[str, Any]], events: int, before: list[int]) -> dict[str, Any]:
    """Throughput, CPU and memory of one contender (one or more processes) from its snapshots.

    Throughput is ``events`` over the wall time from the first record reaching any process to
    the last record acknowledged by any process. ``rebalances``: assignments during the
    measurement (``before``: each process's assignments when the gate opened).
    """
    first = min(s["first_in"] for s in snaps)
    last = max(s["last_out"] for s in snaps)
    wall = last - first
    procs = [
        {
            "count": s["count"],
            "cpu_seconds": round(s["cpu_last_out"] - s["cpu_first_in"], 3),
            "cpu_share": round((s["cpu_last_out"] - s["cpu_first_in"]) / wall, 3),
            "rss_first_in_bytes": s["rss_first_in"],
            "rss_after_bytes": s["rss_now"],
        }
        for s in snaps
    ]
    return {
        "events_per_s": round(events / wall),
        "seconds": round(wall, 3),
        "processed": sum(s["count"] for s in snaps),
        "redelivered": sum(s["count"] for s in snaps) - events,
        "rebalances": max(s["assignments"] - b for s, b in zip(snaps, before, strict=True)),
        "processes": procs,
    }
