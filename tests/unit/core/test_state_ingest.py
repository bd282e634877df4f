"""Customer state (idempotence, encoding) and the ingest stage."""

from __future__ import annotations

import json
import random
from array import array
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stream.core import state as state_module
from stream.core.events import Stream, event_time_ms
from stream.core.ingest import Ingest, RawRecord
from stream.core.state import (
    N_SUMS,
    RECENT_IDS,
    STREAM_INDEX,
    CustomerState,
    StateDecodeError,
    encoded_size,
)
from tests.factories import BASE, valid_event


def test_redelivered_offset_is_skipped_and_counted() -> None:
    s = CustomerState()
    assert s.admit_offset(STREAM_INDEX[Stream.PURCHASES], 1, 5)
    assert s.admit_offset(STREAM_INDEX[Stream.PURCHASES], 1, 9)
    assert not s.admit_offset(STREAM_INDEX[Stream.PURCHASES], 1, 9)
    assert not s.admit_offset(STREAM_INDEX[Stream.PURCHASES], 1, 6)
    assert s.admit_offset(STREAM_INDEX[Stream.EMAIL], 1, 6)  # offsets are per stream (topic)
    assert s.duplicates == 2


def test_a_new_partition_resets_the_mark() -> None:
    s = CustomerState()
    s.admit_offset(STREAM_INDEX[Stream.CLICKSTREAM], 0, 100)
    assert s.admit_offset(
        STREAM_INDEX[Stream.CLICKSTREAM], 3, 1
    )  # topic re-created with another partition count


def test_recent_event_ids_are_bounded() -> None:
    s = CustomerState()
    for i in range(RECENT_IDS):
        assert s.admit_event_id(f"e{i}")
    assert not s.admit_event_id("e0")
    assert s.admit_event_id("e-new")  # evicts e0, the oldest
    assert s.admit_event_id("e0")
    assert s.duplicates == 1


@given(
    st.lists(st.floats(0, 2.0**100, width=32), min_size=N_SUMS, max_size=N_SUMS),
    st.integers(-(2**62), 2**62),
    st.lists(st.integers(0, 2**31 - 1), min_size=3, max_size=3),
    st.lists(st.integers(-1, 1000), min_size=3, max_size=3),
    st.lists(st.integers(-1, 2**62), min_size=3, max_size=3),
    st.lists(st.integers(0, 2**64 - 1), min_size=RECENT_IDS, max_size=RECENT_IDS),
)
def test_encoding_round_trips(
    sums: list[float], t: int, events: list[int], parts: list[int], offs: list[int], ids: list[int]
) -> None:
    s = CustomerState(
        sums=array("f", sums),
        t0=t,
        first_ts=t - 5,
        last_ts=t + 5,
        events=events,
        duplicates=3,
        too_old=1,
        partitions=parts,
        offsets=offs,
        ring_pos=4,
        recent_ids=ids,
    )
    data = s.encode()
    assert len(data) == encoded_size() <= 400
    assert CustomerState.decode(data) == s


def _v3(s: CustomerState) -> bytes:
    """``s`` in the version 3 layout (before the last own event)."""
    return state_module._V3.pack(
        3, *s.sums, s.t0, s.first_ts, s.last_ts, s.last_purchase_ts, *s.events, s.duplicates,
        s.too_old, *s.partitions, *s.offsets, s.ring_pos, *s.recent_ids, s.segment_id, s.micro_id,
        s.seg_version, s.seg_since, s.scored_at, *s.drift, *s.history,
    )  # fmt: skip


def test_older_versions_decode_without_drift_history() -> None:
    s = CustomerState(last_ts=7, segment_id=2, micro_id=5, seg_version=3, seg_since=4, scored_at=6,
                      drift=(9, 1.5, 2.5, -0.5))  # fmt: skip
    v3 = _v3(s)
    v2 = b"\x02" + v3[1:362]  # version 2 is version 3 without the 14 drift bytes
    back = CustomerState.decode(v2)
    assert (back.segment_id, back.micro_id, back.seg_version, back.scored_at) == (2, 5, 3, 6)
    assert back.drift == CustomerState().drift
    assert CustomerState.decode(v3).drift == (9, 1.5, 2.5, -0.5)


def test_version_3_takes_the_last_event_for_the_last_own_event() -> None:
    s = CustomerState(t0=1, first_ts=1, last_ts=7, last_purchase_ts=3, partitions=[2, -1, 1000],
                      offsets=[5, -1, 9], segment_id=2, history=(1, 2, 3, 0, 0, 0, 0, 0, 0))  # fmt: skip
    back = CustomerState.decode(_v3(s))
    assert back.last_active_ts == 7
    back.last_active_ts = s.last_active_ts
    assert back == s
    assert len(back.encode()) == 399 and CustomerState.decode(back.encode()) == back


