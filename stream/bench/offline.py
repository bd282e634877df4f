"""``microseg bench``, offline part: the offline path on the synthetic data set (`stream.bench.data`).

It writes a seeded multi-stream JSONL.gz file (all three streams in a realistic mix, with a few
bad lines, re-sent events and late arrivals) into a temporary directory, then measures in the same
run, ``--repeat`` times each, and reports the medians of:

1. reading and decoding only (gzip + ``json.loads`` per line), the floor any consumer pays;
2. reading and validating every line with the core `Validator`;
3. the offline replay of features (`stream.replay.run_offline` without segmentation: read,
   validate, sort, apply, write) — the features issue's target;
4. the full offline replay with segmentation (trainer inline, scorer in ticks), once: it takes
   ten times as long as the others, and the end-to-end part follows in the same command;

and the ratio (3)/(1), the encoded state size per customer, the in-memory size per customer of
the offline engine, and the segmentation figures (`segmentation_figures`): trainer cost per
sample and per publish, scoring cost per customer update, model snapshot size.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from stream.bench.data import generate
from stream.config import Settings
from stream.core.model import SegmentModel
from stream.core.state import CustomerState, encoded_size
from stream.core.validation import Limits, Validator
from stream.replay import numbered_lines, run_offline

TARGET_EVENTS_PER_S = 100_000
TARGET_STATE_BYTES = 400


def _read_decode(path: Path) -> int:
    n = 0
    loads = json.loads
    for _, line in numbered_lines(path):
        with contextlib.suppress(ValueError):
            loads(line)
        n += 1
    return n


def _read_validate(path: Path, limits: Limits) -> int:
    validate = Validator(limits).validate
    n = 0
    for _, line in numbered_lines(path):
        validate(line, None, keyed=False)
        n += 1
    return n


def _timed(fn: Callable[[], object], repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        gc.collect()
        started = time.perf_counter()
        fn()
        out.append(time.perf_counter() - started)
    return out


def _engine_bytes_per_customer(path: Path, settings: Settings) -> float:
    """Approximate in-memory bytes per customer of the offline engine's state store."""
    from stream.core.engine import Engine
    from stream.core.ingest import Ingest

    limits = Limits(settings.max_message_bytes, int(settings.future_tolerance_s * 1000))
    engine = Engine(Ingest(limits, lateness_days=settings.lateness_days))
    engine.feed((path.name, n, line) for n, line in numbered_lines(path))
    engine.run()
    states = engine.states
    if not states:
        return 0.0
    total = sys.getsizeof(states)
    for cid, s in states.items():
        total += sys.getsizeof(cid) + sys.getsizeof(s)
        total += sum(map(sys.getsizeof, (s.sums, s.events, s.partitions, s.offsets, s.recent_ids)))
        total += sum(map(sys.getsizeof, s.recent_ids))  # (the sums are a float32 array)
    return total / len(states)


def run_bench(events: int = 300_000, customers: int = 30_000, repeat: int = 3) -> dict[str, Any]:
    """Generate the data set, measure, and return every figure (see the module docstring)."""
    settings = Settings.load()
    limits = Limits(settings.max_message_bytes, int(settings.future_tolerance_s * 1000))
    with tempfile.TemporaryDirectory(prefix="microseg-bench-") as tmp:
        data = Path(tmp) / "synthetic.jsonl.gz"
        started = time.perf_counter()
        lines = generate(data, events, customers)
        generated_s = time.perf_counter() - started
        out = Path(tmp) / "out"
        t_read = _timed(lambda: _read_decode(data), repeat)
        t_valid = _timed(lambda: _read_validate(data, limits), repeat)
        t_full = _timed(lambda: run_offline([data], out, settings, segments=False), repeat)
        report = json.loads((out / "report.json").read_text())
        t_seg = _timed(lambda: run_offline([data], out, settings), 1)  # ≈ 40 s a run
        memory = _engine_bytes_per_customer(data, settings)
    segmentation = segmentation_figures(repeat)
    read_rate = lines / statistics.median(t_read)
    valid_rate = lines / statistics.median(t_valid)
    full_rate = lines / statistics.median(t_full)
    state_bytes = encoded_size()
    counts = report["counts"]
    return {
        "events": lines,
        "customers": counts.get("customers", 0),
        "repeat": repeat,
        "generate_seconds": round(generated_s, 3),
        "read_decode_events_per_s": round(read_rate),
        "read_validate_events_per_s": round(valid_rate),
        "offline_replay_events_per_s": round(full_rate),
        "offline_over_read_decode": round(full_rate / read_rate, 3),
        "offline_replay_with_segments_events_per_s": round(lines / statistics.median(t_seg)),
        "segmentation": segmentation,
        "seconds": {
            "read_decode": [round(t, 4) for t in t_read],
            "read_validate": [round(t, 4) for t in t_valid],
            "offline_replay": [round(t, 4) for t in t_full],
            "offline_replay_with_segments": [round(t, 4) for t in t_seg],
        },
        "counts": counts,
        "state_bytes_per_customer": state_bytes,
        "engine_memory_bytes_per_customer": round(memory),
        "machine": {
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
            "implementation": platform.python_implementation(),
            "platform": platform.platform(),
            "processor": platform.machine(),
        },
        "targets": {
            "offline_events_per_s": {
                "target": TARGET_EVENTS_PER_S,
                "value": round(full_rate),
                "met": full_rate >= TARGET_EVENTS_PER_S,
            },
            "state_bytes_per_customer": {
                "target": TARGET_STATE_BYTES,
                "value": state_bytes,
                "met": state_bytes <= TARGET_STATE_BYTES,
            },
        },
    }


