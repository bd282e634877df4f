"""The bench's deterministic synthetic data set: a realistic mix of all three streams.

About 0.3 % of the lines are bad (every kind of rejection), 1 % re-send an earlier event and 2 %
arrive late (out of time order). The same ``(events, customers, seed)`` gives the same bytes.
"""

from __future__ import annotations

import gzip
import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

T0_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z
SPAN_MS = 90 * 86_400_000
_OFFSETS = ("+00:00", "+00:00", "+00:00", "Z", "+01:00", "+02:00", "-05:00", "+05:30", "-08:00")
_CHANNELS = ("web", "web", "web", "mobile", "mobile", "app", "store", "phone", "other")
_CATEGORIES = ("books", "shoes", "toys", "garden", "grocery", "beauty", "electronics", "home")
_CLICK = (
    ("page_view", 30),
    ("product_view", 25),
    ("session_start", 12),
    ("search", 6),
    ("add_to_cart", 5),
    ("remove_from_cart", 1),
    ("checkout_start", 2),
)
_EMAIL = (
    ("email_sent", 10),
    ("email_delivered", 9),
    ("email_open", 4),
    ("email_click", 1.5),
    ("email_bounce", 0.3),
    ("email_unsubscribe", 0.15),
    ("email_complaint", 0.05),
)
_PURCHASE = (("purchase", 7.5), ("refund", 0.5))
_TYPES = tuple(t for t, _ in _CLICK + _EMAIL + _PURCHASE)
_WEIGHTS = tuple(w for _, w in _CLICK + _EMAIL + _PURCHASE)
_BAD = (
    b"this is not json",
    b'{"event_id": "x", "customer_id": "c", "type": "purchase"',
    b'{"event_id":"x","customer_id":"c","type":"page_click","ts":"2024-02-01T10:00:00Z"}',
    b'{"event_id":"x","customer_id":"c","type":"purchase","ts":"2024-02-01T10:00:00Z","order_id":"o","amount":"9.99"}',
    b'{"event_id":"x","customer_id":"c","type":"purchase","ts":"2024-02-01T10:00:00Z","order_id":"o","amount":-3.0}',
    b'{"event_id":"x","customer_id":"c","type":"page_view","ts":"2024-02-01T10:00:00"}',
    b'{"event_id":"x","customer_id":"c","type":"email_open","ts":"2024-02-01T10:00:00Z"}',
    b"[1, 2, 3]",
)


def _iso(ms: int, offset: str) -> str:
    """RFC 3339 text of ``ms`` in the given UTC offset (second precision, sometimes millis)."""
    sign = -1 if offset.startswith("-") else 1
    shift = 0 if offset == "Z" else sign * (int(offset[1:3]) * 60 + int(offset[4:6])) * 60_000
    local = ms + shift
    secs, millis = divmod(local, 1000)
    days, rem = divmod(secs, 86_400)
    y, m, d = _civil(days)
    hh, rem = divmod(rem, 3600)
    mm, ss = divmod(rem, 60)
    frac = f".{millis:03d}" if millis else ""
    return f"{y:04d}-{m:02d}-{d:02d}T{hh:02d}:{mm:02d}:{ss:02d}{frac}{offset}"


