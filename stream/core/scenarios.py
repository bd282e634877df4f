"""Simulation scenarios for drift: a stationary population, a churn wave, a sudden emergence.

A scenario is a function of the base `stream.core.personas.plan`'s arguments that returns a
`Plan` (deterministic: the same arguments give the same plan):

* ``default``: the base plan (migrations spread over the stream, a persona emerging gradually);
* ``stationary``: no migrations and no emerging persona (customers of the "lapsed" persona
  still stop early on, as in the base plan) — the false-alarm calibration stream;
* ``churn-emerging``: the base population without gradual migrations, plus a churn wave (a
  share of the active customers stops within ``span`` days of ``churn_day``) and the emerging
  persona arriving within ``span`` days of its ``emerge_day`` (an acquisition campaign).

>>> p = scenario_plan("churn-emerging", customers=200, days=30, seed=1)
>>> churned = [c for c in p.customers if c.persona_end == "lapsed" and c.switch_ms]
>>> len(churned) > 0, all(c.switch_ms >= p.start_ms + 20 * 86_400_000 for c in churned)
(True, True)
>>> scenario_plan("stationary", customers=50, days=10, seed=1).emerging_share
0.0
"""

from __future__ import annotations

import dataclasses

import numpy as np

from stream.core.personas import DAY_MS, EMERGING, LAPSED, Phase, Plan, SimCustomer, plan

SCENARIOS = ("default", "stationary", "churn-emerging")
CHURN_SHARE = 0.2
SPAN_DAYS = 2.0


def churn_day(days: int) -> int:
    """Day of the churn wave in ``churn-emerging`` (two thirds into the stream)."""
    return max(1, round(days * 2 / 3))


def scenario_plan(name: str, customers: int = 3000, days: int = 60, seed: int = 0) -> Plan:
    """The plan of scenario ``name`` (one of `SCENARIOS`)."""
    if name == "default":
        return plan(customers, days, seed)
    if name == "stationary":
        return plan(customers, days, seed, migrate_share=0.0, emerging_share=0.0)
    if name == "churn-emerging":
        base = plan(customers, days, seed, migrate_share=0.0, emerge_day=max(1, days // 2))
        return _churn(_sudden_emergence(base, seed), churn_day(days), seed)
    raise ValueError(f"unknown scenario {name!r}; choose one of {', '.join(SCENARIOS)}")


def _sudden_emergence(p: Plan, seed: int) -> Plan:
    """The emerging persona's customers all join within `SPAN_DAYS` of ``emerge_day``."""
    rng = np.random.default_rng([seed, 1])
    lo = p.start_ms + p.emerge_day * DAY_MS
    people = []
    for c in p.customers:
        if c.persona_start == EMERGING:
            join = lo + int(rng.uniform(0, SPAN_DAYS) * DAY_MS)
            c = dataclasses.replace(c, phases=(Phase(join, p.end_ms, c.phases[0].persona),))
        people.append(c)
    return dataclasses.replace(p, customers=tuple(people))


def _churn(p: Plan, day: int, seed: int) -> Plan:
    """`CHURN_SHARE` of the customers active at ``day`` (not the emerging ones) stop within
    `SPAN_DAYS` of it: their persona ends as lapsed, switched at the stop."""
    rng = np.random.default_rng([seed, 2])
    lo = p.start_ms + day * DAY_MS
    people = []
    for c in p.customers:
        active = c.phases[0].start_ms <= lo < c.phases[-1].end_ms
        if active and c.persona_start != EMERGING and rng.random() < CHURN_SHARE:
            stop = lo + int(rng.uniform(0, SPAN_DAYS) * DAY_MS)
            phases = tuple(
                dataclasses.replace(ph, end_ms=min(ph.end_ms, stop))
                for ph in c.phases
                if ph.start_ms < stop
            )
            c = _lapse(c, phases, stop)
        people.append(c)
    return dataclasses.replace(p, customers=tuple(people))


def _lapse(c: SimCustomer, phases: tuple[Phase, ...], stop: int) -> SimCustomer:
    return dataclasses.replace(c, phases=phases, persona_end=LAPSED, switch_ms=stop)
