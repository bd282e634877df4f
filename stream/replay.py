"""``microseg replay``: event files or a topic range, filtered, into Kafka or offline.

This module reads JSONL files (plain or .gz) and runs the offline replay (`run_offline`: the
same core in-process). Sources are in `stream.replay_source`, filters in `stream.replay_filter`,
producing to Kafka in `stream.replay_sink`, the command in `stream.replay_run`.
"""

from __future__ import annotations

import gc
import gzip
import json
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from itertools import chain, count, repeat
from pathlib import Path
from typing import IO, Any, TypeVar

from stream.config import Settings, make_segmentation_stage, segmentation_config
from stream.errors import ReplayError
from stream.replay_sink import (
    Progress,
    ReplaySummary,
    Routed,
    make_producer,
    produce_lines,
    route,
)
from stream.replay_source import Item
from stream.replay_spill import FileRuns

__all__ = [
    "Progress",
    "ReplaySummary",
    "Routed",
    "count_lines",
    "file_items",
    "make_producer",
    "numbered_lines",
    "open_lines",
    "produce_lines",
    "route",
    "run_offline",
    "sourced_lines",
]


def open_lines(path: Path) -> Iterator[bytes]:
    """The lines of a JSONL file (``.gz`` decompressed), without line endings; blank lines skipped."""
    for _, line in numbered_lines(path):
        yield line


_BLOCK = 1 << 20


def numbered_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """``(line number, line)`` of a JSONL file (1-based; blank lines skipped but counted)."""
    for first, lines in _blocks(path):
        for number, line in enumerate(lines, first):
            if line and not line.isspace():  # (as `line.strip()`, without the copy)
                yield number, line


def sourced_lines(path: Path) -> Iterator[tuple[str, int, bytes]]:
    """``(file name, line number, line)`` of a JSONL file, as `Engine.feed` takes them."""
    name = path.name
    for first, lines in _blocks(path):
        if all(lines) and not any(map(bytes.isspace, lines)):  # no blank line: all of them
            yield from zip(repeat(name), count(first), lines)
        else:
            for number, line in enumerate(lines, first):
                if line and not line.isspace():
                    yield name, number, line


def _blocks(path: Path) -> Iterator[tuple[int, list[bytes]]]:
    """``(number of the first, lines)`` per block read: line endings removed, blank lines kept."""
    try:
        fh: IO[bytes] = (
            gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")  # type: ignore[assignment]  # noqa: SIM115
        )
    except OSError as exc:
        raise ReplayError(f"cannot open {path}: {exc}") from exc
    with fh:
        # Read large blocks and split them: much faster than one readline() per line.
        number = 1
        rest = b""
        while True:
            block = _read(fh, path)
            if not block:
                break
            data = rest + block
            lines = data.split(b"\n")
            rest = lines.pop()
            if b"\r" in data:
                lines = [line.rstrip(b"\r") for line in lines]
            yield number, lines
            number += len(lines)
        if rest:
            yield number, [rest.rstrip(b"\r")]


def _read(fh: IO[bytes], path: Path) -> bytes:
    """The next block of ``fh``; `ReplayError` naming ``path`` if it cannot be read (a file named
    ``.gz`` that is not gzip, a truncated or corrupt one, a read error)."""
    try:
        return fh.read(_BLOCK)
    except (OSError, EOFError, zlib.error) as exc:
        hint = ""
        if path.suffix == ".gz":
            hint = (
                " (a file whose name ends in .gz is read as gzip: rename a plain JSONL file)"
                if isinstance(exc, gzip.BadGzipFile)
                else " (a truncated or damaged gzip file: write or copy it again)"
            )
        raise ReplayError(f"cannot read {path}: {exc}{hint}") from None


def file_items(paths: list[Path]) -> Iterator[Item]:
    """Every non-blank line of JSONL files as an `Item` (origin: file name and line number)."""
    for path in paths:
        for name, number, line in sourced_lines(path):
            yield Item(name, number, None, line)


def count_lines(paths: list[Path]) -> int:
    """Non-blank lines in JSONL files."""
    return sum(1 for p in paths for _ in open_lines(p))


_T = TypeVar("_T")


