"""Baseline Faust apps the bench compares our worker with, on the same input topics.

Both use exactly our app's Faust settings (`stream.adapters.app.faust_settings`: one agent with
``concurrency=1``, loopback web, the embedded broker's client workarounds from
`stream.adapters.tansu_compat` when ``tansu``), the same raw serializers and the same multi-topic
subscription to the three input topics; only the agent body differs:

* ``count``: consumes each record and counts it — the floor any Faust agent pays;
* ``table_send``: one table write (the record's value under its key, in a Table like our
  ``customers`` one, same store) and one send (to the segment-changes topic) per record — the
  naive per-event way to build what our worker does.

Neither installs our strict commit flush (`stream.adapters.commit`): they are plain Faust.
"""

from __future__ import annotations

from typing import Any, Literal

import faust

from stream.adapters.app import faust_settings
from stream.config import Settings

Kind = Literal["count", "table_send"]
KINDS: tuple[Kind, ...] = ("count", "table_send")
_RAW: dict[str, Any] = {
    "key_type": bytes,
    "value_type": bytes,
    "key_serializer": "raw",
    "value_serializer": "raw",
}


def build_baseline(kind: Kind, settings: Settings, bootstrap: list[str], tansu: bool) -> faust.App:
    """The ``kind`` baseline app for these settings (app id = consumer group from ``settings``)."""
    app = faust.App(settings.app_id, **faust_settings(settings, bootstrap, tansu))
    if tansu:
        from stream.adapters import tansu_compat

        tansu_compat.apply(app)
    source = app.topic(*settings.input_topics.values(), **_RAW)
    if kind == "count":
        _count_agent(app, source)
    elif kind == "table_send":
        _table_send_agent(app, source, settings)
    else:
        raise ValueError(f"unknown baseline {kind!r}")
    return app


def _count_agent(app: faust.App, source: Any) -> None:
    seen = [0]

    @app.agent(source, name="count", concurrency=1)
    async def count(stream: Any) -> None:
        async for _ in stream:
            seen[0] += 1


def _table_send_agent(app: faust.App, source: Any, settings: Settings) -> None:
    table = app.Table(
        "latest",
        partitions=settings.partitions,
        key_type=bytes,
        value_type=bytes,
        extra_topic_configs={"cleanup.policy": "compact"},
    )
    sink = app.topic(settings.topic_segment_changes, **_RAW)

    @app.agent(source, name="table_send", concurrency=1)
    async def table_send(stream: Any) -> None:
        async for event in stream.events():
            key = event.key or b""
            table[key] = event.value
            await sink.send(key=key, value=event.value)
