"""Issue 5 end to end, offline, on EVALUATION.md's first churn-emerging stream (3,000 customers,
90 days, seed 7: 984,655 events, about two minutes): the emerging persona and the churn wave
are seen within 3 days, the persona gets a segment of its own, and at the steady operating point
the spurious changes of stable customers stay within issue 4's bound through both.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stream.core.features import DAY_MS
from stream.core.outputs import parse_rfc3339_ms
from stream.evaluate import run_evaluate
from stream.simulate import run_simulate
from tests.factories import clear_settings


def test_the_persona_is_born_and_spurious_changes_stay_within_bound_through_the_drift(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clear_settings(monkeypatch)
    monkeypatch.setenv("MICROSEG_MARGIN", "0.25")  # the steady operating point (README, Drift)
    monkeypatch.setenv("MICROSEG_LAPSE_GRACE", "12")
    events, truth = tmp_path / "ce.jsonl.gz", tmp_path / "truth.json"
    run_simulate(events, truth, customers=3000, days=90, seed=7, scenario="churn-emerging")
    report = run_evaluate([events], truth, tmp_path / "out", segments=7)
    drift = report["drift"]

    # seen within 3 days of event time, each
    assert 0 <= drift["emergence"]["first_detection_delay_days"] <= 3
    assert 0 <= drift["churn"]["first_detection_delay_days"] <= 3
    # no model-fit detection on the stationary stretch before the emergence
    params = json.loads(truth.read_text())["parameters"]
    emerge = parse_rfc3339_ms(params["start"]) + params["emerge_day"] * DAY_MS
    lines = (tmp_path / "out" / "segment-events.jsonl").read_text().splitlines()
    fits = [parse_rfc3339_ms(e["event_time"]) for e in map(json.loads, lines)
            if e["kind"] == "drift_detected" and e["drift"]["level"] == "model_fit"]  # fmt: skip
    assert fits and min(fits) >= emerge
    # a segment born for the persona within 7 days, at least 70 % of it that persona then
    ours = [b for b in drift["births"] if b["born_days_after_start"] <= 7]
    assert ours, drift["births"]
    assert ours[0]["checked_days"] == 7 and ours[0]["members_at_check"] >= 30
    assert ours[0]["emerging_share"] >= 0.7
    # and nothing else born: no segment for the churned customers
    assert len(drift["births"]) == 1
    # stable customers' spurious changes from the end of the 30-day warm-up, through the
    # emergence (day 45) and the churn wave (day 60): within issue 4's .05 (measured: .047),
    # the persona's own moves into its newborn segment counted apart
    spurious = report["spurious"]
    assert spurious["warmup_days"] == 30 and spurious["stable_customers"] > 2000
    assert spurious["per_customer_per_30_days"] <= 0.05
    assert 0 < spurious["adaptation"]["changes"] < 100
