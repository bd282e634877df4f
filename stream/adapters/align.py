"""Event-time alignment of the input topics: a worker consumes its three topics in step.

A customer's clickstream, e-mail and purchase events come from three co-partitioned topics, and
their features depend on the order the events are applied in. Faust hands a worker the records
of its partitions round-robin, one record per topic at a time, so when a backlog is consumed (a
worker started on retained history, after an outage, or while a backfill is replayed into the
topics) a topic with fewer records per day runs ahead in event time: measured on a 40-day
simulated backlog, the e-mail topic ran more than 30 days ahead of the clickstream, and 2,570
of 89,330 events (2.9 %) were then older than their customer's newest event by more than the
lateness bound and ignored (``microseg_late_events_total``). The features of the rest were
applied out of order, and the daily count of organic touches behind the population-activity
drift test (`stream.core.activity`) came up short.

`EventTimeScheduler` is Faust's ``ConsumerScheduler`` for the worker: it holds back the fetched
records of all the worker's input partitions and releases them merged by event time, the way
Kafka Streams' partition groups do: the record with the earliest ``ts`` among the partitions'
next records goes first, and a partition with nothing held holds back the records later than
its newest while it is known to have records to read (its high watermark is past what the worker
has received). Across partitions too: the trainer learns a day once every partition has reported
it (`stream.core.collate`), and partitions consumed days apart made it learn days without the
slower ones' samples (4,274 of 6,445 on that backlog), so its models differed from the offline
replay's. Each partition's own records keep their offset order, so Faust's offset tracking and
commits work as before: a held record is not in any stream yet, so no commit passes it, and a
rebalance drops what is held (Faust seeks back to the committed offsets). A partition that is
caught up holds nothing back, so a live stream is not delayed; after ``max_wait_s`` of wall time
in which nothing could go, everything held goes (a broker that does not answer for a partition
cannot stall the worker), and a partition with more than ``max_held`` records held is paused
until they have gone.

With a `stream.adapters.pace.Pacer`, records at or past its event-time horizon (a few days past
what the trainer has learnt) wait too, so a backlog is scored with the models of its time.

The event time is read from the record's ``"ts"`` (`event_ms`) without validating the record: a
record without a readable ``ts`` goes first (it will be dead-lettered). Other topics (the trainer's
samples, the table changelogs) pass through in Faust's own round-robin order.
"""

from __future__ import annotations

import heapq
import logging
import re
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime
from typing import Any, NamedTuple, Protocol

from faust.transport.utils import DefaultSchedulingStrategy
from faust.types import TP

from stream.adapters.pace import Pacer
from stream.core.events import event_time_ms

log = logging.getLogger(__name__)

_TS = re.compile(rb'"ts"\s*:\s*"([^"\\]{1,64})"')
EARLIEST = -(2**63)
"""The time of a record without a readable ``ts``."""


def event_ms(value: bytes | None) -> int:
    """The event time (ms) of a raw input record, from its ``"ts"``; `EARLIEST` if unreadable.

    >>> event_ms(b'{"event_id":"e","ts":"2024-01-01T00:00:01Z","type":"x"}')
    1704067201000
    >>> event_ms(b'{"ts": "2024-01-01T01:00:00+01:00"}'), event_ms(b"nope") == EARLIEST
    (1704067200000, True)
    """
    if not value:
        return EARLIEST
    m = _TS.search(value)
    if m is None:
        return EARLIEST
    try:
        ts = datetime.fromisoformat(m.group(1).decode("ascii"))
    except (ValueError, UnicodeDecodeError):
        return EARLIEST
    if ts.tzinfo is None:
        return EARLIEST
    return event_time_ms(ts)


class TopicPartition(NamedTuple):
    """A topic partition (Faust's ``TP`` has the same fields)."""

    topic: str
    partition: int


class Gate(Protocol):
    """What the scheduler needs from the consumer."""

    def highwater(self, tp: Any) -> int | None:
        """The partition's high watermark from the latest fetch (None: not known yet)."""

    def position(self, tp: Any) -> int | None:
        """The next offset the consumer fetches from the partition (None: not known)."""

    def fetching(self, tp: Any) -> bool:
        """Whether the consumer fetches the partition now (not paused, not held back by the
        streams' back-pressure)."""

    def pause(self, tps: set[Any]) -> None:
        """Stop fetching these partitions."""

    def resume(self, tps: set[Any]) -> None:
        """Fetch these partitions again."""


