"""The worker's segmentation pieces: schedule sampling, sample collation, per-partition assigner."""

from __future__ import annotations

import json
import random

from stream.core.assigner import Assigner
from stream.core.collate import Collator, SampleReport
from stream.core.engine import Engine
from stream.core.events import Stream
from stream.core.features import FEATURES, NAMES
from stream.core.ingest import Ingest, RawRecord
from stream.core.model import MicroSegment, Segment, SegmentModel
from stream.core.schedule import DAY_MS, Schedule, training_flags
from stream.core.segment_stage import SegmentationStage
from stream.core.segmentation import Segmenter
from stream.core.state import CustomerState
from stream.core.trainer import Trainer

N = len(FEATURES)


def model(version: int, ids: list[int]) -> SegmentModel:
    segs = [
        Segment(i, f"S{i}", [float(k)] * N, [MicroSegment(100 + i, [float(k)] * N)])
        for k, i in enumerate(ids)
    ]
    return SegmentModel(version, 0, [0.0] * N, [1.0] * N, segs, max(ids) + 1, 200)


def test_daily_sample_is_the_same_whatever_the_order_and_partitioning() -> None:
    customers = [f"c{i}" for i in range(2000)]
    whole = Schedule(seed=3, sample_rate=0.1, max_daily_samples=10_000)
    for c in customers:
        whole.seen(c, 0)
    shuffled = customers[:]
    random.Random(1).shuffle(shuffled)
    parts = [Schedule(seed=3, sample_rate=0.1, max_daily_samples=10_000) for _ in range(4)]
    for c in shuffled:
        parts[hash(c) % 4].seen(c, 0)
    day = 5 * DAY_MS
    union = sorted(kc for p in parts for kc in p.sample_keyed(day))
    assert union == whole.sample_keyed(day)
    assert 150 <= len(union) <= 250  # about 10 % of 2,000
    assert whole.sample(day) != whole.sample(6 * DAY_MS), "another day, another sample"


def test_sample_leaves_out_customers_quiet_beyond_the_horizon() -> None:
    sch = Schedule(seed=1, sample_rate=1.0, horizon_days=10)
    sch.seen("old", 0)
    sch.seen("recent", 15 * DAY_MS)
    assert sch.sample(20 * DAY_MS) == ["recent"]


def test_collator_restores_one_order_whatever_the_arrival_order() -> None:
    rng = random.Random(7)
    reports = [
        SampleReport(p, d * DAY_MS, [(rng.randrange(2**64), [float(p)] * N) for _ in range(3)])
        for d in range(1, 6)
        for p in range(3)
    ]
    outputs = []
    for seed in range(5):  # partitions interleave at random; each reports its days in order
        queues = [[r for r in reports if r.partition == p] for p in range(3)]
        order, pick = [], random.Random(seed)
        while any(queues):
            order.append(pick.choice([q for q in queues if q]).pop(0))
        col, out = Collator(partitions=3, max_lag_days=100), []
        for r in order:
            out += col.add(r)
        outputs.append(out)
    assert all(o == outputs[0] for o in outputs)
    days = [d for d, _, _ in outputs[0]]
    assert days == sorted(days) and len(days) == 5 * 9, "each day once every partition sent it"


def test_collator_does_not_wait_for_an_idle_partition_and_drops_repeats() -> None:
    col = Collator(partitions=2, max_lag_days=2)
    one = SampleReport(0, DAY_MS, [(1, [1.0] * N)])
    assert col.add(one) == [] and col.add(one) == []
    assert col.add(SampleReport(0, 2 * DAY_MS)) == []
    assert col.add(SampleReport(0, 3 * DAY_MS)) == [(DAY_MS, [1.0] * N, True)]
    late = col.add(SampleReport(1, DAY_MS, [(2, [2.0] * N)]))
    assert late == [(DAY_MS, [2.0] * N, True)] and col.late == 1


