"""The feature catalogue: what every segment is made of.

Behaviour is kept as event-time exponentially decayed sums over two horizons, τ = 7 and 30 days:
an event at time t contributes ``w · exp(-(T − t) / τ)`` to a sum evaluated at time T. Stored
grown against a reference time (see `stream.core.state`), a sum depends only on the set of events
applied and on T, never on arrival order. Derived rates are 0 when their denominator is 0.

`FEATURES` lists every feature: name, meaning, unit and range. `vector` evaluates them at an event
time; `apply` folds one event into a customer's sums, in two steps that the worker and the
offline engine share: `fact_of` reduces the event to its fact (time, `Effect`, amount) and
`apply_fact` folds that in.

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
from typing import Any, NamedTuple

from stream.core.events import (
    STREAM_OF_TYPE,
    Channel,
    ClickEvent,
    EmailEvent,
    PurchaseEvent,
    event_time_ms,
)
from stream.core.state import (
    N_SUMS,
    NO_TIME,
    STREAM_INDEX,
    TOUCH_CLICK,
    TOUCH_ORGANIC,
    TOUCH_OTHER,
    CustomerState,
)

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


def rebase(state: CustomerState, t: int) -> None:
    """Make ``t`` the reference time ``t0`` of the sums, rescaling them.

    `apply_fact` calls this for a state's first event and when an event's growth factor
    ``exp((t − t0) / τ)`` would exceed e^`_REBASE`.
    """
    t0 = state.t0
    if t0 != NO_TIME:
        sums = state.sums
        for h, tau in ((H7, _TAU7), (H30, _TAU30)):
            f = math.exp(-(t - t0) / tau)
            for i in range(h, h + PER_HORIZON):
                sums[i] *= f
        f30 = math.exp(-(t - t0) / _TAU30)
        for i in range(CH_WEB, N_SUMS):
            sums[i] *= f30
    state.t0 = t


# --- Facts: what one event does to a customer's sums ------------------------------------------
#
# `fact_of` reduces a validated event to its *fact* ``(t, effect, amount)``: its time in ms, its
# `Effect` (which sums it adds to: decided by its type, channel, weekend, late night, discount)
# and its amount (0.0 when it has none). `apply_fact` folds a fact into a state. The worker
# (`Ingest.admit`) and the offline engine (which keeps facts, not events, until it has sorted
# them) both go through these two functions; `apply` is the two in one.


class Effect(NamedTuple):
    """What an event adds to a customer's sums; one shared instance per kind (see `EFFECTS`).

    No sum appears twice, so the order of the additions within one event does not matter.
    """

    plus7: tuple[int, ...]
    """The sums that grow by the event's 7-day growth factor."""
    plus30: tuple[int, ...]
    """The sums that grow by its 30-day growth factor."""
    money: int
    """The 7-day sum that grows by amount × factor (its 30-day twin is ``H30`` further); -1: none."""
    purchase: bool
    """Whether it is a purchase (its time is the last purchase time if latest)."""
    own: bool
    """Whether the customer did it: anything but an e-mail sent, delivered or bounced to them (its
    time is the last activity time if latest)."""
    stream: int
    """Its stream's index (`stream.core.state.STREAM_INDEX`)."""
    type: str
    """The event type."""
    code: int
    """Its position in `EFFECTS`."""
    touch: int
    """What kind of touch it is (`stream.core.state.CustomerState.touch`): an e-mail click
    (``TOUCH_CLICK``), a session start or a purchase (``TOUCH_ORGANIC``: a visit or an order of
    the customer's own accord, unless it follows a click, see `apply_fact`), else
    ``TOUCH_OTHER``."""


