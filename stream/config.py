"""Settings: one validated object, read from ``MICROSEG_*`` environment variables at start-up.

``Settings.load()`` is called once by each entry point; a bad value raises `ConfigError` naming
the variable and what it accepts, before anything connects anywhere.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from stream.errors import ConfigError

if TYPE_CHECKING:
    from stream.core.assigner import Assigner
    from stream.core.collate import Collator
    from stream.core.segment_stage import SegmentationStage
    from stream.core.segmentation import Segmenter
    from stream.core.trainer import Trainer

_HOST_PORT = re.compile(r"^(?P<host>[A-Za-z0-9_.\-]+|\[[0-9A-Fa-f:]+\]):(?P<port>\d{1,5})$")
_TOPIC = re.compile(r"^[A-Za-z0-9._\-]{1,200}$")

MAX_DAILY_SAMPLES = 100
"""Training samples a day at most (over all partitions): the trainer's cost grows with them."""
MAX_DAILY_MONITOR = 1000
"""Samples a day at most (over all partitions) feeding the drift detectors, training included."""

MIN_RUN_EVENTS = 10_000
"""Fewest queued events in a run of the offline replay's external sort (`Engine`)."""
TopicName = Annotated[str, Field(pattern=_TOPIC.pattern)]
Port = Annotated[int, Field(ge=1, le=65535)]


def parse_brokers(value: str) -> list[str]:
    """Parse ``kafka://h:p[,h:p…]`` (or plain ``h:p[,…]``) into ``["h:p", …]``.

    >>> parse_brokers("kafka://a:9092,b:9093")
    ['a:9092', 'b:9093']
    >>> parse_brokers("localhost:9092")
    ['localhost:9092']
    """
    rest = value.strip()
    if rest.startswith("kafka://"):
        rest = rest[len("kafka://") :]
    elif "://" in rest:
        raise ValueError("scheme must be kafka:// (or none)")
    hosts = [h.strip() for h in rest.split(",") if h.strip()]
    if not hosts:
        raise ValueError("no host:port given")
    for h in hosts:
        m = _HOST_PORT.match(h)
        if not m or not 1 <= int(m["port"]) <= 65535:
            raise ValueError(f"{h!r} is not host:port with a port in 1-65535")
    return hosts


