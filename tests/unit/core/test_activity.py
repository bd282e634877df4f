"""Population activity (issue 5): organic touches counted alike online and offline, and the
churn-wave detector on constructed streams where the answer is known."""

from __future__ import annotations

import json
import struct
from collections.abc import Callable

import numpy as np
import pytest

from stream.core.activity import N_BANDS, ActivityDrift, DailyTouches, touch_band
from stream.core.assigner import Assigner
from stream.core.collate import Collator, SampleReport
from stream.core.engine import Engine
from stream.core.events import Stream, parse_event
from stream.core.facts import apply
from stream.core.features import DAY_MS, FEATURES
from stream.core.ingest import Ingest, RawRecord
from stream.core.segment_stage import SegmentationStage
from stream.core.segmentation import Segmenter
from stream.core.state import N_SUMS, TOUCH_CLICK, TOUCH_ORGANIC, TOUCH_OTHER, CustomerState
from stream.core.trainer import Trainer

HOUR = 3_600_000
T0 = 1_736_121_600_000  # 2025-01-06T00:00Z, a Monday


def _event(i: int, customer: str, kind: str, t: int) -> bytes:
    ts = f"{np.datetime64(t, 'ms')}Z"
    obj: dict[str, object] = {"event_id": f"e{i}", "customer_id": customer, "type": kind, "ts": ts}
    if kind.startswith("email"):
        obj["campaign_id"] = "k"
    elif kind == "purchase":
        obj.update(order_id=f"o{i}", amount=20.0, channel="web")
    else:
        obj.update(session_id=f"s{i}", channel="web", page="home")
    return json.dumps(obj).encode()


def _apply(state: CustomerState, kind: str, t: int) -> int:
    """Apply an event; the kind of touch it was (counted if organic)."""
    apply(state, parse_event(_event(t, "c", kind, t)))
    if state.organic:
        assert touch_band(state, t) is not None
        return TOUCH_ORGANIC
    return TOUCH_CLICK if kind == "email_click" else TOUCH_OTHER


def test_a_visit_prompted_by_an_email_click_is_not_an_organic_touch() -> None:
    s = CustomerState()
    assert _apply(s, "session_start", T0) == TOUCH_ORGANIC
    assert _apply(s, "page_view", T0 + 60_000) == TOUCH_OTHER
    assert _apply(s, "email_open", T0 + HOUR) == TOUCH_OTHER
    assert _apply(s, "email_click", T0 + HOUR + 5_000) == TOUCH_CLICK
    assert _apply(s, "session_start", T0 + HOUR + 9_000) == TOUCH_OTHER, "the click's visit"
    assert _apply(s, "purchase", T0 + HOUR + 600_000) == TOUCH_ORGANIC, "an order in it counts"
    assert _apply(s, "email_click", T0 + 5 * HOUR) == TOUCH_CLICK
    assert _apply(s, "email_sent", T0 + 6 * HOUR) == TOUCH_OTHER
    assert s.touch == TOUCH_CLICK, "what was sent to them is not their own event"
    assert _apply(s, "session_start", T0 + 8 * HOUR) == TOUCH_ORGANIC, "3 hours after the click"
    assert s.touch == TOUCH_ORGANIC and CustomerState.decode(s.encode()).touch == TOUCH_ORGANIC
    # Out of order (another topic consumed ahead): a click older than the newest own event does
    # not become the last one, and a visit older than that click is counted, not the click's.
    late = s.last_active_ts
    assert _apply(s, "email_click", T0 + 7 * HOUR) == TOUCH_CLICK
    assert s.last_active_ts == late and s.touch == TOUCH_ORGANIC
    assert _apply(s, "email_click", T0 + 9 * HOUR) == TOUCH_CLICK
    assert _apply(s, "session_start", T0 + 8 * HOUR + 1) == TOUCH_ORGANIC


def test_state_versions_before_the_touch_kind_read_as_other() -> None:
    s = CustomerState(first_ts=T0, last_active_ts=T0, touch=TOUCH_ORGANIC, ring_pos=11)
    data = s.encode()
    assert data[0] == 5 and CustomerState.decode(data) == s
    ring = struct.calcsize(f"<B{N_SUMS}f5q5I3h3q")  # the ring position's byte
    assert data[ring] == TOUCH_ORGANIC << 4 | 11
    old = bytearray(data)
    old[0], old[ring] = 4, 11  # a version-4 writer kept only the ring position in that byte
    back = CustomerState.decode(bytes(old))
    assert back.touch == TOUCH_OTHER and back.ring_pos == 11


