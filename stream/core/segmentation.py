"""Segment membership: score customers with the current model and publish what changed.

`Segmenter` is what every worker (and the offline engine) runs after features: it holds the
newest `SegmentModel`, scores a batch of customers at once (`Scorer`, vectorised), records the
assignment in each customer's own state (segment, micro-segment, since, change version), and
returns one `SegmentChange` per customer whose segment or micro-segment changed — with a
deterministic event id, the per-customer version, an explanation and a deterministic holdout
flag. `lifecycle_events` turns a model update into ``segment-events`` records.

>>> from stream.core.model import MicroSegment, Segment, SegmentModel
>>> from stream.core.state import CustomerState
>>> from stream.core.features import NAMES
>>> D = len(NAMES)
>>> m = SegmentModel(1, 0, [0.0] * D, [1.0] * D,
...                  [Segment(1, "Quiet", [0.0] * D, [MicroSegment(1, [0.0] * D)]),
...                   Segment(2, "Busy", [2.0] * D, [MicroSegment(2, [2.0] * D)])], 3, 3)
>>> seg = Segmenter(holdout_share=0.0)
>>> seg.set_model(m)
>>> s = CustomerState(last_ts=0)
>>> [(c.version, c.current.segment_name, c.reason) for c in seg.score([("c1", s, 0)])]
[(1, 'Quiet', 'new_customer')]
>>> seg.score([("c1", s, 0)]), s.segment_id, s.seg_version
([], 1, 1)
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from typing import Any, get_args

import numpy as np
from numpy.typing import NDArray

from stream.core.drift import FRESH, CustomerDrift, Detection
from stream.core.explain import explain
from stream.core.features import NAMES, vector
from stream.core.identity import Matching
from stream.core.model import SegmentModel, transform_many
from stream.core.outputs import (
    ChangeReason,
    DriftInfo,
    SegmentChange,
    SegmentEvent,
    SegmentRef,
    change_id,
    lifecycle_id,
    rfc3339_ms,
)
from stream.core.scoring import Assignment, Compiled, Scorer, distances
from stream.core.space import may_lapse, missed_touches
from stream.core.state import NO_TIME, CustomerState

REASONS: tuple[str, ...] = get_args(ChangeReason)
"""Change reasons by their code in a customer's move history."""
REASON_CODES = {r: i for i, r in enumerate(REASONS)}


def in_holdout(customer_id: str, share: float) -> bool:
    """Whether the customer is in the control group of the given share (deterministic)."""
    h = hashlib.blake2b(customer_id.encode(), digest_size=8, person=b"holdout").digest()
    return int.from_bytes(h, "little") < share * 2**64