def _counted(lines: Iterable[_T], bar: Progress) -> Iterator[_T]:
    """``lines`` as they are, drawn on ``bar`` as they are read."""
    n = 0
    for n, line in enumerate(lines, 1):
        if not n & 4095:
            bar.update(n, note="read")
        yield line
    bar.update(n, force=True, note="read")


def _applied_bar(read: Progress) -> Callable[[int, int], None]:
    """A second bar, of the events applied (`Engine.run`'s ``progress``)."""
    bar = Progress(None)
    bar.enabled = read.enabled  # (drawn where the first one is)

    def update(done: int, total: int) -> None:
        bar.total = total
        bar.update(done, force=done == total, note="applied")

    return update


def run_offline(
    paths: list[Path],
    out: Path,
    settings: Settings,
    as_of: str | None = None,
    segments: bool = True,
    *,
    lines: Iterable[tuple[str, int, bytes]] | None = None,
    inputs: list[str] | None = None,
    filters: dict[str, Any] | None = None,
    switches: Mapping[str, int] | None = None,
    progress: Progress | None = None,
    keep: Sequence[Path] = (),
) -> dict[str, Any]:
    """Replay files through the core in-process (no broker); write outputs to ``out``.

    Returns the report. Same files and settings → byte-identical output files. With
    ``segments=False`` only features are computed (no trainer, no scorer). ``lines``
    (``(origin, position, bytes)``, e.g. filtered or from a topic) replaces reading ``paths``;
    ``inputs`` then names them in the report, and ``filters`` records the filter that made them.
    ``switches`` (customer id → switch time, from a simulation's truth) lets the scorer see those
    customers as if their history began at their switch (`stream.core.oracle`: evaluation only).
    ``progress`` draws the lines read, then a second bar of the events applied. No output
    overwrites one of ``paths`` or of ``keep`` (other inputs of the caller, e.g. a truth file).
    """
    from stream.core.engine import Engine, Stage
    from stream.core.ingest import Ingest
    from stream.core.render import render_outputs
    from stream.core.validation import Limits

    reference_ms = None
    if as_of:
        try:
            reference_ms = int(datetime.fromisoformat(as_of).timestamp() * 1000)
        except ValueError as exc:
            raise ReplayError(f"--as-of must be RFC 3339, got {as_of!r}") from exc
    limits = Limits(settings.max_message_bytes, int(settings.future_tolerance_s * 1000))
    config = {
        "inputs": inputs if inputs is not None else [p.name for p in paths],
        **({"filters": filters} if filters else {}),
        "as_of": as_of,
        "lateness_days": settings.lateness_days,
        "max_message_bytes": settings.max_message_bytes,
        "future_tolerance_s": settings.future_tolerance_s,
        **(segmentation_config(settings) if segments else {"segments": None}),
    }
    stages: list[Stage] = []
    if segments:
        segmentation = make_segmentation_stage(settings)
        stages.append(segmentation)
        if switches is not None:
            from stream.core.oracle import SwitchOracle

            oracle = SwitchOracle(switches)
            segmentation.segmenter.view = oracle.vector
            stages.insert(0, oracle)
            config["oracle_switches"] = len(switches)
    # The engine holds every event until the run and every customer until the end; none of them
    # is in a reference cycle, so the cyclic collector would only re-scan an ever-growing heap
    # (≈ 40 % of the time). Pause it until they are all gone.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    runs = FileRuns() if settings.replay_run_events else None
    try:
        engine = Engine(
            Ingest(limits, lateness_days=settings.lateness_days),
            stages,
            reference_ms=reference_ms,
            runs=runs,
            run_events=settings.replay_run_events,
        )
        feed = lines if lines is not None else chain.from_iterable(map(sourced_lines, paths))
        engine.feed(feed if progress is None else _counted(feed, progress))
        result = engine.run(None if progress is None else _applied_bar(progress))
        del engine, stages
        files = render_outputs(result, config)
        del result
    finally:
        if runs is not None:
            runs.close()
        if gc_was_enabled:
            gc.enable()
    inputs_here = {p.resolve() for p in [*paths, *keep]}
    if clobbered := sorted(name for name in files if (out / name).resolve() in inputs_here):
        raise ReplayError(
            f"--out {out} would overwrite the input {', '.join(clobbered)} with an output of the "
            "same name: give another --out (nothing was written)"
        )
    out.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (out / name).write_bytes(data)
    report: dict[str, Any] = json.loads(files["report.json"])
    return report
