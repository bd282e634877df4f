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
    }
    out: dict[str, dict[str, Any]] = {}
    for name, adapter in models.items():
        schema = adapter.json_schema(mode="validation")
        schema = {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": _BASE + name,
            **schema,
        }
        out[name] = schema
    return out


def render(schema: dict[str, Any]) -> str:
    """Canonical text of a schema file (sorted keys, two-space indent, trailing newline)."""
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
