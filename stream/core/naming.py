"""Descriptive, deterministic segment names, traits, value tiers and suggested actions.

A centroid lives in scaled space, so each coordinate is a z-score: how far the segment's typical
customer sits from the population, per feature. Names are composed from the strongest
differences (e.g. "High-value app loyalists", "Coupon-driven occasional buyers", "Lapsed").

>>> z = {n: 0.0 for n in NAMES}
>>> z.update(spend_30d=1.4, purchases_30d=1.1, share_app=1.6)
>>> describe(z)["name"]
'High-value app loyalists'
>>> z = {n: 0.0 for n in NAMES}
>>> z.update(recency_activity_days=1.8, purchases_30d=-0.9, sessions_30d=-0.8)
>>> describe(z)["name"], describe(z)["action"]
('Lapsed', 'win-back offer with a time limit')
>>> z.update(share_web=0.9)
>>> describe(z)["name"]
'Lapsed web customers'

Whether a segment stands for lapsed customers is the scorer's to say (`stream.core.space.
lapsed_segments`: its centroid has gone 7 days or more without an event of its own). A segment
that is merely quieter than the population, in a week where everyone is busy, is named "Quiet",
with a reminder rather than a win-back offer, so a campaign never sends the win-back to
customers the scorer does not count as lapsed:

>>> describe(z, lapsed=False)["name"], describe(z, lapsed=False)["action"]
('Quiet web customers', 'a reminder of what is new, no discount yet')
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from stream.core.features import NAMES

STRONG = 0.75
NOTABLE = 0.5

_MODIFIERS = (
    ("discount_share_30d", "Coupon-driven"),
    ("email_click_rate_30d", "E-mail-engaged"),
    ("email_open_rate_30d", "E-mail-engaged"),
    ("late_night_share_30d", "Night-owl"),
    ("refund_rate_30d", "Return-prone"),
    ("weekend_share_30d", "Weekend"),
)
_CHANNELS = (
    ("share_app", "app"),
    ("share_store", "in-store"),
    ("share_mobile", "mobile"),
    ("share_web", "web"),
)


def _noun(z: dict[str, float]) -> str:
    buys, carts, sessions = z["purchases_30d"], z["add_to_cart_30d"], z["sessions_30d"]
    if buys > NOTABLE:
        return "loyalists"
    if carts > NOTABLE and z["cart_abandonment_30d"] > 0:
        return "cart abandoners"
    if sessions > NOTABLE or z["views_per_session_30d"] > STRONG:
        return "browsers"
    if z["email_open_rate_30d"] > NOTABLE:
        return "readers"
    if buys < -0.3:
        return "occasional buyers"
    return "customers"


def _tier(z: dict[str, float]) -> str:
    spend = z["spend_30d"]
    return "high" if spend > STRONG else "low" if spend < -0.5 else "mid"


def _action(name: str, tier: str) -> str:
    lower = name.lower()
    if lower.startswith("lapsed"):
        return "win-back offer with a time limit"
    if lower.startswith("quiet"):
        return "a reminder of what is new, no discount yet"
    if "cart abandoners" in lower:
        return "cart reminder within a day"
    if "coupon-driven" in lower:
        return "targeted discounts, not blanket ones"
    if tier == "high":
        return "loyalty perks and early access"
    if "e-mail-engaged" in lower or "readers" in lower:
        return "content-led e-mails with a clear offer"
    if "browsers" in lower:
        return "personalised recommendations"
    return "nurture with the regular programme"


def describe(z: dict[str, float], lapsed: bool | None = None) -> dict[str, Any]:
    """Name, traits, value tier and suggested action of a centroid given as feature → z-score.

    ``lapsed``: whether the scorer counts the segment as lapsed customers; None: judged from the
    z-scores alone (far more recent silence than the population, less activity).
    """
    tier = _tier(z)
    activity = z["sessions_30d"] + z["purchases_30d"] + z["email_open_rate_30d"]
    chans = [(z[f], word) for f, word in _CHANNELS if z[f] > NOTABLE]
    quiet = z["recency_activity_days"] > STRONG and activity < 0
    if lapsed is None:
        lapsed = quiet
    if lapsed:
        # A channel still tells lapsed customers apart (a churn wave from one channel may
        # form a segment of its own): the win-back goes out where they used to come.
        name = f"Lapsed {max(chans)[1]} customers" if chans else "Lapsed"
    elif quiet:
        name = f"Quiet {max(chans)[1]} customers" if chans else "Quiet customers"
    else:
        parts = []
        if tier == "high":
            parts.append("High-value")
        elif tier == "low" and z["purchases_30d"] > NOTABLE:
            parts.append("Low-spend")
        mods = [(z[f], word) for f, word in _MODIFIERS if z[f] > STRONG]
        if mods:
            parts.append(max(mods)[1])
        if chans:
            parts.append(max(chans)[1])
        parts.append(_noun(z))
        name = " ".join(parts)
        name = name[0].upper() + name[1:]
    traits = sorted(((abs(v), k, v) for k, v in z.items()), reverse=True)[:4]
    return {
        "name": name,
        "traits": [
            {"feature": k, "z": round(v, 3), "direction": "above" if v > 0 else "below"}
            for _, k, v in traits
        ],
        "value_tier": tier,
        "action": _action(name, tier),
    }


def name_segments(
    centroids: list[list[float]], ids: list[int], lapsed: Sequence[bool] | None = None
) -> list[dict[str, Any]]:
    """Describe every segment (``lapsed``: which ones the scorer counts as lapsed customers, see
    `describe`); duplicate names get a number suffix in id order."""
    flags: Sequence[bool | None] = [None] * len(centroids) if lapsed is None else lapsed
    out = [
        describe(dict(zip(NAMES, c, strict=True)), flag)
        for c, flag in zip(centroids, flags, strict=True)
    ]
    seen: dict[str, int] = {}
    for _, d in sorted(zip(ids, out, strict=True), key=lambda p: p[0]):
        n = seen.get(d["name"], 0) + 1
        seen[d["name"]] = n
        if n > 1:
            d["name"] = f"{d['name']} ({n})"
    return out
