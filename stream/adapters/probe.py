"""A Faust sensor that measures one bench contender from inside its own process.

Every contender of ``microseg bench`` (our worker and the baseline agents) runs it, so all are
measured the same way. For the records of the input topics only, it keeps:

* ``first_in``: wall clock when the first record reached the agent's stream (Faust
  ``on_message_in``), with the process's CPU time and resident memory at that moment;
* ``last_out`` and ``count``: wall clock of, and number of, records fully acknowledged by the agent
  (``on_message_out``: a ``take_events`` batch is acknowledged after the agent has processed it —
  table writes done, output records handed to the producer), with the CPU time then;
* per input partition, the highest offset acknowledged;
* for records produced after ``first_in`` (the paced load of the latency phase), the processed
  latency: acknowledgement time minus the record's timestamp (CreateTime, set by the producer).

A timer writes this as JSON to ``path`` every 0.2 s (atomically), with the number of input
partitions assigned to the process; when ``path`` + ``.dump`` exists, it also writes the
latencies to ``path`` + ``.lat.json`` and removes the request. Nothing here identifies a
customer: latencies are keyed by topic, partition and offset.

The gate: the input partitions stay paused (Faust's ``pause_partitions``, re-applied at every
assignment) until ``path`` + ``.go`` exists, so the bench can start every process of a consumer
group, wait for one stable assignment, and only then let them consume what is already in the
topics — no rebalance (and no redelivery) during a measurement, and no join time in it.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from array import array
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import faust

SNAPSHOT_INTERVAL_S = 0.2


def rss_bytes() -> int:
    """Resident memory of this process now (Linux ``/proc``; peak RSS elsewhere)."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class Probe(faust.Sensor):
    """Counts, times and latencies of the input records (see the module docstring).

    Parameters
    ----------
    topics
        The input topics; records of other topics (changelogs, samples, models) are ignored.
    """

    def __init__(self, topics: Iterable[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.topics = sorted(set(topics))
        self._index = {t: i for i, t in enumerate(self.topics)}
        self.count = 0
        self.first_in: float | None = None
        self.cpu_first_in = 0.0
        self.rss_first_in = 0
        self.last_out = 0.0
        self.cpu_last_out = 0.0
        self.max_offset: dict[tuple[str, int], int] = {}
        self.assigned = 0
        self.assignments = 0
        self.lat_topic = array("b")
        self.lat_partition = array("i")
        self.lat_offset = array("q")
        self.lat_ms = array("d")

    def on_message_in(self, tp: Any, offset: int, message: Any) -> None:
        """Note the first input record's arrival."""
        if self.first_in is None and tp.topic in self._index:
            self.first_in = time.time()
            self.cpu_first_in = time.process_time()
            self.rss_first_in = rss_bytes()

    def on_message_out(self, tp: Any, offset: int, message: Any) -> None:
        """Count an acknowledged input record; keep its latency if produced after the start."""
        i = self._index.get(tp.topic)
        if i is None:
            return
        now = time.time()
        self.count += 1
        self.last_out = now
        self.cpu_last_out = time.process_time()
        key = (tp.topic, tp.partition)
        if offset > self.max_offset.get(key, -1):
            self.max_offset[key] = offset
        ts = message.timestamp
        if ts and self.first_in is not None and ts > self.first_in:
            self.lat_topic.append(i)
            self.lat_partition.append(tp.partition)
            self.lat_offset.append(offset)
            self.lat_ms.append((now - ts) * 1000.0)

    def snapshot(self) -> dict[str, Any]:
        """The figures so far, as JSON-ready values."""
        return {
            "pid": os.getpid(),
            "count": self.count,
            "first_in": self.first_in,
            "last_out": self.last_out or None,
            "cpu_first_in": self.cpu_first_in,
            "cpu_last_out": self.cpu_last_out,
            "rss_first_in": self.rss_first_in,
            "rss_now": rss_bytes(),
            "max_offset": [[t, p, o] for (t, p), o in sorted(self.max_offset.items())],
            "latencies": len(self.lat_ms),
            "assigned": self.assigned,
            "assignments": self.assignments,
        }

    def latencies(self) -> dict[str, Any]:
        """The processed latencies recorded so far, column by column."""
        return {
            "topic": [self.topics[i] for i in self.lat_topic],
            "partition": self.lat_partition.tolist(),
            "offset": self.lat_offset.tolist(),
            "ms": self.lat_ms.tolist(),
        }


def _write(path: Path, obj: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj))
    os.replace(tmp, path)


def install(app: faust.App, topics: Iterable[str], path: Path) -> Probe:
    """Add a `Probe` to ``app``, the gate, and a timer that writes its snapshots to ``path``."""
    probe = Probe(topics)
    app.sensors.add(probe)
    dump = path.with_name(path.name + ".dump")
    go = path.with_name(path.name + ".go")
    inputs = set(probe.topics)
    opened = [False]

    async def assigned(sender: Any, assigned: Any, **kwargs: Any) -> None:
        mine = {tp for tp in assigned if tp.topic in inputs}
        probe.assigned = len(mine)
        probe.assignments += 1
        if not opened[0]:
            app.consumer.pause_partitions(mine)

    app.on_partitions_assigned.connect(assigned)  # type: ignore[arg-type]

    async def gate() -> None:
        if not opened[0] and go.exists():
            opened[0] = True
            mine = {tp for tp in app.consumer.assignment() if tp.topic in inputs}
            app.consumer.resume_partitions(mine)

    app.timer(0.02, name="bench_probe_gate")(gate)

    async def snapshot() -> None:
        if dump.exists():
            _write(path.with_name(path.name + ".lat.json"), probe.latencies())
            with contextlib.suppress(FileNotFoundError):
                dump.unlink()
        _write(path, probe.snapshot())

    app.timer(SNAPSHOT_INTERVAL_S, name="bench_probe_snapshot")(snapshot)
    return probe
