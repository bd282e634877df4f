"""A strict pre-commit flush for Faust (needed on Apache Kafka as much as on the embedded broker).

faust-streaming 0.15.3 flushes the producer before committing offsets
(``faust/transport/consumer.py: Consumer._commit_offsets``), but not strictly:
``ProducerBuffer.flush_atmost`` returns once one message takes more than 0.1 s, ignores the
message being handed to aiokafka at that moment, and a failed delivery does not stop the commit.
A crash in that window loses table changelog records for events whose offsets were committed.
Measured with a 0.3 s send delay: offset 8 committed with 3 of 8 changelog records on the broker.

`install` makes the flush wait until the buffer is empty and nothing is in flight, and raise when
a send failed since the last commit, so that offset is not committed (the events are processed
again, and the per-customer offset marks skip what was already applied). Records produced past
Faust's buffer (`stream.adapters.outbox`: straight to the aiokafka producer) are covered the same
way: their futures are tracked by the `Deliveries` that `install` returns, and the flush waits
for every one and raises after a failed one.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import faust
from faust.exceptions import ProducerSendError
from faust.sensors import Sensor


class Deliveries:
    """Delivery futures sent past Faust's producer buffer that the next commit must wait for."""

    def __init__(self) -> None:
        self._pending: set[asyncio.Future[Any]] = set()
        self.errors: list[BaseException] = []

    def track(self, fut: asyncio.Future[Any]) -> None:
        """Wait for ``fut`` before the next offset commit; a failure stops that commit."""
        self._pending.add(fut)
        fut.add_done_callback(self._done)

    def _done(self, fut: asyncio.Future[Any]) -> None:
        self._pending.discard(fut)
        if fut.cancelled():
            self.errors.append(asyncio.CancelledError("delivery cancelled"))
        elif (exc := fut.exception()) is not None:
            self.errors.append(exc)

    @property
    def pending(self) -> int:
        """Deliveries not yet acknowledged (or failed)."""
        return len(self._pending)

    async def settle(self) -> None:
        """Return once every tracked delivery, including any tracked meanwhile, is done."""
        while self._pending:
            await asyncio.wait(list(self._pending))


class _SendErrors(Sensor):
    def __init__(self) -> None:
        super().__init__()
        self.errors: list[BaseException] = []

    def on_send_error(self, producer: Any, exc: BaseException, state: Any) -> None:
        self.errors.append(exc)


def install(app: faust.App) -> Deliveries:
    """Make ``app``'s pre-commit flush strict; call after ``faust.App(...)``. Returns the
    `Deliveries` that the flush also waits for."""
    if app.conf.producer_threaded:
        raise RuntimeError("strict commit supports producer_threaded=False only")
    producer: Any = app.producer  # private internals of the pinned faust-streaming 0.15.3
    buf: Any = producer.buffer
    buf._inflight = 0
    send_pending = buf._send_pending

    async def _send_pending(fut: Any) -> None:
        buf._inflight += 1
        try:
            await send_pending(fut)
        finally:
            buf._inflight -= 1

    async def strict_buffer_flush() -> None:
        while buf.size or buf._inflight:
            buf.message_sent.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(buf.message_sent.wait(), timeout=0.05)

    buf._send_pending = _send_pending  # read by the buffer's _handle_pending task when it starts
    buf.flush = strict_buffer_flush
    errors = _SendErrors()
    app.sensors.add(errors)
    deliveries = Deliveries()
    flush = producer.flush

    async def strict_flush() -> None:
        await flush()
        await deliveries.settle()
        failed = errors.errors + deliveries.errors
        if failed:
            errors.errors.clear()
            deliveries.errors.clear()
            raise ProducerSendError(f"send failed before commit: {failed[0]!r}") from failed[0]

    producer.flush = strict_flush
    return deliveries
