"""Deterministic valid and malformed contract events for tests."""

from __future__ import annotations

import json
import os
import random
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, get_args

import pytest

from stream.config import Settings
from stream.core.events import ClickType, EmailType
from stream.core.reasons import Reason

BASE = datetime(2024, 3, 1, tzinfo=UTC)
CLICK_TYPES = list(get_args(ClickType))
EMAIL_TYPES = list(get_args(EmailType))


def is_setting(name: str) -> bool:
    """Whether an environment variable is one of microseg's (``MICROSEG_*``, in any case, as
    `Settings` reads them): a developer's shell must not change a test."""
    return name.upper().startswith("MICROSEG_")


def without_settings(environ: Mapping[str, str]) -> dict[str, str]:
    """``environ`` without microseg's variables (`is_setting`), for a subprocess."""
    return {k: v for k, v in environ.items() if not is_setting(k)}


def clear_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Remove microseg's variables (`is_setting`) from this test's environment."""
    for name in list(os.environ):
        if is_setting(name):
            monkeypatch.delenv(name)


def bare_settings(**overrides: Any) -> Settings:
    """`Settings.load` with ``overrides``, and with none of the environment's ``MICROSEG_``
    variables."""
    with pytest.MonkeyPatch.context() as mp:
        clear_settings(mp)
        return Settings.load(**overrides)


def valid_event(i: int, customer: str, stream: str, rng: random.Random) -> dict[str, Any]:
    """One valid event of ``stream`` for ``customer``; ``i`` makes the event id unique."""
    ts = (BASE + timedelta(minutes=i)).isoformat()
    base = {"event_id": f"ev-{i}", "customer_id": customer, "ts": ts}
    if stream == "clickstream":
        return {
            **base,
            "type": rng.choice(CLICK_TYPES),
            "session_id": f"s-{i // 7}",
            "channel": rng.choice(["web", "mobile", "app"]),
            "price": round(rng.uniform(1, 90), 2),
            "category": rng.choice(["shoes", "books", "toys"]),
        }
    if stream == "email":
        return {**base, "type": rng.choice(EMAIL_TYPES), "campaign_id": f"camp-{i % 5}"}
    return {
        **base,
        "type": rng.choice(["purchase", "refund"]),
        "order_id": f"o-{i}",
        "amount": round(rng.uniform(5, 300), 2),
        "currency": "EUR",
        "discount": 0.0,
        "items": [{"product_id": "p1", "quantity": 2, "unit_price": 3.5}],
    }


def valid_stream(n: int, customers: int, seed: int = 7) -> list[tuple[str, str, dict[str, Any]]]:
    """``n`` valid events as (stream, customer, event), spread over ``customers`` customers."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        customer = f"cust-{rng.randrange(customers):05d}"
        stream = rng.choice(["clickstream", "email", "purchases"])
        out.append((stream, customer, valid_event(i, customer, stream, rng)))
    return out


def malformed(i: int, now: datetime) -> tuple[Reason, str, bytes | None, bytes]:
    """The ``i``-th malformed record: (expected reason, stream topic role, key, value).

    Cycles through every reason code; the first of each kind is the most extreme one
    (binary garbage, a 2 MB message).
    """
    rng = random.Random(i)
    cid = f"bad-{i}"
    key = cid.encode()
    ok = {"event_id": f"bad-ev-{i}", "customer_id": cid, "ts": "2024-03-01T00:00:00+00:00"}
    kinds = [
        (Reason.NOT_JSON, "clickstream", key, bytes([0xFF, 0xFE, 0x00]) + rng.randbytes(64)),
        (Reason.NOT_JSON, "email", key, b'{"event_id": "x", '),
        (Reason.NOT_OBJECT, "purchases", key, b"[1, 2, 3]"),
        (Reason.NOT_OBJECT, "clickstream", key, b'"just a string"'),
        (Reason.UNKNOWN_TYPE, "clickstream", key, _j({**ok, "type": "teleport"})),
        (Reason.MISSING_FIELD, "email", key, _j({**ok, "type": "email_open"})),
        (
            Reason.MISSING_FIELD,
            "clickstream",
            key,
            _j({"customer_id": cid, "ts": ok["ts"], "type": "page_view"}),
        ),
        (
            Reason.WRONG_TYPE,
            "purchases",
            key,
            _j({**ok, "type": "purchase", "order_id": "o", "amount": "12.50"}),
        ),
        (
            Reason.INVALID_VALUE,
            "clickstream",
            key,
            _j({**ok, "type": "page_view", "channel": "tv"}),
        ),
        (
            Reason.BAD_TIMESTAMP,
            "clickstream",
            key,
            _j({**ok, "type": "page_view", "ts": "yesterday"}),
        ),
        (
            Reason.BAD_TIMESTAMP,
            "clickstream",
            key,
            _j({**ok, "type": "page_view", "ts": "2024-03-01T10:00:00"}),
        ),
        (
            Reason.FUTURE_TIMESTAMP,
            "clickstream",
            key,
            _j({**ok, "type": "page_view", "ts": (now + timedelta(days=2)).isoformat()}),
        ),
        (
            Reason.NEGATIVE_AMOUNT,
            "purchases",
            key,
            _j({**ok, "type": "purchase", "order_id": "o", "amount": -3.0}),
        ),
        (
            Reason.OVERSIZED,
            "clickstream",
            key,
            _j({**ok, "type": "page_view", "page": "x" * 1000, "pad": "y" * 2_000_000}),
        ),
        (Reason.MISSING_KEY, "clickstream", None, _j({**ok, "type": "page_view"})),
        (
            Reason.KEY_MISMATCH,
            "email",
            b"someone-else",
            _j({**ok, "type": "email_sent", "campaign_id": "c"}),
        ),
        (
            Reason.WRONG_STREAM,
            "email",
            key,
            _j({**ok, "type": "purchase", "order_id": "o", "amount": 3.0}),
        ),
    ]
    reason, role, k, value = kinds[i % len(kinds)]
    if reason is Reason.OVERSIZED and i >= len(kinds):
        value = _j({**ok, "type": "page_view", "pad": "y" * 1_100_000})  # just over 1 MiB
    return reason, role, k, value


def _j(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj).encode()


REASONS_COVERED = {Reason(r) for r in Reason} - {Reason.PROCESSING_ERROR}