def test_collator_flags_the_training_part_of_the_merged_day_as_offline() -> None:
    """Over the partitions' merged day, the smallest keys below the sample rate train (at most
    the daily cap); the rest only feed the drift detectors — as `training_flags` offline."""
    limit = 2**62  # sample rate 0.25
    col = Collator(partitions=2, sample_rate=0.25, max_daily_samples=2)
    col.add(SampleReport(0, DAY_MS, [(limit + 5, [1.0] * N), (3, [2.0] * N)]))
    out = col.add(SampleReport(1, DAY_MS, [(1, [3.0] * N), (2, [4.0] * N), (limit + 1, [5.0] * N)]))
    assert [(v[0], train) for _, v, train in out] == [
        (3.0, True), (4.0, True), (2.0, False), (5.0, False), (1.0, False)
    ]  # fmt: skip
    keys = [1, 2, 3, limit + 1, limit + 5]
    assert training_flags(keys, 0.25, 2) == [train for _, _, train in out]


def test_report_round_trips_and_bad_records_are_refused() -> None:
    r = SampleReport(2, DAY_MS, [(9, [0.5] * N)])
    assert SampleReport.decode(r.encode()) == r
    for bad in (b"[]", b'{"partition":1}', b'{"partition":1,"day":0,"samples":[[1,[1.0]]]}',
                b"not json"):  # fmt: skip
        try:
            SampleReport.decode(bad)
        except ValueError:
            continue
        raise AssertionError(f"accepted {bad!r}")


def test_assigner_scores_updates_reassesses_on_a_new_model_and_rescores_quiet_customers() -> None:
    seg = Segmenter(holdout_share=0.0)
    a = Assigner(seg, sample_rate=1.0, idle_days=1.0)
    store = {f"c{i}": CustomerState(last_ts=i, first_ts=i, t0=i) for i in range(3)}
    a.adopt(0, store.items())
    step = a.step(0, {"c0": store["c0"]}, 10, store.get, emitted_at=0)
    assert step.changes == [], "no model yet: nothing to say"
    seg.set_model(model(1, [1, 2]))
    step = a.step(0, {"c0": store["c0"]}, 20, store.get, emitted_at=0)
    assert sorted(c.customer_id for c in step.changes) == ["c0", "c1", "c2"]
    assert {c.reason for c in step.changes} == {"new_customer"}
    assert set(step.states) == {"c0", "c1", "c2"}, "every scored state is written back"
    # Two days later the watermark (moved by another customer) re-evaluates the quiet ones.
    store["c9"] = CustomerState(last_ts=2 * DAY_MS + 5, first_ts=5, t0=5)
    step = a.step(0, {"c9": store["c9"]}, 2 * DAY_MS + 5, store.get, emitted_at=0)
    # c0 (scored at its event, at 0) is due at day 1 and again a day later (every idle day while
    # its silence is young); c1, c2 (placed at the watermark, 20 ms) at day 2.
    assert step.rescored == 4 and {"c0", "c1", "c2"} <= set(step.states)
    assert [r.day for r in step.reports] == [DAY_MS, 2 * DAY_MS]
    assert all(r.partition == 0 for r in step.reports)
    assert sum(len(r.samples) for r in step.reports) == 4 + 4  # rate 1.0: every recent customer
    assert store["c0"].scored_at == 2 * DAY_MS


def test_assigner_moves_members_of_a_retired_segment_when_the_model_changes() -> None:
    seg = Segmenter(holdout_share=0.0)
    a = Assigner(seg)
    seg.set_model(model(1, [1, 2]))
    store = {"c0": CustomerState(last_ts=0, first_ts=0, t0=0, segment_id=2, micro_id=102)}
    a.adopt(0, store.items())
    a.step(0, {}, 0, store.get, emitted_at=0)
    seg.set_model(model(2, [1, 3]))
    step = a.step(0, {}, 1, store.get, emitted_at=0)
    assert [(c.previous.segment_id, c.reason) for c in step.changes if c.previous] == [
        (2, "segment_retired")
    ]
    assert store["c0"].segment_id in (1, 3)


