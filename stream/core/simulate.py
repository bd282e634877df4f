"""A deterministic persona simulator: realistic, learnable v1 input over all three streams.

`plan` draws the population from a seed: each customer's planted persona (`stream.core.personas`)
with an individual variant of its parameters, a home UTC offset, favourite categories, and — for a
share of customers — a migration to another persona at a switch time; customers of the emerging
persona join only from ``emerge_day`` on; e-mail campaigns go out every 2–4 days, to lapsed
customers too (who never open them: the marketer's sends are no sign of life). `iter_events`
then streams the events of that plan in order of event time (then ``event_id``), day by day, with
bounded memory; `truth` is the answer key (every customer's persona at the start and at the end).
Everything is a function of the arguments: no clock, no environment, randomness only from ``seed``.

>>> lines, answer = generate(customers=20, days=14, seed=1)
>>> lines == generate(customers=20, days=14, seed=1)[0]
True
>>> from stream.core.events import parse_event
>>> parse_event(lines[0]).customer_id.startswith("sim-c"), len(answer["customers"])
(True, 20)
"""

from __future__ import annotations

import heapq
import json
import math
import random
from collections.abc import Iterator
from datetime import datetime, timedelta
from itertools import accumulate
from typing import Any

from stream.core.personas import (
    CATEGORIES,
    CHANNELS,
    DAY_MS,
    EMERGING,
    HOURS,
    INITIAL_MIX,
    LAPSED,
    MIGRATIONS,
    MIN_MS,
    PERSONAS,
    Campaign,
    Persona,
    Plan,
    SimCustomer,
    catalogue,
    plan,
)  # fmt: skip

__all__ = ["Plan", "generate", "iter_events", "iter_lines", "plan", "rfc3339", "truth"]

SEC_MS, HOUR_MS = 1_000, 3_600_000
WORDS = ("sale", "new", "black", "gift", "cheap", "best", "set", "pro", "mini", "kids")
PAGES = ("home", "deals", "new-in", "account", "help", "cart")
COUPONS = ("WELCOME10", "SAVE15", "APP20", "WEEKEND", "FREESHIP")
_NAIVE_EPOCH = datetime(1970, 1, 1)
_CUM_HOURS = {k: list(accumulate(v)) for k, v in HOURS.items()}


def rfc3339(t_ms: int, offset_min: int = 0) -> str:
    """``t_ms`` (Unix ms) as RFC 3339 local time with the given UTC offset.

    >>> rfc3339(1736121600123, -300)
    '2025-01-05T19:00:00.123-05:00'
    """
    local = _NAIVE_EPOCH + timedelta(milliseconds=t_ms + offset_min * MIN_MS)
    sign = "-" if offset_min < 0 else "+"
    hh, mm = divmod(abs(offset_min), 60)
    return f"{local.isoformat(timespec='milliseconds')}{sign}{hh:02d}:{mm:02d}"


def truth(p: Plan) -> dict[str, Any]:
    """The answer key: parameters, persona catalogue, campaigns and every customer's personas."""
    e_start = p.start_ms + p.emerge_day * DAY_MS
    people = []
    for c in p.customers:
        lapses = c.persona_end == LAPSED
        stop = c.phases[-1].end_ms if lapses else None
        people.append({
            "customer_id": c.customer_id,
            "utc_offset": rfc3339(0, c.offset_min)[-6:],
            "persona_start": c.persona_start,
            "persona_end": c.persona_end,
            "joined_ms": c.phases[0].start_ms,
            "joined": rfc3339(c.phases[0].start_ms),
            "migration": None if c.switch_ms is None else {
                "from": c.persona_start, "to": c.persona_end,
                "switch_ms": c.switch_ms, "switch": rfc3339(c.switch_ms)},
            "active_until_ms": stop,
            "active_until": None if stop is None else rfc3339(stop),
        })  # fmt: skip
    ends = [c.persona_end for c in p.customers]
    return {
        "generator": "microseg simulate",
        "seed": p.seed,
        "parameters": {
            "customers": len(p.customers),
            "days": p.days,
            "start": rfc3339(p.start_ms),
            "end": rfc3339(p.end_ms),
            "migrate_share": p.migrate_share,
            "emerging_share": p.emerging_share,
            "emerge_day": p.emerge_day,
        },
        "personas": catalogue(),
        "initial_mix": dict(INITIAL_MIX),
        "migrations": {k: [{"to": t, "weight": w} for t, w in v] for k, v in MIGRATIONS.items()},
        "emerging": {
            "persona": EMERGING,
            "start_day": p.emerge_day,
            "start_ms": e_start,
            "start": rfc3339(e_start),
        },
        "campaigns": [
            {"campaign_id": k.campaign_id, "kind": k.kind, "day": k.day} for k in p.campaigns
        ],
        "persona_end_counts": {n: ends.count(n) for n in PERSONAS},
        "customers": people,
    }


