"""The Faust application: topics, the customer table, agents and web views, wired from settings.

`build_app` makes everything at call time; importing this module does nothing.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import faust

from stream.adapters import commit, fetch, topics
from stream.adapters.metrics import Metrics
from stream.config import Settings, make_assigner, make_collator, make_trainer
from stream.core.assigner import Assigner
from stream.core.collate import Collator
from stream.core.events import Stream
from stream.core.features import DAY_MS
from stream.core.ingest import Ingest
from stream.core.trainer import Trainer
from stream.core.validation import Limits

if TYPE_CHECKING:
    from stream.adapters.align import Aligner
    from stream.adapters.census import ChangeFeed
    from stream.adapters.model_feed import ModelFeed
    from stream.adapters.outbox import Outbox


@dataclass
class Service:
    """Everything a running worker holds: the Faust app and what its agents and views share."""

    app: faust.App
    settings: Settings
    metrics: Metrics
    ingest: Ingest
    stream_of_topic: dict[str, Stream]
    input_topic: Any
    dead_letter_topic: Any
    customers: Any
    assigner: Assigner
    trainer: Trainer
    collator: Collator
    segment_changes_topic: Any
    segment_events_topic: Any
    segment_model_topic: Any
    feature_samples_topic: Any
    erasure_topic: Any
    model_feed: ModelFeed
    change_feed: ChangeFeed
    outbox: Outbox
    """Where the ingest, model catch-up and erasure agents put table rows and output records
    (produced in bulk at the end of each batch, `stream.adapters.outbox`)."""
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    """Held while the customer table is read and written (ingest batches, model catch-up,
    erasures); the outbox is empty whenever it is free."""
    last_event: dict[int, Any] = field(default_factory=dict)
    """Input partition → its newest event (the table's partition context for catch-up)."""
    aligner: Aligner | None = None
    """Releases the input topics' records in event-time order (`stream.adapters.align`)."""
    may_step: asyncio.Event = field(default_factory=asyncio.Event)
    """Set when partitions whose next records wait for the trainer may step their calendars on
    (`stream.adapters.catch_up.step_paced`): the trainer reported progress, or an ingest batch
    was processed (the last records let go may have been in it). Without it they stepped at the
    catch-up timer's next tick only, and a paced sparse history went a day per tick."""

    def trainer_progressed(self, learnt_until: int, complete: bool) -> None:
        """The trainer's progress report (`ModelFeed.on_progress`): to the pacer, and the
        partitions waiting for it may step on (`may_step`)."""
        if self.aligner is not None and self.aligner.pacer is not None:
            self.aligner.pacer.learnt_until(learnt_until, complete)
        self.may_step.set()

    @property
    def segmenter(self) -> Any:
        """The scorer shared by the ingest agent, the trainer and the model feed."""
        return self.assigner.segmenter


PRODUCER_LINGER_S = 0.005
"""How long the producer waits to fill a batch (Faust's default: 0)."""
PRODUCER_MAX_BATCH_BYTES = 1_048_576
"""Largest producer batch per partition (Faust's default: 16 KiB)."""


def faust_settings(settings: Settings, bootstrap: list[str], tansu: bool) -> dict[str, Any]:
    """The Faust configuration for these settings (production-safe defaults)."""
    conf: dict[str, Any] = {
        "broker": [f"kafka://{h}" for h in bootstrap],
        "store": settings.store,
        "datadir": str(settings.data_dir),
        "autodiscover": False,
        "web_bind": settings.web_bind,
        "web_port": settings.web_port,
        "web_host": _advertised_host(settings.web_bind),
        "web_router_enabled": False,
        "web_tables_enabled": settings.web_expose_tables,
        "web_graph_enabled": False,
        "web_stats_enabled": False,
        "web_metrics_enabled": False,
        "topic_partitions": settings.partitions,
        "topic_replication_factor": settings.replication_factor,
        "topic_allow_declare": True,
        "consumer_auto_offset_reset": "earliest",
        "processing_guarantee": "at_least_once",
        "producer_max_request_size": 4 * settings.max_message_bytes + 65_536,
        "consumer_max_fetch_size": 4 * settings.max_message_bytes + 65_536,
        "producer_acks": -1,
        # Batch what the agents produce: Faust's defaults (linger 0, 16 KiB batches) send
        # almost every record in its own produce request. 5 ms is Kafka's own producer
        # default since 4.0; 1 MiB holds a full ingest batch's records for one partition.
        "producer_linger": PRODUCER_LINGER_S,
        "producer_max_batch_size": PRODUCER_MAX_BATCH_BYTES,
        "broker_credentials": _credentials(settings),
        "logging_config": None,
    }
    if tansu:
        from stream.adapters import tansu_compat

        conf.update(tansu_compat.faust_settings())
    return conf


def _advertised_host(bind: str) -> str:
    """The host other workers use to reach this one (its hostname when bound to a wildcard)."""
    import socket

    return socket.gethostname() if bind in ("0.0.0.0", "::") else bind  # noqa: S104


def _credentials(settings: Settings) -> Any:
    """Faust broker credentials from the security settings (None for PLAINTEXT)."""
    import ssl

    protocol = settings.security_protocol
    if protocol == "PLAINTEXT":
        return None
    cafile = str(settings.ssl_cafile) if settings.ssl_cafile else None
    ctx = ssl.create_default_context(cafile=cafile) if protocol.endswith("SSL") else None
    if protocol == "SSL":
        return faust.SSLCredentials(ctx)
    password = settings.sasl_password.get_secret_value() if settings.sasl_password else ""
    return faust.SASLCredentials(
        username=settings.sasl_username,
        password=password,
        ssl_context=ctx,
        mechanism=settings.sasl_mechanism,
    )


def build_app(settings: Settings, bootstrap: list[str], tansu: bool = False) -> Service:
    """Create the Faust app with its topics, table, agents and views.

    ``tansu`` switches on the embedded broker's client workarounds (`stream.adapters.tansu_compat`).
    """
    app = faust.App(settings.app_id, **faust_settings(settings, bootstrap, tansu))
    if tansu:
        from stream.adapters import tansu_compat

        tansu_compat.apply(app)
    else:
        fetch.apply(app)
    deliveries = commit.install(app)
    inputs = settings.input_topics
    stream_of_topic = {inputs[s.value]: s for s in Stream}
    raw: dict[str, Any] = {
        "key_type": bytes,
        "value_type": bytes,
        "key_serializer": "raw",
        "value_serializer": "raw",
    }
    input_topic = app.topic(*inputs.values(), **raw)
    dead_letter_topic = app.topic(settings.topic_dead_letter, **raw)
    customers = app.Table(
        "customers",
        partitions=settings.partitions,
        key_type=bytes,  # Faust takes a table's serializers from these types: raw bytes
        value_type=bytes,
        extra_topic_configs={"cleanup.policy": "compact"},
    )
    segment_changes_topic = app.topic(settings.topic_segment_changes, **raw)
    segment_events_topic = app.topic(settings.topic_segment_events, **raw)
    segment_model_topic = app.topic(settings.topic_segment_model, **raw)
    feature_samples_topic = app.topic(settings.topic_feature_samples, **raw)
    from stream.adapters import agents, catch_up, segments, web
    from stream.adapters.census import ChangeFeed
    from stream.adapters.model_feed import ModelFeed
    from stream.adapters.outbox import Outbox

    metrics = Metrics()
    assigner = make_assigner(settings)
    service = Service(
        app=app,
        settings=settings,
        metrics=metrics,
        ingest=Ingest(
            Limits(
                max_message_bytes=settings.max_message_bytes,
                future_tolerance_ms=int(settings.future_tolerance_s * 1000),
            ),
            lateness_days=settings.lateness_days,
        ),
        stream_of_topic=stream_of_topic,
        input_topic=input_topic,
        dead_letter_topic=dead_letter_topic,
        customers=customers,
        assigner=assigner,
        trainer=make_trainer(settings),
        collator=make_collator(settings),
        segment_changes_topic=segment_changes_topic,
        segment_events_topic=segment_events_topic,
        segment_model_topic=segment_model_topic,
        feature_samples_topic=feature_samples_topic,
        erasure_topic=app.topic(topics.erasure_topic(settings), **raw),
        model_feed=ModelFeed(settings, assigner, metrics, bootstrap, tansu),
        change_feed=ChangeFeed(settings, metrics, bootstrap, tansu),
        outbox=Outbox(app, deliveries),
    )
    if settings.align_max_wait_s > 0:
        from stream.adapters import align
        from stream.adapters.pace import Pacer

        pacer = None
        if settings.pace_max_wait_s > 0:
            wide = (service.collator.max_lag_days + 2) * DAY_MS
            pacer = Pacer(2 * DAY_MS, wide, settings.pace_max_wait_s)
            service.model_feed.on_progress = service.trainer_progressed
        service.aligner = align.install(
            app, frozenset(inputs.values()), settings.align_max_wait_s, pacer,
            future_ms=int(settings.future_tolerance_s * 1000),
            reached_before=service.assigner.reached,
        )  # fmt: skip
    agents.register(service)
    segments.register(service)
    catch_up.register(service)
    web.register(service)
    return service
