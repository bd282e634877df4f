"""Per-customer state: fixed-size, binary-encoded, idempotent under redelivery and re-sends.

What a customer's state holds (and nothing else: erasing it erases the customer):

* ``sums``: the event-time decayed aggregates of `stream.core.features`, stored *grown*:
  ``Σ w · exp((t − t0) / τ)`` against the reference time ``t0``, so applying an event touches only
  its own aggregates and the result does not depend on arrival order (up to rounding); float32,
  in memory as in the encoding;
* event times: ``t0``, first and last event, last purchase, last event of the customer's own (not
  an e-mail sent, delivered or bounced to them) (ms since the epoch), and the kind of that last
  own event (an e-mail click, an organic touch, or other: `stream.core.activity`);
* per input stream, the source partition and the last applied offset, so a record Kafka redelivers
  after a crash is recognised (records of one key arrive in offset order);
* the 64-bit hashes of the last `RECENT_IDS` event ids, so a re-sent event is recognised;
* counters: events per stream, duplicates skipped, events too old to apply;
* the segment assignment (`stream.core.segmentation`): segment and micro-segment ids, since
  when, the per-customer change version, and when the customer was last scored;
* the customer-level drift detector (`stream.core.drift.CustomerDrift`): evaluations seen, mean
  distance, cumulative sum and its minimum;
* the last three segment moves (from which segment, why, when), for ``GET /customers/{id}``.

The encoding is a versioned little-endian ``struct`` layout (never pickle): 399 bytes. Version 4
(the same layout) did not keep the kind of the last own event (read as "other"). Version 1
records (334 bytes, before the assignment was added) are still read, as "not yet assigned";
version 2 (362 bytes, before the drift detector and the moves) as "no drift or move history";
version 3 (397 bytes, before the last own event, with 32-bit partition numbers) with the last
event of any kind as the last own event.

>>> s = CustomerState()
>>> email = STREAM_INDEX[Stream.EMAIL]
>>> s.admit_offset(email, partition=3, offset=10), s.admit_offset(email, 3, 10)
(True, False)
>>> s.admit_event_id("ev-1"), s.admit_event_id("ev-1")
(True, False)
>>> CustomerState.decode(s.encode()) == s, len(s.encode())
(True, 399)
"""

from __future__ import annotations

import hashlib
import struct
from array import array
from dataclasses import dataclass, field

from stream.core.events import Stream

STREAMS: tuple[Stream, ...] = (Stream.CLICKSTREAM, Stream.EMAIL, Stream.PURCHASES)
STREAM_INDEX = {s: i for i, s in enumerate(STREAMS)}
N_SUMS = 37
RECENT_IDS = 12
NO_TIME = -(2**63)
VERSION = 5
TOUCH_OTHER, TOUCH_CLICK, TOUCH_ORGANIC = 0, 1, 2
"""Kinds of a customer's last own event (`CustomerState.touch`)."""

# version, sums, t0/first/last/last_purchase, events[3], duplicates, too_old,
# partitions[3], offsets[3], ring position, recent event-id hashes
_V1 = struct.Struct(f"<B{N_SUMS}f4q5I3i3qB{RECENT_IDS}Q")
# v1, then segment id, micro-segment id, in the segment since, change version, last scored
_V2 = struct.Struct(f"<B{N_SUMS}f4q5I3i3qB{RECENT_IDS}Q3Iqq")
HISTORY = 3
# v2, then the drift detector: evaluations, mean, cumulative sum, its minimum; then the last
# HISTORY segment moves, newest first: segment moved from, reason code, minute (event time)
_V3 = struct.Struct(f"<B{N_SUMS}f4q5I3i3qB{RECENT_IDS}Q3IqqH3f" + "HBI" * HISTORY)
# v3, with the last own event after the last purchase and 16-bit partition numbers (the
# settings allow at most 1,024 and start-up checks the topics have that many): 399 bytes,
# within the 400 the features issue budgets
_V4 = struct.Struct(f"<B{N_SUMS}f5q5I3h3qB{RECENT_IDS}Q3IqqH3f" + "HBI" * HISTORY)
_NO_DRIFT = (0, 0.0, 0.0, float("inf"))
_NO_HISTORY = (0, 0, 0) * HISTORY


class StateDecodeError(ValueError):
    """The bytes are not a customer state this code can read."""


def id_hash(event_id: str) -> int:
    """A stable 64-bit hash of an event id (never 0, which marks an empty slot)."""
    h = _BLAKE2B_64.copy()
    h.update(event_id.encode())
    return _from_bytes(h.digest(), "little") or 1


# Copying an unkeyed 64-bit BLAKE2b state is 3× cheaper than constructing one; same digest.
_BLAKE2B_64 = hashlib.blake2b(digest_size=8)
_from_bytes = int.from_bytes