# code = kind · 64 + channel · 8 + weekend · 4 + late night · 2 + discounted, where kind is the
# position of the event's type in `KINDS` and channel 0 means none, 1.. a `Channel` in order.
KINDS: tuple[str, ...] = tuple(STREAM_OF_TYPE)
"""Every event type, in the order of their `Effect` codes."""
_CHANNELS: tuple[Channel, ...] = tuple(Channel)
_KIND_CODE = {kind: k * 64 for k, kind in enumerate(KINDS)}
# By identity: hashing an Enum member runs Python code (`Enum.__hash__`).
_CHANNEL_CODE = {id(None): 0, **{id(c): (j + 1) * 8 for j, c in enumerate(_CHANNELS)}}
_WEEKEND_CODE, _LATE_CODE, _DISCOUNTED_CODE = 4, 2, 1
# By local day (proleptic ordinal % 7: `date.weekday()` is (ordinal + 6) % 7) and hour: weekend
# (Saturday, Sunday) and late night (22:00–06:00).
_WHEN_CODE = tuple(
    (_WEEKEND_CODE if (day + 6) % 7 >= 5 else 0) + (_LATE_CODE if hour >= 22 or hour < 6 else 0)
    for day in range(7)
    for hour in range(24)
)
_EPOCH_ORDINAL = 719_163  # date(1970, 1, 1).toordinal()

CLICK_VISIT_MS = 2 * 3_600_000
"""A session started (or an order placed) within this long of an e-mail click that was the
customer's last own event counts as that click's visit, not a touch of their own accord."""

_EMAIL_SUM = {"email_sent": SENT, "email_open": OPENS, "email_click": CLICKS}
_CLICK_SUM = {"session_start": SESSIONS, "page_view": VIEWS, "product_view": VIEWS,
              "add_to_cart": CARTS, "checkout_start": CHECKOUTS, "search": SEARCHES}  # fmt: skip
# What the marketer's systems did, not the customer: it must not make a lapsed customer look active.
_SENT_TO_THEM = frozenset({"email_sent", "email_delivered", "email_bounce"})
_EMAIL_30D_ONLY = {"email_bounce": BOUNCES, "email_unsubscribe": UNSUBSCRIBES,
                   "email_complaint": UNSUBSCRIBES}  # fmt: skip


def _effect(code: int) -> Effect:
    kind = KINDS[code >> 6]
    channel = (code >> 3) & 7
    plus7, plus30 = [EVENTS], [H30 + EVENTS]
    money = -1
    if kind in _CLICK_SUM:
        plus7.append(_CLICK_SUM[kind])
        plus30.append(H30 + _CLICK_SUM[kind])
    elif kind in _EMAIL_SUM:
        plus7.append(_EMAIL_SUM[kind])
        plus30.append(H30 + _EMAIL_SUM[kind])
    elif kind in _EMAIL_30D_ONLY:
        plus30.append(_EMAIL_30D_ONLY[kind])
    elif kind == "purchase":
        plus7.append(PURCHASES)
        plus30.append(H30 + PURCHASES)
        money = SPEND
        if code & _DISCOUNTED_CODE:
            plus7.append(DISCOUNTED)
            plus30.append(H30 + DISCOUNTED)
    elif kind == "refund":
        plus7.append(REFUNDS)
        plus30.append(H30 + REFUNDS)
        money = REFUND_AMOUNT
    if 0 < channel <= len(_CHANNELS):  # (channel 7 is never produced)
        plus30.append(_CHANNEL[_CHANNELS[channel - 1].value])
    if code & _WEEKEND_CODE:
        plus30.append(WEEKEND)
    if code & _LATE_CODE:
        plus30.append(LATE_NIGHT)
    stream = STREAM_INDEX[STREAM_OF_TYPE[kind]]
    own = kind not in _SENT_TO_THEM
    touch = (TOUCH_CLICK if kind == "email_click"
             else TOUCH_ORGANIC if kind in ("session_start", "purchase") else TOUCH_OTHER)  # fmt: skip
    return Effect(
        tuple(plus7), tuple(plus30), money, kind == "purchase", own, stream, kind, code, touch
    )


EFFECTS: tuple[Effect, ...] = tuple(_effect(code) for code in range(len(KINDS) * 64))
"""Every `Effect`, by code."""


