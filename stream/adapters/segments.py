"""Segmentation in the worker: the model feed, the trainer agent, scoring after each ingest batch.

docs/DESIGN.md "one model, many scorers":

* Every worker's ingest agent, after a batch's feature updates, runs the core `Assigner` for each
  input partition the batch touched: updated customers are scored, quiet ones re-evaluated when
  the partition's event-time watermark passes a day boundary, and the day's sample of feature
  vectors goes to the single-partition ``feature-samples`` topic (one report per partition and
  day, which the trainer's `Collator` puts back into the offline replay's order). Changes go to
  ``segment-changes`` (key: customer id).
* One ``trainer`` agent (the worker that owns ``feature-samples``' only partition) learns from
  the samples and publishes snapshots to the compacted ``segment-model`` topic and their
  lifecycle to ``segment-events``. A restarted or newly assigned trainer resumes from the newest
  snapshot (`Trainer.resume`).
* After each batch that learnt a day, the trainer reports its progress on ``segment-model``
  (`stream.adapters.model_feed.progress_record`): how far it has learnt, which paces the workers' input
  (`stream.adapters.pace`), and what a restarted or newly assigned trainer continues from
  (`Trainer.carry`: when the stream began and the population-activity test's counts).
* Every worker reads ``segment-model`` from the beginning, outside the consumer group
  (`stream.adapters.model_feed.ModelFeed`), and scores with the newest version it has.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from stream.adapters.model_feed import MODEL_KEY, PROGRESS_KEY, progress_record
from stream.core.assigner import Step
from stream.core.collate import SampleReport
from stream.core.drift import Detection
from stream.core.model import SegmentModel
from stream.core.segmentation import drift_events, lifecycle_events
from stream.core.state import CustomerState, StateDecodeError

if TYPE_CHECKING:
    from stream.adapters.app import Service

log = logging.getLogger(__name__)


def stored_customers(svc: Service, partition: int) -> Iterator[tuple[str, CustomerState]]:
    """The customers stored in the local table for one input partition."""
    store: Any = svc.customers.data
    if hasattr(store, "_dbs"):  # RocksDB: one database per partition (opened if it is not yet,
        # as `stream.adapters.tablestore` opens it: an assigned partition's is open after its
        # rebalance, but not one Faust skipped there; it reads as empty otherwise)
        items = store._visible_items(store._db_for_partition(partition))
    else:  # memory store: all partitions in one dict; keys are placed by the default partitioner
        from kafka.partitioner.default import murmur2

        n = svc.settings.partitions
        items = (
            (k, v) for k, v in store.data.items() if (murmur2(k) & 0x7FFFFFFF) % n == partition
        )
    for key, raw in items:
        try:
            yield key.decode(), CustomerState.decode(raw)
        except (StateDecodeError, UnicodeDecodeError):
            svc.metrics.agent_errors.labels("state_decode").inc()


def day_passer(
    svc: Service,
    events: Sequence[Any],
    load: Any,
    stepped: dict[str, tuple[Any, CustomerState]],
) -> Callable[[int, int, dict[str, CustomerState]], None]:
    """The ``before`` hook of `Ingest.process` for one batch: when an event is about to pass a
    day boundary of its partition, step the partition first (`Assigner.step`: the day's
    re-evaluations and its sample), with the states as the batch left them so far.

    So a day's sample holds every sampled customer as of the boundary, whatever else the batch
    holds, as the offline replay samples it: online and offline learn from the same vectors.
    States the step re-scored go into ``stepped`` (``load`` must return them from then on).
    """
    key_event = {e.message.key: e for e in events}
    by_partition = {e.message.partition: e for e in events}

    def before(partition: int, t: int, changed: dict[str, CustomerState]) -> None:
        event = by_partition[partition]
        _adopt(svc, partition, event)
        if not svc.assigner.passes_day(partition, t):
            return
        ups = _by_partition(changed, key_event).get(partition, {})
        step = _step(svc, partition, event, ups, t, load, int(time.time() * 1000))
        for cid, state in step.states.items():
            if cid not in changed:
                stepped[cid] = (event, state)

    return before


def score_batch(
    svc: Service,
    events: Sequence[Any],
    changed: dict[str, CustomerState],
    load: Any,
) -> dict[str, tuple[Any, CustomerState]]:
    """Run the `Assigner` for each partition the batch touched; queue changes and samples in
    ``svc.outbox``.

    ``load(customer_id, event)`` reads a stored state with ``event`` current. Returns every state
    to write back, with the event to write it under (its partition).
    """
    by_partition = {e.message.partition: e for e in events}
    svc.last_event.update(by_partition)
    updated = _by_partition(changed, {e.message.key: e for e in events})
    now_ms = int(time.time() * 1000)
    writes: dict[str, tuple[Any, CustomerState]] = {}
    for partition, ups in sorted(updated.items()):
        event = by_partition[partition]
        watermark = max(s.last_ts for s in ups.values())
        step = _step(svc, partition, event, ups, watermark, load, now_ms)
        for cid, state in step.states.items():
            writes[cid] = (event, state)
    return writes


def _by_partition(
    changed: dict[str, CustomerState], key_event: dict[Any, Any]
) -> dict[int, dict[str, CustomerState]]:
    """Changed states grouped by the partition of their customer's events."""
    out: dict[int, dict[str, CustomerState]] = {}
    for cid, state in changed.items():
        out.setdefault(key_event[cid.encode()].message.partition, {})[cid] = state
    return out