class Settings(BaseSettings):
    """Every setting of the service. Environment variable = ``MICROSEG_`` + field name, upper case.

    Attributes are documented in README.md ("Settings"); keep the two in step.
    """

    model_config = SettingsConfigDict(env_prefix="MICROSEG_", extra="ignore", frozen=True)

    broker: str | None = None
    broker_kind: Literal["kafka", "tansu"] = "kafka"
    partitions: Annotated[int, Field(ge=1, le=1024)] = 6
    replication_factor: Annotated[int, Field(ge=1, le=16)] = 1
    app_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9._\-]{1,100}$")] = "microseg"
    web_bind: str = "127.0.0.1"
    web_port: Port = 6066
    web_expose_tables: bool = False
    data_dir: Path = Path("data")
    store: Literal["rocksdb://", "memory://"] = "rocksdb://"

    topic_clickstream: TopicName = "clickstream"
    topic_email: TopicName = "email"
    topic_purchases: TopicName = "purchases"
    topic_dead_letter: TopicName = "dead-letter"
    topic_segment_changes: TopicName = "segment-changes"
    topic_segment_events: TopicName = "segment-events"
    topic_segment_model: TopicName = "segment-model"
    topic_feature_samples: TopicName = "feature-samples"

    max_message_bytes: Annotated[int, Field(ge=1024, le=64 * 1024 * 1024)] = 1_048_576
    future_tolerance_s: Annotated[float, Field(ge=0)] = 600.0
    lateness_days: Annotated[float, Field(ge=0, le=3650)] = 30.0
    batch_size: Annotated[int, Field(ge=1, le=100_000)] = 1000
    batch_window_s: Annotated[float, Field(gt=0, le=10)] = 0.05
    align_max_wait_s: Annotated[float, Field(ge=0, le=60)] = 2.0
    pace_max_wait_s: Annotated[float, Field(ge=0, le=3600)] = 30.0
    replay_run_events: Annotated[int, Field(ge=0, le=1_000_000_000)] = 1_000_000

    segments: Annotated[int, Field(ge=2, le=12)] = 6
    micro_segments: Annotated[int, Field(ge=1, le=10)] = 3
    sample_rate: Annotated[float, Field(gt=0, le=1)] = 0.05
    monitor_rate: Annotated[float, Field(gt=0, le=1)] = 0.3
    publish_every: Annotated[int, Field(ge=10, le=10_000_000)] = 500
    warmup_samples: Annotated[int, Field(ge=10, le=10_000_000)] = 1000
    micro_clusters: Annotated[int, Field(ge=10, le=1000)] = 60
    seed: Annotated[int, Field(ge=0, le=2**31 - 1)] = 42
    margin: Annotated[float, Field(ge=0, lt=1)] = 0.15
    min_dwell_days: Annotated[float, Field(ge=0, le=365)] = 2.0
    lapse_grace: Annotated[float, Field(ge=1, le=100)] = 4.0
    idle_days: Annotated[float, Field(gt=0, le=365)] = 1.0
    tick_minutes: Annotated[float, Field(gt=0, le=1440)] = 60.0
    holdout_share: Annotated[float, Field(ge=0, le=0.5)] = 0.05
    max_segments: Annotated[int, Field(ge=2, le=12)] | None = None
    drift: bool = True
    customer_drift_threshold: Annotated[float, Field(gt=0, le=1000)] = 10.0

    embedded_broker_port: Annotated[int, Field(ge=0, le=65535)] = 0
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    api_token: SecretStr | None = None
    ssl_cafile: Path | None = None
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    @field_validator("broker")
    @classmethod
    def _broker(cls, v: str | None) -> str | None:
        if v is None or not v.strip():
            return None
        parse_brokers(v)
        return v.strip()

    @field_validator("web_bind")
    @classmethod
    def _bind(cls, v: str) -> str:
        ipaddress.ip_address(v)  # raises ValueError: an IP literal, so the bind is explicit
        return v

    @field_validator("data_dir", mode="before")
    @classmethod
    def _data_dir(cls, v: object) -> object:
        if isinstance(v, str) and not v.strip():  # Path("") is the current directory
            raise ValueError("must not be empty (unset it for the default, data)")
        return v

    @field_validator("api_token", mode="before")
    @classmethod
    def _token(cls, v: object) -> object:
        if isinstance(v, str) and not v.strip():  # no request could match it: unset
            return None
        return v

    @model_validator(mode="after")
    def _bound(self) -> Settings:
        if self.monitor_rate < self.sample_rate:
            raise ValueError(
                f"MICROSEG_MONITOR_RATE ({self.monitor_rate}) must be at least "
                f"MICROSEG_SAMPLE_RATE ({self.sample_rate}): the training sample is part of it"
            )
        if 0 < self.replay_run_events < MIN_RUN_EVENTS:
            raise ValueError(
                f"MICROSEG_REPLAY_RUN_EVENTS ({self.replay_run_events}) must be 0 (the offline "
                f"replay's whole queue in memory) or at least {MIN_RUN_EVENTS}: each run of the "
                "queue keeps a temporary file open until the replay merges them"
            )
        if self.max_segments is not None and self.max_segments < self.segments:
            raise ValueError(
                f"MICROSEG_MAX_SEGMENTS ({self.max_segments}) must be at least "
                f"MICROSEG_SEGMENTS ({self.segments})"
            )
        return self

    @model_validator(mode="after")
    def _distinct_topics(self) -> Settings:
        seen: dict[str, str] = {}
        for name in type(self).model_fields:
            if not name.startswith("topic_"):
                continue
            topic = getattr(self, name)
            if topic in seen:
                raise ValueError(
                    f"MICROSEG_{seen[topic].upper()} and MICROSEG_{name.upper()} are both "
                    f"{topic!r}: each of the service's topics needs a name of its own"
                )
            seen[topic] = name
        return self

    @property
    def segment_bound(self) -> int:
        """Most segments a model may have: ``max_segments``, by default ``segments`` + 2 (≤ 12)."""
        return self.max_segments if self.max_segments is not None else min(self.segments + 2, 12)

    @property
    def daily_sample(self) -> tuple[float, int]:
        """Share and cap (over all partitions) of the customers sampled each day: the drift
        detectors' sample, of which the training sample is the part with the smallest hashes
        (`stream.core.schedule.training_flags`); only the training sample without drift."""
        if not self.drift:
            return self.sample_rate, MAX_DAILY_SAMPLES
        return self.monitor_rate, MAX_DAILY_MONITOR

    @property
    def brokers(self) -> list[str] | None:
        """``["host:port", …]``, or None when the embedded broker is to be used."""
        return parse_brokers(self.broker) if self.broker else None

    @property
    def input_topics(self) -> dict[str, str]:
        """Stream name → topic name for the three input streams."""
        return {
            "clickstream": self.topic_clickstream,
            "email": self.topic_email,
            "purchases": self.topic_purchases,
        }

    @classmethod
    def load(cls, **overrides: object) -> Settings:
        """Read and validate the environment once; raise `ConfigError` saying what to fix."""
        check_names(os.environ)
        try:
            settings = cls(**overrides)  # type: ignore[arg-type]
        except ValidationError as exc:
            lines = []
            for err in exc.errors(include_url=False):
                if not err["loc"]:  # a check of several settings: its message names them
                    lines.append(str(err.get("ctx", {}).get("error", err["msg"])))
                    continue
                name = "MICROSEG_" + "_".join(str(p) for p in err["loc"][:1]).upper()
                lines.append(f"{name}: {err['msg']} (got {_shown(err)})")
            raise ConfigError("invalid settings:\n  " + "\n  ".join(lines)) from None
        if settings.brokers is None:  # the embedded broker would be used: it has no TLS or SASL
            secured = [f"MICROSEG_{n.upper()}" for n in _SECURITY if getattr(settings, n)]
            if settings.security_protocol != "PLAINTEXT":
                secured.insert(0, f"MICROSEG_SECURITY_PROTOCOL={settings.security_protocol}")
            if secured:
                raise ConfigError(
                    "the embedded broker (MICROSEG_BROKER unset) speaks PLAINTEXT only: set "
                    f"MICROSEG_BROKER to use {', '.join(secured)}"
                )
        sasl = [f"MICROSEG_{n.upper()}" for n in _SASL if getattr(settings, n)]
        if sasl and not settings.security_protocol.startswith("SASL"):  # or they go unused
            protocol = settings.security_protocol
            wanted = "SASL_SSL" if protocol == "SSL" else "SASL_SSL (or SASL_PLAINTEXT, no TLS)"
            raise ConfigError(
                f"{', '.join(sasl)} {'is' if len(sasl) == 1 else 'are'} set, but "
                f"MICROSEG_SECURITY_PROTOCOL={protocol} does not "
                f"authenticate (they would be ignored): set MICROSEG_SECURITY_PROTOCOL={wanted}, "
                "or unset them"
            )
        if settings.ssl_cafile and not settings.security_protocol.endswith("SSL"):
            raise ConfigError(
                f"MICROSEG_SSL_CAFILE is set, but MICROSEG_SECURITY_PROTOCOL="
                f"{settings.security_protocol} does not use TLS (it would be ignored): set "
                "MICROSEG_SECURITY_PROTOCOL=SSL or SASL_SSL, or unset it"
            )
        if settings.ssl_cafile and not settings.ssl_cafile.is_file():  # (else: "cannot reach")
            what = "is a directory" if settings.ssl_cafile.is_dir() else "does not exist"
            raise ConfigError(
                f"MICROSEG_SSL_CAFILE={settings.ssl_cafile} {what}: set it to the file of the "
                "brokers' CA certificates (PEM)"
            )
        if settings.sasl_mechanism and not (settings.sasl_username and settings.sasl_password):
            raise ConfigError(
                "MICROSEG_SASL_MECHANISM is set: MICROSEG_SASL_USERNAME and "
                "MICROSEG_SASL_PASSWORD are required too"
            )
        if settings.security_protocol.startswith("SASL") and not settings.sasl_mechanism:
            raise ConfigError(
                f"MICROSEG_SECURITY_PROTOCOL={settings.security_protocol} needs "
                "MICROSEG_SASL_MECHANISM (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)"
            )
        return settings


