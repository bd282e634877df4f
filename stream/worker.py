"""``microseg worker``: run one Faust worker (starting the embedded broker when none is set)."""

from __future__ import annotations

import logging
import sys

from stream.adapters.app import build_app
from stream.adapters.embedded import broker_for
from stream.adapters.topics import ensure_topics
from stream.config import Settings

log = logging.getLogger(__name__)


def run_worker(settings: Settings) -> int:
    """Run until SIGTERM/SIGINT; return the exit code."""
    import faust

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