def test_touches_are_counted_by_day_and_tenure_band_and_a_partial_day_is_none() -> None:
    days = DailyTouches()
    for tenure_days, n in ((0, 1), (1, 2), (8, 3), (15, 4), (22, 5), (400, 6)):
        s = CustomerState(first_ts=T0 - tenure_days * DAY_MS, organic=True)
        for k in range(n):
            days.add(s, T0 + DAY_MS + k * 1000)
    days.add(CustomerState(first_ts=0, organic=False), T0 + DAY_MS)
    assert days.since == T0 + DAY_MS
    assert days.take(T0 + DAY_MS) is None, "counting began on the next day"
    assert days.take(T0 + 2 * DAY_MS) is None, "the day counting began in is partial"
    full = DailyTouches(since=T0)
    full.add(CustomerState(first_ts=T0 - 30 * DAY_MS, organic=True), T0 + DAY_MS)
    assert full.take(T0 + 2 * DAY_MS) == [0, 0, 0, 0, 1]
    assert full.take(T0 + 3 * DAY_MS) == [0] * N_BANDS


def _population(
    rng: np.random.Generator, days: int, fall: Callable[[int], float], joiners: int = 20
) -> list[list[int]]:
    """Daily organic touches by tenure band of an established base (1,100 a day) and of
    ``joiners`` new customers a day (0.4 touches a day each) who join it as they age: a weekly
    rhythm (weekends 30 % up), 2 % day-to-day variation beyond Poisson, and ``fall(day)``."""
    out = []
    for d in range(days):
        pace = (1.3 if d % 7 >= 5 else 1.0) * rng.normal(1.0, 0.02) * fall(d)
        # join days whose customers are in each band today: tenure 0, 1–7, 8–14, 15–21, 22+
        cohorts = [min(d + 1, 1), *(max(0, min(d - lo + 1, 7)) for lo in (1, 8, 15)),
                   max(0, d - 21)]  # fmt: skip
        counts = [int(rng.poisson(joiners * 0.4 * pace * n)) for n in cohorts]
        counts[-1] += int(rng.poisson(1100 * pace))
        out.append(counts)
    return out


@pytest.mark.parametrize("seed", range(4))
def test_no_false_alarm_on_two_stationary_years_and_a_churn_wave_is_caught_within_two_days(
    seed: int,
) -> None:
    rng = np.random.default_rng(seed)
    det = ActivityDrift()
    quiet = _population(rng, 730, lambda d: 1.0)
    assert not [d for d, c in enumerate(quiet) if det.update((d + 1) * DAY_MS, c)]

    det = ActivityDrift()
    wave = _population(rng, 120, lambda d: 1.0 if d < 90 else 0.85)  # 15 % stop on day 90
    hits = [(d, h) for d, c in enumerate(wave) if (h := det.update((d + 1) * DAY_MS, c))]
    assert [d for d, _ in hits] and 90 <= hits[0][0] <= 91, hits
    h = hits[0][1]
    assert (h.level, h.detector, h.subject) == ("model_fit", "page_hinkley", "population:activity")
    assert h.after < h.before and h.t == (hits[0][0] + 1) * DAY_MS
    assert len(hits) == 1, "the same wave is not reported again while it is in the baseline"


def test_days_not_counted_in_full_are_not_tested_nor_a_baseline() -> None:
    det = ActivityDrift()
    for d in range(40):
        assert det.update((d + 1) * DAY_MS, [0, 0, 0, 0, 1000]) is None
    # A partition was reassigned on day 40: that day's count is partial (None), not a fall, and
    # the days that compare with it one to three weeks on are not tested either.
    assert det.update(41 * DAY_MS, None) is None
    for d in range(41, 70):
        assert det.update((d + 1) * DAY_MS, [0, 0, 0, 0, 1000 if d % 7 != 40 % 7 else 10]) is None
    assert det.update(71 * DAY_MS, [0, 0, 0, 0, 700]) is not None


