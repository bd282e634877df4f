"""Segment names (`stream.core.naming`) and the scorer's lapsed segments: one answer.

A consumer-side audit found a segment named "Lapsed" (suggested action: a win-back offer) whose
members' median silence was 2.6 days, for ten model versions, while the scorer did not count it
as lapsed customers: the name came from recency relative to the population, the scorer's rule
from days (`stream.core.space.lapsed_segments`).
"""

from __future__ import annotations

import numpy as np

from stream.core.features import NAMES
from stream.core.naming import describe
from stream.core.scoring import Compiled
from stream.core.snapshot import next_version

J = NAMES.index("recency_activity_days")


def test_the_scorer_s_answer_decides_the_lapsed_name() -> None:
    z = dict.fromkeys(NAMES, 0.0)
    z.update(recency_activity_days=1.8, sessions_30d=-0.8, purchases_30d=-0.9)
    assert describe(z)["name"] == "Lapsed"  # no answer given: the z-scores alone
    assert describe(z, lapsed=True)["action"] == "win-back offer with a time limit"
    quiet = describe(z, lapsed=False)
    assert quiet["name"] == "Quiet customers"
    assert quiet["action"] == "a reminder of what is new, no discount yet"
    z["recency_activity_days"] = 0.3  # silent for days, in a population as silent
    assert describe(z, lapsed=True)["name"] == "Lapsed"
    assert not describe(z, lapsed=False)["name"].startswith(("Lapsed", "Quiet"))


def test_a_snapshot_names_lapsed_exactly_the_segments_the_scorer_counts_as_lapsed() -> None:
    mean, std = np.zeros(len(NAMES)), np.ones(len(NAMES))
    mean[J], std[J] = np.log1p(2.0), 0.5  # the population: 2 days since its last touch
    quiet = NAMES.index("sessions_30d")
    centroids = np.zeros((3, len(NAMES)))
    centroids[1, J], centroids[1, quiet] = 1.5, -1.0  # 5.3 days: quieter than most, not lapsed
    centroids[2, J], centroids[2, quiet] = 3.0, -1.0  # 12.4 days: lapsed
    pts = np.repeat(centroids, 4, axis=0)
    labels = [0] * 4 + [1] * 4 + [2] * 4
    model, _ = next_version(None, centroids, labels, pts, np.ones(len(pts)), mean, std, t=0,
                            seed=1, micro_per_segment=1, match_distance=1.0)  # fmt: skip
    lapsed = Compiled(model).lapsed.tolist()
    assert lapsed == [False, False, True]
    names = [s.name for s in model.segments]
    assert [n.startswith("Lapsed") for n in names] == lapsed
    assert names[1] == "Quiet customers"
