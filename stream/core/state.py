"""Per-customer state: fixed-size, binary-encoded, idempotent under redelivery.

The state remembers, per input stream, the source partition and the last offset it applied, so a
record Kafka redelivers after a crash is recognised and skipped (and counted) instead of being
applied twice. Records of one customer in one topic arrive in offset order (one partition owns the
key), which makes a single high-water mark per stream sufficient.

The encoding is a versioned ``struct`` layout, never pickle; a later version may append fields and
``decode`` must keep reading every earlier one.

>>> s = CustomerState()
>>> s.admit(Stream.EMAIL, partition=3, offset=10), s.admit(Stream.EMAIL, partition=3, offset=10)
(True, False)
>>> CustomerState.decode(s.encode()) == s
True
>>> len(s.encode())
53
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from stream.core.events import Stream

STREAMS: tuple[Stream, ...] = (Stream.CLICKSTREAM, Stream.EMAIL, Stream.PURCHASES)
_INDEX = {s: i for i, s in enumerate(STREAMS)}

_V1 = struct.Struct("<B3I I 3i 3q")  # version, events[3], duplicates, partitions[3], offsets[3]
VERSION = 1


class StateDecodeError(ValueError):
    """The bytes are not a customer state this code can read."""


@dataclass(slots=True)
class CustomerState:
    """What the service keeps per customer (so far: counts and redelivery marks)."""

    events: list[int] = field(default_factory=lambda: [0, 0, 0])
    duplicates: int = 0
    partitions: list[int] = field(default_factory=lambda: [-1, -1, -1])
    offsets: list[int] = field(default_factory=lambda: [-1, -1, -1])

    def admit(self, stream: Stream, partition: int, offset: int) -> bool:
        """Record that the record at ``partition``/``offset`` of ``stream`` is being applied.

        Returns False (and counts a duplicate) when it was applied before.
        """
        i = _INDEX[stream]
        if self.partitions[i] == partition and offset <= self.offsets[i]:
            self.duplicates += 1
            return False
        self.partitions[i] = partition
        self.offsets[i] = offset
        self.events[i] += 1
        return True

    @property
    def total_events(self) -> int:
        """Events applied across all streams."""
        return sum(self.events)

    def encode(self) -> bytes:
        """The versioned binary encoding."""
        return _V1.pack(VERSION, *self.events, self.duplicates, *self.partitions, *self.offsets)

    @classmethod
    def decode(cls, data: bytes) -> CustomerState:
        """Read any supported version; raise `StateDecodeError` on anything else."""
        if not data or data[0] != VERSION or len(data) != _V1.size:
            raise StateDecodeError(f"unsupported customer state ({len(data)} bytes)")
        v = _V1.unpack(data)
        return cls(
            events=list(v[1:4]), duplicates=v[4], partitions=list(v[5:8]), offsets=list(v[8:11])
        )
