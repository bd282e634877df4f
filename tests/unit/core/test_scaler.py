"""The trainer's running scaler and the moves between scalings (`stream.core.scaler`)."""

from __future__ import annotations

import numpy as np

from stream.core.scaler import RunningScaler, rescaled, scaled
from stream.core.space import STD_FLOOR


def test_cumulative_statistics_are_the_sample_mean_and_standard_deviation() -> None:
    rng = np.random.default_rng(4)
    x = rng.normal([1.0, -3.0, 0.0], [2.0, 0.5, 0.0], size=(500, 3))
    s = RunningScaler(n_features=3)
    for row in x:
        s.learn_one(row)
    assert s.n == 500
    assert np.allclose(s.mean, x.mean(axis=0))
    assert np.allclose(s.std()[:2], x.std(axis=0, ddof=1)[:2])
    assert s.std()[2] == STD_FLOOR  # a constant feature is floored, never divided by 0


def test_exponential_weighting_forgets_the_early_samples() -> None:
    s = RunningScaler(n_features=1, halflife=10.0)
    for _ in range(200):
        s.learn_one(np.asarray([0.0]))
    for _ in range(10):  # one half-life of a new level
        s.learn_one(np.asarray([8.0]))
    assert abs(s.mean[0] - 4.0) < 1e-9  # halfway there
    cumulative = RunningScaler(n_features=1)
    for v in [0.0] * 200 + [8.0] * 10:
        cumulative.learn_one(np.asarray([v]))
    assert cumulative.mean[0] < 0.5


def test_resume_continues_from_published_statistics() -> None:
    class Published:
        mean, std = [2.0], [3.0]

    s = RunningScaler(n_features=1)
    s.resume(Published(), n=9)
    assert (s.n, s.mean.tolist(), s.std().tolist()) == (9, [2.0], [3.0])
    s.learn_one(np.asarray([12.0]))  # the tenth sample weighs a tenth
    assert s.n == 10 and abs(s.mean[0] - 3.0) < 1e-12


def test_a_point_moved_between_scalings_stands_for_the_same_raw_values() -> None:
    class Old:
        mean, std = [1.0, -2.0], [2.0, 0.5]

    raw = np.asarray([[4.0, -1.5], [0.0, -2.0]])
    old = (raw - np.asarray(Old.mean)) / np.asarray(Old.std)
    mean, std = np.asarray([0.5, 0.0]), np.asarray([1.5, 1.0])
    assert np.allclose(rescaled(old, Old(), mean, std), scaled(raw, mean, std))
    assert scaled(np.asarray([[100.0, 0.0]]), mean, std).max() == 3.0  # clipped to Z_CLIP