class Aligner:
    """The records of a worker's input topic partitions, held back and released in event-time
    order (module docstring).

    Parameters
    ----------
    gate
        The consumer's high watermarks and pause/resume.
    max_wait_s
        Wall time held records wait at most for a topic partition that has records to read.
    max_held
        Records held for one topic partition beyond which it is paused until drained.
    clock
        Wall clock in seconds (monotonic).
    pacer
        Holds back records at or past an event-time horizon: the trainer's progress
        (`stream.adapters.pace`).
    future_ms
        A record whose ``ts`` is more than this past the ``wall`` clock counts as one without a
        readable time (it goes at once: ingest dead-letters it as ``future_timestamp``). Held at
        the horizon instead, a record dated 9999 held its partition back until a pace timeout,
        then lifted the horizon for good (`Pacer.gap`). None: no bound.
    wall
        The wall clock in seconds since the epoch, for ``future_ms``.
    reached_before
        How far in event time the worker's partitions had got when it started (their stored
        customers' calendars: `stream.core.assigner.Assigner.reached`), for `Pacer.gap` until
        it has processed a record of its own.

    >>> class Consumer:
    ...     high = {}
    ...     def highwater(self, tp): return self.high.get(tp)
    ...     def position(self, tp): return None
    ...     def fetching(self, tp): return True
    ...     def pause(self, tps): pass
    ...     def resume(self, tps): pass
    >>> class Rec(NamedTuple):
    ...     offset: int
    ...     value: bytes
    >>> def rec(offset, day): return Rec(offset, b'{"ts":"2024-01-%02dT00:00:00Z"}' % day)
    >>> click, mail = TopicPartition("click", 0), TopicPartition("mail", 0)
    >>> c = Consumer(); c.high = {click: 3, mail: 3}
    >>> al = Aligner(c)
    >>> al.assign({click, mail})
    >>> [(tp.topic, r.offset) for tp, r in al.take({mail: [rec(0, 1), rec(1, 5), rec(2, 9)]})]
    []
    >>> out = al.take({click: [rec(0, 2), rec(1, 3)]})  # e-mail's day 5 waits for day 4's visit
    >>> [(tp.topic, r.offset) for tp, r in out], al.held
    ([('mail', 0), ('click', 0), ('click', 1)], 2)
    >>> [(tp.topic, r.offset) for tp, r in al.take({click: [rec(2, 6)]})]  # click caught up
    [('mail', 1), ('click', 2), ('mail', 2)]
    """

    def __init__(
        self,
        gate: Gate,
        max_wait_s: float = 2.0,
        max_held: int = 20_000,
        clock: Callable[[], float] = time.monotonic,
        pacer: Pacer | None = None,
        future_ms: int | None = None,
        wall: Callable[[], float] = time.time,
        reached_before: Callable[[], int | None] | None = None,
    ) -> None:
        self.gate = gate
        self.reached_before = reached_before
        self.max_wait_s = max_wait_s
        self.max_held = max_held
        self.clock = clock
        self.pacer = pacer
        self.future_ms = future_ms
        self.wall = wall
        self.held = 0
        """Records held now."""
        self.forced = 0
        """Times the held records went ahead after ``max_wait_s`` (`take`)."""
        self._tps: set[Any] = set()  # the input topic partitions assigned
        self._queues: dict[Any, deque[tuple[int, Any]]] = {}  # tp → (event ms, record)
        self._latest: dict[Any, int] = {}  # tp → the newest event time received
        self._next: dict[Any, int] = {}  # tp → the offset after the last one received
        self._stuck: float | None = None  # wall clock since which nothing could go
        # tp → (offset, event ms) of records let go and not yet processed, kept as a running
        # maximum: each entry's time is above all later entries' (a later record with a later
        # time replaces them), so the first entry has the newest time in flight, and the last
        # entry is always the newest record let go.
        self._flight: dict[Any, deque[tuple[int, int]]] = {}
        self._done: dict[Any, int] = {}  # tp → the newest offset processed (`processed`)
        self._valid: int | None = None  # the newest time of a valid event processed
        self._paused: set[Any] = set()

    def assign(self, tps: Iterable[Any]) -> None:
        """The input topic partitions now assigned, released in step. What is held for a
        partition no longer assigned is dropped."""
        self._tps = set(tps)
        for tp in [tp for tp in self._queues if tp not in self._tps]:
            self.held -= len(self._queues.pop(tp))
        for d in (self._flight, self._done):
            for tp in [tp for tp in d if tp not in self._tps]:
                del d[tp]

    def take(self, records: Mapping[Any, list[Any]]) -> list[tuple[Any, Any]]:
        """Hold ``records`` (topic partition → its records in offset order) and return those
        that may go now, in order: each partition's in offset order, merged by event time, up
        to the newest time reached by every partition that has records to read and none held.
        If nothing could go for ``max_wait_s``, everything held goes."""
        limit = None if self.future_ms is None else int(self.wall() * 1000) + self.future_ms
        for tp, recs in records.items():
            if not recs:
                continue
            self._tps.add(tp)
            times = [event_ms(r.value) for r in recs]
            if limit is not None and max(times) > limit:
                times = [EARLIEST if t > limit else t for t in times]
            if self.pacer is not None and not self.pacer.started:  # its first records only
                readable = [t for t in times if t != EARLIEST]
                if readable:
                    self.pacer.seen(min(readable))
            self._queues.setdefault(tp, deque()).extend(zip(times, recs, strict=True))
            self._latest[tp] = max(self._latest.get(tp, EARLIEST), *times)
            self._next[tp] = recs[-1].offset + 1
            self.held += len(recs)
        out: list[tuple[Any, Any]] = []
        if not self.held:
            self._stuck = None
            return out
        now = self.clock()
        pacer = self.pacer
        horizon = pacer.horizon() if pacer is not None else None
        if self._merge(out, bounded=True, horizon=horizon):
            self._stuck = None
            if pacer is not None:
                pacer.flowing()
        elif horizon is not None and (head := self._head()) >= horizon:
            self._stuck = None  # the next record waits for the trainer only
            assert pacer is not None
            reached = self._reached()
            past = None if reached is None else pacer.gap(reached, head)
            if past is not None and self._merge(out, bounded=True, horizon=past):
                pacer.flowing()  # a gap in event time the trainer cannot cross without us
            elif pacer.waiting():  # the trainer made no progress for too long: go on without
                self._merge(out, bounded=True, horizon=pacer.horizon())
        elif self._stuck is None or not all(self.gate.fetching(tp) for tp in self._blocking()):
            self._stuck = now  # a partition not fetched now (Faust's back-pressure) is waited for
        elif now - self._stuck >= self.max_wait_s:
            n = self._merge(out, bounded=False, horizon=horizon)
            self.forced += 1
            log.info("%d input records went ahead after %.1f s waiting for earlier records of "
                     "another topic partition", n, now - self._stuck)  # fmt: skip
            self._stuck = None
        released = {tp for tp, _ in out} & self._paused
        if released:  # Faust drops the records of a partition that is paused
            self.gate.resume(released)
            self._paused -= released
        return out

    def settle(self) -> None:
        """Pause the topic partitions holding more than ``max_held`` records (call once the
        records `take` returned have been handed on: Faust drops a paused partition's records)."""
        # Re-applied while they stay full: Faust puts a partition back among those it fetches
        # when its stream's buffer drains, paused or not.
        full = {tp for tp, q in self._queues.items() if len(q) > self.max_held}
        if full:
            self.gate.pause(full)
            self._paused |= full

    def forget(self) -> set[Any]:
        """Drop everything held (partitions revoked: Faust seeks back to the committed offsets);
        return the partitions this aligner had paused, for the caller to resume."""
        paused, self._paused = self._paused, set()
        for d in (self._queues, self._latest, self._next, self._flight, self._done):
            d.clear()
        self._tps = set()
        self._stuck = None
        self.held = 0
        return paused

    def processed(self, offsets: Mapping[Any, int], valid_ms: int | None) -> None:
        """The worker processed the records let go up to ``offsets`` (topic partition → the
        newest offset processed, dead-lettered or not); ``valid_ms``: the newest time of a valid
        event among them (None: none was valid).

        Until they are processed, the records let go count at the time their ``"ts"`` says
        (`event_ms`); then only the valid ones count (`_reached`). A record to be
        dead-lettered that says it is far ahead no longer keeps `Pacer.gap` from seeing that
        the trainer waits for the worker (the demo's malformed lines, dated 2024-05-01, go
        before a history that starts in 2023: at ``MICROSEG_PACE_MAX_WAIT_S=30`` its view froze
        for 30 s at the start)."""
        for tp, offset in offsets.items():  # (a batch of partitions since revoked: ignored)
            if tp in self._tps and offset > self._done.get(tp, -1):
                self._done[tp] = offset
        if valid_ms is not None and (self._valid is None or valid_ms > self._valid):
            self._valid = valid_ms

    def paced(self) -> dict[int, int]:
        """Partitions whose next records all wait for the trainer, each with the event time it
        may step its calendar to: partition → the pacer's horizon − 1 ms.

        A partition qualifies when each of its topic partitions either holds records, all at or
        past the horizon, or has nothing to read (none blocking, `_blocking`), and the worker has
        processed every record released (none in flight): whatever it receives next is no
        earlier than the records it holds, so releasing the earliest of them would pass every
        day boundary before the horizon. Stepping its calendar instead sends the
        partition's samples for those days (`stream.adapters.catch_up.step_paced`), which the
        trainer may need before it can learn on and move the horizon: without them a partition
        with a gap of days in its events held everyone at the horizon until
        ``MICROSEG_PACE_MAX_WAIT_S`` ran out.
        """
        horizon = self.pacer.horizon() if self.pacer is not None else None
        if horizon is None:
            return {}
        blocking = {tp.partition for tp in self._blocking()}
        blocking |= {tp.partition for tp in self._tps if self._in_flight(tp)}
        heads: dict[int, int] = {}
        for tp in self._tps:
            q = self._queues.get(tp)
            if q:
                heads[tp.partition] = min(heads.get(tp.partition, q[0][0]), q[0][0])
        return {p: horizon - 1 for p, t in sorted(heads.items())
                if t >= horizon and p not in blocking}  # fmt: skip

    def _merge(self, out: list[tuple[Any, Any]], bounded: bool, horizon: int | None) -> int:
        """Move held records to ``out`` in event-time order (each partition's in its own
        order), those before ``horizon`` (if any); ``bounded``: only up to the newest time of
        each partition with records still to read and none held. Returns how many."""
        tps = sorted(tp for tp, q in self._queues.items() if q)
        queues = [self._queues[tp] for tp in tps]
        limit: int | None = None
        if bounded:
            for tp in self._blocking():
                latest = self._latest.get(tp, EARLIEST)
                limit = latest if limit is None else min(limit, latest)
        heap = [(q[0][0], i) for i, q in enumerate(queues)]
        heapq.heapify(heap)
        if horizon is not None:
            limit = horizon - 1 if limit is None else min(limit, horizon - 1)
        n = 0
        while heap and (limit is None or heap[0][0] <= limit):
            i = heap[0][1]
            q = queues[i]
            t, record = q.popleft()
            out.append((tps[i], record))
            flight = self._flight.setdefault(tps[i], deque())
            while flight and flight[-1][1] <= t:
                flight.pop()
            flight.append((record.offset, t))
            n += 1
            if q:
                heapq.heapreplace(heap, (q[0][0], i))
                continue
            heapq.heappop(heap)
            if bounded and self._pending(tps[i]):  # its next records may be earlier
                latest = self._latest.get(tps[i], EARLIEST)
                limit = latest if limit is None else min(limit, latest)
        self.held -= n
        return n

    def _in_flight(self, tp: Any) -> deque[tuple[int, int]] | None:
        """The records of ``tp`` let go and not processed yet (`_flight`), if any."""
        flight = self._flight.get(tp)
        if not flight:
            return None
        done = self._done.get(tp, -1)
        while flight and flight[0][0] <= done:
            flight.popleft()
        return flight or None

    def _reached(self) -> int | None:
        """How far in event time the worker got: the newest valid event processed, or a record
        let go that is not processed yet, if later; with neither since it started, how far its
        partitions had got before (``reached_before``; None: nothing known).

        Without the last, a restarted worker saw no gap (`Pacer.gap`): an operator restarted
        two of three workers, then fed events that resumed a day and a half past the trainer's
        horizon, and every worker held them for the 30 s of ``MICROSEG_PACE_MAX_WAIT_S``."""
        reached = self._valid
        for tp in self._flight:
            flight = self._in_flight(tp)
            if flight is not None and (reached is None or flight[0][1] > reached):
                reached = flight[0][1]
        if reached is None and self.reached_before is not None:
            return self.reached_before()
        return reached

    def _head(self) -> int:
        """The earliest event time among the partitions' next held records."""
        return min(q[0][0] for q in self._queues.values() if q)

    def _blocking(self) -> list[Any]:
        """The partitions with records to read and none held: nothing later than their newest
        may go."""
        return [tp for tp in self._tps if not self._queues.get(tp) and self._pending(tp)]

    def _pending(self, tp: Any) -> bool:
        """Whether ``tp`` has records the worker has not received (not known: yes)."""
        high = self.gate.highwater(tp)
        if high is None:
            return True
        position = self.gate.position(tp)
        if position is None:
            position = self._next.get(tp, 0)
        return high > position


