"""The clustering space: maturing features do not move customers, thin evidence is shrunk,
left-out dimensions stay out, and one vector or a matrix go through the same arithmetic."""

from __future__ import annotations

import math

import numpy as np
import pytest

from stream.core.facts import apply_fact, fact_of
from stream.core.features import DAY_MS, NAMES, vector
from stream.core.space import LEFT_OUT, PRIORS, transform, transform_many
from stream.core.state import CustomerState

COL = {n: i for i, n in enumerate(NAMES)}


def _steady(days: int, per_day: int = 2, quiet_days: float = 0.0, every: int = 1) -> list[float]:
    """The catalogue vector of a customer with the same purchases every ``every`` days for
    ``days`` days, ``quiet_days`` after the last one."""
    from stream.core.events import parse_event

    s = CustomerState()
    start = 1_700_000_000_000
    for d in range(0, days, every):
        for k in range(per_day):
            ev = parse_event(
                f'{{"event_id":"e{d}-{k}","customer_id":"c","type":"purchase","order_id":"o",'
                f'"amount":20,"ts":"2023-11-14T22:13:20Z"}}'.encode()
            )
            t = start + d * DAY_MS + k * 3_600_000
            _, effect, amount = fact_of(ev, t)
            apply_fact(s, t, effect, amount)
    return vector(s, s.last_ts + int(quiet_days * DAY_MS))


@pytest.mark.parametrize("name", ["purchases_30d", "spend_30d", "events_30d"])
def test_the_same_pace_seen_for_two_weeks_or_three_months_lands_in_the_same_place(
    name: str,
) -> None:
    young, old = transform(_steady(14)), transform(_steady(90))
    raw_young, raw_old = _steady(14)[COL[name]], _steady(90)[COL[name]]
    assert raw_young < 0.65 * raw_old  # the decayed sum is still filling up
    # corrected for how much of its horizon was observed, the coordinate barely differs
    assert young[COL[name]] == pytest.approx(old[COL[name]], abs=0.1)
    assert abs(math.log1p(raw_young) - math.log1p(raw_old)) > 0.4  # uncorrected, it would not


def test_thin_evidence_is_shrunk_towards_the_prior() -> None:
    x = np.zeros((3, len(NAMES)))
    for row, orders in enumerate([0.0, 1.0, 50.0]):
        x[row, COL["purchases_30d"]] = orders
        x[row, COL["discount_share_30d"]] = 1.0 if orders else 0.0
    share = transform_many(x)[:, COL["discount_share_30d"]]
    assert share[0] == pytest.approx(PRIORS["discount_share_30d"])  # nothing known: neutral
    assert share[1] == pytest.approx((1.0 + PRIORS["discount_share_30d"]) / 2)  # one order
    assert share[2] > 0.98  # fifty discounted orders: coupon-driven


def test_left_out_dimensions_are_zero_and_the_rest_finite() -> None:
    rng = np.random.default_rng(3)
    x = np.abs(rng.lognormal(0.0, 2.0, size=(50, len(NAMES))))
    z = transform_many(x)
    assert np.isfinite(z).all()
    for name in LEFT_OUT:
        assert (z[:, COL[name]] == 0.0).all()
    assert {"activity_trend", "spend_trend", "tenure_days"} == LEFT_OUT


def test_one_vector_and_a_matrix_are_transformed_bit_for_bit_alike() -> None:
    rng = np.random.default_rng(5)
    x = np.abs(rng.normal(2.0, 3.0, size=(20, len(NAMES))))
    many = transform_many(x)
    for row in range(20):
        assert transform(list(x[row])) == list(many[row])


def test_overdue_events_grows_with_silence_at_the_customers_own_pace() -> None:
    busy, calm = _steady(40, per_day=4, quiet_days=5), _steady(40, per_day=1, quiet_days=5)
    assert busy[COL["overdue_events"]] > 3 * calm[COL["overdue_events"]]
    assert 0.0 < _steady(40, per_day=1, quiet_days=0.5)[COL["overdue_events"]] < 1.0  # active
    # the same customer, quiet for longer: more events missed, never fewer
    quiet = [transform(_steady(40, quiet_days=q))[COL["overdue_events"]] for q in (3, 10, 30, 60)]
    assert quiet == sorted(quiet) and quiet[0] < quiet[-1] - 2.0  # although the sums decay


def test_counts_fade_once_a_silence_is_long_for_the_customers_own_pace() -> None:
    def orders(quiet_days: float, per_day: int = 1, every: int = 1) -> float:
        v = _steady(42, per_day=per_day, quiet_days=quiet_days, every=every)
        return transform(v)[COL["purchases_30d"]]

    # active: half a day's quiet (2 touches missed at 4 a day) changes nothing beyond decay
    assert orders(0.5, per_day=4) == pytest.approx(orders(0.0, per_day=4), abs=0.05)
    # two weeks of silence are long for an order a day (14 touches missed), not for one a week
    # (2 missed): the weekly customer's coordinate falls only by the sums' own decay
    daily_drop = orders(0.0) - orders(14.0)
    weekly_drop = orders(0.0, every=7) - orders(14.0, every=7)
    assert daily_drop > 2.0 > 0.7 > weekly_drop