def owned_partitions(svc: Service) -> set[int]:
    """The input partitions actively assigned to this worker (its table partitions: the changelog
    is co-partitioned with the inputs)."""
    inputs = set(svc.stream_of_topic)
    return {tp.partition for tp in svc.app.assignor.assigned_actives() if tp.topic in inputs}


def adopt_assigned(svc: Service, partitions: set[int]) -> None:
    """Make the `Assigner`'s partitions those of the assignment: forget those no longer in it,
    and build each new one's calendar from its stored customers (`Assigner.adopt`).

    Run when the table has recovered after a rebalance (a restart, or partitions moved between
    workers), before the input resumes: the worker's customer gauges (`Assigner.customers`,
    `Assigner.segment_sizes`) then count every customer it holds from the moment it is ready.
    Adopted only at a partition's first batch, as before, they left out every partition no batch
    had reached since (0 after a restart). The scan of each new partition's store is the one its
    first batch made before; that batch now finds the partition adopted. A partition that fails
    is left out (counted and logged): its first batch adopts it, as before."""
    assigner = svc.assigner
    for partition in sorted(set(assigner.schedules) - partitions):
        assigner.release(partition)
        svc.last_event.pop(partition, None)
    for partition in sorted(partitions):
        if assigner.owns(partition):
            continue
        try:
            assigner.adopt(partition, stored_customers(svc, partition))
        except Exception:
            assigner.release(partition)
            svc.metrics.agent_errors.labels("ingest").inc()
            log.exception("partition %d not adopted at recovery; its first batch will", partition)


def _adopt(svc: Service, partition: int, event: Any) -> None:
    """Build a newly assigned partition's calendar from its stored customers."""
    if not svc.assigner.owns(partition):
        from stream.adapters.agents import as_current

        with as_current(event):
            svc.assigner.adopt(partition, stored_customers(svc, partition))


def _step(
    svc: Service,
    partition: int,
    event: Any,
    ups: dict[str, CustomerState],
    watermark: int,
    load: Any,
    emitted_at: int,
) -> Step:
    """`Assigner.step` for one partition (adopted first if new), reading stored states under
    ``event`` (``load(customer_id, event)``); its changes and samples are queued."""
    _adopt(svc, partition, event)

    def load_here(customer_id: str) -> CustomerState | None:
        return load(customer_id, event)  # type: ignore[no-any-return]

    step = svc.assigner.step(partition, ups, watermark, load_here, emitted_at=emitted_at)
    queue_step(svc, step)
    return step


