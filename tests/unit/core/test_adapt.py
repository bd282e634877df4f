"""Births under the far test: a region must have grown beyond sampling noise (issue 5)."""

from __future__ import annotations

import numpy as np
import pytest

from stream.core.adapt import grow


def _window(rng: np.random.Generator, far: int, n: int = 3000) -> np.ndarray:
    """``n`` points: two segments' blobs and ``far`` points of a region far from both."""
    near = n - far
    return np.concatenate([
        rng.normal((0.0, 0.0), 0.5, (near // 2, 2)),
        rng.normal((10.0, 0.0), 0.5, (near - near // 2, 2)),
        rng.normal((0.0, 10.0), 0.5, (far, 2)),
    ])  # fmt: skip


@pytest.mark.parametrize(
    ("before", "now", "growth_z", "born"),
    [
        (26, 47, 3.0, False),  # 0.9 % → 1.6 %: 1.8 times, but z 2.5 (a tail, by chance)
        (26, 47, 0.0, True),  # the same without the significance test
        (75, 180, 3.0, True),  # 2.5 % → 6 %: z 6.7 (a kind of customer arriving)
        (90, 120, 0.0, False),  # 3 % → 4 %: not 1.5 times
    ],
)
def test_a_far_region_must_have_grown_beyond_noise(
    before: int, now: int, growth_z: float, born: bool
) -> None:
    rng = np.random.default_rng(4)
    earlier, points = _window(rng, before), _window(rng, now)
    centroids = np.asarray([[0.0, 0.0], [10.0, 0.0]])
    got = grow(points, np.ones(len(points)), centroids, seed=1, birth_share=0.1, gain=0.05,
               min_distance=2.0, far=(4.0, 0.01, 0.0), grew_from=earlier, growth=1.5,
               growth_z=growth_z)  # fmt: skip
    assert (got is not None) == born
    if got is not None:
        c = got[0]
        assert len(c) == 3 and np.abs(c - (0.0, 10.0)).sum(axis=1).min() < 0.5
