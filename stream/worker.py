"""``microseg worker``: run one Faust worker (starting the embedded broker when none is set)."""

from __future__ import annotations

import errno
import logging
import sys

from stream.adapters.app import build_app
from stream.adapters.embedded import bind_error, broker_for
from stream.adapters.topics import ensure_topics
from stream.config import Settings
from stream.errors import ConfigError

log = logging.getLogger(__name__)


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


def run_worker(settings: Settings) -> int:
    """Run until SIGTERM/SIGINT; return the exit code."""
    import faust

    check_web_port(settings)
    with broker_for(settings.brokers, settings.embedded_broker_port) as (bootstrap, embedded):
        if embedded:
            print(f"embedded broker on kafka://{bootstrap[0]} (in memory)", file=sys.stderr)
        ensure_topics(settings, bootstrap)
        svc = build_app(settings, bootstrap, tansu=embedded or settings.broker_kind == "tansu")
        worker = faust.Worker(svc.app, loglevel=settings.log_level.upper(), quiet=True)
        try:
            worker.execute_from_commandline()
        except SystemExit as exc:
            return int(exc.code or 0)
    return 0
