"""Dead-letter envelopes and the committed JSON Schemas."""

from __future__ import annotations

from pathlib import Path

import jsonschema

from stream.core.deadletter import DeadLetter, Origin
from stream.core.reasons import Reason
from stream.core.schemas import contract_schemas, render

SCHEMAS = Path(__file__).resolve().parents[3] / "schemas"


def test_oversized_values_are_truncated_but_described() -> None:
    value = b"x" * 5000
    dl = DeadLetter.build(value, None, Origin("t", 0, 1), Reason.OVERSIZED, "big", max_bytes=1000)
    assert dl.value_truncated and dl.value_size == 5000
    assert dl.original_value() == value[:1000]
    assert dl.key_b64 is None
    assert DeadLetter.model_validate_json(dl.to_bytes()) == dl


def test_committed_schemas_match_the_models() -> None:
    generated = contract_schemas()
    committed = {p.name for p in SCHEMAS.glob("*.schema.json")}
    assert committed == set(generated), "run `microseg schemas export`"
    for name, schema in generated.items():
        assert (SCHEMAS / name).read_text() == render(schema), (
            f"{name} is stale: run `microseg schemas export`"
        )


def test_schemas_accept_what_the_models_produce() -> None:
    schemas = contract_schemas()
    dl = DeadLetter.build(b"{", b"k", Origin("t", 1, 2, 3), Reason.NOT_JSON, "x")
    jsonschema.validate(dl.model_dump(mode="json"), schemas["dead-letter.schema.json"])
    event = {
        "event_id": "e",
        "customer_id": "c",
        "type": "email_click",
        "ts": "2024-01-01T00:00:00+00:00",
        "campaign_id": "k",
    }
    jsonschema.validate(event, schemas["input-event.schema.json"])