def fact_of(
    event: ClickEvent | EmailEvent | PurchaseEvent, t: int | None = None
) -> tuple[int, Effect, float]:
    """The fact ``(t, effect, amount)`` of a validated event (``t``: its time in ms, if known).

    >>> from stream.core.events import parse_event
    >>> t, effect, amount = fact_of(parse_event(
    ...     b'{"event_id":"e","customer_id":"c","type":"purchase","order_id":"o","amount":5,'
    ...     b'"ts":"2024-03-23T23:30:00+01:00","channel":"app","coupon_code":"X"}'))
    >>> t, effect.type, amount  # Saturday, late night, discounted, in the app
    (1711233000000, 'purchase', 5.0)
    >>> effect.plus30 == (H30 + EVENTS, H30 + PURCHASES, H30 + DISCOUNTED, CH_APP, WEEKEND,
    ...                   LATE_NIGHT)
    True
    """
    return fact_of_fields(event.__dict__, t)


def fact_of_fields(fields: dict[str, Any], t: int | None = None) -> tuple[int, Effect, float]:
    """`fact_of` of a validated event's fields (its model's, or
    `stream.core.validation.Validator.fields_of_line`: optional fields may be absent)."""
    ts = fields["ts"]
    hour = ts.hour
    ordinal = ts.toordinal()
    if t is None:
        # `event_time_ms` exactly, without `datetime.__sub__` (which calls the offset twice,
        # the slow way): local seconds since the epoch minus the offset, then the milliseconds.
        off = ts.tzinfo.utcoffset(ts)
        if off is None or off.microseconds:
            t = event_time_ms(ts)
        else:
            t = (
                (ordinal - _EPOCH_ORDINAL - off.days) * DAY_MS
                + ((hour * 60 + ts.minute) * 60 + ts.second - off.seconds) * 1000
                + ts.microsecond // 1000
            )
    # Weekend and late night in the event's own offset. Only clickstream and purchase events
    # have a channel, only purchase events (and refunds) an amount, a discount or a coupon.
    get = fields.get
    code = (
        _KIND_CODE[fields["type"]]
        + _WHEN_CODE[ordinal % 7 * 24 + hour]
        + _CHANNEL_CODE[id(get("channel"))]
    )
    amount = get("amount")
    if amount is None:
        return t, EFFECTS[code], 0.0
    if (get("discount") or 0) > 0 or get("coupon_code"):
        code += _DISCOUNTED_CODE
    return t, EFFECTS[code], amount


def apply_fact(state: CustomerState, t: int, effect: Effect, amount: float) -> None:
    """Fold one fact (see `fact_of`) into the customer's state."""
    # The hot path of every replay: each sum is updated in place, both horizons side by side.
    t0 = state.t0
    d = t - t0
    x7 = d / _TAU7
    if t0 == NO_TIME or x7 > _REBASE:
        rebase(state, t)
        g7 = g30 = 1.0  # exp(0 / τ): t is the new t0
    else:
        g7, g30 = math.exp(x7), math.exp(d / _TAU30)
    s = state.sums
    plus7, plus30, money, purchase, own, _, _, _, touch = effect
    for i in plus7:
        s[i] += g7
    for i in plus30:
        s[i] += g30
    if money >= 0:
        s[money] += amount * g7
        s[H30 + money] += amount * g30
        if purchase and t > state.last_purchase_ts:
            state.last_purchase_ts = t
    if t > state.last_ts:
        state.last_ts = t
    if touch == TOUCH_ORGANIC:
        # A visit within CLICK_VISIT_MS after an e-mail click is the click's, not the customer's.
        since = t - state.last_active_ts
        if state.touch == TOUCH_CLICK and 0 <= since < CLICK_VISIT_MS:
            touch = TOUCH_OTHER
    state.organic = touch == TOUCH_ORGANIC
    if own and t >= state.last_active_ts:
        # (``>=``: of two own events at the same millisecond, the later applied one is the last.)
        state.touch = touch
        state.last_active_ts = t
    first = state.first_ts
    if first == NO_TIME or t < first:
        state.first_ts = t


def apply(
    state: CustomerState, event: ClickEvent | EmailEvent | PurchaseEvent, t: int | None = None
) -> None:
    """Fold one validated event (at ``t`` ms, default its ``ts``) into the customer's state."""
    t, effect, amount = fact_of(event, t)
    apply_fact(state, t, effect, amount)


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
