"""The worker's start-up checks (no broker, no Faust app)."""

from __future__ import annotations

import logging
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from stream import cli, worker
from stream.config import Settings
from stream.errors import ConfigError
from tests.factories import clear_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    clear_settings(monkeypatch)


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


@pytest.fixture
def restore_logging(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Undo the Faust worker's logging set-up (it replaces the root logger's handlers, and
    sys.stdout and sys.stderr with proxies logging what is written to them)."""
    monkeypatch.setattr(sys, "stdout", sys.stdout)
    monkeypatch.setattr(sys, "stderr", sys.stderr)
    root = logging.getLogger()
    saved = [
        (lg, lg.level, list(lg.handlers), lg.propagate, lg.disabled)
        for lg in [root, *logging.Logger.manager.loggerDict.values()]
        if isinstance(lg, logging.Logger)
    ]
    yield
    for lg, level, handlers, propagate, disabled in saved:
        lg.setLevel(level)
        lg.handlers[:] = handlers
        lg.propagate, lg.disabled = propagate, disabled


@pytest.mark.usefixtures("restore_logging")
def test_debug_is_ours_only_the_clients_never_print_records(
    capsys: pytest.CaptureFixture[str],
) -> None:
    import faust

    settings = Settings.load(log_level="debug")
    app = faust.App("logging-test", autodiscover=False)
    faust_worker = worker.faust_worker(app, settings)
    logging.getLogger("aiokafka").setLevel(logging.DEBUG)  # whatever was set before start-up
    faust_worker._setup_logging()  # what the worker does as it starts (mode's Worker)
    try:
        for name in (
            "aiokafka",
            "aiokafka.conn",
            "faust.transport.drivers.aiokafka",
            "faust.topics",
        ):
            assert logging.getLogger(name).getEffectiveLevel() >= logging.INFO, name
        assert logging.getLogger("kafka.net.connection").getEffectiveLevel() >= logging.WARNING
        assert logging.getLogger("mode.services").getEffectiveLevel() >= logging.INFO
        assert logging.getLogger("stream.adapters.agents").getEffectiveLevel() == logging.DEBUG
        logging.getLogger("aiokafka.conn").debug("Request 7: ProduceRequest(customer-0042)")
        logging.getLogger("faust.topics").debug("send: k=b'customer-0042'")
        logging.getLogger("stream.adapters.agents").debug("batch of 3 records")
        out = capsys.readouterr()
        assert "batch of 3 records" in out.out + out.err
        assert "customer-0042" not in out.out + out.err
    finally:  # now, not when the worker is collected (it would reset sys.stderr then)
        faust_worker.exit_stack.close()


@pytest.mark.parametrize("level", ["info", "warning", "error"])
def test_other_levels_hold_for_every_logger(level: str) -> None:
    config = worker.logging_config(level)
    wanted = logging.getLevelNamesMapping()[level.upper()]
    assert config["root"]["level"] == wanted
    assert config["loggers"]["stream"]["level"] == wanted
    assert all(c["level"] >= wanted for c in config["loggers"].values())


@pytest.mark.parametrize("where", ["/proc/nope", "/proc", "file/sub"])  # /proc: exists, no writes
def test_a_data_dir_that_cannot_be_made_fails_before_anything_starts(
    where: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def no_broker(*args: object) -> None:
        raise AssertionError("the broker must not start")

    monkeypatch.setattr(worker, "broker_for", no_broker)
    monkeypatch.setattr(worker, "check_web_port", lambda settings: None)
    (tmp_path / "file").write_text("")  # a file where a directory is needed
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MICROSEG_DATA_DIR", where)
    assert cli.main(["worker"]) == 2
    err = capsys.readouterr().err
    assert f"MICROSEG_DATA_DIR={where} cannot be created or written" in err
    assert "Traceback" not in err


def test_a_missing_data_dir_is_created_with_its_parents(tmp_path: Path) -> None:
    worker.check_data_dir(Settings.load(data_dir=tmp_path / "a" / "b"))
    assert (tmp_path / "a" / "b").is_dir()
    assert not list((tmp_path / "a" / "b").iterdir())  # the write check leaves nothing
