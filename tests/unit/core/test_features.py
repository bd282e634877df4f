"""The meaning of every feature in the catalogue, pinned on small hand-computed cases.

Decayed sums: an event at t contributes w · exp(-(T − t) / τ) at evaluation time T, τ = 7 or 30
days. Every expected number below is written out by hand from that definition.
"""

from __future__ import annotations

import itertools
import json
import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream.core.events import STREAM_OF_TYPE, Stream, event_time_ms, parse_event
from stream.core.facts import apply
from stream.core.features import FEATURES, NAMES, as_dict, vector
from stream.core.state import CustomerState

T = datetime(2024, 3, 20, 12, 0, tzinfo=UTC)  # a Wednesday, mid-day
E7 = math.exp  # e^x, so E7(-3 / 7) reads as the 7-day weight of an event 3 days back
REL = 2e-6  # the sums are float32 (in memory as encoded): a few roundings of 6e-8 each


_ids = itertools.count()


def e(kind: str, at: datetime | str, **fields: Any) -> Any:
    """A parsed contract event of ``kind`` at ``at`` (an aware datetime or an RFC 3339 string)."""
    n = next(_ids)
    ts = at if isinstance(at, str) else at.isoformat()
    obj: dict[str, Any] = {"event_id": f"e{n}", "customer_id": "c", "type": kind, "ts": ts}
    stream = STREAM_OF_TYPE[kind]
    if stream is Stream.EMAIL:
        obj["campaign_id"] = "k"
    elif stream is Stream.PURCHASES:
        obj["order_id"] = f"o{n}"
        obj["amount"] = 10.0
    obj.update(fields)
    return parse_event(json.dumps(obj))


def days(n: float) -> timedelta:
    return timedelta(days=n)


def features(events: list[Any], at: datetime = T) -> dict[str, float]:
    s = CustomerState()
    for ev in events:
        apply(s, ev)
    return as_dict(vector(s, event_time_ms(at)))


def close(a: float, b: float, rel: float = REL) -> bool:
    return math.isclose(a, b, rel_tol=rel, abs_tol=1e-12)


# --- the catalogue itself -------------------------------------------------------------------


def test_every_feature_is_documented_and_the_vector_matches_the_catalogue() -> None:
    assert len(FEATURES) == 31
    assert len(set(NAMES)) == len(NAMES) == len(FEATURES)
    assert [f.name for f in FEATURES] == list(NAMES)
    for f in FEATURES:
        assert f.meaning.strip(), f.name
        assert f.unit.strip(), f.name
        assert f.low == 0
        assert f.high is None or f.high > f.low
    empty = vector(CustomerState(), event_time_ms(T))
    assert len(empty) == len(FEATURES)
    assert empty == [0.0] * len(FEATURES)
    one = vector(_state([e("page_view", T - days(1), channel="web")]), event_time_ms(T))
    assert len(one) == len(FEATURES)
    assert list(as_dict(one)) == list(NAMES)
    with pytest.raises(ValueError, match="zip"):
        as_dict([0.0] * (len(FEATURES) - 1))


def _state(events: list[Any]) -> CustomerState:
    s = CustomerState()
    for ev in events:
        apply(s, ev)
    return s


# --- purchases ------------------------------------------------------------------------------


def test_one_purchase_three_days_before_evaluation() -> None:
    f = features([e("purchase", T - days(3), amount=100.0)])
    assert close(f["purchases_7d"], E7(-3 / 7))
    assert close(f["purchases_30d"], E7(-3 / 30))
    assert close(f["spend_7d"], 100 * E7(-3 / 7))
    assert close(f["spend_30d"], 100 * E7(-3 / 30))
    assert close(f["avg_order_value_30d"], 100.0)
    assert f["discount_share_30d"] == 0.0
    assert f["refund_rate_30d"] == 0.0
    assert close(f["recency_purchase_days"], 3.0)
    assert close(f["recency_activity_days"], 3.0)
    assert close(f["tenure_days"], 3.0)
    trend = (E7(-3 / 7) / 7) / (E7(-3 / 30) / 30)  # = 30/7 · e^(−3/7 + 1/10) ≈ 3.09
    assert close(f["activity_trend"], trend)
    assert close(f["spend_trend"], trend)
    assert f["activity_trend"] < 30 / 7


