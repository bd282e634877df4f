"""The ``microseg`` command line."""

from __future__ import annotations

import argparse
import logging
import shlex
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from stream import paths
from stream.errors import MicrosegError, ReplayError

_N = TypeVar("_N", int, float)


def _number(kind: Callable[[str], _N], low: _N, high: _N | None = None) -> Callable[[str], _N]:
    """An argparse ``type``: a ``kind`` from ``low`` to ``high``, else a usage error naming the flag."""

    def parse(text: str) -> _N:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid {kind.__name__} value: {text!r}") from None
        if not value >= low or (high is not None and value > high):  # (NaN is not >= low)
            span = f"at least {low:g}" if high is None else f"from {low:g} to {high:g}"
            raise argparse.ArgumentTypeError(f"must be {span}, not {text}")
        return value

    return parse


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
    print(f"embedded broker (Tansu, in memory) on {broker.url}; Ctrl-C stops it\n"
          f"point workers at it with MICROSEG_BROKER={broker.url} MICROSEG_BROKER_KIND=tansu "
          "(its quirks' workarounds; without them a restarted worker's recovery fails)",
          flush=True)  # fmt: skip
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
    if args.check:  # a check only reads
        paths.no_file(out, "--dir")
    else:
        paths.output_dir(out, "--dir")
        out.mkdir(parents=True, exist_ok=True)
    stale, missing = [], []
    for name, schema in sorted(contract_schemas().items()):
        path = out / name
        text = render(schema)
        if args.check:
            if not path.exists():
                missing.append(name)
            elif path.read_text() != text:
                stale.append(name)
        else:
            path.write_text(text)
            print(f"wrote {path}")
    if stale or missing:
        found = []
        if stale:
            found.append("out of date: " + ", ".join(stale))
        if missing:
            found.append("missing: " + ", ".join(missing))
        fix = "microseg schemas export"
        if out != Path("schemas"):
            fix += f" --dir {shlex.quote(str(out))}"
        print(f"{'; '.join(found)} in {out} (run `{fix}`)")
        return 1
    return 0


def _replay(args: argparse.Namespace) -> int:
    if args.compare:
        from stream.compare import run_compare

        if args.files or args.from_topic or args.out is not None:
            raise MicrosegError(
                "--compare takes two output directories and no replay source or --out"
            )
        return run_compare(args.compare[0], args.compare[1], args.json, args.examples)
    if args.out is not None and not args.offline:
        raise ReplayError("--out needs --offline (without it the replay goes to Kafka)")
    from stream.replay_run import run_replay

    return run_replay(args)


def _demo(args: argparse.Namespace) -> int:
    from stream.demo.run import run_demo

    for path in args.files or []:
        paths.input_file(path, "--files")
    if args.summary_json is not None:  # (written at the end: found out now, not then)
        paths.output_file(args.summary_json, "--summary-json")

    return run_demo(args)


def _bench(args: argparse.Namespace) -> int:
    from stream.bench.report import main as run_bench

    return run_bench(args)