@dataclass(slots=True, eq=True)
class CustomerState:
    """Everything the service keeps about one customer."""

    sums: array[float] = field(default_factory=lambda: array("f", bytes(4 * N_SUMS)))
    """Float32 in memory as in the encoding: every update rounds as it is stored, so a state
    that went through its bytes (the worker's table, between batches that fall where they may)
    and one that stayed in memory (the offline replay) go on bit for bit alike."""
    t0: int = NO_TIME
    first_ts: int = NO_TIME
    last_ts: int = NO_TIME
    last_purchase_ts: int = NO_TIME
    last_active_ts: int = NO_TIME
    """The last event of the customer's own (`stream.core.facts.Effect.own`)."""
    events: list[int] = field(default_factory=lambda: [0, 0, 0])
    duplicates: int = 0
    too_old: int = 0
    partitions: list[int] = field(default_factory=lambda: [-1, -1, -1])
    offsets: list[int] = field(default_factory=lambda: [-1, -1, -1])
    ring_pos: int = 0
    touch: int = TOUCH_OTHER
    """The kind of the customer's last own event: an e-mail click, a touch of their own accord
    (a session or an order not prompted by a click: `stream.core.activity`) or anything else.
    Stored in the high half of the ring position's byte."""
    organic: bool = field(default=False, compare=False, repr=False)
    """Whether the event applied last (`stream.core.facts.apply_fact`) was an organic touch,
    for the caller to count; not stored."""
    recent_ids: list[int] = field(default_factory=lambda: [0] * RECENT_IDS)
    segment_id: int = 0  # 0: not assigned yet
    micro_id: int = 0
    seg_version: int = 0  # segment-change events emitted for this customer
    seg_since: int = NO_TIME
    scored_at: int = NO_TIME
    drift: tuple[int, float, float, float] = _NO_DRIFT
    """Customer drift detector state (`stream.core.drift.page_hinkley_step`, which keeps it at
    float32 precision, as stored)."""
    history: tuple[int, ...] = _NO_HISTORY
    """The last `HISTORY` segment moves, newest first, flat: (segment moved from (0: none),
    reason code, event-time minute + 1) each; all zero where there is none."""

    def record_move(self, from_segment: int, reason: int, t_ms: int) -> None:
        """Remember a segment move (the oldest of `HISTORY` falls out)."""
        self.history = (from_segment, reason, max(t_ms // 60_000, 0) + 1, *self.history[:-3])

    def moves(self) -> list[tuple[int, int, int]]:
        """The remembered moves, newest first: (from segment, reason code, minute)."""
        h = self.history
        return [(h[i], h[i + 1], h[i + 2] - 1) for i in range(0, len(h), 3) if h[i + 2]]

    def admit_offset(self, i: int, partition: int, offset: int) -> bool:
        """Mark ``partition``/``offset`` of the stream with index ``i`` (`STREAM_INDEX`) applied.

        Returns False (and counts a duplicate) if it was applied before.
        """
        if self.partitions[i] == partition and offset <= self.offsets[i]:
            self.duplicates += 1
            return False
        self.partitions[i] = partition
        self.offsets[i] = offset
        return True

    def admit_event_id(self, event_id: str) -> bool:
        """Remember ``event_id``; False (counted) if it is among the recent ones."""
        return self.admit_id_hash(id_hash(event_id))

    def admit_id_hash(self, h: int) -> bool:
        """`admit_event_id` of an event id already hashed with `id_hash`."""
        if h in self.recent_ids:
            self.duplicates += 1
            return False
        self.recent_ids[self.ring_pos] = h
        self.ring_pos = (self.ring_pos + 1) % RECENT_IDS
        return True

    @property
    def total_events(self) -> int:
        """Events applied across all streams."""
        return sum(self.events)

    def encode(self) -> bytes:
        """The versioned binary encoding."""
        return _V4.pack(
            VERSION, *self.sums, self.t0, self.first_ts, self.last_ts, self.last_purchase_ts,
            self.last_active_ts, *self.events, self.duplicates, self.too_old, *self.partitions,
            *self.offsets, self.ring_pos | self.touch << 4, *self.recent_ids, self.segment_id, self.micro_id,
            self.seg_version, self.seg_since, self.scored_at, *self.drift, *self.history,
        )  # fmt: skip

    @classmethod
    def decode(cls, data: bytes) -> CustomerState:
        """Read any supported version; raise `StateDecodeError` on anything else."""
        n = 1 + N_SUMS
        touch = TOUCH_OTHER
        if data and data[0] in (4, 5) and len(data) == _V4.size:
            v = _V4.unpack(data)
            if data[0] == 5:
                touch = v[n + 16] >> 4
                v = (*v[: n + 16], v[n + 16] & 15, *v[n + 17 :])
        else:
            if data and data[0] == 3 and len(data) == _V3.size:
                old = _V3.unpack(data)
            elif data and data[0] == 2 and len(data) == _V2.size:
                old = (*_V2.unpack(data), *_NO_DRIFT, *_NO_HISTORY)
            elif data and data[0] == 1 and len(data) == _V1.size:
                old = (*_V1.unpack(data), 0, 0, 0, NO_TIME, NO_TIME, *_NO_DRIFT, *_NO_HISTORY)
            else:
                raise StateDecodeError(f"unsupported customer state ({len(data)} bytes)")
            v = (*old[: n + 4], old[n + 2], *old[n + 4 :])  # last own event: the last event
        a = n + 17 + RECENT_IDS
        return cls(
            sums=array("f", v[1:n]), t0=v[n], first_ts=v[n + 1], last_ts=v[n + 2],
            last_purchase_ts=v[n + 3], last_active_ts=v[n + 4], events=list(v[n + 5 : n + 8]),
            duplicates=v[n + 8], too_old=v[n + 9], partitions=list(v[n + 10 : n + 13]),
            offsets=list(v[n + 13 : n + 16]), ring_pos=v[n + 16], touch=touch, recent_ids=list(v[n + 17 : a]),
            segment_id=v[a], micro_id=v[a + 1], seg_version=v[a + 2], seg_since=v[a + 3],
            scored_at=v[a + 4], drift=(v[a + 5], v[a + 6], v[a + 7], v[a + 8]),
            history=tuple(v[a + 9 :]),
        )  # fmt: skip


def encoded_size() -> int:
    """Bytes per customer in the table (the value; the key is the customer id)."""
    return _V4.size
