"""Drift detection on three levels: model fit, segment, customer.

Every detector is from `river.drift`, fed in event-time order with values that depend only on the
input, so detections replay exactly:

* **model fit** (`ModelFit`): ADWIN (``delta`` 0.002, River's default) over the scaled distance
  from each training sample to its nearest segment centroid of the current model. The distance
  rises when the segmentation no longer describes the population (a new dense region, a churn
  wave moving many customers away from their segments). Only a rise counts (the part of the
  window ADWIN keeps has a higher mean than the part it drops, by more than ``min_rise`` z,
  default 0): a better fit after a new model is not news. A second ADWIN watches the share of
  samples farther from every centroid than the model's own 99th percentile of its fitted
  samples: a new kind of customer a few percent strong moves that share far more, relative to
  its noise, than it moves the mean distance.
  ADWIN: no false alarms at its default on stationary streams, ≈ 0.1–0.3 µs per value, and its
  window adapts, so a 0.5 standard-deviation shift is caught within a few hundred values.
  The population's activity is watched at this level too, by day rather than by sample
  (`stream.core.activity`): a churn wave shows in the touches that stop coming days before it
  moves anyone's features.
* **segment** (`SegmentShare`): per segment, ADWIN over the indicator "this training sample was
  assigned here" (the segment's share growing or shrinking) and over its members' distance to
  its centroid (the segment changing character, rises only); the same ``delta``.
* **customer** (`CustomerDrift`): River's one-sided Page-Hinkley test over the customer's own
  scaled distance to their segment's centroid at each evaluation: a customer whose behaviour
  breaks from their history drifts away from where they were placed. Its state is four numbers
  kept in the customer's state (`stream.core.state`), updated by `page_hinkley_step`, which is
  the recurrence of `river.drift.PageHinkley` (``mode="up"``) step for step (tested against it).
  Its threshold is calibrated on stationary simulated streams (see EVALUATION.md, "Drift").

Detectors are reset when a new model version arrives (their reference changed).

>>> import random
>>> rng = random.Random(3)
>>> fit = ModelFit()
>>> hits = [t for t in range(3000) if fit.update(rng.gauss(2.0 if t < 2000 else 2.5, 1.0), t)]
>>> 2000 < hits[0] < 2400, fit.detections
(True, 1)
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

from river import drift

ADWIN_DELTA = 0.002


@dataclass(frozen=True, slots=True)
class Detection:
    """One drift detection."""

    level: str
    """``model_fit``, ``segment`` or ``customer``."""
    detector: str
    """``adwin`` or ``page_hinkley``."""
    subject: str
    """What drifted: ``model``, ``model:outliers``, ``segment:<id>:share`` / ``segment:<id>:spread``, ``customer``."""
    statistic: str
    """The monitored value and its change, e.g. ``mean distance 1.92 -> 2.61``."""
    before: float
    after: float
    t: int
    """Event time (ms) of the detection."""


class _Adwin:
    """ADWIN that reports, on a cut, the mean of the part it dropped and of the part it kept."""

    def __init__(self, delta: float) -> None:
        self.detector = drift.ADWIN(delta=delta)  # type: ignore[no-untyped-call]

    def update(self, x: float) -> tuple[float, float] | None:
        a = self.detector
        total, width = a.estimation * a.width + x, a.width + 1
        a.update(x)  # type: ignore[no-untyped-call]
        if not a.drift_detected:
            return None
        dropped = width - a.width
        kept = float(a.estimation)
        return (total - kept * a.width) / dropped if dropped > 0 else kept, kept


class ModelFit:
    """Model-fit drift: ADWIN over each sample's distance to its nearest centroid.

    Parameters
    ----------
    delta
        ADWIN's confidence (smaller: fewer false alarms, slower detection).
    min_rise
        A detection counts only if the mean rose by more than this (z units).
    subject, what
        How detections name the subject and the value (the trainer also watches the share of
        samples farther from every centroid than the model's own 99th percentile:
        ``model:outliers``).
    """

    def __init__(
        self, delta: float = ADWIN_DELTA, min_rise: float = 0.0, subject: str = "model",
        what: str = "mean distance",
    ) -> None:  # fmt: skip
        self.delta = delta
        self.min_rise = min_rise
        self.subject = subject
        self.what = what
        self.detections = 0
        self.reset()

    def reset(self) -> None:
        """Start over (a new model: distances have a new reference)."""
        self._adwin = _Adwin(self.delta)

    def update(self, distance: float, t: int) -> Detection | None:
        """Feed one sample's distance at event time ``t``; a `Detection` if the fit got worse."""
        cut = self._adwin.update(distance)
        if cut is None or cut[1] - cut[0] <= self.min_rise:
            return None
        self.detections += 1
        before, after = cut
        return Detection("model_fit", "adwin", self.subject,
                         f"{self.what} {before:.3f} -> {after:.3f}", before, after, t)  # fmt: skip


