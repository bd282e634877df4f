"""Population activity: how many touches the established customers make a day, and a detector
that notices when a share of them stops at once (a churn wave).

A churn wave is invisible in the customers' features for days: a customer who stopped yesterday
looks like one between two visits. What shows at once is the *count* of the touches that do not
come. So every worker counts, per day of event time, its customers' **organic touches**
(`touch_band`): a session started or an order placed of the customer's own accord, and not
within `stream.core.facts.CLICK_VISIT_MS` of an e-mail click (with campaign visits the count
swings with the send calendar).

The count of a day is compared with the same weekday one, two and three weeks before, for the
*same cohort*: customers first seen at least `COHORT_DAYS` days before the day. New customers
(an acquisition campaign, an emerging persona) neither inflate the day nor its baseline. The
touches are counted by tenure band (`BANDS`), so the three earlier days can be restricted to the
cohort of the later one. The standardised difference

    z = (n − b) / sqrt(n + b / 3 + (1 + 1/3) · (noise_floor · b)²)

(``n`` the day's touches, ``b`` the mean of the three earlier ones: Poisson noise of both, plus
a floor for the day-to-day variation a real population shows beyond counting: weather, holidays)
feeds River's Page-Hinkley test for a fall (``mode="down"``), one value a day.

Measured (``microseg simulate --scenario stationary|churn-emerging --customers 3000 --days 90``,
seeds 5–7 and 7–9; 1,050–1,660 organic touches of established customers a day): z stays within
−2.7 and +2.3 on the stationary streams, where the test's statistic peaks at 1.2 against its
threshold of 3.5; with a churn wave (20 % of the customers stopping within two days of day 60)
z is −2.9 to −3.0 on day 61 and −4.1 to −6.1 on day 62, and the test fires on all three streams
when day 62 is counted: 3 days after the wave began. The count's day-to-day variation on the
stationary streams is 3–5 % (4–7 % with the campaign visits in it; 11–14 % counting the
customers with any event of their own, e-mail opens included).

A steady 1,000 touches a day, then 12 % fewer from day 40 (z −2.9 a day: caught on its third
day), then 20 % fewer than that from day 70 (caught on its second):

>>> det = ActivityDrift()
>>> touches = lambda d: [0, 0, 0, 0, 1000 if d < 40 else 880 if d < 70 else 700]
>>> hits = [det.update((d + 1) * DAY_MS, touches(d)) for d in range(100)]
>>> [h.t // DAY_MS - 1 for h in hits if h]  # the days of the detections
[42, 71]
>>> hits[42].statistic
'organic touches of established customers 1000 -> 880 a day (z -2.9)'
"""

from __future__ import annotations

import json  # noqa: F401  (the doctests)
import math
from bisect import bisect_right
from collections import deque
from typing import Any

from river import drift

from stream.core.drift import Detection
from stream.core.features import DAY_MS
from stream.core.state import CustomerState

BANDS = (1, 8, 15, 22)
"""Tenure thresholds (days, by day of event time) of the touch counts' bands: a touch falls in
band ``k`` when its customer's tenure has reached ``k`` of them. Band 4 is the cohort of the day
(first seen at least `COHORT_DAYS` days before); the same cohort ``j`` weeks earlier is bands
``4 − j`` and up."""
N_BANDS = len(BANDS) + 1
COHORT_DAYS = BANDS[-1]
LATENESS_MS = 3 * 3_600_000
"""A day's touches are counted over the 24 hours that end this long before the day boundary that
reports them: a worker's topics are consumed at their own pace, and a visit or an order that
arrives after a later e-mail event has moved the partition past the boundary is still counted
(offline, with no such skew, the windows are the same, so both count alike)."""
WEEKS = 3
"""Weeks of the baseline (the same weekday, 1 to 3 weeks before)."""
ACTIVITY = "population:activity"
"""The subject of the detector's detections (level ``model_fit``: the population the model was
fitted to is changing)."""


