"""The next model version: derived centroids made into a published snapshot.

The trainer decides where the segments lie (`stream.core.trainer`); this gives them what a
scorer and a marketer need: ids carried over from the previous version (`stream.core.identity`,
the previous centroids and micro-segments moved into the new scaling, so only behaviour counts),
micro-segments inside each segment (a seeded k-means of its members, their ids matched the same
way), names, traits, value tiers and suggested actions (`stream.core.naming`), and the version.

>>> from stream.core.features import FEATURES
>>> pts = np.zeros((4, len(FEATURES)))
>>> pts[1, 0], pts[2:, 1] = 0.2, 2.0  # two near the population's centre, two apart
>>> w, mean, std = np.ones(4), np.zeros(len(FEATURES)), np.ones(len(FEATURES))
>>> first, _ = next_version(None, pts[[0, 2]], [0, 0, 1, 1], pts, w, mean, std, t=0,
...                         seed=1, micro_per_segment=1, match_distance=1.0)
>>> [s.id for s in first.segments], first.version
([1, 2], 1)
>>> again, m = next_version(first, pts[[2, 0]], [1, 1, 0, 0], pts, w, mean, std, t=1,
...                         seed=1, micro_per_segment=1, match_distance=1.0)
>>> [s.id for s in again.segments], again.version, m.born  # the same two, the other way round
([2, 1], 2, [])
>>> [s.name for s in again.segments] == [s.name for s in first.segments][::-1]
True
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from stream.core.features import NAMES
from stream.core.identity import Matching, match_segments, transfer_matrix
from stream.core.kmeans import best_kmeans
from stream.core.model import MicroSegment, Segment, SegmentModel
from stream.core.naming import name_segments
from stream.core.scaler import rescaled
from stream.core.space import lapsed_segments

Array = NDArray[np.float64]


def next_version(
    prev: SegmentModel | None,
    centroids: Array,
    labels: list[int],
    points: Array,
    weights: Array,
    mean: Array,
    std: Array,
    t: int,
    *,
    seed: int,
    micro_per_segment: int,
    match_distance: float,
) -> tuple[SegmentModel, Matching | None]:
    """The version after ``prev`` (None: the first) with segments at ``centroids``.

    Parameters
    ----------
    prev
        The previous version, or None.
    centroids, labels
        The segments' centroids and each point's segment, in the scaling ``mean``, ``std``.
    points, weights
        The samples the centroids were fitted on (scaled) and their weights.
    mean, std
        The new version's scaling.
    t
        Event time of the publish (``trained_at``).
    seed
        Seed of the micro-segments' k-means (segment ``j``'s is ``seed + j + 1``).
    micro_per_segment
        Micro-segments per segment (at most).
    match_distance
        Scaled distance within which a centroid keeps an old segment's (or micro-segment's) id.

    Returns
    -------
    The model, and how its segments were matched to ``prev``'s (None for the first version).
    """
    if prev is None:
        ids = list(range(1, len(centroids) + 1))
        next_id = len(centroids) + 1
        matching = None
    else:
        old = rescaled(prev.centroids(), prev, mean, std)
        old_points = rescaled(
            np.asarray([m.centroid for s in prev.segments for m in s.micro]), prev, mean, std
        )
        old_w = np.asarray(
            [s.weight / max(len(s.micro), 1) for s in prev.segments for m in s.micro]
        )
        old_labels = [i for i, s in enumerate(prev.segments) for _ in s.micro]
        tm = transfer_matrix(old_points, old_w, old_labels, len(old), centroids)
        matching = match_segments(
            [s.id for s in prev.segments],
            old,
            centroids,
            prev.next_segment_id,
            match_distance,
            tm,
            follow=True,
        )
        ids, next_id = matching.ids, matching.next_id
    next_micro = prev.next_micro_id if prev else 1
    segments = []
    for j, c in enumerate(centroids):
        mask = np.asarray(labels) == j
        if mask.any():
            sub_c, _ = best_kmeans(points[mask], weights[mask], micro_per_segment, seed + j + 1, 3)
        else:  # a refined previous centroid that no micro-cluster is nearest to any more
            sub_c = c[None, :]
        old_seg = prev.segment(ids[j]) if prev else None
        micro_ids, next_micro = _micro_ids(old_seg, sub_c, next_micro, match_distance)
        micro = [MicroSegment(mid, mc.tolist()) for mid, mc in zip(micro_ids, sub_c, strict=True)]
        segments.append(Segment(ids[j], "", c.tolist(), micro, weight=float(weights[mask].sum())))
    centroid_list = [s.centroid for s in segments]
    grid = np.asarray(centroid_list, dtype=np.float64).reshape(len(centroid_list), len(NAMES))
    lapsed = lapsed_segments(grid, mean.tolist(), std.tolist(), NAMES)
    named = name_segments(centroid_list, ids, [bool(x) for x in lapsed])
    for seg, d in zip(segments, named, strict=True):
        seg.name, seg.traits, seg.value_tier, seg.action = (
            d["name"],
            d["traits"],
            d["value_tier"],
            d["action"],
        )
    model = SegmentModel(
        version=(prev.version + 1) if prev else 1,
        trained_at=t,
        mean=mean.tolist(),
        std=std.tolist(),
        segments=segments,
        next_segment_id=next_id,
        next_micro_id=next_micro,
        reshuffled=sorted(set(matching.merges) | set(matching.splits)) if matching else [],
    )
    return model, matching


def _micro_ids(
    old: Segment | None, centroids: Array, next_id: int, max_distance: float
) -> tuple[list[int], int]:
    """Ids of a segment's micro-segments at ``centroids``: matched to ``old``'s, new ones from
    ``next_id``; and the next unused id."""
    if old is None or not old.micro:
        ids = list(range(next_id, next_id + len(centroids)))
        return ids, next_id + len(centroids)
    prev = np.asarray([m.centroid for m in old.micro])
    r = match_segments([m.id for m in old.micro], prev, centroids, next_id, max_distance)
    return r.ids, r.next_id
