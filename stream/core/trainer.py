"""The trainer: one global model learnt from sampled feature vectors.

Samples are customers' feature vectors, chosen deterministically by the caller (the offline
stage and the worker draw a seeded share of recently active customers each day: a small
*training* sample and a larger *monitoring* sample around it), moved into the clustering space
(`stream.core.space`). River's CluStream learns every training sample, scaled by running
statistics, and maintains weighted micro-clusters: where the dense regions are. The trainer also
keeps a window of the newest ``reservoir`` samples, training and monitoring ones alike: a current
picture of the population (a few days of it), which each publish scales by its own statistics and
fits. Segments are derived deterministically — a seeded k-means over the window, from k-means++
and from k-means over River's micro-clusters, searched out of poor local optima
(`stream.core.kmeans.improve`) and compared with the previous segments refined on the window
(warm start), which stay unless the fresh solution is better by ``restructure_gain`` — and
micro-segments by the same inside each segment; identities carry over from the previous version
(`stream.core.identity`). A snapshot is published every ``publish_every`` training samples.

Why the window: in 28 dimensions CluStream's radius test (twice the mean per-dimension
deviation) rejects most samples, so its 60 micro-clusters are mostly single recent samples and
pairs merged by proximity; k-means over them found the planted personas with ARI .62–.74
depending on the seed, against .87–.89 for the same k-means over the 2,000 newest samples
(measured on two simulated 60-day streams; see issue 4). A pool large enough to summarise well
(400 micro-clusters: ARI .85–.90) costs 33 ms a sample in River's merge step. Fitting on the
monitoring samples too (about 3 days of them at 1,000 a day) fits the population as it is now,
as an offline k-means of everyone's current features would, rather than 20 days of drifting
training samples.

>>> tr = Trainer(n_segments=2, micro_per_segment=1, publish_every=40, warmup=40, seed=1)
>>> import random
>>> rng = random.Random(0)
>>> models = [tr.learn_one([abs(rng.gauss(5 * (i % 2), 1))] * len(FEATURES), t=i) for i in range(40)]
>>> m = models[-1]
>>> m.version, len(m.segments), [s.id for s in m.segments]
(1, 2, [1, 2])
"""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np
from numpy.typing import NDArray
from river import cluster

from stream.core.activity import ActivityDrift
from stream.core.adapt import grow, newborn, retire
from stream.core.drift import Detection
from stream.core.features import DAY_MS, FEATURES, NAMES
from stream.core.kmeans import best_kmeans, improve, inertia, weighted_kmeans
from stream.core.model import SegmentModel, transform
from stream.core.scaler import RunningScaler, rescaled, scaled
from stream.core.snapshot import next_version
from stream.core.space import STD_FLOOR, lapsed_segments
from stream.core.watch import DriftWatch

Array = NDArray[np.float64]
_KEYS = [f"f{i}" for i in range(len(FEATURES))]
RECENT_SAMPLES = 1000
"""After model-fit drift, segments are fitted on this many of the newest samples only."""


