"""Event-time alignment of the input topics (`stream.adapters.align`), without a broker: a
stand-in consumer with high watermarks, and records as Kafka hands them over (offset, value)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any, NamedTuple

from faust.types import TP

from stream.adapters import align
from stream.adapters.align import EARLIEST, Aligner, EventTimeScheduler, TopicPartition, event_ms

CLICK, MAIL, BUY = (TopicPartition(t, 0) for t in ("click", "mail", "buy"))
CLICK1 = TopicPartition("click", 1)


class Rec(NamedTuple):
    offset: int
    value: bytes


def rec(offset: int, hour: int) -> Rec:
    """A record at ``hour`` hours into 2024-01-01 (hours beyond 23 go on into later days)."""
    day, h = divmod(hour, 24)
    return Rec(offset, b'{"ts":"2024-01-%02dT%02d:00:00Z","type":"x"}' % (day + 1, h))


class Consumer:
    """High watermarks by topic partition; pauses and resumes recorded."""

    def __init__(self, high: dict[Any, int | None]) -> None:
        self.high = high
        self.positions: dict[Any, int] = {}
        self.backpressure: set[Any] = set()
        self.paused: set[Any] = set()
        self.resumed: list[set[Any]] = []

    def highwater(self, tp: Any) -> int | None:
        return self.high.get(tp)

    def position(self, tp: Any) -> int | None:
        return self.positions.get(tp)

    def fetching(self, tp: Any) -> bool:
        return tp not in self.paused and tp not in self.backpressure

    def pause(self, tps: set[Any]) -> None:
        self.paused |= tps

    def resume(self, tps: set[Any]) -> None:
        self.paused -= tps
        self.resumed.append(set(tps))


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def order(out: list[tuple[Any, Rec]]) -> list[tuple[str, int]]:
    return [(tp.topic, r.offset) for tp, r in out]


def test_event_ms_reads_the_ts_and_gives_the_earliest_time_to_what_it_cannot_read() -> None:
    assert event_ms(b'{"customer_id":"c","ts" : "2024-01-01T00:00:00.250+00:00"}') == (
        1704067200250
    )
    for bad in (None, b"", b"{}", b'{"ts":"yesterday"}', b'{"ts":"2024-01-01T00:00:00"}', b"\xff"):
        assert event_ms(bad) == EARLIEST  # no zone: not a valid event time either


def test_topics_are_merged_by_event_time_and_each_keeps_its_offset_order() -> None:
    c = Consumer({CLICK: 4, MAIL: 2})
    al = Aligner(c)
    al.assign({CLICK, MAIL})
    # The clickstream's own records are not in time order (a late one at offset 2): Faust needs
    # each partition's records in offset order, so it goes after offset 1, not before.
    out = al.take(
        {CLICK: [rec(0, 1), rec(1, 5), rec(2, 3), rec(3, 9)], MAIL: [rec(0, 2), rec(1, 6)]}
    )
    assert order(out) == [
        ("click", 0), ("mail", 0), ("click", 1), ("click", 2), ("mail", 1), ("click", 3),
    ]  # fmt: skip
    assert al.held == 0


def test_a_topic_with_records_to_read_holds_back_the_later_records_of_the_others() -> None:
    c = Consumer({CLICK: 3, MAIL: 1})
    al = Aligner(c)
    al.assign({CLICK, MAIL})
    # The e-mail partition has a record to read and none received: nothing can go.
    assert al.take({CLICK: [rec(0, 1), rec(1, 30), rec(2, 60)]}) == []
    assert al.held == 3
    # It arrives (hour 2) and is caught up: everything goes, in time order.
    out = al.take({MAIL: [rec(0, 2)]})
    assert order(out) == [("click", 0), ("mail", 0), ("click", 1), ("click", 2)]
    # The e-mail partition grows (hour 40 received, more to read): the clickstream may go up to
    # hour 40, no further.
    c.high[MAIL] = 3
    out = al.take({CLICK: [rec(3, 35), rec(4, 45)], MAIL: [rec(1, 40)]})
    c.high[CLICK] = 5
    assert order(out) == [("click", 3), ("mail", 1)]
    assert al.held == 1
    assert order(al.take({MAIL: [rec(2, 50)]})) == [("click", 4), ("mail", 2)]


def test_a_caught_up_or_idle_topic_does_not_hold_anything_back() -> None:
    c = Consumer({CLICK: 2, MAIL: 0, BUY: 7})  # no e-mail at all; purchases all received before
    al = Aligner(c)
    al.assign({CLICK, MAIL, BUY})
    c.positions[BUY] = 7
    assert order(al.take({CLICK: [rec(0, 1), rec(1, 900)]})) == [("click", 0), ("click", 1)]


def test_partitions_are_released_in_step_across_the_worker() -> None:
    # The trainer learns a day once every partition has reported it: a partition consumed days
    # ahead of another would make it learn days without the other's samples.
    c = Consumer({CLICK: 2, CLICK1: 2})
    al = Aligner(c)
    al.assign({CLICK, CLICK1})
    assert al.take({CLICK: [rec(0, 1), rec(1, 50)]}) == []
    out = al.take({CLICK1: [rec(0, 2), rec(1, 3)]})
    assert [(tp.partition, r.offset) for tp, r in out] == [(0, 0), (1, 0), (1, 1), (0, 1)]


def test_held_records_go_ahead_after_max_wait_without_progress() -> None:
    clock = Clock()
    c = Consumer({CLICK: 2, MAIL: None})  # the e-mail partition's end is not known yet
    al = Aligner(c, max_wait_s=2.0, clock=clock)
    al.assign({CLICK, MAIL})
    assert al.take({CLICK: [rec(0, 1), rec(1, 2)]}) == []
    clock.now = 1.9
    assert al.take({}) == []
    clock.now = 2.0
    assert order(al.take({})) == [("click", 0), ("click", 1)]
    assert al.forced == 1 and al.held == 0
    # Progress restarts the wait: records that go within max_wait_s never force anything.
    c.high[MAIL] = 1
    assert al.take({CLICK: [rec(2, 3)]}) == []
    clock.now = 3.5
    assert order(al.take({MAIL: [rec(0, 2)]})) == [("mail", 0), ("click", 2)]
    assert al.forced == 1
    # A partition that Faust does not fetch because its stream's buffer is full is waited for.
    c.high[MAIL] = 2
    assert al.take({CLICK: [rec(3, 4)]}) == []
    c.backpressure.add(MAIL)
    clock.now = 10.0
    assert al.take({}) == []
    c.backpressure.clear()
    clock.now = 11.0
    assert al.take({}) == [] and al.forced == 1
    clock.now = 12.0
    assert order(al.take({})) == [("click", 3)] and al.forced == 2


def test_a_partition_holding_too_much_is_paused_and_resumed_before_its_records_go() -> None:
    c = Consumer({CLICK: 10, MAIL: 1})
    al = Aligner(c, max_held=3)
    al.assign({CLICK, MAIL})
    assert al.take({CLICK: [rec(i, 10 + i) for i in range(5)]}) == []
    al.settle()
    assert c.paused == {CLICK}
    c.paused.clear()  # Faust resumes fetching it when its stream's buffer drains
    al.settle()
    assert c.paused == {CLICK}
    out = al.take({MAIL: [rec(0, 1)]})
    assert c.resumed == [{CLICK}] and not c.paused  # resumed before its records are handed on
    assert order(out)[:2] == [("mail", 0), ("click", 0)]


def test_forget_drops_what_is_held_and_gives_back_the_paused_partitions() -> None:
    c = Consumer({CLICK: 10, MAIL: 1})
    al = Aligner(c, max_held=1)
    al.assign({CLICK, MAIL})
    al.take({CLICK: [rec(0, 5), rec(1, 6)]})
    al.settle()
    assert al.forget() == {CLICK}
    assert al.held == 0 and al.take({}) == []
    # A new assignment keeps what is held for the partitions still assigned, drops the rest.
    al.assign({CLICK, MAIL})
    al.take({CLICK: [rec(0, 5)]})
    al.assign({MAIL})
    assert al.held == 0


def test_the_scheduler_passes_other_topics_through_and_aligns_the_inputs() -> None:
    samples = TopicPartition("feature-samples", 0)
    c = Consumer({CLICK: 1, MAIL: 1})
    al = Aligner(c)
    al.assign({CLICK, MAIL})
    sched = EventTimeScheduler(al, frozenset({"click", "mail"}))
    got = list(sched.iterate({samples: [Rec(0, b"{}")], CLICK: [rec(0, 5)]}))
    assert order(got) == [("feature-samples", 0)]  # the clickstream waits for the e-mail
    assert order(list(sched.iterate({MAIL: [rec(0, 4)]}))) == [("mail", 0), ("click", 0)]


def test_a_partition_fetched_past_a_transaction_marker_is_caught_up() -> None:
    # A transactional producer's commit marker takes an offset: the high watermark is one past
    # the last record. The consumer's fetch position is past the marker too, and says so.
    c = Consumer({CLICK: 2, MAIL: 3})
    al = Aligner(c)
    al.assign({CLICK, MAIL})
    records = {MAIL: [rec(0, 1), rec(1, 2)], CLICK: [rec(0, 3), rec(1, 50)]}
    assert order(al.take(records)) == [("mail", 0), ("mail", 1)]  # looks like more e-mail to come
    c.positions[MAIL] = 3
    assert order(al.take({})) == [("click", 0), ("click", 1)]


class Signal:
    def connect(self, fn: Any) -> None:
        self.fn = fn


class FaustConsumer:
    """What `align.install` and `align.FaustGate` touch of Faust's consumer."""

    def __init__(self) -> None:
        self.scheduler: Any = None
        self._paused_partitions: set[Any] = set()
        self._buffered_partitions: set[Any] = set()
        self.calls: list[tuple[str, set[Any]]] = []

    def highwater(self, tp: Any) -> int:
        return 10

    def pause_partitions(self, tps: set[Any]) -> None:
        self.calls.append(("pause", set(tps)))

    def resume_partitions(self, tps: set[Any]) -> None:
        self.calls.append(("resume", set(tps)))