def queue_step(svc: Service, step: Step) -> None:
    """Queue a step's segment changes and sample reports in ``svc.outbox``, and count them."""
    m = svc.metrics
    outbox = svc.outbox
    changes_topic = svc.settings.topic_segment_changes
    for change in step.changes:
        outbox.send(changes_topic, change.customer_id.encode(), change.model_dump_json().encode())
        before = str(change.previous.segment_id) if change.previous else "none"
        after = str(change.current.segment_id) if change.current else "none"
        m.segment_changes.labels(before, after, change.reason).inc()
    for report in step.reports:
        outbox.send(svc.settings.topic_feature_samples, str(report.partition).encode(),
                    report.encode())  # fmt: skip
        m.samples_sent.inc(len(report.samples))
        if report.touches is not None:
            m.organic_touches.labels("reported").inc(sum(report.touches))
    m.organic_touches.labels("late").inc(step.late_touches)
    m.rescored.inc(step.rescored)
    m.customer_drifts(svc.segmenter.customer_drifts)


def register(svc: Service) -> None:
    """Attach the trainer agent, the model feed and the rebalance and recovery hooks to
    ``svc.app``."""
    app = svc.app

    @app.agent(svc.feature_samples_topic, name="trainer", concurrency=1)
    async def trainer(stream: Any) -> None:
        await svc.model_feed.caught_up.wait()
        async for values in stream.take(
            svc.settings.batch_size, within=svc.settings.batch_window_s
        ):
            await train(svc, values)

    @app.agent(svc.erasure_topic, name="erasure", concurrency=1)
    async def erasure(stream: Any) -> None:
        async for event in stream.events():
            await erase(svc, event)

    async def model_feed() -> None:
        await svc.model_feed.run()

    app.task(model_feed)

    async def change_feed() -> None:
        await svc.change_feed.run()

    app.task(change_feed)

    async def release(sender: Any, revoked: Any, *, signal: Any = None, **kwargs: Any) -> None:
        inputs = set(svc.stream_of_topic)
        for tp in revoked:
            if tp.topic in inputs:
                svc.assigner.release(tp.partition)
                svc.last_event.pop(tp.partition, None)

    app.on_partitions_revoked.connect(release)  # type: ignore[arg-type]

    async def recovered() -> None:  # after every rebalance's table recovery, before input resumes
        async with svc.lock:  # no batch or between-batch step meanwhile
            adopt_assigned(svc, owned_partitions(svc))

    svc.customers.on_recover(recovered)


async def erase(svc: Service, event: Any) -> None:
    """Erase one customer (an ``erasures`` record): state deleted (a changelog tombstone), the
    partition's calendar forgets them, an ``erased`` change is emitted. Never raises.

    Holds ``svc.lock``: an ingest batch that loaded the customer's state cannot write it back
    after the erasure, and the outbox is used by one batch at a time."""
    async with svc.lock:
        await _erase(svc, event)


async def _erase(svc: Service, event: Any) -> None:
    from stream.adapters.agents import as_current

    key = event.message.key
    try:
        with as_current(event):
            raw = svc.customers.get(key)
        if raw is None:
            return  # already erased, or never seen: nothing to do (idempotent)
        svc.outbox.delete(svc.customers, event.message.partition, key)
        cid = key.decode()
        try:
            state: CustomerState | None = CustomerState.decode(raw)
        except StateDecodeError:
            state = None
        segment = state.segment_id if state is not None else 0
        svc.assigner.forget(event.message.partition, cid, segment)
        ts = event.message.timestamp
        at = int(ts * 1000) if ts else int(time.time() * 1000)
        change = svc.segmenter.erased(cid, state, at) if state is not None else None
        if change is not None:
            svc.outbox.send(svc.settings.topic_segment_changes, key,
                            change.model_dump_json().encode())  # fmt: skip
        await svc.outbox.flush()
        if change is not None:
            svc.metrics.segment_changes.labels(
                str(state.segment_id) if state else "none", "none", "erased"
            ).inc()
        svc.metrics.erasures.inc()
    except Exception:
        svc.outbox.discard()
        svc.metrics.agent_errors.labels("erasure").inc()
        log.exception("erasure failed in partition %d", event.message.partition)


