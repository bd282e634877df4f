"""The feature catalogue: what every segment is made of.

Behaviour is kept as event-time exponentially decayed sums over two horizons, τ = 7 and 30 days:
an event at time t contributes ``w · exp(-(T − t) / τ)`` to a sum evaluated at time T. Stored
grown against a reference time (see `stream.core.state`), a sum depends only on the set of events
applied and on T, never on arrival order. Derived rates are 0 when their denominator is 0.

`FEATURES` lists every feature: name, meaning, unit and range. `vector` evaluates them at an event
time. What one event adds to the sums is in `stream.core.facts`.

>>> from stream.core.events import parse_event
>>> from stream.core.facts import apply
>>> s = CustomerState()
>>> for i, t in enumerate(["email_sent"] * 3 + ["email_open"] * 2 + ["email_click"]):
...     _ = apply(s, parse_event(f'{{"event_id":"{i}","customer_id":"c","type":"{t}",'
...                              f'"ts":"2024-01-01T10:00:00Z","campaign_id":"k"}}'))
>>> f = as_dict(vector(s, s.last_ts))
>>> round(f["email_open_rate_30d"], 4), round(f["email_click_rate_30d"], 4)
(0.6667, 0.3333)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from stream.core.state import N_SUMS, NO_TIME, CustomerState

DAY_MS = 86_400_000
TAU_MS = (7 * DAY_MS, 30 * DAY_MS)
_TAU7, _TAU30 = TAU_MS

# Decayed sums. Indices 0..13 per horizon (7 d at +0, 30 d at +14), then 30-day-only sums.
EVENTS, PURCHASES, SPEND, DISCOUNTED, REFUNDS, REFUND_AMOUNT = 0, 1, 2, 3, 4, 5
SENT, OPENS, CLICKS, SESSIONS, VIEWS, CARTS, CHECKOUTS, SEARCHES = 6, 7, 8, 9, 10, 11, 12, 13
PER_HORIZON = 14
H7, H30 = 0, PER_HORIZON
CH_WEB, CH_MOBILE, CH_APP, CH_STORE, CH_OTHER = 28, 29, 30, 31, 32
WEEKEND, LATE_NIGHT, UNSUBSCRIBES, BOUNCES = 33, 34, 35, 36
assert WEEKEND + 4 == N_SUMS


@dataclass(frozen=True, slots=True)
class Feature:
    """One entry of the catalogue."""

    name: str
    meaning: str
    unit: str
    low: float
    high: float | None


FEATURES: tuple[Feature, ...] = (
    Feature("recency_purchase_days", "days since the last purchase (tenure if none, ≤ 365)", "days", 0, 365),
    Feature("recency_activity_days", "days since the customer's last own event (≤ 365): e-mails sent, delivered or bounced to them do not count; their tenure if they have none", "days", 0, 365),
    Feature("tenure_days", "days since the first event seen (≤ 3650)", "days", 0, 3650),
    Feature("purchases_7d", "decayed purchase count, τ = 7 d", "orders", 0, None),
    Feature("purchases_30d", "decayed purchase count, τ = 30 d", "orders", 0, None),
    Feature("spend_7d", "decayed spend, τ = 7 d", "currency", 0, None),
    Feature("spend_30d", "decayed spend, τ = 30 d", "currency", 0, None),
    Feature("avg_order_value_30d", "spend_30d / purchases_30d (0 if none)", "currency", 0, None),
    Feature("discount_share_30d", "share of orders with a discount or coupon (0 if none)", "ratio", 0, 1),
    Feature("refund_rate_30d", "refunds / purchases, τ = 30 d (0 if no purchase; may exceed 1)", "ratio", 0, None),
    Feature("email_open_rate_30d", "opens / sends, τ = 30 d, capped at 1 (0 if no send)", "ratio", 0, 1),
    Feature("email_click_rate_30d", "clicks / sends, τ = 30 d, capped at 1 (0 if no send)", "ratio", 0, 1),
    Feature("unsubscribes_30d", "decayed unsubscribes and complaints, τ = 30 d", "events", 0, None),
    Feature("bounces_30d", "decayed bounces, τ = 30 d", "events", 0, None),
    Feature("sessions_7d", "decayed sessions started, τ = 7 d", "sessions", 0, None),
    Feature("sessions_30d", "decayed sessions started, τ = 30 d", "sessions", 0, None),
    Feature("views_per_session_30d", "page and product views per session (views if no session)", "views", 0, None),
    Feature("add_to_cart_30d", "decayed add-to-cart events, τ = 30 d", "events", 0, None),
    Feature("cart_abandonment_30d", "max(0, carts − purchases) / carts, τ = 30 d (0 if no cart)", "ratio", 0, 1),
    Feature("searches_30d", "decayed searches, τ = 30 d", "events", 0, None),
    Feature("share_web", "share of channel-tagged events on the web, τ = 30 d", "ratio", 0, 1),
    Feature("share_mobile", "share on mobile web", "ratio", 0, 1),
    Feature("share_app", "share in the app", "ratio", 0, 1),
    Feature("share_store", "share in store", "ratio", 0, 1),
    Feature("weekend_share_30d", "share of events on Saturday/Sunday (event's own local time)", "ratio", 0, 1),
    Feature("late_night_share_30d", "share of events 22:00–06:00 (event's own local time)", "ratio", 0, 1),
    Feature("activity_trend", "(events_7d / 7) / (events_30d / 30): 1 steady, > 1 rising (0 if none)", "ratio", 0, 30 / 7),
    Feature("spend_trend", "(spend_7d / 7) / (spend_30d / 30) (0 if no spend)", "ratio", 0, 30 / 7),
    Feature("events_30d", "decayed events of any kind, τ = 30 d", "events", 0, None),
    Feature("emails_sent_30d", "decayed e-mails sent, τ = 30 d", "e-mails", 0, None),
    Feature("overdue_events", "events the customer's pace before their current silence expects in it: recency_activity_days × (events_30d at their last event) / 30; about 1 while active, large once quiet", "events", 0, None),
)  # fmt: skip
NAMES: tuple[str, ...] = tuple(f.name for f in FEATURES)


def vector(state: CustomerState, at: int) -> list[float]:
    """The feature values (in `FEATURES` order) of ``state`` evaluated at event time ``at`` ms."""
    # Written out (it runs once per customer per evaluation): a ratio a / b is 0 when b ≤ 1e-12;
    # ``c if x > c else x`` is ``min(x, c)`` and ``x if x > 0.0 else 0.0`` is ``max(0.0, x)``.
    t0 = state.t0
    if t0 == NO_TIME:
        return [0.0] * len(FEATURES)
    d7 = math.exp(-(at - t0) / _TAU7)
    d30 = math.exp(-(at - t0) / _TAU30)
    s = state.sums
    events7, purchases7, spend7 = s[EVENTS] * d7, s[PURCHASES] * d7, s[SPEND] * d7
    sessions7 = s[SESSIONS] * d7
    events, purchases, spend = s[H30 + EVENTS] * d30, s[H30 + PURCHASES] * d30, s[H30 + SPEND] * d30
    discounted, refunds = s[H30 + DISCOUNTED] * d30, s[H30 + REFUNDS] * d30
    sent, opens, clicks = s[H30 + SENT] * d30, s[H30 + OPENS] * d30, s[H30 + CLICKS] * d30
    sessions, views, carts = s[H30 + SESSIONS] * d30, s[H30 + VIEWS] * d30, s[H30 + CARTS] * d30
    searches = s[H30 + SEARCHES] * d30
    web, mobile, app, store, other, weekend, late, unsub, bounces = [x * d30 for x in s[CH_WEB:]]
    channels = web + mobile + app + store + other
    tenure = (at - state.first_ts) / DAY_MS
    tenure = tenure if tenure > 0.0 else 0.0
    if state.last_purchase_ts == NO_TIME:
        recency_purchase = 365.0 if tenure > 365.0 else tenure
    else:
        recency_purchase = (at - state.last_purchase_ts) / DAY_MS
        recency_purchase = recency_purchase if recency_purchase > 0.0 else 0.0
        recency_purchase = 365.0 if recency_purchase > 365.0 else recency_purchase
    if state.last_active_ts == NO_TIME:  # only ever e-mailed
        recency = 365.0 if tenure > 365.0 else tenure
    else:
        recency = (at - state.last_active_ts) / DAY_MS
        recency = 365.0 if recency > 365.0 else recency if recency > 0.0 else 0.0
    has_purchases, has_sent, has_events = purchases > 1e-12, sent > 1e-12, events > 1e-12
    discount_share = discounted / purchases if has_purchases else 0.0
    open_rate = opens / sent if has_sent else 0.0
    click_rate = clicks / sent if has_sent else 0.0
    abandonment = (carts - purchases) / carts if carts > 1e-12 else 0.0
    abandonment = abandonment if abandonment > 0.0 else 0.0
    has_channels = channels > 1e-12
    weekend_share = weekend / events if has_events else 0.0
    late_share = late / events if has_events else 0.0
    events30_per_day, spend30_per_day = events / 30.0, spend / 30.0
    activity_trend = events7 / 7.0 / events30_per_day if events30_per_day > 1e-12 else 0.0
    spend_trend = spend7 / 7.0 / spend30_per_day if spend30_per_day > 1e-12 else 0.0
    return [
        recency_purchase,
        recency,
        3650.0 if tenure > 3650.0 else tenure,
        purchases7,
        purchases,
        spend7,
        spend,
        spend / purchases if has_purchases else 0.0,
        1.0 if discount_share > 1.0 else discount_share,
        refunds / purchases if has_purchases else 0.0,
        1.0 if open_rate > 1.0 else open_rate,
        1.0 if click_rate > 1.0 else click_rate,
        unsub,
        bounces,
        sessions7,
        sessions,
        views / sessions if sessions > 1e-12 else views,
        carts,
        1.0 if abandonment > 1.0 else abandonment,
        searches,
        web / channels if has_channels else 0.0,
        mobile / channels if has_channels else 0.0,
        app / channels if has_channels else 0.0,
        store / channels if has_channels else 0.0,
        1.0 if weekend_share > 1.0 else weekend_share,
        1.0 if late_share > 1.0 else late_share,
        _MAX_TREND if activity_trend > _MAX_TREND else activity_trend,
        _MAX_TREND if spend_trend > _MAX_TREND else spend_trend,
        events,
        sent,
        recency * events30_per_day * math.exp(recency / 30.0),
    ]


_MAX_TREND = 30 / 7


def as_dict(values: list[float]) -> dict[str, float]:
    """Feature name → value."""
    return dict(zip(NAMES, values, strict=True))