def test_install_aligns_from_the_first_assignment_and_resumes_its_pauses_on_revocation() -> None:
    consumer = FaustConsumer()
    app = SimpleNamespace(consumer=consumer, on_partitions_assigned=Signal(),
                          on_partitions_revoked=Signal())  # fmt: skip
    aligner = align.install(app, frozenset({"click", "mail"}), max_wait_s=2.0)
    aligner.max_held = 1
    assigned = {TP("click", 0), TP("mail", 0), TP("other", 0)}
    asyncio.run(app.on_partitions_assigned.fn(app, assigned))
    assert isinstance(consumer.scheduler, EventTimeScheduler)
    # A fetch's records come keyed by aiokafka's topic partitions, not Faust's; the e-mail
    # partition has records to read, so the clickstream's wait, and it holds too many.
    assert list(consumer.scheduler.iterate({CLICK: [rec(0, 1), rec(1, 2)]})) == []
    asyncio.run(app.on_partitions_revoked.fn(app, {TP("click", 0)}))
    # Faust's set of fetched partitions accepts its own TP only (anything else crashes its
    # fetcher): pauses and resumes go through as Faust's.
    assert [kind for kind, _ in consumer.calls] == ["pause", "resume"]
    assert all(type(tp) is TP for _, tps in consumer.calls for tp in tps)
    assert aligner.held == 0
