"""The worker's HTTP helpers that need no web server."""

from __future__ import annotations

from collections import defaultdict
from types import SimpleNamespace
from typing import Any

from faust.types import TP

from stream.adapters.web import consumer_lags


class _Consumer:
    """Faust's consumer as `consumer_lags` reads it: assignment, high watermarks, and the read
    and committed offsets (defaultdicts of None, as Faust keeps them)."""

    def __init__(self, high: dict[TP, int], read: dict[TP, int], committed: dict[TP, int]):
        self.high = high
        self._read_offset: defaultdict[TP, int | None] = defaultdict(lambda: None, read)
        self._committed_offset: defaultdict[TP, int | None] = defaultdict(lambda: None, committed)

    def assignment(self) -> set[TP]:
        return set(self.high)

    def highwater(self, tp: TP) -> int:
        return self.high[tp]


def test_a_partition_whose_position_is_not_known_yet_reports_no_lag() -> None:
    """Right after a rebalance, before Faust has fetched the committed offsets, the lag used to
    count from offset 0: the whole topic (an operator saw 90,144 on a worker a few dozen
    records behind)."""
    read, committed, unknown, other = (TP("clicks", p) for p in (0, 1, 2, 3))
    consumer = _Consumer(
        {read: 1_000, committed: 90_144, unknown: 90_144, other: 5},
        read={read: 979},  # the last offset read: 20 still to read
        committed={committed: 90_100},  # the next offset to read
    )
    svc: Any = SimpleNamespace(
        app=SimpleNamespace(consumer=consumer), stream_of_topic={"clicks": "clickstream"}
    )
    assert consumer_lags(svc) == {("clicks", 0): 20, ("clicks", 1): 44}
