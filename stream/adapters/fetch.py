"""The worker's Faust consumer: a short fetch wait while input records are held back.

The `stream.adapters.align.Aligner` lets held records go only when Faust's fetch loop comes
round and hands it the next fetch (`EventTimeScheduler.iterate`), and when no new record arrives
that loop waits a whole second (``Consumer._drain_messages`` calls ``getmany(timeout=1.0)``).
So records that the trainer's progress had just let go waited up to a second for it. A paced
backlog whose records are all read (the demo test sends everything at once) then went one day of
event time a second: each day the trainer learns moves the horizon a day, and the records of the
next day waited for the loop (the demo test's sparse history, two years: 264 of 5,041 records
in its 90 s). While records are held, the loop waits `HELD_FETCH_WAIT_S` at most; a worker with
nothing held waits as Faust does.

`AlignedConsumer` is Faust's aiokafka consumer with that wait, `AlignedTransport` the transport
that builds it; `apply` makes an app use it (the embedded broker's transport derives from it:
`stream.adapters.tansu_compat`).
"""

from __future__ import annotations

from typing import Any

import faust
from faust.transport.drivers import aiokafka as fa

from stream.adapters.align import EventTimeScheduler

HELD_FETCH_WAIT_S = 0.05
"""How long the fetch loop waits for new records while the aligner holds some (seconds)."""


def fetch_wait(scheduler: Any, timeout: float) -> float:
    """The fetch loop's wait: ``timeout``, or at most `HELD_FETCH_WAIT_S` while ``scheduler``
    (the consumer's) holds input records back.

    >>> fetch_wait(None, 1.0)
    1.0
    """
    if isinstance(scheduler, EventTimeScheduler) and scheduler.aligner.held:
        return min(timeout, HELD_FETCH_WAIT_S)
    return timeout


class AlignedConsumer(fa.Consumer):
    """Faust's aiokafka consumer with the fetch wait of `fetch_wait`."""

    async def _wait_next_records(self, timeout: float) -> Any:
        """Faust's wait for the next fetch (once per fetch, inside
        ``faust.transport.consumer.Consumer.getmany``), for `fetch_wait` at most."""
        return await super()._wait_next_records(fetch_wait(self.scheduler, timeout))


class AlignedTransport(fa.Transport):
    """Transport whose consumer is `AlignedConsumer`."""

    Consumer = AlignedConsumer


def apply(app: faust.App, transport: type[fa.Transport] = AlignedTransport) -> faust.App:
    """Make ``app`` use ``transport`` (an `AlignedTransport`); call right after
    ``faust.App(...)``."""
    if app._transport is not None:
        raise RuntimeError("fetch.apply() must run before anything uses app.transport")
    app._new_transport = lambda: transport(app.conf.broker_consumer, app)  # type: ignore[method-assign]
    return app