def test_average_order_value_is_decayed_spend_over_decayed_orders() -> None:
    f = features(
        [e("purchase", T - days(3), amount=100.0), e("purchase", T - days(10), amount=50.0)]
    )
    w3, w10 = E7(-3 / 30), E7(-10 / 30)
    assert close(f["purchases_30d"], w3 + w10)
    assert close(f["spend_30d"], 100 * w3 + 50 * w10)
    assert close(f["avg_order_value_30d"], (100 * w3 + 50 * w10) / (w3 + w10))
    assert close(f["spend_7d"], 100 * E7(-3 / 7) + 50 * E7(-10 / 7))
    # two orders at the same instant: a plain mean
    g = features([e("purchase", T, amount=30.0), e("purchase", T, amount=90.0)])
    assert close(g["avg_order_value_30d"], 60.0)
    assert close(g["purchases_30d"], 2.0)


def test_discount_share_counts_a_discount_or_a_coupon() -> None:
    f = features(
        [
            e("purchase", T, discount=5.0),
            e("purchase", T, coupon_code="SPRING"),
            e("purchase", T, discount=0.0),  # a zero discount is no discount
            e("purchase", T),
            e("refund", T, discount=3.0),  # refunds are not orders
        ]
    )
    assert close(f["discount_share_30d"], 2 / 4)
    # decayed: the discounted order 10 days ago, the full-price one today
    g = features([e("purchase", T - days(10), discount=1.0), e("purchase", T)])
    assert close(g["discount_share_30d"], E7(-10 / 30) / (E7(-10 / 30) + 1))


def test_refund_rate_is_refunds_over_purchases_and_may_exceed_one() -> None:
    f = features([e("purchase", T, amount=40.0), e("purchase", T), e("refund", T, amount=40.0)])
    assert close(f["refund_rate_30d"], 1 / 2)
    # a refund is neither an order nor spend
    assert close(f["purchases_30d"], 2.0)
    assert close(f["spend_30d"], 50.0)
    g = features([e("purchase", T), e("refund", T), e("refund", T), e("refund", T)])
    assert close(g["refund_rate_30d"], 3.0)


# --- rates with nothing to divide by --------------------------------------------------------


def test_rates_with_a_zero_denominator_are_zero() -> None:
    f = features(
        [
            e("email_open", T - days(1)),
            e("email_click", T - days(1)),
            e("refund", T - days(1), amount=20.0),
            e("remove_from_cart", T - days(1)),
            e("session_start", T - days(1)),  # no channel: no channel share either
        ]
    )
    for name in (
        "email_open_rate_30d",
        "email_click_rate_30d",
        "refund_rate_30d",
        "avg_order_value_30d",
        "discount_share_30d",
        "cart_abandonment_30d",
        "share_web",
        "share_mobile",
        "share_app",
        "share_store",
        "spend_trend",
        "purchases_30d",
        "spend_30d",
        "add_to_cart_30d",
    ):
        assert f[name] == 0.0, name
    assert close(f["activity_trend"], 30 / 7 * E7(-1 / 7 + 1 / 30))


# --- e-mail ---------------------------------------------------------------------------------


def test_three_sends_two_opens_one_click() -> None:
    evs = [e("email_sent", T - days(2)) for _ in range(3)]
    evs += [e("email_open", T - days(2)) for _ in range(2)] + [e("email_click", T - days(2))]
    evs += [e("email_delivered", T - days(2))]  # counts as activity only
    f = features(evs)
    assert close(f["email_open_rate_30d"], 2 / 3)
    assert close(f["email_click_rate_30d"], 1 / 3)
    assert f["unsubscribes_30d"] == 0.0
    assert f["bounces_30d"] == 0.0


def test_email_rates_are_decayed_and_capped_at_one() -> None:
    f = features(
        [e("email_sent", T - days(10)) for _ in range(3)]
        + [e("email_open", T - days(1)) for _ in range(2)]
    )
    assert close(f["email_open_rate_30d"], 2 * E7(-1 / 30) / (3 * E7(-10 / 30)))
    g = features([e("email_sent", T), e("email_open", T), e("email_open", T), e("email_click", T)])
    assert g["email_open_rate_30d"] == 1.0  # 2 opens per send, capped
    assert close(g["email_click_rate_30d"], 1.0)
    h = features([e("email_sent", T - days(20)), e("email_click", T)])
    assert h["email_click_rate_30d"] == 1.0  # e^(20/30) > 1, capped


