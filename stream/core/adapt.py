"""Adapting the set of segments: an emerging dense region is born, an emptied segment retires.

The trainer derives ``k`` segments from its recent samples. After model-fit drift
(`stream.core.drift.ModelFit`) or a segment's rising share it may add one; once the detectors
are live it also tries at every publish without such a cue, accepting only a newborn that ends
``apart`` from every current centroid (`stream.core.trainer.Trainer`, ``scout``). `grow` starts a
``k + 1``-th centroid at the River micro-cluster farthest from every current centroid (weight ×
squared distance, beyond ``min_distance``) and at ``tries`` seeded draws where the samples are
worst served (D² sampling), refines all ``k + 1`` on the samples from each start, keeps the
lowest inertia, and accepts it only if the new segment holds at least ``birth_share`` of the
weight and the weighted inertia falls by ``gain`` — or, with ``far``, the best fit whose newborn
ends farther still from every segment passes looser bounds, if its region has grown since an
earlier window (``grew_from``), beyond sampling noise (``growth_z``). `retire` drops segments
holding less than ``retire_share`` of the weight (never below ``min_k``). Both are deterministic; the
stable-identity matching (`stream.core.identity`) then labels the result born / retired / split
/ merged against the previous version.

>>> import numpy as np
>>> pts = np.asarray([[0.0, 0.0], [0.2, 0.0], [5.0, 5.0], [9.0, 0.0], [9.2, 0.0]])
>>> w = np.asarray([10.0, 10.0, 10.0, 4.0, 4.0])
>>> c, labels = weighted_kmeans(pts, w, 2, seed=1)
>>> grown = grow(pts, w, c, seed=1, birth_share=0.1, gain=0.1, min_distance=2.0)
>>> c.round(1).tolist(), grown[0].round(1).tolist()
([[0.1, 0.0], [6.8, 2.8]], [[0.1, 0.0], [5.0, 5.0], [9.1, 0.0]])
>>> grow(pts, w, c, seed=1, birth_share=0.1, gain=0.1, min_distance=2.0, apart=4.0) is None
True
>>> retire(pts, w, grown[0], grown[1], retire_share=0.3, min_k=2, seed=1)[0].round(1).tolist()
[[0.1, 0.0], [6.8, 2.8]]

A small region (5 % of the weight) far from both segments: born only under the ``far`` test.

>>> pts = np.asarray([[0.0, 0.0], [0.2, 0.0], [5.0, 0.0], [5.2, 0.0], [0.0, 8.0], [0.2, 8.0]])
>>> w, c = np.asarray([10.0, 10.0, 10.0, 10.0, 1.0, 1.0]), np.asarray([[0.1, 0.7], [5.1, 0.0]])
>>> grow(pts, w, c, seed=1, birth_share=0.1, gain=0.1, min_distance=2.0) is None
True
>>> grow(pts, w, c, 1, 0.1, 0.1, 2.0, far=(5.0, 0.02, 0.1))[0].round(1).tolist()
[[0.1, 0.0], [0.1, 8.0], [5.1, 0.0]]
>>> grow(pts, w, c, 1, 0.1, 0.1, 2.0, far=(8.0, 0.02, 0.1)) is None  # 7.3 away: not far enough
True

With ``grew_from`` (an earlier window), only if the region has grown since: it had no point of
the first earlier window, a third of the second.

>>> len(grow(pts, w, c, 1, 0.1, 0.1, 2.0, far=(5.0, 0.02, 0.1), grew_from=pts[:4])[0])
3
>>> grow(pts, w, c, 1, 0.1, 0.1, 2.0, far=(5.0, 0.02, 0.1), grew_from=pts) is None
True
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from stream.core.kmeans import inertia, nearest, refit_with, weighted_kmeans

Array = NDArray[np.float64]

__all__ = ["grow", "newborn", "retire", "weighted_kmeans"]


def grow(
    points: Array,
    weights: Array,
    centroids: Array,
    seed: int,
    birth_share: float,
    gain: float,
    min_distance: float,
    seeds: tuple[Array, Array] | None = None,
    tries: int = 8,
    apart: float = 0.0,
    far: tuple[float, float, float] | None = None,
    grew_from: Array | None = None,
    growth: float = 1.5,
    growth_z: float = 0.0,
) -> tuple[Array, list[int]] | None:
    """``k + 1`` centroids with a newborn segment, or None if no dense new region pays.

    ``seeds`` (points and weights, e.g. River's micro-clusters over the same data) are where
    the newborn may start: density is in their weights. By default ``points`` themselves.
    ``apart``: how far (scaled distance) the newborn must end from every current centroid.
    ``far``: ``(distance, share, gain)``, a second test for when the best fit fails the first:
    the best fit whose newborn ends at least ``distance`` from every current centroid may hold
    as little as ``share`` and gain as little as ``gain`` (a region that far from every segment
    needs less mass to be believed).
    ``grew_from``: with ``far``, the points of an earlier window (equal weights, this
    scaling); a far newborn must hold ``growth`` times the share of them that its region (the
    points nearest to it among the new centroids) held, and the rise must stand ``growth_z``
    standard errors above that share (a two-proportion z: the fit picks the densest region of
    the newest points, so a tail's share rises by chance). A kind of customer that emerges
    grows; a tail that was always there at the edge of the population does not.
    """
    served, nearest_idx = nearest(points, centroids)
    labels = nearest_idx.tolist()
    cand, cand_w = (points, weights) if seeds is None else seeds
    d2 = nearest(cand, centroids)[0]
    far_enough = d2 > min_distance**2
    if not far_enough.any():
        return None
    score = np.where(far_enough, cand_w * d2, -1.0)
    starts = [cand[int(score.argmax())]]
    # Also starts drawn where the data is worst served (D² sampling, seeded): the densest new
    # region need not hold the single farthest point.
    pd2 = served * weights
    rng = np.random.default_rng(seed)
    if pd2.sum() > 0:
        starts += [points[int(i)] for i in rng.choice(len(points), size=tries, p=pd2 / pd2.sum())]
    fits = [refit_with(points, weights, centroids, start, seed) for start in starts]
    best = fits[0]
    for fit in fits[1:]:
        if fit[0] < best[0] - 1e-9:
            best = fit
    before = inertia(points, weights, centroids, labels)
    got = _newborn(best, weights, centroids, birth_share, gain, apart, before)
    if got is not None or far is None:
        return got
    distance, share, far_gain = far
    for fit in sorted(fits, key=lambda f: f[0]):  # stable: the first of equals first
        got = _newborn(fit, weights, centroids, share, far_gain, distance, before)
        if got is not None and (grew_from is None or _grew(fit, weights, centroids, grew_from,
                                                           growth, growth_z)):  # fmt: skip
            return got
    return None


def newborn(centroids: Array, previous: Array) -> int:
    """The index of the newborn among ``centroids``: the one farthest from every ``previous``
    centroid (a `grow` result holds the previous ones, refined, and one more).

    >>> newborn(np.asarray([[0.0, 0.1], [5.0, 5.0], [9.0, 0.0]]), np.asarray([[0.0, 0.0], [9.0, 0.0]]))
    1
    """
    return int(nearest(centroids, previous)[0].argmax())


def _region(
    fit: tuple[float, Array, list[int]], weights: Array, centroids: Array
) -> tuple[int, float, float]:
    """A `refit_with` result's newborn (the centroid farthest from every previous one): its
    index, its share of the weight and its squared distance from the nearest previous
    centroid."""
    _, c, labels = fit
    gaps = nearest(c, centroids)[0]
    born = newborn(c, centroids)
    shares = np.bincount(labels, weights=weights, minlength=len(c)) / weights.sum()
    return born, float(shares[born]), float(gaps[born])


def _grew(
    fit: tuple[float, Array, list[int]],
    weights: Array,
    centroids: Array,
    earlier: Array,
    growth: float,
    growth_z: float = 0.0,
) -> bool:
    """Whether the newborn of ``fit`` holds ``growth`` times the share its region (the points
    nearest to it among the fit's centroids) held of the ``earlier`` points, ``growth_z``
    standard errors above it (two-proportion z, pooled; ``len(weights)`` and ``len(earlier)``
    points).

    A tail at 1.6 % of 3,000 points against 0.9 % of as many before, and a region at 6 %
    against 2.5 %:

    >>> round(_rise_z(0.0157, 3000, 0.0087, 3000), 2), round(_rise_z(0.06, 3000, 0.025, 3000), 2)
    (2.47, 6.72)
    """
    if not len(earlier):
        return False  # nothing to have grown from (a restarted trainer's first publish)
    born, share, _ = _region(fit, weights, centroids)
    before = float((nearest(earlier, fit[1])[1] == born).mean())
    rise = _rise_z(share, len(weights), before, len(earlier))
    return share >= growth * before and rise >= growth_z


def _rise_z(share: float, n: int, before: float, m: int) -> float:
    """Two-proportion z of ``share`` (of ``n``) over ``before`` (of ``m``), pooled."""
    pool = (share * n + before * m) / (n + m)
    se = np.sqrt(max(pool * (1.0 - pool), 1e-12) * (1.0 / n + 1.0 / m))
    return float((share - before) / se)


def _newborn(
    fit: tuple[float, Array, list[int]],
    weights: Array,
    centroids: Array,
    share: float,
    gain: float,
    apart: float,
    before: float,
) -> tuple[Array, list[int]] | None:
    """A `refit_with` result if its newborn holds ``share`` of the weight, ends ``apart`` from
    every previous centroid and the inertia falls by ``gain``."""
    after, c, new_labels = fit
    if len(set(new_labels)) < len(c):
        return None
    _, held, gap2 = _region(fit, weights, centroids)
    if held < share or gap2 < apart**2 or after > (1.0 - gain) * before:
        return None
    return c, new_labels


def retire(
    points: Array,
    weights: Array,
    centroids: Array,
    labels: list[int],
    retire_share: float,
    min_k: int,
    seed: int,
) -> tuple[Array, list[int]]:
    """Drop the segments holding less than ``retire_share`` of the weight (keeping ``min_k``)."""
    shares = np.bincount(labels, weights=weights, minlength=len(centroids)) / weights.sum()
    order = [int(i) for i in np.argsort(shares, kind="stable")]
    drop = [i for i in order if shares[i] < retire_share][: max(len(centroids) - min_k, 0)]
    if not drop:
        return centroids, labels
    keep = np.asarray([i for i in range(len(centroids)) if i not in drop])
    return weighted_kmeans(points, weights, len(keep), seed, init=centroids[keep])
