"""Facts: what one event does to a customer's decayed sums (`stream.core.features`).

`fact_of` reduces a validated event to its *fact* ``(t, effect, amount)``: its time in ms, its
`Effect` (which sums it adds to: decided by its type, channel, weekend, late night, discount) and
its amount (0.0 when it has none). `apply_fact` folds a fact into a state. The worker
(`Ingest.admit`) and the offline engine (which keeps facts, not events, until it has sorted them)
both go through these two functions; `apply` is the two in one. `rebase` moves the sums' reference
time.

>>> from stream.core.events import parse_event
>>> s = CustomerState()
>>> apply(s, parse_event(b'{"event_id":"e","customer_id":"c","type":"purchase","order_id":"o",'
...                      b'"amount":5,"ts":"2024-03-23T12:00:00Z"}'))
>>> s.sums[PURCHASES], s.sums[H30 + SPEND], s.last_purchase_ts == s.t0
(1.0, 5.0, True)
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

from stream.core.events import (
    STREAM_OF_TYPE,
    Channel,
    ClickEvent,
    EmailEvent,
    PurchaseEvent,
    event_time_ms,
)
from stream.core.features import (
    BOUNCES,
    CARTS,
    CH_APP,
    CH_MOBILE,
    CH_OTHER,
    CH_STORE,
    CH_WEB,
    CHECKOUTS,
    CLICKS,
    DAY_MS,
    DISCOUNTED,
    EVENTS,
    H7,
    H30,
    LATE_NIGHT,
    OPENS,
    PER_HORIZON,
    PURCHASES,
    REFUND_AMOUNT,
    REFUNDS,
    SEARCHES,
    SENT,
    SESSIONS,
    SPEND,
    TAU_MS,
    UNSUBSCRIBES,
    VIEWS,
    WEEKEND,
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

_TAU7, _TAU30 = TAU_MS
# Rebase t0 before a growth factor exceeds e^20 (≈ 5e8): with amounts ≤ 1e15 (the contract's
# bound) a float32 sum (≤ 3.4e38) has room for ~1e15 such events, so encoding never overflows.
_REBASE = 20.0
_CHANNEL = {"web": CH_WEB, "mobile": CH_MOBILE, "app": CH_APP, "store": CH_STORE,
            "phone": CH_OTHER, "other": CH_OTHER}  # fmt: skip


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