class Segmenter:
    """Scores customers against the newest model and emits their segment changes.

    Parameters
    ----------
    scorer
        Nearest-centroid scoring with flap damping (margin, minimum dwell).
    holdout_share
        Share of customers flagged as control group on their change events.
    explain_features
        Features per explanation.
    customer_drift
        The customer-level drift detector (None: off). It follows each assigned customer's
        distance to their segment; a customer who drifts is re-evaluated at once (see
        `Scorer.decide_many`) and counted in ``customer_drifts``.
    view
        How the scorer sees a customer, ``(customer_id, state, at) → catalogue vector``. None:
        `stream.core.features.vector` of their state; an evaluation against a change-point
        oracle passes `stream.core.oracle.SwitchOracle.vector`.
    """

    def __init__(
        self,
        scorer: Scorer | None = None,
        holdout_share: float = 0.05,
        explain_features: int = 3,
        customer_drift: CustomerDrift | None = None,
        view: Callable[[str, CustomerState, int], list[float]] | None = None,
    ) -> None:
        self.scorer = scorer or Scorer()
        self.holdout_share = holdout_share
        self.explain_features = explain_features
        self.customer_drift = customer_drift
        self.view = view
        self.customer_drifts = 0
        self.model: SegmentModel | None = None
        self.previous: SegmentModel | None = None
        """The model before ``model``: behavioural moves must win under both (`Scorer`)."""
        self._previous_compiled: Compiled | None = None
        self.names: dict[int, str] = {}
        self._reshuffled: set[int] = set()

    def set_model(self, model: SegmentModel) -> None:
        """Score with ``model`` from now on. Members of a segment that was merged or split away
        (``model.reshuffled``) move with reason ``model_update``; of a retired one, with
        ``segment_retired``."""
        if self.model is not None and model.version <= self.model.version:
            return  # an older or the same snapshot (e.g. re-read from the compacted topic)
        self.previous, self.model = self.model, model
        self._previous_compiled = None if self.previous is None else Compiled(self.previous)
        for s in model.segments:
            self.names[s.id] = s.name
        self._reshuffled |= set(model.reshuffled)

    def reassess(
        self, customers: Iterable[tuple[str, CustomerState]], t: int
    ) -> list[tuple[str, CustomerState, int]]:
        """The rows to score after a model change: unassigned customers and members of segments
        the model no longer has, at ``t`` (or their last event if later). A customer quiet since
        long before the first model is placed as they are now, not as they were at their last
        event, and their quiet-time re-evaluations count from ``t``."""
        model = self.model
        if model is None:
            return []
        live = {s.id for s in model.segments}
        return [
            (c, s, max(s.last_ts, t))
            for c, s in customers
            if not s.segment_id or s.segment_id not in live
        ]

    def score(
        self,
        batch: Sequence[tuple[str, CustomerState, int]],
        emitted_at: int | None = None,
        reason: str = "behaviour",
    ) -> list[SegmentChange]:
        """Score ``(customer_id, state, at)`` rows; update their states; return the changes.

        ``at`` is the event time the customer is evaluated at (and the change's event time);
        ``emitted_at`` the time of the decision (default: ``at``, as offline).
        """
        model = self.model
        if model is None or not batch:
            return []
        if self.view is None:
            rows = [vector(state, at) for _, state, at in batch]
        else:
            rows = [self.view(cid, state, at) for cid, state, at in batch]
        raw = np.asarray(rows, dtype=np.float64)
        missed = missed_touches(raw)
        space = transform_many(raw, missed)
        z = model.standardise(space)
        current = [
            Assignment(s.segment_id, s.micro_id, 0.0, s.seg_since, "") if s.segment_id else None
            for _, s, _ in batch
        ]
        cm = self.scorer.compile(model)
        d = distances(cm.centroids, z)
        drifted = self._drifted(cm, d, [s for _, s, _ in batch])
        confirm = None
        if self.previous is not None and self._previous_compiled is not None:
            old = self._previous_compiled
            confirm = (old, distances(old.centroids, self.previous.standardise(space)))
        decisions = self.scorer.decide_many(
            model, z, current, [at for _, _, at in batch], reason, drifted, d, confirm,
            may_lapse(raw, missed, self.scorer.lapse_grace),
        )  # fmt: skip
        changes: list[SegmentChange] = []
        for row, ((cid, state, at), new) in enumerate(zip(batch, decisions, strict=True)):
            state.scored_at = max(state.scored_at, at)
            if new is None:
                continue
            why = new.reason
            if why == "segment_retired" and state.segment_id in self._reshuffled:
                why = "model_update"
            if new.segment_id != state.segment_id:
                state.drift = FRESH  # a new place: the customer's history starts over
                state.record_move(state.segment_id, REASON_CODES[why], at)
            previous = self._ref(state.segment_id, state.micro_id)
            state.segment_id, state.micro_id, state.seg_since = (
                new.segment_id, new.micro_id, new.since,
            )  # fmt: skip
            state.seg_version += 1
            centroid = cm.centroids[cm.index[new.segment_id]]
            changes.append(
                SegmentChange(
                    event_id=change_id(cid, state.first_ts, state.seg_version),
                    customer_id=cid,
                    version=state.seg_version,
                    previous=previous,
                    current=self._ref(new.segment_id, new.micro_id),
                    reason=why,  # type: ignore[arg-type]
                    confidence=new.confidence,
                    explanation=explain(z[row], centroid, raw[row], self.explain_features),
                    model_version=model.version,
                    event_time=rfc3339_ms(at),
                    emitted_at=rfc3339_ms(at if emitted_at is None else emitted_at),
                    holdout=in_holdout(cid, self.holdout_share),
                )
            )
        return changes

    def _drifted(
        self, cm: Compiled, d: NDArray[np.float64], states: list[CustomerState]
    ) -> list[bool]:
        """Feed each assigned customer's distance to their segment (from the batch's distances
        ``d``) to their drift detector."""
        detector = self.customer_drift
        if detector is None:
            return []
        out = [False] * len(states)
        for i, s in enumerate(states):
            col = cm.index.get(s.segment_id)
            if col is not None:
                s.drift, out[i] = detector.update(s.drift, float(d[i, col]))
        self.customer_drifts += sum(out)
        return out

    def describe(self, customer_id: str, state: CustomerState) -> dict[str, Any]:
        """What ``GET /customers/{id}`` answers: assignment, explanation and features.

        Features are evaluated at the customer's last evaluation (their newest event or the
        watermark that re-evaluated them); explanation and confidence (as on change events) are
        against the current model.
        """
        at = max(state.last_ts, state.scored_at)
        raw = vector(state, at)
        model = self.model
        explanation: list[dict[str, Any]] = []
        confidence = None
        if model is not None and state.segment_id and model.segment(state.segment_id):
            cm = self.scorer.compile(model)
            z = model.scale(raw)
            centroid = cm.centroids[cm.index[state.segment_id]]
            reasons = explain(z, centroid, raw, self.explain_features)
            explanation = [r.model_dump(mode="json") for r in reasons]
            confidence = self.scorer.confidence(cm, z)
        ref = self._ref(state.segment_id, state.micro_id)
        return {
            "customer_id": customer_id,
            "segment": ref.model_dump(mode="json") if ref else None,
            "since": rfc3339_ms(state.seg_since) if state.segment_id else None,
            "version": state.seg_version,
            "confidence": confidence,
            "model_version": model.version if model else 0,
            "explanation": explanation,
            "features": dict(zip(NAMES, (round(v, 6) for v in raw), strict=True)),
            "evaluated_at": rfc3339_ms(at),
            "holdout": in_holdout(customer_id, self.holdout_share),
            "recent_changes": self._moves(state),
        }

    def _moves(self, state: CustomerState) -> list[dict[str, Any]]:
        """The customer's last few segment moves, newest first (from the state's history)."""
        out = []
        to = state.segment_id
        for source, reason, minute in state.moves():
            previous, current = self._ref(source, 0), self._ref(to, 0)
            out.append({
                "from": None if previous is None else {"segment_id": source,
                                                       "segment_name": previous.segment_name},
                "to": None if current is None else {"segment_id": to,
                                                    "segment_name": current.segment_name},
                "reason": REASONS[reason] if reason < len(REASONS) else "unknown",
                "at": rfc3339_ms(minute * 60_000),
            })  # fmt: skip
            to = source
        return out

    def erased(self, customer_id: str, state: CustomerState, at: int) -> SegmentChange | None:
        """The ``erased`` change of a customer being forgotten (None if never assigned).

        Carries no explanation and no features: after it, nothing of the customer remains.
        """
        if not state.segment_id:
            return None
        return SegmentChange(
            event_id=change_id(customer_id, state.first_ts, state.seg_version + 1),
            customer_id=customer_id,
            version=state.seg_version + 1,
            previous=self._ref(state.segment_id, state.micro_id),
            current=None,
            reason="erased",
            confidence=0.0,
            explanation=[],
            model_version=self.model.version if self.model else 0,
            event_time=rfc3339_ms(at),
            emitted_at=rfc3339_ms(at),
            holdout=in_holdout(customer_id, self.holdout_share),
        )

    def _ref(self, segment_id: int, micro_id: int) -> SegmentRef | None:
        if not segment_id:
            return None
        return SegmentRef(
            segment_id=segment_id,
            segment_name=self.names.get(segment_id, ""),
            micro_segment_id=micro_id,
        )