def test_the_trainer_reports_a_fall_and_leaves_its_model_alone() -> None:
    rng = np.random.default_rng(1)
    tr = Trainer(n_segments=2, micro_per_segment=1, publish_every=10_000, warmup=200, seed=3)
    for i in range(300):
        tr.learn_one([abs(float(v)) for v in rng.normal(3.0 * (i % 2), 0.3, len(FEATURES))], i)
    assert tr.model is not None
    for d in range(40):
        tr.observe_day((d + 1) * DAY_MS, [0, 0, 0, 0, 1000 if d < 35 else 700])
    found = tr.take_detections()
    assert [(f.subject, f.t) for f in found] == [("population:activity", 36 * DAY_MS)]
    assert not tr._adapting and tr._publish_at is None and not tr._may_grow


def _records(lines: list[bytes], partitions: int, first: int) -> list[RawRecord]:
    out = []
    for i, v in enumerate(lines):
        cid = json.loads(v)["customer_id"]
        stream = Stream.EMAIL if b'"email_' in v else Stream.CLICKSTREAM
        if b'"purchase"' in v:
            stream = Stream.PURCHASES
        out.append(RawRecord(stream.value, stream, int(cid[1:]) % partitions, first + i, None,
                             cid.encode(), v))  # fmt: skip
    return out


