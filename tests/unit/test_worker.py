"""The worker's start-up checks (no broker, no Faust app)."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from stream import worker
from stream.config import Settings
from stream.errors import ConfigError


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for k in list(os.environ):
        if k.startswith("MICROSEG_"):
            monkeypatch.delenv(k)


@pytest.fixture
def listening() -> Iterator[int]:
    """A port something listens on, on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield int(s.getsockname()[1])


def test_a_web_port_in_use_fails_before_anything_starts(
    listening: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_broker(*args: object) -> None:
        raise AssertionError("the broker must not start")

    monkeypatch.setattr(worker, "broker_for", no_broker)
    settings = Settings.load(web_port=listening, broker=None)
    with pytest.raises(ConfigError) as err:
        worker.run_worker(settings)
    assert f"port {listening} is already in use on 127.0.0.1" in str(err.value)
    assert "MICROSEG_WEB_PORT" in str(err.value)


def test_a_free_web_port_passes() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    worker.check_web_port(Settings.load(web_port=port))


def test_an_address_not_of_this_host_names_the_bind_setting() -> None:
    with pytest.raises(ConfigError, match=r"MICROSEG_WEB_BIND=192\.0\.2\.1"):
        worker.check_web_port(Settings.load(web_bind="192.0.2.1", web_port=6066))
