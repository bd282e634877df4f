"""The scorer: assign customers to a segment and a micro-segment of the current model.

Vectorised nearest-centroid in scaled space over a whole batch of customers (never a River call
per event), with flap damping: a customer leaves their current segment only when another wins by
a relative ``margin`` and they have stayed at least ``min_dwell_days`` of event time — unless
their segment no longer exists. Micro-segments inside a segment move with the same margin.
Confidence is the relative gap between the nearest and second-nearest segment centroid. A customer
the caller says may not lapse (`stream.core.space.may_lapse`) is not placed in a segment that
stands for lapsed customers (`stream.core.space.lapsed_segments`), and leaves one.

>>> from stream.core.model import MicroSegment, Segment, SegmentModel
>>> m = SegmentModel(1, 0, [0.0] * 28, [1.0] * 28,
...                  [Segment(1, "A", [0.0] * 28, [MicroSegment(1, [0.0] * 28)]),
...                   Segment(2, "B", [2.9] * 28, [MicroSegment(2, [2.9] * 28)])], 3, 3)
>>> sc = Scorer(margin=0.1, min_dwell_days=1)
>>> a = sc.decide(m, np.full(28, 2.8), None, t=0)
>>> a.segment_id, a.micro_id, a.reason
(2, 2, 'new_customer')
>>> sc.decide(m, np.full(28, 1.4), a, t=1000) is None  # nearer A, but too soon and too close
True
>>> sc.decide(m, np.full(28, 0.2), a, t=2 * DAY_MS).segment_id
1
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from stream.core.features import DAY_MS
from stream.core.model import SegmentModel
from stream.core.space import ALIVE_GRACE, lapsed_segments

Array = NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Assignment:
    """Where a customer is, since when, and why they moved there."""

    segment_id: int
    micro_id: int
    confidence: float
    since: int
    reason: str


class Compiled:
    """A model's centroids as matrices, for vectorised scoring."""

    def __init__(self, model: SegmentModel) -> None:
        self.model = model
        self.centroids = model.centroids()
        self.ids = [s.id for s in model.segments]
        self.index = {sid: i for i, sid in enumerate(self.ids)}
        self.micro = [np.asarray([m.centroid for m in s.micro], dtype=np.float64)
                      for s in model.segments]  # fmt: skip
        self.micro_ids = [[m.id for m in s.micro] for s in model.segments]
        self.lapsed = lapsed_segments(self.centroids, model.mean, model.std, model.features)

    def bar_lapsed(self, d: Array, may_lapse: NDArray[np.bool_]) -> Array:
        """``d`` (rows × this model's centroids) with the lapsed segments out of reach (infinitely
        far) for the rows that may not lapse."""
        if not self.lapsed.any() or may_lapse.all():
            return d
        out = d.copy()
        out[np.ix_(~may_lapse, self.lapsed)] = np.inf
        return out


def distances(centroids: Array, z: Array) -> Array:
    """Euclidean distances of each row of ``z`` to every centroid (rows × centroids)."""
    d2 = ((z[:, None, :] - centroids[None, :, :]) ** 2).sum(axis=2)
    out: Array = np.sqrt(d2)
    return out


def confidences(d: Array) -> Array:
    """Per row of distances: the relative gap between the nearest and second-nearest centroid
    (one centroid: as if the second were 1 farther)."""
    if d.shape[1] > 1:
        two = np.partition(d, 1, axis=1)[:, :2]
    else:
        two = np.concatenate([d, d + 1.0], axis=1)
    out: Array = (two[:, 1] - two[:, 0]) / (two[:, 1] + 1e-12)
    return out


