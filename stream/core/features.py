"""The feature catalogue: what every segment is made of.

Behaviour is kept as event-time exponentially decayed sums over two horizons, τ = 7 and 30 days:
an event at time t contributes ``w · exp(-(T − t) / τ)`` to a sum evaluated at time T. Stored
grown against a reference time (see `stream.core.state`), a sum depends only on the set of events
applied and on T, never on arrival order. Derived rates are 0 when their denominator is 0.

`FEATURES` lists every feature: name, meaning, unit and range. `vector` evaluates them at an event
time; `apply` folds one event into a customer's sums.

>>> from stream.core.events import parse_event
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

from stream.core.events import ClickEvent, EmailEvent, PurchaseEvent
from stream.core.state import N_SUMS, NO_TIME, CustomerState

DAY_MS = 86_400_000
TAU_MS = (7 * DAY_MS, 30 * DAY_MS)
_TAU7, _TAU30 = TAU_MS
# Rebase t0 before a growth factor exceeds e^20 (≈ 5e8): with amounts ≤ 1e15 (the contract's
# bound) a float32 sum (≤ 3.4e38) has room for ~1e15 such events, so encoding never overflows.
_REBASE = 20.0

# Decayed sums. Indices 0..13 per horizon (7 d at +0, 30 d at +14), then 30-day-only sums.
EVENTS, PURCHASES, SPEND, DISCOUNTED, REFUNDS, REFUND_AMOUNT = 0, 1, 2, 3, 4, 5
SENT, OPENS, CLICKS, SESSIONS, VIEWS, CARTS, CHECKOUTS, SEARCHES = 6, 7, 8, 9, 10, 11, 12, 13
PER_HORIZON = 14
H7, H30 = 0, PER_HORIZON
CH_WEB, CH_MOBILE, CH_APP, CH_STORE, CH_OTHER = 28, 29, 30, 31, 32
WEEKEND, LATE_NIGHT, UNSUBSCRIBES, BOUNCES = 33, 34, 35, 36
_CHANNEL = {"web": CH_WEB, "mobile": CH_MOBILE, "app": CH_APP, "store": CH_STORE,
            "phone": CH_OTHER, "other": CH_OTHER}  # fmt: skip
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
    Feature("recency_activity_days", "days since the last event of any kind (≤ 365)", "days", 0, 365),
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
)  # fmt: skip
NAMES: tuple[str, ...] = tuple(f.name for f in FEATURES)


def _grow(state: CustomerState, t: int) -> tuple[float, float]:
    """Growth factors of an event at ``t`` for both horizons, rebasing ``t0`` when needed."""
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
    return math.exp(d / _TAU7), math.exp(d / _TAU30)


def apply(
    state: CustomerState, event: ClickEvent | EmailEvent | PurchaseEvent, t: int | None = None
) -> None:
    """Fold one validated event (at ``t`` ms, default its ``ts``) into the customer's state."""
    # The hot path of every replay: each sum is updated in place, both horizons side by side.
    if t is None:
        from stream.core.events import event_time_ms

        t = event_time_ms(event.ts)
    g7, g30 = _grow(state, t)
    s = state.sums
    s[EVENTS] += g7
    s[H30 + EVENTS] += g30
    kind = event.type
    # Clicks first: `isinstance` on the exact class is immediate, a miss on a pydantic model
    # class goes through ABCMeta, and clicks are the most frequent events.
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
            amount = event.amount
            s[SPEND] += amount * g7
            s[H30 + SPEND] += amount * g30
            if (event.discount or 0) > 0 or event.coupon_code:
                s[DISCOUNTED] += g7
                s[H30 + DISCOUNTED] += g30
            if t > state.last_purchase_ts:
                state.last_purchase_ts = t
        else:
            s[REFUNDS] += g7
            s[H30 + REFUNDS] += g30
            amount = event.amount
            s[REFUND_AMOUNT] += amount * g7
            s[H30 + REFUND_AMOUNT] += amount * g30
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
    local = event.ts
    if local.weekday() >= 5:
        s[WEEKEND] += g30
    hour = local.hour
    if hour >= 22 or hour < 6:
        s[LATE_NIGHT] += g30
    if t > state.last_ts:
        state.last_ts = t
    if state.first_ts == NO_TIME or t < state.first_ts:
        state.first_ts = t


_EMAIL_SUM = {"email_sent": SENT, "email_open": OPENS, "email_click": CLICKS}
_CLICK_SUM = {"session_start": SESSIONS, "page_view": VIEWS, "product_view": VIEWS,
              "add_to_cart": CARTS, "checkout_start": CHECKOUTS, "search": SEARCHES}  # fmt: skip


def _ratio(a: float, b: float) -> float:
    return a / b if b > 1e-12 else 0.0


def vector(state: CustomerState, at: int) -> list[float]:
    """The feature values (in `FEATURES` order) of ``state`` evaluated at event time ``at`` ms."""
    if state.t0 == NO_TIME:
        return [0.0] * len(FEATURES)
    d7 = math.exp(-(at - state.t0) / TAU_MS[0])
    d30 = math.exp(-(at - state.t0) / TAU_MS[1])
    s = state.sums
    a7 = [x * d7 for x in s[H7 : H7 + PER_HORIZON]]
    a30 = [x * d30 for x in s[H30 : H30 + PER_HORIZON]]
    rest = [x * d30 for x in s[CH_WEB:]]
    web, mobile, app, store, other, weekend, late, unsub, bounces = rest
    channels = web + mobile + app + store + other
    tenure = max(0.0, (at - state.first_ts) / DAY_MS)
    if state.last_purchase_ts == NO_TIME:
        recency_purchase = min(tenure, 365.0)
    else:
        recency_purchase = min(max(0.0, (at - state.last_purchase_ts) / DAY_MS), 365.0)
    carts, purchases30 = a30[CARTS], a30[PURCHASES]
    return [
        recency_purchase,
        min(max(0.0, (at - state.last_ts) / DAY_MS), 365.0),
        min(tenure, 3650.0),
        a7[PURCHASES],
        purchases30,
        a7[SPEND],
        a30[SPEND],
        _ratio(a30[SPEND], purchases30),
        min(_ratio(a30[DISCOUNTED], purchases30), 1.0),
        _ratio(a30[REFUNDS], purchases30),
        min(_ratio(a30[OPENS], a30[SENT]), 1.0),
        min(_ratio(a30[CLICKS], a30[SENT]), 1.0),
        unsub,
        bounces,
        a7[SESSIONS],
        a30[SESSIONS],
        _ratio(a30[VIEWS], a30[SESSIONS]) if a30[SESSIONS] > 1e-12 else a30[VIEWS],
        carts,
        min(max(0.0, _ratio(carts - purchases30, carts)), 1.0),
        a30[SEARCHES],
        _ratio(web, channels),
        _ratio(mobile, channels),
        _ratio(app, channels),
        _ratio(store, channels),
        min(_ratio(weekend, a30[EVENTS]), 1.0),
        min(_ratio(late, a30[EVENTS]), 1.0),
        min(_ratio(a7[EVENTS] / 7.0, a30[EVENTS] / 30.0), 30 / 7),
        min(_ratio(a7[SPEND] / 7.0, a30[SPEND] / 30.0), 30 / 7),
    ]


def as_dict(values: list[float]) -> dict[str, float]:
    """Feature name → value."""
    return dict(zip(NAMES, values, strict=True))
