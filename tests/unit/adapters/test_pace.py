"""Pacing a worker's input by the trainer's progress (`stream.adapters.pace`), without a broker:
the aligner with a pacer, the trainer's progress records and the model feed that reads them."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace
from typing import Any

import pytest

from stream.adapters.align import Aligner, TopicPartition
from stream.adapters.metrics import Metrics
from stream.adapters.model_feed import PROGRESS_KEY, ModelFeed, progress_record, read_progress
from stream.adapters.pace import Pacer
from stream.adapters.segments import train
from stream.core.collate import Collator, SampleReport
from stream.core.trainer import Trainer
from tests.unit.adapters.test_align import CLICK, CLICK1, MAIL, Clock, Consumer, Rec, order, rec

HOUR = 3_600_000
DAY = 24 * HOUR
T0 = 1_704_067_200_000  # 2024-01-01, hour 0 of `rec`


def paced(consumer: Consumer, clock: Clock) -> tuple[Aligner, Pacer]:
    pacer = Pacer(2 * DAY, 4 * DAY, max_wait_s=30, clock=clock)
    al = Aligner(consumer, max_wait_s=2, clock=clock, pacer=pacer)
    al.assign({CLICK, MAIL})
    return al, pacer


def test_records_past_the_trainers_progress_wait_until_it_learns_on() -> None:
    clock = Clock()
    al, pacer = paced(Consumer({CLICK: 5, MAIL: 0}), clock)
    pacer.learnt_until(T0, complete=True)  # learnt up to 2024-01-01: records before 01-03 may go
    out = al.take({CLICK: [rec(0, 1), rec(1, 30), rec(2, 47), rec(3, 48), rec(4, 80)]})
    assert order(out) == [("click", 0), ("click", 1), ("click", 2)]
    assert al.held == 2
    clock.now = 20.0
    assert al.take({}) == []  # still waiting: the trainer has not reported since
    pacer.learnt_until(T0 + DAY, complete=True)
    assert order(al.take({})) == [("click", 3)]
    pacer.learnt_until(T0 + 2 * DAY, complete=True)
    assert order(al.take({})) == [("click", 4)]
    assert al.held == 0 and pacer.timeouts == 0 and al.forced == 0


def test_the_lead_is_narrow_while_every_partition_reports_the_days_learnt() -> None:
    clock = Clock()
    al, pacer = paced(Consumer({CLICK: 4, MAIL: 0}), clock)
    pacer.learnt_until(T0, complete=True)  # every partition reported 2024-01-01: two days ahead
    out = al.take({CLICK: [rec(0, 1), rec(1, 40), rec(2, 50), rec(3, 70)]})
    assert order(out) == [("click", 0), ("click", 1)]
    pacer.learnt_until(T0 + DAY, complete=False)  # a day learnt without one: four days ahead
    assert order(al.take({})) == [("click", 2), ("click", 3)]
    assert order(al.take({CLICK: [rec(4, 110)]})) == [("click", 4)]
    pacer.learnt_until(T0 + 2 * DAY, complete=True)  # it reported again: two days ahead
    assert al.take({CLICK: [rec(5, 100)]}) == []
    assert pacer.timeouts == 0


def test_before_the_trainer_reports_the_lead_counts_from_the_first_events() -> None:
    al, pacer = paced(Consumer({CLICK: 4, MAIL: 0}), Clock())
    old = Rec(0, b'{"ts":"2023-01-01T00:00:00Z"}')  # a year early (to be dead-lettered)
    assert order(al.take({CLICK: [old, rec(1, 10), rec(2, 40), rec(3, 120)]})) == [("click", 0)]
    # Nothing else within four days of it: they count from the next record (hour 10) instead.
    assert order(al.take({})) == [("click", 1), ("click", 2)]
    assert pacer.horizon() == T0 + 106 * HOUR and al.held == 1
    pacer.learnt_until(T0 + DAY, complete=True)  # it learnt 01-01, we are at 01-02: a gap
    assert order(al.take({})) == [("click", 3)]
    assert pacer.timeouts == 0


def test_a_gap_in_event_time_does_not_stall_the_worker() -> None:
    clock = Clock()
    al, pacer = paced(Consumer({CLICK: 4, MAIL: 0}), clock)
    pacer.learnt_until(T0, complete=True)  # one day ahead: up to 2024-01-02
    assert order(al.take({CLICK: [rec(0, 5), rec(1, 30)]})) == [("click", 0), ("click", 1)]
    # Nothing on 2024-01-03 to 2024-01-05: the trainer waits for the end of 01-02 from us.
    assert al.take({CLICK: [rec(2, 4 * 24 + 2), rec(3, 4 * 24 + 20), rec(4, 6 * 24)]}) == []
    pacer.learnt_until(T0 + DAY, complete=True)  # it learnt 01-01: we are at 01-02
    assert order(al.take({})) == [("click", 2), ("click", 3)]  # through the next record's day
    assert al.held == 1 and pacer.timeouts == 0 and clock.now == 0.0
    # Fetched later, records of that day go too (else the worker, now days ahead of what the
    # trainer has learnt, would wait for it).
    assert order(al.take({MAIL: [rec(0, 4 * 24 + 10)]})) == [("mail", 0)]


@pytest.mark.parametrize("restarted", [False, True])
def test_a_restarted_worker_sees_a_gap_from_where_its_partitions_had_got(restarted: bool) -> None:
    """An operator restarted two of three workers, then fed events that resumed a day and a
    half past the trainer's horizon: a restarted worker had processed nothing, saw no gap, and
    every worker held the events for the 30 s of ``MICROSEG_PACE_MAX_WAIT_S``."""
    clock = Clock()
    pacer = Pacer(2 * DAY, 4 * DAY, max_wait_s=30, clock=clock)
    before = T0 + 2 * DAY - 1 if restarted else None  # its store: up to the end of 01-02
    al = Aligner(Consumer({CLICK: 3, MAIL: 0}), max_wait_s=2, clock=clock, pacer=pacer,
                 reached_before=lambda: before)  # fmt: skip
    al.assign({CLICK, MAIL})
    pacer.learnt_until(T0 + DAY, complete=True)  # it learnt 01-01: horizon 01-04
    out = al.take({CLICK: [rec(0, 5 * 24 + 5), rec(1, 5 * 24 + 20), rec(2, 7 * 24)]})
    if restarted:  # the trainer waits for 01-02 from us: through the next record's day (01-06)
        assert order(out) == [("click", 0), ("click", 1)]
    else:  # nothing known of where the worker got: the records wait for the trainer
        assert out == [] and al.held == 3
    assert pacer.timeouts == 0


def test_partitions_whose_next_records_wait_for_the_trainer_may_step_to_the_horizon() -> None:
    # Partition 0 has nothing from 2024-01-02 to 01-05; partition 1 goes on. The trainer, at
    # 01-01, needs both partitions past the end of 01-02 before it learns on; partition 0 can
    # only get there by stepping its calendar without its next record (`step_paced`).
    mail1 = TopicPartition("mail", 1)
    c = Consumer({CLICK: 2, MAIL: 0, CLICK1: 3, mail1: 0})
    al, pacer = paced(c, Clock())
    al.assign({CLICK, MAIL, CLICK1, mail1})
    assert al.paced() == {}  # the trainer has not reported: nothing is paced yet
    pacer.learnt_until(T0, complete=True)  # horizon: 2024-01-03
    out = al.take({CLICK: [rec(0, 5), rec(1, 5 * 24)], CLICK1: [rec(0, 6), rec(1, 30)]})
    assert [(tp.partition, r.offset) for tp, r in out] == [(0, 0), (1, 0), (1, 1)]
    assert al.paced() == {}  # what went may pass days itself: not before it is processed
    al.processed({CLICK: 0, CLICK1: 0}, valid_ms=T0 + 6 * HOUR)
    assert al.paced() == {0: T0 + 2 * DAY - 1}  # partition 1 holds nothing: not paced
    assert al.take({CLICK1: [rec(2, 50)]}) == []
    assert al.paced() == {0: T0 + 2 * DAY - 1}  # its record of hour 30 is still in flight
    al.processed({CLICK1: 1}, valid_ms=T0 + 30 * HOUR)
    assert al.paced() == {0: T0 + 2 * DAY - 1, 1: T0 + 2 * DAY - 1}
    c.high[mail1] = 1  # an e-mail of partition 1 to read, not received: it might be earlier
    assert al.paced() == {0: T0 + 2 * DAY - 1}
    pacer.learnt_until(T0 + DAY, complete=True)  # both reported 01-02: horizon 01-04
    assert al.paced() == {0: T0 + 3 * DAY - 1}
    c.high[mail1] = 0
    assert order(al.take({})) == [("click", 2)] and al.paced() == {0: T0 + 3 * DAY - 1}
    assert Aligner(c).paced() == {}  # no pacer: nothing waits for the trainer


@pytest.mark.parametrize("valid", [False, True])
def test_a_record_far_ahead_that_is_dead_lettered_does_not_hide_a_gap(valid: bool) -> None:
    # The trainer learnt 2024-01-01 and waits for the end of 01-02 from us; our next click is on
    # 01-06. An e-mail record dated 01-03 went first; until it is processed it may pass 01-02
    # itself, so the worker waits. Dead-lettered, it passed nothing: the gap is ours to cross.
    # Had it been valid, the trainer would learn on from the sample it sent.
    clock = Clock()
    al, pacer = paced(Consumer({CLICK: 2, MAIL: 1}), clock)
    pacer.learnt_until(T0 + DAY, complete=True)  # horizon: 01-04
    ahead = Rec(0, b'{"ts":"2024-01-03T12:00:00Z","type":"x"}')
    out = al.take({CLICK: [rec(0, 29), rec(1, 5 * 24 + 2)], MAIL: [ahead]})
    assert order(out) == [("click", 0), ("mail", 0)]
    assert al.take({}) == []  # in flight: it counts at its "ts"
    al.processed({CLICK: 0}, valid_ms=T0 + 29 * HOUR)
    assert al.take({}) == []
    al.processed({MAIL: 0}, valid_ms=T0 + 60 * HOUR if valid else None)
    if valid:
        assert al.take({}) == [] and al.held == 1
    else:
        assert order(al.take({})) == [("click", 1)]  # through the next record's day
    assert pacer.timeouts == 0 and clock.now == 0.0


def test_a_record_dated_past_the_clock_goes_at_once_and_moves_no_horizon() -> None:
    # A purchase dated 9999 (its record too) waited at the horizon with the records behind it
    # until a pace timeout, then lifted the horizon for good. Past the wall clock plus the
    # tolerance, it has no readable time for the aligner: it goes, to be dead-lettered.
    clock = Clock()
    pacer = Pacer(2 * DAY, 4 * DAY, max_wait_s=30, clock=clock)
    wall = (T0 + 10 * DAY) / 1000  # the wall clock: 2024-01-11
    al = Aligner(Consumer({CLICK: 4, MAIL: 0}), max_wait_s=2, clock=clock, pacer=pacer,
                 future_ms=600_000, wall=lambda: wall)  # fmt: skip
    al.assign({CLICK, MAIL})
    pacer.learnt_until(T0, complete=True)  # horizon: 01-03
    far = Rec(1, b'{"ts":"9999-12-31T23:59:59Z","type":"purchase"}')
    out = al.take({CLICK: [rec(0, 1), far, rec(2, 5), rec(3, 30)]})
    assert order(out) == [("click", 0), ("click", 1), ("click", 2), ("click", 3)]
    al.processed({CLICK: 3}, valid_ms=T0 + 30 * HOUR)
    assert pacer.horizon() == T0 + 2 * DAY  # not lifted
    assert al.take({CLICK: [rec(4, 50)]}) == []  # paced as before: 01-03 waits for the trainer
    assert pacer.timeouts == 0 and clock.now == 0.0
    # Without the bound, the same record waits at the horizon and holds back what follows it.
    al = Aligner(Consumer({CLICK: 4, MAIL: 0}), max_wait_s=2, clock=clock,
                 pacer=Pacer(2 * DAY, 4 * DAY, max_wait_s=30, clock=clock))  # fmt: skip
    al.assign({CLICK, MAIL})
    assert al.pacer is not None
    al.pacer.learnt_until(T0, complete=True)
    assert order(al.take({CLICK: [rec(0, 1), far, rec(2, 5)]})) == [("click", 0)]


def test_the_alignment_valve_does_not_push_records_past_the_horizon() -> None:
    clock = Clock()
    c = Consumer({CLICK: 3, MAIL: 5})  # e-mail has records to read and sends none
    al, pacer = paced(c, clock)
    pacer.learnt_until(T0, complete=True)
    assert al.take({CLICK: [rec(0, 1), rec(1, 30), rec(2, 60)]}) == []
    clock.now = 2.5
    out = al.take({})  # e-mail never delivered: the click records go, up to the horizon only
    assert order(out) == [("click", 0), ("click", 1)] and al.forced == 1 and al.held == 1
    clock.now = 10.0
    assert al.take({}) == [] and al.forced == 1  # the rest waits for the trainer


def test_without_progress_for_max_wait_the_input_goes_ahead_until_the_trainer_reports() -> None:
    clock = Clock()
    al, pacer = paced(Consumer({CLICK: 4, MAIL: 0}), clock)
    pacer.learnt_until(T0, complete=True)
    out = al.take({CLICK: [rec(0, 1), rec(1, 30), rec(2, 50), rec(3, 100)]})
    assert order(out) == [("click", 0), ("click", 1)]
    clock.now = 1.0
    assert al.take({}) == []  # nothing else could go: waiting from here
    clock.now = 30.0
    assert al.take({}) == []
    clock.now = 31.0  # the trainer is down: nothing stalls ingest for longer
    assert order(al.take({})) == [("click", 2), ("click", 3)]
    assert pacer.timeouts == 1 and al.forced == 0
    assert order(al.take({CLICK: [rec(4, 119)]})) == [("click", 4)]
    pacer.learnt_until(T0 + DAY, complete=False)  # back: paced again (up to 01-06)
    assert al.take({CLICK: [rec(5, 121)]}) == [] and al.held == 1


def test_waiting_counts_from_when_records_stopped_going() -> None:
    clock = Clock()
    al, pacer = paced(Consumer({CLICK: 9, MAIL: 1}), clock)
    pacer.learnt_until(T0, complete=True)
    assert al.take({CLICK: [rec(0, 60)]}) == []  # waits from 0 s
    clock.now = 25.0
    out = al.take({MAIL: [rec(0, 30)]})  # something went: what waits, waits from now
    assert order(out) == [("mail", 0)]
    clock.now = 26.0
    assert al.take({}) == []
    clock.now = 55.0  # 55 s after the click record began to wait, 29 s after anything went
    assert al.take({}) == [] and pacer.timeouts == 0
    clock.now = 56.5
    assert order(al.take({})) == [("click", 0)] and pacer.timeouts == 1


def test_progress_records_round_trip_and_refuse_anything_else() -> None:
    carried = {"since": T0, "activity": {"days": [], "hold_until": -1}}
    value = progress_record(T0 + DAY, False, carried)
    assert json.loads(value) == {
        "learnt_until": "2024-01-02T00:00:00.000Z",
        "complete": False,
        "trainer": carried,
    }
    assert read_progress(value) == (T0 + DAY, False, carried)
    old = b'{"learnt_until": "2024-01-02T00:00:00.000Z", "complete": true}'
    assert read_progress(old) == (T0 + DAY, True, None)
    for bad in (
        b"", b"[]", b"{}", b"\xff", b'{"learnt_until": 5, "complete": true}',
        b'{"learnt_until": "soon", "complete": true}',
        b'{"learnt_until": "2024-01-02T00:00:00.000Z"}',
        b'{"learnt_until": "2024-01-02T00:00:00.000Z", "complete": 1}',
    ):  # fmt: skip
        with pytest.raises(ValueError, match="not a progress record"):
            read_progress(bad)


def test_the_model_feed_hands_progress_to_the_pacer_and_skips_unreadable_records() -> None:
    metrics = Metrics()
    feed = ModelFeed(SimpleNamespace(), SimpleNamespace(), metrics, [], False)  # type: ignore[arg-type]
    got: list[tuple[int, bool]] = []
    feed.on_progress = lambda t, complete: got.append((t, complete))
    feed._apply(PROGRESS_KEY, progress_record(T0 + 3 * DAY, True, {"since": 1}))
    feed._apply(PROGRESS_KEY, b"nonsense")
    feed._apply(PROGRESS_KEY, progress_record(T0 + 2 * DAY, True))  # older: ignored
    assert got == [(T0 + 3 * DAY, True)]
    assert feed.carried == {"since": 1}
    assert metrics.trainer_learnt_until._value.get() == (T0 + 3 * DAY) / 1000
    errors = metrics.agent_errors.labels("segment_model")._value.get()
    assert errors == 1


class Topic:
    def __init__(self) -> None:
        self.sent: list[tuple[bytes, bytes]] = []

    async def send(self, key: bytes, value: bytes) -> None:
        self.sent.append((key, value))


def test_the_trainer_reports_each_batch_that_released_a_day() -> None:
    topic = Topic()
    svc: Any = SimpleNamespace(
        trainer=Trainer(n_segments=2, micro_per_segment=1, warmup=10_000, seed=1),
        segmenter=SimpleNamespace(model=None),
        collator=Collator(partitions=2),
        metrics=Metrics(),
        segment_model_topic=topic,
        model_feed=SimpleNamespace(carried=None),
    )

    def report(partition: int, day: int) -> bytes:
        return SampleReport(partition, T0 + day * DAY).encode()

    asyncio.run(train(svc, [report(0, 1)]))
    assert topic.sent == []  # partition 1 has not passed day 1 yet

    def sent() -> list[tuple[int, bool]]:
        return [read_progress(v)[:2] for k, v in topic.sent if k == PROGRESS_KEY]

    asyncio.run(train(svc, [report(1, 1), report(0, 2), report(1, 2)]))
    assert sent() == [(T0 + 2 * DAY, True)]
    asyncio.run(train(svc, [report(0, 3)]))
    assert len(sent()) == 1
    asyncio.run(train(svc, [report(0, 4), report(0, 5)]))  # day 3 went without partition 1
    assert sent()[1:] == [(T0 + 3 * DAY, False)]
    # Each report carries what a trainer taking over continues from.
    assert read_progress(topic.sent[-1][1]).trainer == svc.trainer.carry()
    assert svc.trainer.activity.newest is not None


def test_a_trainer_taking_over_continues_the_drift_tests_at_once() -> None:
    before = Trainer(n_segments=2, micro_per_segment=1, warmup=10_000, seed=1)
    for d in range(22):
        before.observe_day(T0 + (d + 1) * DAY, [0, 0, 0, 0, 1000])
    before.watch.since = T0  # its drift detectors have watched samples since T0
    report = read_progress(progress_record(T0 + 22 * DAY, True, before.carry()))
    metrics = Metrics()
    svc: Any = SimpleNamespace(
        trainer=Trainer(n_segments=2, micro_per_segment=1, warmup=10_000, seed=1),
        segmenter=SimpleNamespace(model=None),
        collator=Collator(partitions=1),
        metrics=metrics,
        segment_model_topic=Topic(),
        model_feed=SimpleNamespace(carried=report.trainer),
    )
    asyncio.run(train(svc, []))
    assert svc.trainer.carry() == before.carry()
    assert svc.model_feed.carried is None  # taken over once
    # Its model-fit and segment detectors are fed from drift_after_days after T0, not after
    # the restart (they were blind for 30 days: a persona emerging then was never born).
    assert svc.trainer.watch.live(T0 + 30 * DAY)
    # The restarted trainer tests the next days at once: a fall is reported on the third.
    for d, n in enumerate([1000, 1000, 700]):
        svc.trainer.observe_day(T0 + (23 + d) * DAY, [0, 0, 0, 0, n])
    assert [h.subject for h in svc.trainer.take_detections()] == ["population:activity"]
    # An older or unreadable state changes nothing; the unreadable one is counted.
    svc.model_feed.carried = report.trainer
    asyncio.run(train(svc, []))
    assert svc.trainer.activity.newest == before.activity.newest + 3
    svc.model_feed.carried = {"since": None, "activity": {"days": "nonsense"}}
    asyncio.run(train(svc, []))
    assert metrics.agent_errors.labels("segment_model")._value.get() == 1


def test_the_running_totals_advance_their_counters_once() -> None:
    m = Metrics()
    m.aligned(5, forced=2, pace_timeouts=1)
    m.aligned(0, forced=2, pace_timeouts=3)
    m.customer_drifts(4)
    m.customer_drifts(4)
    assert m.input_forced._value.get() == 2 and m.input_pace_timeouts._value.get() == 3
    assert m.drift.labels("customer", "page_hinkley")._value.get() == 4
    assert m.input_held._value.get() == 0