class EventTimeScheduler(DefaultSchedulingStrategy):
    """Faust's ``ConsumerScheduler`` for the worker: the input topics' records through an
    `Aligner`, the others in Faust's round-robin order."""

    def __init__(self, aligner: Aligner, inputs: frozenset[str]) -> None:
        self.aligner = aligner
        self.inputs = inputs

    def iterate(self, records: Mapping[Any, list[Any]]) -> Iterator[tuple[Any, Any]]:
        """The records of one fetch, and held ones, in the order they go to the streams."""
        other = {tp: recs for tp, recs in records.items() if tp.topic not in self.inputs}
        if other:
            yield from super().iterate(other)
        yield from self.aligner.take(
            {tp: recs for tp, recs in records.items() if tp.topic in self.inputs}
        )
        self.aligner.settle()


class FaustGate:
    """A Faust app's consumer as the `Aligner` sees it."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def highwater(self, tp: Any) -> int | None:
        """The high watermark of ``tp`` from the latest fetch response, if there was one."""
        try:
            high = self.app.consumer.highwater(tp)
        except Exception:  # not fetched yet, or the assignment is changing
            return None
        return None if high is None else int(high)

    def position(self, tp: Any) -> int | None:
        """aiokafka's fetch position of ``tp``: past the records it handed over, and past any
        transaction marker after them (a marker takes an offset, so the offset after the last
        record received would leave a partition written by a transactional producer looking
        like it had more to read)."""
        try:
            consumer = self.app.consumer._thread._ensure_consumer()
            state = consumer._subscription.subscription.assignment.state_value(tp)
        except Exception:  # not assigned (any more), or not started
            return None
        if state is None or not state.has_valid_position:
            return None
        return int(state.position)

    def fetching(self, tp: Any) -> bool:
        """Whether Faust fetches ``tp`` now: not paused, and its stream's buffer not full."""
        consumer = self.app.consumer
        faust_tp = TP(tp.topic, tp.partition)
        return (
            faust_tp not in consumer._paused_partitions
            and faust_tp not in consumer._buffered_partitions
        )

    def pause(self, tps: set[Any]) -> None:
        """Stop fetching ``tps``."""
        self.app.consumer.pause_partitions(_faust_tps(tps))

    def resume(self, tps: set[Any]) -> None:
        """Fetch ``tps`` again."""
        self.app.consumer.resume_partitions(_faust_tps(tps))


