"""The ``segment-model`` topic as every worker reads it: snapshots and the trainer's progress.

Two kinds of record share the compacted, single-partition topic:

* key `MODEL_KEY`: a segment model snapshot (`stream.core.model.SegmentModel.encode`), one per
  version the trainer publishes (`stream.adapters.segments.publish`);
* key `PROGRESS_KEY`: the trainer's progress report (`progress_record`), sent after each batch
  that learnt a day: how far it has learnt, which paces the workers' input
  (`stream.adapters.pace`), and what a restarted or newly assigned trainer continues from
  (`stream.core.trainer.Trainer.carry`).

Every worker reads the topic from the beginning, outside the consumer group (`ModelFeed`), and
scores with the newest version it has.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

from stream.core.model import SegmentModel
from stream.core.outputs import parse_rfc3339_ms, rfc3339_ms

if TYPE_CHECKING:
    from stream.adapters.metrics import Metrics
    from stream.config import Settings
    from stream.core.assigner import Assigner

log = logging.getLogger(__name__)

MODEL_KEY = b"model"
PROGRESS_KEY = b"progress"


class Progress(NamedTuple):
    """The trainer's progress report (`progress_record`)."""

    learnt_until: int
    """It has learnt every day ending at or before this event time (ms)."""
    complete: bool
    """Every partition had reported the last of those days."""
    trainer: Any
    """What a trainer taking over continues from (`stream.core.trainer.Trainer.carry`; None if
    the record has none)."""


def progress_record(learnt_until: int, complete: bool, trainer: Any = None) -> bytes:
    """The trainer's progress record on ``segment-model`` (key `PROGRESS_KEY`; `read_progress`
    reads it).

    >>> progress_record(1_704_153_600_000, True)
    b'{"learnt_until":"2024-01-02T00:00:00.000Z","complete":true,"trainer":null}'
    >>> read_progress(_)
    Progress(learnt_until=1704153600000, complete=True, trainer=None)
    """
    obj = {"learnt_until": rfc3339_ms(learnt_until), "complete": complete, "trainer": trainer}
    return json.dumps(obj, separators=(",", ":")).encode()


def read_progress(value: bytes) -> Progress:
    """A progress record; ValueError if it is not one."""
    try:
        obj = json.loads(value)
        complete = obj["complete"]
        if not isinstance(complete, bool):
            raise TypeError(complete)
        return Progress(parse_rfc3339_ms(obj["learnt_until"]), complete, obj.get("trainer"))
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise ValueError("not a progress record") from exc


class ModelFeed:
    """Reads ``segment-model`` from its beginning on every worker and keeps the newest snapshot.

    Not a consumer-group member (every worker needs every snapshot). ``caught_up`` is set once
    what the topic held at start-up has been read. The trainer's progress records go to
    ``on_progress`` (`stream.adapters.pace.Pacer.learnt_until`).
    """

    def __init__(
        self, settings: Settings, assigner: Assigner, metrics: Metrics, bootstrap: list[str],
        tansu: bool,
    ) -> None:  # fmt: skip
        self.settings = settings
        self.assigner = assigner
        self.metrics = metrics
        self.bootstrap = bootstrap
        self.tansu = tansu
        self.caught_up = asyncio.Event()
        self.on_progress: Callable[[int, bool], None] | None = None
        self.carried: Any = None
        """What the newest progress report carries for a trainer taking over
        (`stream.core.trainer.Trainer.carry`), until this worker's trainer has taken it."""
        self._learnt: int | None = None

    async def run(self) -> None:
        """Consume until cancelled."""
        from aiokafka import AIOKafkaConsumer
        from aiokafka.structs import TopicPartition

        from stream.adapters.topics import aiokafka_security, end_offset

        settings = self.settings
        tp = TopicPartition(settings.topic_segment_model, 0)
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=None,
            enable_auto_commit=False,
            fetch_max_wait_ms=100,
            max_partition_fetch_bytes=4 * settings.max_message_bytes + 65_536,
            **aiokafka_security(settings),
        )
        await consumer.start()
        try:
            consumer.assign([tp])
            await consumer.seek_to_beginning(tp)
            end = await end_offset(consumer, tp, self.bootstrap, self.tansu)
            if end <= 0:
                self.caught_up.set()
            while True:
                batch = await consumer.getmany(tp, timeout_ms=500)
                for record in batch.get(tp, []):
                    self._apply(record.key, record.value)
                if not self.caught_up.is_set() and await consumer.position(tp) >= end:
                    self.caught_up.set()
        finally:
            await consumer.stop()

    def _apply(self, key: bytes | None, value: bytes | None) -> None:
        if value is None:
            return
        if key == PROGRESS_KEY:
            try:
                progress = read_progress(value)
            except ValueError:
                self.metrics.agent_errors.labels("segment_model").inc()
                log.error("unreadable trainer progress record skipped")
                return
            if self._learnt is not None and progress.learnt_until <= self._learnt:
                return  # an older report (e.g. a restarted trainer re-learning a day)
            self._learnt = progress.learnt_until
            self.carried = progress.trainer
            self.metrics.trainer_progress(progress.learnt_until)
            if self.on_progress is not None:
                self.on_progress(progress.learnt_until, progress.complete)
            return
        try:
            model = SegmentModel.decode(value)
        except (ValueError, TypeError, KeyError):
            self.metrics.agent_errors.labels("segment_model").inc()
            log.error("unreadable segment-model record skipped")
            return
        seg = self.assigner.segmenter
        if seg.model is None or model.version > seg.model.version:
            seg.set_model(model)
            self.metrics.model(model)
            log.info("loaded segment model v%d", model.version)
