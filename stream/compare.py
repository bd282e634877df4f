"""``microseg replay --compare DIR_A DIR_B``: what differs between two offline replay outputs.

Reads what `stream.replay.run_offline` wrote (``report.json``, ``segment-changes.jsonl``,
``features.jsonl``, ``dead-letter.jsonl`` through the report) and reports:

* settings that differ (the report's ``config``);
* customers whose final segment differs, by segment id and by segment name (a segment's current
  name in its run's report), with a few examples and the adjusted Rand index of the two
  assignments (1.0: the same partition of the customers, whatever the ids and names);
* per-segment sizes, segments matched by name and, separately, by id;
* segment changes and dead letters, by reason.

Customers are shown by the id the outputs carry (``customer_id``, the contract's pseudonymous
id); nothing else about them is printed. `diff_runs` is pure; `load_run` reads a directory.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stream.core.evaluation import adjusted_rand
from stream.errors import ReplayError

Segment = tuple[int | None, str | None]
"""A customer's final ``(segment id, segment name)``; ``(None, None)``: never assigned."""

NONE: Segment = (None, None)


@dataclass
class RunOutputs:
    """What `diff_runs` needs of one offline run."""

    config: dict[str, Any] = field(default_factory=dict)
    customers: set[str] = field(default_factory=set)
    final: dict[str, Segment] = field(default_factory=dict)
    sizes: dict[int, tuple[str, int]] = field(default_factory=dict)  # id → (name, size)
    changes_by_reason: Counter[str] = field(default_factory=Counter)
    dead_letters_by_reason: Counter[str] = field(default_factory=Counter)


def load_run(directory: Path) -> RunOutputs:
    """Read one offline run's output directory."""
    if not directory.is_dir():
        raise ReplayError(f"--compare {directory} is not a directory: give two output "
                          "directories of `microseg replay --offline --out DIR`")  # fmt: skip
    report_path = directory / "report.json"
    if not report_path.is_file():
        raise ReplayError(f"{directory} holds no report.json (not an offline replay output)")
    try:
        report = json.loads(report_path.read_bytes())
    except ValueError:
        report = None
    if not isinstance(report, dict):
        raise ReplayError(f"{report_path} is not a report of `microseg replay --offline` (not a "
                          "JSON object)")  # fmt: skip
    run = RunOutputs(config=report.get("config", {}))
    run.dead_letters_by_reason.update(report.get("dead_lettered_by_reason", {}))
    for seg in report.get("segments", []):
        run.sizes[seg["segment_id"]] = (seg["name"], seg["size"])
    features = directory / "features.jsonl"
    if features.is_file():
        with features.open("rb") as fh:
            run.customers.update(json.loads(line)["customer_id"] for line in fh)
    changes = directory / "segment-changes.jsonl"
    versions: dict[str, int] = {}
    if changes.is_file():
        with changes.open("rb") as fh:
            for line in fh:
                change = json.loads(line)
                run.changes_by_reason[change["reason"]] += 1
                cid, version = change["customer_id"], change["version"]
                if version >= versions.get(cid, 0):
                    versions[cid] = version
                    cur = change.get("current")
                    run.final[cid] = (cur["segment_id"], cur["segment_name"]) if cur else NONE
    # A segment's name is the one its run ended with (names are refined as models change).
    for cid, (sid, _) in run.final.items():
        if sid is not None and sid in run.sizes:
            run.final[cid] = (sid, run.sizes[sid][0])
    run.customers.update(run.final)
    return run


def _delta(a: Counter[str], b: Counter[str]) -> dict[str, dict[str, int]]:
    return {k: {"a": a[k], "b": b[k], "delta": b[k] - a[k]} for k in sorted(set(a) | set(b))}


