"""The worker's consumer waits briefly for new records while input records are held back
(`stream.adapters.fetch`)."""

from __future__ import annotations

import asyncio
from typing import Any

import faust
import pytest
from faust.transport.drivers import aiokafka as fa

from stream.adapters import fetch, tansu_compat
from stream.adapters.align import Aligner, EventTimeScheduler
from tests.unit.adapters.test_align import CLICK, MAIL, Consumer, rec


def _scheduler(held: bool) -> EventTimeScheduler:
    aligner = Aligner(Consumer({CLICK: 2, MAIL: 1}))  # e-mail has a record to read: clicks wait
    aligner.assign({CLICK, MAIL})
    aligner.take({CLICK: [rec(0, 5), rec(1, 6)]} if held else {})
    assert bool(aligner.held) is held
    return EventTimeScheduler(aligner, frozenset({"click", "mail"}))


def test_the_fetch_wait_is_short_only_while_records_are_held() -> None:
    assert fetch.fetch_wait(_scheduler(held=True), 1.0) == fetch.HELD_FETCH_WAIT_S
    assert fetch.fetch_wait(_scheduler(held=True), 0.01) == 0.01
    assert fetch.fetch_wait(_scheduler(held=False), 1.0) == 1.0
    assert fetch.fetch_wait(object(), 1.0) == 1.0  # Faust's own scheduler (before assignment)


def test_the_consumer_fetches_with_that_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    waits: list[float] = []

    async def faust_wait(self: Any, timeout: float) -> Any:
        waits.append(timeout)
        return {"tp": ["message"]}, None

    monkeypatch.setattr(fa.Consumer, "_wait_next_records", faust_wait)
    consumer: Any = object.__new__(fetch.AlignedConsumer)

    for held in (True, False):
        consumer.scheduler = _scheduler(held)
        assert asyncio.run(consumer._wait_next_records(1.0)) == ({"tp": ["message"]}, None)
    assert waits == [fetch.HELD_FETCH_WAIT_S, 1.0]


@pytest.mark.parametrize("embedded", [False, True])
def test_the_worker_app_uses_the_aligned_consumer(embedded: bool) -> None:
    app = faust.App("fetch-test", broker="kafka://127.0.0.1:1")
    (tansu_compat.apply if embedded else fetch.apply)(app)
    transport = app.transport  # built, not connected
    assert isinstance(transport, fetch.AlignedTransport)
    assert issubclass(transport.Consumer, fetch.AlignedConsumer)
    assert isinstance(transport, tansu_compat.TansuTransport) is embedded
    with pytest.raises(RuntimeError, match=r"before anything uses app\.transport"):
        fetch.apply(app)
