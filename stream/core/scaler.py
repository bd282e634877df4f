"""Scaling in the clustering space: the trainer's running statistics, and moving points between
two scalings.

River learns every training sample scaled by running per-feature statistics (`RunningScaler`),
while each published model scales by the statistics of the window it was fitted on
(`stream.core.trainer`). Centroids therefore move between scalings (`rescaled`) whenever one
version is compared with the next, so that only behaviour counts, never a change of scale.

>>> s = RunningScaler(n_features=2)
>>> for v in ([1.0, 5.0], [3.0, 5.0]):
...     s.learn_one(np.asarray(v))
>>> s.n, s.mean.tolist(), s.std().tolist()
(2, [2.0, 5.0], [1.4142135623730951, 0.05])
>>> z = scaled(np.asarray([[4.0, 5.0]]), s.mean, s.std())
>>> z.tolist()  # 1.41 standard deviations; the constant feature stays at 0
[[1.414213562373095, 0.0]]
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from stream.core.model import Z_CLIP
from stream.core.space import STD_FLOOR

Array = NDArray[np.float64]


class Scaling(Protocol):
    """What a published model's scaling offers (`stream.core.model.SegmentModel`)."""

    @property
    def mean(self) -> list[float]: ...

    @property
    def std(self) -> list[float]: ...


class RunningScaler:
    """Per-feature mean and variance of the samples learnt, cumulative or exponentially weighted.

    Parameters
    ----------
    n_features
        Length of the vectors learnt.
    halflife
        Half-life in samples of the exponential weighting (None: cumulative mean and variance),
        so the scaling forgets the early, still-filling-up features; the first
        ``1 / (1 − 2^(−1/halflife))`` samples are averaged equally.

    >>> s = RunningScaler(n_features=1, halflife=1.0)  # equal weights for the first 2 samples
    >>> for v in (0.0, 2.0, 4.0):
    ...     s.learn_one(np.asarray([v]))
    >>> s.mean.tolist()  # (0 + 2) / 2, then halfway to 4
    [2.5]
    """

    def __init__(self, n_features: int, halflife: float | None = None) -> None:
        self.n_features = n_features
        self.halflife = halflife
        self.n = 0
        self.mean = np.zeros(n_features)
        self.var = np.zeros(n_features)
        self._m2 = np.zeros(n_features)
        self._alpha = 0.0 if halflife is None else 1.0 - 0.5 ** (1.0 / halflife)

    def learn_one(self, x: Array) -> None:
        """Update the statistics with one vector."""
        self.n += 1
        delta = x - self.mean
        if self._alpha * self.n <= 1.0:  # equal weights until the decay takes over
            self.mean += delta / self.n
            self._m2 += delta * (x - self.mean)
            self.var = self._m2 / max(self.n - 1, 1)
        else:
            self.mean += self._alpha * delta
            self.var = (1.0 - self._alpha) * (self.var + self._alpha * delta * delta)

    def std(self) -> Array:
        """Standard deviations, floored at `stream.core.space.STD_FLOOR`."""
        out: Array = np.maximum(np.sqrt(np.maximum(self.var, 0.0)), STD_FLOOR)
        return out

    def resume(self, scaling: Scaling, n: int) -> None:
        """Continue from a published model's statistics as if ``n`` samples had made them."""
        self.n = n
        self.mean = np.asarray(scaling.mean, dtype=np.float64)
        self.var = np.asarray(scaling.std, dtype=np.float64) ** 2
        self._m2 = self.var * (n - 1)


def scaled(x: Array, mean: Array, std: Array) -> Array:
    """Rows of the clustering space scaled by ``mean`` and ``std``, clipped to ±`Z_CLIP`."""
    out: Array = np.clip((x - mean) / std, -Z_CLIP, Z_CLIP)
    return out


def rescaled(z: Array, prev: Scaling, mean: Array, std: Array) -> Array:
    """Points scaled by ``prev``'s statistics, in the scaling ``mean``, ``std``.

    >>> class Prev:
    ...     mean, std = [1.0], [2.0]
    >>> rescaled(np.asarray([[1.0]]), Prev(), np.asarray([0.0]), np.asarray([1.0])).tolist()
    [[3.0]]
    """
    out: Array = z * (np.asarray(prev.std) / std) + (np.asarray(prev.mean) - mean) / std
    return out
