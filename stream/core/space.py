"""The clustering space: what makes two customers alike.

The feature catalogue (`stream.core.features`) reports what a customer did; segments live in the
clustering space that `transform_many` maps catalogue vectors to, dimension for dimension (same
names, same order), so centroids, explanations and segment names still speak in catalogue
features. Per kind of feature:

* **counts and amounts** (orders, spend, sessions, carts, searches, e-mails, events): log1p of the
  value divided by the share of its horizon the customer has been observed, ``1 − e^(−tenure/τ)``,
  and weighted by how likely the customer still keeps their pace (`ALIVE_GRACE`; as in the
  "probability alive" of buy-till-you-die models: a silence long for *this* customer's pace,
  counted in touches, `missed_touches`).
  A decayed sum keeps growing for a customer's first months; corrected, the same behaviour seen
  for 10 days or for 60 lands in the same place, so features maturing does not move customers;
* **rates and shares** (average order value, discount share, refund rate, e-mail open and click
  rates, views per session, cart abandonment, channel, weekend and late-night shares): shrunk
  towards a neutral prior by the evidence behind them, ``(rate·n + a·prior) / (n + a)`` with
  ``n`` the decayed orders, sends, sessions, carts or events (average order value and views per
  session then on a log scale). One order does not make a customer coupon-driven, no e-mail is
  not the same as ignoring every e-mail, and no order is not an order value of 0;
* **days**: recency of activity as log1p; days since the last purchase capped at 30 (beyond a
  month, *how much* longer is lapsing, which ``overdue_events`` says in the customer's own terms);
* ``overdue_events`` (expected events missed in the current silence): log1p — the quickest sign
  that a customer went quiet, relative to their own pace;
* left out (constant 0): the trend ratios (7-day over 30-day pace, ``activity_trend`` and
  ``spend_trend``), which swing with a steady customer's weekly rhythm, and ``tenure_days``,
  along which every customer drifts as time passes (it scaled a young customer base apart from
  itself week by week, and made the trainer see every segment as new).

Measured (issue 4, planted personas, the optimal k-means partition held fixed): against the plain
log transform, ARI 0.89 → 0.93 and 0.87 → 0.91 on two simulated streams, and segment changes of
customers whose behaviour did not change fell by half (0.17 → 0.09 per customer per 30 days at the
default damping). End to end (trainer included), the pace weighting moved migrations that are
detected from 0.72 / 0.68 to 0.82 / 0.78 and their median delay from 11.9 to 10 days, for
0.15 → 0.18 spurious changes per stable customer per 30 days. Changing this transform changes
what a model's scaler statistics and centroids mean: `stream.core.model.ENCODING_VERSION` goes up
with it.

Average order value used to be log1p of 0 for a customer without orders: the customers of a
persona that seldom buys sat at 0 or, after a single order, about 4 log units away (some 2.5
standard deviations), and k-means gave the with-an-order half of e-mail browsers to the coupon
buyers. Shrunk towards a typical order (end to end, trainer included, two simulated streams and
four trainer seeds): spurious segment changes 0.195–0.206 → 0.137–0.172 and 0.186–0.194 →
0.133–0.139 per stable customer per 30 days, ARI .918–.923 → .926–.929 and .892–.901 →
.909–.912, lapses followed about a day sooner, migrations as before.

The pace used to be counted in events, with a grace of 20 missed events: a window shopper's
session brings ten, a store regular's one or two, so a few quiet days lapsed window shoppers long
before anyone else, and most of those lapses were false (45 of the 134 spurious changes into or
out of the lapsed segment on one stream, back after a median 5.4 days). Counted in touches
(`missed_touches`, grace 4, scale 2), same streams and seeds: migrations followed .81–.83 →
.83–.84 and .77–.78 → .80, their median delay 9.8–10.1 → 8.9–9.1 and 10.0–10.1 → 9.2–9.3 days,
lapses 8.1–8.4 → 7.4–7.7 and 9.2–9.4 → 8.4–8.7 days, spurious changes .137–.172 → .119–.148 and
.133–.139 → .124–.130, ARI .930–.935 and .919–.923. A grace of 3 follows a little more sooner
still, but raised a model-fit false alarm on the stationary calibration stream (issue 5).

>>> import numpy as np
>>> from stream.core.features import NAMES
>>> one_order = np.zeros((1, len(NAMES)))
>>> for name, v in [("purchases_30d", 1.0), ("discount_share_30d", 1.0), ("tenure_days", 60.0)]:
...     one_order[0, NAMES.index(name)] = v
>>> z = transform_many(one_order)[0]
>>> round(float(z[NAMES.index("discount_share_30d")]), 3)  # (1·1 + 1·0.3) / (1 + 1)
0.65
>>> float(z[NAMES.index("tenure_days")]), float(z[NAMES.index("activity_trend")])
(0.0, 0.0)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from stream.core.features import NAMES

Array = NDArray[np.float64]

_I = {name: i for i, name in enumerate(NAMES)}
_COUNTS_30 = tuple(_I[n] for n in (
    "purchases_30d", "spend_30d", "unsubscribes_30d", "bounces_30d", "sessions_30d",
    "add_to_cart_30d", "searches_30d", "events_30d", "emails_sent_30d",
))  # fmt: skip
_COUNTS_7 = tuple(_I[n] for n in ("purchases_7d", "spend_7d", "sessions_7d"))
EVIDENCE = 1.0
"""Pseudo-count ``a`` of the shrinkage (orders, sessions, carts); twice this for e-mails sent and
for events, of which a customer has more."""
PRIORS: dict[str, float] = {
    "avg_order_value_30d": 50.0,  # a typical order, in the shop's currency
    "discount_share_30d": 0.3,
    "refund_rate_30d": 0.05,
    "email_open_rate_30d": 0.3,
    "email_click_rate_30d": 0.1,
    "views_per_session_30d": 4.0,
    "cart_abandonment_30d": 0.6,
    "share_web": 0.25,
    "share_mobile": 0.25,
    "share_app": 0.25,
    "share_store": 0.25,
    "weekend_share_30d": 2 / 7,
    "late_night_share_30d": 0.2,
}
"""Where a rate or share with no evidence behind it sits (neutral values, not fitted)."""
# rate → (its evidence, pseudo-count)
_SHRINK = {
    "avg_order_value_30d": ("purchases_30d", EVIDENCE),
    "discount_share_30d": ("purchases_30d", EVIDENCE),
    "refund_rate_30d": ("purchases_30d", EVIDENCE),
    "email_open_rate_30d": ("emails_sent_30d", 2 * EVIDENCE),
    "email_click_rate_30d": ("emails_sent_30d", 2 * EVIDENCE),
    "views_per_session_30d": ("sessions_30d", EVIDENCE),
    "cart_abandonment_30d": ("add_to_cart_30d", EVIDENCE),
    **{n: ("events_30d", 2 * EVIDENCE) for n in (
        "share_web", "share_mobile", "share_app", "share_store", "weekend_share_30d",
        "late_night_share_30d",
    )},
}  # fmt: skip
ALIVE_GRACE = 4.0
ALIVE_SCALE = 2.0
"""Counts are weighted by how likely the customer still keeps their pace:
``exp(−max(0, missed − ALIVE_GRACE) / ALIVE_SCALE)``, ``missed`` the *touches* their pace
expects in their current silence (`missed_touches`). A touch is a session, an order or an e-mail
opened: the customer's own visits, which come about as a Poisson stream, where events come in
clumps (a window shopper's session brings ten of them). Counted in events, a silence of a few
days lapsed window shoppers (ten events a session) long before store regulars (one or two),
and most of those lapses were false; counted in touches, every persona gets the same odds."""
LAPSED_SEGMENT_DAYS = 7.0
"""A segment whose centroid has been silent this long stands for lapsed customers
(`lapsed_segments`). Measured (60-day simulations, every version): the lapsed segment's centroid
4.3–35 days as the stream goes on, every other segment's 0.5–3.3 days."""
LAPSE_SILENCE_DAYS = 30.0
"""A customer may move into a lapsed segment only once their silence is long for their own pace
(`ALIVE_GRACE` missed touches, where the pace weighting starts) or this long whatever their pace
(a customer with a touch or two in all has no pace to speak of): `may_lapse`."""
STD_FLOOR = 0.05
"""Smallest standard deviation a dimension is scaled by (in its own units: log counts, shares,
log days). A dimension on which nearly everyone agrees — tenure while every customer is
established — would otherwise turn a trifling difference into many standard deviations."""
RECENCY_PURCHASE_CAP = 30.0
LEFT_OUT = frozenset({"activity_trend", "spend_trend", "tenure_days"})
"""Catalogue features that are not clustering dimensions (their coordinate is 0)."""


_C30 = np.asarray(_COUNTS_30)
_C7 = np.asarray(_COUNTS_7)
_RATES = np.asarray([_I[n] for n in _SHRINK])
_EVIDENCE = np.asarray([_I[e] for e, _ in _SHRINK.values()])
_PSEUDO = np.asarray([a for _, a in _SHRINK.values()])
_PRIOR_MASS = _PSEUDO * np.asarray([PRIORS[n] for n in _SHRINK])
_LOG_AS_IS = np.asarray([_I[n] for n in ("recency_activity_days", "overdue_events")])
_LOG_SHRUNK = np.asarray([_I[n] for n in ("avg_order_value_30d", "views_per_session_30d")])
_RECENCY_PURCHASE = _I["recency_purchase_days"]
_TOUCH_COUNTS = np.asarray([_I["sessions_30d"], _I["purchases_30d"]])
_TENURE = _I["tenure_days"]
_RECENCY, _OPEN_RATE, _SENT = (
    _I["recency_activity_days"], _I["email_open_rate_30d"], _I["emails_sent_30d"],
)  # fmt: skip


def _observed(x: Array, tau_days: float) -> Array:
    """Per row: the share of a ``tau_days`` horizon the customer has been observed,
    ``1 − e^(−tenure/τ)`` (tenure at least half a day)."""
    out: Array = -np.expm1(-np.maximum(x[:, _TENURE], 0.5) / tau_days)
    return out


def missed_touches(x: Array, observed: Array | None = None) -> Array:
    """Per row of catalogue vectors: the touches (sessions, orders, e-mails opened) the
    customer's pace before their current silence expects in it.

    The pace is their 30-day touches as of their last event (the decayed sums grown back by the
    silence, ``e^(recency/30)``) per day, corrected for tenure like the counts (``observed``:
    the rows' ``1 − e^(−tenure/30)``, if the caller has it).

    >>> v = np.zeros((1, len(NAMES)))
    >>> v[0, _I["sessions_30d"]], v[0, _I["tenure_days"]] = 30 * np.exp(-10 / 30), 365
    >>> v[0, _I["recency_activity_days"]] = 10  # 1 session a day, silent for 10 days
    >>> round(float(missed_touches(v)[0]), 2)
    10.0
    """
    recency = np.clip(x[:, _RECENCY], 0.0, 365.0)
    touches = np.maximum(x[:, _TOUCH_COUNTS], 0.0).sum(axis=1)
    touches += np.clip(x[:, _OPEN_RATE], 0.0, 1.0) * np.maximum(x[:, _SENT], 0.0)
    if observed is None:
        observed = _observed(x, 30.0)
    out: Array = recency * touches * np.exp(recency / 30.0) / (30.0 * observed)
    return out


def lapsed_segments(
    centroids: Array, mean: Sequence[float], std: Sequence[float], features: Sequence[str]
) -> NDArray[np.bool_]:
    """Which segments stand for customers gone quiet: those whose centroid (scaled by ``mean``
    and ``std``) has gone `LAPSED_SEGMENT_DAYS` or longer without an event of its own. Read from
    the centroid in days, not from the population-relative name ("Lapsed", see
    `stream.core.naming`), so the answer does not flip between model versions while the
    population's own recency moves (it did: two segments were named lapsed in turn on one
    small simulation, and customers scored by different versions ended apart).

    >>> c = np.asarray([[0.0, 1.0], [3.0, -1.0]])
    >>> lapsed_segments(c, [0.5, 0.0], [1.0, 1.0], ["recency_activity_days", "sessions_30d"]).tolist()
    [False, True]
    """
    if "recency_activity_days" not in features:
        return np.zeros(len(centroids), dtype=bool)
    j = list(features).index("recency_activity_days")
    days = np.expm1(centroids[:, j] * std[j] + mean[j])
    out: NDArray[np.bool_] = days >= LAPSED_SEGMENT_DAYS
    return out


def may_lapse(
    x: Array, missed: Array | None = None, grace: float = ALIVE_GRACE
) -> NDArray[np.bool_]:
    """Per row of catalogue vectors: whether the customer's silence lets them be called lapsed:
    ``grace`` missed touches or `LAPSE_SILENCE_DAYS`. A coupon buyer between orders sits near
    the lapsed customers in the clustering space, and without this rule went into the lapsed
    segment and back. ``missed``: the rows' `missed_touches`, if the caller has them.
    ``grace`` is the scorer's (`stream.core.scoring.Scorer`, ``MICROSEG_LAPSE_GRACE``): a
    larger one calls fewer customers lapsed by mistake, and real lapses later; the clustering
    space keeps `ALIVE_GRACE`.

    >>> v = np.zeros((3, len(NAMES)))
    >>> v[:, _I["sessions_30d"]], v[:, _I["tenure_days"]] = 6.0, 365  # 6 sessions in 30 days
    >>> v[:, _RECENCY] = 10, 25, 13  # silent for so long: 2.8, 11.5 and 4.0 touches missed
    >>> may_lapse(v).tolist()
    [False, True, True]
    >>> may_lapse(v, grace=8.0).tolist()  # a more patient scorer
    [False, True, False]
    """
    recency = x[:, _RECENCY]
    if missed is None:
        missed = missed_touches(x)
    out: NDArray[np.bool_] = (missed >= grace) | (recency >= LAPSE_SILENCE_DAYS)
    return out


def transform_many(x: Array, missed: Array | None = None) -> Array:
    """Rows of catalogue vectors → rows of the clustering space (see the module docstring).

    A few whole-matrix operations (the trainer calls it once per sample, so its cost is mostly
    numpy's per-call overhead); left-out dimensions stay 0. ``missed``: the rows'
    `missed_touches`, if the caller has them (the scorer also needs them for `may_lapse`).
    """
    x = np.asarray(x, dtype=np.float64)
    out = np.zeros_like(x)
    observed = _observed(x, 30.0)
    if missed is None:
        missed = missed_touches(x, observed)
    alive = np.exp(-np.maximum(missed - ALIVE_GRACE, 0.0) / ALIVE_SCALE)
    out[:, _C30] = np.log1p(np.maximum(x[:, _C30], 0.0) * (alive / observed)[:, None])
    out[:, _C7] = np.log1p(np.maximum(x[:, _C7], 0.0) * (alive / _observed(x, 7.0))[:, None])
    n = np.maximum(x[:, _EVIDENCE], 0.0)
    out[:, _RATES] = (x[:, _RATES] * n + _PRIOR_MASS) / (n + _PSEUDO)
    out[:, _LOG_SHRUNK] = np.log1p(out[:, _LOG_SHRUNK])
    out[:, _LOG_AS_IS] = np.log1p(np.maximum(x[:, _LOG_AS_IS], 0.0))
    out[:, _RECENCY_PURCHASE] = np.log1p(
        np.clip(x[:, _RECENCY_PURCHASE], 0.0, RECENCY_PURCHASE_CAP)
    )
    return out


def transform(values: list[float]) -> list[float]:
    """`transform_many` of one catalogue vector (the same arithmetic, so the same bits)."""
    out: list[float] = transform_many(np.asarray([values], dtype=np.float64))[0].tolist()
    return out
