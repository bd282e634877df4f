"""`Assigner` steps outside the ingest agent, between its batches (under its lock).

* `catch_up`: a newer model reaches the partitions that have had no events since it arrived:
  their unassigned customers and members of dropped segments are re-scored now, not at their
  partition's next event.
* `step_paced`: a partition whose next records wait for the trainer steps its calendar on without
  them, to the days the worker's other partitions have reached (`stream.adapters.pace`).

Both run on a timer (`CATCH_UP_INTERVAL_S`); the paced steps also at each of the trainer's
progress reports and after each ingest batch (`Service.may_step`).
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from stream.adapters.segments import queue_step
from stream.core.assigner import Loader, Step

if TYPE_CHECKING:
    from stream.adapters.app import Service

log = logging.getLogger(__name__)

CATCH_UP_INTERVAL_S = 2.0
"""How often a worker checks for partitions a newer model has not reached yet, and for
partitions whose next records wait for the trainer (`step_paced`)."""


def register(svc: Service) -> None:
    """Attach the catch-up timer and the paced steps to ``svc.app``."""
    app = svc.app

    @app.timer(interval=CATCH_UP_INTERVAL_S)  # type: ignore[untyped-decorator]
    async def model_catch_up() -> None:
        await catch_up(svc)
        await step_paced(svc)

    async def paced_steps() -> None:  # as soon as they may, not only at the timer's tick
        while True:
            await svc.may_step.wait()
            svc.may_step.clear()
            await step_paced(svc)

    app.task(paced_steps)


async def catch_up(svc: Service) -> None:
    """Apply a newer model to partitions that have had no events since it arrived: their
    unassigned customers and members of dropped segments are re-scored now, not at their
    partition's next event (`Assigner.catch_up`). Never raises."""
    if not svc.assigner.stale():
        return
    async with svc.lock:
        for partition in svc.assigner.stale():

            def run(load: Loader, p: int = partition) -> Step:
                return svc.assigner.catch_up(p, load, _now_ms())

            await _step_between_batches(svc, partition, "model catch-up", run)


async def step_paced(svc: Service) -> None:
    """Step the calendars of the partitions whose next records wait for the trainer
    (`stream.adapters.align.Aligner.paced`) up to the days the worker's other partitions have
    reached (`stream.core.assigner.Assigner.laggards`): each day boundary passed re-evaluates
    the partition's quiet customers and sends its sample for the day, as a record there would.
    Never raises."""
    aligner = svc.aligner
    if aligner is None or not aligner.paced():  # (nothing is paced before the pacer has a horizon)
        return
    async with svc.lock:  # (what the aligner holds may have gone meanwhile: asked again)
        # Only up to the newest day another partition has passed: a gap in the events of the
        # whole worker is crossed as before (`stream.adapters.pace.Pacer.gap`).
        steps = svc.assigner.laggards(aligner.paced())
        for partition, t in steps.items():

            def run(load: Loader, p: int = partition, t: int = t) -> Step:
                return svc.assigner.step(p, {}, t, load, _now_ms())

            if await _step_between_batches(svc, partition, "stepping to the days reached", run):
                svc.metrics.paced_steps.inc()


async def _step_between_batches(
    svc: Service, partition: int, what: str, run: Callable[[Loader], Step]
) -> bool:
    """Run an `Assigner` step outside the ingest agent (``run(load)``, under ``svc.lock``),
    reading the partition's stored states under its last event, and write and send what it
    gives. Never raises: on failure the partition's calendar is released (the next batch
    adopts it again from the store, which the step did not write). True if it ran."""
    from stream.adapters.agents import load_state

    event = svc.last_event.get(partition)
    if event is None:  # no event of this worker's yet in the partition: nothing to read under
        return False
    try:
        step = run(functools.partial(load_state, svc, event=event))
        for cid, state in step.states.items():
            svc.outbox.put(svc.customers, event.message.partition, cid.encode(), state.encode())
        queue_step(svc, step)
        await svc.outbox.flush()
    except Exception:
        svc.outbox.discard()
        svc.assigner.release(partition)
        svc.metrics.agent_errors.labels("ingest").inc()
        log.exception("%s failed in partition %d", what, partition)
        return False
    return True


def _now_ms() -> int:
    return int(time.time() * 1000)
