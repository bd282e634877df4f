"""JSON Schemas of every contract, generated from the pydantic models.

``schemas/`` holds the committed output of `contract_schemas`; a test fails when they differ.

>>> sorted(contract_schemas())[:2]
['clickstream-event.schema.json', 'dead-letter.schema.json']
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import TypeAdapter

from stream.core.deadletter import DeadLetter
from stream.core.events import ClickEvent, EmailEvent, Event, PurchaseEvent
from stream.core.model import ENCODING_VERSION, SegmentModel
from stream.core.outputs import SegmentChange, SegmentEvent

_BASE = "https://microseg.dev/schemas/v1/"


def contract_schemas() -> dict[str, dict[str, Any]]:
    """File name → JSON Schema for every input and output contract."""
    models: dict[str, Any] = {
        "input-event.schema.json": TypeAdapter(Event),
        "clickstream-event.schema.json": TypeAdapter(ClickEvent),
        "email-event.schema.json": TypeAdapter(EmailEvent),
        "purchase-event.schema.json": TypeAdapter(PurchaseEvent),
        "dead-letter.schema.json": TypeAdapter(DeadLetter),
        "segment-change.schema.json": TypeAdapter(SegmentChange),
        "segment-event.schema.json": TypeAdapter(SegmentEvent),
        "segment-model.schema.json": TypeAdapter(SegmentModel),
    }
    out: dict[str, dict[str, Any]] = {}
    for name, adapter in models.items():
        schema = adapter.json_schema(mode="validation")
        if name == "segment-model.schema.json":
            schema = _as_encoded(schema)
        schema = {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": _BASE + name,
            **schema,
        }
        out[name] = schema
    return out


_MODEL_FIELDS = {
    "encoding": "version of this encoding (`stream.core.model.ENCODING_VERSION`); a reader "
    "refuses any other",
    "version": "the snapshot's version: 1, 2, … (a record with a higher one replaces the model)",
    "trained_at": "event time of the newest sample learnt (ms since the epoch)",
    "mean": "per coordinate of the clustering space (`stream.core.space`): the scaler's mean",
    "std": "per coordinate of the clustering space: the scaler's standard deviation",
    "segments": "the live segments; centroids in scaled clustering space",
    "next_segment_id": "the id the next new segment gets (ids are never reused)",
    "next_micro_id": "the id the next new micro-segment gets",
    "features": "names of the raw features the model expects, in order (`stream.core.features`)",
    "reshuffled": "previous-version segments merged or split away: their members move with "
    "reason model_update",
}


def _as_encoded(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema of `SegmentModel.encode`'s JSON: every field written, and the encoding."""
    props = {"encoding": {"const": ENCODING_VERSION, "type": "integer"}, **schema["properties"]}
    for name, text in _MODEL_FIELDS.items():
        props[name]["description"] = text
    for definition in schema["$defs"].values():
        definition["required"] = list(definition["properties"])
    return {**schema, "properties": props, "required": list(props)}


def render(schema: dict[str, Any]) -> str:
    """Canonical text of a schema file (sorted keys, two-space indent, trailing newline)."""
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