def _simulate(args: argparse.Namespace) -> int:
    import json

    from stream.simulate import run_simulate

    paths.output_file(args.out, "--out")
    paths.output_file(args.truth, "--truth")
    paths.distinct({"--out": args.out, "--truth": args.truth})
    summary = run_simulate(
        args.out, args.truth, args.customers, args.days, args.seed, args.scenario
    )
    print(json.dumps(summary, indent=2, sort_keys=True))
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    import json

    from stream.evaluate import run_evaluate

    result = run_evaluate(
        args.files, args.truth, args.out, args.segments, args.warmup_days, args.oracle_switches
    )
    print(json.dumps(result, indent=2, sort_keys=True))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests and docs)."""
    p = argparse.ArgumentParser(
        prog="microseg",
        description="Streaming customer micro-segmentation on Kafka: Faust workers, River "
        "clustering, an embedded Kafka-wire broker. Settings are MICROSEG_* environment "
        "variables (README.md, 'Settings'); `microseg COMMAND --help` for each command.",
    )
    sub = p.add_subparsers(dest="command", required=True)

    b = sub.add_parser(
        "broker", help="run the embedded Kafka-wire broker (Tansu) in the foreground"
    )
    b.add_argument("--port", type=int, default=9092, help="TCP port on loopback (default 9092)")
    b.set_defaults(func=_broker)

    w = sub.add_parser(
        "worker",
        help="run a worker (embedded broker if MICROSEG_BROKER is unset)",
        description="Run one Faust worker until SIGTERM or Ctrl-C. It takes no options: it is "
        "configured by MICROSEG_* environment variables (the settings table in README.md, "
        "'Settings'). Without MICROSEG_BROKER it starts an embedded broker and stops it on exit.",
    )
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

    r = sub.add_parser(
        "replay",
        help="replay JSONL files or a topic range, filtered, into Kafka or offline; "
        "or --compare two offline runs",
        description="Source: FILE... or --from-topic. Sink: the input topics by stream "
        "(default), --to-topic, or --offline --out DIR. See README, 'Replay'.",
    )
    r.add_argument("files", nargs="*", type=Path, metavar="FILE", help="JSONL (plain or .gz)")
    src = r.add_argument_group("topic source (needs MICROSEG_BROKER)")
    src.add_argument("--from-topic", metavar="TOPIC", help="replay records of this topic")
    src.add_argument("--partition", type=int, action="append", metavar="P",
                     help="only this partition (repeatable; default all)")  # fmt: skip
    src.add_argument("--start-offset", action="append", metavar="[P:]N",
                     help="first offset, of every partition or of P (repeatable; default: "
                     "the beginning)")  # fmt: skip
    src.add_argument("--end-offset", action="append", metavar="[P:]N",
                     help="offset to stop before, of every partition or of P (repeatable; "
                     "default: the high watermark when the replay starts)")  # fmt: skip
    flt = r.add_argument_group("filters (a record that cannot be attributed passes)")
    flt.add_argument("--customer", action="append", metavar="ID", help="keep this customer (repeatable)")  # fmt: skip
    flt.add_argument("--customers-file", type=Path, action="append", metavar="FILE",
                     help="keep the customers listed in FILE, one id a line; blank lines and "
                     "# comments (whole lines, or after the id and a space) are skipped")  # fmt: skip
    flt.add_argument("--stream", action="append", choices=["clickstream", "email", "purchases"],
                     help="keep this stream (repeatable)")  # fmt: skip
    flt.add_argument("--since", metavar="RFC3339", help="keep events at or after this time")
    flt.add_argument("--until", metavar="RFC3339", help="keep events before this time")
    flt.add_argument("--time", choices=["event", "record"], default="event",
                     help="--since/--until on the event's ts (default) or, from a topic, on "
                     "the Kafka record timestamp (no decoding)")  # fmt: skip
    r.add_argument("--to-topic", metavar="TOPIC",
                   help="produce every kept record to TOPIC unchanged (default: by stream)")  # fmt: skip
    r.add_argument(
        "--speed",
        type=_number(float, 0.0),
        default=None,
        help="pace by event time at N× (default: as fast as possible)",
    )
    r.add_argument(
        "--limit", type=_number(int, 0), default=None, help="stop after reading N records"
    )
    r.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    r.add_argument("--json", action="store_true", help="print the summary (or diff) as JSON")
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
    r.add_argument("--compare", nargs=2, type=Path, metavar=("DIR_A", "DIR_B"),
                   help="diff two --offline output directories instead of replaying")  # fmt: skip
    r.add_argument("--examples", type=_number(int, 0), default=5,
                   help="--compare: customers shown whose segment differs (default 5)")  # fmt: skip
    r.set_defaults(func=_replay)

    d = sub.add_parser(
        "demo",
        help="broker + worker + paced replay of the bundled data with a live view, then a summary",
    )
    d.add_argument("--speed", type=_number(float, 0.0), default=30_000.0,
                   help="event-time speed-up of the live part; 0: as fast as possible "
                   "(default 30,000: a day in ~2.9 s)")  # fmt: skip
    d.add_argument("--live-days", type=_number(float, 0.0), default=35.0,
                   help="the last this-many days of event time are paced at --speed; older "
                   "history is the backfill (default 35)")  # fmt: skip
    d.add_argument("--backfill-seconds", type=_number(float, 0.0), default=40.0,
                   help="the history before the live days is paced to take about this long "
                   "(default 40; with --speed 0 it is sent as fast as possible too)")  # fmt: skip
    d.add_argument("--follow", "--keep", dest="follow", action="store_true",
                   help="keep the worker and broker running after the summary (Ctrl-C stops)")  # fmt: skip
    d.add_argument("--plain", action="store_true",
                   help="plain status lines instead of the live view (the default without a TTY)")  # fmt: skip
    d.add_argument("--files", nargs="+", type=Path, default=None, metavar="FILE",
                   help="replay these JSONL files instead of the bundled demo data")  # fmt: skip
    d.add_argument("--limit", type=_number(int, 1), default=None,
                   help="at most N lines of each file")  # fmt: skip
    d.add_argument("--drain-timeout", type=_number(float, 0.0), default=180.0,
                   help="seconds to wait for the worker once the paced replay is due to end")  # fmt: skip
    d.add_argument("--summary-json", type=Path, default=None, metavar="PATH",
                   help="also write the summary as JSON to PATH")  # fmt: skip
    d.set_defaults(func=_demo)

    bn = sub.add_parser(
        "bench",
        help="offline path, and our worker against baseline Faust agents on one broker, with targets",
    )
    bn.add_argument("--events", type=_number(int, 1), default=None,
                    help="offline: synthetic events (default 300,000; 20,000 with --quick)")  # fmt: skip
    bn.add_argument("--customers", type=_number(int, 1), default=None,
                    help="distinct customers (default 30,000; 2,000 with --quick)")  # fmt: skip
    bn.add_argument("--repeat", type=_number(int, 1), default=3,
                    help="offline: runs of each measurement (default 3; 1 with --quick)")  # fmt: skip
    bn.add_argument("--e2e-events", type=int, default=60_000,
                    help="end to end: events each contender consumes")  # fmt: skip
    bn.add_argument("--latency-seconds", type=float, default=15.0,
                    help="end to end: duration of the paced load (70 %% of one worker's maximum)")  # fmt: skip
    bn.add_argument("--quick", action="store_true",
                    help="small and fast (a smoke run, about a minute): smaller defaults, one "
                    "repetition, end to end on --events, 2-s paced load")  # fmt: skip
    bn.add_argument("--no-e2e", action="store_true", help="offline part only (no broker)")
    bn.add_argument("--no-offline", action="store_true", help="end-to-end part only")
    bn.add_argument("--json", action="store_true", help="print one JSON object")
    bn.set_defaults(func=_bench)

    sm = sub.add_parser(
        "simulate",
        help="multi-stream events with planted personas, migrations and an emerging persona",
    )
    sm.add_argument("--out", type=Path, default=Path("sim-events.jsonl.gz"), metavar="F",
                    help="events file, JSONL, gzip if it ends in .gz (default sim-events.jsonl.gz)")  # fmt: skip
    sm.add_argument("--truth", type=Path, default=Path("sim-truth.json"), metavar="T",
                    help="the answer key, JSON (default sim-truth.json)")  # fmt: skip
    sm.add_argument("--customers", type=_number(int, 1), default=3000, metavar="N",
                    help="customers simulated, at least 1 (default 3000)")  # fmt: skip
    sm.add_argument("--days", type=_number(int, 7), default=60, metavar="D",
                    help="days of event time, at least 7 (default 60)")  # fmt: skip
    sm.add_argument("--seed", type=_number(int, 0), default=0, metavar="S",
                    help="random seed, 0 or more: the same arguments give the same files "
                    "(default 0)")  # fmt: skip
    sm.add_argument(
        "--scenario",
        choices=["default", "stationary", "churn-emerging"],
        default="default",
        help="default: gradual migrations and emergence; stationary: neither (drift false-alarm "
        "calibration); churn-emerging: a churn wave and a sudden emerging persona",
    )
    sm.set_defaults(func=_simulate)

    ev = sub.add_parser(
        "evaluate",
        help="replay a simulated file offline; ARI/NMI vs the planted personas, migrations, "
        "spurious changes, batch k-means baseline",
    )
    ev.add_argument("files", nargs="+", type=Path, metavar="FILE")
    ev.add_argument("--truth", type=Path, required=True, help="truth file of `microseg simulate`")
    ev.add_argument("--out", type=Path, default=Path("evaluation"), metavar="DIR",
                    help="output directory (default evaluation)")  # fmt: skip
    ev.add_argument("--segments", type=_number(int, 2, 12), default=None,  # MICROSEG_SEGMENTS' range
                    metavar="K", help="number of segments, 2-12 (default MICROSEG_SEGMENTS)")  # fmt: skip
    ev.add_argument("--warmup-days", type=float, default=30.0,
                    help="spurious changes are counted after this many days (default 30)")  # fmt: skip
    ev.add_argument("--oracle-switches", action="store_true",
                    help="score each migrant to an active persona as if their history began at "
                    "their switch (from the truth file): the best any change detector could "
                    "do")  # fmt: skip
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
    except KeyboardInterrupt:
        print("microseg: interrupted", file=sys.stderr)
        return 130  # 128 + SIGINT, as a shell reports it


if __name__ == "__main__":
    sys.exit(main())