def test_unsubscribes_include_complaints_and_bounces_are_separate() -> None:
    f = features(
        [
            e("email_unsubscribe", T - days(2)),
            e("email_complaint", T - days(5)),
            e("email_bounce", T - days(4)),
            e("email_sent", T - days(4)),
        ]
    )
    assert close(f["unsubscribes_30d"], E7(-2 / 30) + E7(-5 / 30))
    assert close(f["bounces_30d"], E7(-4 / 30))
    assert close(f["email_open_rate_30d"], 0.0)


# --- clickstream ----------------------------------------------------------------------------


def test_sessions_and_views_per_session() -> None:
    evs = [e("session_start", T - days(1)) for _ in range(2)]
    evs += [e("page_view", T - days(1)) for _ in range(3)]
    evs += [e("product_view", T - days(1)) for _ in range(2)]
    evs += [e("search", T - days(1))]  # neither a session nor a view
    f = features(evs)
    assert close(f["sessions_7d"], 2 * E7(-1 / 7))
    assert close(f["sessions_30d"], 2 * E7(-1 / 30))
    assert close(f["views_per_session_30d"], 5 / 2)
    # views and sessions at different times: both decayed with τ = 30 d
    g = features([e("session_start", T - days(6)), e("page_view", T)])
    assert close(g["views_per_session_30d"], 1 / E7(-6 / 30))


def test_views_per_session_is_the_views_when_there_is_no_session() -> None:
    f = features([e("page_view", T - days(2)) for _ in range(3)])
    assert close(f["views_per_session_30d"], 3 * E7(-2 / 30))
    assert f["sessions_30d"] == 0.0


def test_add_to_cart_and_cart_abandonment() -> None:
    evs = [e("add_to_cart", T - days(1)) for _ in range(4)]
    evs += [e("purchase", T - days(1))]
    evs += [e("remove_from_cart", T - days(1)), e("checkout_start", T - days(1))]
    f = features(evs)
    assert close(f["add_to_cart_30d"], 4 * E7(-1 / 30))
    assert close(f["cart_abandonment_30d"], 3 / 4)
    # more orders than carts: nothing abandoned (never negative)
    g = features([e("add_to_cart", T), e("purchase", T), e("purchase", T)])
    assert g["cart_abandonment_30d"] == 0.0
    # decayed: a cart 10 days ago, an order today
    h = features([e("add_to_cart", T - days(10)), e("add_to_cart", T - days(10)), e("purchase", T)])
    carts = 2 * E7(-10 / 30)
    assert close(h["cart_abandonment_30d"], (carts - 1) / carts)


def test_searches() -> None:
    f = features([e("search", T - days(3), query="shoes"), e("search", T - days(3))])
    assert close(f["searches_30d"], 2 * E7(-3 / 30))


def test_channel_shares_count_phone_and_other_in_the_denominator() -> None:
    f = features(
        [
            e("page_view", T, channel="web"),
            e("search", T, channel="web"),
            e("page_view", T, channel="mobile"),
            e("session_start", T, channel="app"),
            e("purchase", T, channel="store"),
            e("purchase", T, channel="phone"),
            e("page_view", T, channel="other"),
            e("page_view", T),  # untagged: not in the denominator
            e("email_open", T),  # e-mail has no channel
        ]
    )
    assert close(f["share_web"], 2 / 7)
    assert close(f["share_mobile"], 1 / 7)
    assert close(f["share_app"], 1 / 7)
    assert close(f["share_store"], 1 / 7)
    g = features([e("page_view", T - days(30), channel="web"), e("refund", T, channel="app")])
    w = E7(-1.0)
    assert close(g["share_web"], w / (w + 1))
    assert close(g["share_app"], 1 / (w + 1))


# --- local time -----------------------------------------------------------------------------


