"""The offline engine: the same core as the worker, driven in-process over time-ordered events.

`Engine` validates every line, keeps each valid event's fact (`stream.core.features.fact_of`, of
the line's fields), orders them by event time (then event id, then input position — a total
order, so the result never depends on how the input was arranged), applies them through `Ingest.admit_fact` exactly as
the worker does, and evaluates every customer's features at the final watermark. Later stages
(trainer, scorer) plug in as `Stage` objects that see each applied event and the advancing
watermark, and append records to named output streams. Without stages nothing sees the order
across customers, so each customer's events are applied together (same order, same offsets).

Same input and configuration → same outputs, byte for byte (`Engine.outputs`).

>>> eng = Engine(Ingest(check_future=False))
>>> eng.feed([("f.jsonl", 1, b'{"event_id":"a","customer_id":"c1","type":"purchase",'
...                         b'"ts":"2024-01-02T00:00:00Z","order_id":"o1","amount":10}'),
...           ("f.jsonl", 2, b'not json')])
>>> result = eng.run()
>>> result.counts["accepted"], result.counts["dead_lettered"], round(result.features["c1"][6], 2)
(1, 1, 10.0)
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import chain, count, islice
from json.encoder import encode_basestring_ascii
from operator import itemgetter
from typing import Any, Protocol

import numpy as np

from stream.core.deadletter import DeadLetter, Origin
from stream.core.features import EFFECTS, FEATURES, NAMES, Effect, fact_of_fields, vector
from stream.core.ingest import ACCEPTED, DEAD_LETTERED, Ingest
from stream.core.state import CustomerState, encoded_size, id_hash
from stream.core.validation import Rejection

_CHUNK = 256  # lines validated before their events are reduced to facts (see `Engine.feed`)
_Entry = tuple[int, str, int, str, Effect, float, int]
"""A queued valid event: time (ms), event id, sequence, customer id, its fact's effect and amount
(`fact_of_fields`), the `id_hash` of its id."""
_CUSTOMER = itemgetter(3)


class Stage(Protocol):
    """A pluggable step after feature updates (e.g. the trainer or the scorer)."""

    def before_applied(self, t: int) -> None:
        """Called before an event at ``t`` ms is applied: what is due before ``t`` (a day's
        sample, say) sees every state as it was, without that event."""

    def on_applied(self, customer_id: str, state: CustomerState, event_id: str, t: int) -> None:
        """Called after event ``event_id`` (at ``t`` ms) was applied to the customer's ``state``."""

    def finish(self, watermark: int, out: dict[str, list[dict[str, Any]]]) -> None:
        """Called once at the end; may append records to output streams in ``out``."""

    def report(self) -> dict[str, Any]:
        """Sections this stage adds to ``report.json`` (after `finish`)."""

    def forget(self, customer_id: str) -> None:
        """Drop everything the stage holds about an erased customer."""


