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


def test_a_census_restored_from_a_checkpoint_goes_on_as_the_one_that_read_everything() -> None:
    import random

    rng = random.Random(7)
    records, where = [], {}
    for i in range(2_000):
        cid = f"c{rng.randrange(300)}"
        version = where.get(cid, (0, None))[0] + 1
        previous = where.get(cid, (0, None))[1]
        current = rng.choice([1, 2, 3, 4])
        where[cid] = (version, current)
        records.append(change(cid, version, previous, current, i * DAY // 50,
                              "new_customer" if previous is None else "behaviour"))  # fmt: skip
    records.insert(1_500, records[1_490])  # re-sent after a crash, across the checkpoint
    whole, first = Census(), Census()
    for r in records:
        whole.add_record(r)
    for r in records[:1_495]:
        first.add_record(r)
    later, positions = Census.restore(first.checkpoint({0: 1_495, 1: 7}))
    assert positions == {0: 1_495, 1: 7}
    for r in records[1_495:]:
        later.add_record(r)
    assert later.sizes() == whole.sizes() and later.micro_sizes() == whole.micro_sizes()
    assert later.changes == whole.changes == 2_000
    for s in (1, 2, 3, 4):
        assert later.movement(s) == whole.movement(s)
    assert later.checkpoint({}) == whole.checkpoint({})


def test_a_checkpoint_of_another_encoding_or_none_is_refused() -> None:
    import json

    import pytest

    body = json.loads(Census().checkpoint({}))
    for bad in (b"{", b"[]", json.dumps({**body, "encoding": 2}).encode()):
        with pytest.raises(ValueError, match="not a census checkpoint"):
            Census.restore(bad)