def persona_states(customers: int = 2000) -> tuple[list[tuple[str, CustomerState]], int]:
    """States of simulated persona customers (30 days, sorted by id) and the watermark."""
    from stream.core.engine import Engine
    from stream.core.ingest import Ingest
    from stream.core.simulate import iter_lines, plan

    engine = Engine(Ingest(check_future=False))
    engine.feed(
        ("sim", i, line.encode()) for i, line in enumerate(iter_lines(plan(customers, 30, 5)))
    )
    result = engine.run()
    return [(cid, engine.states[cid]) for cid in sorted(engine.states)], result.watermark or 0


def seed_model(settings: Settings, customers: int = 2000) -> SegmentModel:
    """A model as the trainer configured by ``settings`` publishes it from persona vectors.

    The end-to-end bench puts it on ``segment-model`` before a worker starts, so customers are
    assigned (and segment changes emitted) from the first event.
    """
    from stream.config import make_trainer
    from stream.core.features import vector

    states, at = persona_states(customers)
    trainer = make_trainer(settings)
    for _, s in states:
        trainer.learn_one(vector(s, at), at)
    return trainer.publish(at)


def segmentation_figures(repeat: int, customers: int = 2000, batch: int = 500) -> dict[str, Any]:
    """Trainer cost per training and per monitoring sample and per publish, scoring cost per
    customer update, snapshot size.

    Customers come from the persona simulator (30 days), so vectors are realistic; the trainer
    learns each customer's vector at the end, the scorer scores them in batches. Medians.
    """
    from stream.core.features import vector
    from stream.core.segmentation import Segmenter
    from stream.core.trainer import Trainer

    states, at = persona_states(customers)
    vectors = [vector(s, at) for _, s in states]
    learn, publish, score, watch = [], [], [], []
    trainer = Trainer()
    for _ in range(repeat):
        trainer = Trainer(publish_every=10**9, warmup=10**9)
        started = time.perf_counter()
        for x in vectors:
            trainer.learn_one(x, at)
        learn.append((time.perf_counter() - started) / len(vectors))
        started = time.perf_counter()
        trainer.publish(at)
        publish.append(time.perf_counter() - started)
        started = time.perf_counter()
        for x in vectors:  # monitoring samples: drift detectors and the window, not River
            trainer.watch_one(x, at)
        watch.append((time.perf_counter() - started) / len(vectors))
    model = trainer.model
    assert model is not None
    for _ in range(repeat):
        segmenter = Segmenter()
        segmenter.set_model(model)
        for _, s in states:
            s.segment_id = 0
        started = time.perf_counter()
        for i in range(0, len(states), batch):
            segmenter.score([(cid, s, at) for cid, s in states[i : i + batch]])
        score.append((time.perf_counter() - started) / len(states))
    return {
        "customers": len(states),
        "trainer_us_per_sample": round(statistics.median(learn) * 1e6, 1),
        "monitor_us_per_sample": round(statistics.median(watch) * 1e6, 1),
        "publish_ms": round(statistics.median(publish) * 1e3, 2),
        "scoring_us_per_update": round(statistics.median(score) * 1e6, 2),
        "scoring_batch": batch,
        "snapshot_bytes": len(model.encode()),
        "segments": len(model.segments),
        "micro_clusters": trainer.max_micro_clusters,
    }


def render(r: dict[str, Any]) -> str:
    """The human-readable table."""
    t = r["targets"]
    rows = [
        ("read + decode (gzip + json.loads)", f"{r['read_decode_events_per_s']:>12,} events/s", ""),
        (
            "read + validate (core Validator)",
            f"{r['read_validate_events_per_s']:>12,} events/s",
            "",
        ),
        (
            "offline replay (run_offline)",
            f"{r['offline_replay_events_per_s']:>12,} events/s",
            f"target ≥ {t['offline_events_per_s']['target']:,}: "
            + ("met" if t["offline_events_per_s"]["met"] else "NOT met"),
        ),
        ("offline / read+decode", f"{r['offline_over_read_decode']:>12.2f} ×", ""),
        (
            "offline replay with segmentation",
            f"{r['offline_replay_with_segments_events_per_s']:>12,} events/s",
            "",
        ),
        ("trainer cost per sample", f"{r['segmentation']['trainer_us_per_sample']:>12,.0f} µs", ""),
        (
            "monitoring cost per sample",
            f"{r['segmentation']['monitor_us_per_sample']:>12,.0f} µs",
            "drift detectors + window",
        ),
        ("trainer publish (derive + name)", f"{r['segmentation']['publish_ms']:>12,.1f} ms", ""),
        (
            "scoring cost per customer update",
            f"{r['segmentation']['scoring_us_per_update']:>12,.1f} µs",
            f"batches of {r['segmentation']['scoring_batch']}",
        ),
        ("model snapshot size", f"{r['segmentation']['snapshot_bytes']:>12,} bytes", ""),
        (
            "state per customer (encoded)",
            f"{r['state_bytes_per_customer']:>12,} bytes",
            f"target ≤ {t['state_bytes_per_customer']['target']}: "
            + ("met" if t["state_bytes_per_customer"]["met"] else "NOT met"),
        ),
        ("engine memory per customer", f"{r['engine_memory_bytes_per_customer']:>12,} bytes", ""),
    ]
    m = r["machine"]
    head = (
        f"microseg bench: {r['events']:,} events, {r['customers']:,} customers, "
        f"median of {r['repeat']} runs\n"
        f"machine: {m['cpu_count']} CPUs, {m['implementation']} {m['python']}, {m['platform']}\n"
    )
    width = max(len(a) for a, _, _ in rows)
    return head + "\n".join(f"  {a:<{width}}  {b}  {c}".rstrip() for a, b, c in rows)
