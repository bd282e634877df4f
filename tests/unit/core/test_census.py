"""Cluster-wide segment sizes from the change stream (`stream.core.census`)."""

from __future__ import annotations

from typing import Any

from stream.core.census import Census
from stream.core.outputs import change_id, rfc3339_ms

DAY = 86_400_000


def change(cid: str, version: int, previous: int | None, current: int | None, t: int,
           reason: str = "behaviour", life: int = 0) -> dict[str, Any]:  # fmt: skip
    """A ``segment-changes`` record with the fields the census reads (``life``: the customer's
    first event time, which tells apart the lives of a customer erased and back)."""

    def ref(s: int | None) -> dict[str, Any] | None:
        return None if s is None else {"segment_id": s, "segment_name": f"S{s}",
                                       "micro_segment_id": 10 * s}  # fmt: skip

    return {"event_id": change_id(cid, life, version), "customer_id": cid, "version": version,
            "previous": ref(previous), "current": ref(current), "reason": reason,
            "event_time": rfc3339_ms(t)}  # fmt: skip


def test_a_customer_who_comes_back_after_an_erasure_is_counted_again() -> None:
    # Nothing of an erased customer is kept, so when they come back their changes start again
    # at version 1. Their ids used to be those of their first life: the census took them for
    # re-sent changes and the customer was missing from /segments for good (seen on a live
    # worker: 399 customers in /segments, 400 in the workers' tables).
    c = Census()
    c.add_record(change("c1", 1, None, 2, 0, "new_customer"))
    c.add_record(change("c2", 1, None, 2, 0, "new_customer"))
    c.add_record(change("c1", 2, 2, 3, DAY))
    c.add_record(change("c1", 3, 3, None, 2 * DAY, "erased"))
    assert c.sizes() == {2: 1}
    c.add_record(change("c1", 1, None, 2, 3 * DAY, "new_customer", life=3 * DAY))
    c.add_record(change("c1", 2, 2, 3, 4 * DAY, life=3 * DAY))
    assert c.sizes() == {2: 1, 3: 1}
    assert c.movement(3)["in"] == {"2": 2}  # once in each life


def test_re_sent_changes_are_still_counted_once() -> None:
    c = Census()
    first = change("c1", 1, None, 2, 0, "new_customer")
    erased = change("c1", 2, 2, None, DAY, "erased")
    for record in (first, first, erased, erased):
        c.add_record(record)
    assert c.sizes() == {} and c.changes == 2
    back = change("c1", 1, None, 4, 2 * DAY, "new_customer", life=2 * DAY)
    c.add_record(back)
    c.add_record(erased)  # a late copy of the erasure forgets nothing of the new life
    c.add_record(back)
    assert c.sizes() == {4: 1} and c.changes == 3
