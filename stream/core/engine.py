"""The offline engine: the same core as the worker, driven in-process over time-ordered events.

`Engine` validates every line, keeps each valid event's fact (`stream.core.facts.fact_of`, of
the line's fields), orders them by event time (then event id, then input position — a total
order, so the result never depends on how the input was arranged), applies them through `Ingest.admit_fact` exactly as
the worker does, and evaluates every customer's features at the final watermark. Later stages
(trainer, scorer) plug in as `Stage` objects that see each applied event and the advancing
watermark, and append records to named output streams. Without stages nothing sees the order
across customers, so each customer's events are applied together (same order, same offsets).

Same input and configuration → same outputs, byte for byte (`stream.core.render`).

A queued event takes about 270 bytes. Given `Runs`, the engine keeps at most ``run_events`` of them:
it sorts them into a run and hands it over, and `Engine.run` merges the runs (an external sort,
the same order, so the same outputs; `stream.replay_spill.FileRuns` keeps runs on disk).

>>> eng = Engine(Ingest(check_future=False))
>>> eng.feed([("f.jsonl", 1, b'{"event_id":"a","customer_id":"c1","type":"purchase",'
...                         b'"ts":"2024-01-02T00:00:00Z","order_id":"o1","amount":10}'),
...           ("f.jsonl", 2, b'not json')])
>>> result = eng.run()
>>> result.counts["accepted"], result.counts["dead_lettered"], round(result.features["c1"][6], 2)
(1, 1, 10.0)
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import count, islice
from operator import itemgetter
from typing import Any, Protocol

import numpy as np

from stream.core.deadletter import DeadLetter, Origin
from stream.core.facts import EFFECTS, Effect, fact_of_fields
from stream.core.features import vector
from stream.core.ingest import ACCEPTED, DEAD_LETTERED, Ingest
from stream.core.state import CustomerState, id_hash
from stream.core.validation import Rejection

_CHUNK = 256  # lines validated before their events are reduced to facts (see `Engine.feed`)
Entry = tuple[int, str, int, str, Effect, float, int]
"""A queued valid event: time (ms), event id, sequence, customer id, its fact's effect and amount
(`fact_of_fields`), the `id_hash` of its id."""
_CUSTOMER = itemgetter(3)
_TICK = 8191  # `Engine.run` reports progress every 8,192 events (a mask: one AND an event)


class Stage(Protocol):
    """A pluggable step after feature updates (e.g. the trainer or the scorer)."""

    def before_applied(self, t: int) -> None:
        """Called before an event at ``t`` ms is applied: what is due before ``t`` (a day's
        sample, say) sees every state as it was, without that event."""

    def on_applied(self, customer_id: str, state: CustomerState, event_id: str, t: int) -> None:
        """Called after event ``event_id`` (at ``t`` ms) was applied to the customer's ``state``."""

    def finish(self, watermark: int, out: dict[str, list[bytes]]) -> None:
        """Called once at the end; may add output streams to ``out``: each a list of records,
        each record its output line (`stream.core.outputs.json_line`)."""

    def report(self) -> dict[str, Any]:
        """Sections this stage adds to ``report.json`` (after `finish`)."""

    def forget(self, customer_id: str) -> None:
        """Drop everything the stage holds about an erased customer."""


class Runs(Protocol):
    """Where the engine puts sorted runs of its queue (see the module docstring)."""

    def add(self, entries: list[Entry]) -> None:
        """Keep ``entries`` (sorted) as one run."""

    def take(self) -> list[Iterator[Entry]]:
        """Every run kept, each to be read once, in order; nothing is kept after."""


@dataclass
class RunResult:
    """What an offline run produced."""

    counts: Counter[str]
    by_reason: Counter[str]
    by_type: Counter[str]
    watermark: int | None
    features: dict[str, list[float]]
    dead_letters: list[DeadLetter]
    streams: dict[str, list[bytes]] = field(default_factory=dict)
    report: dict[str, Any] = field(default_factory=dict)