async def train(svc: Service, values: Sequence[bytes]) -> None:
    """Learn a batch of samples; publish each model that comes due. Never raises."""
    tr, seg = svc.trainer, svc.segmenter
    if seg.model is not None and (tr.model is None or tr.model.version < seg.model.version):
        tr.resume(seg.model)  # another trainer published since: continue from its snapshot
    _take_over(svc)
    learnt = svc.collator.released
    for value in values:
        late = svc.collator.late
        try:
            due = svc.collator.add(SampleReport.decode(value))
        except ValueError:
            svc.metrics.agent_errors.labels("feature_sample").inc()
            log.error("unreadable feature-samples record skipped")
            continue
        if svc.collator.late > late:
            svc.metrics.trainer_late_samples.inc(svc.collator.late - late)
        days = svc.collator.take_days()
        for at, raw, learn in due:
            while days and days[0][0] <= at:  # a day's touches before its samples
                await _observe_day(svc, *days.pop(0))
            try:
                if not learn:  # a monitoring sample: drift detectors only
                    tr.watch_one(raw, at)
                    await send_drift(svc, tr.take_detections())
                    continue
                model = tr.learn_one(raw, at)
                svc.metrics.trainer_samples.inc()
                await send_drift(svc, tr.take_detections())
                if model is not None:
                    await publish(svc, model)
            except Exception:
                svc.metrics.agent_errors.labels("trainer").inc()
                log.exception("trainer failed on a sample; skipping it")
        for day, touches in days:  # days without samples
            await _observe_day(svc, day, touches)
    released = svc.collator.released
    if released is not None and released != learnt:
        record = progress_record(released, svc.collator.complete, tr.carry())
        await svc.segment_model_topic.send(key=PROGRESS_KEY, value=record)


def _take_over(svc: Service) -> None:
    """Continue from the newest progress report what this trainer is behind on (a restarted or
    newly assigned trainer: `Trainer.take_over`), so its drift detectors and population-activity
    test go on at once. Never raises."""
    carried, svc.model_feed.carried = svc.model_feed.carried, None
    if carried is None:
        return
    try:
        if svc.trainer.take_over(carried):
            log.info("trainer continues from the last progress report")
    except ValueError:
        svc.metrics.agent_errors.labels("segment_model").inc()
        log.error("unreadable trainer state in a progress record skipped")


async def _observe_day(svc: Service, day: int, touches: list[int] | None) -> None:
    """`Trainer.observe_day` for a released day. Never raises."""
    try:
        svc.trainer.observe_day(day, touches)
        await send_drift(svc, svc.trainer.take_detections())
    except Exception:
        svc.metrics.agent_errors.labels("trainer").inc()
        log.exception("trainer failed on a day's touches; skipping them")


async def send_drift(svc: Service, found: list[Detection]) -> None:
    """Send the trainer's drift detections to ``segment-events`` and count them."""
    if not found:
        return
    version = svc.segmenter.model.version if svc.segmenter.model else 0
    for d, e in zip(found, drift_events(found, version), strict=True):
        await svc.segment_events_topic.send(key=e.kind.encode(), value=e.model_dump_json().encode())
        svc.metrics.drift.labels(d.level, d.detector).inc()
        log.info("drift detected: %s %s (%s)", d.level, d.subject, d.statistic)


async def publish(svc: Service, model: SegmentModel) -> None:
    """Send a snapshot to ``segment-model`` and its lifecycle to ``segment-events``."""
    matching = svc.trainer.history[-1]["matching"] if svc.trainer.history else None
    await svc.segment_model_topic.send(key=MODEL_KEY, value=model.encode())
    for e in lifecycle_events(model, matching):
        await svc.segment_events_topic.send(key=e.kind.encode(), value=e.model_dump_json().encode())
    svc.segmenter.set_model(model)
    svc.metrics.model(model)
    log.info("published segment model v%d (%d segments)", model.version, len(model.segments))