def test_a_model_reaches_the_members_of_a_partition_without_new_events() -> None:
    seg = Segmenter(holdout_share=0.0)
    a = Assigner(seg)
    seg.set_model(model(1, [1, 2]))
    last = 7 * DAY_MS - 5  # active until just before the step: none is due for re-evaluation
    store = {f"c{i}": CustomerState(last_ts=last, first_ts=0, t0=0, segment_id=2, micro_id=102)
             for i in range(3)}  # fmt: skip
    a.adopt(0, store.items())
    a.adopt(1, [])
    a.step(0, {}, 7 * DAY_MS, store.get, emitted_at=0)
    assert a.stale() == []  # partition 1 has never been stepped: nothing to catch up
    seg.set_model(model(2, [1, 3]))  # segment 2 dropped while partition 0 gets no events
    assert a.stale() == [0]
    step = a.catch_up(0, store.get, emitted_at=9)
    assert sorted(c.customer_id for c in step.changes) == ["c0", "c1", "c2"]
    assert {c.reason for c in step.changes} == {"segment_retired"}
    assert {c.event_time for c in step.changes} == {"1970-01-08T00:00:00.000Z"}  # the watermark
    assert set(step.states) == set(store) and a.stale() == []
    assert a.segment_sizes() == {3: 3} or a.segment_sizes() == {1: 3}
    assert a.catch_up(0, store.get, emitted_at=9).changes == []  # once per model version


def test_an_adopted_partition_keeps_its_day_clock_from_its_newest_event() -> None:
    # After a restart or a rebalance, the first day boundary a batch passes is sampled like any
    # other (the clock does not restart at the batch's newest event, skipping that day).
    a = Assigner(Segmenter(holdout_share=0.0), sample_rate=1.0)
    store = {"c0": CustomerState(last_ts=3 * DAY_MS + 600_000, first_ts=0, t0=0)}
    a.adopt(0, store.items())
    assert a.passes_day(0, 4 * DAY_MS + 1_800_000), "the first event after midnight passes it"
    step = a.step(0, {}, 4 * DAY_MS + 1_800_000, store.get, emitted_at=0)
    assert [(r.day, len(r.samples)) for r in step.reports] == [(4 * DAY_MS, 1)]
    a.adopt(1, [])  # a partition without customers starts its clock at its first event ...
    assert a.passes_day(1, 9 * DAY_MS + 5)
    opened = a.step(1, {}, 9 * DAY_MS + 5, store.get, emitted_at=0)
    # ... and reports the boundary before it passed, with no sample: the trainer's collator,
    # which waits for every partition to pass a day, then knows it is there.
    assert [(r.partition, r.day, r.samples, r.touches) for r in opened.reports] == [
        (1, 9 * DAY_MS, [], None)]  # fmt: skip
    assert not a.passes_day(1, 10 * DAY_MS - 1) and a.passes_day(1, 10 * DAY_MS)
    assert [r.day for r in a.step(1, {}, 10 * DAY_MS, store.get, emitted_at=0).reports] == [
        10 * DAY_MS]  # fmt: skip


def test_laggards_are_partitions_behind_another() -> None:
    # The worker's partitions passed days up to 5 (partition 0), 3 (1), 4 (2) and 1 (3).
    a = Assigner(Segmenter(holdout_share=0.0), sample_rate=1.0)
    for p, day in enumerate([5, 3, 4, 1]):
        a.adopt(p, [])
        a.step(p, {}, day * DAY_MS + 60_000, {}.get, emitted_at=0)  # its first event: the clock
    assert [a.schedules[p].next_day for p in range(4)] == [6 * DAY_MS, 4 * DAY_MS, 5 * DAY_MS,
                                                           2 * DAY_MS]  # fmt: skip
    every = {p: 9 * DAY_MS for p in range(4)}  # each may go up to day 9 (its next records)
    # Each one behind day 5 steps up to it, partition 3 too, though the trainer may have learnt
    # days 2 to 4 without it: its collator waits for it again at the next day.
    assert a.laggards(every) == {1: 5 * DAY_MS, 2: 5 * DAY_MS, 3: 5 * DAY_MS}
    assert a.laggards({1: 4 * DAY_MS + 7}) == {1: 4 * DAY_MS + 7}  # its limit
    assert a.laggards({1: 4 * DAY_MS - 1}) == {}  # no boundary before it
    step = a.step(1, {}, 5 * DAY_MS, {}.get, emitted_at=0)  # as `step_paced` does
    assert [r.day for r in step.reports] == [4 * DAY_MS, 5 * DAY_MS]
    assert a.laggards(every) == {2: 5 * DAY_MS, 3: 5 * DAY_MS}
    # How far the worker got (for the pacer's gap rule, before it has processed a record of its
    # own after a restart): the end of the newest day a partition is in.
    assert a.reached() == 6 * DAY_MS - 1
    assert Assigner(Segmenter(holdout_share=0.0)).reached() is None
    assert a.laggards({0: 9 * DAY_MS}) == {}  # the one ahead


