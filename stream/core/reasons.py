"""Reason codes for bad input.

Every event that is not a valid v1 contract event goes to ``dead-letter`` with exactly one of these
codes. The codes are part of the public contract: consumers of ``dead-letter`` and the Prometheus
label ``reason`` use them, so a code is never renamed or reused.

>>> Reason.NOT_JSON.value
'not_json'
>>> describe(Reason.NEGATIVE_AMOUNT)
'amount, price or discount below zero'
"""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    """Why an event was rejected (the ``reason`` of a dead-letter record)."""

    NOT_JSON = "not_json"
    NOT_OBJECT = "not_object"
    UNKNOWN_TYPE = "unknown_type"
    MISSING_FIELD = "missing_field"
    WRONG_TYPE = "wrong_type"
    INVALID_VALUE = "invalid_value"
    BAD_TIMESTAMP = "bad_timestamp"
    FUTURE_TIMESTAMP = "future_timestamp"
    NEGATIVE_AMOUNT = "negative_amount"
    OVERSIZED = "oversized"
    MISSING_KEY = "missing_key"
    KEY_MISMATCH = "key_mismatch"
    WRONG_STREAM = "wrong_stream"
    PROCESSING_ERROR = "processing_error"


DESCRIPTIONS: dict[Reason, str] = {
    Reason.NOT_JSON: "bytes are not UTF-8 JSON",
    Reason.NOT_OBJECT: "JSON, but not an object",
    Reason.UNKNOWN_TYPE: "`type` is not one of the v1 event types",
    Reason.MISSING_FIELD: "a required field is absent (or null)",
    Reason.WRONG_TYPE: "a field has the wrong JSON type",
    Reason.INVALID_VALUE: "a field has the right type but a value outside its domain",
    Reason.BAD_TIMESTAMP: "`ts` is not RFC 3339 with a UTC offset, or is before 2000-01-01T00:00:00Z",
    Reason.FUTURE_TIMESTAMP: "`ts` is later than the record's time plus the tolerance",
    Reason.NEGATIVE_AMOUNT: "amount, price or discount below zero",
    Reason.OVERSIZED: "the message is larger than the configured maximum",
    Reason.MISSING_KEY: "the Kafka message has no key",
    Reason.KEY_MISMATCH: "the Kafka key differs from `customer_id`",
    Reason.WRONG_STREAM: "the event's `type` belongs to another stream's topic",
    Reason.PROCESSING_ERROR: "valid, but processing it raised; kept here so it is not lost",
}


def describe(reason: Reason) -> str:
    """Return the one-line human description of ``reason``."""
    return DESCRIPTIONS[reason]
