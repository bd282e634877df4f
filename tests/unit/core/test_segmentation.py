"""Segmentation: stable identities, lifecycle mappings, damping, quiet-customer moves, contracts."""

from __future__ import annotations

import numpy as np
import pytest

from stream.core.features import DAY_MS, NAMES, vector
from stream.core.identity import match_segments, transfer_matrix
from stream.core.model import MicroSegment, Segment, SegmentModel
from stream.core.outputs import SegmentChange, change_id
from stream.core.scoring import Assignment, Scorer
from stream.core.segmentation import (
    DAILY_QUIET,
    Segmenter,
    in_holdout,
    lifecycle_events,
    rescore_due,
)
from stream.core.state import CustomerState
from stream.core.trainer import Trainer

D = len(NAMES)


def _blobs(seed: int, n: int = 600) -> list[list[float]]:
    """Raw feature vectors around three distinct behaviours."""
    rng = np.random.default_rng(seed)
    centres = [
        np.full(D, 0.2),
        np.full(D, 3.0),
        np.r_[np.full(D // 2, 6.0), np.full(D - D // 2, 0.5)],
    ]
    return [list(np.abs(centres[i % 3] + rng.normal(0, 0.15, D))) for i in range(n)]


def _trained(samples: list[list[float]], previous: SegmentModel | None = None) -> Trainer:
    tr = Trainer(n_segments=3, micro_per_segment=2, publish_every=10**9, warmup=10**9, seed=5)
    tr.model = previous
    for i, x in enumerate(samples):
        tr.learn_one(x, t=i)
    tr.publish(t=len(samples))
    return tr


def test_retraining_on_the_same_data_keeps_every_id_and_every_customer() -> None:
    samples = _blobs(1)
    first = _trained(samples).model
    assert first is not None and len(first.segments) == 3
    seg = Segmenter(holdout_share=0.0)
    seg.set_model(first)
    z = first.scale_many(np.asarray(samples[:60]))
    before = seg.scorer.decide_many(first, z, [None] * 60, [0] * 60)
    assert len({a.segment_id for a in before if a}) == 3

    again = _trained(samples, previous=first)  # a fresh trainer, same data, continuing v1
    second = again.model
    assert second is not None and second.version == 2
    matching = again.history[-1]["matching"]
    assert [s.id for s in second.segments] == [s.id for s in first.segments]
    assert not (matching.born or matching.retired or matching.splits or matching.merges)
    assert [[m.id for m in s.micro] for s in second.segments] == [
        [m.id for m in s.micro] for s in first.segments
    ]
    assert lifecycle_events(second, matching)[0].kind == "model_published"
    assert len(lifecycle_events(second, matching)) == 1
    # nobody moves: every customer stays in their segment and micro-segment under v2
    z2 = second.scale_many(np.asarray(samples[:60]))
    after = seg.scorer.decide_many(second, z2, before, [10 * DAY_MS] * 60)
    assert after == [None] * 60


def test_a_split_and_a_birth_are_published_with_their_mappings() -> None:
    old = np.array([[0.0, 0.0], [10.0, 0.0]])
    # old segment 5 (around x = 10) had members at 9 and 13: they now form two segments;
    # a new group far away at y = 20 held no old mass: it is born
    points = np.array([[0.0, 0.0], [9.0, 0.0], [9.5, 0.0], [13.0, 0.0], [13.5, 0.0]])
    new = np.array([[0.0, 0.0], [9.2, 0.0], [13.2, 0.0], [0.0, 20.0]])
    t = transfer_matrix(points, np.ones(5), [0, 1, 1, 1, 1], 2, new)
    m = match_segments([1, 5], old, new, next_id=6, max_distance=2.0, transfer=t)
    assert m.ids == [1, 5, 6, 7] and m.splits == {5: [5, 6]} and m.born == [7]
    model = SegmentModel(
        2, 0, [0.0] * 2, [1.0] * 2,
        [Segment(i, f"S{i}", c.tolist(), [MicroSegment(i, c.tolist())])
         for i, c in zip(m.ids, new, strict=True)],
        8, 8, features=["a", "b"],
    )  # fmt: skip
    events = {e.kind: e for e in lifecycle_events(model, m)}
    assert set(events) == {"model_published", "segment_split", "segment_born"}
    assert events["segment_split"].mapping == {"5": [5, 6]}
    # the segments concerned, each once: the old id is also the first of the mapping's
    assert events["segment_split"].segment_ids == [5, 6]
    assert events["segment_born"].segment_ids == [7] and events["segment_born"].names == {"7": "S7"}
    assert events["model_published"].segment_ids == [1, 5, 6, 7]


def test_a_merge_moves_members_with_reason_model_update() -> None:
    from stream.core.model import transform

    # centroids around where a customer without events lands (identity scaling)
    z0 = np.asarray(transform(vector(CustomerState(last_ts=0, first_ts=0, t0=0), 0)))
    old = z0 + np.array([np.zeros(D), np.full(D, 0.3), np.full(D, 10.0)])
    new = z0 + np.array([np.full(D, 0.1), np.full(D, 10.0)])
    m = match_segments([1, 2, 3], old, new, next_id=4, max_distance=2.0)
    assert m.merges == {2: 1} and m.ids == [1, 3]

    def model(
        version: int, ids: list[int], cs: np.ndarray, reshuffled: list[int] | None = None
    ) -> SegmentModel:
        segs = [Segment(i, f"S{i}", c.tolist(), [MicroSegment(10 + i, c.tolist())])
                for i, c in zip(ids, cs, strict=True)]  # fmt: skip
        return SegmentModel(
            version, 0, [0.0] * D, [1.0] * D, segs, 4, 20, reshuffled=reshuffled or []
        )

    seg = Segmenter(holdout_share=0.0)
    seg.set_model(model(1, [1, 2, 3], old))
    state = CustomerState(last_ts=0, first_ts=0, t0=0)
    stay = CustomerState(last_ts=0, first_ts=0, t0=0)
    assert [c.current.segment_id for c in seg.score([("a", state, 0), ("b", stay, 0)])] == [1, 1]
    state.segment_id, state.micro_id = 2, 12  # as if a v1 customer of segment 2
    seg.set_model(model(2, m.ids, new, sorted(set(m.merges) | set(m.splits))))
    [moved] = seg.score([("a", state, 0), ("b", stay, 0)])  # "b" stays: no event for it
    assert (moved.customer_id, moved.reason, moved.previous.segment_id, moved.current.segment_id) == (
        "a", "model_update", 2, 1)  # fmt: skip
    assert moved.model_version == 2 and state.segment_id == 1 and state.seg_version == 2


def test_flap_damping_needs_both_margin_and_dwell() -> None:
    m = SegmentModel(1, 0, [0.0] * 2, [1.0] * 2,
                     [Segment(1, "A", [0.0, 0.0], [MicroSegment(1, [0.0, 0.0])]),
                      Segment(2, "B", [2.0, 0.0], [MicroSegment(2, [2.0, 0.0])])],
                     3, 3, features=["a", "b"])  # fmt: skip
    sc = Scorer(margin=0.2, min_dwell_days=2)
    a = sc.decide(m, np.array([0.1, 0.0]), None, t=0)
    assert a is not None and a.segment_id == 1
    # just past the midpoint: nearer B, but not by 20 %
    assert sc.decide(m, np.array([1.05, 0.0]), a, t=5 * DAY_MS) is None
    # clearly B, but only a day later
    assert sc.decide(m, np.array([1.9, 0.0]), a, t=DAY_MS) is None
    b = sc.decide(m, np.array([1.9, 0.0]), a, t=3 * DAY_MS)
    assert b is not None and (b.segment_id, b.reason, b.since) == (2, "behaviour", 3 * DAY_MS)


def test_only_a_customer_whose_silence_is_long_enough_is_placed_in_a_lapsed_segment() -> None:
    # segment 2's centroid has been silent for e^(2 × 1.5) − 1 ≈ 19 days: it stands for lapsed
    # customers, whatever its name; the others for none (0 days)
    m = SegmentModel(1, 0, [0.0] * 2, [1.5, 1.0],
                     [Segment(1, "Coupon-driven web customers", [0.0, 0.0],
                              [MicroSegment(1, [0.0, 0.0])]),
                      Segment(2, "Web customers", [2.0, 0.0], [MicroSegment(2, [2.0, 0.0])]),
                      Segment(3, "App loyalists", [0.0, 4.0], [MicroSegment(3, [0.0, 4.0])])],
                     3, 3, features=["recency_activity_days", "b"])  # fmt: skip
    sc = Scorer(margin=0.2, min_dwell_days=2)
    near_lapsed = np.array([[1.9, 0.0]])
    coupon = Assignment(1, 1, 0.0, 0, "")

    def decide(cur: Assignment | None, z: np.ndarray, may: bool, t: int) -> Assignment | None:
        return sc.decide_many(m, z, [cur], [t], may_lapse=np.array([may]))[0]

    # between orders, however lapsed the vector looks: the nearest segment that is not lapsed
    new = decide(None, near_lapsed, False, 0)
    assert new is not None and new.segment_id == 1
    assert decide(coupon, near_lapsed, False, 5 * DAY_MS) is None
    # once the silence is long for their pace, the geometry decides
    gone = decide(coupon, near_lapsed, True, 5 * DAY_MS)
    assert gone is not None and gone.segment_id == 2
    lapsed = Assignment(2, 2, 0.0, 5 * DAY_MS, "")
    # back (a touch: the silence is short again): out of the lapsed segment, margin or not ...
    assert decide(lapsed, np.array([[1.5, 0.0]]), True, 9 * DAY_MS) is None
    back = decide(lapsed, np.array([[1.5, 0.0]]), False, 9 * DAY_MS)
    assert back is not None and back.segment_id == 1
    # ... but not before the minimum dwell
    assert decide(lapsed, np.array([[1.5, 0.0]]), False, 6 * DAY_MS) is None
    # the distances are left alone where nobody is barred or no segment is lapsed
    d = np.array([[1.0, 2.0, 3.0]])
    assert sc.compile(m).bar_lapsed(d, np.array([True])) is d
    plain = SegmentModel(1, 0, [0.0] * 2, [1.5, 1.0], m.segments[:1] + m.segments[2:], 3, 3,
                         features=["recency_activity_days", "b"])  # fmt: skip
    assert sc.compile(plain).bar_lapsed(d[:, :2], np.array([False])).tolist() == [[1.0, 2.0]]


def test_quiet_customers_are_re_evaluated_daily_then_at_doubling_intervals() -> None:
    s = CustomerState(last_ts=0, segment_id=1, scored_at=0)
    seen = []
    for _ in range(DAILY_QUIET + 3):
        due = rescore_due(s, DAY_MS)
        assert due is not None
        seen.append(due // DAY_MS)
        s.scored_at = due
    # every day while the silence is young (whether they lapsed), then 28, 56, 112 days
    assert seen == [*range(1, DAILY_QUIET + 1), 28, 56, 112]
    assert rescore_due(CustomerState(last_ts=0), DAY_MS) is None  # never assigned


def test_changes_are_deterministic_and_versioned() -> None:
    m = SegmentModel(1, 0, [0.0] * D, [1.0] * D,
                     [Segment(1, "Quiet", [-1.0] * D, [MicroSegment(1, [-1.0] * D)]),
                      Segment(2, "Busy", [2.0] * D, [MicroSegment(2, [2.0] * D)])],
                     3, 3)  # fmt: skip
    seg = Segmenter(Scorer(margin=0.1, min_dwell_days=0), holdout_share=0.5)
    seg.set_model(m)
    s = CustomerState(last_ts=0)
    [first] = seg.score([("cust-1", s, 0)])
    assert (first.version, first.reason, first.previous, first.event_id) == (
        1, "new_customer", None, change_id("cust-1", s.first_ts, 1))  # fmt: skip
    assert first.holdout == in_holdout("cust-1", 0.5)
    assert SegmentChange.model_validate_json(first.model_dump_json()) == first
    erased = seg.erased("cust-1", s, 5)
    assert erased is not None and erased.version == 2 and erased.current is None
    assert erased.previous == first.current and erased.explanation == []
    # Erasure keeps nothing, so a customer who comes back counts from 1 again; their ids are
    # their own, not those of their first life (consumers deduplicating by id dropped them).
    back = CustomerState(first_ts=7 * DAY_MS, last_ts=7 * DAY_MS)
    [again] = seg.score([("cust-1", back, 7 * DAY_MS)])
    assert (again.version, again.reason) == (1, "new_customer")
    assert again.event_id not in {first.event_id, erased.event_id}
    replay = Segmenter(Scorer(margin=0.1, min_dwell_days=0), holdout_share=0.5)
    replay.set_model(m)
    [same] = replay.score([("cust-1", CustomerState(first_ts=7 * DAY_MS, last_ts=7 * DAY_MS),
                            7 * DAY_MS)])  # fmt: skip
    assert same.event_id == again.event_id  # the same change replayed: the same id


@pytest.mark.parametrize("share", [0.0, 0.1, 0.5])
def test_holdout_share(share: float) -> None:
    flagged = sum(in_holdout(f"c{i}", share) for i in range(20_000)) / 20_000
    assert abs(flagged - share) < 0.01


def _two(version: int, b_at: float) -> SegmentModel:
    """Segments A at 0 and B at ``b_at`` on the first axis (every other coordinate 0)."""

    def c(x: float) -> list[float]:
        return [x] + [0.0] * (D - 1)

    return SegmentModel(version, 0, [0.0] * D, [1.0] * D,
                        [Segment(1, "A", c(0.0), [MicroSegment(1, c(0.0))]),
                         Segment(2, "B", c(b_at), [MicroSegment(2, c(b_at))])], 3, 3)  # fmt: skip


def test_a_move_only_the_newer_centroids_call_for_does_not_happen() -> None:
    seg = Segmenter(Scorer(margin=0.1, min_dwell_days=0), holdout_share=0.0)
    seg.set_model(_two(1, 4.0))
    z = np.zeros((1, D))
    z[0, 0] = 1.5  # nearer A (1.5) than B (2.5)
    [placed] = seg.scorer.decide_many(seg.model, z, [None], [0])
    assert placed is not None and placed.segment_id == 1
    # v2 moves B to 2.0: the same customer is now nearer B (0.5 against 1.5) by the margin ...
    seg.set_model(_two(2, 2.0))
    assert seg.scorer.decide_many(seg.model, z, [placed], [DAY_MS])[0] is not None
    # ... but under v1 they were not: their behaviour did not change, so they stay
    cm_old = seg.scorer.compile(seg.previous)  # type: ignore[arg-type]
    from stream.core.scoring import distances

    confirm = (cm_old, distances(cm_old.centroids, z))
    seg.scorer.compile(seg.model)  # type: ignore[arg-type]
    assert seg.scorer.decide_many(seg.model, z, [placed], [DAY_MS], confirm=confirm) == [None]
    # a customer who really moved (nearer B under both models) goes
    z2 = z.copy()
    z2[0, 0] = 3.5
    confirm2 = (cm_old, distances(cm_old.centroids, z2))
    [moved] = seg.scorer.decide_many(seg.model, z2, [placed], [DAY_MS], confirm=confirm2)
    assert moved is not None and (moved.segment_id, moved.reason) == (2, "behaviour")


def test_a_move_into_a_segment_the_model_added_says_model_update() -> None:
    """A newborn segment takes the customers nearest it at once (no earlier model can confirm
    such a move); the reason says the model moved them, unless the previous model would have
    moved them out of their segment as well."""
    from stream.core.scoring import Compiled, distances

    def c(x: float) -> list[float]:
        return [x] + [0.0] * (D - 1)

    v1 = SegmentModel(1, 0, [0.0] * D, [1.0] * D,
                      [Segment(1, "A", c(0.0), [MicroSegment(1, c(0.0))]),
                       Segment(2, "B", c(10.0), [MicroSegment(2, c(10.0))])], 3, 3)  # fmt: skip
    v2 = SegmentModel(2, 0, [0.0] * D, [1.0] * D, [*v1.segments,
                      Segment(3, "New", c(4.0), [MicroSegment(3, c(4.0))])], 4, 4)  # fmt: skip
    sc = Scorer(margin=0.1, min_dwell_days=0)
    z = np.zeros((2, D))
    z[0, 0] = 3.5  # in A under v1 (3.5 against 6.5); the newborn is 0.5 away
    z[1, 0] = 5.5  # nearer B than A under v1 by the margin (4.5 against 5.5): moving anyway
    placed = [Assignment(1, 1, 0.0, 0, "new_customer")] * 2
    confirm = (Compiled(v1), distances(Compiled(v1).centroids, z))
    moved = sc.decide_many(v2, z, placed, [DAY_MS, DAY_MS], confirm=confirm)
    assert [(m.segment_id, m.reason) for m in moved if m is not None] == [
        (3, "model_update"), (3, "behaviour")]  # fmt: skip
    # a customer whose own drift detector fired says so, wherever they go
    [drifted] = sc.decide_many(v2, z[:1], placed[:1], [DAY_MS], drifted=[True],
                               confirm=(confirm[0], confirm[1][:1]))  # fmt: skip
    assert drifted is not None and (drifted.segment_id, drifted.reason) == (3, "customer_drift")
    # without a previous model to ask, nothing says the model did it
    alone = sc.decide_many(v2, z, placed, [DAY_MS, DAY_MS])
    assert [(m.segment_id, m.reason) for m in alone if m is not None] == [
        (3, "behaviour"), (3, "behaviour")]  # fmt: skip


def test_the_segmenter_confirms_behavioural_moves_with_the_previous_model() -> None:
    """Through `Segmenter.score` (identity scaling): a customer whose vector did not change is
    moved by nothing but a newer model only when no previous model is there to confirm."""
    from stream.core.model import transform

    s = CustomerState(last_ts=0, first_ts=0, t0=0)
    z0 = np.asarray(transform(vector(s, DAY_MS)))
    e0 = np.eye(D)[NAMES.index("purchases_30d")]

    def model(version: int, b: float) -> SegmentModel:
        a_c, b_c = (z0 - 1.5 * e0).tolist(), (z0 + b * e0).tolist()
        return SegmentModel(version, 0, [0.0] * D, [1.0] * D,
                            [Segment(1, "A", a_c, [MicroSegment(1, a_c)]),
                             Segment(2, "B", b_c, [MicroSegment(2, b_c)])], 3, 3)  # fmt: skip

    seg = Segmenter(Scorer(margin=0.1, min_dwell_days=0), holdout_share=0.0)
    seg.set_model(model(1, 2.5))
    [first] = seg.score([("c", s, 0)])
    assert first.current is not None and first.current.segment_id == 1  # 1.5 against 2.5
    seg.set_model(model(2, 0.5))  # B now 0.5 away: nearer, by far more than the margin
    assert seg.score([("c", s, DAY_MS)]) == [] and s.segment_id == 1
    # the same state and model without a previous one to ask: the model alone moves them
    alone = Segmenter(Scorer(margin=0.1, min_dwell_days=0), holdout_share=0.0)
    alone.set_model(model(2, 0.5))
    [moved] = alone.score([("c", s, DAY_MS)])
    assert moved.current is not None and moved.current.segment_id == 2


def test_customers_first_placed_by_a_model_are_placed_as_they_are_at_its_time() -> None:
    seg = Segmenter(holdout_share=0.0)
    seg.set_model(_two(1, 4.0))
    quiet = CustomerState(last_ts=5, first_ts=0, t0=0)
    assigned = CustomerState(last_ts=5, first_ts=0, t0=0, segment_id=1, micro_id=1)
    rows = seg.reassess([("q", quiet), ("a", assigned)], t=10 * DAY_MS)
    assert rows == [("q", quiet, 10 * DAY_MS)]  # at the model's time, not their last event


def test_the_lapse_grace_sets_how_long_a_silence_must_be_before_a_lapse() -> None:
    """A customer with a session every other day for a month, then silent, scored daily against
    an active and a lapsed segment (their own vectors half a day and 60 days after the last
    session): the geometry calls them lapsed after 13 days, the default grace (4 missed
    touches) lets them go then, a grace of 8 only once 8 touches are missed."""
    import json

    from stream.core.events import parse_event
    from stream.core.facts import apply
    from stream.core.outputs import rfc3339_ms
    from stream.core.space import missed_touches, transform_many

    start = 1_736_121_600_000
    s = CustomerState()
    for i, day in enumerate(range(0, 30, 2)):
        apply(s, parse_event(json.dumps({
            "event_id": f"e{i}", "customer_id": "c", "type": "session_start", "channel": "web",
            "session_id": f"s{i}", "ts": rfc3339_ms(start + day * DAY_MS + 10 * 3_600_000)})))  # fmt: skip
    last = s.last_ts

    def raw(days: float) -> np.ndarray:
        return np.asarray([vector(s, last + int(days * DAY_MS))])

    active, gone = (transform_many(raw(d))[0].tolist() for d in (0.5, 60))
    m = SegmentModel(1, 0, [0.0] * D, [1.0] * D,
                     [Segment(1, "Active", active, [MicroSegment(1, active)]),
                      Segment(2, "Gone", gone, [MicroSegment(2, gone)])], 3, 3)  # fmt: skip

    def lapsed_on(grace: float) -> int:
        seg = Segmenter(Scorer(margin=0.1, min_dwell_days=0, lapse_grace=grace), 0.0)
        seg.set_model(m)
        state = CustomerState(**{f: getattr(s, f) for f in s.__slots__})  # a copy
        seg.score([("c", state, last)])
        assert state.segment_id == 1
        for day in range(1, 40):
            if seg.score([("c", state, last + day * DAY_MS)]):
                assert state.segment_id == 2
                return day
        raise AssertionError("never lapsed")

    default, patient = lapsed_on(4.0), lapsed_on(8.0)
    assert default == 13 and missed_touches(raw(default))[0] >= 4
    assert patient > default
    assert missed_touches(raw(patient - 1))[0] < 8 <= missed_touches(raw(patient))[0]
