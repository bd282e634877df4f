"""The ingest stage: raw records in, valid events applied to customer state, bad ones out.

`Ingest.process` takes a batch of raw records (from Kafka or a file), validates each, skips
redeliveries using the customers' own offset marks, and returns what happened: the events that
were applied, the dead-letter records, per-(stream, type, outcome) counts and the customer states
that changed (one write per customer per batch). It is pure; the Faust agent and the offline
replay both drive it.

>>> ingest = Ingest()
>>> ok = (b'{"event_id":"e1","customer_id":"c1","type":"email_sent",'
...       b'"ts":"2024-01-01T00:00:00Z","campaign_id":"k"}')
>>> recs = [RawRecord("email", Stream.EMAIL, 0, 7, None, b"c1", ok),
...         RawRecord("email", Stream.EMAIL, 0, 7, None, b"c1", ok),
...         RawRecord("email", Stream.EMAIL, 0, 8, None, b"c1", b"nope")]
>>> out = ingest.process(recs, {}.get)
>>> out.changed["c1"].events, [d.reason.value for d in out.dead_letters]
([0, 1, 0], ['not_json'])
>>> sorted(out.counts.items())
[(('email', 'email_sent', 'accepted'), 1), (('email', 'email_sent', 'duplicate'), 1), (('email', 'invalid', 'dead_lettered'), 1)]
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from stream.core.deadletter import DeadLetter, Origin
from stream.core.events import Stream
from stream.core.facts import Effect, apply_fact, fact_of
from stream.core.features import DAY_MS
from stream.core.state import NO_TIME, CustomerState, id_hash
from stream.core.validation import AnyEvent, Limits, Rejection, Validator

ACCEPTED = "accepted"
DUPLICATE = "duplicate"
DEAD_LETTERED = "dead_lettered"
TOO_OLD = "too_old"
INVALID_TYPE = "invalid"
"""The ``type`` label of a rejected event (its own ``type`` may be anything)."""


@dataclass(frozen=True, slots=True)
class RawRecord:
    """One record as it came off a topic or out of a file."""

    topic: str
    stream: Stream | None
    partition: int
    offset: int
    timestamp_ms: int | None
    key: bytes | None
    value: bytes | None


@dataclass(slots=True)
class BatchResult:
    """What one batch did."""

    applied: list[tuple[RawRecord, AnyEvent]] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    counts: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    rejected: Counter[tuple[str, str]] = field(default_factory=Counter)
    changed: dict[str, CustomerState] = field(default_factory=dict)
    newest_ms: int | None = None
    """The newest event time among the valid events (applied or not): how far in event time the
    batch took its partitions; None if it had none."""


class Ingest:
    """Validate and apply records to per-customer state.

    Parameters
    ----------
    limits
        Validation limits (size, future tolerance).
    check_future
        Whether to reject events later than their record's timestamp plus the tolerance.
    lateness_days
        An event older than the customer's newest event by more than this is counted
        (``too_old``) and ignored.
    """

    def __init__(
        self, limits: Limits | None = None, check_future: bool = True, lateness_days: float = 30.0
    ) -> None:
        self.limits = limits or Limits()
        self.check_future = check_future
        self.lateness_days = lateness_days
        self._lateness_ms = int(lateness_days * DAY_MS)
        self.validator = Validator(self.limits)

    def admit(
        self,
        state: CustomerState,
        event: AnyEvent,
        partition: int,
        offset: int,
        t: int | None = None,
    ) -> str:
        """Apply one valid event to ``state`` unless it is a redelivery, a re-send or too old.

        ``t`` is the event time in ms when the caller already has it (default: from ``ts``).
        Returns the outcome: ``accepted``, ``duplicate`` or ``too_old``.
        """
        t, effect, amount = fact_of(event, t)
        return self.admit_fact(state, id_hash(event.event_id), t, effect, amount, partition, offset)

    def admit_fact(
        self,
        state: CustomerState,
        hashed_id: int,
        t: int,
        effect: Effect,
        amount: float,
        partition: int,
        offset: int,
    ) -> str:
        """`admit` of an event already reduced to its id's `stream.core.state.id_hash` and its
        fact (``t, effect, amount``: `stream.core.facts.fact_of`)."""
        i = effect.stream
        if not state.admit_offset(i, partition, offset):
            return DUPLICATE
        last_ts = state.last_ts
        if last_ts != NO_TIME and last_ts - t > self._lateness_ms:
            state.too_old += 1
            return TOO_OLD
        if not state.admit_id_hash(hashed_id):
            return DUPLICATE
        apply_fact(state, t, effect, amount)
        state.events[i] += 1
        return ACCEPTED

    def process(
        self,
        records: Sequence[RawRecord],
        load: Callable[[str], CustomerState | None],
        before: Callable[[int, int, dict[str, CustomerState]], None] | None = None,
        after: Callable[[int, int, CustomerState], None] | None = None,
        now_ms: int | None = None,
    ) -> BatchResult:
        """Process a batch. ``load(customer_id)`` returns the stored state or None.

        ``after(partition, t, state)`` is called after each event applied (the worker counts
        organic touches there, as the offline engine's stages see each applied event:
        `stream.core.engine.Stage.on_applied`).

        ``before(partition, t, changed)`` is called before each valid event (at ``t`` ms, from
        ``partition``) is applied, with the states the batch changed so far: the worker samples
        a day there when ``t`` passes its boundary, as the offline engine does
        (`stream.core.engine.Stage.before_applied`), so both sample the same states.

        ``now_ms`` (the worker's clock) also bounds the future check: an event is in the future
        past the earlier of its record's timestamp and ``now_ms`` (plus the tolerance). The
        record timestamp alone is the producer's to set: a purchase and its record both dated
        9999 passed, and the worker's day clock and the trainer's calendar then marched towards
        year 9999.
        """
        out = BatchResult()
        changed = out.changed
        for rec in records:
            stream_label = rec.stream.value if rec.stream else "unknown"
            result = self.validator.validate(
                rec.value,
                rec.key,
                stream=rec.stream,
                reference_ms=_reference(rec.timestamp_ms, now_ms) if self.check_future else None,
            )
            if isinstance(result, Rejection):
                out.dead_letters.append(
                    DeadLetter.build(
                        rec.value,
                        rec.key,
                        Origin(rec.topic, rec.partition, rec.offset, rec.timestamp_ms),
                        result.reason,
                        result.detail,
                        max_bytes=self.limits.max_message_bytes,
                    )
                )
                out.counts[(stream_label, INVALID_TYPE, DEAD_LETTERED)] += 1
                out.rejected[(stream_label, result.reason.value)] += 1
                continue
            cid = result.customer_id
            t, effect, amount = fact_of(result)
            if out.newest_ms is None or t > out.newest_ms:
                out.newest_ms = t
            if before is not None:
                before(rec.partition, t, changed)
            state = changed.get(cid)
            if state is None:
                state = load(cid) or CustomerState()
            outcome = self.admit_fact(
                state, id_hash(result.event_id), t, effect, amount, rec.partition, rec.offset
            )
            if outcome == ACCEPTED:
                out.applied.append((rec, result))
                if after is not None:
                    after(rec.partition, t, state)
            out.counts[(result.stream.value, result.type, outcome)] += 1
            changed[cid] = state
        return out


def _reference(record_ms: int | None, now_ms: int | None) -> int | None:
    """What an event's time must not pass (plus the tolerance): the earlier of the two known."""
    if record_ms is None or now_ms is None:
        return now_ms if record_ms is None else record_ms
    return min(record_ms, now_ms)