class Scorer:
    """Decides segment membership with flap damping.

    Parameters
    ----------
    margin
        A challenger must be nearer than ``(1 − margin)`` × the current segment's distance.
    min_dwell_days
        Minimum event time in a segment before a behavioural move.
    lapse_grace
        Touches a customer's own pace must have missed in their current silence before they may
        be placed in a segment that stands for lapsed customers (`stream.core.space.may_lapse`,
        which the caller applies: `stream.core.segmentation.Segmenter`).
    """

    def __init__(
        self, margin: float = 0.15, min_dwell_days: float = 2.0, lapse_grace: float = ALIVE_GRACE
    ) -> None:
        self.margin = margin
        self.min_dwell_days = min_dwell_days
        self.lapse_grace = lapse_grace
        self._dwell_ms = int(min_dwell_days * DAY_MS)
        self._compiled: Compiled | None = None

    def compile(self, model: SegmentModel) -> Compiled:
        """The compiled form of ``model`` (cached for the newest model)."""
        if self._compiled is None or self._compiled.model is not model:
            self._compiled = Compiled(model)
        return self._compiled

    def decide_many(
        self,
        model: SegmentModel,
        z: Array,
        current: Sequence[Assignment | None],
        ts: Sequence[int],
        reason: str = "behaviour",
        drifted: Sequence[bool] = (),
        d: Array | None = None,
        confirm: tuple[Compiled, Array] | None = None,
        may_lapse: NDArray[np.bool_] | None = None,
    ) -> list[Assignment | None]:
        """New assignments for the rows of ``z`` (None: stay where they are).

        Rows flagged in ``drifted`` (customer-level drift, `stream.core.drift`) are re-evaluated
        at once: no minimum dwell, half the margin, and a move says ``customer_drift``.
        ``d``: the rows' `distances` to the model's centroids, if the caller has them.
        ``confirm``: the previous model and the rows' distances to its centroids. A move between
        two segments that model also has must win there too, by the same margin: a move that only
        the newer centroids call for is the model's doing, not the customer's, and does not
        happen (a model update alone moves nobody whose behaviour did not change). A move to a
        segment the previous model did not have (born or split off) goes ahead; its reason is
        ``model_update`` unless the previous model would have moved the customer out of their
        segment too (or the customer's own drift detector fired: ``customer_drift``).
        ``may_lapse``: per row, whether the customer's silence lets them be called lapsed; rows
        where it is False cannot move into a lapsed segment (under either model) and move out of
        one as if it were infinitely far.
        """
        cm = self.compile(model)
        if d is None:
            d = distances(cm.centroids, z)
        conf_all = confidences(d).tolist()
        if may_lapse is not None:
            d = cm.bar_lapsed(d, may_lapse)
            if confirm is not None:
                confirm = (confirm[0], confirm[0].bar_lapsed(confirm[1], may_lapse))
        best_all = d.argmin(axis=1).tolist()
        keep = 1.0 - self.margin
        out: list[Assignment | None] = []
        for row, cur in enumerate(current):
            t = ts[row]
            best = best_all[row]
            confidence = round(conf_all[row], 4)
            cur_idx = cm.index.get(cur.segment_id) if cur is not None else None
            if cur is None or cur_idx is None:
                why = "new_customer" if cur is None else "segment_retired"
                micro = self._micro(cm, best, z[row], None)
                out.append(Assignment(cm.ids[best], micro, confidence, t, why))
                continue
            drow = d[row]
            urgent = row < len(drifted) and drifted[row]
            normal = drow[best] < keep * drow[cur_idx] and t - cur.since >= self._dwell_ms
            drift_move = urgent and drow[best] < (1.0 - self.margin / 2) * drow[cur_idx]
            why = "customer_drift" if urgent else reason
            if best != cur_idx and (normal or drift_move) and confirm is not None:
                old_cm, old_d = confirm
                i, j = old_cm.index.get(cm.ids[best]), old_cm.index.get(cur.segment_id)
                if i is not None and j is not None:
                    need = (1.0 - self.margin / 2) if urgent else keep
                    normal = drift_move = bool(old_d[row, i] < need * old_d[row, j])
                elif (
                    not urgent
                    and i is None
                    and j is not None
                    and not bool((old_d[row] < keep * old_d[row, j]).any())
                ):
                    why = "model_update"  # only the segment this model added calls them
            if best != cur_idx and (normal or drift_move):
                micro = self._micro(cm, best, z[row], None)
                out.append(Assignment(cm.ids[best], micro, confidence, t, why))
                continue
            micro = self._micro(cm, cur_idx, z[row], cur.micro_id)
            if micro == cur.micro_id:
                out.append(None)
            else:
                why = reason if cur.micro_id in cm.micro_ids[cur_idx] else "model_update"
                out.append(Assignment(cur.segment_id, micro, confidence, cur.since, why))
        return out

    def confidence(self, cm: Compiled, z: Array) -> float:
        """The confidence of one scaled vector, as `decide_many` computes it."""
        return round(float(confidences(distances(cm.centroids, z[None, :]))[0]), 4)

    def _micro(self, cm: Compiled, seg: int, z: Array, current: int | None) -> int:
        """The micro-segment of segment ``seg`` for ``z``: nearest, damped like segments."""
        ids = cm.micro_ids[seg]
        d = ((cm.micro[seg] - z[None, :]) ** 2).sum(axis=1)
        best = int(d.argmin())
        if current is None or current not in ids:
            return ids[best]
        cur = ids.index(current)
        if best != cur and d[best] < (1.0 - self.margin) ** 2 * d[cur]:
            return ids[best]
        return current

    def decide(
        self,
        model: SegmentModel,
        z: Array,
        current: Assignment | None,
        t: int,
        reason: str = "behaviour",
    ) -> Assignment | None:
        """The new assignment for one scaled vector ``z`` at ``t``, or None to stay."""
        return self.decide_many(model, z[None, :], [current], [t], reason)[0]
