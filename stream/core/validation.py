"""Decode and validate one raw Kafka record into a contract event or a rejection.

The function is pure: the "now" for the future-timestamp check is the record's own timestamp
(the producer's create time), passed in by the caller, never the clock.

>>> v = Validator(Limits(max_message_bytes=64))
>>> v.validate(b'{"type": "fax"}', b"c1", stream=Stream.EMAIL).reason
<Reason.UNKNOWN_TYPE: 'unknown_type'>
>>> v.validate(b"x" * 65, b"c1").reason
<Reason.OVERSIZED: 'oversized'>
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import ConfigDict, GetPydanticSchema, TypeAdapter, ValidationError

from stream.core.events import (
    EVENT_ADAPTER,
    STREAM_OF_TYPE,
    ClickEvent,
    EmailEvent,
    Event,
    PurchaseEvent,
    Stream,
    event_time_ms,
)
from stream.core.reasons import Reason

AnyEvent = ClickEvent | EmailEvent | PurchaseEvent

# The contract's validator (`EVENT_ADAPTER`'s, the same models), caching only the JSON keys: most
# string values (ids, timestamps) are unique, so looking each up in pydantic's string cache first
# only costs time (≈ 10 % of validating a line). It changes which str objects come back, not
# their values.
_EVENT_VALIDATOR = TypeAdapter(Event, config=ConfigDict(cache_strings="keys")).validator


# The schema kinds `_as_typed_dicts` copies faithfully: no Python validator functions.
_COPYABLE = frozenset(
    {"any", "none", "bool", "int", "float", "str", "bytes", "date", "time", "datetime",
     "timedelta", "literal", "enum", "list", "tuple", "set", "frozenset", "dict", "nullable",
     "default", "union", "tagged-union", "definitions", "definition-ref", "model",
     "model-fields", "model-field"}
)  # fmt: skip


def _as_typed_dicts(schema: Any, definitions: dict[str, Any] | None = None) -> Any:
    """A copy of a pydantic-core schema with every model as a typed dict of its fields.

    Each field keeps its own schema and each model its config (strict, extra fields ignored), so
    the same JSON is accepted and rejected, with the same values; only no model instance is built
    (≈ 0.7 µs a line less) and a field with a default is left out of the dict when absent. The
    models' definitions are inlined (the contract has no recursive model).
    """
    defs = definitions or {}
    if isinstance(schema, list):
        return [_as_typed_dicts(s, defs) for s in schema]
    if not isinstance(schema, dict):
        return schema
    kind = schema.get("type")
    if isinstance(kind, str) and not _copyable(kind, schema):
        raise TypeError(f"a {kind!r} schema cannot be copied as a typed dict")
    if kind == "definitions":
        for d in schema["definitions"]:
            defs = {**defs, d["ref"]: _as_typed_dicts(d, defs)}
        return _as_typed_dicts(schema["schema"], defs)
    if kind == "definition-ref":
        return defs[schema["schema_ref"]]
    if kind == "model" and schema["schema"]["type"] == "model-fields":
        fields = {}
        for name, f in schema["schema"]["fields"].items():
            inner = _as_typed_dicts(f["schema"], defs)
            optional = inner["type"] == "default"
            fields[name] = {
                "type": "typed-dict-field",
                "schema": inner["schema"] if optional else inner,
                "required": not optional,
            }
        return {"type": "typed-dict", "fields": fields, "config": schema["config"]}
    return {k: _as_typed_dicts(v, defs) for k, v in schema.items() if k != "ref"}


def _copyable(kind: str, schema: dict[str, Any]) -> bool:
    """Whether `_as_typed_dicts` copies a schema of this kind faithfully: not a Python validator
    function or a model hook (they would see a dict instead of a model, or be lost)."""
    hooks = ("custom_init", "post_init", "root_model")
    return kind in _COPYABLE and not (kind == "model" and any(schema.get(h) for h in hooks))


# The same contract, giving a valid line's fields as a dict (see `Validator.fields_of_line`).
_FIELDS_VALIDATOR = TypeAdapter(
    Annotated[
        dict[str, Any],
        GetPydanticSchema(lambda _type, _handler: _as_typed_dicts(EVENT_ADAPTER.core_schema)),
    ],
    config=ConfigDict(cache_strings="keys"),
).validator

_MONEY_FIELDS = frozenset({"amount", "price", "discount", "unit_price"})
# When pydantic reports several problems, the most fundamental one names the event's fault.
_PRIORITY = (
    Reason.NOT_JSON,
    Reason.NOT_OBJECT,
    Reason.UNKNOWN_TYPE,
    Reason.MISSING_FIELD,
    Reason.WRONG_TYPE,
    Reason.BAD_TIMESTAMP,
    Reason.NEGATIVE_AMOUNT,
    Reason.INVALID_VALUE,
)


@dataclass(frozen=True, slots=True)
class Limits:
    """Validation limits.

    Parameters
    ----------
    max_message_bytes
        Larger messages are rejected as ``oversized`` before they are parsed.
    future_tolerance_ms
        An event whose ``ts`` is later than the record's timestamp plus this is rejected as
        ``future_timestamp``.
    """

    max_message_bytes: int = 1_048_576
    future_tolerance_ms: int = 600_000


@dataclass(frozen=True, slots=True)
class Rejection:
    """A bad event: a reason code and a human-readable detail (field names, never values)."""

    reason: Reason
    detail: str


class Validator:
    """Turns raw records into events or rejections.

    Parameters
    ----------
    limits
        The size and time limits to apply.
    """

    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        # The core validator itself: `TypeAdapter.validate_json` only forwards its defaults.
        self._validate_json = _EVENT_VALIDATOR.validate_json
        self._fields_json = _FIELDS_VALIDATOR.validate_json

    def validate(
        self,
        value: bytes | None,
        key: bytes | None,
        *,
        stream: Stream | None = None,
        reference_ms: int | None = None,
        keyed: bool = True,
    ) -> AnyEvent | Rejection:
        """Validate one record.

        Parameters
        ----------
        value
            The message bytes.
        key
            The message key; it must equal ``customer_id`` (UTF-8).
        stream
            The stream whose topic the record came from, or None when unknown (files).
        reference_ms
            The record's timestamp in ms since the epoch, for the future-timestamp check;
            None skips the check.
        keyed
            False for records without a Kafka key (lines of a file): the key is not checked.
        """
        if value is None:
            return Rejection(Reason.NOT_JSON, "message has no value (null)")
        event = self.validate_line(value, None)  # size and contract; the checks below add to it
        if isinstance(event, Rejection):
            return event
        if stream is not None and STREAM_OF_TYPE[event.type] is not stream:
            return Rejection(
                Reason.WRONG_STREAM,
                f"type {event.type!r} belongs to {STREAM_OF_TYPE[event.type].value}, "
                f"not {stream.value}",
            )
        if keyed:
            if key is None:
                return Rejection(Reason.MISSING_KEY, "message key is absent; expected customer_id")
            if key != event.customer_id.encode():
                return Rejection(Reason.KEY_MISMATCH, "message key differs from customer_id")
        if reference_ms is not None:
            return self._not_in_future(event, reference_ms)
        return event

    def validate_line(self, value: bytes, reference_ms: int | None) -> AnyEvent | Rejection:
        """`validate` of a line of a file: no key, no stream (the offline engine's hot loop).

        The same as ``validate(value, None, reference_ms=reference_ms, keyed=False)``.
        """
        if len(value) > self.limits.max_message_bytes:
            return self._oversized(value)
        try:
            event: AnyEvent = self._validate_json(value)
        except ValidationError as exc:
            return _rejection_from(exc)
        if reference_ms is not None:
            return self._not_in_future(event, reference_ms)
        return event

    def fields_of_line(self, value: bytes) -> dict[str, Any] | None:
        """The fields of a line that passes the size limit and the contract, or None.

        A lighter `validate_line` without a reference time, for the offline engine: the dict
        holds what the event model would (its ``__dict__``), but only the fields present in the
        line, and items as dicts. None means `validate_line` rejects the line: call it for the
        rejection (this path neither words nor ranks the errors).

        >>> Validator().fields_of_line(b'{"event_id": "e", "customer_id": "c", "type": '
        ...                            b'"email_open", "ts": "2024-05-01T10:00:00Z", '
        ...                            b'"campaign_id": "k", "extra": 1}')["campaign_id"]
        'k'
        >>> Validator().fields_of_line(b'{"type": "email_open"}') is None
        True
        """
        if len(value) > self.limits.max_message_bytes:
            return None
        try:
            fields: dict[str, Any] = self._fields_json(value)
        except ValidationError:
            return None
        return fields

    def _oversized(self, value: bytes) -> Rejection:
        return Rejection(
            Reason.OVERSIZED,
            f"message is {len(value)} bytes, limit {self.limits.max_message_bytes}",
        )

    def _not_in_future(self, event: AnyEvent, reference_ms: int) -> AnyEvent | Rejection:
        ahead = event_time_ms(event.ts) - reference_ms
        if ahead > self.limits.future_tolerance_ms:
            return Rejection(
                Reason.FUTURE_TIMESTAMP,
                f"ts is {ahead} ms after the record time, "
                f"tolerance {self.limits.future_tolerance_ms} ms",
            )
        return event


def _classify(error: Any) -> Reason:
    kind: str = error["type"]
    loc: tuple[Any, ...] = error["loc"]
    field = next((p for p in reversed(loc) if isinstance(p, str)), "")
    if kind == "json_invalid":
        return Reason.NOT_JSON
    if kind in ("dict_type", "model_type", "model_attributes_type") and len(loc) == 0:
        return Reason.NOT_OBJECT
    if kind == "union_tag_invalid":
        return Reason.UNKNOWN_TYPE
    if kind in ("missing", "union_tag_not_found") or error.get("input", 0) is None:
        return Reason.MISSING_FIELD
    if field == "ts" and len(loc) == 2:
        return Reason.BAD_TIMESTAMP
    if kind == "greater_than_equal" and field in _MONEY_FIELDS:
        return Reason.NEGATIVE_AMOUNT
    if kind.endswith("_type") or kind in ("list_type", "is_instance_of"):
        return Reason.WRONG_TYPE
    return Reason.INVALID_VALUE


def _rejection_from(exc: ValidationError) -> Rejection:
    errors = exc.errors(include_url=False, include_context=False)
    ranked = sorted(((_PRIORITY.index(_classify(e)), i) for i, e in enumerate(errors)))
    first = errors[ranked[0][1]]
    reason = _PRIORITY[ranked[0][0]]
    where = ".".join(str(p) for p in first["loc"][1:]) or "<message>"
    return Rejection(reason, f"{where}: {_without_value(first)}")


def _without_value(error: Any) -> str:
    """Pydantic's message, without the rejected value: a detail names fields, never values (a
    ``type`` holding an e-mail address was copied into the dead letter's detail whole)."""
    if error["type"] == "union_tag_invalid":
        return "type is not an event type of this contract"
    msg: str = error["msg"]
    value = error.get("input")
    if isinstance(value, str) and value and f"'{value}'" in msg:
        msg = msg.replace(f"'{value}'", "<value>")
    return msg
