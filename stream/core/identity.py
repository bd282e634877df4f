"""Stable segment identity across model versions.

When the trainer derives a new set of segment centroids, each is matched to the previous
version's by an optimal assignment (Hungarian algorithm on centroid distances). Matched segments
keep their ids; ids are never reused. What is left over is explained with a transfer matrix: how
much of each old segment's mass (its micro-clusters or members, weighted) now lies nearest each
new centroid:

* an unmatched old and an unmatched new segment that hold most of each other's mass (more than
  half of the old one's went to the new one, and more than half of the new one's came from it)
  are the same segment, moved farther than ``max_distance``: it keeps its id (a newborn
  segment's centroid moves fast while its members' features fill up); with ``follow`` (the
  trainer's segments), so does an unmatched old segment more than half of whose mass went to one
  unmatched new segment, wherever the rest of that one's mass came from (a newborn whose region
  the next version also drew from a neighbour is that segment grown, not the neighbour's split);
* an unmatched new segment that received at least ``share`` of a matched old segment's mass is a
  **split** of that segment (old → [old, new]);
* an unmatched old segment that sent at least ``share`` of its mass to one matched new segment is
  **merged** into it;
* any other new segment is **born** (its region held little old mass); any other old segment is
  **retired**.

>>> old = np.array([[0.0, 0.0], [10.0, 0.0]])
>>> new = np.array([[10.2, 0.1], [0.1, -0.1], [0.0, 9.0]])
>>> r = match_segments([7, 3], old, new, next_id=8, max_distance=2.0)
>>> r.ids, r.born, r.retired
([3, 7, 8], [8], [])
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.float64]


def hungarian(cost: Array) -> list[tuple[int, int]]:
    """Minimum-cost assignment of rows to columns of a (rectangular) cost matrix.

    Returns ``(row, column)`` pairs, ``min(n_rows, n_cols)`` of them, sorted by row.

    >>> hungarian(np.array([[4.0, 1.0, 3.0], [2.0, 0.0, 5.0], [3.0, 2.0, 2.0]]))
    [(0, 1), (1, 0), (2, 2)]
    """
    n_rows, n_cols = cost.shape
    transposed = n_rows > n_cols
    c = cost.T if transposed else cost
    n, m = c.shape  # n <= m
    inf = float("inf")
    u = [0.0] * (n + 1)
    v = [0.0] * (m + 1)
    p = [0] * (m + 1)  # p[j]: row (1-based) assigned to column j
    way = [0] * (m + 1)
    for i in range(1, n + 1):
        p[0] = i
        j0 = 0
        minv = [inf] * (m + 1)
        used = [False] * (m + 1)
        while True:
            used[j0] = True
            i0 = p[j0]
            delta = inf
            j1 = 0
            for j in range(1, m + 1):
                if not used[j]:
                    cur = float(c[i0 - 1, j - 1]) - u[i0] - v[j]
                    if cur < minv[j]:
                        minv[j] = cur
                        way[j] = j0
                    if minv[j] < delta:
                        delta = minv[j]
                        j1 = j
            for j in range(m + 1):
                if used[j]:
                    u[p[j]] += delta
                    v[j] -= delta
                else:
                    minv[j] -= delta
            j0 = j1
            if p[j0] == 0:
                break
        while True:
            j1 = way[j0]
            p[j0] = p[j1]
            j0 = j1
            if j0 == 0:
                break
    pairs = [(p[j] - 1, j - 1) for j in range(1, m + 1) if p[j] != 0]
    if transposed:
        pairs = [(b, a) for a, b in pairs]
    return sorted(pairs)


@dataclass
class Matching:
    """The outcome of matching a new model's segments to the previous version's."""

    ids: list[int]
    """The id of each new segment, in the new model's order."""
    next_id: int
    """The next unused id."""
    kept: dict[int, int] = field(default_factory=dict)
    """Old id → the same id in the new model (matched)."""
    born: list[int] = field(default_factory=list)
    retired: list[int] = field(default_factory=list)
    splits: dict[int, list[int]] = field(default_factory=dict)
    """Old id → the new ids it split into (itself included)."""
    merges: dict[int, int] = field(default_factory=dict)
    """Old id → the new id it merged into."""


