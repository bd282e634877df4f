"""The evaluation's movement figures on a hand-made history, and its batch baseline
(`stream.core.evaluation`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from stream.core.evaluation import adjusted_rand, batch_kmeans, evaluate
from stream.core.features import DAY_MS, NAMES
from stream.core.kmeans import best_kmeans
from stream.core.model import Z_CLIP
from stream.core.outputs import rfc3339_ms
from stream.core.space import STD_FLOOR, transform_many

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


def test_the_batch_baseline_is_searched_out_of_a_poor_local_optimum() -> None:
    # four groups of customers by orders and sessions, and a small far one
    rng = np.random.default_rng(0)
    rows, truth = [], []
    for g, (orders, sessions, n) in enumerate(
        [(2, 2, 40), (2, 20, 40), (20, 2, 40), (20, 20, 40), (200, 200, 8)]
    ):
        for _ in range(n):
            v = np.zeros(len(NAMES))
            v[NAMES.index("tenure_days")] = 365.0
            v[NAMES.index("purchases_30d")] = orders * rng.lognormal(0.0, 0.1)
            v[NAMES.index("sessions_30d")] = sessions * rng.lognormal(0.0, 0.1)
            rows.append(v)
            truth.append(g)
    x = np.asarray(rows)
    z = transform_many(x)
    z = np.clip((z - z.mean(axis=0)) / np.maximum(z.std(axis=0), STD_FLOOR), -Z_CLIP, Z_CLIP)
    # k-means from this one seed ends with two groups in one segment and one split in two
    _, stuck = best_kmeans(z, np.ones(len(z)), 5, seed=5, n_init=1)
    assert adjusted_rand(stuck, truth) < 0.9
    assert adjusted_rand(batch_kmeans(x, 5, seed=5, n_init=1), truth) == 1.0


def _migrant(cid: str, start: str, end: str, switch_day: float) -> dict[str, Any]:
    return {**_person(cid, start), "persona_end": end,
            "migration": {"from": start, "to": end, "switch_ms": START + int(switch_day * DAY_MS)}}  # fmt: skip


def test_movement_and_spurious_changes_are_broken_down_by_flow_and_persona() -> None:
    lapser = {**_person("l1", "p"), "persona_end": "lapsed",
              "active_until_ms": START + 30 * DAY_MS}  # fmt: skip
    truth = {
        "parameters": {"start": rfc3339_ms(START), "end": rfc3339_ms(START + 60 * DAY_MS)},
        "customers": [_person("s1", "p"), _person("s2", "q"), _person("s3", "q"),
                      _migrant("m1", "p", "q", 40), _migrant("m2", "p", "q", 40),
                      _migrant("m3", "q", "p", 40), lapser],
    }  # fmt: skip
    changes = [
        _change("s1", 1, 1, 1, 1, "new_customer"),
        _change("s1", 2, 35, 2, 2, "behaviour"),  # out of the home segment and back: 2
        _change("s1", 3, 40, 1, 1, "behaviour"),
        _change("s2", 1, 1, 2, 2, "new_customer"),
        _change("s3", 1, 1, 2, 2, "new_customer"),
        _change("m1", 1, 1, 1, 1, "new_customer"),
        _change("m1", 2, 45, 2, 2, "behaviour"),  # reaches q's segment after 5 days
        _change("m2", 1, 1, 1, 1, "new_customer"),  # never moves
        _change("m3", 1, 1, 2, 2, "new_customer"),
        _change("m3", 2, 43, 3, 3, "behaviour"),  # moves, but not yet where p's customers are
        _change("m3", 3, 47, 1, 1, "behaviour"),
        _change("l1", 1, 1, 1, 1, "new_customer"),
        _change("l1", 2, 38, 3, 3, "behaviour"),  # the lapsed segment, 8 days after going silent
    ]
    features = {c["customer_id"]: [1.0] * len(NAMES) for c in truth["customers"]}
    report = evaluate(changes, features, truth, n_segments=3)
    flows = report["migrations"]["by_flow"]
    assert flows["p->q"] == {"customers": 2, "recall": 0.5, "recall_to_target": 0.5,
                             "median_delay_days": 5.0}  # fmt: skip
    assert flows["q->p"] == {"customers": 1, "recall": 1.0, "recall_to_target": 1.0,
                             "median_delay_days": 7.0}  # fmt: skip
    assert report["migrations"]["median_delay_days"] == 6.0
    assert report["migrations"]["by_target"] == {
        "lapsed": {"customers": 0, "recall": None, "recall_to_target": None,
                   "median_delay_days": None},
        "active": {"customers": 3, "recall": round(2 / 3, 4), "recall_to_target": round(2 / 3, 4),
                   "median_delay_days": 6.0},
    }  # fmt: skip
    assert "by_target" not in report["lapses"]
    assert report["lapses"]["by_flow"] == {
        "p->lapsed": {
            "customers": 1,
            "recall": 1.0,
            "recall_to_target": 1.0,
            "median_delay_days": 8.0,
        }
    }
    spurious = report["spurious"]
    assert spurious["by_persona"] == {
        "p": {"changes": 2, "per_customer_per_30_days": 2.0},
        "q": {"changes": 0, "per_customer_per_30_days": 0.0},
    }
    assert spurious["per_customer_per_30_days"] == round(2 / 90 * 30, 4)
    # s1 left p's segment (1) for segment 2 and came back; segment 3 is the lapsed customers'
    assert {k: v["changes"] for k, v in spurious["by_kind"].items()} == {
        "into_lapsed": 0, "out_of_lapsed": 0, "to_home": 1, "from_home": 1, "elsewhere": 0,
    }  # fmt: skip
    assert spurious["by_kind"]["to_home"]["per_customer_per_30_days"] == round(1 / 90 * 30, 4)
    # a longer warm-up leaves out the move made before it
    later = evaluate(changes, features, truth, n_segments=3, warmup_days=38)["spurious"]
    assert later["by_persona"]["p"] == {"changes": 1, "per_customer_per_30_days": 1.3636}


def test_false_lapses_and_their_returns_are_counted_apart() -> None:
    lapser = {**_person("l1", "p"), "persona_end": "lapsed",
              "active_until_ms": START + 10 * DAY_MS}  # fmt: skip
    truth = {
        "parameters": {"start": rfc3339_ms(START), "end": rfc3339_ms(START + 60 * DAY_MS)},
        "customers": [_person("s1", "p"), _person("s2", "p"), lapser],
    }
    changes = [
        _change("s1", 1, 1, 1, 1, "new_customer"),
        _change("s1", 2, 35, 3, 3, "behaviour"),  # a quiet spell taken for a lapse ...
        _change("s1", 3, 41, 1, 1, "behaviour"),  # ... and the return
        _change("s2", 1, 1, 2, 2, "new_customer"),  # placed apart from p's other customer,
        _change("s2", 2, 50, 3, 3, "behaviour"),  # then taken for lapsed
        _change("l1", 1, 1, 1, 1, "new_customer"),
        _change("l1", 2, 20, 3, 3, "behaviour"),
    ]
    features = {c["customer_id"]: [1.0] * len(NAMES) for c in truth["customers"]}
    kinds = evaluate(changes, features, truth, n_segments=3)["spurious"]["by_kind"]
    assert {k: v["changes"] for k, v in kinds.items()} == {
        "into_lapsed": 2, "out_of_lapsed": 1, "to_home": 0, "from_home": 0, "elsewhere": 0,
    }  # fmt: skip


def test_an_emerging_customer_joining_the_segment_opened_for_them_is_the_adaptation() -> None:
    newcomer = {**_person("e1", "new"), "joined_ms": START + 20 * DAY_MS}
    truth = {
        "parameters": {"start": rfc3339_ms(START), "end": rfc3339_ms(START + 90 * DAY_MS)},
        "emerging": {"persona": "new"},
        "customers": [_person("s1", "p"), newcomer, {**newcomer, "customer_id": "e2"},
                      {**newcomer, "customer_id": "e3"}, _person("s2", "p")],
    }  # fmt: skip
    changes = [
        _change("s1", 1, 1, 1, 1, "new_customer"),
        _change("s2", 1, 1, 1, 1, "new_customer"),
        _change("s2", 2, 60, 5, 5, "behaviour"),  # not the emerging persona: counted
        _change("e1", 1, 20, 1, 1, "new_customer"),  # placed before segment 5 held anyone
        _change("e1", 2, 40, 5, 5, "model_update"),  # joins it: the adaptation
        _change("e1", 3, 50, 1, 1, "behaviour"),  # leaves it: counted ...
        _change("e1", 4, 55, 5, 5, "behaviour"),  # ... and so is the way back
        _change("e2", 1, 20, 1, 1, "new_customer"),
        _change("e2", 2, 45, 5, 5, "behaviour"),  # the adaptation
        _change("e3", 1, 45, 5, 5, "new_customer"),  # placed there at once: nothing to count
    ]
    features = {c["customer_id"]: [1.0] * len(NAMES) for c in truth["customers"]}
    spurious = evaluate(changes, features, truth, n_segments=2)["spurious"]
    assert spurious["adaptation"] == {"persona": "new", "changes": 2}
    assert spurious["changes"] == 3 and spurious["by_reason"] == {"behaviour": 3}
    assert spurious["by_persona"]["new"]["changes"] == 2
    # without an emerging persona in the truth, every one of those moves counts
    plain = evaluate(changes, features, {**truth, "emerging": None}, n_segments=2)["spurious"]
    assert plain["adaptation"] == {"persona": None, "changes": 0} and plain["changes"] == 5
