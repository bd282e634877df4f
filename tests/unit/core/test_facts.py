"""The fact path is the event path, exactly: facts, apply, features, engine orders, outputs.

`fact_of` + `apply_fact` replaced an `apply` that read the event model directly, `vector` was
written out, the offline engine applies facts customer by customer when no stage watches, and
the features JSONL is written from ``%.9g`` text. Each is pinned here, bit for bit, against the
straightforward definition it replaced (kept below as the reference).
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from stream.core.engine import Engine
from stream.core.events import STREAM_OF_TYPE, ClickEvent, PurchaseEvent, Stream, event_time_ms
from stream.core.events import parse_event as parse
from stream.core.facts import _CHANNEL, _CLICK_SUM, _EMAIL_SUM, _REBASE, EFFECTS, apply, fact_of
from stream.core.features import (
    _TAU7,
    _TAU30,
    BOUNCES,
    CH_WEB,
    DAY_MS,
    DISCOUNTED,
    EVENTS,
    FEATURES,
    H7,
    H30,
    LATE_NIGHT,
    NAMES,
    PER_HORIZON,
    PURCHASES,
    REFUND_AMOUNT,
    REFUNDS,
    SENT,
    SESSIONS,
    SPEND,
    TAU_MS,
    UNSUBSCRIBES,
    WEEKEND,
    vector,
)
from stream.core.ingest import Ingest
from stream.core.outputs import json_line
from stream.core.render import _features_jsonl, _num, render_outputs
from stream.core.state import (
    N_SUMS,
    NO_TIME,
    TOUCH_CLICK,
    TOUCH_ORGANIC,
    TOUCH_OTHER,
    CustomerState,
)
from stream.core.validation import Limits, Validator
from stream.replay import numbered_lines, sourced_lines

# --- the reference: the definitions the fact path replaced ----------------------------------


def ref_apply(state: CustomerState, event: Any, t: int | None = None) -> None:
    """Fold one event into ``state`` by reading the model (the former `features.apply`)."""
    if t is None:
        t = event_time_ms(event.ts)
    t0 = state.t0
    if t0 == NO_TIME:
        state.t0 = t0 = t
    elif (t - t0) / _TAU7 > _REBASE:
        sums = state.sums
        for h, tau in ((H7, _TAU7), (H30, _TAU30)):
            f = math.exp(-(t - t0) / tau)
            for i in range(h, h + PER_HORIZON):
                sums[i] *= f
        f30 = math.exp(-(t - t0) / _TAU30)
        for i in range(CH_WEB, N_SUMS):
            sums[i] *= f30
        state.t0 = t0 = t
    d = t - t0
    g7, g30 = math.exp(d / _TAU7), math.exp(d / _TAU30)
    s = state.sums
    s[EVENTS] += g7
    s[H30 + EVENTS] += g30
    kind = event.type
    if isinstance(event, ClickEvent):
        idx = _CLICK_SUM.get(kind)
        if idx is not None:
            s[idx] += g7
            s[H30 + idx] += g30
        channel = event.channel
    elif isinstance(event, PurchaseEvent):
        if kind == "purchase":
            s[PURCHASES] += g7
            s[H30 + PURCHASES] += g30
            s[SPEND] += event.amount * g7
            s[H30 + SPEND] += event.amount * g30
            if (event.discount or 0) > 0 or event.coupon_code:
                s[DISCOUNTED] += g7
                s[H30 + DISCOUNTED] += g30
            if t > state.last_purchase_ts:
                state.last_purchase_ts = t
        else:
            s[REFUNDS] += g7
            s[H30 + REFUNDS] += g30
            s[REFUND_AMOUNT] += event.amount * g7
            s[H30 + REFUND_AMOUNT] += event.amount * g30
        channel = event.channel
    else:
        idx = _EMAIL_SUM.get(kind)
        if idx is not None:
            s[idx] += g7
            s[H30 + idx] += g30
        elif kind == "email_bounce":
            s[BOUNCES] += g30
        elif kind in ("email_unsubscribe", "email_complaint"):
            s[UNSUBSCRIBES] += g30
        channel = None
    if channel is not None:
        s[_CHANNEL[channel.value]] += g30
    if event.ts.weekday() >= 5:
        s[WEEKEND] += g30
    if event.ts.hour >= 22 or event.ts.hour < 6:
        s[LATE_NIGHT] += g30
    if t > state.last_ts:
        state.last_ts = t
    own = kind not in ("email_sent", "email_delivered", "email_bounce")
    if own and t >= state.last_active_ts:
        touch = TOUCH_OTHER
        if kind == "email_click":
            touch = TOUCH_CLICK
        elif kind in ("session_start", "purchase") and not (
            state.touch == TOUCH_CLICK and t - state.last_active_ts < 2 * 3_600_000
        ):
            touch = TOUCH_ORGANIC
        state.touch = touch
        state.last_active_ts = t
    if state.first_ts == NO_TIME or t < state.first_ts:
        state.first_ts = t


def _ratio(a: float, b: float) -> float:
    return a / b if b > 1e-12 else 0.0


def ref_vector(state: CustomerState, at: int) -> list[float]:
    """The feature values of ``state`` at ``at`` (the former `features.vector`)."""
    if state.t0 == NO_TIME:
        return [0.0] * len(FEATURES)
    d7 = math.exp(-(at - state.t0) / TAU_MS[0])
    d30 = math.exp(-(at - state.t0) / TAU_MS[1])
    s = state.sums
    a7 = [x * d7 for x in s[H7 : H7 + PER_HORIZON]]
    a30 = [x * d30 for x in s[H30 : H30 + PER_HORIZON]]
    web, mobile, app, store, other, weekend, late, unsub, bounces = [x * d30 for x in s[CH_WEB:]]
    channels = web + mobile + app + store + other
    tenure = max(0.0, (at - state.first_ts) / DAY_MS)
    if state.last_purchase_ts == NO_TIME:
        recency_purchase = min(tenure, 365.0)
    else:
        recency_purchase = min(max(0.0, (at - state.last_purchase_ts) / DAY_MS), 365.0)
    carts, purchases30 = a30[11], a30[PURCHASES]
    if state.last_active_ts == NO_TIME:
        recency = min(tenure, 365.0)
    else:
        recency = min(max(0.0, (at - state.last_active_ts) / DAY_MS), 365.0)
    return [
        recency_purchase,
        recency,
        min(tenure, 3650.0),
        a7[PURCHASES],
        purchases30,
        a7[SPEND],
        a30[SPEND],
        _ratio(a30[SPEND], purchases30),
        min(_ratio(a30[DISCOUNTED], purchases30), 1.0),
        _ratio(a30[REFUNDS], purchases30),
        min(_ratio(a30[7], a30[SENT]), 1.0),
        min(_ratio(a30[8], a30[SENT]), 1.0),
        unsub,
        bounces,
        a7[SESSIONS],
        a30[SESSIONS],
        _ratio(a30[10], a30[SESSIONS]) if a30[SESSIONS] > 1e-12 else a30[10],
        carts,
        min(max(0.0, _ratio(carts - purchases30, carts)), 1.0),
        a30[13],
        _ratio(web, channels),
        _ratio(mobile, channels),
        _ratio(app, channels),
        _ratio(store, channels),
        min(_ratio(weekend, a30[EVENTS]), 1.0),
        min(_ratio(late, a30[EVENTS]), 1.0),
        min(_ratio(a7[EVENTS] / 7.0, a30[EVENTS] / 30.0), 30 / 7),
        min(_ratio(a7[SPEND] / 7.0, a30[SPEND] / 30.0), 30 / 7),
        a30[EVENTS],
        a30[SENT],
        recency * (a30[EVENTS] / 30.0) * math.exp(recency / 30.0),
    ]


def ref_features_jsonl(features: dict[str, list[float]]) -> bytes:
    """The features JSONL written the plain way (one ``json.dumps`` per customer)."""
    return b"".join(
        json.dumps(
            {"customer_id": cid, "features": dict(zip(NAMES, map(_num, vals), strict=True))},
            sort_keys=True,
            separators=(",", ":"),
        ).encode()
        + b"\n"
        for cid, vals in features.items()
    )


# --- events ---------------------------------------------------------------------------------

_TYPES = sorted(STREAM_OF_TYPE)
_CHANNELS = [None, "web", "mobile", "app", "store", "phone", "other"]
_OFFSETS = [-12 * 60, -9 * 60 - 30, -5 * 60, 0, 60, 5 * 60 + 30, 5 * 60 + 45, 14 * 60]


@st.composite
def event_dicts(draw: st.DrawFn, i: int, customer: str = "c") -> dict[str, Any]:
    """One valid event (JSON object) of any type, channel, local time and amount."""
    kind = draw(st.sampled_from(_TYPES))
    tz = timezone(timedelta(minutes=draw(st.sampled_from(_OFFSETS))))
    ms = draw(st.integers(0, 900 * 86_400_000))
    ts = (datetime(2023, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)).astimezone(tz)
    if draw(st.booleans()):
        ts += timedelta(microseconds=draw(st.integers(0, 999)))
    obj: dict[str, Any] = {"event_id": f"{customer}-{i}", "customer_id": customer, "type": kind}
    obj["ts"] = ts.isoformat().replace("+00:00", draw(st.sampled_from(["+00:00", "Z"])))
    stream = STREAM_OF_TYPE[kind]
    if stream is Stream.EMAIL:
        obj["campaign_id"] = "k"
        return obj
    channel = draw(st.sampled_from(_CHANNELS))
    if channel:
        obj["channel"] = channel
    if stream is Stream.PURCHASES:
        obj["order_id"] = f"o{i}"
        obj["amount"] = draw(st.floats(0, 1e6))
        discount = draw(st.sampled_from([None, 0.0, 2.5]))
        if discount is not None:
            obj["discount"] = discount
        coupon = draw(st.sampled_from([None, "", "C"]))
        if coupon is not None:
            obj["coupon_code"] = coupon
    return obj


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_a_fact_holds_the_event_time_and_what_the_event_adds_to(data: st.DataObject) -> None:
    event = parse(json.dumps(data.draw(event_dicts(0))))
    t, effect, amount = fact_of(event)
    assert t == event_time_ms(event.ts)
    assert effect.type == event.type
    assert effect is EFFECTS[effect.code]
    assert (WEEKEND in effect.plus30) == (event.ts.weekday() >= 5)
    assert (LATE_NIGHT in effect.plus30) == (event.ts.hour >= 22 or event.ts.hour < 6)
    assert amount == (event.amount if isinstance(event, PurchaseEvent) else 0.0)
    assert fact_of(event, 123) == (123, effect, amount)


_ZONES = [UTC, timezone(timedelta(hours=-11, minutes=-30)), timezone(timedelta(hours=13)),
          timezone(timedelta(seconds=-3599)), timezone(timedelta(microseconds=1500))]  # fmt: skip


@given(
    st.datetimes(
        min_value=datetime(1900, 1, 1),
        max_value=datetime(2200, 1, 1),
        timezones=st.sampled_from(_ZONES),
    )
)
def test_the_fact_time_is_the_event_time_for_any_aware_datetime(ts: datetime) -> None:
    event = ClickEvent.model_construct(event_id="e", customer_id="c", ts=ts, type="page_view")
    assert fact_of(event)[0] == event_time_ms(ts)


@settings(max_examples=150, deadline=None)
@given(st.data(), st.integers(1, 40))
def test_facts_fold_into_exactly_the_state_events_did(data: st.DataObject, n: int) -> None:
    events = [parse(json.dumps(data.draw(event_dicts(i)))) for i in range(n)]
    mine, ref = CustomerState(), CustomerState()
    for event in events:
        apply(mine, event)
        ref_apply(ref, event)
    assert mine == ref  # every sum and time, bit for bit
    for at in (ref.last_ts, ref.last_ts + data.draw(st.integers(-30 * DAY_MS, 900 * DAY_MS))):
        assert vector(mine, at) == ref_vector(ref, at)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.floats(0, 1e12) | st.sampled_from([0.0, 1e-13, 1e-12, 2e-12]), min_size=N_SUMS,
             max_size=N_SUMS),
    st.lists(st.integers(-400 * DAY_MS, 400 * DAY_MS), min_size=6, max_size=6),
    st.booleans(),
    st.booleans(),
)  # fmt: skip
def test_vector_is_the_reference_definition(
    sums: list[float], times: list[int], bought: bool, acted: bool
) -> None:
    t0, first, last, purchase, active, at = (1_700_000_000_000 + x for x in times)
    state = CustomerState(sums=sums, t0=t0, first_ts=first, last_ts=last)
    state.last_purchase_ts = purchase if bought else NO_TIME
    state.last_active_ts = active if acted else NO_TIME
    assume(all(math.isfinite(x) for x in ref_vector(state, at)))
    assert vector(state, at) == ref_vector(state, at)
    assert vector(CustomerState(), at) == ref_vector(CustomerState(), at)


# --- the engine: customer by customer without stages, in time order with them ----------------


class Watcher:
    """A stage that records what it sees (it makes the engine apply in time order)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, int]] = []

    def before_applied(self, t: int) -> None:
        pass

    def on_applied(self, customer_id: str, state: CustomerState, event_id: str, t: int) -> None:
        self.seen.append((customer_id, event_id, t))

    def finish(self, watermark: int, out: dict[str, list[bytes]]) -> None:
        out["seen"] = [json_line({"n": len(self.seen)})]

    def report(self) -> dict[str, Any]:
        return {}

    def forget(self, customer_id: str) -> None:
        pass


