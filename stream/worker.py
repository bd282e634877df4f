"""``microseg worker``: run one Faust worker (starting the embedded broker when none is set)."""

from __future__ import annotations

import errno
import logging
import os
import sys
import tempfile
from typing import TYPE_CHECKING, Any

from stream.adapters.app import build_app
from stream.adapters.embedded import bind_error, broker_for
from stream.adapters.topics import ensure_topics
from stream.config import Settings
from stream.errors import ConfigError

if TYPE_CHECKING:
    import faust

log = logging.getLogger(__name__)

OWN_LOGGERS = ("stream",)
"""Loggers that ``MICROSEG_LOG_LEVEL`` sets as it says, ``debug`` included."""
QUIET_LOGGERS = {
    "aiokafka": logging.INFO,  # debug: every request and response, record bytes included
    "kafka": logging.WARNING,  # kafka-python (topic admin): the same; info: connection chatter
    "faust.transport": logging.INFO,  # debug: "send: k=… v=…", each record produced
    "faust.topics": logging.INFO,  # the same
}
"""Loggers held at or above these levels whatever ``MICROSEG_LOG_LEVEL`` says: their debug output
carries raw records (customer ids, event JSON), megabytes a minute. Every other logger (Faust's,
mode's, aiohttp's…) stays at info or above too: only ours are audited for what they print."""


def logging_config(level: str) -> dict[str, Any]:
    """The worker's logging levels for ``MICROSEG_LOG_LEVEL`` = ``level``, as a `logging.config`
    dict that mode merges into its own when the Faust worker starts (``merge``: its handler and
    format stay). Set levels before would not hold: mode reconfigures logging at start."""
    wanted = logging.getLevelNamesMapping()[level.upper()]
    floor = max(wanted, logging.INFO)
    loggers: dict[str, dict[str, Any]] = {name: {"level": wanted} for name in OWN_LOGGERS}
    for name, least in QUIET_LOGGERS.items():
        loggers[name] = {"level": max(wanted, least)}
    return {"merge": True, "root": {"level": floor}, "loggers": loggers}


def faust_worker(app: faust.App, settings: Settings) -> faust.Worker:
    """The Faust worker running ``app`` at ``MICROSEG_LOG_LEVEL`` (`logging_config`)."""
    import faust

    return faust.Worker(
        app,
        loglevel=settings.log_level.upper(),  # the handler's level: ours pass at debug
        logging_config=logging_config(settings.log_level),
        quiet=True,
    )


def check_web_port(settings: Settings) -> None:
    """Raise `ConfigError` unless the HTTP server can bind ``MICROSEG_WEB_BIND:MICROSEG_WEB_PORT``
    (checked before anything starts: Faust would fail later with a traceback)."""
    host, port = settings.web_bind, settings.web_port
    exc = bind_error(host, port)
    if exc is None:
        return
    if exc.errno == errno.EADDRINUSE:
        raise ConfigError(
            f"port {port} is already in use on {host}: set MICROSEG_WEB_PORT to a free "
            "port (or stop what listens there)"
        )
    raise ConfigError(
        f"cannot serve HTTP on MICROSEG_WEB_BIND={host} MICROSEG_WEB_PORT={port}: "
        f"{exc.strerror or exc}"
    )


def check_data_dir(settings: Settings) -> None:
    """Create ``MICROSEG_DATA_DIR`` and raise `ConfigError` unless a file can be written in it
    (checked before anything starts: Faust, which creates it without its parents, would fail
    later with a traceback)."""
    path = settings.data_dir
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".microseg-write-check-", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ConfigError(
            f"MICROSEG_DATA_DIR={path} cannot be created or written ({exc.strerror or exc}): "
            "set it to a directory the worker may create and write, for its local state"
        ) from None


def run_worker(settings: Settings) -> int:
    """Run until SIGTERM/SIGINT; return the exit code."""
    check_web_port(settings)
    check_data_dir(settings)
    with broker_for(settings.brokers, settings.embedded_broker_port) as (bootstrap, embedded):
        if embedded:
            print(f"embedded broker on kafka://{bootstrap[0]} (in memory)", file=sys.stderr)
        ensure_topics(settings, bootstrap)
        svc = build_app(settings, bootstrap, tansu=embedded or settings.broker_kind == "tansu")
        worker = faust_worker(svc.app, settings)
        try:
            worker.execute_from_commandline()
        except SystemExit as exc:
            return int(exc.code or 0)
    return 0
