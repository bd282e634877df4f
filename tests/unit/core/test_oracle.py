"""The change-point oracle: the scorer's view of a migrant is exactly their post-switch history."""

from __future__ import annotations

import json

from stream.core.events import parse_event
from stream.core.facts import apply
from stream.core.features import DAY_MS, NAMES, vector
from stream.core.oracle import SwitchOracle, active_switches
from stream.core.outputs import rfc3339_ms
from stream.core.state import CustomerState

T0 = 1_704_103_200_000  # 2024-01-01T10:00:00Z


def _event(i: int, day: float, kind: str, channel: str = "web") -> tuple[int, object]:
    t = T0 + int(day * DAY_MS)
    fields = {"session_id": f"s{i}"} if kind != "purchase" else {"order_id": f"o{i}", "amount": 30}
    line = json.dumps({"event_id": f"e{i}", "customer_id": "c", "type": kind,
                       "ts": rfc3339_ms(t), "channel": channel, **fields})  # fmt: skip
    return t, parse_event(line)


def _replay(days: list[tuple[float, str, str]], switch_day: float) -> tuple[
    SwitchOracle, CustomerState, CustomerState
]:  # fmt: skip
    """Apply the events to one whole history (watched by an oracle) and to a post-switch one."""
    oracle = SwitchOracle({"c": T0 + int(switch_day * DAY_MS)})
    whole, after = CustomerState(), CustomerState()
    for i, (day, kind, channel) in enumerate(days):
        t, e = _event(i, day, kind, channel)
        apply(whole, e)  # type: ignore[arg-type]
        oracle.on_applied("c", whole, f"e{i}", t)
        if day >= switch_day:
            apply(after, e)  # type: ignore[arg-type]
    return oracle, whole, after


def _close(a: list[float], b: list[float]) -> bool:
    """Equal up to the float32 rounding of the sums."""
    return all(abs(x - y) <= 1e-5 * max(1.0, abs(y)) for x, y in zip(a, b, strict=True))


def test_the_view_is_the_post_switch_history_even_after_the_sums_were_rebased() -> None:
    # 150 quiet days between the switch and the next event: the sums' reference time moves
    # (`stream.core.facts.rebase`), and the remembered sums must move with it
    history = [(0.0, "session_start", "web"), (3.0, "purchase", "store"), (9.5, "search", "web"),
               (160.0, "session_start", "app"), (161.0, "purchase", "app"),
               (170.0, "page_view", "app")]  # fmt: skip
    oracle, whole, after = _replay(history, switch_day=10.0)
    assert whole.t0 != T0  # rebased
    at = whole.last_ts + DAY_MS
    seen = oracle.vector("c", whole, at)
    assert _close(seen, vector(after, at))
    assert seen != vector(whole, at)
    assert seen[NAMES.index("recency_purchase_days")] == 10.0  # the order on day 161
    assert seen[NAMES.index("share_app")] == 1.0


def test_before_the_first_post_switch_event_the_view_is_the_whole_history() -> None:
    history = [(0.0, "session_start", "web"), (2.0, "purchase", "web"), (9.0, "search", "web")]
    oracle, whole, _ = _replay(history, switch_day=5.0)
    assert oracle.vector("c", whole, T0 + 4 * DAY_MS) == vector(whole, T0 + 4 * DAY_MS)
    # after it, the order before the switch is not the post-switch history's: no order in the
    # 1 day since its first event
    recency = NAMES.index("recency_purchase_days")
    assert oracle.vector("c", whole, T0 + 10 * DAY_MS)[recency] == 1.0
    assert vector(whole, T0 + 10 * DAY_MS)[recency] == 8.0
    oracle2, whole2, _ = _replay(history[:2], switch_day=5.0)  # no event after the switch yet
    at = T0 + 8 * DAY_MS
    assert oracle2.vector("c", whole2, at) == vector(whole2, at)
    # a customer the oracle does not know is seen as they are
    assert oracle.vector("other", whole, at) == vector(whole, at)
    assert oracle.report() == {"oracle": {"switches": 1, "seen": 1}}
    assert oracle2.report() == {"oracle": {"switches": 1, "seen": 0}}


def test_a_customer_who_joined_after_their_switch_is_seen_whole_and_forget_drops_them() -> None:
    history = [(6.0, "session_start", "app"), (7.0, "purchase", "app")]
    oracle, whole, after = _replay(history, switch_day=5.0)
    at = whole.last_ts
    assert _close(oracle.vector("c", whole, at), vector(after, at))
    oracle.forget("c")
    assert oracle.report()["oracle"]["seen"] == 0


def test_only_migrations_to_an_active_persona_have_a_switch() -> None:
    truth = {"customers": [
        {"customer_id": "a", "migration": {"to": "app_loyalist", "switch_ms": 5}},
        {"customer_id": "b", "migration": {"to": "lapsed", "switch_ms": 6}},
        {"customer_id": "c", "migration": None},
    ]}  # fmt: skip
    assert active_switches(truth) == {"a": 5}
