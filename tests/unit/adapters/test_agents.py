"""The ingest agent's failure path (`stream.adapters.agents._process`), without a broker.

A batch that raises is retried record by record and a record that still fails is dead-lettered
with its bytes, origin and ``processing_error``; before each retry the failed attempt's
partitions are released from the `Assigner`, so the retry re-reads them from the store and a day
boundary the failed attempt passed is passed, and sampled, again. ``_apply`` is replaced by a
stand-in that does what the real one does to the assigner (adopt the partition from the store,
step it when an event passes its day boundary, queue the day's sample) and can fail where a test
says.
"""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace
from typing import Any

import pytest

from stream.adapters import agents
from stream.adapters.metrics import Metrics
from stream.core.assigner import Assigner
from stream.core.collate import SampleReport
from stream.core.deadletter import DeadLetter
from stream.core.events import Stream
from stream.core.schedule import DAY_MS
from stream.core.segmentation import Segmenter
from stream.core.state import CustomerState

STORE = {  # what the partition's store holds before the batch
    f"c{i}": CustomerState(last_ts=3 * DAY_MS + 600_000, first_ts=0, t0=0) for i in range(5)
}


class Outbox:
    """Queues records until `flush` hands them on (``sent``), like `stream.adapters.outbox`."""

    def __init__(self) -> None:
        self.queued: list[tuple[str, bytes | None, bytes, int | None]] = []
        self.sent: list[tuple[str, bytes | None, bytes, int | None]] = []

    def send(self, topic: str, key: bytes | None, value: bytes, partition: int | None) -> None:
        self.queued.append((topic, key, value, partition))

    def discard(self) -> int:
        n = len(self.queued)
        self.queued.clear()
        return n

    async def flush(self) -> None:
        self.sent += self.queued
        self.queued.clear()


def _event(offset: int, t: int, poison: bool = False) -> Any:
    value = json.dumps({"t": t, "poison": poison}).encode()
    message = SimpleNamespace(topic="clickstream", partition=0, offset=offset, timestamp=1.0,
                              key=f"c{offset}".encode(), value=value)  # fmt: skip
    return SimpleNamespace(message=message)


def _service() -> Any:
    return SimpleNamespace(
        lock=asyncio.Lock(),
        outbox=Outbox(),
        metrics=Metrics(),
        assigner=Assigner(Segmenter(holdout_share=0.0), sample_rate=1.0),
        settings=SimpleNamespace(topic_dead_letter="dead-letter", max_message_bytes=1 << 20),
        stream_of_topic={"clickstream": Stream.CLICKSTREAM},
        store=dict(STORE),
        aligner=_Aligner(),
        may_step=asyncio.Event(),
    )


class _Aligner:
    """Records what the ingest agent tells the aligner it processed."""

    def __init__(self) -> None:
        self.calls: list[tuple[dict[Any, int], int | None]] = []

    def processed(self, offsets: dict[Any, int], valid_ms: int | None) -> None:
        self.calls.append((offsets, valid_ms))


def _fake_apply(fail_batches: bool) -> Any:
    async def apply(svc: Any, events: list[Any], records: list[Any]) -> int | None:
        for event in events:
            t, poison = json.loads(event.message.value).values()
            partition = event.message.partition
            if not svc.assigner.owns(partition):
                svc.assigner.adopt(partition, svc.store.items())
            if svc.assigner.passes_day(partition, t):
                step = svc.assigner.step(partition, {}, t, svc.store.get, emitted_at=0)
                for report in step.reports:
                    svc.outbox.send("feature-samples", None, report.encode(), 0)
            if poison:
                raise RuntimeError("cannot process this one")
        if fail_batches and len(events) > 1:
            raise RuntimeError("the batch failed after its day step")
        await svc.outbox.flush()
        times = []
        for event in events:  # the store is written at the end of a batch that succeeded
            t, _ = json.loads(event.message.value).values()
            svc.store[event.message.key.decode()] = CustomerState(last_ts=t, first_ts=0, t0=0)
            times.append(t)
        return max(times)  # the newest valid event's time

    return apply


@pytest.mark.parametrize("fail_batches", [False, True])
def test_a_failed_batch_is_retried_and_keeps_the_days_sample(
    monkeypatch: pytest.MonkeyPatch, fail_batches: bool
) -> None:
    monkeypatch.setattr(agents, "_apply", _fake_apply(fail_batches))
    svc = _service()
    after_midnight = 4 * DAY_MS + 1_800_000
    events = [_event(1, after_midnight), _event(2, after_midnight + 60_000, poison=True),
              _event(3, after_midnight + 120_000)]  # fmt: skip
    asyncio.run(agents.process_events(svc, events))

    reports = [SampleReport.decode(v) for topic, _, v, _ in svc.outbox.sent
               if topic == "feature-samples"]  # fmt: skip
    assert [(r.partition, r.day, len(r.samples)) for r in reports] == [(0, 4 * DAY_MS, 5)]
    [(_, key, value, _)] = [row for row in svc.outbox.sent if row[0] == "dead-letter"]
    dl = DeadLetter.model_validate_json(value)
    assert (key, dl.reason, dl.source.offset) == (b"c2", "processing_error", 2)
    assert dl.original_value() == events[1].message.value
    assert svc.outbox.queued == []
    sample = svc.metrics.registry.get_sample_value
    assert sample("microseg_agent_errors_total", {"agent": "ingest"}) == 1.0
    assert sample("microseg_dead_letters_total",
                  {"stream": "clickstream", "reason": "processing_error"}) == 1.0  # fmt: skip
    # Every record of the batch was handled, the failed one included: none is in flight
    # (`Aligner.paced`).
    # (the newest valid time from the records retried one by one: the failed one's is not valid)
    assert svc.aligner.calls == [({("clickstream", 0): 3}, after_midnight + 120_000)]
    assert svc.may_step.is_set()  # partitions may step on now (`step_paced`)


def test_without_the_rewind_the_retry_would_lose_the_day(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same failure with `_rewind` disabled: the day boundary stays passed, so no retry
    samples it (what the rewind is for)."""
    monkeypatch.setattr(agents, "_apply", _fake_apply(True))
    monkeypatch.setattr(agents, "_rewind", lambda svc, events: None)
    svc = _service()
    events = [_event(1, 4 * DAY_MS + 1_800_000), _event(3, 4 * DAY_MS + 1_900_000)]
    asyncio.run(agents.process_events(svc, events))
    assert [topic for topic, *_ in svc.outbox.sent] == []
