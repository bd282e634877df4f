"""`microseg replay --compare`: the diff of two offline runs, checked against the outputs."""

from __future__ import annotations

import gzip
import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from stream.cli import main
from stream.compare import RunOutputs, diff_runs, load_run, render
from stream.config import Settings
from stream.core.evaluation import adjusted_rand
from stream.replay import run_offline
from stream.simulate import run_simulate
from tests.factories import bare_settings


def _settings(**overrides: Any) -> Settings:
    # a small population: sample more of it, so models are published within the run
    return bare_settings(sample_rate=0.3, warmup_samples=150, publish_every=150, **overrides)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """One constructed file replayed with two configurations (segments, message size limit)."""
    root = tmp_path_factory.mktemp("compare")
    sim = root / "sim.jsonl.gz"
    run_simulate(sim, root / "truth.json", customers=150, days=21, seed=3)
    events = root / "events.jsonl.gz"
    long_page = {"event_id": "long-{}", "customer_id": "sim-c000001", "type": "page_view",
                 "ts": "2025-01-10T10:00:00Z", "page": "x" * 3000}  # fmt: skip
    with gzip.open(sim, "rb") as src, gzip.open(events, "wb") as out:
        out.write(src.read())
        out.write(b"not json\n")  # dead-lettered in both runs
        for i in range(3):  # oversized only with the 2,048-byte limit of run B
            out.write(json.dumps({**long_page, "event_id": f"long-{i}"}).encode() + b"\n")
    run_offline([events], root / "a", _settings(segments=3))
    run_offline([events], root / "b", _settings(segments=5, max_message_bytes=2048))
    return root / "a", root / "b"


def _independent(out: Path) -> dict[str, Any]:
    """What the comparison must find, read straight from one run's files."""
    last: dict[str, dict[str, Any]] = {}
    reasons: Counter[str] = Counter()
    for line in (out / "segment-changes.jsonl").read_text().splitlines():
        change = json.loads(line)
        reasons[change["reason"]] += 1
        if change["customer_id"] not in last or change["version"] > last[change["customer_id"]]["version"]:  # fmt: skip
            last[change["customer_id"]] = change
    final = {c: (ch["current"] or {}).get("segment_id") for c, ch in last.items()}
    customers = [json.loads(line)["customer_id"] for line in (out / "features.jsonl").open()]
    dead = Counter(json.loads(line)["reason"] for line in (out / "dead-letter.jsonl").open())
    report = json.loads((out / "report.json").read_text())
    names = {s["segment_id"]: s["name"] for s in report["segments"]}
    return {
        "final": {c: final.get(c) for c in customers},
        "names": names,
        "sizes": Counter(v for v in final.values() if v is not None),
        "reasons": reasons,
        "dead": dead,
        "config": report["config"],
    }


