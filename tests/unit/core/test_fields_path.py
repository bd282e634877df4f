"""The offline engine's lighter validation path is the model path, line for line.

`Validator.fields_of_line` validates against the contract's schema with each model as a typed
dict, and the engine falls back to `Validator.validate_line` for every line it rejects (and for
events in the future). Pinned here: both accept exactly the same lines, with the same values and
the same facts, and the engine queues and dead-letters exactly what the model path did.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, TypeAdapter, field_validator, model_validator

from stream.bench import _BAD
from stream.core.engine import Engine
from stream.core.events import event_time_ms
from stream.core.facts import fact_of, fact_of_fields
from stream.core.ingest import Ingest
from stream.core.state import id_hash
from stream.core.validation import Limits, Rejection, Validator, _as_typed_dicts
from tests.factories import malformed
from tests.unit.core.test_facts import event_dicts

NOW = datetime(2024, 3, 2, tzinfo=UTC)
LIMITS = Limits(max_message_bytes=2048, future_tolerance_ms=86_400_000)

_ODD_VALUES = st.sampled_from(
    [None, True, 0, 1, -1, 0.0, -0.0, -2.5, 1e15, 1.5e15, "", "x", "x" * 129, "x" * 1025, "web",
     "EUR", "eur", [], [{}], [{"quantity": 0}], [{"quantity": 2.0}], [{"unit_price": -1}],
     [{"product_id": "p", "quantity": 3, "unit_price": 2.5, "x": 1}], {}, {"a": 1}]
)  # fmt: skip
_ODD_TS = st.sampled_from(
    ["2024-03-01T10:00:00", "2024-03-01t10:00:00z", "2024-03-01 10:00:00Z", "2024-03-01",
     "2024-03-01T10:00:00.1234567Z", "2024-03-01T10:00:60Z", "2024-02-30T10:00:00Z",
     "2024-03-01T24:00:00Z", "2024-03-01T10:00:00+24:00", "2024-03-01T10:00:00-23:59",
     "2024-03-01T10:00:00+0530", "2024-03-01T10:00Z", "20240301T100000Z", "0001-01-01T00:00:00Z",
     "1970-01-01T00:00:00Z", "1999-12-31T23:59:59.999Z", "2000-01-01T00:30:00+01:00",
     "2000-01-01T00:00:00Z", "2024-03-03T00:00:00Z", "yesterday", 1709287200]
)  # fmt: skip
_FIELDS = ["event_id", "customer_id", "type", "ts", "session_id", "channel", "category",
           "product_id", "price", "query", "page", "campaign_id", "message_id", "url",
           "order_id", "amount", "currency", "discount", "coupon_code", "items", "extra"]  # fmt: skip


@st.composite
def lines(draw: st.DrawFn, i: int = 0) -> bytes:
    """A valid event's line, or one with a few fields removed, retyped or out of range."""
    obj = draw(event_dicts(i, customer=draw(st.sampled_from(["c", "d", "c" * 128]))))
    for _ in range(draw(st.integers(0, 2))):
        name = draw(st.sampled_from(_FIELDS))
        change = draw(st.sampled_from(["drop", "value", "ts"]))
        if change == "drop":
            obj.pop(name, None)
        else:
            obj[name if change == "value" else "ts"] = draw(
                _ODD_TS if change == "ts" else _ODD_VALUES
            )
    return json.dumps(obj).encode()


def same(fields: dict[str, Any] | None, event: Any) -> bool:
    """Whether the fields of a line are the event model's (those set), with the same offset."""
    if fields is None or isinstance(event, Rejection):
        return fields is None and isinstance(event, Rejection)
    want = event.model_dump(exclude_unset=True)
    return fields == want and fields["ts"].utcoffset() == event.ts.utcoffset()


@settings(max_examples=500, deadline=None)
@given(lines())
def test_the_fields_path_accepts_what_the_model_path_does_with_the_same_fact(line: bytes) -> None:
    validator = Validator(LIMITS)
    fields, event = validator.fields_of_line(line), validator.validate_line(line, None)
    assert same(fields, event), (fields, event)
    if fields is not None:
        assert not isinstance(event, Rejection)
        assert fact_of_fields(fields) == fact_of(event)
        assert fact_of_fields(fields)[0] == event_time_ms(event.ts)


def test_every_malformed_kind_and_bench_bad_line_is_left_to_the_model_path() -> None:
    validator = Validator(LIMITS)
    for value in [malformed(i, NOW)[3] for i in range(34)] + list(_BAD):
        assert same(validator.fields_of_line(value), validator.validate_line(value, None)), value


def reference_feed(engine: Engine, lines: list[tuple[str, int, bytes]]) -> None:
    """`Engine.feed` by the model path (its definition before the fields path)."""
    validate = engine.ingest.validator.validate_line
    for source, line_no, raw in lines:
        event = validate(raw, engine.reference_ms)
        if isinstance(event, Rejection):
            engine._dead_letter(source, line_no, raw, event)
            continue
        t, effect, amount = fact_of(event)
        entry = (t, event.event_id, engine._seq, event.customer_id, effect, amount,
                 id_hash(event.event_id))  # fmt: skip
        engine._pending.append(entry)
        engine._seq += 1
    engine._counts["lines"] += len(lines)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 10**6).flatmap(lines), max_size=40), st.booleans())
def test_the_engine_queues_and_dead_letters_as_by_the_model_path(
    raws: list[bytes], future_check: bool
) -> None:
    fed = [("in.jsonl", n + 1, raw) for n, raw in enumerate(raws)]
    reference_ms = event_time_ms(NOW) if future_check else None
    mine, ref = (Engine(Ingest(LIMITS), reference_ms=reference_ms) for _ in range(2))
    mine.feed(fed)
    reference_feed(ref, fed)
    assert mine._pending == ref._pending
    assert mine._dead == ref._dead
    assert (mine._seq, mine._counts, mine._by_reason) == (ref._seq, ref._counts, ref._by_reason)


class _Checked(BaseModel):
    a: int

    @field_validator("a")
    @classmethod
    def _positive(cls, a: int) -> int:
        return a


class _Whole(BaseModel):
    a: int

    @model_validator(mode="after")
    def _whole(self) -> _Whole:
        return self


@pytest.mark.parametrize("model", [_Checked, _Whole])
def test_a_contract_with_validator_functions_is_not_copied(model: type[BaseModel]) -> None:
    with pytest.raises(TypeError, match="cannot be copied"):
        _as_typed_dicts(TypeAdapter(model).core_schema)