class _Generator:
    """Emits the events of a `Plan`, one local day at a time, into a heap ordered by time."""

    def __init__(self, p: Plan, rnd: random.Random) -> None:
        self.p, self.r = p, rnd
        self.heap: list[tuple[int, int, int, str, dict[str, Any]]] = []
        self.seq = 0
        n = len(p.customers)
        self.unsubscribed, self.bounces = [False] * n, [0] * n
        self.sessions, self.orders = [0] * n, [0] * n
        self.stop = [c.phases[-1].end_ms for c in p.customers]
        # Lapsed customers stay on the mailing list, as real ones do. Their e-mails come from a
        # generator of their own, so everything the others do is drawn exactly as before.
        self.lapsed_r = random.Random(f"lapsed-mail-{p.seed}")
        self.by_day: dict[int, list[Campaign]] = {}
        for k in p.campaigns:
            self.by_day.setdefault(k.day, []).append(k)

    def emit(self, c: SimCustomer, t: int, kind: str, **extra: Any) -> None:
        self.own(c, t, kind, extra)

    def own(self, c: SimCustomer, t: int, kind: str, extra: dict[str, Any]) -> None:
        """Queue an event of the customer's own, unless it falls after they lapsed."""
        if t < self.stop[c.index]:
            self.push(c, t, kind, extra)

    def push(self, c: SimCustomer, t: int, kind: str, extra: dict[str, Any]) -> None:
        if self.p.start_ms <= t < self.p.end_ms:
            heapq.heappush(self.heap, (t, c.index, self.seq, kind, extra))
            self.seq += 1

    def poisson(self, lam: float) -> int:
        limit, k, prod = math.exp(-lam), 0, self.r.random()
        while prod > limit:
            k += 1
            prod *= self.r.random()
        return k

    def clock(self, day_lo: int, hours: str) -> int:
        """A time in the local day starting at ``day_lo``, drawn from an hour profile."""
        cum = _CUM_HOURS[hours]
        hour = self.r.choices(range(24), cum_weights=cum)[0]
        return day_lo + hour * HOUR_MS + self.r.randrange(HOUR_MS)

    def gap(self) -> int:
        return SEC_MS + int(self.r.expovariate(1 / 40_000))

    def channel(self, mix: tuple[float, ...]) -> str:
        return self.r.choices(CHANNELS, weights=mix)[0]

    def product(self, c: SimCustomer) -> tuple[str, str, float]:
        r = self.r
        cat = r.choice(c.favourites) if r.random() < 0.7 else r.randrange(len(CATEGORIES))
        num = r.randrange(500)
        name, median = CATEGORIES[cat]
        return name, f"P{cat:02d}{num:03d}", round(median * (0.35 + (num * 7919 % 1000) / 400), 2)

    def simulate_day(self, day: int) -> None:
        for c in self.p.customers:
            lo = self.p.start_ms + day * DAY_MS - c.offset_min * MIN_MS
            for ph in c.phases:
                a, b = max(lo, ph.start_ms), min(lo + DAY_MS, ph.end_ms)
                if a < b:
                    self.activity(c, ph.persona, lo, a, b, day % 7 >= 5)
            for k in self.by_day.get(day, ()):
                self.email(c, k, lo)

    def activity(self, c: SimCustomer, p: Persona, lo: int, a: int, b: int, weekend: bool) -> None:
        """Browsing sessions and orders of local day ``lo`` that fall into [a, b) (thinning)."""
        wf = p.weekend_factor
        scale = 7 / (5 + 2 * wf) * (wf if weekend else 1.0)
        for _ in range(self.poisson(p.browse_rate * scale)):
            t = self.clock(lo, p.hours)
            if a <= t < b:
                self.session(c, p, t, self.channel(p.session_channels), buy=False)
        for _ in range(self.poisson(p.purchase_rate * scale)):
            t = self.clock(lo, p.hours)
            if a <= t < b:
                ch = self.channel(p.purchase_channels)
                if ch == "store":
                    self.order(c, p, t, ch, [])
                else:
                    self.session(c, p, t, ch, buy=True)

    def session(
        self, c: SimCustomer, p: Persona, t: int, ch: str, buy: bool, coupon: str | None = None
    ) -> None:
        r, i = self.r, c.index
        base = {"session_id": f"{c.customer_id}-s{self.sessions[i]}", "channel": ch}
        self.sessions[i] += 1
        self.emit(c, t, "session_start", page=r.choice(("home", "landing")), **base)
        steps = ["v"] * (1 + self.poisson(max(p.views_mean - 1, 0.0)))
        steps += ["s"] * self.poisson(p.search_mean)
        r.shuffle(steps)
        carting = buy or r.random() < p.cart_prob
        cart: list[tuple[str, str, float]] = []
        for step in steps:
            t += self.gap()
            if step == "s":
                query = f"{r.choice(CATEGORIES)[0]} {r.choice(WORDS)}"
                self.emit(c, t, "search", query=query, **base)
            elif r.random() < 0.35:
                self.emit(c, t, "page_view", page=r.choice(PAGES), **base)
            else:
                cat, pid, price = self.product(c)
                self.emit(c, t, "product_view", category=cat, product_id=pid, price=price, **base)
                if carting and len(cart) < 5 and (not cart or r.random() < 0.35):
                    t += self.gap()
                    self.emit(c, t, "add_to_cart", category=cat, product_id=pid, price=price,
                              **base)  # fmt: skip
                    cart.append((cat, pid, price))
                    if r.random() < p.remove_prob and (not buy or len(cart) > 1):
                        t += self.gap()
                        self.emit(c, t, "remove_from_cart", category=cat, product_id=pid, **base)
                        cart.pop()
        if buy and not cart:
            cat, pid, price = self.product(c)
            t += self.gap()
            self.emit(c, t, "add_to_cart", category=cat, product_id=pid, price=price, **base)
            cart.append((cat, pid, price))
        if cart and (buy or r.random() < p.checkout_prob):
            t += self.gap()
            self.emit(c, t, "checkout_start", page="checkout", **base)
        if buy:
            self.order(c, p, t + self.gap(), ch, cart, coupon)

    def order(
        self, c: SimCustomer, p: Persona, t: int, ch: str, lines: list[tuple[str, str, float]],
        coupon: str | None = None,
    ) -> None:  # fmt: skip
        r, i = self.r, c.index
        if not lines:
            k = r.choices((1, 2, 3, 4, 5), weights=(45, 25, 15, 10, 5))[0]
            lines = [self.product(c) for _ in range(k)]
        qty = [1 if r.random() < 0.8 else 2 for _ in lines]
        value = r.lognormvariate(math.log(p.aov_median), p.aov_sigma)
        scale = value / sum(q * price for q, (_, _, price) in zip(qty, lines, strict=True))
        items: list[dict[str, Any]] = [
            {"product_id": pid, "category": cat, "quantity": q,
             "unit_price": round(max(price * scale, 0.5), 2)}
            for q, (cat, pid, price) in zip(qty, lines, strict=True)
        ]  # fmt: skip
        gross = round(sum(it["quantity"] * it["unit_price"] for it in items), 2)
        pct, code = 0.0, None
        if coupon is not None or r.random() < p.discount_prob:
            pct = r.choice((0.1, 0.15, 0.2, 0.25, 0.3))
            code = coupon
            if code is None and r.random() < p.coupon_prob:
                code = r.choice(COUPONS)
        discount = round(gross * pct, 2)
        amount = round(gross - discount, 2)
        order_id = f"{c.customer_id}-o{self.orders[i]}"
        self.orders[i] += 1
        extra: dict[str, Any] = {"order_id": order_id, "amount": amount, "currency": "EUR",
                                 "channel": ch, "discount": discount}  # fmt: skip
        if code is not None:
            extra["coupon_code"] = code
        self.emit(c, t, "purchase", **extra, items=items)
        if r.random() < p.refund_prob:
            back = items if len(items) == 1 or r.random() < 0.6 else [r.choice(items)]
            due = sum(it["quantity"] * it["unit_price"] for it in back) * (1 - pct)
            extra.update(amount=round(min(amount, due), 2), items=back)
            del extra["discount"]
            extra.pop("coupon_code", None)
            self.emit(c, t + r.randrange(DAY_MS, 14 * DAY_MS), "refund", **extra)

    def later(self, c: SimCustomer, p: Persona, t: int) -> int:
        """When the customer next looks: a local hour from their profile, 0–2 days after ``t``."""
        off = c.offset_min * MIN_MS
        day_lo = (t + off) // DAY_MS * DAY_MS - off
        wait = self.r.choices((0, 1, 2), weights=(0.6, 0.3, 0.1))[0]
        out = self.clock(day_lo + wait * DAY_MS, p.hours)
        while out <= t:
            out += DAY_MS
        return out

    def email(self, c: SimCustomer, k: Campaign, lo: int) -> None:
        r, i = self.r, c.index
        t = lo + k.local_ms + r.randrange(20 * MIN_MS)
        p = c.persona_at(t)
        if p is None:
            if t >= self.stop[i]:  # lapsed: still mailed, from a generator of their own
                self.send(c, k, t, self.lapsed_r, lapsed=True)
            return
        sent = self.send(c, k, t, r, lapsed=False)
        if sent is None:
            return
        t, base = sent
        if r.random() < p.open_prob:
            t = self.later(c, p, t)
            self.emit(c, t, "email_open", **base)
            if r.random() < p.click_prob:
                t += 5 * SEC_MS + int(r.expovariate(1 / 60_000))
                url = f"https://shop.example/{k.kind}/{k.campaign_id}"
                self.emit(c, t, "email_click", url=url, **base)
                ch = self.channel(p.session_channels)
                if r.random() < p.click_purchase_prob:
                    code = k.campaign_id.upper() if k.kind == "promo" else None
                    self.session(c, p, t + 20 * SEC_MS, ch, buy=True, coupon=code)
                elif r.random() < p.click_session_prob:
                    self.session(c, p, t + 20 * SEC_MS, ch, buy=False)
        if r.random() < p.unsub_prob:
            self.unsubscribed[i] = True
            kind = "email_complaint" if r.random() < 0.1 else "email_unsubscribe"
            self.emit(c, t + r.randrange(MIN_MS, HOUR_MS), kind, **base)

    def send(
        self, c: SimCustomer, k: Campaign, t: int, r: random.Random, lapsed: bool
    ) -> tuple[int, dict[str, Any]] | None:
        """Campaign ``k`` to ``c`` at ``t``, drawing from ``r``: sent, then bounced or delivered.
        Returns the delivery time and the e-mail's ids, or None if it was not delivered. To a
        customer who has ``lapsed`` the events go out although they come after the lapse."""
        i = c.index
        if self.unsubscribed[i] or self.bounces[i] >= 2 or r.random() > 0.85:
            return None
        base = {"campaign_id": k.campaign_id, "message_id": f"{k.campaign_id}-{c.customer_id}"}
        queue = self.push if lapsed else self.own
        queue(c, t, "email_sent", dict(base))
        if c.bad_address or r.random() < 0.005:
            self.bounces[i] += 1
            queue(c, t + r.randrange(5 * SEC_MS, 120 * SEC_MS), "email_bounce", dict(base))
            return None
        t += r.randrange(2 * SEC_MS, 60 * SEC_MS)
        queue(c, t, "email_delivered", dict(base))
        return t, base