def test_compare_of_two_configurations_reports_what_the_outputs_hold(
    runs: tuple[Path, Path],
) -> None:
    dir_a, dir_b = runs
    a, b = _independent(dir_a), _independent(dir_b)
    diff = diff_runs(load_run(dir_a), load_run(dir_b), examples=4)

    keys = sorted(set(a["config"]) | set(b["config"]))
    assert diff["config_differences"] == {
        k: {"a": a["config"].get(k), "b": b["config"].get(k)}
        for k in keys
        if a["config"].get(k) != b["config"].get(k)
    }
    assert diff["config_differences"]["segments"] == {"a": 3, "b": 5}
    assert diff["config_differences"]["max_message_bytes"] == {"a": 1_048_576, "b": 2048}
    both = sorted(set(a["final"]) & set(b["final"]))
    by_id = [c for c in both if a["final"][c] != b["final"][c]]

    def name(run: dict[str, Any], c: str) -> str | None:
        sid = run["final"][c]
        return None if sid is None else run["names"][sid]

    by_name = [c for c in both if name(a, c) != name(b, c)]
    c = diff["customers"]
    assert (c["a"], c["b"], c["in_both"]) == (len(a["final"]), len(b["final"]), len(both))
    assert c["final_segment_differs_by_id"] == len(by_id) > 0
    assert c["final_segment_differs_by_name"] == len(by_name) > 0
    ari = adjusted_rand([a["final"][x] for x in both], [b["final"][x] for x in both])
    assert c["adjusted_rand_index"] == round(ari, 4)
    assert [e["customer_id"] for e in c["examples"]] == sorted(set(by_id) | set(by_name))[:4]
    for e in c["examples"]:
        assert e["a"]["segment_id"] == a["final"][e["customer_id"]]
        assert e["b"]["segment_name"] == name(b, e["customer_id"])

    # Segment sizes: the final assignments counted, matched by id and by name.
    for row in diff["segments_by_id"]:
        sid = row["segment_id"]
        assert (row["a_size"], row["b_size"]) == (a["sizes"][sid], b["sizes"][sid])
        assert row["delta"] == b["sizes"][sid] - a["sizes"][sid]
    assert {r["segment_id"] for r in diff["segments_by_id"]} == set(a["sizes"]) | set(b["sizes"])
    size_by_name = [{x["names"][s]: n for s, n in x["sizes"].items()} for x in (a, b)]
    for row in diff["segments_by_name"]:
        want = (size_by_name[0].get(row["name"], 0), size_by_name[1].get(row["name"], 0))
        assert (row["a_size"], row["b_size"]) == want
    assert len(diff["segments_by_name"]) == len(set(size_by_name[0]) | set(size_by_name[1]))

    # Changes and dead letters by reason.
    for key, title in (("reasons", "changes"), ("dead", "dead_letters")):
        got = diff[title]
        assert got["a"] == sum(a[key].values()) and got["b"] == sum(b[key].values())
        assert got["by_reason"] == {
            r: {"a": a[key][r], "b": b[key][r], "delta": b[key][r] - a[key][r]}
            for r in set(a[key]) | set(b[key])
        }
    assert diff["dead_letters"]["by_reason"]["oversized"] == {"a": 0, "b": 3, "delta": 3}


def test_compare_command_prints_tables_and_json(
    runs: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    dir_a, dir_b = runs
    assert main(["replay", "--compare", str(dir_a), str(dir_b), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == {
        "a": str(dir_a),
        "b": str(dir_b),
        **diff_runs(load_run(dir_a), load_run(dir_b)),
    }
    assert main(["replay", "--compare", str(dir_a), str(dir_b), "--examples", "2"]) == 0
    text = capsys.readouterr().out
    c = printed["customers"]
    assert f"final segment differs: {c['final_segment_differs_by_id']} by segment id" in text
    assert "segments matched by name:" in text and "segments matched by id:" in text
    assert re.search(r"^segments +3 +5$", text, re.M)
    assert re.search(r"^oversized +0 +3 +\+3$", text, re.M)
    assert sum(line.startswith("sim-c") for line in text.splitlines()) == 2
    assert main(["replay", "--compare", str(dir_a), str(dir_a / "nowhere")]) == 2


def test_a_renamed_segment_differs_by_name_not_by_id() -> None:
    a = RunOutputs(
        customers={"c1", "c2", "c3"},
        final={"c1": (1, "Lapsed"), "c2": (2, "Loyal")},
        sizes={1: ("Lapsed", 1), 2: ("Loyal", 1)},
    )
    b = RunOutputs(
        customers={"c2", "c3", "c4"},
        final={"c2": (2, "Big spenders"), "c3": (1, "Lapsed"), "c4": (1, "Lapsed")},
        sizes={1: ("Lapsed", 2), 2: ("Big spenders", 1)},
    )
    diff = diff_runs(a, b)
    c = diff["customers"]
    assert (c["in_both"], c["only_in_a"], c["only_in_b"]) == (2, 1, 1)
    # c2: same id, new name; c3: unassigned in A, segment 1 in B.
    assert (c["final_segment_differs_by_id"], c["final_segment_differs_by_name"]) == (1, 2)
    assert [e["customer_id"] for e in c["examples"]] == ["c2", "c3"]
    assert diff["segments_by_id"][1] == {"segment_id": 2, "a_name": "Loyal",
                                         "b_name": "Big spenders", "a_size": 1, "b_size": 1,
                                         "delta": 0}  # fmt: skip
    rows = {r["name"]: r for r in diff["segments_by_name"]}
    assert (rows["Loyal"]["b_id"], rows["Big spenders"]["a_id"]) == (None, None)
    assert rows["Lapsed"]["delta"] == 1
    assert "c2           2 Loyal" in render(diff)