@st.composite
def mixed_lines(draw: st.DrawFn) -> list[tuple[str, int, bytes]]:
    """Events of a few customers, with re-sends, exact duplicates, bad lines, any order."""
    lines = []
    for c in range(draw(st.integers(1, 5))):
        for i in range(draw(st.integers(1, 15))):
            obj = draw(event_dicts(i, customer=f"cust-{c}"))
            lines.append(json.dumps(obj).encode())
    for _ in range(draw(st.integers(0, 6))):
        lines.append(draw(st.sampled_from(lines)))  # re-sent (same line), maybe much later
    lines += draw(st.lists(st.sampled_from([b"{", b"[]", b'{"type":"fax"}']), max_size=3))
    order = draw(st.permutations(range(len(lines))))
    return [("in.jsonl", n + 1, lines[j]) for n, j in enumerate(order)]


@settings(max_examples=80, deadline=None)
@given(mixed_lines(), st.integers(0, 3))
def test_customer_by_customer_is_time_order_without_stages(
    lines: list[tuple[str, int, bytes]], cut: int
) -> None:
    watcher = Watcher()
    plain, watched = (
        Engine(Ingest(check_future=False)),
        Engine(Ingest(check_future=False), [watcher]),
    )
    for engine in (plain, watched):  # two runs: the offsets carry on
        engine.feed(lines[cut:])
    first = (plain.run(), watched.run())
    seen_first = len(watcher.seen)
    for engine in (plain, watched):
        engine.feed(lines[:cut])
    second = (plain.run(), watched.run())
    for a, b in (first, second):
        assert list(a.counts.items()) == list(b.counts.items())
        assert list(a.by_type.items()) == list(b.by_type.items())
        assert a.watermark == b.watermark
        assert a.features == b.features
        assert a.dead_letters == b.dead_letters
    assert list(plain.states) == list(watched.states)  # created in order of first event
    for cid, state in plain.states.items():
        assert state.encode() == watched.states[cid].encode()
    for seen in (watcher.seen[:seen_first], watcher.seen[seen_first:]):
        times = [t for _, _, t in seen]
        assert times == sorted(times)  # each run in time order
    assert len(watcher.seen) == second[1].counts["accepted"]
    assert render_outputs(second[0], {}) == {
        k: v for k, v in render_outputs(second[1], {}).items() if k != "seen.jsonl"
    }


