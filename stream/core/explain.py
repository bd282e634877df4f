"""Explanations: the few features that place a customer in their segment.

A feature explains the assignment when the customer and their segment's centroid both sit on the
same side of the population on it, far from it: the score is ``z_customer × z_centroid``
(both in standard deviations of the population). The top ``k`` positive scores are reported with
the customer's raw value and their own distance from the population; if nothing agrees (a
customer on the edge of their segment), the customer's most extreme features are reported.

>>> from stream.core.features import NAMES
>>> z = np.zeros(len(NAMES)); c = np.zeros(len(NAMES))
>>> z[NAMES.index("share_app")], c[NAMES.index("share_app")] = 2.0, 1.5
>>> z[NAMES.index("spend_30d")], c[NAMES.index("spend_30d")] = 1.0, 1.2
>>> raw = [0.0] * len(NAMES); raw[NAMES.index("share_app")] = 0.9
>>> [(r.feature, r.value, r.z) for r in explain(z, c, raw, k=2)]
[('share_app', 0.9, 2.0), ('spend_30d', 0.0, 1.0)]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from stream.core.features import NAMES
from stream.core.outputs import Reason

Array = NDArray[np.float64]


def _round(x: float, digits: int) -> float:
    v = float(f"{x:.{digits}g}")
    return 0.0 if v == 0 else v


def explain(z: Array, centroid: Array, raw: Sequence[float], k: int = 3) -> list[Reason]:
    """The ``k`` features that best explain why scaled vector ``z`` belongs to ``centroid``."""
    score = z * centroid
    order = np.lexsort((np.arange(len(z)), -score))  # ties: catalogue order
    chosen = [int(j) for j in order[:k] if score[j] > 0]
    if not chosen:
        chosen = [int(j) for j in np.lexsort((np.arange(len(z)), -np.abs(z)))[:k]]
    return [
        Reason(feature=NAMES[j], value=_round(raw[j], 6), z=round(float(z[j]), 2)) for j in chosen
    ]