def rescore_due(state: CustomerState, idle_ms: int) -> int | None:
    """When a quiet customer is next re-evaluated (event time), or None if not assigned.

    ``idle_ms`` after their last event, then every ``idle_ms`` while they have been quiet for less
    than `DAILY_QUIET` × ``idle_ms`` (the first weeks of a silence decide whether a customer has
    lapsed), then whenever the quiet time has doubled since the last evaluation: recency enters
    the model on a log scale, so a customer dormant for years costs a handful of evaluations.

    >>> s = CustomerState(last_ts=0, segment_id=1, scored_at=0)
    >>> rescore_due(s, 10), rescore_due(CustomerState(last_ts=0, segment_id=1, scored_at=40), 10)
    (10, 50)
    >>> rescore_due(CustomerState(last_ts=0, segment_id=1, scored_at=200), 10)
    400
    """
    if not state.segment_id or state.last_ts == NO_TIME:
        return None
    quiet = max(state.scored_at - state.last_ts, 0)
    if quiet < DAILY_QUIET * idle_ms:
        return state.last_ts + max(idle_ms, quiet + idle_ms)
    return state.last_ts + 2 * quiet


DAILY_QUIET = 14
"""A quiet customer is re-evaluated every ``idle`` period for this many of them, then at
doubling quiet times (`rescore_due`)."""