# --- the features JSONL ---------------------------------------------------------------------

# Values the fast text path must get right, or leave to the plain path.
_EDGES = [0.0, 1.0, 0.5, 2.0, 1e-5, 1e-4, 9.99999999e-5, 0.000099999999996, 0.9999999999,
          1.0000000004, 3.0000000001, 2.9999999996, 365.0, 99999999.95, 999999999.4, 999999999.6,
          1e9, 1.5e16, 5e-324, 3e-320, 2.2250738585072014e-308, 2.225073858507201e-308, 1e-300,
          1.0000001e-300, 1e-310]  # fmt: skip
_ODD = [-0.0, -2.5, -1e-300, math.inf, -math.inf, math.nan]

# Rows mostly without values that send a customer the plain way, so the fast path is tested.
_VALUES = (
    st.floats(0, 1e4)
    | st.sampled_from([0.0, 1.0])
    | st.floats(0, 1e-290)
    | st.sampled_from(_EDGES)
    | st.floats(0, 1e300)
)
_ROWS = st.lists(_VALUES, min_size=len(NAMES), max_size=len(NAMES)) | st.lists(
    _VALUES | st.sampled_from(_ODD) | st.floats(), min_size=len(NAMES), max_size=len(NAMES)
)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.text(max_size=6), _ROWS, max_size=4))
def test_the_features_jsonl_is_json_dumps_of_the_rounded_values(
    features: dict[str, list[float]],
) -> None:
    assert _features_jsonl(features) == ref_features_jsonl(features)


