"""The persona simulator: valid, ordered, reproducible input whose planted structure is real.

One small simulation (240 customers, 40 days) is generated once per module and checked against the
contract, against its own truth file, and for the behaviour it plants: personas that differ,
migrants that change behaviour at their switch time, churners that go silent, and an emerging
persona that only exists from its start on.
"""

from __future__ import annotations

import gzip
import json
import math
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest

from stream.core.events import STREAM_OF_TYPE, event_time_ms, parse_event
from stream.core.personas import EMERGING, LAPSED, PERSONAS
from stream.core.simulate import generate, iter_events, plan, truth
from stream.simulate import run_simulate

DAY_MS = 86_400_000
CUSTOMERS, DAYS, SEED = 240, 40, 11


@pytest.fixture(scope="module")
def sim() -> dict[str, Any]:
    lines, answer = generate(CUSTOMERS, DAYS, SEED)
    events = [parse_event(line) for line in lines]
    by_customer: dict[str, list[Any]] = defaultdict(list)
    for e in events:
        by_customer[e.customer_id].append(e)
    people = {c["customer_id"]: c for c in answer["customers"]}
    return {"lines": lines, "events": events, "truth": answer, "people": people,
            "by_customer": by_customer}  # fmt: skip


def test_same_seed_same_lines_other_seed_other_lines(sim: dict[str, Any]) -> None:
    again, answer = generate(CUSTOMERS, DAYS, SEED)
    assert again == sim["lines"]
    assert answer == sim["truth"]
    other, _ = generate(CUSTOMERS, DAYS, SEED + 1)
    assert other != sim["lines"]
    assert other[:50] != sim["lines"][:50]


def test_iterating_a_plan_twice_gives_the_same_events() -> None:
    p = plan(30, 14, 5)
    first = list(iter_events(p))
    assert first == list(iter_events(p))
    assert all(e["event_id"].startswith("sim-5-") for e in first)


def test_every_line_is_valid_and_json_is_compact(sim: dict[str, Any]) -> None:
    assert len(sim["events"]) == len(sim["lines"]) > 10_000
    assert all(line.startswith('{"event_id":"sim-') for line in sim["lines"][:100])


def test_sorted_by_time_then_event_id_and_ids_unique(sim: dict[str, Any]) -> None:
    keys = [(event_time_ms(e.ts), e.event_id) for e in sim["events"]]
    assert keys == sorted(keys)
    assert len({e.event_id for e in sim["events"]}) == len(keys)
    start = event_time_ms(parse_event(sim["lines"][0]).ts)
    assert start >= sim["truth"]["customers"][0]["joined_ms"] - DAY_MS
    assert keys[-1][0] < start + DAYS * DAY_MS + DAY_MS


def test_all_streams_types_offsets_and_personas_present(sim: dict[str, Any]) -> None:
    types = Counter(e.type for e in sim["events"])
    assert {STREAM_OF_TYPE[t].value for t in types} == {"clickstream", "email", "purchases"}
    for t in ("session_start", "product_view", "search", "add_to_cart", "remove_from_cart",
              "checkout_start", "email_sent", "email_delivered", "email_open", "email_click",
              "email_bounce", "purchase", "refund"):  # fmt: skip
        assert types[t] > 0, t
    offsets = {e.ts.utcoffset() for e in sim["events"]}
    assert len(offsets) >= 4
    starts = {c["persona_start"] for c in sim["truth"]["customers"]}
    ends = {c["persona_end"] for c in sim["truth"]["customers"]}
    assert starts | ends == set(PERSONAS)
    assert len(PERSONAS) >= 6
    active = {sim["people"][cid]["persona_start"] for cid in sim["by_customer"]}
    assert active == starts


def test_truth_covers_every_customer(sim: dict[str, Any]) -> None:
    answer = sim["truth"]
    assert len(answer["customers"]) == CUSTOMERS
    assert set(sim["by_customer"]) <= set(sim["people"])
    assert answer["seed"] == SEED and answer["parameters"]["days"] == DAYS
    assert {p["name"] for p in answer["personas"]} == set(PERSONAS)
    for c in answer["customers"]:
        assert c["persona_start"] in PERSONAS and c["persona_end"] in PERSONAS
        if c["migration"] is not None:
            m = c["migration"]
            assert (m["from"], m["to"]) == (c["persona_start"], c["persona_end"]) and m["switch"]
            assert m["from"] != m["to"]
    assert sum(answer["persona_end_counts"].values()) == CUSTOMERS
    json.dumps(answer)  # JSON-ready


