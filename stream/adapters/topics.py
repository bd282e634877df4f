"""Topic set-up with kafka-python's admin client.

Input topics are co-partitioned (same partition count) so one worker owns all of a customer's
events. Existing topics are accepted when their partition count is what the settings say;
otherwise start-up fails and says so (partitions cannot be added safely: keys would move).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

from stream.config import Settings
from stream.errors import BrokerError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TopicSpec:
    """A topic the service needs."""

    name: str
    partitions: int
    config: dict[str, str]


def kafka_python_security(settings: Settings) -> dict[str, Any]:
    """Security keyword arguments for kafka-python clients, from the settings."""
    kw: dict[str, Any] = {"security_protocol": settings.security_protocol}
    if settings.sasl_mechanism:
        kw["sasl_mechanism"] = settings.sasl_mechanism
        kw["sasl_plain_username"] = settings.sasl_username
        kw["sasl_plain_password"] = (
            settings.sasl_password.get_secret_value() if settings.sasl_password else None
        )
    if settings.ssl_cafile:
        kw["ssl_cafile"] = str(settings.ssl_cafile)
    return kw


def aiokafka_security(settings: Settings) -> dict[str, Any]:
    """Security keyword arguments for aiokafka clients, from the settings."""
    import ssl

    protocol = settings.security_protocol
    kw: dict[str, Any] = {"security_protocol": protocol}
    if protocol.endswith("SSL"):
        cafile = str(settings.ssl_cafile) if settings.ssl_cafile else None
        kw["ssl_context"] = ssl.create_default_context(cafile=cafile)
    if settings.sasl_mechanism:
        kw["sasl_mechanism"] = settings.sasl_mechanism
        kw["sasl_plain_username"] = settings.sasl_username
        kw["sasl_plain_password"] = (
            settings.sasl_password.get_secret_value() if settings.sasl_password else None
        )
    return kw


def required_topics(settings: Settings) -> list[TopicSpec]:
    """Every topic the service reads or writes, with partition counts and configs."""
    p = settings.partitions
    big = str(max(4 * settings.max_message_bytes, 1_048_576))
    compact = {"cleanup.policy": "compact"}
    return [
        TopicSpec(settings.topic_clickstream, p, {"max.message.bytes": big}),
        TopicSpec(settings.topic_email, p, {"max.message.bytes": big}),
        TopicSpec(settings.topic_purchases, p, {"max.message.bytes": big}),
        TopicSpec(settings.topic_dead_letter, p, {"max.message.bytes": big}),
        TopicSpec(settings.topic_segment_changes, p, {}),
        TopicSpec(settings.topic_segment_events, 1, {}),
        TopicSpec(settings.topic_segment_model, 1, compact),
        TopicSpec(settings.topic_feature_samples, 1, {}),
        TopicSpec(erasure_topic(settings), p, {}),
        TopicSpec(census_topic(settings), 1, {**compact, "max.message.bytes": big}),
    ]


def erasure_topic(settings: Settings) -> str:
    """The internal topic of erasure requests (key: customer id; co-partitioned with inputs)."""
    return f"{settings.app_id}-erasures"


async def end_offset(consumer: Any, tp: Any, bootstrap: list[str], tansu: bool) -> int:
    """Where ``tp`` ends, for a reader outside the group that must know when it has read all of
    it: the aiokafka ``consumer``'s answer, or on the embedded broker (whose ListOffsets falls
    short) `stream.adapters.tansu_compat.true_end_offsets`."""
    if tansu:
        from stream.adapters.tansu_compat import true_end_offsets

        return (await true_end_offsets(bootstrap, [tp]))[tp]
    return int((await consumer.end_offsets([tp]))[tp])


def census_topic(settings: Settings) -> str:
    """The internal, compacted topic of the segment-size checkpoints (`stream.adapters.census`)."""
    return f"{settings.app_id}-census"


class _LoggedErrors(logging.Handler):
    """Keeps the exceptions kafka-python logs (it logs each failed bootstrap connection, an
    `UnsupportedSaslMechanismError` say, then raises a bare "Unable to bootstrap")."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.errors: list[BaseException] = []

    def emit(self, record: logging.LogRecord) -> None:
        args = record.args if isinstance(record.args, tuple) else ()
        for arg in (*args, record.exc_info[1] if record.exc_info else None):
            if isinstance(arg, BaseException):
                self.errors.append(arg)


@contextmanager
def reaching(bootstrap: list[str]) -> Iterator[None]:
    """Around the construction of a kafka-python client: its failure to connect becomes one
    `BrokerError`, "cannot reach Kafka at …", with the last connection error it logged."""
    seen = _LoggedErrors()
    kafka_log = logging.getLogger("kafka")
    kafka_log.addHandler(seen)
    try:
        yield
    except Exception as exc:  # kafka-python raises several unrelated types here
        causes = [type(e).__name__ for e in seen.errors if type(e) is not type(exc)]
        cause = f" (last connection error: {causes[-1]})" if causes else ""
        raise BrokerError(f"cannot reach Kafka at {','.join(bootstrap)}: {exc}{cause}") from exc
    finally:
        kafka_log.removeHandler(seen)


def ensure_topics(settings: Settings, bootstrap: list[str]) -> list[str]:
    """Create missing topics; check existing input topics' partition counts.

    Returns the names of the topics created. Raises `BrokerError` on a partition mismatch.
    """
    specs = required_topics(settings)
    with reaching(bootstrap):
        admin = KafkaAdminClient(
            bootstrap_servers=bootstrap,
            client_id=f"{settings.app_id}-admin",
            request_timeout_ms=15_000,
            **kafka_python_security(settings),
        )
    try:
        existing = _partition_counts(admin)
        created: list[str] = []
        for spec in specs:
            have = existing.get(spec.name)
            if have is None:
                try:
                    admin.create_topics(
                        [
                            NewTopic(
                                spec.name,
                                spec.partitions,
                                settings.replication_factor,
                                topic_configs=spec.config,
                            )
                        ]
                    )
                    created.append(spec.name)
                except TopicAlreadyExistsError:
                    have = _partition_counts(admin).get(spec.name)
            if have is not None and have != spec.partitions:
                raise BrokerError(
                    f"topic {spec.name!r} has {have} partitions but MICROSEG_PARTITIONS or the "
                    f"topic's role needs {spec.partitions}: set MICROSEG_PARTITIONS={have} "
                    "or use other topic names"
                )
        if created:
            log.info("created topics: %s", ", ".join(created))
        return created
    finally:
        admin.close()


def _partition_counts(admin: KafkaAdminClient) -> dict[str, int]:
    names = admin.list_topics()
    if not names:
        return {}
    return {t["name"]: len(t["partitions"]) for t in admin.describe_topics(names)}


def delete_topics(bootstrap: list[str], names: list[str]) -> None:
    """Delete topics (tests and tooling)."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15_000)
    try:
        admin.delete_topics(names)
    finally:
        admin.close()