def test_weekend_and_late_night_use_the_events_own_offset() -> None:
    # one instant, 2024-03-22T23:30Z (a Friday night in UTC), seen in four local times
    same_instant = [
        "2024-03-23T08:30:00+09:00",  # Saturday morning: weekend, not late
        "2024-03-23T01:30:00+02:00",  # Saturday 01:30: weekend and late
        "2024-03-22T23:30:00+00:00",  # Friday 23:30: late only
        "2024-03-22T13:30:00-10:00",  # Friday afternoon: neither
    ]
    at = datetime(2024, 3, 22, 23, 30, tzinfo=UTC)
    f = features([e("page_view", ts) for ts in same_instant], at)
    assert close(f["weekend_share_30d"], 2 / 4)
    assert close(f["late_night_share_30d"], 2 / 4)


@pytest.mark.parametrize(
    ("ts", "weekend", "late"),
    [
        ("2024-03-20T23:30:00+02:00", 0.0, 1.0),  # 21:30 UTC: late only in local time
        ("2024-03-21T08:00:00+09:00", 0.0, 0.0),  # 23:00 UTC, but morning locally
        ("2024-03-23T05:00:00+09:00", 1.0, 1.0),  # Saturday locally, Friday 20:00 UTC
        ("2024-03-25T02:00:00+09:00", 0.0, 1.0),  # Monday locally, Sunday 17:00 UTC
        ("2024-03-24T22:00:00-05:00", 1.0, 1.0),  # Sunday 22:00 locally, Monday 03:00 UTC
        ("2024-03-20T22:00:00+00:00", 0.0, 1.0),  # 22:00 is night
        ("2024-03-20T21:59:59+00:00", 0.0, 0.0),
        ("2024-03-21T05:59:59+00:00", 0.0, 1.0),
        ("2024-03-21T06:00:00+00:00", 0.0, 0.0),  # 06:00 is morning
        ("2024-03-23T00:00:00+00:00", 1.0, 1.0),  # Saturday starts at midnight
        ("2024-03-24T23:59:59+00:00", 1.0, 1.0),
        ("2024-03-25T00:00:00+00:00", 0.0, 1.0),  # Monday
    ],
)
def test_weekend_and_late_night_of_one_event(ts: str, weekend: float, late: float) -> None:
    at = datetime.fromisoformat(ts)
    f = features([e("email_open", ts)], at)
    assert f["weekend_share_30d"] == weekend
    assert f["late_night_share_30d"] == late


def test_weekend_share_is_decayed() -> None:
    sat = datetime(2024, 3, 9, 12, tzinfo=timezone(timedelta(hours=1)))  # T − ~11 days
    f = features([e("page_view", sat), e("page_view", T)])
    w = E7(-(T - sat).total_seconds() / 86_400 / 30)
    assert close(f["weekend_share_30d"], w / (w + 1))
    assert f["late_night_share_30d"] == 0.0


# --- time since ---------------------------------------------------------------------------


def test_recency_and_tenure() -> None:
    f = features(
        [
            e("email_sent", T - days(40)),
            e("purchase", T - days(10)),
            e("refund", T - days(5)),  # a refund is not a purchase
            e("page_view", T - days(2)),
        ]
    )
    assert close(f["recency_purchase_days"], 10.0)
    assert close(f["recency_activity_days"], 2.0)
    assert close(f["tenure_days"], 40.0)
    # the newest purchase counts, whatever the order they were applied in
    g = features([e("purchase", T - days(1)), e("purchase", T - days(9))])
    assert close(g["recency_purchase_days"], 1.0)
    h = features([e("page_view", T - timedelta(hours=36))])
    assert close(h["recency_activity_days"], 1.5)


def test_recency_of_activity_ignores_what_was_sent_to_the_customer() -> None:
    # a customer who went quiet 9 days ago and is still mailed: the sends are no sign of life
    mailed = [e("session_start", T - days(9), session_id="s", channel="web")]
    for d in (6, 3, 1):
        mailed += [e("email_sent", T - days(d)), e("email_delivered", T - days(d)),
                   e("email_bounce", T - days(d))]  # fmt: skip
    f = features(mailed)
    assert close(f["recency_activity_days"], 9.0)
    assert close(f["emails_sent_30d"], sum(math.exp(-d / 30) for d in (6, 3, 1)))
    # what the customer does with an e-mail is theirs: opening, clicking, unsubscribing
    for kind in ("email_open", "email_click", "email_unsubscribe", "email_complaint"):
        assert close(features([*mailed, e(kind, T - days(2))])["recency_activity_days"], 2.0)
    # only ever mailed: as quiet as their tenure (like recency_purchase_days)
    g = features([e("email_sent", T - days(12)), e("email_delivered", T - days(12))])
    assert close(g["recency_activity_days"], 12.0)