@pytest.mark.parametrize("value", _EDGES + _ODD)
def test_each_edge_value_is_written_as_json_dumps_does(value: float) -> None:
    for j in range(len(NAMES)):
        vals = [0.3 * i + 0.01 for i in range(len(NAMES))]  # (none whole: the fast path)
        vals[j] = value
        assert _features_jsonl({"c": vals}) == ref_features_jsonl({"c": vals}), (j, value)


# --- lines and validation -------------------------------------------------------------------


def ref_lines(data: bytes) -> list[tuple[int, bytes]]:
    """``(number, line)`` of non-blank lines, line by line (the former reader)."""
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    out = []
    for number, line in enumerate(lines, 1):
        line = line.rstrip(b"\r")
        if line.strip():
            out.append((number, line))
    return out


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.sampled_from([b"{}", b"", b" ", b"\r", b"\t\r", b'{"a":1}\r\r', b"x", b"\x0b"])),
    st.booleans(),
    st.sampled_from([1, 2, 3, 7, 1 << 20]),
)
def test_lines_are_read_as_one_by_one(
    tmp_path_factory: pytest.TempPathFactory, parts: list[bytes], newline: bool, block: int
) -> None:
    data = b"\n".join(parts) + (b"\n" if newline else b"")
    path = tmp_path_factory.mktemp("lines") / "in.jsonl"
    path.write_bytes(data)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("stream.replay._BLOCK", block)
        assert list(numbered_lines(path)) == ref_lines(data)
        assert list(sourced_lines(path)) == [("in.jsonl", n, ln) for n, ln in ref_lines(data)]