def _view(i: int, customer: str, day: int, hour: float) -> bytes:
    ts = f"2025-01-{6 + day:02d}T{int(hour):02d}:{int(hour % 1 * 60):02d}:00.000Z"
    return json.dumps({"event_id": f"e{i}", "customer_id": customer, "type": "page_view",
                       "ts": ts, "page": "home", "channel": "web"}).encode()  # fmt: skip


class _Recorder(Trainer):
    """A trainer that keeps the vectors it is given (the day's sample)."""

    def __init__(self) -> None:
        super().__init__(n_segments=2, warmup=10**9, drift=False)
        self.seen: list[list[float]] = []

    def learn_one(self, raw: list[float], t: int) -> SegmentModel | None:
        self.seen.append(list(raw))
        return None

    def watch_one(self, raw: list[float], t: int) -> None:
        self.seen.append(list(raw))


def test_a_days_sample_is_every_state_as_of_the_boundary_online_and_offline() -> None:
    # Day 0: three customers browse. Then one worker batch holds c0's late-evening view of day 0
    # and, after midnight, views of c1 and c0: the boundary falls inside the batch.
    day0 = [_view(i, f"c{i % 3}", 0, 9 + i) for i in range(6)]
    batch = [_view(6, "c0", 0, 23.5), _view(7, "c1", 1, 0.2), _view(8, "c0", 1, 1.0)]

    # The worker: Ingest.process calls the hook before each event; the partition is stepped
    # when an event passes its day boundary (as `stream.adapters.segments.day_passer` does).
    assigner = Assigner(Segmenter(holdout_share=0.0), sample_rate=1.0, max_daily_samples=100)
    ingest, store = Ingest(check_future=False), {}
    reports = []

    def records(lines: list[bytes], first: int) -> list[RawRecord]:
        return [RawRecord("clickstream", Stream.CLICKSTREAM, 0, first + i, None,
                          json.loads(v)["customer_id"].encode(), v)
                for i, v in enumerate(lines)]  # fmt: skip

    def before(partition: int, t: int, changed: dict[str, CustomerState]) -> None:
        if assigner.passes_day(partition, t):
            reports.extend(assigner.step(partition, dict(changed), t, store.get, 0).reports)

    for lines, first in ((day0, 0), (batch, 6)):
        out = ingest.process(records(lines, first), store.get, before)
        watermark = max(s.last_ts for s in out.changed.values())
        if not assigner.owns(0):
            assigner.adopt(0, [])
        reports.extend(assigner.step(0, dict(out.changed), watermark, store.get, 0).reports)
        store.update(out.changed)
    online = [v for r in reports for _, v in sorted(r.samples)]

    # The offline engine, with the same sampling, over the same events.
    trainer = _Recorder()
    stage = SegmentationStage(trainer, Segmenter(holdout_share=0.0), sample_rate=1.0)
    engine = Engine(Ingest(check_future=False), [stage])
    engine.feed(("f", i, v) for i, v in enumerate(day0 + batch))
    engine.run()

    assert len(online) == 3, "day 1's sample: every customer seen on day 0"
    assert online == trainer.seen[: len(online)]
    recency = [v[NAMES.index("recency_activity_days")] for v in online]
    assert min(recency) > 0, "nothing after midnight is in the day's sample"
