"""The evaluation's movement figures on a hand-made history (`stream.core.evaluation`)."""

from __future__ import annotations

from typing import Any

from stream.core.evaluation import evaluate
from stream.core.features import DAY_MS, NAMES
from stream.core.outputs import rfc3339_ms

START = 1_736_121_600_000  # 2025-01-06T00:00:00Z


def _person(cid: str, persona: str) -> dict[str, Any]:
    return {"customer_id": cid, "persona_start": persona, "persona_end": persona,
            "joined_ms": START, "migration": None, "active_until_ms": None}  # fmt: skip


def _change(
    cid: str, version: int, day: float, segment: int, micro: int, reason: str
) -> dict[str, Any]:
    return {"customer_id": cid, "version": version, "reason": reason,
            "event_time": rfc3339_ms(START + int(day * DAY_MS)),
            "current": {"segment_id": segment, "segment_name": "", "micro_segment_id": micro}}  # fmt: skip


def test_spurious_counts_segment_changes_of_stable_customers_after_warmup_by_reason() -> None:
    truth = {
        "parameters": {"start": rfc3339_ms(START), "end": rfc3339_ms(START + 60 * DAY_MS)},
        "customers": [_person("a", "p"), _person("b", "q")],
    }
    changes = [
        _change("a", 1, 1, 1, 1, "new_customer"),
        _change("a", 2, 10, 2, 4, "behaviour"),  # in the warm-up: not counted
        _change("a", 3, 35, 1, 1, "behaviour"),
        _change("a", 4, 40, 3, 7, "model_update"),
        _change("a", 5, 45, 3, 8, "behaviour"),  # micro-segment only: not counted
        _change("b", 1, 1, 2, 4, "new_customer"),
    ]
    features = {"a": [0.0] * len(NAMES), "b": [1.0] * len(NAMES)}
    report = evaluate(changes, features, truth, n_segments=2)
    spurious = report["spurious"]
    assert spurious["stable_customers"] == 2 and spurious["changes"] == 2
    assert spurious["by_reason"] == {"behaviour": 1, "model_update": 1}
    # exposure: 30 days after the 30-day warm-up for each of the two customers
    assert spurious["per_customer_per_30_days"] == 1.0
