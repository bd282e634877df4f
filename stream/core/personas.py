"""The planted behavioural personas of the simulator (`stream.core.simulate`), and `plan`.

A `Persona` is a complete behavioural recipe over all three streams: Poisson rates per day of
browsing sessions and orders, the channel mix, the local time-of-day and weekday profile, the order
value distribution (lognormal), discount, coupon and refund propensities and the e-mail response
propensities. `jitter` draws one customer's own variant of a persona (rates ×≈ lognormal(0, 0.3),
probabilities ×≈ lognormal(0, 0.25), a Dirichlet channel mix around the persona's), so customers of
one persona spread around it and neighbouring personas overlap the way real customers do. `plan`
draws a whole population (personas over time, home UTC offsets, tastes) and the campaign calendar.

>>> import numpy as np
>>> p = jitter(PERSONAS["store_regular"], np.random.default_rng(7))
>>> p.name, round(sum(p.purchase_channels), 6), 0 < p.purchase_rate < 1
('store_regular', 1.0, True)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from typing import Any

import numpy as np

from stream.core.events import event_time_ms

DAY_MS, HOUR_MS, MIN_MS = 86_400_000, 3_600_000, 60_000
START = "2025-01-06T00:00:00+00:00"  # a Monday; local day d of every customer has weekday d % 7
OFFSETS = ((60, 0.42), (120, 0.2), (0, 0.15), (-300, 0.13), (-480, 0.05), (330, 0.05))  # min
CATEGORIES = (("electronics", 180.0), ("fashion", 45.0), ("home", 60.0), ("beauty", 25.0),
              ("grocery", 12.0), ("sports", 55.0), ("toys", 30.0), ("books", 15.0),
              ("garden", 40.0), ("pets", 20.0), ("health", 18.0), ("jewelry", 90.0))  # fmt: skip
"""Product categories and their median price (EUR)."""
KINDS = ("promo", "newsletter", "new_arrivals")

CHANNELS: tuple[str, ...] = ("web", "mobile", "app", "store")
"""Channels in the order of `Persona.session_channels` and `Persona.purchase_channels`."""


def _bumps(*peaks: tuple[float, float, float], floor: float = 0.04) -> tuple[float, ...]:
    """24 hourly weights: a floor plus circular Gaussian bumps ``(hour, width, height)``."""
    out = []
    for h in range(24):
        w = floor
        for centre, width, height in peaks:
            d = min(abs(h - centre), 24 - abs(h - centre))
            w += height * math.exp(-0.5 * (d / width) ** 2)
        out.append(round(w, 4))
    return tuple(out)


HOURS: dict[str, tuple[float, ...]] = {
    "daytime": _bumps((12.5, 2.0, 1.0), (19.0, 2.0, 1.2)),
    "evening": _bumps((12.5, 1.5, 0.4), (20.5, 1.8, 1.5)),
    "office": _bumps((10.0, 1.5, 1.0), (14.0, 2.0, 1.0), floor=0.02),
    "store": _bumps((11.0, 1.5, 1.0), (17.0, 1.5, 1.3), floor=0.0),
    "late": _bumps((0.5, 2.0, 1.6), (21.0, 1.5, 0.5), (13.0, 1.5, 0.15)),
}
"""Local-time hour-of-day profiles (relative weights, hour 0..23)."""


@dataclass(frozen=True, slots=True)
class Persona:
    """One behavioural persona (or one customer's jittered variant of it).

    Rates are expected counts per local day (a weekend day is scaled by ``weekend_factor``, the
    weekdays are scaled down so the weekly total is unchanged); probabilities are per opportunity.
    """

    name: str
    description: str
    browse_rate: float  # browsing sessions (not ending in an order) per day
    purchase_rate: float  # orders per day, online ones inside a buying session
    session_channels: tuple[float, float, float, float]  # over CHANNELS
    purchase_channels: tuple[float, float, float, float]  # over CHANNELS
    views_mean: float  # page and product views per session
    search_mean: float  # searches per session
    cart_prob: float  # a browsing session adds something to the cart (then abandons it)
    checkout_prob: float  # an abandoning session still starts the checkout
    remove_prob: float  # a cart line is removed again
    aov_median: float  # order value: lognormal with this median (EUR) ...
    aov_sigma: float  # ... and this log-scale spread
    discount_prob: float  # an order carries a discount
    coupon_prob: float  # a discounted order used a coupon code
    refund_prob: float  # an order is (partly) refunded later
    open_prob: float  # a delivered e-mail is opened
    click_prob: float  # an opened e-mail is clicked
    unsub_prob: float  # a delivered e-mail leads to an unsubscribe
    bad_address_prob: float  # the customer's address hard-bounces
    click_session_prob: float  # a click leads to a browsing session
    click_purchase_prob: float  # a click leads to an order (with the campaign's coupon)
    hours: str  # key of HOURS
    weekend_factor: float  # activity on a Saturday/Sunday relative to a weekday


def _p(name: str, description: str, **kw: Any) -> Persona:
    defaults: dict[str, Any] = dict(
        views_mean=4.0, search_mean=0.4, cart_prob=0.15, checkout_prob=0.1, remove_prob=0.15,
        aov_sigma=0.4, discount_prob=0.15, coupon_prob=0.3, refund_prob=0.04, unsub_prob=0.004,
        bad_address_prob=0.02, click_session_prob=0.4, click_purchase_prob=0.02,
        hours="daytime", weekend_factor=1.2,
    )  # fmt: skip
    defaults.update(kw)
    return Persona(name=name, description=description, **defaults)


# fmt: off
PERSONAS: dict[str, Persona] = {p.name: p for p in (
    _p("app_loyalist", "high-value app loyalists: frequent app sessions and orders, high order "
       "value, open most e-mails, rarely need a discount",
       browse_rate=0.3, purchase_rate=0.22, session_channels=(0.08, 0.07, 0.85, 0.0),
       purchase_channels=(0.08, 0.02, 0.85, 0.05), views_mean=5.0, aov_median=115.0,
       aov_sigma=0.35, discount_prob=0.08, open_prob=0.6, click_prob=0.3, unsub_prob=0.001,
       bad_address_prob=0.005, hours="evening", weekend_factor=1.1),
    _p("coupon_occasional", "coupon-driven occasional buyers: buy rarely, nearly always with a "
       "discount or coupon, click e-mail promotions",
       browse_rate=0.08, purchase_rate=0.07, session_channels=(0.6, 0.3, 0.1, 0.0),
       purchase_channels=(0.65, 0.25, 0.05, 0.05), aov_median=38.0, aov_sigma=0.35,
       discount_prob=0.92, coupon_prob=0.8, open_prob=0.25, click_prob=0.55,
       click_session_prob=0.5, click_purchase_prob=0.3, weekend_factor=1.0),
    _p("window_shopper", "window shoppers and cart abandoners: many web sessions, views, "
       "searches and carts, few orders",
       browse_rate=0.7, purchase_rate=0.012, session_channels=(0.75, 0.2, 0.05, 0.0),
       purchase_channels=(0.8, 0.2, 0.0, 0.0), views_mean=7.0, search_mean=1.2,
       cart_prob=0.55, checkout_prob=0.18, remove_prob=0.3, aov_median=65.0,
       discount_prob=0.3, open_prob=0.2, click_prob=0.15, weekend_factor=1.3),
    _p("email_browser", "e-mail engaged browsers: open and click most e-mails, moderate "
       "browsing (often from a click), seldom buy; office hours",
       browse_rate=0.15, purchase_rate=0.01, session_channels=(0.65, 0.3, 0.05, 0.0),
       purchase_channels=(0.75, 0.2, 0.05, 0.0), views_mean=4.0, aov_median=50.0,
       discount_prob=0.2, open_prob=0.9, click_prob=0.6, unsub_prob=0.001,
       bad_address_prob=0.005, click_session_prob=0.7, click_purchase_prob=0.03,
       hours="office", weekend_factor=0.5),
    _p("store_regular", "store regulars: shop in the store about weekly (often on Saturday), "
       "little online activity, ignore most e-mails",
       browse_rate=0.03, purchase_rate=0.16, session_channels=(0.8, 0.2, 0.0, 0.0),
       purchase_channels=(0.04, 0.01, 0.0, 0.95), views_mean=3.0, aov_median=45.0,
       aov_sigma=0.5, discount_prob=0.12, coupon_prob=0.1, refund_prob=0.05, open_prob=0.15,
       click_prob=0.1, bad_address_prob=0.05, click_session_prob=0.2, hours="store",
       weekend_factor=2.2),
    _p("late_night_mobile", "late-night mobile impulse buyers: mobile web at night and on "
       "weekends, small frequent orders, frequent refunds",
       browse_rate=0.45, purchase_rate=0.2, session_channels=(0.05, 0.85, 0.1, 0.0),
       purchase_channels=(0.04, 0.86, 0.1, 0.0), views_mean=3.0, search_mean=0.2,
       cart_prob=0.35, aov_median=22.0, aov_sigma=0.5, discount_prob=0.2, refund_prob=0.14,
       open_prob=0.25, click_prob=0.2, hours="late", weekend_factor=2.0),
    _p("lapsed", "lapsed: ordinary active customers early on, then silent (no events at all) "
       "from their lapse time onward",
       browse_rate=0.25, purchase_rate=0.06, session_channels=(0.5, 0.3, 0.2, 0.0),
       purchase_channels=(0.5, 0.25, 0.15, 0.1), aov_median=60.0, open_prob=0.3,
       click_prob=0.2, bad_address_prob=0.06),
    _p("app_bargain_hunter", "emerging: app bargain hunters (new customers from mid-stream): "
       "many app sessions and searches, cheap orders almost always discounted",
       browse_rate=0.6, purchase_rate=0.12, session_channels=(0.02, 0.08, 0.9, 0.0),
       purchase_channels=(0.02, 0.03, 0.95, 0.0), views_mean=7.0, search_mean=1.8,
       cart_prob=0.4, aov_median=18.0, aov_sigma=0.4, discount_prob=0.88, coupon_prob=0.4,
       refund_prob=0.06, open_prob=0.5, click_prob=0.45, click_purchase_prob=0.08,
       hours="evening", weekend_factor=1.4),
)}
# fmt: on
"""The persona catalogue, by name."""

LAPSED = "lapsed"
EMERGING = "app_bargain_hunter"

INITIAL_MIX: dict[str, float] = {
    "app_loyalist": 0.15,
    "coupon_occasional": 0.18,
    "window_shopper": 0.17,
    "email_browser": 0.15,
    "store_regular": 0.13,
    "late_night_mobile": 0.10,
    "lapsed": 0.12,
}
"""Shares of the personas customers start with (the emerging persona joins later)."""

MIGRATIONS: dict[str, tuple[tuple[str, float], ...]] = {
    "app_loyalist": (("lapsed", 0.6), ("coupon_occasional", 0.4)),
    "coupon_occasional": (("lapsed", 0.5), ("app_loyalist", 0.5)),
    "window_shopper": (("app_loyalist", 0.5), ("late_night_mobile", 0.5)),
    "email_browser": (("coupon_occasional", 0.7), ("lapsed", 0.3)),
    "store_regular": (("app_loyalist", 0.6), ("lapsed", 0.4)),
    "late_night_mobile": (("window_shopper", 0.5), ("lapsed", 0.5)),
}
"""Where a migrating customer of each persona goes, with relative weights."""

_RATES = ("browse_rate", "purchase_rate")
_SIZES = ("views_mean", "search_mean")
_PROBS = (
    "cart_prob", "checkout_prob", "remove_prob", "discount_prob", "coupon_prob", "refund_prob",
    "open_prob", "click_prob", "unsub_prob", "bad_address_prob", "click_session_prob",
    "click_purchase_prob",
)  # fmt: skip


def _mix(rng: np.random.Generator, mix: tuple[float, ...]) -> tuple[float, float, float, float]:
    alpha = [40.0 * m + 0.05 for m in mix]
    raw = rng.dirichlet(alpha)
    draw = [float(x) if m > 0 else 0.0 for x, m in zip(raw, mix, strict=True)]
    total = sum(draw)
    a, b, c, d = (x / total for x in draw)
    return a, b, c, d


def jitter(persona: Persona, rng: np.random.Generator) -> Persona:
    """One customer's variant of ``persona``: same shape, individually scaled parameters."""
    kw: dict[str, Any] = {}
    for f in _RATES:
        kw[f] = getattr(persona, f) * float(rng.lognormal(0.0, 0.3))
    for f in _SIZES:
        kw[f] = getattr(persona, f) * float(rng.lognormal(0.0, 0.2))
    for f in _PROBS:
        kw[f] = min(0.98, getattr(persona, f) * float(rng.lognormal(0.0, 0.25)))
    kw["aov_median"] = persona.aov_median * float(rng.lognormal(0.0, 0.2))
    kw["weekend_factor"] = persona.weekend_factor * float(rng.lognormal(0.0, 0.15))
    kw["session_channels"] = _mix(rng, persona.session_channels)
    kw["purchase_channels"] = _mix(rng, persona.purchase_channels)
    return replace(persona, **kw)


def catalogue() -> list[dict[str, Any]]:
    """The persona catalogue as JSON-ready dicts (name, description, parameters)."""
    out = []
    for p in PERSONAS.values():
        params = asdict(p)
        del params["name"], params["description"]
        params["hour_weights"] = list(HOURS[p.hours])
        out.append({"name": p.name, "description": p.description, "parameters": params})
    return out


@dataclass(frozen=True, slots=True)
class Phase:
    """A customer behaves as ``persona`` from ``start_ms`` (inclusive) to ``end_ms``."""

    start_ms: int
    end_ms: int
    persona: Persona


@dataclass(frozen=True, slots=True)
class SimCustomer:
    """One simulated customer: planted personas over time and fixed traits."""

    index: int
    customer_id: str
    offset_min: int
    persona_start: str
    persona_end: str
    phases: tuple[Phase, ...]  # consecutive; nothing happens after the last one ends
    favourites: tuple[int, ...]
    bad_address: bool
    switch_ms: int | None = None

    def persona_at(self, t: int) -> Persona | None:
        """The customer's (jittered) persona at ``t`` ms, None before joining or after lapsing."""
        for ph in self.phases:
            if ph.start_ms <= t < ph.end_ms:
                return ph.persona
        return None


@dataclass(frozen=True, slots=True)
class Campaign:
    """An e-mail campaign, sent on ``day`` at ``local_ms`` into each customer's local day."""

    campaign_id: str
    kind: str
    day: int
    local_ms: int


@dataclass(frozen=True, slots=True)
class Plan:
    """Everything drawn up front: parameters, customers and campaigns."""

    seed: int
    days: int
    start_ms: int
    migrate_share: float
    emerging_share: float
    emerge_day: int
    customers: tuple[SimCustomer, ...]
    campaigns: tuple[Campaign, ...]

    @property
    def end_ms(self) -> int:
        return self.start_ms + self.days * DAY_MS


def plan(
    customers: int = 3000,
    days: int = 60,
    seed: int = 0,
    *,
    migrate_share: float = 0.10,
    emerging_share: float = 0.08,
    emerge_day: int | None = None,
) -> Plan:
    """Draw the population and campaign calendar of a simulation (see the module docstring)."""
    if customers < 1 or days < 7:
        raise ValueError("need at least 1 customer and 7 days")
    rng = np.random.default_rng(seed)
    start = event_time_ms(datetime.fromisoformat(START))
    end = start + days * DAY_MS
    e_day = max(1, round(days * 7 / 12)) if emerge_day is None else emerge_day
    names = list(INITIAL_MIX)
    mix = np.array([INITIAL_MIX[n] for n in names]) / sum(INITIAL_MIX.values())
    initial = [names[int(k)] for k in rng.choice(len(names), size=customers, p=mix)]
    order = [int(k) for k in rng.permutation(customers)]
    n_new = min(customers, round(customers * emerging_share))
    emerging = set(order[:n_new])
    eligible = [i for i in order[n_new:] if initial[i] in MIGRATIONS]
    migrants = set(eligible[: round(customers * migrate_share)])
    sw_lo = min(20, days // 3)
    sw_hi = max(sw_lo + 1, days - 15)
    offs = [o for o, _ in OFFSETS]
    off_p = np.array([w for _, w in OFFSETS]) / sum(w for _, w in OFFSETS)
    people = []
    for i in range(customers):
        offset = offs[int(rng.choice(len(offs), p=off_p))]
        fav = tuple(int(k) for k in rng.choice(len(CATEGORIES), size=3, replace=False))
        first, last, switch = initial[i], initial[i], None
        phases: tuple[Phase, ...]
        if i in emerging:
            first = last = EMERGING
            join_hi = max(e_day + 1, days - 3)
            join = start + int(rng.uniform(e_day, join_hi) * DAY_MS)
            phases = (Phase(join, end, jitter(PERSONAS[EMERGING], rng)),)
        elif first == LAPSED:
            lapse = start + int(rng.uniform(2, max(3, min(20, days // 3))) * DAY_MS)
            phases = (Phase(start, lapse, jitter(PERSONAS[LAPSED], rng)),)
        else:
            a = Phase(start, end, jitter(PERSONAS[first], rng))
            phases = (a,)
            if i in migrants:
                targets = MIGRATIONS[first]
                w = np.array([x for _, x in targets]) / sum(x for _, x in targets)
                last = targets[int(rng.choice(len(targets), p=w))][0]
                switch = start + int(rng.uniform(sw_lo, sw_hi) * DAY_MS)
                phases = (Phase(start, switch, a.persona),)
                if last != LAPSED:
                    phases += (Phase(switch, end, jitter(PERSONAS[last], rng)),)
        bad = bool(rng.random() < phases[0].persona.bad_address_prob)
        people.append(
            SimCustomer(i, f"sim-c{i:06d}", offset, first, last, phases, fav, bad, switch)
        )
    campaigns = []
    d = int(rng.integers(0, 3))
    while d < days:
        kind = KINDS[int(rng.integers(0, len(KINDS)))]
        local = int(rng.integers(8 * HOUR_MS, 12 * HOUR_MS))
        campaigns.append(Campaign(f"sim-{kind}-d{d:03d}", kind, d, local))
        d += int(rng.integers(2, 5))
    return Plan(seed, days, start, migrate_share, emerging_share, e_day, tuple(people),
                tuple(campaigns))  # fmt: skip
