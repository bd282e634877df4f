"""Seeded, weighted k-means: how segments are derived from River's weighted micro-clusters.

>>> import numpy as np
>>> pts = np.asarray([[0.0], [0.1], [5.0], [5.2]])
>>> c, labels = best_kmeans(pts, np.ones(4), 2, seed=3)
>>> c.round(2).tolist(), labels
([[0.05], [5.1]], [0, 0, 1, 1])
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.float64]


def weighted_kmeans(
    points: Array, weights: Array, k: int, seed: int, iters: int = 60, init: Array | None = None
) -> tuple[Array, list[int]]:
    """Seeded weighted k-means (k-means++ initialisation, or from ``init``); returns centroids
    and labels.

    Centroids come out sorted lexicographically, so the order does not depend on initialisation.
    """
    n = len(points)
    w = np.maximum(weights, 1e-12)
    if init is not None:
        c = np.asarray(init, dtype=np.float64).copy()
        k = len(c)
    else:
        k = min(k, n)
        rng = np.random.default_rng(seed)
        centres = [points[int(rng.choice(n, p=w / w.sum()))]]
        for _ in range(1, k):
            d = nearest(points, np.asarray(centres))[0] * w
            centres.append(
                points[int(rng.choice(n, p=d / d.sum()))] if d.sum() > 0 else points[len(centres)]
            )
        c = np.asarray(centres, dtype=np.float64)
    labels = np.zeros(n, dtype=int)
    # Squared distances as |p|² − 2 p·c + |c|² (no n × k × d array) and centroids from weighted
    # counts per label: the same Lloyd iterations, several times cheaper. einsum and bincount
    # run numpy's own loops, never a multi-threaded BLAS, so results do not depend on the machine.
    norms = np.einsum("nd,nd->n", points, points)
    wp = points * w[:, None]
    for _ in range(iters):
        d2 = norms[:, None] - 2.0 * np.einsum("nd,kd->nk", points, c) + np.einsum("kd,kd->k", c, c)
        labels = d2.argmin(1)
        mass = np.bincount(labels, weights=w, minlength=k)
        sums = np.stack(
            [np.bincount(labels, weights=wp[:, j], minlength=k) for j in range(c.shape[1])], 1
        )
        new = c.copy()
        held = mass > 0
        new[held] = sums[held] / mass[held, None]
        if np.allclose(new, c):
            break
        c = new
    order = np.lexsort(c.T[::-1])
    remap = {int(old): new_i for new_i, old in enumerate(order)}
    return c[order], [remap[int(x)] for x in labels]


def nearest(points: Array, centroids: Array) -> tuple[Array, NDArray[np.intp]]:
    """Each point's squared distance to its nearest centroid, and that centroid's index."""
    d2 = ((points[:, None, :] - centroids[None]) ** 2).sum(axis=2)
    return d2.min(axis=1), d2.argmin(axis=1)


def refit_with(
    points: Array, weights: Array, centroids: Array, start: Array, seed: int
) -> tuple[float, Array, list[int]]:
    """`weighted_kmeans` from ``centroids`` plus one more at ``start``, and its weighted inertia
    (how `improve` re-seeds a segment and `stream.core.adapt.grow` tries a birth)."""
    init = np.vstack([centroids, start])
    c, labels = weighted_kmeans(points, weights, len(init), seed, init=init)
    return inertia(points, weights, c, labels), c, labels


def inertia(points: Array, weights: Array, centroids: Array, labels: list[int]) -> float:
    """Weighted sum of squared distances of points to their centroids."""
    return float((((points - centroids[labels]) ** 2).sum(axis=1) * weights).sum())


def best_kmeans(
    points: Array, weights: Array, k: int, seed: int, n_init: int = 8
) -> tuple[Array, list[int]]:
    """`weighted_kmeans` from ``n_init`` seeds (``seed``, ``seed + 1``, …); the lowest weighted
    inertia wins (the earliest seed on a tie)."""
    best: tuple[float, Array, list[int]] | None = None
    for s in range(seed, seed + n_init):
        c, labels = weighted_kmeans(points, weights, k, s)
        score = inertia(points, weights, c, labels)
        if best is None or score < best[0] - 1e-9:
            best = (score, c, labels)
    assert best is not None
    return best[1], best[2]


def improve(
    points: Array, weights: Array, centroids: Array, seed: int, rounds: int = 2
) -> tuple[Array, list[int]]:
    """Refine ``centroids`` and search out of a poor k-means optimum (one segment split in two
    while two others share one): for each segment in turn, drop it, re-seed it where the data is
    worst served by the rest (D² sampling, seeded), refine, and keep the result when the weighted
    inertia falls. Up to ``rounds`` passes over the segments; deterministic for a seed.

    >>> pts = np.asarray([[0.0], [0.2], [5.0], [5.2], [9.0], [9.2]])
    >>> c, labels = improve(pts, np.ones(6), np.asarray([[0.0], [0.2], [7.0]]), seed=1)
    >>> c.round(1).tolist(), labels
    ([[0.1], [5.1], [9.1]], [0, 0, 1, 1, 2, 2])
    """
    w = np.maximum(weights, 1e-12)
    c, labels = weighted_kmeans(points, w, len(centroids), seed, init=centroids)
    best = inertia(points, w, c, labels)
    rng = np.random.default_rng(seed)
    for _ in range(rounds):
        better = False
        for j in range(len(c)):
            rest = np.delete(c, j, axis=0)
            d2 = nearest(points, rest)[0] * w
            if d2.sum() <= 0:
                continue
            pick = points[int(rng.choice(len(points), p=d2 / d2.sum()))]
            score, cand, cand_labels = refit_with(points, w, rest, pick, seed)
            if score < best * (1.0 - 1e-6):
                c, labels, best, better = cand, cand_labels, score, True
        if not better:
            break
    return c, labels
