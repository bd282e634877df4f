"""One bench contender in its own process: ``python -m stream.bench.contender KIND PROBE_FILE``.

``KIND`` is ``worker`` (our Faust app exactly as ``microseg worker`` builds it,
`stream.adapters.app.build_app`) or a baseline of `stream.adapters.baselines`. Settings come from
the ``MICROSEG_*`` environment as for ``microseg worker``; ``MICROSEG_BROKER`` must be set (the
bench starts the broker). The `stream.adapters.probe` sensor writes the figures to ``PROBE_FILE``.
Runs until SIGTERM.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from stream.adapters import probe
from stream.config import Settings
from stream.errors import MicrosegError

CONTENDERS = ("worker", "count", "table_send")


def main(argv: Sequence[str] | None = None) -> int:
    """Build the contender's app, add the probe, run the Faust worker."""
    from stream.worker import faust_worker

    p = argparse.ArgumentParser(prog="python -m stream.bench.contender")
    p.add_argument("kind", choices=CONTENDERS)
    p.add_argument("probe_file", type=Path)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    settings = Settings.load()
    bootstrap = settings.brokers
    if not bootstrap:
        raise MicrosegError("a bench contender needs MICROSEG_BROKER")
    tansu = settings.broker_kind == "tansu"
    if args.kind == "worker":
        from stream.adapters.app import build_app

        app = build_app(settings, bootstrap, tansu=tansu).app
    else:
        from stream.adapters.baselines import build_baseline

        app = build_baseline(args.kind, settings, bootstrap, tansu)
    probe.install(app, settings.input_topics.values(), args.probe_file)
    worker = faust_worker(app, settings)
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