def transfer_matrix(
    points: Array, weights: Array, labels: list[int], n_old: int, new: Array
) -> Array:
    """``T[i, j]``: weight of old points (labelled with old segment ``i``) nearest new centroid ``j``."""
    t = np.zeros((n_old, len(new)))
    if len(new) == 0 or len(points) == 0:
        return t
    d = ((points[:, None, :] - new[None, :, :]) ** 2).sum(axis=2)
    nearest = d.argmin(axis=1)
    for k, (i, j) in enumerate(zip(labels, nearest.tolist(), strict=True)):
        t[i, j] += float(weights[k])
    return t


def match_segments(
    old_ids: list[int],
    old: Array,
    new: Array,
    next_id: int,
    max_distance: float,
    transfer: Array | None = None,
    share: float = 0.3,
    follow: bool = False,
) -> Matching:
    """Give each new centroid an id, keeping the old ids of matched segments.

    Parameters
    ----------
    old_ids, old
        The previous version's segment ids and centroids (scaled space).
    new
        The new centroids.
    next_id
        The smallest id never used so far.
    max_distance
        Matched pairs farther apart than this are not the same segment.
    transfer
        ``T[old, new]`` mass transfer (`transfer_matrix`); defaults to the old centroids
        themselves, weight 1 each.
    share
        The share of an old segment's mass that makes a split or a merge.
    follow
        Also keep an unmatched old segment's id on the unmatched new one that holds more than
        half of its mass, even if most of the new one's mass came from elsewhere (the trainer's
        segments; micro-segments keep the stricter rule).
    """
    n_old, n_new = len(old_ids), len(new)
    ids: list[int | None] = [None] * n_new
    result = Matching(ids=[], next_id=next_id)
    if n_old and n_new:
        cost = np.sqrt(((old[:, None, :] - new[None, :, :]) ** 2).sum(axis=2))
        for i, j in hungarian(cost):
            if cost[i, j] <= max_distance:
                ids[j] = old_ids[i]
                result.kept[old_ids[i]] = old_ids[i]
    if transfer is None:
        transfer = transfer_matrix(old, np.ones(n_old), list(range(n_old)), n_old, new)
    row_mass = transfer.sum(axis=1) if n_old else np.zeros(0)
    col_mass = transfer.sum(axis=0) if n_old else np.zeros(n_new)
    free_old = [i for i in range(n_old) if old_ids[i] not in result.kept]
    for i in free_old:  # a row and a column each hold a majority with one partner at most
        for j in range(n_new):
            mass = float(transfer[i, j])
            if ids[j] is None and mass > 0.5 * row_mass[i] and mass > 0.5 * col_mass[j]:
                ids[j] = old_ids[i]
                result.kept[old_ids[i]] = old_ids[i]
    for i in free_old if follow else ():  # most of an old one's mass went to one new one
        if old_ids[i] in result.kept or row_mass[i] <= 0:
            continue
        j = int(transfer[i].argmax())
        if ids[j] is None and float(transfer[i, j]) > 0.5 * row_mass[i]:
            ids[j] = old_ids[i]
            result.kept[old_ids[i]] = old_ids[i]
    matched_old = {old_ids.index(k) for k in result.kept}
    for j in range(n_new):
        if ids[j] is not None:
            continue
        new_id = result.next_id
        ids[j] = new_id
        result.next_id += 1
        parents = [
            i
            for i in sorted(matched_old)
            if row_mass[i] > 0 and transfer[i, j] >= share * row_mass[i]
        ]
        if parents:
            parent = old_ids[max(parents, key=lambda i: float(transfer[i, j]))]
            result.splits.setdefault(parent, [parent]).append(new_id)
        else:
            result.born.append(new_id)
    new_ids = [int(x) for x in ids if x is not None]
    for i, oid in enumerate(old_ids):
        if oid in result.kept:
            continue
        row = transfer[i, :]
        total = float(row.sum())
        dst = int(row.argmax()) if total > 0 else -1
        if dst >= 0 and row[dst] >= share * total and new_ids[dst] in result.kept:
            result.merges[oid] = new_ids[dst]
        else:
            result.retired.append(oid)
    result.ids = new_ids
    return result
