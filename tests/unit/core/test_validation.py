"""Validation: every reason code on a constructed case, and valid events of every type."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stream.core.events import STREAM_OF_TYPE, ClickEvent, PurchaseEvent, Stream, parse_event
from stream.core.reasons import DESCRIPTIONS, Reason
from stream.core.validation import Limits, Rejection, Validator
from tests.factories import REASONS_COVERED, malformed, valid_event

NOW = datetime(2024, 3, 2, tzinfo=UTC)
NOW_MS = int(NOW.timestamp() * 1000)
EARLIEST = "2000-01-01T00:00:00Z"


@pytest.mark.parametrize("i", range(17))
def test_each_malformed_kind_gets_its_reason(i: int) -> None:
    reason, role, key, value = malformed(i, NOW)
    result = Validator().validate(value, key, stream=Stream(role), reference_ms=NOW_MS)
    assert isinstance(result, Rejection)
    assert result.reason is reason, result.detail
    assert result.detail


def test_the_malformed_cycle_covers_every_reason() -> None:
    got = {malformed(i, NOW)[0] for i in range(17)}
    assert got == REASONS_COVERED
    assert set(DESCRIPTIONS) == set(Reason)


@pytest.mark.parametrize("event_type", sorted(STREAM_OF_TYPE))
def test_every_contract_type_is_accepted(event_type: str) -> None:
    import random

    stream = STREAM_OF_TYPE[event_type].value
    event = {**valid_event(1, "c-1", stream, random.Random(1)), "type": event_type}
    result = Validator().validate(
        json.dumps(event).encode(), b"c-1", stream=Stream(stream), reference_ms=NOW_MS
    )
    assert not isinstance(result, Rejection), result
    assert result.type == event_type and result.stream.value == stream


def test_unknown_fields_are_ignored_and_types_are_strict() -> None:
    raw = (
        b'{"event_id":"e","customer_id":"c","type":"page_view","ts":"2024-01-01T00:00:00Z",'
        b'"new_field":{"x":1},"price":3}'
    )
    event = parse_event(raw)
    assert isinstance(event, ClickEvent) and event.price == 3.0
    assert not hasattr(event, "new_field")
    bad = raw.replace(b'"price":3', b'"price":"3"')
    assert Validator().validate(bad, b"c").reason is Reason.WRONG_TYPE


@pytest.mark.parametrize(
    ("ts", "ok"),
    [("0001-01-01T00:00:00Z", False), ("1970-01-01T00:00:00Z", False),
     ("1999-12-31T23:59:59.999Z", False), ("2000-01-01T00:59:59+01:00", False),
     ("2000-01-01T00:00:00Z", True), ("2000-01-01T01:00:00+01:00", True)],
)  # fmt: skip
def test_an_event_before_2000_is_a_bad_timestamp(ts: str, ok: bool) -> None:
    """A date left at its default upstream (the epoch, year 1) is no event time, in the
    worker and in the offline replay alike (`stream.core.events.EARLIEST_TS`)."""
    raw = json.dumps({"event_id": "e", "customer_id": "c", "type": "page_view", "ts": ts}).encode()
    validator = Validator()
    for result in (validator.validate(raw, b"c", stream=Stream.CLICKSTREAM, reference_ms=NOW_MS),
                   validator.validate_line(raw, None)):  # fmt: skip
        if ok:
            assert not isinstance(result, Rejection), result
        else:
            assert isinstance(result, Rejection) and result.reason is Reason.BAD_TIMESTAMP
            assert result.detail == "ts: Input should be greater than or equal to " + EARLIEST
    assert (validator.fields_of_line(raw) is not None) is ok


def test_null_for_a_required_field_is_a_missing_field() -> None:
    raw = (
        b'{"event_id":"e","customer_id":"c","type":"purchase","ts":"2024-01-01T00:00:00Z",'
        b'"order_id":null,"amount":1}'
    )
    assert Validator().validate(raw, b"c").reason is Reason.MISSING_FIELD


def test_limits_are_configurable() -> None:
    raw = json.dumps(
        {
            "event_id": "e",
            "customer_id": "c",
            "type": "page_view",
            "ts": "2024-03-02T00:30:00+00:00",
        }
    ).encode()
    strict = Validator(Limits(max_message_bytes=len(raw) - 1, future_tolerance_ms=60_000))
    assert strict.validate(raw, b"c").reason is Reason.OVERSIZED
    loose = Validator(Limits(max_message_bytes=4096, future_tolerance_ms=60_000))
    assert loose.validate(raw, b"c", reference_ms=NOW_MS).reason is Reason.FUTURE_TIMESTAMP
    assert not isinstance(loose.validate(raw, b"c", reference_ms=None), Rejection)
    assert isinstance(parse_event(raw), ClickEvent)


def test_purchase_items_are_validated() -> None:
    base = {
        "event_id": "e",
        "customer_id": "c",
        "type": "purchase",
        "ts": "2024-01-01T00:00:00Z",
        "order_id": "o",
        "amount": 10.0,
    }
    ok = parse_event(
        json.dumps({**base, "items": [{"product_id": "p", "quantity": 2, "unit_price": 5.0}]})
    )
    assert isinstance(ok, PurchaseEvent) and ok.items and ok.items[0].quantity == 2
    zero = json.dumps({**base, "items": [{"quantity": 0}]}).encode()
    assert Validator().validate(zero, b"c").reason is Reason.INVALID_VALUE
    neg = json.dumps({**base, "items": [{"unit_price": -1}]}).encode()
    assert Validator().validate(neg, b"c").reason is Reason.NEGATIVE_AMOUNT
    cur = json.dumps({**base, "currency": "euro"}).encode()
    assert Validator().validate(cur, b"c").reason is Reason.INVALID_VALUE


@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_raise(data: bytes) -> None:
    result = Validator().validate(data, b"k", stream=Stream.CLICKSTREAM, reference_ms=NOW_MS)
    assert isinstance(result, Rejection) or result.customer_id == "k"


@given(
    st.recursive(
        st.none() | st.booleans() | st.floats() | st.text(max_size=20),
        lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=6),
        max_leaves=20,
    )
)
def test_arbitrary_json_never_raises(obj: object) -> None:
    raw = json.dumps(obj).encode()
    result = Validator().validate(raw, b"k", stream=Stream.EMAIL, reference_ms=NOW_MS)
    assert isinstance(result, Rejection) or result.stream is Stream.EMAIL


SECRET = "jane.doe@example.com"


@pytest.mark.parametrize("field", ["type", "channel", "currency", "ts", "amount", "discount"])
@pytest.mark.parametrize("value", [SECRET, SECRET * 500])
def test_a_rejection_names_the_field_never_the_value(field: str, value: str) -> None:
    # A ``type`` holding an e-mail address was copied into the detail whole (pydantic's message
    # for an unknown tag quotes it), 10 KB of it for a 10 KB type.
    event = valid_event(3, "c", "purchases", random.Random(3))
    raw = json.dumps({**event, field: value}).encode()
    result = Validator().validate(raw, b"c", stream=Stream.PURCHASES, reference_ms=NOW_MS)
    assert isinstance(result, Rejection)
    assert SECRET not in result.detail and len(result.detail) < 400, result.detail
    assert field in result.detail or result.reason is Reason.UNKNOWN_TYPE