class Engine:
    """Offline driver of the core with an in-memory state store.

    Parameters
    ----------
    ingest
        The ingest stage (validation limits, lateness bound), as configured for the worker.
    stages
        Later stages, called in order for every applied event.
    reference_ms
        "Now" for the future-timestamp check (files carry no record time); None skips it.
    runs
        Where sorted runs of the queue go once it holds ``run_events`` events; None: the whole
        queue stays in memory.
    run_events
        Queued events held in memory at most, with ``runs``.
    """

    def __init__(
        self,
        ingest: Ingest,
        stages: list[Stage] | None = None,
        reference_ms: int | None = None,
        runs: Runs | None = None,
        run_events: int = 1_000_000,
    ) -> None:
        self.ingest = ingest
        self.stages = stages or []
        self.reference_ms = reference_ms
        self.runs = runs
        self.run_events = run_events
        self.states: dict[str, CustomerState] = {}
        self._pending: list[Entry] = []
        self._dead: list[DeadLetter] = []
        self._counts: Counter[str] = Counter()
        self._by_reason: Counter[str] = Counter()
        self._seq = 0
        self._ids: dict[str, str] = {}
        """Each customer id once: the queued events share it (a 3,000-customer file holds
        each id a few hundred times; 61 bytes an event, 18 % of what the queue holds)."""
        self._applied = 0  # position of the next applied event: its offset mark, across runs

    def feed(self, lines: Iterable[tuple[str, int, bytes]]) -> None:
        """Validate ``(source, line_number, bytes)`` lines and queue the valid events.

        Each line's fields come from `Validator.fields_of_line` (no event model); a line it
        rejects, or one in the future, goes through `Validator.validate_line`, which decides and
        words the rejection exactly as for the worker.
        """
        validator = self.ingest.validator
        fields_of, validate = validator.fields_of_line, validator.validate_line
        ref = self.reference_ms
        # The latest event time not rejected as in the future (files have no record time).
        latest = None if ref is None else ref + validator.limits.future_tolerance_ms
        append = self._pending.append
        one_id = self._ids.setdefault
        seq = self._seq
        n = 0
        it = iter(lines)
        # In chunks: validate a chunk, then reduce its events to facts. Each loop runs warm in the
        # CPU's caches (the validator's code is large), and the chunk's fields are still cached.
        while chunk := list(islice(it, _CHUNK)):
            n += len(chunk)
            valid = [fields_of(raw) for _, _, raw in chunk]
            for (source, line_no, raw), fields in zip(chunk, valid, strict=True):
                if fields is not None:
                    t, effect, amount = fact_of_fields(fields)
                    if latest is not None and t > latest:
                        fields = None
                if fields is None:
                    event = validate(raw, ref)
                    if isinstance(event, Rejection):
                        self._dead_letter(source, line_no, raw, event)
                        continue
                    fields = event.__dict__  # (the validators agree: not reached)
                    t, effect, amount = fact_of_fields(fields)
                event_id = fields["event_id"]
                cid = one_id(fields["customer_id"], fields["customer_id"])
                append((t, event_id, seq, cid, effect, amount, id_hash(event_id)))
                seq += 1
            if self.runs is not None and len(self._pending) >= self.run_events:
                self._spill(self.runs)
                append = self._pending.append
        self._seq = seq
        self._counts["lines"] += n

    def _spill(self, runs: Runs) -> None:
        pending, self._pending = self._pending, []
        pending.sort()
        runs.add(pending)

    def _dead_letter(self, source: str, line_no: int, raw: bytes, rejection: Rejection) -> None:
        self._dead.append(
            DeadLetter.build(raw, None, Origin(source, 0, line_no), rejection.reason,
                             rejection.detail, self.ingest.limits.max_message_bytes)
        )  # fmt: skip
        self._by_reason[rejection.reason.value] += 1
        self._counts[DEAD_LETTERED] += 1

    def run(self, progress: Callable[[int, int], None] | None = None) -> RunResult:
        """Apply the queued events in event-time order; evaluate features at the end.

        ``progress(done, total)`` is called every 8,192 events applied and once at the end (a
        progress bar; it must not touch the engine).
        """
        # (time, event id, sequence) is unique per entry, so plain tuple order never reaches the
        # rest and equals ordering by those three keys; merging sorted runs gives the same order.
        pending = self._pending
        pending.sort()
        spilled = self.runs.take() if self.runs is not None else []
        total = self._seq - self._applied
        tick = progress if progress is not None else _ignore
        # What happened to the events, in position order (so every count's first key is as if
        # counted along, whatever order the customers were processed in): each accepted one's
        # effect code, or the outcome.
        if spilled:
            tally, n, watermark = self._apply_in_order(heapq.merge(*spilled, pending), tick, total)
        elif self.stages:
            tally, n, watermark = self._apply_in_order(pending, tick, total)
        else:
            tally, n = self._apply_by_customer(pending, tick), len(pending)
            watermark = pending[-1][0] if pending else None  # the latest time: they are sorted
        tick(n, total)
        counts = self._counts
        by_type: Counter[str] = Counter()
        accepted = 0
        for key, k in tally.items():
            if isinstance(key, int):
                by_type[EFFECTS[key].type] += k
                accepted += k
            else:
                counts[str(key)] += k
        if accepted:
            counts[ACCEPTED] += accepted
        self._applied += n
        self._pending = []
        self._ids.clear()
        states = self.states
        features = (
            {cid: vector(states[cid], watermark) for cid in sorted(states)} if watermark else {}
        )
        streams: dict[str, list[bytes]] = {}
        extra: dict[str, Any] = {}
        for stage in self.stages:
            stage.finish(watermark or 0, streams)
            extra.update(stage.report())
        counts["customers"] = len(states)
        dead = sorted(self._dead, key=lambda d: (d.source.topic, d.source.offset))
        return RunResult(
            Counter(counts), Counter(self._by_reason), by_type, watermark, features, dead, streams,
            extra,
        )  # fmt: skip

    def _apply_in_order(
        self, entries: Iterable[Entry], tick: Callable[[int, int], None], total: int
    ) -> tuple[Counter[int | str], int, int | None]:
        """Apply sorted entries one after the other, calling the stages after each; return what
        happened to them (see `run`), how many there were and the latest time."""
        states = self.states
        admit = self.ingest.admit_fact
        stages = self.stages
        base = self._applied
        tally: Counter[int | str] = Counter()
        j, t = -1, None
        for j, (t, event_id, _, cid, effect, amount, hashed_id) in enumerate(entries):
            if not j & _TICK:
                tick(j, total)
            for stage in stages:
                stage.before_applied(t)
            state = states.get(cid)
            if state is None:
                state = states[cid] = CustomerState()
            outcome = admit(state, hashed_id, t, effect, amount, -1, base + j)
            if outcome == ACCEPTED:
                tally[effect.code] += 1
                for stage in stages:
                    stage.on_applied(cid, state, event_id, t)
            else:
                tally[outcome] += 1
        return tally, j + 1, t

    def _apply_by_customer(
        self, pending: list[Entry], tick: Callable[[int, int], None]
    ) -> Counter[int | str]:
        """Apply the sorted entries customer by customer: the same result when no stage watches
        (what happened to them as `_apply_in_order` says it).

        A customer's state depends only on its own events, in their order, and each keeps its
        position (its offset mark). Taking one customer's events together keeps its state in the
        cache instead of visiting every state in time order.
        """
        n = len(pending)
        results: list[int | str | None] = [None] * n
        if not n:
            return Counter()
        # Each event's customer by number: the position of the customer's first event (so the
        # customers come in order of first event, as the states are created in time order). A
        # stable sort by number groups the positions, each customer's in time order.
        firsts: dict[str, int] = {}
        number = np.fromiter(map(firsts.setdefault, map(_CUSTOMER, pending), count()), np.int64, n)
        by_customer = np.argsort(number, kind="stable")
        grouped = number[by_customer]
        ends = np.append(np.flatnonzero(grouped[1:] != grouped[:-1]) + 1, n).tolist()
        positions = by_customer.tolist()
        states = self.states
        admit = self.ingest.admit_fact
        base = self._applied
        start = 0
        for cid, end in zip(firsts, ends, strict=True):
            if start & ~_TICK != end & ~_TICK:  # crossed a multiple of 8,192 events
                tick(end, n)
            state = states.get(cid)
            if state is None:
                state = states[cid] = CustomerState()
            for j in positions[start:end]:
                t, _, _, _, effect, amount, hashed_id = pending[j]
                outcome = admit(state, hashed_id, t, effect, amount, -1, base + j)
                results[j] = effect.code if outcome == ACCEPTED else outcome
            start = end
        return Counter(results)  # type: ignore[arg-type]  # (every position was applied)

    def erase(self, customer_id: str) -> bool:
        """Forget a customer entirely (GDPR erasure); True if there was anything to forget."""
        self._pending = [p for p in self._pending if p[3] != customer_id]
        if self.runs is not None:  # the runs are rewritten without the customer, one at a time
            for run in self.runs.take():
                if kept := [p for p in run if p[3] != customer_id]:
                    self.runs.add(kept)
        self._ids.pop(customer_id, None)
        for stage in self.stages:
            stage.forget(customer_id)
        return self.states.pop(customer_id, None) is not None


def _ignore(done: int, total: int) -> None:
    """No progress to report."""
