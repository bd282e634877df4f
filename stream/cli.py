"""The ``microseg`` command line."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from stream.errors import MicrosegError


def _broker(args: argparse.Namespace) -> int:
    from stream.adapters.embedded import EmbeddedBroker

    broker = EmbeddedBroker(port=args.port)
    stopping = False

    def request_stop(signum: int, frame: object) -> None:
        # Only signal Tansu here: the main thread is inside Popen.wait(), which must not be
        # re-entered from a handler. wait() returns once Tansu has exited.
        nonlocal stopping
        stopping = True
        broker.terminate()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    try:
        broker.start()
    except MicrosegError:
        if stopping:  # asked to stop while starting: Tansu exited because we told it to
            return 0
        raise
    print(f"embedded broker (Tansu, in memory) on {broker.url}; Ctrl-C stops it", flush=True)
    code = broker.wait()
    broker.stop()
    return 0 if stopping else code


def _worker(args: argparse.Namespace) -> int:
    from stream.config import Settings
    from stream.worker import run_worker

    return run_worker(Settings.load())


def _topics(args: argparse.Namespace) -> int:
    from stream.adapters.topics import ensure_topics
    from stream.config import Settings

    settings = Settings.load()
    if not settings.brokers:
        raise MicrosegError("MICROSEG_BROKER must be set for `topics create`")
    created = ensure_topics(settings, settings.brokers)
    print("created: " + (", ".join(created) if created else "nothing (all topics exist)"))
    return 0


def _schemas(args: argparse.Namespace) -> int:
    from stream.core.schemas import contract_schemas, render

    out: Path = args.dir
    out.mkdir(parents=True, exist_ok=True)
    stale = []
    for name, schema in sorted(contract_schemas().items()):
        path = out / name
        text = render(schema)
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            path.write_text(text)
            print(f"wrote {path}")
    if stale:
        print("out of date: " + ", ".join(stale) + " (run `microseg schemas export`)")
        return 1
    return 0


def _replay(args: argparse.Namespace) -> int:
    from stream.replay import run_replay

    return run_replay(args)


def _demo(args: argparse.Namespace) -> int:
    from stream.demo import run_demo

    return run_demo(args)


def _bench(args: argparse.Namespace) -> int:
    from stream.bench.report import main as run_bench

    return run_bench(args)


def _simulate(args: argparse.Namespace) -> int:
    import json

    from stream.simulate import run_simulate

    summary = run_simulate(args.out, args.truth, args.customers, args.days, args.seed)
    print(json.dumps(summary, indent=2, sort_keys=True))
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    import json

    from stream.evaluate import run_evaluate

    result = run_evaluate(args.files, args.truth, args.out, args.segments)
    print(json.dumps(result, indent=2, sort_keys=True))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests and docs)."""
    p = argparse.ArgumentParser(prog="microseg", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    b = sub.add_parser(
        "broker", help="run the embedded Kafka-wire broker (Tansu) in the foreground"
    )
    b.add_argument("--port", type=int, default=9092)
    b.set_defaults(func=_broker)

    w = sub.add_parser("worker", help="run a worker (embedded broker if MICROSEG_BROKER is unset)")
    w.set_defaults(func=_worker)

    t = sub.add_parser("topics", help="topic administration")
    tsub = t.add_subparsers(dest="action", required=True)
    tc = tsub.add_parser("create", help="create every topic the service needs")
    tc.set_defaults(func=_topics)

    s = sub.add_parser("schemas", help="JSON Schemas of the contracts")
    ssub = s.add_subparsers(dest="action", required=True)
    se = ssub.add_parser("export", help="write the schemas (or --check them)")
    se.add_argument("--dir", type=Path, default=Path("schemas"))
    se.add_argument("--check", action="store_true", help="exit 1 if committed files differ")
    se.set_defaults(func=_schemas)

    r = sub.add_parser("replay", help="replay JSONL event files into Kafka, or offline")
    r.add_argument("files", nargs="+", type=Path)
    r.add_argument(
        "--speed",
        type=float,
        default=None,
        help="pace by event time at N× (default: as fast as possible)",
    )
    r.add_argument("--limit", type=int, default=None, help="stop after N lines")
    r.add_argument("--no-progress", action="store_true")
    r.add_argument(
        "--offline",
        action="store_true",
        help="run the core in-process (no broker) and write outputs to --out",
    )
    r.add_argument("--out", type=Path, default=None, help="output directory of --offline")
    r.add_argument(
        "--as-of",
        default=None,
        help="RFC 3339 'now' for the future-timestamp check offline (default: none)",
    )
    r.add_argument(
        "--no-segments",
        action="store_true",
        help="offline: features only (no trainer, no scorer, no segment outputs)",
    )
    r.set_defaults(func=_replay)

    d = sub.add_parser(
        "demo", help="broker + worker + replay of the bundled events, then a summary"
    )
    d.add_argument("--keep", action="store_true", help="keep running after the summary")
    d.set_defaults(func=_demo)

    bn = sub.add_parser(
        "bench",
        help="offline path, and our worker against baseline Faust agents on one broker, with targets",
    )
    bn.add_argument("--events", type=int, default=300_000, help="offline: synthetic events")
    bn.add_argument("--customers", type=int, default=30_000, help="distinct customers")
    bn.add_argument("--repeat", type=int, default=3, help="offline: runs of each measurement")
    bn.add_argument("--e2e-events", type=int, default=60_000,
                    help="end to end: events each contender consumes")  # fmt: skip
    bn.add_argument("--latency-seconds", type=float, default=15.0,
                    help="end to end: duration of the paced load (70 %% of one worker's maximum)")  # fmt: skip
    bn.add_argument("--quick", action="store_true",
                    help="small and fast (tests): one repetition, end to end on --events, 2-s paced load")  # fmt: skip
    bn.add_argument("--no-e2e", action="store_true", help="offline part only (no broker)")
    bn.add_argument("--no-offline", action="store_true", help="end-to-end part only")
    bn.add_argument("--json", action="store_true", help="print one JSON object")
    bn.set_defaults(func=_bench)

    sm = sub.add_parser(
        "simulate",
        help="multi-stream events with planted personas, migrations and an emerging persona",
    )
    sm.add_argument("--out", type=Path, default=Path("sim-events.jsonl.gz"))
    sm.add_argument("--truth", type=Path, default=Path("sim-truth.json"))
    sm.add_argument("--customers", type=int, default=3000)
    sm.add_argument("--days", type=int, default=60)
    sm.add_argument("--seed", type=int, default=0)
    sm.set_defaults(func=_simulate)

    ev = sub.add_parser(
        "evaluate",
        help="replay a simulated file offline; ARI/NMI vs the planted personas, migrations, "
        "spurious changes, batch k-means baseline",
    )
    ev.add_argument("files", nargs="+", type=Path, metavar="FILE")
    ev.add_argument("--truth", type=Path, required=True, help="truth file of `microseg simulate`")
    ev.add_argument("--out", type=Path, default=Path("evaluation"), help="output directory")
    ev.add_argument("--segments", type=int, default=None,
                    help="number of segments (default MICROSEG_SEGMENTS)")  # fmt: skip
    ev.set_defaults(func=_evaluate)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``microseg`` console script."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("kafka").setLevel(logging.WARNING)  # connection chatter, not news
    try:
        return int(args.func(args) or 0)
    except MicrosegError as exc:
        print(f"microseg: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
