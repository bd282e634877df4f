"""The ``dead-letter`` record: a rejected event with its bytes, origin, reason and detail.

The original bytes travel base64-encoded inside a JSON envelope, so the record is readable with
any JSON tool and never pickled. Messages larger than ``max_bytes`` keep their first ``max_bytes``
(with ``value_truncated`` set, and size and SHA-256 of the whole message), so an oversized message
cannot make its own dead-letter record unsendable.

>>> from stream.core.reasons import Reason
>>> rec = DeadLetter.build(b"{oops", b"c1", Origin("email", 2, 41, 1700000000000),
...                        Reason.NOT_JSON, "invalid JSON")
>>> rec.original_value()
b'{oops'
>>> rec.source.partition, rec.reason.value
(2, 'not_json')
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict

from stream.core.reasons import Reason


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a record came from."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None = None


class Source(BaseModel):
    """The source topic, partition, offset and record timestamp."""

    model_config = ConfigDict(frozen=True)

    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None = None


class DeadLetter(BaseModel):
    """One dead-lettered record (the value of a ``dead-letter`` message, JSON)."""

    model_config = ConfigDict(frozen=True)

    schema_version: Literal[1] = 1
    reason: Reason
    detail: str
    source: Source
    key_b64: str | None
    value_b64: str | None
    value_size: int
    value_sha256: str | None
    value_truncated: bool

    @classmethod
    def build(
        cls,
        value: bytes | None,
        key: bytes | None,
        origin: Origin,
        reason: Reason,
        detail: str,
        max_bytes: int = 1_048_576,
    ) -> DeadLetter:
        """Make the envelope for a rejected record."""
        kept = value[:max_bytes] if value is not None else None
        return cls(
            reason=reason,
            detail=detail,
            source=Source(
                topic=origin.topic,
                partition=origin.partition,
                offset=origin.offset,
                timestamp_ms=origin.timestamp_ms,
            ),
            key_b64=base64.b64encode(key).decode() if key is not None else None,
            value_b64=base64.b64encode(kept).decode() if kept is not None else None,
            value_size=len(value) if value is not None else 0,
            value_sha256=hashlib.sha256(value).hexdigest() if value is not None else None,
            value_truncated=value is not None and len(value) > max_bytes,
        )

    def original_value(self) -> bytes | None:
        """The (possibly truncated) original message bytes."""
        return base64.b64decode(self.value_b64) if self.value_b64 is not None else None

    def to_bytes(self) -> bytes:
        """The JSON encoding that goes on the topic."""
        return self.model_dump_json().encode()
