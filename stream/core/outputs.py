"""The v1 output contracts of segmentation: ``segment-changes`` and ``segment-events`` records.

Both are JSON objects (sorted keys on the wire), generated as JSON Schemas into ``schemas/``.
Every record carries a deterministic ``event_id`` (the same change replayed gets the same id),
so consumers can deduplicate an at-least-once stream.

>>> ref = SegmentRef(segment_id=3, segment_name="Lapsed", micro_segment_id=11)
>>> ch = SegmentChange(event_id=change_id("c1", 0, 1), customer_id="c1", version=1, previous=None,
...                    current=ref, reason="new_customer", confidence=0.42, explanation=[],
...                    model_version=2, event_time=rfc3339_ms(0), emitted_at=rfc3339_ms(0),
...                    holdout=False)
>>> ch.event_id, ch.current.segment_name, ch.event_time
('679aa4b3ff31b079bb8eae411c98fa5d', 'Lapsed', '1970-01-01T00:00:00.000Z')
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

ChangeReason = Literal[
    "behaviour", "new_customer", "model_update", "segment_retired", "erased", "customer_drift"
]
LifecycleKind = Literal[
    "model_published",
    "segment_born",
    "segment_retired",
    "segment_split",
    "segment_merged",
    "drift_detected",
]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def rfc3339_ms(t_ms: int) -> str:
    """Unix milliseconds as RFC 3339 UTC with millisecond precision."""
    return (_EPOCH + timedelta(milliseconds=t_ms)).isoformat(timespec="milliseconds")[:-6] + "Z"


def parse_rfc3339_ms(text: str) -> int:
    """Unix milliseconds of an RFC 3339 time as the outputs write it (`rfc3339_ms`).

    >>> parse_rfc3339_ms(rfc3339_ms(1_736_121_600_123))
    1736121600123
    """
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def json_line(record: Mapping[str, Any]) -> bytes:
    r"""A record as one line of an output file: canonical JSON (sorted keys, no spaces, ASCII).

    >>> json_line({"b": 1, "a": [0.5, "é"]})
    b'{"a":[0.5,"\\u00e9"],"b":1}\n'
    """
    return json.dumps(record, sort_keys=True, separators=(",", ":")).encode() + b"\n"


def _digest(*parts: str) -> str:
    return hashlib.blake2b("\x00".join(parts).encode(), digest_size=16).hexdigest()


def change_id(customer_id: str, first_ts: int, version: int) -> str:
    """The event id of a customer's ``version``-th segment change (deterministic).

    ``first_ts`` (the customer's first event time, ms) tells a customer's lives apart: nothing
    of an erased customer is kept, so one who comes back counts their changes from 1 again, and
    without it their changes had the ids of their first life's, which consumers that
    deduplicate by id then dropped as re-sent.
    """
    return _digest("change", customer_id, str(first_ts), str(version))


def lifecycle_id(kind: str, model_version: int, *ids: int | str) -> str:
    """The event id of a lifecycle record (deterministic)."""
    return _digest(kind, str(model_version), *map(str, ids))


class SegmentRef(BaseModel):
    """Where a customer is: segment id and name, micro-segment id."""

    model_config = ConfigDict(frozen=True)

    segment_id: int
    segment_name: str
    micro_segment_id: int


class Reason(BaseModel):
    """One feature that places a customer in their segment."""

    model_config = ConfigDict(frozen=True)

    feature: str
    value: float
    """The customer's value of the feature, in its unit (see the feature catalogue)."""
    z: float
    """How far from the population: standard deviations above (+) or below (−) the mean."""


class SegmentChange(BaseModel):
    """A customer's segment (or micro-segment) changed; the value of a ``segment-changes`` record."""

    model_config = ConfigDict(frozen=True)

    schema_version: Literal[1] = 1
    event_id: str
    customer_id: str
    version: int
    """Per customer, 1 for the first assignment, then +1 per change (monotonic); 1 again after
    an ``erased`` change (nothing of an erased customer is kept)."""
    previous: SegmentRef | None
    current: SegmentRef | None
    """None only for ``erased``."""
    reason: ChangeReason
    confidence: float
    """Relative margin of the nearest segment over the second nearest, in [0, 1]."""
    explanation: list[Reason]
    model_version: int
    event_time: str
    """Event time (RFC 3339) of what caused the change: an event, or the watermark."""
    emitted_at: str
    """When the change was decided: wall clock in the worker, the event-time watermark offline."""
    holdout: bool
    """Deterministic control-group flag (a fixed share of customers, by hashed id)."""


class DriftInfo(BaseModel):
    """What a ``drift_detected`` record detected (see `stream.core.drift`)."""

    model_config = ConfigDict(frozen=True)

    level: Literal["model_fit", "segment"]
    detector: str
    """The `river.drift` detector: ``adwin``."""
    subject: str
    """``model``, or ``segment:<id>:share`` / ``segment:<id>:spread``."""
    statistic: str
    """The monitored statistic and its change, human-readable."""
    before: float
    after: float
    """The statistic's mean over the older and the recent part of the detector's window."""


class SegmentEvent(BaseModel):
    """Model and segment lifecycle; the value of a ``segment-events`` record."""

    model_config = ConfigDict(frozen=True)

    schema_version: Literal[1] = 1
    event_id: str
    kind: LifecycleKind
    model_version: int
    event_time: str
    segment_ids: list[int]
    """The segments concerned (all live segments for ``model_published``)."""
    mapping: dict[str, list[int]] = {}
    """Old segment id → new segment ids, for splits (old → [old, new…]) and merges (old → [into]).
    It describes segments and moves nobody: customers move by their own ``segment-changes``."""
    names: dict[str, str] = {}
    """Segment id → name (for ``model_published`` and ``segment_born``)."""
    detail: str = ""
    drift: DriftInfo | None = None
    """For ``drift_detected``: level, detector, subject, statistic (``model_version``: the model
    in use, ``event_time``: the sample's event time)."""