@dataclass
class RunResult:
    """What an offline run produced."""

    counts: Counter[str]
    by_reason: Counter[str]
    by_type: Counter[str]
    watermark: int | None
    features: dict[str, list[float]]
    dead_letters: list[DeadLetter]
    streams: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
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
    """

    def __init__(
        self, ingest: Ingest, stages: list[Stage] | None = None, reference_ms: int | None = None
    ) -> None:
        self.ingest = ingest
        self.stages = stages or []
        self.reference_ms = reference_ms
        self.states: dict[str, CustomerState] = {}
        self._pending: list[_Entry] = []
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
        self._seq = seq
        self._counts["lines"] += n

    def _dead_letter(self, source: str, line_no: int, raw: bytes, rejection: Rejection) -> None:
        self._dead.append(
            DeadLetter.build(raw, None, Origin(source, 0, line_no), rejection.reason,
                             rejection.detail, self.ingest.limits.max_message_bytes)
        )  # fmt: skip
        self._by_reason[rejection.reason.value] += 1
        self._counts[DEAD_LETTERED] += 1

    def run(self) -> RunResult:
        """Apply the queued events in event-time order; evaluate features at the end."""
        # (time, event id, sequence) is unique per entry, so plain tuple order never reaches the
        # rest and equals ordering by those three keys.
        pending = self._pending
        pending.sort()
        base = self._applied
        # What happened to the event at each position: its effect's code if accepted, else the
        # outcome. Counted at the end, in position order (so every count's first key is as if
        # counted along, whatever order the customers were processed in).
        results: list[int | str | None] = [None] * len(pending)
        if self.stages:
            self._apply_in_order(pending, results)
        else:
            self._apply_by_customer(pending, results)
        counts = self._counts
        by_type: Counter[str] = Counter()
        accepted = 0
        for key, n in Counter(results).items():
            if isinstance(key, int):
                by_type[EFFECTS[key].type] += n
                accepted += n
            else:
                counts[str(key)] += n
        if accepted:
            counts[ACCEPTED] += accepted
        watermark = pending[-1][0] if pending else None  # the latest time: they are sorted
        self._applied = base + len(pending)
        self._pending = []
        self._ids.clear()
        states = self.states
        features = (
            {cid: vector(states[cid], watermark) for cid in sorted(states)} if watermark else {}
        )
        streams: dict[str, list[dict[str, Any]]] = {}
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

    def _apply_in_order(self, pending: list[_Entry], results: list[int | str | None]) -> None:
        """Apply the sorted entries one after the other, calling the stages after each."""
        states = self.states
        admit = self.ingest.admit_fact
        stages = self.stages
        base = self._applied
        for j, (t, event_id, _, cid, effect, amount, hashed_id) in enumerate(pending):
            for stage in stages:
                stage.before_applied(t)
            state = states.get(cid)
            if state is None:
                state = states[cid] = CustomerState()
            outcome = admit(state, hashed_id, t, effect, amount, -1, base + j)
            if outcome == ACCEPTED:
                results[j] = effect.code
                for stage in stages:
                    stage.on_applied(cid, state, event_id, t)
            else:
                results[j] = outcome

    def _apply_by_customer(self, pending: list[_Entry], results: list[int | str | None]) -> None:
        """Apply the sorted entries customer by customer: the same result when no stage watches.

        A customer's state depends only on its own events, in their order, and each keeps its
        position (its offset mark). Taking one customer's events together keeps its state in the
        cache instead of visiting every state in time order.
        """
        n = len(pending)
        if not n:
            return
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
            state = states.get(cid)
            if state is None:
                state = states[cid] = CustomerState()
            for j in positions[start:end]:
                t, _, _, _, effect, amount, hashed_id = pending[j]
                outcome = admit(state, hashed_id, t, effect, amount, -1, base + j)
                results[j] = effect.code if outcome == ACCEPTED else outcome
            start = end

    def erase(self, customer_id: str) -> bool:
        """Forget a customer entirely (GDPR erasure); True if there was anything to forget."""
        self._pending = [p for p in self._pending if p[3] != customer_id]
        self._ids.pop(customer_id, None)
        for stage in self.stages:
            stage.forget(customer_id)
        return self.states.pop(customer_id, None) is not None


def feature_statistics(
    features: dict[str, list[float]], matrix: np.ndarray | None = None
) -> dict[str, dict[str, float | str]]:
    """Per-feature population statistics over customers (mean, std, min, quartiles, p90, max).

    ``matrix`` is `_matrix` of ``features``, when the caller already has it.
    """
    if not features:
        return {}
    m = _matrix(features) if matrix is None else matrix
    q = np.percentile(m, [0, 25, 50, 75, 90, 100], axis=0)
    out: dict[str, dict[str, float | str]] = {}
    for j, f in enumerate(FEATURES):
        out[f.name] = {
            "mean": _num(m[:, j].mean()), "std": _num(m[:, j].std()), "min": _num(q[0, j]),
            "p25": _num(q[1, j]), "p50": _num(q[2, j]), "p75": _num(q[3, j]),
            "p90": _num(q[4, j]), "max": _num(q[5, j]), "unit": f.unit,
        }  # fmt: skip
    return out


def _matrix(features: dict[str, list[float]]) -> np.ndarray:
    """The customers' feature values as rows: ``np.asarray(list(features.values()))``, faster."""
    n, width = len(features), len(FEATURES)
    return np.fromiter(chain.from_iterable(features.values()), np.float64, n * width).reshape(
        n, width
    )


def _num(x: float) -> float:
    """Round for output: 9 significant digits, so reports are stable and readable."""
    x = float(x)
    return 0.0 if x == 0 or not math.isfinite(x) else float(f"{x:.9g}")


# Feature names in sorted order with their positions, and the JSON text before each value.
_SORTED = sorted(range(len(NAMES)), key=NAMES.__getitem__)
_PREFIXES = tuple(
    ("{" if k == 0 else ",") + json.dumps(NAMES[j]) + ":" for k, j in enumerate(_SORTED)
)
_IN_NAME_ORDER = itemgetter(*_SORTED)
_BITS = np.left_shift(1, np.arange(len(NAMES), dtype=np.int64))


# Per value: the JSON text before it and its ``%`` format, ``%.9g`` or ``%.1f``.
_PIECES = tuple(
    (p.replace("%", "%%").encode() + b"%.9g", p.replace("%", "%%").encode() + b"%.1f")
    for p in _PREFIXES
)


def _line_format(exact: int) -> bytes:
    """The ``%`` format of a customer's features (after the id) in `_features_jsonl`: ``%.1f``
    for the values flagged in the bit mask ``exact`` (exactly 0 or 1), ``%.9g`` for the others."""
    return b"".join([piece[exact >> k & 1] for k, piece in enumerate(_PIECES)]) + b"}}\n"