def iter_events(p: Plan) -> Iterator[dict[str, Any]]:
    """The plan's events as contract dicts, sorted by event time then ``event_id``."""
    gen = _Generator(p, random.Random(p.seed))
    max_off = max(0, *(c.offset_min * MIN_MS for c in p.customers))
    n = 0
    for day in range(p.days):
        gen.simulate_day(day)
        bound = p.end_ms if day == p.days - 1 else p.start_ms + (day + 1) * DAY_MS - max_off
        heap = gen.heap
        while heap and heap[0][0] < bound:
            t, ci, _, kind, extra = heapq.heappop(heap)
            c = p.customers[ci]
            yield {"event_id": f"sim-{p.seed}-{n:09d}", "customer_id": c.customer_id,
                   "type": kind, "ts": rfc3339(t, c.offset_min), **extra}  # fmt: skip
            n += 1


def iter_lines(p: Plan) -> Iterator[str]:
    """`iter_events` as compact JSON lines (without the newline)."""
    for event in iter_events(p):
        yield json.dumps(event, separators=(",", ":"))


def generate(
    customers: int = 3000, days: int = 60, seed: int = 0, **options: Any
) -> tuple[list[str], dict[str, Any]]:
    """All event lines and the truth of one simulation (convenience over `plan`)."""
    p = plan(customers, days, seed, **options)
    return list(iter_lines(p)), truth(p)
