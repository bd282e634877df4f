"""Dead-letter envelopes and the committed JSON Schemas."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from stream.core.deadletter import DeadLetter, Origin
from stream.core.model import MicroSegment, Segment, SegmentModel
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


def test_the_segment_model_schema_describes_what_the_trainer_publishes() -> None:
    schema = contract_schemas()["segment-model.schema.json"]
    seg = Segment(3, "Steady", [0.5, -1.0], [MicroSegment(7, [0.4, -1.1])], weight=0.4,
                  traits=[{"feature": "a", "z": 1.2}], value_tier="mid", action="keep")  # fmt: skip
    model = SegmentModel(version=2, trained_at=1_704_153_600_000, mean=[1.0, 2.0],
                         std=[0.5, 0.25], segments=[seg], next_segment_id=4, next_micro_id=8,
                         features=["a", "b"], reshuffled=[1])  # fmt: skip
    encoded = json.loads(model.encode())
    jsonschema.validate(encoded, schema)
    for broken in ({k: v for k, v in encoded.items() if k != "encoding"},
                   {**encoded, "encoding": encoded["encoding"] + 1},
                   {**encoded, "segments": [{"id": 3, "name": "x"}]}):  # fmt: skip
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(broken, schema)