READ_ELSEWHERE: frozenset[str] = frozenset()
"""``MICROSEG_*`` variables read outside `Settings` (none: the demo and the bench pass settings on
to the worker's environment, tests set them; all are fields). Add one here, not elsewhere."""
KNOWN_VARIABLES = (
    frozenset("MICROSEG_" + name.upper() for name in Settings.model_fields) | READ_ELSEWHERE
)
"""Every ``MICROSEG_*`` environment variable microseg reads; any other is refused."""


def check_names(environ: Mapping[str, str]) -> None:
    """Raise `ConfigError` naming each ``MICROSEG_*`` variable of ``environ`` that is no setting
    (a misspelt one would be ignored silently), with the nearest known name. Case is ignored, as
    `Settings` ignores it. Values are not shown: one may be a secret."""
    prefix = "MICROSEG_"
    names = {n[len(prefix) :]: n for n in KNOWN_VARIABLES}
    lines = []
    for var in sorted(environ):
        if not var.upper().startswith(prefix) or var.upper() in KNOWN_VARIABLES:
            continue
        near = difflib.get_close_matches(var.upper()[len(prefix) :], names, n=1)
        hint = f" (did you mean {names[near[0]]}?)" if near else ""
        lines.append(f"{var} is not a setting{hint}: rename or unset it")
    if lines:
        raise ConfigError(
            "unknown MICROSEG_* variables (README.md, 'Settings', lists the settings):\n  "
            + "\n  ".join(lines)
        )