def test_orders_are_internally_consistent(sim: dict[str, Any]) -> None:
    orders = {}
    for e in sim["events"]:
        if e.type == "purchase":
            assert e.currency == "EUR" and e.items and 1 <= len(e.items) <= 5
            gross = sum(i.quantity * i.unit_price for i in e.items)
            assert math.isclose(e.amount, gross - (e.discount or 0), abs_tol=0.011)
            orders[e.order_id] = e
        elif e.type == "refund":
            assert e.order_id in orders  # after its order, by the same customer
            assert orders[e.order_id].customer_id == e.customer_id
            assert e.amount <= orders[e.order_id].amount + 1e-9


def test_sessions_start_before_their_events(sim: dict[str, Any]) -> None:
    first: dict[str, str] = {}
    for e in sim["events"]:
        if e.stream.value == "clickstream":
            assert e.session_id is not None and e.channel is not None
            first.setdefault(e.session_id, e.type)
    assert set(first.values()) == {"session_start"}


def test_churners_go_silent_at_their_switch_and_are_still_mailed(sim: dict[str, Any]) -> None:
    churners = [c for c in sim["truth"]["customers"] if c["persona_end"] == LAPSED]
    assert any(c["migration"] for c in churners) and any(not c["migration"] for c in churners)
    mailed = 0
    for c in churners:
        stop = c["migration"]["switch_ms"] if c["migration"] else c["active_until_ms"]
        assert c["active_until_ms"] == stop
        after = [e for e in sim["by_customer"][c["customer_id"]] if event_time_ms(e.ts) >= stop]
        # nothing of their own after it: only the campaigns they are still sent
        assert {e.type for e in after} <= {"email_sent", "email_delivered", "email_bounce"}
        mailed += any(e.type == "email_sent" for e in after)
    assert mailed > len(churners) / 2


def test_emerging_persona_exists_only_from_its_start(sim: dict[str, Any]) -> None:
    start = sim["truth"]["emerging"]["start_ms"]
    new = [c for c in sim["truth"]["customers"] if c["persona_start"] == EMERGING]
    assert new and all(c["persona_end"] == EMERGING for c in new)
    seen = 0
    for c in new:
        assert c["joined_ms"] >= start
        times = [event_time_ms(e.ts) for e in sim["by_customer"][c["customer_id"]]]
        assert all(t >= c["joined_ms"] for t in times)
        seen += bool(times)
    assert seen >= len(new) // 2


STATS = ("events", "sessions", "purchases", "app", "store", "mobile", "open_rate", "click_rate",
         "late", "weekend", "discount")  # fmt: skip


def _stats(events: list[Any], days: float) -> list[float]:
    """Per-customer behaviour in a window: rates per day and shares."""
    n = Counter(e.type for e in events)
    ch = Counter(e.channel.value for e in events if getattr(e, "channel", None) is not None)
    late = sum(1 for e in events if e.ts.hour >= 22 or e.ts.hour < 6)
    weekend = sum(1 for e in events if e.ts.weekday() >= 5)
    disc = sum(1 for e in events if e.type == "purchase" and (e.discount or e.coupon_code))
    tagged, total, sent = (
        max(1, sum(ch.values())),
        max(1, len(events)),
        max(1, n["email_delivered"]),
    )
    return [len(events) / days, n["session_start"] / days, n["purchase"] / days,
            ch["app"] / tagged, ch["store"] / tagged, ch["mobile"] / tagged,
            n["email_open"] / sent, n["email_click"] / sent, late / total, weekend / total,
            disc / max(1, n["purchase"])]  # fmt: skip


def _centroids(sim: dict[str, Any], lo: int, hi: int) -> dict[str, list[float]]:
    groups: dict[str, list[list[float]]] = defaultdict(list)
    for cid, c in sim["people"].items():
        if c["migration"] is None and c["persona_start"] not in (LAPSED, EMERGING):
            evs = [e for e in sim["by_customer"][cid] if lo <= event_time_ms(e.ts) < hi]
            groups[c["persona_start"]].append(_stats(evs, (hi - lo) / DAY_MS))
    return {k: [sum(col) / len(col) for col in zip(*v, strict=True)] for k, v in groups.items()}