def touch_band(state: CustomerState, t: int) -> int | None:
    """The tenure band (`BANDS`) of the event at ``t`` just applied to ``state`` if it was an
    organic touch (`stream.core.state.CustomerState.organic`), else None.

    >>> s = CustomerState(first_ts=0, organic=True)
    >>> touch_band(s, 30 * DAY_MS), touch_band(s, 3 * DAY_MS), touch_band(CustomerState(), 0)
    (4, 1, None)
    """
    if not state.organic:
        return None
    return bisect_right(BANDS, t // DAY_MS - state.first_ts // DAY_MS)


class DailyTouches:
    """Organic touches per day of event time and tenure band, until the day is taken.

    Parameters
    ----------
    since
        Event time (ms) from which events are counted (a worker's partition: its newest event
        when it was assigned); None: from the first event `add` sees. The day it falls in is
        counted only in part, and `take` says so.

    >>> days = DailyTouches()
    >>> s = CustomerState(first_ts=0, organic=True)
    >>> days.add(s, DAY_MS + 5)  # day 1: partial (counting began in it)
    >>> days.add(s, 2 * DAY_MS + 9)
    >>> days.take(2 * DAY_MS), days.take(3 * DAY_MS), days.take(4 * DAY_MS)
    (None, [0, 1, 0, 0, 0], [0, 0, 0, 0, 0])
    >>> days.add(s, 2 * DAY_MS), days.take(5 * DAY_MS), days.late  # a touch of a day taken
    (None, [0, 0, 0, 0, 0], 1)
    """

    def __init__(self, since: int | None = None) -> None:
        self.since = since
        self.late = 0
        """Touches dropped because their day had been taken (arrived too late)."""
        self._days: dict[int, list[int]] = {}

    def add(self, state: CustomerState, t: int) -> None:
        """Count the event at ``t`` just applied to ``state`` if it was an organic touch."""
        if self.since is None:
            self.since = t
        band = touch_band(state, t)
        if band is not None:
            self._days.setdefault((t + LATENESS_MS) // DAY_MS, [0] * N_BANDS)[band] += 1

    def take(self, boundary: int) -> list[int] | None:
        """The counts of the day that ``boundary`` (ms) reports (the 24 hours ending
        `LATENESS_MS` before it); None if it was not counted in full. Earlier days still held
        (touches that came after their day was taken) are dropped."""
        day = boundary // DAY_MS - 1
        for old in [d for d in self._days if d < day]:
            self.late += sum(self._days.pop(old))
        counts = self._days.pop(day, [0] * N_BANDS)
        return None if self.since is None or day <= (self.since + LATENESS_MS) // DAY_MS else counts


class ActivityDrift:
    """Model-fit drift of the population: Page-Hinkley over the daily z of the established
    customers' organic touches against the same weekday 1–3 weeks before (module docstring).

    Parameters
    ----------
    threshold
        Page-Hinkley's lambda, in z units.
    delta
        Tolerated fall per day, in z units: a fall is accumulated only beyond it.
    noise_floor
        Relative day-to-day variation beyond counting noise, in the z's denominator.
    min_touches
        Days whose baseline has fewer touches are not tested.
    """

    def __init__(
        self, threshold: float = 3.5, delta: float = 1.25, noise_floor: float = 0.02,
        min_touches: int = 50,
    ) -> None:  # fmt: skip
        self.threshold = threshold
        self.delta = delta
        self.noise_floor = noise_floor
        self.min_touches = min_touches
        self.detections = 0
        self._days: deque[tuple[int, list[int] | None]] = deque(maxlen=7 * WEEKS + 1)
        self._hold_until = -1
        self._ph = self._test()

    def _test(self) -> drift.PageHinkley:
        return drift.PageHinkley(
            min_instances=1, delta=self.delta, threshold=self.threshold, mode="down"
        )

    def update(self, boundary: int, touches: list[int] | None) -> Detection | None:
        """Take the counts (`DailyTouches.take`, summed over the partitions; None: not counted
        in full) of the day that ends at ``boundary``; a `Detection` if the touches fell. Days
        come in order; a day whose counts or baseline days are missing is not tested. After a
        detection the test waits until its baseline starts after the day it fired on (the fall
        would show again against the weeks before it)."""
        day = boundary // DAY_MS - 1
        if self._days and day <= self._days[-1][0]:
            return None
        self._days.append((day, None if touches is None else list(touches)))
        z = self._z(day)
        if z is None or day <= self._hold_until:
            return None
        n, b, score = z
        self._ph.update(score)  # type: ignore[no-untyped-call]
        if not self._ph.drift_detected:
            return None
        self.detections += 1
        self._hold_until = day + 7 * WEEKS
        self._ph = self._test()
        statistic = f"organic touches of established customers {b:.0f} -> {n} a day (z {score:.1f})"
        return Detection("model_fit", "page_hinkley", ACTIVITY, statistic, b, n,
                         boundary)  # fmt: skip

    def state(self) -> dict[str, Any]:
        """The counts it compares with (the last ``7 · WEEKS + 1`` days) and its hold after a
        detection, as JSON-ready data: what a restarted trainer needs to test the next day at
        once instead of after ``7 · WEEKS`` days (`restore`)."""
        return {"days": [[d, c] for d, c in self._days], "hold_until": self._hold_until}

    @property
    def newest(self) -> int | None:
        """The newest day taken (days since the epoch), if any."""
        return self._days[-1][0] if self._days else None

    def restore(self, state: Any) -> None:
        """Continue from another detector's `state` (Page-Hinkley starts afresh, as after a
        detection); ValueError if it is not one.

        >>> a, restarted, fresh = ActivityDrift(), ActivityDrift(), ActivityDrift()
        >>> for d in range(22):
        ...     _ = a.update((d + 1) * DAY_MS, [0, 0, 0, 0, 1000])
        >>> restarted.restore(json.loads(json.dumps(a.state())))
        >>> days = [[0, 0, 0, 0, 1000], [0, 0, 0, 0, 1000], [0, 0, 0, 0, 700]]  # a fall on day 25
        >>> [restarted.update((23 + i) * DAY_MS, c) is not None for i, c in enumerate(days)]
        [False, False, True]
        >>> [fresh.update((23 + i) * DAY_MS, c) is not None for i, c in enumerate(days)]
        [False, False, False]
        """
        try:
            days = [(int(d), None if c is None else [int(v) for v in c]) for d, c in state["days"]]
            hold_until = int(state["hold_until"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not an activity state: {exc}") from exc
        order = [d for d, _ in days]
        if order != sorted(set(order)) or len(days) > self._days.maxlen:  # type: ignore[operator]
            raise ValueError("not an activity state: days out of order or too many")
        if any(c is not None and (len(c) != N_BANDS or min(c) < 0) for _, c in days):
            raise ValueError(f"not an activity state: counts are {N_BANDS} counts")
        self._days.clear()
        self._days.extend(days)
        self._hold_until = hold_until
        self._ph = self._test()

    def _z(self, day: int) -> tuple[int, float, float] | None:
        """The day's cohort touches, their baseline and the standardised difference; None
        without the day's and its baseline days' counts, or with too small a baseline."""
        by_day = dict(self._days)
        days = [c for j in range(WEEKS + 1) if (c := by_day.get(day - 7 * j)) is not None]
        if len(days) <= WEEKS:
            return None
        n = days[0][N_BANDS - 1]
        b = sum(sum(c[N_BANDS - 1 - j :]) for j, c in enumerate(days) if j) / WEEKS
        if b < self.min_touches:
            return None
        extra = (1 + 1 / WEEKS) * (self.noise_floor * b) ** 2  # the day's and the baseline's
        return n, b, (n - b) / math.sqrt(n + b / WEEKS + extra)