def _features_jsonl(features: dict[str, list[float]], matrix: np.ndarray | None = None) -> bytes:
    r"""``{"customer_id": …, "features": {name: _num(value)}}`` per line, exactly as
    ``json.dumps(…, sort_keys=True, separators=(",", ":"))`` writes it, without the dict walk.

    ``json.dumps(_num(x))`` writes ``repr(float(f"{x:.9g}"))``, which has the digits of
    ``f"{x:.9g}"``: it is the shortest text that reads back as the same float, and no other text
    of at most 9 significant digits does. Both write fixed notation from 1e-4 up to 1e9 and
    ``…e-XX`` below 1e-4, so the ``%.9g`` text of ``x`` is the output except for whole numbers
    (``repr`` adds ``.0``: for exactly 0 and 1, ``%.1f`` writes that), zero and non-finite values
    (both written 0.0), negative values, those from 1e9 up (fixed notation in ``repr``) and
    subnormal ones (fewer digits tell them apart: 4.94065646e-324 is written 5e-324). A customer
    with a value of these last kinds (or below 1e-300), or one near a whole number but for exactly
    0 and 1, is written the plain way instead. ``matrix`` is `_matrix` of ``features``, if any.

    >>> vals = [float(i) / 3 for i in range(len(NAMES))]
    >>> vals[3], vals[4], vals[5], vals[6], vals[7] = 0.0, -1e-300, float("nan"), 1e-5, 2e9
    >>> vals[8], vals[9], vals[10], vals[11] = 99.0, 1234567890123.0, 3.5e-300, 0.9999999999
    >>> vals[12] = 5e-324
    >>> n = len(NAMES)
    >>> for v in (vals, vals[::-1], [0.0] * n, [float(i) * 1e-5 for i in range(n)],
    ...           [1.0 - i * 1e-10 for i in range(n)], [0.0, 1.0] * (n // 2) + [0.0] * (n % 2)):
    ...     rec = {"customer_id": "cé\"", "features": dict(zip(NAMES, map(_num, v)))}
    ...     want = json.dumps(rec, sort_keys=True, separators=(",", ":")).encode() + b"\n"
    ...     assert _features_jsonl({"cé\"": v}) == want, v
    """
    if not features:
        return b""
    m = _matrix(features) if matrix is None else matrix
    exact = (m == 0.0) | (m == 1.0)
    with np.errstate(invalid="ignore"):
        plain = (
            ~np.isfinite(m)
            | np.signbit(m)
            | (m >= 999_999_999.0)
            | ((m > 0.0) & (m < 1e-300))
            | ((m >= 0.5) & (np.abs(m - np.rint(m)) <= 1e-8 * np.maximum(1.0, m)) & ~exact)
        ).any(axis=1)
    masks = (exact[:, _SORTED] @ _BITS).tolist()
    formats: dict[int, bytes] = {}
    quote, pick = encode_basestring_ascii, _IN_NAME_ORDER
    parts: list[bytes] = []
    add = parts.append
    for (cid, vals), slow, mask in zip(features.items(), plain.tolist(), masks, strict=True):
        add(b'{"customer_id":' + quote(cid).encode() + b',"features":')  # as json.dumps(cid)
        if slow:
            add(_features_plain(vals).encode())
        else:
            fmt = formats.get(mask)
            if fmt is None:
                fmt = formats[mask] = _line_format(mask)
            add(fmt % pick(vals))
    return b"".join(parts)


def _features_plain(vals: list[float]) -> str:
    """The ``{name: value}`` JSON text of one customer's features, one value at a time."""
    parts = [prefix + repr(_num(vals[j])) for prefix, j in zip(_PREFIXES, _SORTED, strict=True)]
    return "".join(parts) + "}}\n"


def render_outputs(result: RunResult, config: dict[str, Any]) -> dict[str, bytes]:
    """File name → bytes of every output of a run (JSONL per stream, plus ``report.json``)."""

    def jsonl(records: Iterable[dict[str, Any]]) -> bytes:
        return b"".join(json.dumps(r, sort_keys=True, separators=(",", ":")).encode() + b"\n"
                        for r in records)  # fmt: skip

    matrix = _matrix(result.features)
    files = {
        "dead-letter.jsonl": jsonl(d.model_dump(mode="json") for d in result.dead_letters),
        "features.jsonl": _features_jsonl(result.features, matrix),
    }
    for name, records in sorted(result.streams.items()):
        files[f"{name}.jsonl"] = jsonl(records)
    report = {
        "config": config,
        "counts": dict(sorted(result.counts.items())),
        "dead_lettered_by_reason": dict(sorted(result.by_reason.items())),
        "accepted_by_type": dict(sorted(result.by_type.items())),
        "watermark_ms": result.watermark,
        "state_bytes_per_customer": encoded_size(),
        "features": feature_statistics(result.features, matrix),
        **result.report,
    }
    files["report.json"] = (json.dumps(report, sort_keys=True, indent=2) + "\n").encode()
    return files
