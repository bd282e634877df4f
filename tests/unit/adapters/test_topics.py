"""Topic set-up's failures (no broker: kafka-python's admin client is replaced)."""

from __future__ import annotations

import logging

import pytest
from kafka.errors import KafkaTimeoutError, UnsupportedSaslMechanismError

from stream.adapters import topics
from stream.errors import BrokerError
from tests.factories import bare_settings


def test_unreachable_kafka_names_the_last_connection_error(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def admin(**kwargs: object) -> None:
        # What kafka-python does against a broker without SASL: it logs each failed connection
        # and, once the time is up, raises a bare timeout.
        logging.getLogger("kafka.net.manager").warning(
            "Bootstrap connection to %s failed: %s (backoff %.2f secs)",
            "bootstrap-0",
            UnsupportedSaslMechanismError("SaslHandshake"),
            0.1,
        )
        timeout = KafkaTimeoutError("Unable to bootstrap from ['k:9092']")
        logging.getLogger("kafka.net.manager").error("Bootstrap failed: %s", timeout)
        raise timeout

    caplog.set_level(logging.WARNING, logger="kafka")
    monkeypatch.setattr(topics, "KafkaAdminClient", admin)
    with pytest.raises(BrokerError) as err:
        topics.ensure_topics(bare_settings(broker="k:9092"), ["k:9092"])
    assert str(err.value) == (
        "cannot reach Kafka at k:9092: KafkaTimeoutError: Unable to bootstrap from ['k:9092'] "
        "(last connection error: UnsupportedSaslMechanismError)"
    )
    assert not any(isinstance(h, topics._LoggedErrors) for h in logging.getLogger("kafka").handlers)