def diff_runs(a: RunOutputs, b: RunOutputs, examples: int = 5) -> dict[str, Any]:
    """The differences between two runs (B minus A), as one JSON-able object."""
    both = sorted(a.customers & b.customers)
    fa = [a.final.get(c, NONE) for c in both]
    fb = [b.final.get(c, NONE) for c in both]
    by_id = [c for c, x, y in zip(both, fa, fb, strict=True) if x[0] != y[0]]
    by_name = [c for c, x, y in zip(both, fa, fb, strict=True) if x[1] != y[1]]
    differing = sorted(set(by_id) | set(by_name))[:examples]

    def seg(s: Segment) -> dict[str, Any]:
        return {"segment_id": s[0], "segment_name": s[1]}

    names_a = {name: (sid, size) for sid, (name, size) in a.sizes.items()}
    names_b = {name: (sid, size) for sid, (name, size) in b.sizes.items()}
    by_name_rows = []
    for name in sorted(set(names_a) | set(names_b)):
        ia, sa = names_a.get(name, (None, 0))
        ib, sb = names_b.get(name, (None, 0))
        by_name_rows.append(
            {"name": name, "a_id": ia, "b_id": ib, "a_size": sa, "b_size": sb, "delta": sb - sa}
        )
    by_id_rows = []
    for sid in sorted(set(a.sizes) | set(b.sizes)):
        na, sa = a.sizes.get(sid, (None, 0))
        nb, sb = b.sizes.get(sid, (None, 0))
        by_id_rows.append(
            {"segment_id": sid, "a_name": na, "b_name": nb, "a_size": sa, "b_size": sb,
             "delta": sb - sa}
        )  # fmt: skip
    keys = sorted(set(a.config) | set(b.config))
    return {
        "config_differences": {
            k: {"a": a.config.get(k), "b": b.config.get(k)}
            for k in keys
            if a.config.get(k) != b.config.get(k)
        },
        "customers": {
            "a": len(a.customers),
            "b": len(b.customers),
            "in_both": len(both),
            "only_in_a": len(a.customers - b.customers),
            "only_in_b": len(b.customers - a.customers),
            "final_segment_differs_by_id": len(by_id),
            "final_segment_differs_by_name": len(by_name),
            "adjusted_rand_index": round(adjusted_rand(fa, fb), 4) if both else None,
            "examples": [
                {"customer_id": c, "a": seg(a.final.get(c, NONE)), "b": seg(b.final.get(c, NONE))}
                for c in differing
            ],
        },
        "segments_by_name": by_name_rows,
        "segments_by_id": by_id_rows,
        "changes": {
            "a": sum(a.changes_by_reason.values()),
            "b": sum(b.changes_by_reason.values()),
            "by_reason": _delta(a.changes_by_reason, b.changes_by_reason),
        },
        "dead_letters": {
            "a": sum(a.dead_letters_by_reason.values()),
            "b": sum(b.dead_letters_by_reason.values()),
            "by_reason": _delta(a.dead_letters_by_reason, b.dead_letters_by_reason),
        },
    }


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    cells = [header] + [["-" if v is None else str(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    return ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in cells]


def render(diff: dict[str, Any], a: str = "A", b: str = "B") -> str:
    """The diff as text tables (B minus A)."""
    out = [f"A = {a}", f"B = {b}", ""]
    cfg = diff["config_differences"]
    out.append("settings that differ:" + ("" if cfg else " none"))
    out += (
        _table(["setting", "A", "B"], [[k, v["a"], v["b"]] for k, v in cfg.items()]) if cfg else []
    )
    c = diff["customers"]
    out += [
        "",
        f"customers: A {c['a']}, B {c['b']}, in both {c['in_both']} "
        f"(only in A {c['only_in_a']}, only in B {c['only_in_b']})",
        f"final segment differs: {c['final_segment_differs_by_id']} by segment id, "
        f"{c['final_segment_differs_by_name']} by segment name; adjusted Rand index of the two "
        f"assignments {c['adjusted_rand_index']}",
    ]
    if c["examples"]:
        out += _table(
            ["customer_id", "A segment", "B segment"],
            [[e["customer_id"], _seg(e["a"]), _seg(e["b"])] for e in c["examples"]],
        )
    out += ["", "segment sizes, segments matched by name:"]
    out += _table(["name", "A id", "B id", "A size", "B size", "B-A"],
                  [[r["name"], r["a_id"], r["b_id"], r["a_size"], r["b_size"], f"{r['delta']:+d}"]
                   for r in diff["segments_by_name"]])  # fmt: skip
    out += ["", "segment sizes, segments matched by id:"]
    out += _table(["id", "A name", "B name", "A size", "B size", "B-A"],
                  [[r["segment_id"], r["a_name"], r["b_name"], r["a_size"], r["b_size"],
                    f"{r['delta']:+d}"] for r in diff["segments_by_id"]])  # fmt: skip
    for title in ("changes", "dead_letters"):
        d = diff[title]
        out += ["", f"{title.replace('_', ' ')} by reason (A {d['a']}, B {d['b']}):"]
        rows = [[k, v["a"], v["b"], f"{v['delta']:+d}"] for k, v in d["by_reason"].items()]
        out += _table(["reason", "A", "B", "B-A"], rows) if rows else ["  none"]
    return "\n".join(out)


def _seg(s: dict[str, Any]) -> str:
    return "none" if s["segment_id"] is None else f"{s['segment_id']} {s['segment_name']}"


def run_compare(dir_a: Path, dir_b: Path, as_json: bool = False, examples: int = 5) -> int:
    """CLI entry: print the differences between two offline runs (text, or JSON)."""
    diff = diff_runs(load_run(dir_a), load_run(dir_b), examples)
    if as_json:
        print(json.dumps({"a": str(dir_a), "b": str(dir_b), **diff}, indent=2, sort_keys=True))
    else:
        print(render(diff, str(dir_a), str(dir_b)))
    return 0