def test_recency_purchase_is_the_tenure_when_never_purchased_capped_at_365() -> None:
    f = features([e("email_sent", T - days(40)), e("refund", T - days(3))])
    assert close(f["recency_purchase_days"], 40.0)
    g = features([e("email_sent", T - days(500)), e("page_view", T - days(1))])
    assert g["recency_purchase_days"] == 365.0
    assert close(g["tenure_days"], 500.0)
    assert close(g["recency_activity_days"], 1.0)


def test_time_since_features_are_capped() -> None:
    f = features([e("purchase", T - days(4000))])
    assert f["recency_purchase_days"] == 365.0
    assert f["recency_activity_days"] == 365.0
    assert f["tenure_days"] == 3650.0
    g = features([e("purchase", T - days(400)), e("page_view", T - days(364))])
    assert g["recency_purchase_days"] == 365.0
    assert close(g["recency_activity_days"], 364.0)


def test_time_since_is_never_negative_when_evaluated_before_the_events() -> None:
    f = features([e("purchase", T + days(2))], T)
    assert f["recency_purchase_days"] == 0.0
    assert f["recency_activity_days"] == 0.0
    assert f["tenure_days"] == 0.0


# --- trends ---------------------------------------------------------------------------------


def test_a_single_event_at_evaluation_time_is_the_maximum_trend() -> None:
    f = features([e("purchase", T, amount=25.0)])
    assert close(f["purchases_7d"], 1.0)
    assert close(f["purchases_30d"], 1.0)
    assert close(f["activity_trend"], 30 / 7)  # (1/7) / (1/30)
    assert close(f["spend_trend"], 30 / 7)


def test_trend_of_an_event_after_the_evaluation_time_is_capped() -> None:
    f = features([e("purchase", T + days(5))], T)
    # uncapped it would be 30/7 · e^(5/7 − 5/30) ≈ 7.4
    assert f["activity_trend"] == 30 / 7
    assert f["spend_trend"] == 30 / 7


def test_a_steady_daily_stream_has_a_trend_near_one() -> None:
    evs = [e("page_view", T - days(k)) for k in range(365)]
    f = features(evs)
    a7 = sum(E7(-k / 7) for k in range(365))
    a30 = sum(E7(-k / 30) for k in range(365))
    expected = (a7 / 7) / (a30 / 30)  # ≈ 1.05: discrete days, not a continuous rate
    assert close(f["activity_trend"], expected)
    assert 1.0 < expected < 1.1
    assert f["spend_trend"] == 0.0


def test_spend_trend_of_two_orders() -> None:
    f = features([e("purchase", T - days(20), amount=100.0), e("purchase", T, amount=100.0)])
    s7 = 100 * (1 + E7(-20 / 7))
    s30 = 100 * (1 + E7(-20 / 30))
    assert close(f["spend_trend"], (s7 / 7) / (s30 / 30))
    # a silent week after steady buying: falling
    g = features([e("purchase", T - days(8 + k), amount=10.0) for k in range(20)])
    s7 = sum(10 * E7(-(8 + k) / 7) for k in range(20))
    s30 = sum(10 * E7(-(8 + k) / 30) for k in range(20))
    assert close(g["spend_trend"], (s7 / 7) / (s30 / 30))
    assert 0.8 < g["spend_trend"] < 0.9  # falling: below 1


# --- decay across a rebase of the reference time ----------------------------------------------