def _faust_tps(tps: Iterable[Any]) -> set[Any]:
    """Faust's own ``TP`` of each topic partition (a fetch's records are keyed by aiokafka's,
    and Faust's set of active partitions accepts its own only)."""
    return {TP(tp.topic, tp.partition) for tp in tps}


def install(
    app: Any,
    inputs: frozenset[str],
    max_wait_s: float,
    pacer: Pacer | None = None,
    future_ms: int | None = None,
    reached_before: Callable[[], int | None] | None = None,
) -> Aligner:
    """Make ``app``'s consumer release the ``inputs`` topics' records in event-time order from
    its first partition assignment on (and no further than ``pacer``'s horizon); return the
    `Aligner` (for its metrics). ``future_ms``, ``reached_before``: as `Aligner`'s."""
    aligner = Aligner(
        FaustGate(app), max_wait_s=max_wait_s, pacer=pacer, future_ms=future_ms,
        reached_before=reached_before,
    )  # fmt: skip

    async def assigned(sender: Any, assigned: Any, **kwargs: Any) -> None:
        consumer = app.consumer
        if not isinstance(consumer.scheduler, EventTimeScheduler):
            consumer.scheduler = EventTimeScheduler(aligner, inputs)
        aligner.assign(tp for tp in assigned if tp.topic in inputs)

    async def revoked(sender: Any, revoked: Any, **kwargs: Any) -> None:
        paused = aligner.forget()
        if paused:
            aligner.gate.resume(paused)

    app.on_partitions_assigned.connect(assigned)
    app.on_partitions_revoked.connect(revoked)
    return aligner
