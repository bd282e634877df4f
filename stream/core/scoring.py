"""The scorer: assign customers to a segment and a micro-segment of the current model.

Vectorised nearest-centroid in scaled space (never a River call per event), with flap damping:
a customer leaves their current segment only when another wins by a relative ``margin`` and
they have stayed at least ``min_dwell_days`` of event time — unless their segment no longer
exists. Confidence is the relative gap between the nearest and second-nearest centroid.

>>> from stream.core.model import MicroSegment, Segment, SegmentModel
>>> m = SegmentModel(1, 0, [0.0] * 28, [1.0] * 28,
...                  [Segment(1, "A", [0.0] * 28, [MicroSegment(1, [0.0] * 28)]),
...                   Segment(2, "B", [3.0] * 28, [MicroSegment(2, [3.0] * 28)])], 3, 3)
>>> sc = Scorer(margin=0.1, min_dwell_days=1)
>>> a = sc.decide(m, np.full(28, 2.9), None, t=0)
>>> a.segment_id, a.micro_id, a.reason
(2, 2, 'new_customer')
>>> sc.decide(m, np.full(28, 1.4), a, t=1000) is None  # nearer A, but too soon and too close
True
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from stream.core.features import DAY_MS
from stream.core.model import SegmentModel

Array = NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Assignment:
    """Where a customer is, since when, and why they moved there."""

    segment_id: int
    micro_id: int
    confidence: float
    since: int
    reason: str


def nearest(centroids: Array, x: Array) -> tuple[Array, Array]:
    """Squared distances of each row of ``x`` to every centroid, and the argmin per row."""
    d = ((x[:, None, :] - centroids[None, :, :]) ** 2).sum(axis=2)
    return d, d.argmin(axis=1)


class Scorer:
    """Decides segment membership with flap damping.

    Parameters
    ----------
    margin
        A challenger must be nearer than ``(1 − margin)`` × the current segment's distance.
    min_dwell_days
        Minimum event time in a segment before a behavioural move.
    """

    def __init__(self, margin: float = 0.15, min_dwell_days: float = 2.0) -> None:
        self.margin = margin
        self.min_dwell_days = min_dwell_days
        self._dwell_ms = int(min_dwell_days * DAY_MS)

    def decide(
        self,
        model: SegmentModel,
        z: Array,
        current: Assignment | None,
        t: int,
        reason: str = "behaviour",
    ) -> Assignment | None:
        """The customer's new assignment for scaled vector ``z`` at ``t``, or None to stay."""
        centroids = model.centroids()
        d = np.sqrt(((centroids - z[None, :]) ** 2).sum(axis=1))
        order = np.argsort(d, kind="stable")
        best = int(order[0])
        second = float(d[order[1]]) if len(order) > 1 else float(d[best]) + 1.0
        confidence = (second - float(d[best])) / (second + 1e-12)
        seg = model.segments[best]
        micro_c = np.asarray([m.centroid for m in seg.micro])
        micro = seg.micro[int(((micro_c - z[None, :]) ** 2).sum(axis=1).argmin())].id
        if current is None:
            return Assignment(seg.id, micro, confidence, t, "new_customer")
        ids = [s.id for s in model.segments]
        if current.segment_id not in ids:
            return Assignment(seg.id, micro, confidence, t, "segment_retired")
        cur = ids.index(current.segment_id)
        if seg.id == current.segment_id:
            if micro == current.micro_id:
                return None
            return Assignment(seg.id, micro, confidence, current.since, reason)
        if t - current.since < self._dwell_ms or d[best] >= (1 - self.margin) * d[cur]:
            return None
        return Assignment(seg.id, micro, confidence, t, reason)
