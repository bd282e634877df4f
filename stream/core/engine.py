"""The offline engine: the same core as the worker, driven in-process over time-ordered events.

`Engine` validates every line, orders the valid events by event time (then event id, then input
position — a total order, so the result never depends on how the input was arranged), applies
them through `Ingest.admit` exactly as the worker does, and evaluates every customer's features
at the final watermark. Later stages (trainer, scorer) plug in as `Stage` objects that see each
applied event and the advancing watermark, and append records to named output streams.

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
from typing import Any, Protocol

import numpy as np

from stream.core.deadletter import DeadLetter, Origin
from stream.core.events import event_time_ms
from stream.core.features import FEATURES, NAMES, vector
from stream.core.ingest import ACCEPTED, DEAD_LETTERED, Ingest
from stream.core.state import CustomerState, encoded_size
from stream.core.validation import AnyEvent, Rejection


class Stage(Protocol):
    """A pluggable step after feature updates (e.g. the trainer or the scorer)."""

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
        self._pending: list[tuple[int, str, int, AnyEvent]] = []
        self._dead: list[DeadLetter] = []
        self._counts: Counter[str] = Counter()
        self._by_reason: Counter[str] = Counter()
        self._seq = 0
        self._applied = 0  # position of the next applied event: its offset mark, across runs

    def feed(self, lines: Iterable[tuple[str, int, bytes]]) -> None:
        """Validate ``(source, line_number, bytes)`` lines and queue the valid events."""
        validate = self.ingest.validator.validate
        ref = self.reference_ms
        pending = self._pending
        append = pending.append
        seq = self._seq
        n = 0
        for source, line_no, raw in lines:
            n += 1
            result = validate(raw, None, reference_ms=ref, keyed=False)
            if isinstance(result, Rejection):
                self._dead.append(
                    DeadLetter.build(raw, None, Origin(source, 0, line_no), result.reason,
                                     result.detail, self.ingest.limits.max_message_bytes)
                )  # fmt: skip
                self._by_reason[result.reason.value] += 1
                self._counts[DEAD_LETTERED] += 1
                continue
            append((event_time_ms(result.ts), result.event_id, seq, result))
            seq += 1
        self._seq = seq
        self._counts["lines"] += n

    def run(self) -> RunResult:
        """Apply the queued events in event-time order; evaluate features at the end."""
        # (time, event id, sequence) is unique per entry, so plain tuple order never reaches the
        # event itself and equals ordering by those three keys.
        pending = self._pending
        pending.sort()
        states = self.states
        admit = self.ingest.admit
        counts = self._counts
        stages = self.stages
        accepted_types: list[str] = []  # counted at the end (Counter counts an iterable in C)
        accepted = accepted_types.append
        for i, (t, _, _, event) in enumerate(pending, self._applied):
            cid = event.customer_id
            state = states.get(cid)
            if state is None:
                state = states[cid] = CustomerState()
            outcome = admit(state, event, -1, i, t)
            if outcome == ACCEPTED:
                accepted(event.type)
                for stage in stages:
                    stage.on_applied(cid, state, event.event_id, t)
            else:
                counts[outcome] += 1
        if accepted_types:
            counts[ACCEPTED] += len(accepted_types)
        by_type: Counter[str] = Counter(accepted_types)
        watermark = pending[-1][0] if pending else None  # the latest time: they are sorted
        self._applied += len(pending)
        self._pending = []
        features = (
            {cid: vector(states[cid], watermark) for cid in sorted(states)} if watermark else {}
        )
        streams: dict[str, list[dict[str, Any]]] = {}
        extra: dict[str, Any] = {}
        for stage in stages:
            stage.finish(watermark or 0, streams)
            extra.update(stage.report())
        counts["customers"] = len(states)
        dead = sorted(self._dead, key=lambda d: (d.source.topic, d.source.offset))
        return RunResult(
            Counter(counts), Counter(self._by_reason), by_type, watermark, features, dead, streams,
            extra,
        )  # fmt: skip

    def erase(self, customer_id: str) -> bool:
        """Forget a customer entirely (GDPR erasure); True if there was anything to forget."""
        self._pending = [p for p in self._pending if p[3].customer_id != customer_id]
        for stage in self.stages:
            stage.forget(customer_id)
        return self.states.pop(customer_id, None) is not None


def feature_statistics(features: dict[str, list[float]]) -> dict[str, dict[str, float | str]]:
    """Per-feature population statistics over customers (mean, std, min, quartiles, p90, max)."""
    if not features:
        return {}
    m = np.asarray(list(features.values()), dtype=np.float64)
    q = np.percentile(m, [0, 25, 50, 75, 90, 100], axis=0)
    out: dict[str, dict[str, float | str]] = {}
    for j, f in enumerate(FEATURES):
        out[f.name] = {
            "mean": _num(m[:, j].mean()), "std": _num(m[:, j].std()), "min": _num(q[0, j]),
            "p25": _num(q[1, j]), "p50": _num(q[2, j]), "p75": _num(q[3, j]),
            "p90": _num(q[4, j]), "max": _num(q[5, j]), "unit": f.unit,
        }  # fmt: skip
    return out


def _num(x: float) -> float:
    """Round for output: 9 significant digits, so reports are stable and readable."""
    x = float(x)
    return 0.0 if x == 0 or not math.isfinite(x) else float(f"{x:.9g}")


# Feature names in sorted order with their positions, and the JSON text before each value.
_SORTED = sorted(range(len(NAMES)), key=NAMES.__getitem__)
_PREFIXES = tuple(
    ("{" if k == 0 else ",") + json.dumps(NAMES[j]) + ":" for k, j in enumerate(_SORTED)
)


def _features_jsonl(features: dict[str, list[float]]) -> bytes:
    r"""``{"customer_id": …, "features": {name: _num(value)}}`` per line, exactly as
    ``json.dumps(…, sort_keys=True, separators=(",", ":"))`` writes it, without the dict walk.

    >>> vals = [float(i) / 3 for i in range(len(NAMES))]
    >>> vals[3], vals[4], vals[5] = 0.0, -1e-300, float("nan")
    >>> rec = {"customer_id": "cé\"", "features": dict(zip(NAMES, map(_num, vals)))}
    >>> want = json.dumps(rec, sort_keys=True, separators=(",", ":")).encode() + b"\n"
    >>> _features_jsonl({"cé\"": vals}) == want
    True
    """
    order, prefixes, dumps = _SORTED, _PREFIXES, json.dumps
    parts: list[str] = []
    add = parts.append
    for cid, vals in features.items():
        add('{"customer_id":' + dumps(cid) + ',"features":')
        for prefix, j in zip(prefixes, order, strict=True):
            add(prefix + repr(_num(vals[j])))  # repr(float) is what json.dumps writes
        add("}}\n")
    return "".join(parts).encode()


def render_outputs(result: RunResult, config: dict[str, Any]) -> dict[str, bytes]:
    """File name → bytes of every output of a run (JSONL per stream, plus ``report.json``)."""

    def jsonl(records: Iterable[dict[str, Any]]) -> bytes:
        return b"".join(json.dumps(r, sort_keys=True, separators=(",", ":")).encode() + b"\n"
                        for r in records)  # fmt: skip

    files = {
        "dead-letter.jsonl": jsonl(d.model_dump(mode="json") for d in result.dead_letters),
        "features.jsonl": _features_jsonl(result.features),
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
        "features": feature_statistics(result.features),
        **result.report,
    }
    files["report.json"] = (json.dumps(report, sort_keys=True, indent=2) + "\n").encode()
    return files
