"""Seeded k-means and its local search out of poor optima."""

from __future__ import annotations

import numpy as np

from stream.core.kmeans import best_kmeans, improve, inertia, weighted_kmeans


def _blobs(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = np.asarray([[0.0, 0.0], [8.0, 0.0], [16.0, 0.0], [8.0, 9.0]])
    return np.vstack([c + rng.normal(0, 0.7, size=(150, 2)) for c in centres])


def test_improve_moves_a_centroid_from_a_split_blob_to_two_merged_ones() -> None:
    pts = _blobs(1)
    w = np.ones(len(pts))
    # a poor optimum: two centroids share the first blob, one sits between the middle two
    bad = np.asarray([[-0.5, 0.0], [0.5, 0.0], [8.0, 4.5], [16.0, 0.0]])
    c0, l0 = weighted_kmeans(pts, w, 4, 0, init=bad)
    c1, l1 = improve(pts, w, bad, seed=2)
    assert inertia(pts, w, c1, l1) < 0.5 * inertia(pts, w, c0, l0)
    assert sorted(np.bincount(l1).tolist()) == [150, 150, 150, 150]
    # deterministic for a seed
    c2, l2 = improve(pts, w, bad, seed=2)
    assert (c1 == c2).all() and l1 == l2


def test_improve_keeps_a_good_solution() -> None:
    pts = _blobs(3)
    w = np.ones(len(pts))
    c, labels = best_kmeans(pts, w, 4, seed=0)
    c2, l2 = improve(pts, w, c, seed=0)
    assert inertia(pts, w, c2, l2) <= inertia(pts, w, c, labels) + 1e-9
    assert sorted(np.bincount(l2).tolist()) == [150, 150, 150, 150]