@pytest.mark.parametrize(
    "data", [b"", b"\x02" + bytes(333), b"\x01" + bytes(10), b"\x04" + bytes(396)]
)
def test_unknown_encodings_are_refused(data: bytes) -> None:
    with pytest.raises(StateDecodeError):
        CustomerState.decode(data)


def _rec(i: int, customer: str, stream: str, offset: int, partition: int = 0) -> RawRecord:
    value = json.dumps(valid_event(i, customer, stream, random.Random(i))).encode()
    return RawRecord(stream, Stream(stream), partition, offset, None, customer.encode(), value)


def test_ingest_writes_each_customer_once_per_batch_and_skips_redeliveries() -> None:
    store: dict[str, CustomerState] = {}
    ingest = Ingest()
    batch = [_rec(i, f"c{i % 3}", "clickstream", i) for i in range(9)]
    out = ingest.process(batch, store.get)
    assert sorted(out.changed) == ["c0", "c1", "c2"]
    assert len(out.applied) == 9 and not out.dead_letters
    store.update(out.changed)
    again = ingest.process(batch[4:], store.get)  # redelivery after a crash
    assert not again.applied
    assert sum(n for (_, _, outcome), n in again.counts.items() if outcome == "duplicate") == 5
    assert sum(st.duplicates for st in again.changed.values()) == 5
    # How far the batch took its partitions counts the valid events applied or not.
    assert again.newest_ms == out.newest_ms == event_time_ms(BASE + timedelta(minutes=8))


def test_ingest_dead_letters_with_origin_and_keeps_going() -> None:
    good = _rec(1, "c1", "email", 10, partition=2)
    bad = RawRecord("email", Stream.EMAIL, 2, 11, 1_700_000_000_000, b"c1", b"\x00garbage")
    after = _rec(2, "c1", "email", 12, partition=2)
    out = Ingest().process([good, bad, after], {}.get)
    assert len(out.applied) == 2
    (dl,) = out.dead_letters
    assert (dl.source.topic, dl.source.partition, dl.source.offset) == ("email", 2, 11)
    assert dl.source.timestamp_ms == 1_700_000_000_000
    assert dl.original_value() == b"\x00garbage"
    assert out.rejected == {("email", "not_json"): 1}


def test_an_invalid_event_does_not_move_how_far_the_batch_went() -> None:
    # A record the aligner reads as years ahead (its "ts"), to be dead-lettered.
    ahead = json.dumps({"event_id": "x", "type": "page_view", "ts": "2031-01-01T00:00:00Z"})
    bad = RawRecord("clickstream", Stream.CLICKSTREAM, 0, 1, None, b"c1", ahead.encode())
    out = Ingest().process([_rec(0, "c1", "clickstream", 0), bad], {}.get)
    assert len(out.dead_letters) == 1
    assert out.newest_ms == event_time_ms(BASE)
    assert Ingest().process([bad], {}.get).newest_ms is None


def test_a_record_dated_far_ahead_with_its_event_is_in_the_future_of_the_clock() -> None:
    # The producer sets the record timestamp: an event and its record both dated 9999 passed the
    # check against the record alone. The worker's clock bounds it too.
    far = json.dumps({"event_id": "f", "customer_id": "c9", "type": "purchase",
                      "ts": "9999-12-31T23:59:59Z", "order_id": "o", "amount": 10.5})  # fmt: skip
    record_ms = event_time_ms(datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC))
    rec = RawRecord("purchases", Stream.PURCHASES, 0, 1, record_ms, b"c9", far.encode())
    now_ms = event_time_ms(BASE)
    assert len(Ingest().process([rec], {}.get).applied) == 1  # the record alone: in
    out = Ingest().process([rec], {}.get, now_ms=now_ms)
    assert not out.applied and out.rejected == {("purchases", "future_timestamp"): 1}
    assert out.dead_letters[0].source.timestamp_ms == record_ms  # the origin as it came
    # Within the tolerance of both, or of the clock when the record has no time: in.
    near = _rec(0, "c1", "clickstream", 0)
    assert len(Ingest().process([near], {}.get, now_ms=event_time_ms(BASE)).applied) == 1
    # The record's own time still bounds an event the clock would let in.
    early = RawRecord("purchases", Stream.PURCHASES, 0, 2, now_ms - 86_400_000, b"c9",
                      far.replace("9999-12-31T23:59:59Z", BASE.isoformat()).encode())  # fmt: skip
    assert Ingest().process([early], {}.get, now_ms=now_ms).rejected == {
        ("purchases", "future_timestamp"): 1
    }