def _civil(days: int) -> tuple[int, int, int]:
    """Proleptic Gregorian (year, month, day) of days since 1970-01-01 (Hinnant's algorithm)."""
    z = days + 719_468
    era = z // 146_097
    doe = z - era * 146_097
    yoe = (doe - doe // 1460 + doe // 36_524 - doe // 146_096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    return yoe + era * 400 + (m <= 2), m, d


def generate(
    path: Path,
    events: int,
    customers: int,
    seed: int = 7,
    *,
    start_ms: int = T0_MS,
    span_ms: int = SPAN_MS,
    prefix: str = "",
) -> int:
    """Write ``events`` lines of synthetic JSONL.gz to ``path``; return the number of lines.

    Parameters
    ----------
    path
        The file to write (gzip).
    events, customers
        Lines and distinct customers (a few heavy customers, a long tail).
    seed
        Seed of the generator; the output is deterministic for given arguments.
    start_ms, span_ms
        Event times run from ``start_ms`` over ``span_ms`` (plus up to an hour of jitter).
    prefix
        Prepended to event ids (a second data set for the same customers needs other ids).
    """
    with gzip.open(path, "wb", compresslevel=6) as fh:
        for line in lines(events, customers, seed, start_ms=start_ms, span_ms=span_ms,
                          prefix=prefix):  # fmt: skip
            fh.write(line + b"\n")
    return events


def lines(
    events: int,
    customers: int,
    seed: int = 7,
    *,
    start_ms: int = T0_MS,
    span_ms: int = SPAN_MS,
    prefix: str = "",
) -> Iterator[bytes]:
    """The lines `generate` writes, without the newline (a generator of bytes)."""
    rng = random.Random(seed)
    weights = [1.0 / (i + 1) ** 0.6 for i in range(customers)]  # a few heavy customers, long tail
    cust = rng.choices(range(customers), weights=weights, k=events)
    kinds = rng.choices(_TYPES, weights=_WEIGHTS, k=events)
    sent: list[bytes] = []
    for i in range(events):
        u = rng.random()
        if u < 0.003:
            line = rng.choice(_BAD)
        elif u < 0.013 and sent:
            line = rng.choice(sent)
        else:
            ms = start_ms + (i * span_ms) // events + rng.randrange(3_600_000)
            line = _event(rng, i, cust[i], kinds[i], ms, prefix)
            if len(sent) < 4096:
                sent.append(line)
            else:
                sent[rng.randrange(4096)] = line
        yield line


def _event(rng: random.Random, i: int, c: int, kind: str, ms: int, prefix: str) -> bytes:
    if rng.random() < 0.02:
        ms -= rng.randrange(40 * 86_400_000)  # late: up to 40 days, some beyond the bound
    ev: dict[str, Any] = {
        "event_id": f"{prefix}e{i:09d}",
        "customer_id": f"cust-{c:07d}",
        "type": kind,
        "ts": _iso(ms, rng.choice(_OFFSETS)),
    }
    if kind.startswith("email_"):
        ev["campaign_id"] = f"camp-{rng.randrange(40)}"
        if rng.random() < 0.5:
            ev["message_id"] = f"m{i}"
        if kind == "email_click":
            ev["url"] = f"https://shop.example/p/{rng.randrange(5000)}"
    elif kind in ("purchase", "refund"):
        n = rng.choice((1, 1, 1, 2, 2, 3, 4))
        lines = [
            (rng.randrange(20_000), rng.choice(_CATEGORIES), rng.choice((1, 1, 1, 2, 3)),
             round(rng.uniform(1, 120), 2))
            for _ in range(n)
        ]  # fmt: skip
        items = [
            {"product_id": f"p{p}", "category": c, "quantity": q, "unit_price": u}
            for p, c, q, u in lines
        ]
        ev["order_id"] = f"o{i}"
        ev["amount"] = round(sum(q * u for _, _, q, u in lines), 2)
        ev["currency"] = "EUR"
        ev["channel"] = rng.choice(_CHANNELS)
        if rng.random() < 0.2:
            ev["discount"] = round(rng.uniform(0.5, 10), 2)
        if rng.random() < 0.05:
            ev["coupon_code"] = "SPRING"
        ev["items"] = items
    else:
        ev["session_id"] = f"s{c}-{i // 50}"
        ev["channel"] = rng.choice(_CHANNELS)
        if kind in ("product_view", "add_to_cart", "remove_from_cart"):
            ev["product_id"] = f"p{rng.randrange(20_000)}"
            ev["category"] = rng.choice(_CATEGORIES)
            ev["price"] = round(rng.uniform(1, 120), 2)
        elif kind == "search":
            ev["query"] = rng.choice(_CATEGORIES) + " sale"
        elif kind == "page_view":
            ev["page"] = f"/c/{rng.choice(_CATEGORIES)}"
    if rng.random() < 0.1:
        ev["user_agent"] = "Mozilla/5.0"  # an unknown extra field: accepted and ignored
    return json.dumps(ev, separators=(",", ":")).encode()