_SASL = ("sasl_mechanism", "sasl_username", "sasl_password")
"""Settings used only by a SASL ``MICROSEG_SECURITY_PROTOCOL``."""
_SECURITY = (*_SASL, "ssl_cafile")
"""Settings of the connection to ``MICROSEG_BROKER`` besides the protocol."""


def _shown(err: Mapping[str, Any]) -> str:
    """The rejected value, unless it may be a secret."""
    value = err.get("input")
    loc = str(err.get("loc"))
    if isinstance(value, str | int | float) and "password" not in loc and "token" not in loc:
        return repr(value)
    return "a value that is not shown"


def make_trainer(settings: Settings) -> Trainer:
    """The trainer configured by ``settings`` (the same in the worker and offline)."""
    from stream.core.trainer import Trainer

    return Trainer(
        n_segments=settings.segments,
        micro_per_segment=settings.micro_segments,
        max_micro_clusters=settings.micro_clusters,
        publish_every=settings.publish_every,
        warmup=settings.warmup_samples,
        seed=settings.seed,
        max_segments=settings.segment_bound,
        drift=settings.drift,
    )


def make_segmenter(settings: Settings) -> Segmenter:
    """The scorer and change publisher configured by ``settings``."""
    from stream.core.drift import CustomerDrift
    from stream.core.scoring import Scorer
    from stream.core.segmentation import Segmenter

    detector = CustomerDrift(settings.customer_drift_threshold) if settings.drift else None
    return Segmenter(
        Scorer(settings.margin, settings.min_dwell_days, settings.lapse_grace),
        settings.holdout_share,
        customer_drift=detector,
    )


def make_assigner(settings: Settings) -> Assigner:
    """The worker's per-partition scoring, re-evaluation and sampling (`stream.core.assigner`).

    The daily sample cap is shared out over the input partitions.
    """
    from stream.core.assigner import Assigner

    rate, cap = settings.daily_sample
    return Assigner(
        make_segmenter(settings),
        seed=settings.seed,
        sample_rate=rate,
        max_daily_samples=-(-cap // settings.partitions),
        idle_days=settings.idle_days,
    )


def make_segmentation_stage(settings: Settings) -> SegmentationStage:
    """The offline engine's segmentation stage configured by ``settings``."""
    from stream.core.segment_stage import SegmentationStage

    return SegmentationStage(
        make_trainer(settings),
        make_segmenter(settings),
        sample_rate=settings.sample_rate,
        tick_minutes=settings.tick_minutes,
        idle_days=settings.idle_days,
        max_daily_samples=MAX_DAILY_SAMPLES,
        monitor_rate=settings.daily_sample[0],
        max_daily_monitor=settings.daily_sample[1],
    )


def make_collator(settings: Settings) -> Collator:
    """The trainer's merge of the partitions' daily samples, picking the training part."""
    from stream.core.collate import Collator

    return Collator(
        settings.partitions, sample_rate=settings.sample_rate, max_daily_samples=MAX_DAILY_SAMPLES
    )


def segmentation_config(settings: Settings) -> dict[str, Any]:
    """The settings that decide segmentation outputs (recorded in offline reports)."""
    names = ("segments", "micro_segments", "sample_rate", "monitor_rate", "publish_every", "warmup_samples",
             "micro_clusters", "seed", "margin", "min_dwell_days", "lapse_grace", "idle_days", "tick_minutes",
             "holdout_share", "segment_bound", "drift", "customer_drift_threshold")  # fmt: skip
    return {n: getattr(settings, n) for n in names}
