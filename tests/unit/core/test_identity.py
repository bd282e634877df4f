"""Stable identity: optimal matching, births, retirements, splits and merges."""

from __future__ import annotations

import itertools

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from stream.core.identity import hungarian, match_segments, transfer_matrix


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 6), st.integers(1, 6), st.integers(0, 2**32 - 1))
def test_hungarian_is_optimal(n: int, m: int, seed: int) -> None:
    cost = np.random.default_rng(seed).random((n, m))
    pairs = hungarian(cost)
    assert len(pairs) == min(n, m)
    assert len({i for i, _ in pairs}) == len(pairs) == len({j for _, j in pairs})
    k = min(n, m)
    best = min(
        sum(cost[r, c] for r, c in zip(rows, cols, strict=True))
        for rows in itertools.combinations(range(n), k)
        for cols in itertools.permutations(range(m), k)
    )
    assert abs(sum(cost[i, j] for i, j in pairs) - best) < 1e-9


def test_the_same_centroids_in_another_order_keep_every_id() -> None:
    old = np.array([[0.0, 0.0], [5.0, 5.0], [10.0, 0.0]])
    r = match_segments([4, 9, 2], old, old[[2, 0, 1]], next_id=10, max_distance=0.5)
    assert r.ids == [2, 4, 9]
    assert r.next_id == 10
    assert not (r.born or r.retired or r.splits or r.merges)


def test_a_split_is_published_with_its_mapping() -> None:
    old = np.array([[0.0, 0.0], [10.0, 0.0]])
    # old segment 1 (id 5) had members around x = 9 and x = 13; they now form two segments
    points = np.array([[0.0, 0.0], [9.0, 0.0], [9.5, 0.0], [13.0, 0.0], [13.5, 0.0]])
    labels = [0, 1, 1, 1, 1]
    new = np.array([[0.0, 0.0], [9.2, 0.0], [13.2, 0.0]])
    t = transfer_matrix(points, np.ones(5), labels, 2, new)
    r = match_segments([1, 5], old, new, next_id=6, max_distance=2.0, transfer=t)
    assert r.ids == [1, 5, 6]
    assert r.splits == {5: [5, 6]}
    assert not r.born and not r.retired


def test_a_birth_in_an_empty_region_and_ids_never_reused() -> None:
    old = np.array([[0.0, 0.0], [10.0, 0.0]])
    new = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 20.0]])
    r = match_segments([1, 2], old, new, next_id=7, max_distance=1.0)
    assert r.ids == [1, 2, 7] and r.born == [7] and r.next_id == 8


def test_a_merge_and_a_retirement() -> None:
    old = np.array([[0.0, 0.0], [1.5, 0.0], [30.0, 30.0]])
    points = np.array([[0.0, 0.0], [1.5, 0.0], [1.6, 0.0], [30.0, 30.0]])
    labels = [0, 1, 1, 2]
    new = np.array([[0.5, 0.0], [60.0, -60.0]])
    t = transfer_matrix(points, np.array([1.0, 1.0, 1.0, 0.0]), labels, 3, new)
    r = match_segments([3, 4, 5], old, new, next_id=6, max_distance=1.0, transfer=t)
    assert r.ids[0] == 3  # the nearer old segment keeps its id
    assert r.merges == {4: 3}
    assert r.retired == [5]
    assert r.born == [6]


def test_a_segment_that_moved_far_but_kept_its_members_keeps_its_id() -> None:
    # a newborn segment's members fill their features up: its centroid moves farther than the
    # match distance, but everything it held is still nearest it
    old = np.array([[0.0, 0.0], [10.0, 0.0]])
    points = np.array([[0.0, 0.0], [0.3, 0.0], [10.0, 0.0], [10.5, 0.0]])
    new = np.array([[0.1, 0.0], [14.0, 0.0]])
    t = transfer_matrix(points, np.ones(4), [0, 0, 1, 1], 2, new)
    r = match_segments([1, 2], old, new, next_id=3, max_distance=2.0, transfer=t)
    assert r.ids == [1, 2] and r.next_id == 3
    assert not (r.born or r.retired or r.splits or r.merges)
    # when most of what lies nearest the new centroid came from another segment, it is that
    # segment's split, and the old segment is retired
    points = np.array([[0.0, 0.0], [0.3, 0.0], [10.0, 0.0], [13.0, 0.0], [13.5, 0.0]])
    t = transfer_matrix(points, np.ones(5), [0, 0, 1, 0, 0], 2, new)
    r = match_segments([1, 2], old, new, next_id=3, max_distance=2.0, transfer=t)
    assert r.ids == [1, 3] and r.splits == {1: [1, 3]} and r.retired == [2] and not r.born
    # the trainer's segments follow the old one there instead: all of its mass went to the new
    # centroid, so the new one is that segment grown (a newborn whose region the next version
    # drew from its neighbour too), not a split with the newborn retired in the same version
    r = match_segments([1, 2], old, new, next_id=3, max_distance=2.0, transfer=t, follow=True)
    assert r.ids == [1, 2] and r.next_id == 3
    assert not (r.born or r.retired or r.splits or r.merges)
