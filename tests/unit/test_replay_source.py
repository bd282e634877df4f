"""`stream.replay_source` without a broker: what a topic source says when Kafka is not there
(kafka-python's consumer is replaced; the records themselves are read in
tests/integration/test_replay.py)."""

from __future__ import annotations

import logging

import kafka
import pytest
from kafka.errors import KafkaConnectionError, KafkaTimeoutError

from stream.adapters import topics
from stream.errors import BrokerError
from stream.replay_source import OffsetRange, TopicRange
from tests.factories import bare_settings


def test_an_unreachable_broker_is_one_message_not_a_traceback(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def consumer(**kwargs: object) -> None:
        # What kafka-python does with nothing listening: it logs each refused connection and,
        # once the time is up, raises a bare timeout.
        logging.getLogger("kafka.net.manager").warning(
            "Bootstrap connection to %s failed: %s", "bootstrap-0", KafkaConnectionError("111")
        )
        raise KafkaTimeoutError("Unable to bootstrap from ['k:9']")

    caplog.set_level(logging.WARNING, logger="kafka")
    monkeypatch.setattr(kafka, "KafkaConsumer", consumer)
    source = TopicRange(["k:9"], bare_settings(broker="k:9"), "clickstream", OffsetRange())
    with pytest.raises(BrokerError) as err:
        source.plan()
    assert str(err.value) == (
        "cannot reach Kafka at k:9: KafkaTimeoutError: Unable to bootstrap from ['k:9'] "
        "(last connection error: KafkaConnectionError)"
    )
    assert not any(isinstance(h, topics._LoggedErrors) for h in logging.getLogger("kafka").handlers)