class Trainer:
    """Learns the global segmentation from sampled feature vectors.

    Parameters
    ----------
    n_segments
        Number of broad segments (2–12).
    micro_per_segment
        Micro-segments per segment (at most).
    max_micro_clusters
        Size of CluStream's micro-cluster pool.
    publish_every
        Samples between published snapshots.
    warmup
        Samples before the first snapshot.
    seed
        Seed of CluStream and of the k-means derivation.
    match_distance
        Scaled distance within which a new centroid keeps an old segment's id.
    time_window
        CluStream's horizon in samples: older micro-clusters are dropped (not merged) to make
        room, so the model follows behaviour as it changes, at a bounded cost per sample.
    scaler_halflife
        Half-life in samples of the scaling River learns in (`stream.core.scaler.RunningScaler`;
        None: cumulative mean and variance).
    restructure_gain
        A fresh k-means replaces the refined previous segments only if it lowers the weighted
        inertia by at least this share (segments change shape only when it pays).
    max_segments
        Upper bound on the number of segments after model-fit drift lets one be born (None:
        ``n_segments``, no growth).
    drift
        Run the model-fit and segment drift detectors (`stream.core.drift`) on the samples.
    adapt_samples
        After drift, the next snapshot comes this many samples later (not at the cadence); after
        model-fit drift River forgets faster until then (its horizon shrinks to this many
        samples), the derivation weighs micro-clusters by the recent samples they hold, and a
        segment may be born (`stream.core.adapt.grow`).
    birth_share, retire_share
        A newborn segment must hold this share of the recent samples; a segment holding less
        than ``retire_share`` is retired (`stream.core.adapt.retire`).
    birth_gain
        A birth must lower the weighted inertia by this share (tried at the first publish after
        model-fit drift or a segment's rising share, while there are fewer than
        ``max_segments``).
    scout
        Also try a birth at every publish once the drift detectors are live, without a drift
        cue; such a newborn must end farther than ``match_distance`` from every current
        centroid. A new kind of customer that joins slowly (a few a day, looking like an
        existing segment's edge) may move no detector. Measured on two 60-day simulations:
        uncued newborns at 1.7–2.1 (stationary, and before emergence) against 3.1–3.8 for the
        emerging persona; ARI .83 → .92 and .85 → .89.
    far_birth
        ``(distance, share, gain)``: a scouted newborn that ends at least ``distance`` from
        every current centroid may hold as little as ``share`` of the samples and lower the
        inertia by as little as ``gain`` (`stream.core.adapt.grow`'s ``far``), once the set of
        segments has not changed for ``settle_days``. A persona that joins a few customers a
        day is far from every segment long before it holds 3 % of the samples. Measured
        (120-day simulations, trainer seed 42): it was born on day 80 and 81 instead of 90 and
        91, and its customers' moves into it left the spurious changes (.050 and .053 → .040
        and .041 per stable customer per 30 days after day 60). Distance alone does not tell
        a new kind of customer from a tail that was always there: with lapsed customers still
        mailed, candidates before any change ended 4.2–4.9 away (stationary seed 5; day 41 of
        churn-emerging seed 9 and of the 120-day seed 8, where they passed). See ``far_growth``.
        A cued publish tries it too: after model-fit drift the fit sees only the newest 1,000
        samples, where a persona joining a few a day still holds 2 %; on the 120-day
        simulation with seed 7, detected on day 79, it was born only on day 85 without this
        (day 80 with it, as when no detector saw it).
    far_growth
        A far newborn must also hold this many times the share its region (the samples nearest
        to it) held of the window the last publish not adapting to drift was fitted on
        (`stream.core.adapt.grow`'s ``grew_from``): a kind of customer that emerges grows, a
        tail does not. (The window of an adapted publish, the newest samples, already holds
        the newcomers that set the detector off: measured against it, they had not grown.)
        Measured (trainer seed 42): the emerging personas held 2.7–4.3 times their earlier
        share when born (60- and 120-day simulations); every candidate that would have passed
        without this held 0.6–1.08 times its earlier share (the day-41 splits above, and
        regions of churned customers after the churn waves).
    far_growth_z
        …and the rise from that share must stand out from sampling noise by this many standard
        errors (two-proportion z): the region a fit picks is the densest it can find in the
        newest window, so a tail's share looks grown by chance. With trainer seed 1 on
        churn-emerging seed 9, a tail of 21 store regulars (1.6 % against 0.9 %, z 2.5) passed
        the far test on day 46 and split them; the coupon buyers then wandered across the new
        border (spurious changes .041 → .112). Emerging personas born by the far test stood
        out at z 4.6–8.9 (120-day simulations, churn-emerging seed 9); regions of churned
        customers at 3.6–6.7, which is why a newborn that stands for customers gone quiet is
        not born at all (`_lapsed_newborn`).
    settle_days
        Event time after a change to the set of segments before scouting (``scout``,
        ``far_birth``) resumes; a cued birth may come at any time. Right after the emerging
        persona's birth on a churn-emerging stream, its remainder passed the looser test and
        split the app loyalists (spurious changes .081 → .152); with trainer seed 2 on
        churn-emerging seed 9 it passed the scouted test two days after the birth and split
        the web cart abandoners (.078 → .040 with the wait). A new structure settles first.
        Nor does a segment's rising share cue a birth before then: a newborn's share rises
        while it fills, and on churn-emerging seed 9 that cue split the newborn itself five
        days after its birth (.041 → .082).
    outlier_quantile
        The quantile of the fitted samples' distances beyond which a sample counts as an
        outlier (``model:outliers``; `stream.core.watch.DriftWatch`).
    reservoir
        The newest samples kept, training and monitoring ones; segments are fitted on them
        (see the module docstring).
    drift_after_days
        Event time after the first sample the drift detectors see (the first once a model
        exists) before they are fed (`stream.core.watch.DriftWatch`), and scouting (``scout``)
        begins: the features' longest horizon (30 days), over which a new stream's features
        are still filling up.
    """

    def __init__(
        self,
        n_segments: int = 6,
        micro_per_segment: int = 3,
        max_micro_clusters: int = 60,
        publish_every: int = 2000,
        warmup: int = 1000,
        seed: int = 42,
        match_distance: float = 3.0,
        restructure_gain: float = 0.1,
        time_window: int = 2000,
        scaler_halflife: float | None = None,
        max_segments: int | None = None,
        drift: bool = True,
        adapt_samples: int = 200,
        birth_share: float = 0.03,
        birth_gain: float = 0.05,
        retire_share: float = 0.005,
        reservoir: int = 3000,
        drift_after_days: float = 30.0,
        scout: bool = True,
        far_birth: tuple[float, float, float] | None = (4.0, 0.01, 0.025),
        far_growth: float = 1.5,
        far_growth_z: float = 3.0,
        settle_days: float = 7.0,
        outlier_quantile: float = 0.99,
    ) -> None:
        self.n_segments = n_segments
        self.micro_per_segment = micro_per_segment
        self.max_micro_clusters = max_micro_clusters
        self.publish_every = publish_every
        self.warmup = warmup
        self.seed = seed
        self.match_distance = match_distance
        self.restructure_gain = restructure_gain
        self.time_window = time_window
        self.scaler_halflife = scaler_halflife
        self.max_segments = max_segments
        self.drift = drift
        self.adapt_samples = adapt_samples
        self.birth_share = birth_share
        self.birth_gain = birth_gain
        self.retire_share = retire_share
        self.reservoir = reservoir
        self.drift_after_days = drift_after_days
        self.scout = scout
        self.far_birth = far_birth
        self.far_growth = far_growth
        self.far_growth_z = far_growth_z
        self.settle_days = settle_days
        self.outlier_quantile = outlier_quantile
        self._last_window: Array = np.empty((0, len(FEATURES)))
        """The samples the last publish not adapting to drift was fitted on (transformed,
        unscaled): a far newborn must have grown since (``far_growth``)."""
        self._changed_at: int | None = None
        """Event time of the last change to the set of segments (a snapshot, if resumed)."""
        self.watch = DriftWatch(drift_after_days, outlier_quantile)
        self.activity = ActivityDrift()
        self.detections: list[Detection] = []
        """Drift detections not yet taken (`take_detections`)."""
        self._publish_at: int | None = None
        self._adapting = False
        self._may_grow = False
        """A segment's share rose (segment drift): the next publish may try a birth."""
        self._samples: deque[Array] = deque(maxlen=max(reservoir, RECENT_SAMPLES))
        """The newest samples, training and monitoring ones (transformed, unscaled): the
        current population, which each publish scales by its own statistics and fits."""
        self.scaler = RunningScaler(len(FEATURES), scaler_halflife)
        self.clusterer = cluster.CluStream(
            n_macro_clusters=n_segments,
            max_micro_clusters=max_micro_clusters,
            time_window=time_window,
            time_gap=2**62,  # River's own macro k-means is never used: skip it
            seed=seed,
        )
        self.model: SegmentModel | None = None
        self.history: list[dict[str, Any]] = []
        self.river_starts = [0, 0]
        """Fits won by the start from River's micro-clusters, and fits where it competed."""

    def resume(self, model: SegmentModel) -> None:
        """Continue from a published snapshot (a restarted trainer): its version, ids and scaling.

        River's micro-clusters are not in a snapshot; they grow back from the next samples, and
        the next publish is matched against ``model`` as usual.
        """
        if self.model is not None and self.model.version >= model.version:
            return
        self.model = model
        self._changed_at = model.trained_at  # when its segments were set up is not kept
        self.scaler.resume(model, max(self.n, self.warmup))

    @property
    def n(self) -> int:
        """Training samples learnt (or, after `resume`, at least ``warmup``)."""
        return self.scaler.n

    def carry(self) -> dict[str, Any]:
        """What a trainer taking over needs besides the snapshot (`take_over`), as JSON-ready
        data: when the stream began (the drift detectors are fed from ``drift_after_days``
        after it) and the population-activity test's counts
        (`stream.core.activity.ActivityDrift.state`)."""
        return {"since": self.watch.since, "activity": self.activity.state()}

    def take_over(self, carried: Any) -> bool:
        """Continue from another trainer's `carry` (a restarted or newly assigned trainer, which
        would otherwise feed no drift detector for ``drift_after_days`` and test no fall in
        activity for three weeks): the stream's start if earlier than its own, the activity
        counts if newer. True if anything was taken; ValueError if ``carried`` is not a carry.

        >>> old, new = Trainer(seed=1), Trainer(seed=1)
        >>> old.watch.since = 0
        >>> new.take_over(old.carry()), new.carry() == old.carry()
        (True, True)
        >>> new.take_over(old.carry())  # nothing newer
        False
        """
        try:
            since = carried["since"]
            if since is not None and (isinstance(since, bool) or not isinstance(since, int)):
                raise TypeError(since)
            activity = ActivityDrift()
            activity.restore(carried["activity"])
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not a trainer carry: {exc!r}") from exc
        took = False
        if since is not None and (self.watch.since is None or since < self.watch.since):
            self.watch.since, took = since, True
        own = self.activity.newest
        if activity.newest is not None and (own is None or activity.newest > own):
            self.activity.restore(carried["activity"])
            took = True
        return took

    def learn_one(self, raw: list[float], t: int) -> SegmentModel | None:
        """Learn one sampled raw feature vector at event time ``t``; return a new model when due."""
        x = np.asarray(transform(raw), dtype=np.float64)
        self.scaler.learn_one(x)
        z = scaled(x, self.scaler.mean, self.scaler.std())
        self.clusterer.learn_one(dict(zip(_KEYS, z.tolist(), strict=True)))  # type: ignore[no-untyped-call]
        self._samples.append(x)
        if self.drift and self.model is not None:
            self._watch(self.model, x, t)
        due = (
            self.n >= self.warmup
            and len(self._samples) >= 5 * self.n_segments  # after a restart: enough to fit
            and (
                self.model is None
                or self.n % self.publish_every == 0
                or self.n >= (self._publish_at or self.n + 1)
            )
        )
        return self.publish(t) if due else None

    def watch_one(self, raw: list[float], t: int) -> None:
        """Feed one monitoring sample to the drift detectors and to the window the next model is
        fitted on. River does not learn it."""
        x = np.asarray(transform(raw), dtype=np.float64)
        if self.drift and self.model is not None:
            self._watch(self.model, x, t)
        self._samples.append(x)

    def take_detections(self) -> list[Detection]:
        """The drift detections since the last call (for ``segment-events``)."""
        out, self.detections = self.detections, []
        return out

    def observe_day(self, boundary: int, touches: list[int] | None) -> None:
        """Take the organic touches of the day that ends at ``boundary`` (the partitions' sums of
        `stream.core.activity.DailyTouches.take`; None: not counted in full), before that day's
        samples: a churn wave shows in them days before it moves anyone's features
        (`stream.core.activity`). A detection is reported and changes nothing in the model:
        customers going quiet move into the segments of lapsed customers as their silence grows
        (`stream.core.space.may_lapse`); adapting to the fall (faster forgetting, the newest
        samples only) split the churned customers off in a segment of their own on one
        simulation (final ARI .970 → .857)."""
        if self.drift:
            hit = self.activity.update(boundary, touches)
            if hit is not None:
                self.detections.append(hit)

    def _watch(self, model: SegmentModel, x: Array, t: int) -> None:
        """Feed the drift detectors one sample (``x``: in the clustering space), as the current
        model scores it (`stream.core.watch.DriftWatch`); adapt on drift."""
        found = self.watch.update(model, x, t)
        fits = [f for f in found if f.level == "model_fit"]
        if fits and not self._adapting:  # learn the new situation faster, then publish
            self._adapting = True
            self.clusterer.time_window = min(self.time_window, self.adapt_samples)
        if any(d.subject.endswith(":share") and d.after > d.before for d in found) and (
            self._settled(t)
        ):
            self._may_grow = True  # a segment swelling: maybe a new kind of customer inside it
        refit = any(f.level == "model_fit" or f.subject.endswith(":share") for f in found)
        if refit and self._publish_at is None:  # a changed spread is reported, not refitted for
            self._publish_at = self.n + self.adapt_samples
        self.detections += found

    def _settled(self, t: int) -> bool:
        """Whether the set of segments has stood for ``settle_days`` at ``t``."""
        return self._changed_at is None or t - self._changed_at >= self.settle_days * DAY_MS

    def publish(self, t: int) -> SegmentModel:
        """Derive segments from the newest samples and River's micro-clusters; publish the next
        version."""
        adapting = self._adapting
        window = list(self._samples)
        if adapting:  # after model-fit drift: the newest picture only
            window = window[-RECENT_SAMPLES:]
        x = np.asarray(window, dtype=np.float64)
        mean = x.mean(axis=0)
        std = np.maximum(x.std(axis=0), STD_FLOOR)
        points = scaled(x, mean, std)
        weights = np.ones(len(points))
        mcs = list(self.clusterer.micro_clusters.values())
        # River learns in the running scaling; its micro-clusters are moved into this one.
        summary = np.asarray([[mc.center[k] for k in _KEYS] for mc in mcs], dtype=np.float64)
        if len(summary):
            summary = scaled(summary * self.scaler.std() + self.scaler.mean, mean, std)
        summary_w = np.asarray([float(mc.weight) for mc in mcs], dtype=np.float64)
        prev = self.model
        k = len(prev.segments) if prev is not None else self.n_segments
        centroids, labels = self._fit(points, weights, summary, summary_w, k)
        if prev is not None:
            # Keep the previous structure unless a segment is born (after model-fit drift or a
            # segment's rising share) or a fresh solution is clearly better: refine the previous
            # centroids (moved into the current scaling), try a birth from there, and compare.
            warm_c, warm_l = weighted_kmeans(
                points,
                weights,
                k,
                self.seed,
                init=rescaled(prev.centroids(), prev, mean, std),
            )
            grown = None
            # A birth is tried when drift cues one, and (``scout``) at every publish once the
            # detectors are live: a new kind of customer that arrives slowly may move no detector.
            # Uncued, the newborn must end farther than ``match_distance`` from every current
            # centroid — a region no current segment could claim as its own — and only once the
            # set of segments has stood for ``settle_days``, as for the far test, cued or not.
            cued = adapting or self._may_grow
            settled = self._settled(t)
            if (cued or (self.scout and self.watch.live(t) and settled)) and k < (
                self.max_segments or self.n_segments
            ):
                far = self.far_birth if settled else None
                grown = grow(points, weights, warm_c, self.seed, self.birth_share,
                             self.birth_gain, self.match_distance,
                             seeds=(summary, summary_w) if len(summary) else None,
                             apart=0.0 if cued else self.match_distance, far=far,
                             grew_from=None if far is None else scaled(self._last_window, mean, std),
                             growth=self.far_growth, growth_z=self.far_growth_z)  # fmt: skip
                if grown is not None and _lapsed_newborn(grown[0], warm_c, mean, std):
                    grown = None
            fresh = inertia(points, weights, centroids, labels)
            if grown is not None:
                centroids, labels = grown
            elif fresh >= (1.0 - self.restructure_gain) * inertia(points, weights, warm_c, warm_l):
                centroids, labels = warm_c, warm_l
        if adapting:
            centroids, labels = retire(
                points, weights, centroids, labels, self.retire_share, 2, self.seed
            )
        self._end_adaptation()
        if not adapting or not len(self._last_window):
            self._last_window = x  # the growth reference (``far_growth``)
        model, matching = next_version(prev, centroids, labels, points, weights, mean, std, t,
                                       seed=self.seed, micro_per_segment=self.micro_per_segment,
                                       match_distance=self.match_distance)  # fmt: skip
        if prev is None or {s.id for s in prev.segments} != {s.id for s in model.segments}:
            self._changed_at = t
        self.model = model
        self.history.append({"version": model.version, "matching": matching})
        self.watch.published(model, points, t, renew=adapting)
        return model

    def _fit(
        self, points: Array, weights: Array, summary: Array, summary_w: Array, k: int
    ) -> tuple[Array, list[int]]:
        """Seeded k-means of the window: the best by inertia of k-means++ starts and of a start
        at k-means over River's micro-clusters (when River holds at least ``k``), then searched
        out of a poor local optimum (`stream.core.kmeans.improve`)."""
        centroids, labels = best_kmeans(points, weights, k, self.seed)
        if len(summary) >= k:
            init, _ = best_kmeans(summary, summary_w, k, self.seed)
            river_c, river_l = weighted_kmeans(points, weights, k, self.seed, init=init)
            self.river_starts[1] += 1
            if inertia(points, weights, river_c, river_l) < inertia(
                points, weights, centroids, labels
            ):
                self.river_starts[0] += 1
                centroids, labels = river_c, river_l
        return improve(points, weights, centroids, self.seed)

    def _end_adaptation(self) -> None:
        self._adapting = False
        self._may_grow = False
        self._publish_at = None
        self.clusterer.time_window = self.time_window


def _lapsed_newborn(grown: Array, previous: Array, mean: Array, std: Array) -> bool:
    """Whether the newborn of ``grown`` (the centroid farthest from every ``previous`` one;
    both in the scaling ``mean``, ``std``) stands for customers gone quiet
    (`stream.core.space.lapsed_segments`). Customers who stop belong in the lapsed segments as
    their silence grows (`stream.core.space.may_lapse`); a region of them is a churn, not a new
    kind of customer. With trainer seed 2 on churn-emerging seed 7, 24 days after the churn
    wave, such a region passed the far test and was born as "Lapsed mobile customers"."""
    born = newborn(grown, previous)
    return bool(lapsed_segments(grown[born : born + 1], mean.tolist(), std.tolist(), NAMES)[0])