@pytest.mark.parametrize("reverse", [False, True])
def test_events_two_years_apart_decay_correctly(reverse: bool) -> None:
    t0 = T - days(731)
    evs = [
        e("purchase", t0, amount=1e6, channel="web"),
        e("email_unsubscribe", t0),
        e("purchase", T - days(1), amount=50.0, channel="app"),
        e("email_unsubscribe", T - days(1)),
    ]
    f = features(evs[::-1] if reverse else evs)
    w7_old, w30_old = E7(-731 / 7), E7(-731 / 30)  # ≈ 0 and ≈ 2.6e-11
    w7, w30 = E7(-1 / 7), E7(-1 / 30)
    assert math.isclose(f["spend_30d"], 1e6 * w30_old + 50 * w30, rel_tol=1e-6)
    assert math.isclose(f["spend_7d"], 1e6 * w7_old + 50 * w7, rel_tol=1e-6)
    assert math.isclose(f["purchases_30d"], w30_old + w30, rel_tol=1e-6)
    assert math.isclose(f["unsubscribes_30d"], w30_old + w30, rel_tol=1e-6)
    assert math.isclose(f["share_app"], w30 / (w30 + w30_old), rel_tol=1e-6)
    assert math.isclose(f["tenure_days"], 731.0, rel_tol=1e-9)


def test_a_rebase_keeps_older_contributions_that_still_matter() -> None:
    # 421 days apart forces a rebase; the old order still weighs e^(−421/30) · 1e6 ≈ 0.8
    t0 = T - days(425)
    s = _state(
        [
            e("purchase", t0, amount=1e6),
            e("page_view", t0, channel="store"),  # 30-day-only sums rebase too
            e("page_view", t0, channel="store"),
            e("purchase", T - days(4), amount=1.0),
            e("page_view", T - days(4), channel="web"),
        ]
    )
    f = as_dict(vector(s, event_time_ms(T)))
    old, new = E7(-425 / 30), E7(-4 / 30)
    assert math.isclose(f["spend_30d"], 1e6 * old + new, rel_tol=1e-6)
    assert math.isclose(f["purchases_30d"], old + new, rel_tol=1e-6)
    assert math.isclose(f["share_store"], 2 * old / (2 * old + new), rel_tol=1e-6)
    assert math.isclose(f["spend_7d"], 1e6 * E7(-425 / 7) + E7(-4 / 7), rel_tol=1e-6)
    # and the encoded (float32) state gives the same within float32 precision
    g = as_dict(vector(CustomerState.decode(s.encode()), event_time_ms(T)))
    for name in NAMES:
        assert math.isclose(g[name], f[name], rel_tol=1e-6, abs_tol=1e-9), name


# --- ranges ---------------------------------------------------------------------------------

_TYPES = sorted(STREAM_OF_TYPE)
_OFFSETS = [-12 * 60, -5 * 60, 0, 60, 5 * 60 + 30, 9 * 60, 14 * 60]


@st.composite
def event_dicts(draw: st.DrawFn, i: int) -> dict[str, Any]:
    kind = draw(st.sampled_from(_TYPES))
    minutes = draw(st.integers(0, 400 * 24 * 60))
    tz = timezone(timedelta(minutes=draw(st.sampled_from(_OFFSETS))))
    ts = (datetime(2023, 1, 1, tzinfo=UTC) + timedelta(minutes=minutes)).astimezone(tz)
    obj: dict[str, Any] = {"event_id": f"r{i}", "customer_id": "c", "type": kind}
    obj["ts"] = ts.isoformat()
    stream = STREAM_OF_TYPE[kind]
    channel = draw(st.sampled_from([None, "web", "mobile", "app", "store", "phone", "other"]))
    if stream is Stream.EMAIL:
        obj["campaign_id"] = "k"
    else:
        if channel:
            obj["channel"] = channel
        if stream is Stream.PURCHASES:
            obj["order_id"] = f"o{i}"
            obj["amount"] = draw(st.floats(0, 1e5))
            if draw(st.booleans()):
                obj["discount"] = draw(st.floats(0, 50))
            if draw(st.booleans()):
                obj["coupon_code"] = "C"
    return obj


@settings(max_examples=150, deadline=None)
@given(st.data(), st.integers(1, 40), st.integers(-20 * 86_400_000, 800 * 86_400_000))
def test_every_feature_stays_in_its_documented_range(
    data: st.DataObject, n: int, delay_ms: int
) -> None:
    s = CustomerState()
    for i in range(n):
        apply(s, parse_event(json.dumps(data.draw(event_dicts(i)))))
    values = vector(s, s.last_ts + delay_ms)
    assert len(values) == len(FEATURES)
    for f, v in zip(FEATURES, values, strict=True):
        assert math.isfinite(v), f.name
        assert v >= f.low, (f.name, v)
        if f.high is not None:
            assert v <= f.high, (f.name, v)
