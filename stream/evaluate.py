"""``microseg evaluate``: replay a simulated file offline and score the segments against its truth.

Runs the offline replay (`stream.replay.run_offline`, the same core as the worker) with the
configured settings — ``--segments`` overrides the number of segments, normally the number of
planted personas — then `stream.core.evaluation.evaluate` on its outputs, and writes
``evaluation.json`` next to them. Deterministic like the replay itself.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from stream import paths
from stream.config import Settings
from stream.core.drift_eval import drift_report
from stream.core.evaluation import evaluate
from stream.core.features import NAMES
from stream.core.oracle import active_switches
from stream.errors import ReplayError
from stream.replay import run_offline

_FIX = "give the truth file `microseg simulate` wrote (its --truth)"


def read_truth(path: Path) -> dict[str, Any]:
    """The answer key of `microseg simulate` at ``path``; `ReplayError` naming --truth unless
    it is one (not JSON, or no ``parameters`` and ``customers``)."""
    try:
        answer: object = json.loads(path.read_bytes())
    except OSError as exc:
        raise ReplayError(f"cannot read --truth {path}: {exc.strerror or exc}") from None
    except ValueError:  # (UnicodeDecodeError is one)
        raise ReplayError(f"--truth {path} is not JSON: {_FIX}") from None
    params = answer.get("parameters") if isinstance(answer, dict) else None
    if not (
        isinstance(answer, dict)
        and isinstance(params, dict)
        and {"start", "end", "emerge_day"} <= params.keys()
        and isinstance(answer.get("customers"), list)
    ):
        raise ReplayError(
            f"--truth {path} is not a truth file (no parameters or customers): {_FIX}"
        )
    return answer


def run_evaluate(
    events: list[Path],
    truth: Path,
    out: Path,
    segments: int | None = None,
    warmup_days: float = 30.0,
    oracle: bool = False,
) -> dict[str, Any]:
    """Replay ``events`` offline into ``out``, evaluate against ``truth`` (spurious changes
    counted after ``warmup_days``); return the report. ``oracle``: the scorer sees each migrant
    to an active persona as if their history began at their switch (`stream.core.oracle`), so
    the migration figures are the ceiling of any change detector."""
    if not warmup_days >= 0:
        raise ReplayError(f"the warm-up must be 0 days or more, not {warmup_days}")
    for path in events:
        paths.input_file(path, "FILE")
    paths.input_file(truth, "--truth")
    paths.output_dir(out, "--out")
    if (out / "evaluation.json").resolve() in {p.resolve() for p in [*events, truth]}:
        raise ReplayError(f"--out {out} would overwrite the input evaluation.json with the "
                          "evaluation: give another --out")  # fmt: skip
    answer = read_truth(truth)
    settings = Settings.load(**({"segments": segments} if segments else {}))
    switches = active_switches(answer) if oracle else None
    report = run_offline(events, out, settings, switches=switches, keep=[truth])
    changes = [json.loads(line) for line in (out / "segment-changes.jsonl").open("rb")]
    features = {}
    for line in (out / "features.jsonl").open("rb"):
        row = json.loads(line)
        features[row["customer_id"]] = [row["features"][k] for k in NAMES]
    if not any(
        isinstance(c, dict) and c.get("customer_id") in features for c in answer["customers"]
    ):
        raise ReplayError(
            f"no customer of --truth {truth} has an event in {', '.join(map(str, events))}: give "
            "the events file written with that truth file (`microseg simulate --out F --truth T`)"
        )
    result = evaluate(changes, features, answer, settings.segments, warmup_days)
    lifecycle = [json.loads(line) for line in (out / "segment-events.jsonl").open("rb")]
    result["drift"] = drift_report(lifecycle, changes, answer)
    result["replay"] = {"lines": report["counts"].get("lines", 0), "out": str(out)}
    result["settings"] = report["config"]
    if oracle:  # said at the top: these migration figures are a ceiling, not the scorer's own
        result["oracle"] = report["oracle"]
    (out / "evaluation.json").write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    return result