def test_workers_count_the_touches_the_offline_replay_counts() -> None:
    # 40 days, 12 customers joining over the first weeks: visits, clicks and their visits,
    # orders. Two partitions online, each stepped at its day boundaries; summed by the Collator.
    rng = np.random.default_rng(7)
    lines, i = [], 0
    for d in range(40):
        for c in range(12):
            if d < 2 * c:
                continue
            for _ in range(int(rng.poisson(1.5))):
                t = T0 + d * DAY_MS + int(rng.uniform(0, DAY_MS - 3 * HOUR))
                kinds = (
                    ["email_click", "session_start"] if rng.random() < 0.3 else ["session_start"]
                )
                kinds += ["purchase"] if rng.random() < 0.2 else []
                for k, kind in enumerate(kinds):
                    lines.append((t + k * 60_000, _event(i, f"c{c}", kind, t + k * 60_000)))
                    i += 1
    lines.sort()
    raw = [v for _, v in lines]

    stage = SegmentationStage(Trainer(n_segments=2, warmup=10**9), Segmenter(holdout_share=0.0))
    engine = Engine(Ingest(check_future=False), [stage])
    engine.feed(("f", n, v) for n, v in enumerate(raw))
    engine.run()
    offline = dict(stage.activity)

    assigner = Assigner(Segmenter(holdout_share=0.0), sample_rate=0.0)
    ingest, store, reports = Ingest(check_future=False), {}, []
    late: list[int] = []

    def before(partition: int, t: int, changed: dict[str, CustomerState]) -> None:
        if not assigner.owns(partition):
            assigner.adopt(partition, [])
        if assigner.passes_day(partition, t):
            ups = {c: s for c, s in changed.items() if int(c[1:]) % 2 == partition}
            step = assigner.step(partition, ups, t, store.get, 0)
            reports.extend(step.reports)
            late.append(step.late_touches)

    for start in range(0, len(raw), 50):  # batches of 50 records
        out = ingest.process(_records(raw[start : start + 50], 2, start), store.get, before,
                             assigner.touched)  # fmt: skip
        store.update(out.changed)
    collator = Collator(partitions=2)
    for r in reports:
        collator.add(SampleReport.decode(r.encode()))
    online = dict(collator.take_days())

    counted = [d for d, c in online.items() if c is not None]
    assert len(counted) >= 35 and sum(sum(online[d]) for d in counted) > 300  # type: ignore[arg-type]
    assert all(online[d] == offline[d] for d in counted), [
        (d // DAY_MS, online[d], offline[d]) for d in counted if online[d] != offline[d]
    ]
    assert late and not any(late), "in event-time order nothing comes after its day's report"
    organic = sum(b'"session_start"' in v or b'"purchase"' in v for v in raw)
    total = sum(sum(c) for c in offline.values() if c is not None)
    assert 0 < total < organic, "click visits (and the first, partial day) are not counted"


def test_a_day_reported_in_part_sums_to_none_and_old_reports_read() -> None:
    col = Collator(partitions=2)
    col.add(SampleReport(0, DAY_MS, [], [1, 2, 3, 4, 5]))
    col.add(SampleReport(1, DAY_MS, [], [1, 1, 1, 1, 1]))
    col.add(SampleReport(0, 2 * DAY_MS, [], [1, 2, 3, 4, 5]))
    col.add(SampleReport(1, 2 * DAY_MS, [], None))
    assert col.take_days() == [(DAY_MS, [2, 3, 4, 5, 6]), (2 * DAY_MS, None)]
    assert col.take_days() == []
    r = SampleReport(3, DAY_MS, [(1, [0.0] * len(FEATURES))], [0, 0, 0, 0, 9])
    assert SampleReport.decode(r.encode()) == r
    older = b'{"partition":3,"day":86400000,"samples":[]}'
    assert SampleReport.decode(older).touches is None
    for bad in ([1, 2], [1, 2, 3, 4, -5], [1.5, 2, 3, 4, 5], "many"):
        with pytest.raises(ValueError, match="touches"):
            SampleReport.decode(json.dumps({"partition": 0, "day": 0, "samples": [],
                                            "touches": bad}).encode())  # fmt: skip


def test_a_touch_that_comes_after_its_days_report_is_counted_late() -> None:
    assigner = Assigner(Segmenter(holdout_share=0.0), sample_rate=0.0)
    assigner.adopt(0, [])
    veteran = CustomerState(first_ts=T0 - 40 * DAY_MS, organic=True)
    assert assigner.passes_day(0, T0 + HOUR)  # the partition's first event: its clock starts
    opened = assigner.step(0, {}, T0 + HOUR, {}.get, 0)
    assert [(r.day, r.touches) for r in opened.reports] == [(T0, None)]  # the boundary before
    assigner.touched(0, T0 + HOUR, veteran)  # counting starts (a partial day)
    assigner.touched(0, T0 + DAY_MS + HOUR, veteran)
    step = assigner.step(0, {}, T0 + 2 * DAY_MS + HOUR, {}.get, 0)
    assert [r.touches for r in step.reports] == [None, [0, 0, 0, 0, 1]]
    assert step.late_touches == 0
    assigner.touched(0, T0 + DAY_MS + 2 * HOUR, veteran)  # day 1's, consumed after its report
    step = assigner.step(0, {}, T0 + 3 * DAY_MS + HOUR, {}.get, 0)
    assert [r.touches for r in step.reports] == [[0, 0, 0, 0, 0]] and step.late_touches == 1


def test_a_restored_detector_tests_the_next_day_and_keeps_its_hold() -> None:
    rng = np.random.default_rng(3)
    wave = _population(rng, 60, lambda d: 1.0 if d < 40 else 0.85)
    det = ActivityDrift()
    for d in range(30):
        assert det.update((d + 1) * DAY_MS, wave[d]) is None
    restarted = ActivityDrift()
    restarted.restore(json.loads(json.dumps(det.state())))
    assert restarted.state() == det.state() and restarted.newest == det.newest == 29
    hits = [d for d in range(30, 60) if restarted.update((d + 1) * DAY_MS, wave[d])]
    kept = [d for d in range(30, 60) if det.update((d + 1) * DAY_MS, wave[d])]
    fresh = ActivityDrift()  # a restart without the state: blind for three weeks
    blind = [d for d in range(30, 60) if fresh.update((d + 1) * DAY_MS, wave[d])]
    print("fall on day 40 detected: restored", hits, "never stopped", kept, "fresh", blind)
    assert hits and 40 <= hits[0] <= 42, hits  # within 3 days, as issue 5 asks
    assert kept and 40 <= kept[0] <= 42 and all(d >= 51 for d in blind), (kept, blind)
    held = ActivityDrift()
    held.restore(restarted.state())  # restored just after the detection: still holding
    assert held.state()["hold_until"] == hits[0] + 21
    assert not [d for d in range(60, 61) if held.update((d + 1) * DAY_MS, [0, 0, 0, 0, 1])]


@pytest.mark.parametrize(
    "state",
    [
        None,
        {},
        {"days": [[1, [1, 2, 3, 4, 5]]]},
        {"days": [[1, [1, 2, 3]]], "hold_until": -1},
        {"days": [[1, [1, 2, 3, 4, -5]]], "hold_until": -1},
        {"days": [[2, None], [1, None]], "hold_until": -1},
        {"days": [[d, None] for d in range(23)], "hold_until": -1},
        {"days": [["x", None]], "hold_until": -1},
    ],
)
def test_restore_refuses_what_is_not_a_state(state: object) -> None:
    det = ActivityDrift()
    det.update(DAY_MS, [0, 0, 0, 0, 9])
    with pytest.raises(ValueError, match="not an activity state"):
        det.restore(state)
    assert det.newest == 0  # unchanged