class SegmentShare:
    """Segment drift: per segment, ADWIN over its share of samples and its members' spread.

    Parameters
    ----------
    delta
        ADWIN's confidence.
    min_share_change
        A share detection counts only if the share moved by at least this much (absolute).
    min_rise
        A spread detection counts only if the members' mean distance rose by more than this (z).
    """

    def __init__(
        self, delta: float = ADWIN_DELTA, min_share_change: float = 0.0, min_rise: float = 0.0
    ) -> None:
        self.delta = delta
        self.min_share_change = min_share_change
        self.min_rise = min_rise
        self.detections = 0
        self._share: dict[int, _Adwin] = {}
        self._spread: dict[int, _Adwin] = {}

    def reset(self, segment_ids: list[int]) -> None:
        """Follow a model with these segments. A segment that keeps its id keeps its share's
        history (a share that creeps up over several versions adds up); every spread starts
        over (centroids and scaling are new)."""
        self._share = {s: self._share.get(s) or _Adwin(self.delta) for s in segment_ids}
        self._spread = {s: _Adwin(self.delta) for s in segment_ids}

    def update(self, segment_id: int, distance: float, t: int) -> list[Detection]:
        """Feed one sample assigned to ``segment_id`` at ``distance`` from its centroid."""
        out: list[Detection] = []
        for sid, det in self._share.items():
            cut = det.update(1.0 if sid == segment_id else 0.0)
            if cut is not None and abs(cut[1] - cut[0]) >= self.min_share_change:
                out.append(Detection("segment", "adwin", f"segment:{sid}:share",
                                     f"share {cut[0]:.3f} -> {cut[1]:.3f}", cut[0], cut[1], t))  # fmt: skip
        spread = self._spread.get(segment_id)
        cut = spread.update(distance) if spread is not None else None
        if cut is not None and cut[1] - cut[0] > self.min_rise:
            out.append(Detection("segment", "adwin", f"segment:{segment_id}:spread",
                                 f"members' mean distance {cut[0]:.3f} -> {cut[1]:.3f}",
                                 cut[0], cut[1], t))  # fmt: skip
        self.detections += len(out)
        return out


def _f32(x: float) -> float:
    return float(struct.unpack("<f", struct.pack("<f", x))[0])


def page_hinkley_step(
    state: tuple[int, float, float, float], x: float, delta: float, threshold: float,
    alpha: float, min_instances: int,
) -> tuple[tuple[int, float, float, float], bool]:  # fmt: skip
    """One step of the one-sided (``mode="up"``) Page-Hinkley test of `river.drift.PageHinkley`.

    ``state`` is ``(n, mean, cumulative sum, its minimum)``; returns the new state and whether a
    rise was detected (after a detection the caller starts over from ``(0, 0, 0, inf)``, as River
    does). Values are kept at 32-bit precision, as they are stored.

    >>> s, hit = (0, 0.0, 0.0, math.inf), False
    >>> for x in [1.0] * 40 + [6.0] * 5:
    ...     s, hit = page_hinkley_step(s, x, 0.005, 10.0, 1.0, 30)
    >>> hit
    True
    """
    n, mean, total, low = state
    n += 1
    mean = _f32(mean + (x - mean) / n)
    total = _f32(alpha * total + (x - mean) - delta)
    low = min(low, total)
    return (min(n, 65_535), mean, total, low), n >= min_instances and total - low > threshold


class CustomerDrift:
    """Customer drift: Page-Hinkley over a customer's distance to their segment, per evaluation.

    Parameters
    ----------
    threshold
        Page-Hinkley's lambda: how far the cumulative rise must get (z units).
    delta
        Tolerated rise per evaluation.
    alpha
        Fading factor of the cumulative sum.
    min_instances
        Evaluations before a detection may be raised.
    """

    def __init__(
        self, threshold: float = 10.0, delta: float = 0.1, alpha: float = 0.999,
        min_instances: int = 5,
    ) -> None:  # fmt: skip
        self.threshold = threshold
        self.delta = delta
        self.alpha = alpha
        self.min_instances = min_instances

    def update(
        self, state: tuple[int, float, float, float], distance: float
    ) -> tuple[tuple[int, float, float, float], bool]:
        """The customer's next detector state and whether they drifted (then it starts over)."""
        new, hit = page_hinkley_step(
            state, distance, self.delta, self.threshold, self.alpha, self.min_instances
        )
        return (FRESH if hit else new), hit


FRESH: tuple[int, float, float, float] = (0, 0.0, 0.0, math.inf)
"""A customer detector with no history."""