def lifecycle_events(model: SegmentModel, matching: Matching | None) -> list[SegmentEvent]:
    """The ``segment-events`` records of publishing ``model`` (after ``matching``)."""
    v, t = model.version, rfc3339_ms(model.trained_at)
    names = {str(s.id): s.name for s in model.segments}
    ids = [s.id for s in model.segments]
    out = [
        SegmentEvent(event_id=lifecycle_id("model_published", v), kind="model_published",
                     model_version=v, event_time=t, segment_ids=ids, names=names)
    ]  # fmt: skip
    if matching is None:
        return out
    for old, new in sorted(matching.splits.items()):
        out.append(SegmentEvent(
            event_id=lifecycle_id("segment_split", v, old), kind="segment_split", model_version=v,
            event_time=t, segment_ids=[old, *(i for i in new if i != old)], mapping={str(old): new},
            names={str(i): names[str(i)] for i in new}))  # fmt: skip
    for old, into in sorted(matching.merges.items()):
        out.append(SegmentEvent(
            event_id=lifecycle_id("segment_merged", v, old), kind="segment_merged",
            model_version=v, event_time=t, segment_ids=[old, into], mapping={str(old): [into]}))  # fmt: skip
    split_children = {i for new in matching.splits.values() for i in new}
    for sid in matching.born:
        if sid not in split_children:
            out.append(SegmentEvent(
                event_id=lifecycle_id("segment_born", v, sid), kind="segment_born",
                model_version=v, event_time=t, segment_ids=[sid], names={str(sid): names[str(sid)]}))  # fmt: skip
    for sid in matching.retired:
        out.append(SegmentEvent(
            event_id=lifecycle_id("segment_retired", v, sid), kind="segment_retired",
            model_version=v, event_time=t, segment_ids=[sid]))  # fmt: skip
    return out


def drift_events(detections: Iterable[Detection], model_version: int) -> list[SegmentEvent]:
    """The ``segment-events`` records of drift detections (model-fit and segment level)."""
    out = []
    for d in detections:
        sid = d.subject.split(":")[1] if d.subject.startswith("segment:") else ""
        out.append(SegmentEvent(
            event_id=lifecycle_id("drift_detected", model_version, d.subject, d.t),
            kind="drift_detected", model_version=model_version, event_time=rfc3339_ms(d.t),
            segment_ids=[int(sid)] if sid else [], detail=d.statistic,
            drift=DriftInfo(level=d.level, detector=d.detector, subject=d.subject,  # type: ignore[arg-type]
                            statistic=d.statistic, before=round(d.before, 6),
                            after=round(d.after, 6))))  # fmt: skip
    return out