def test_personas_differ_materially(sim: dict[str, Any]) -> None:
    lo = sim["truth"]["customers"][0]["joined_ms"]
    cents = _centroids(sim, lo, lo + DAYS * DAY_MS)
    assert len(cents) == 6
    names = sorted(cents)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            ratios = [(max(x, y) + 0.01) / (min(x, y) + 0.01)
                      for x, y in zip(cents[a], cents[b], strict=True)]  # fmt: skip
            assert max(ratios) > 1.8, (a, b, dict(zip(STATS, ratios, strict=True)))
    assert cents["window_shopper"][1] > 3 * cents["coupon_occasional"][1]
    others = [v for k, v in cents.items() if k != "store_regular"]
    assert cents["store_regular"][4] > 0.3 > 0.1 > max(v[4] for v in others)
    assert cents["late_night_mobile"][8] > 2 * cents["app_loyalist"][8]
    assert cents["email_browser"][6] > 2 * cents["store_regular"][6]
    assert cents["coupon_occasional"][10] > 2 * cents["app_loyalist"][10]


def _nearest(x: list[float], cents: dict[str, list[float]], scale: list[float]) -> str:
    def dist(c: list[float]) -> float:
        return sum(((a - b) / s) ** 2 for a, b, s in zip(x, c, scale, strict=True))

    return min(cents, key=lambda k: dist(cents[k]))


def test_migrants_change_behaviour_at_their_switch(sim: dict[str, Any]) -> None:
    lo = sim["truth"]["customers"][0]["joined_ms"]
    end = lo + DAYS * DAY_MS
    movers = [c for c in sim["truth"]["customers"]
              if c["migration"] and c["persona_end"] != LAPSED]  # fmt: skip
    assert len(movers) >= 5
    hits_before = hits_after = 0
    for c in movers:
        switch = c["migration"]["switch_ms"]
        evs = sim["by_customer"][c["customer_id"]]
        cents = _centroids(sim, lo, switch)
        scale = [max(1e-3, max(v[i] for v in cents.values())) for i in range(len(STATS))]
        before = [e for e in evs if event_time_ms(e.ts) < switch]
        hits_before += (
            _nearest(_stats(before, (switch - lo) / DAY_MS), cents, scale) == c["persona_start"]
        )
        cents = _centroids(sim, switch, end)
        after = [e for e in evs if event_time_ms(e.ts) >= switch]
        hits_after += (
            _nearest(_stats(after, (end - switch) / DAY_MS), cents, scale) == c["persona_end"]
        )
    assert hits_before >= 0.6 * len(movers), (hits_before, len(movers))
    assert hits_after >= 0.6 * len(movers), (hits_after, len(movers))


def test_truth_function_matches_plan() -> None:
    p = plan(25, 14, 2)
    answer = truth(p)
    assert [c["customer_id"] for c in answer["customers"]] == [c.customer_id for c in p.customers]
    with pytest.raises(ValueError, match="at least"):
        plan(0, 14, 2)


def test_run_simulate_writes_reproducible_files(tmp_path: Path) -> None:
    a = run_simulate(tmp_path / "a" / "ev.jsonl.gz", tmp_path / "a" / "truth.json", 30, 14, 9)
    b = run_simulate(tmp_path / "b" / "ev.jsonl.gz", tmp_path / "b" / "truth.json", 30, 14, 9)
    ev_a = (tmp_path / "a" / "ev.jsonl.gz").read_bytes()
    assert ev_a == (tmp_path / "b" / "ev.jsonl.gz").read_bytes()
    assert (tmp_path / "a" / "truth.json").read_bytes() == (
        tmp_path / "b" / "truth.json"
    ).read_bytes()
    lines = gzip.decompress(ev_a).decode().splitlines()
    assert lines == generate(30, 14, 9)[0]
    assert a["total"] == b["total"] == len(lines) == sum(a["by_stream"].values())
    answer = json.loads((tmp_path / "a" / "truth.json").read_text())
    assert answer["events"]["total"] == len(lines)
    assert sum(c["events"] for c in answer["customers"]) == len(lines)
    run_simulate(tmp_path / "plain.jsonl", tmp_path / "t.json", 30, 14, 9)
    assert (tmp_path / "plain.jsonl").read_text().splitlines() == lines
    assert not list(tmp_path.rglob(".*.tmp"))
