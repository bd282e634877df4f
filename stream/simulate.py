"""``microseg simulate``: write a simulated replay file (JSONL, gzip if ``.gz``) and its truth.

The events and the truth come from the pure generator `stream.core.simulate`; this module only
writes them. Output is byte-for-byte reproducible: the same arguments give the same files (the
gzip header carries no file name and no time stamp). Files are written to a temporary name next to
the target and renamed into place, so a reader never sees half a file.
"""

from __future__ import annotations

import gzip
import json
import os
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from stream.core.events import STREAM_OF_TYPE
from stream.core.scenarios import CHURN_SHARE, churn_day, scenario_plan
from stream.core.simulate import iter_events, truth


@contextmanager
def _atomic(path: Path) -> Iterator[Callable[[bytes], int]]:
    """Yield a write function for ``path`` (gzip if it ends in ``.gz``); rename on success."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as raw:
            if path.suffix == ".gz":
                with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
                    yield gz.write
            else:
                yield raw.write
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def run_simulate(
    out_events: Path,
    out_truth: Path,
    customers: int,
    days: int,
    seed: int,
    scenario: str = "default",
) -> dict[str, Any]:
    """Simulate ``customers`` over ``days`` from ``seed``; write events and truth; summarise.

    ``scenario`` is one of `stream.core.scenarios.SCENARIOS` (``default``: the base plan).

    Returns a JSON-ready summary: the paths, the parameters, the number of events in total, per
    stream and per type, and how many customers end in each persona.
    """
    p = scenario_plan(scenario, customers, days, seed)
    answer = truth(p)
    answer["parameters"]["scenario"] = scenario
    if scenario == "churn-emerging":
        answer["parameters"]["churn_day"] = churn_day(days)
        answer["parameters"]["churn_share"] = CHURN_SHARE
    by_type: Counter[str] = Counter()
    per_customer: Counter[str] = Counter()
    dumps = json.JSONEncoder(separators=(",", ":")).encode
    with _atomic(Path(out_events)) as write:
        batch: list[str] = []
        for event in iter_events(p):
            by_type[event["type"]] += 1
            per_customer[event["customer_id"]] += 1
            batch.append(dumps(event))
            if len(batch) >= 10_000:
                write(("\n".join(batch) + "\n").encode())
                batch.clear()
        if batch:
            write(("\n".join(batch) + "\n").encode())
    by_stream: Counter[str] = Counter()
    for kind, n in by_type.items():
        by_stream[STREAM_OF_TYPE[kind].value] += n
    answer["events"] = {
        "total": sum(by_type.values()),
        "by_stream": dict(sorted(by_stream.items())),
        "by_type": dict(sorted(by_type.items())),
    }
    for c in answer["customers"]:
        c["events"] = per_customer[c["customer_id"]]
    with _atomic(Path(out_truth)) as write:
        write((json.dumps(answer, indent=1) + "\n").encode())
    return {
        "out_events": str(out_events),
        "out_truth": str(out_truth),
        "customers": customers,
        "days": days,
        "seed": seed,
        "scenario": scenario,
        **answer["events"],
        "persona_end_counts": answer["persona_end_counts"],
    }
