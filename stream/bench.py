"""``microseg bench``: throughput of the offline path on a deterministic synthetic data set.

It writes a seeded multi-stream JSONL.gz file (all three streams in a realistic mix, with a few
bad lines, re-sent events and late arrivals) into a temporary directory, then measures in the same
run, ``--repeat`` times each, and reports the medians of:

1. reading and decoding only (gzip + ``json.loads`` per line), the floor any consumer pays;
2. reading and validating every line with the core `Validator`;
3. the offline replay of features (`stream.replay.run_offline` without segmentation: read,
   validate, sort, apply, write) — the features issue's target;
4. the full offline replay with segmentation (trainer inline, scorer in ticks);

and the ratio (3)/(1), the encoded state size per customer, the in-memory size per customer of
the offline engine, and the segmentation figures (`segmentation_figures`): trainer cost per
sample and per publish, scoring cost per customer update, model snapshot size.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import gzip
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from stream.config import Settings
from stream.core.state import encoded_size
from stream.core.validation import Limits, Validator
from stream.replay import numbered_lines, run_offline

TARGET_EVENTS_PER_S = 100_000
TARGET_STATE_BYTES = 400
_T0_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z
_SPAN_MS = 90 * 86_400_000
_OFFSETS = ("+00:00", "+00:00", "+00:00", "Z", "+01:00", "+02:00", "-05:00", "+05:30", "-08:00")
_CHANNELS = ("web", "web", "web", "mobile", "mobile", "app", "store", "phone", "other")
_CATEGORIES = ("books", "shoes", "toys", "garden", "grocery", "beauty", "electronics", "home")
_CLICK = (
    ("page_view", 30),
    ("product_view", 25),
    ("session_start", 12),
    ("search", 6),
    ("add_to_cart", 5),
    ("remove_from_cart", 1),
    ("checkout_start", 2),
)
_EMAIL = (
    ("email_sent", 10),
    ("email_delivered", 9),
    ("email_open", 4),
    ("email_click", 1.5),
    ("email_bounce", 0.3),
    ("email_unsubscribe", 0.15),
    ("email_complaint", 0.05),
)
_PURCHASE = (("purchase", 7.5), ("refund", 0.5))
_TYPES = tuple(t for t, _ in _CLICK + _EMAIL + _PURCHASE)
_WEIGHTS = tuple(w for _, w in _CLICK + _EMAIL + _PURCHASE)
_BAD = (
    b"this is not json",
    b'{"event_id": "x", "customer_id": "c", "type": "purchase"',
    b'{"event_id":"x","customer_id":"c","type":"page_click","ts":"2024-02-01T10:00:00Z"}',
    b'{"event_id":"x","customer_id":"c","type":"purchase","ts":"2024-02-01T10:00:00Z","order_id":"o","amount":"9.99"}',
    b'{"event_id":"x","customer_id":"c","type":"purchase","ts":"2024-02-01T10:00:00Z","order_id":"o","amount":-3.0}',
    b'{"event_id":"x","customer_id":"c","type":"page_view","ts":"2024-02-01T10:00:00"}',
    b'{"event_id":"x","customer_id":"c","type":"email_open","ts":"2024-02-01T10:00:00Z"}',
    b"[1, 2, 3]",
)


def _iso(ms: int, offset: str) -> str:
    """RFC 3339 text of ``ms`` in the given UTC offset (second precision, sometimes millis)."""
    sign = -1 if offset.startswith("-") else 1
    shift = 0 if offset == "Z" else sign * (int(offset[1:3]) * 60 + int(offset[4:6])) * 60_000
    local = ms + shift
    secs, millis = divmod(local, 1000)
    days, rem = divmod(secs, 86_400)
    y, m, d = _civil(days)
    hh, rem = divmod(rem, 3600)
    mm, ss = divmod(rem, 60)
    frac = f".{millis:03d}" if millis else ""
    return f"{y:04d}-{m:02d}-{d:02d}T{hh:02d}:{mm:02d}:{ss:02d}{frac}{offset}"


def _civil(days: int) -> tuple[int, int, int]:
    """Proleptic Gregorian (year, month, day) of days since 1970-01-01 (Hinnant's algorithm)."""
    z = days + 719_468
    era = z // 146_097
    doe = z - era * 146_097
    yoe = (doe - doe // 1460 + doe // 36_524 - doe // 146_096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    return yoe + era * 400 + (m <= 2), m, d


def generate(path: Path, events: int, customers: int, seed: int = 7) -> int:
    """Write ``events`` lines of synthetic JSONL.gz to ``path``; return the number of lines.

    Deterministic for a given (events, customers, seed). About 0.3 % of the lines are bad (every
    kind of rejection), 1 % re-send an earlier event and 2 % arrive late (out of time order).
    """
    rng = random.Random(seed)
    weights = [1.0 / (i + 1) ** 0.6 for i in range(customers)]  # a few heavy customers, long tail
    cust = rng.choices(range(customers), weights=weights, k=events)
    kinds = rng.choices(_TYPES, weights=_WEIGHTS, k=events)
    sent: list[bytes] = []
    with gzip.open(path, "wb", compresslevel=6) as fh:
        for i in range(events):
            u = rng.random()
            if u < 0.003:
                line = rng.choice(_BAD)
            elif u < 0.013 and sent:
                line = rng.choice(sent)
            else:
                line = _event(rng, i, cust[i], kinds[i], events)
                if len(sent) < 4096:
                    sent.append(line)
                else:
                    sent[rng.randrange(4096)] = line
            fh.write(line + b"\n")
    return events


def _event(rng: random.Random, i: int, c: int, kind: str, events: int) -> bytes:
    ms = _T0_MS + (i * _SPAN_MS) // events + rng.randrange(3_600_000)
    if rng.random() < 0.02:
        ms -= rng.randrange(40 * 86_400_000)  # late: up to 40 days, some beyond the bound
    ev: dict[str, Any] = {
        "event_id": f"e{i:09d}",
        "customer_id": f"cust-{c:07d}",
        "type": kind,
        "ts": _iso(ms, rng.choice(_OFFSETS)),
    }
    if kind.startswith("email_"):
        ev["campaign_id"] = f"camp-{rng.randrange(40)}"
        if rng.random() < 0.5:
            ev["message_id"] = f"m{i}"
        if kind == "email_click":
            ev["url"] = f"https://shop.example/p/{rng.randrange(5000)}"
    elif kind in ("purchase", "refund"):
        n = rng.choice((1, 1, 1, 2, 2, 3, 4))
        lines = [
            (rng.randrange(20_000), rng.choice(_CATEGORIES), rng.choice((1, 1, 1, 2, 3)),
             round(rng.uniform(1, 120), 2))
            for _ in range(n)
        ]  # fmt: skip
        items = [
            {"product_id": f"p{p}", "category": c, "quantity": q, "unit_price": u}
            for p, c, q, u in lines
        ]
        ev["order_id"] = f"o{i}"
        ev["amount"] = round(sum(q * u for _, _, q, u in lines), 2)
        ev["currency"] = "EUR"
        ev["channel"] = rng.choice(_CHANNELS)
        if rng.random() < 0.2:
            ev["discount"] = round(rng.uniform(0.5, 10), 2)
        if rng.random() < 0.05:
            ev["coupon_code"] = "SPRING"
        ev["items"] = items
    else:
        ev["session_id"] = f"s{c}-{i // 50}"
        ev["channel"] = rng.choice(_CHANNELS)
        if kind in ("product_view", "add_to_cart", "remove_from_cart"):
            ev["product_id"] = f"p{rng.randrange(20_000)}"
            ev["category"] = rng.choice(_CATEGORIES)
            ev["price"] = round(rng.uniform(1, 120), 2)
        elif kind == "search":
            ev["query"] = rng.choice(_CATEGORIES) + " sale"
        elif kind == "page_view":
            ev["page"] = f"/c/{rng.choice(_CATEGORIES)}"
    if rng.random() < 0.1:
        ev["user_agent"] = "Mozilla/5.0"  # an unknown extra field: accepted and ignored
    return json.dumps(ev, separators=(",", ":")).encode()


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
        total += sum(map(sys.getsizeof, s.sums)) + sum(map(sys.getsizeof, s.recent_ids))
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
        t_seg = _timed(lambda: run_offline([data], out, settings), repeat)
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


def segmentation_figures(repeat: int, customers: int = 2000, batch: int = 500) -> dict[str, Any]:
    """Trainer cost per sample and per publish, scoring cost per customer update, snapshot size.

    Customers come from the persona simulator (30 days), so vectors are realistic; the trainer
    learns each customer's vector at the end, the scorer scores them in batches. Medians.
    """
    from stream.core.engine import Engine
    from stream.core.features import vector
    from stream.core.ingest import Ingest
    from stream.core.segmentation import Segmenter
    from stream.core.simulate import iter_lines, plan
    from stream.core.trainer import Trainer

    engine = Engine(Ingest(check_future=False))
    engine.feed(
        ("sim", i, line.encode()) for i, line in enumerate(iter_lines(plan(customers, 30, 5)))
    )
    result = engine.run()
    at = result.watermark or 0
    states = [(cid, engine.states[cid]) for cid in sorted(engine.states)]
    vectors = [vector(s, at) for _, s in states]
    learn, publish, score = [], [], []
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


def main(args: argparse.Namespace) -> int:
    """CLI entry of ``microseg bench``."""
    if args.events < 1 or args.customers < 1 or args.repeat < 1:
        print("microseg bench: --events, --customers and --repeat must be ≥ 1", file=sys.stderr)
        return 2
    result = run_bench(args.events, args.customers, args.repeat)
    if args.json:
        print(json.dumps(result, sort_keys=True))
    else:
        print(render(result))
    return 0
