"""A change-point oracle: the ceiling of any change detector on a simulated stream.

A customer who migrates to another persona keeps their old behaviour in their decayed features
for weeks; the scorer follows them only once the new behaviour outweighs it. A detector that knew
the exact moment of the switch could forget the old history at once. `SwitchOracle` is that
detector, read from the simulator's truth file (so it exists only for evaluation): it lets the
scorer see each migrant to an *active* persona as if their history began at their switch, and
changes nothing else (the trainer, the drift detectors and the final features see the real
states; customers who go silent keep their history, since silence is the only sign of a lapse).
What `stream.core.evaluation` then reports for migrations is the best any customer-level change
detector could do with these features, scorer and damping: ``microseg evaluate
--oracle-switches``.

The view is exact, up to the float32 rounding of the sums: a migrant's decayed sums after their
switch minus the sums they had at it (in the same reference time, see `stream.core.state`) are the
sums of their post-switch events alone, and their first event after the switch is their first.

>>> from stream.core.events import parse_event
>>> from stream.core.features import vector
>>> from stream.core.facts import apply
>>> def ev(i, day, kind):
...     return parse_event(f'{{"event_id":"{i}","customer_id":"c","type":"{kind}",'
...                        f'"ts":"2024-01-{day:02d}T10:00:00Z","channel":"web",'
...                        f'"session_id":"s{i}"}}')
>>> oracle = SwitchOracle({"c": 1704708000000})  # 2024-01-08T10:00:00Z
>>> whole, after = CustomerState(), CustomerState()
>>> for i, (day, kind) in enumerate([(1, "session_start"), (3, "page_view"),
...                                  (9, "session_start"), (12, "search")]):
...     e = ev(i, day, kind)
...     apply(whole, e)
...     oracle.on_applied("c", whole, str(i), 0)
...     if day >= 8:
...         apply(after, e)
>>> at = whole.last_ts
>>> seen, alone = oracle.vector("c", whole, at), vector(after, at)
>>> max(abs(a - b) for a, b in zip(seen, alone)) < 1e-5, seen == vector(whole, at)
(True, False)
"""

from __future__ import annotations

from array import array
from collections.abc import Mapping
from typing import Any

from stream.core.facts import rebase
from stream.core.features import vector
from stream.core.personas import LAPSED
from stream.core.state import NO_TIME, CustomerState


def active_switches(truth: Mapping[str, Any]) -> dict[str, int]:
    """Customer id → switch time (ms) of every migration to an active persona in a truth file of
    `stream.core.simulate`."""
    return {
        c["customer_id"]: int(c["migration"]["switch_ms"])
        for c in truth["customers"]
        if c.get("migration") and c["migration"]["to"] != LAPSED
    }


class SwitchOracle:
    """An engine stage that remembers each migrant's sums at their switch, and the scorer's view
    of them as if their history began there.

    Parameters
    ----------
    switches
        Customer id → the event time (ms) their behaviour switched (`active_switches`).
    """

    def __init__(self, switches: Mapping[str, int]) -> None:
        self.switches = switches
        self._at_switch: dict[str, tuple[int, list[float]]] = {}
        self._first_after: dict[str, int] = {}

    def before_applied(self, t: int) -> None:
        """Nothing is due by time."""

    def on_applied(self, customer_id: str, state: CustomerState, event_id: str, t: int) -> None:
        """Keep the sums as of the switch: those after the customer's last event before it (the
        engine applies events in time order)."""
        switch = self.switches.get(customer_id)
        if switch is None:
            return
        if state.last_ts < switch:
            self._at_switch[customer_id] = (state.t0, list(state.sums))
        else:
            self._first_after.setdefault(customer_id, state.last_ts)

    def vector(self, customer_id: str, state: CustomerState, at: int) -> list[float]:
        """The features the scorer sees: `stream.core.features.vector` of the customer's events
        since their switch, once they have one (before: of all their events)."""
        first = self._first_after.get(customer_id)
        if first is None or at < first:
            return vector(state, at)
        post = CustomerState()
        post.t0, post.sums = state.t0, array("f", state.sums)
        post.first_ts, post.last_ts = first, state.last_ts
        switch = self.switches[customer_id]
        post.last_purchase_ts = (
            state.last_purchase_ts if state.last_purchase_ts >= switch else NO_TIME
        )
        post.last_active_ts = state.last_active_ts if state.last_active_ts >= switch else NO_TIME
        before = self._at_switch.get(customer_id)
        if before is not None:
            t0, sums = before
            then = CustomerState(sums=array("f", sums), t0=t0)
            rebase(then, state.t0)  # in the state's reference time (it may have moved)
            post.sums = array("f", [x - y for x, y in zip(post.sums, then.sums, strict=True)])
        return vector(post, at)

    def finish(self, watermark: int, out: dict[str, list[bytes]]) -> None:
        """Nothing to add to the outputs."""

    def report(self) -> dict[str, Any]:
        """How many migrants the oracle knew, and how many it saw switch."""
        return {"oracle": {"switches": len(self.switches), "seen": len(self._first_after)}}

    def forget(self, customer_id: str) -> None:
        """Drop what is held about an erased customer."""
        self._at_switch.pop(customer_id, None)
        self._first_after.pop(customer_id, None)