@pytest.mark.parametrize(
    "line",
    [
        b'{"event_id":"e","customer_id":"c","type":"page_view","ts":"2024-03-01T00:00:00Z"}',
        b'{"event_id":"e","customer_id":"c","type":"page_view","ts":"2024-03-09T00:00:00Z"}',
        b'{"event_id":"e","customer_id":"c","type":"page_view","ts":"2024-03-01"}',
        b'{"event_id":"e","type":"purchase","ts":"2024-03-01T00:00:00Z","amount":-1}',
        b"[1]",
        b"{",
        b"x" * 300,
    ],
)
def test_validate_line_is_validate_of_an_unkeyed_record(line: bytes) -> None:
    validator = Validator(Limits(max_message_bytes=200, future_tolerance_ms=86_400_000))
    ref_ms = event_time_ms(datetime(2024, 3, 2, tzinfo=UTC))
    for reference in (None, ref_ms):
        want = validator.validate(line, None, reference_ms=reference, keyed=False)
        assert validator.validate_line(line, reference) == want


def test_replay_reads_a_file_without_blank_lines_in_one_go(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_bytes(b"{}\n{}\r\n{}")
    assert list(sourced_lines(path)) == [("a.jsonl", 1, b"{}"), ("a.jsonl", 2, b"{}"),
                                         ("a.jsonl", 3, b"{}")]  # fmt: skip
