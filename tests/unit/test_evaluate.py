"""``microseg evaluate`` end to end on a small simulation (offline, no broker)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from stream.cli import main
from stream.core.evaluation import adjusted_rand, normalized_mutual_info
from stream.errors import ReplayError
from stream.evaluate import run_evaluate
from stream.simulate import run_simulate
from tests.factories import clear_settings


def _settle(monkeypatch: pytest.MonkeyPatch) -> None:
    clear_settings(monkeypatch)
    # 400 customers: sample more of them so models are published early
    monkeypatch.setenv("MICROSEG_SAMPLE_RATE", "0.25")
    monkeypatch.setenv("MICROSEG_WARMUP_SAMPLES", "300")
    monkeypatch.setenv("MICROSEG_PUBLISH_EVERY", "300")


@pytest.fixture(autouse=True)
def _small_population(monkeypatch: pytest.MonkeyPatch) -> None:
    _settle(monkeypatch)


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A small simulation (400 customers, 45 days) and its truth file."""
    d = tmp_path_factory.mktemp("sim")
    events, truth = d / "sim.jsonl.gz", d / "truth.json"
    run_simulate(events, truth, customers=400, days=45, seed=3)
    return events, truth


@pytest.fixture(scope="module")
def evaluated(
    tmp_path_factory: pytest.TempPathFactory, simulated: tuple[Path, Path]
) -> tuple[Path, dict[str, Any]]:
    """The simulation evaluated with 8 segments: its output directory and report."""
    events, truth = simulated
    out = tmp_path_factory.mktemp("evaluated")
    with pytest.MonkeyPatch.context() as monkeypatch:
        _settle(monkeypatch)
        return out, run_evaluate([events], truth, out, segments=8)


def test_evaluate_reports_every_figure_and_is_deterministic(
    tmp_path: Path, simulated: tuple[Path, Path], evaluated: tuple[Path, dict[str, Any]]
) -> None:
    events, truth = simulated
    out, first = evaluated
    first = dict(first)
    second = run_evaluate([events], truth, tmp_path / "b", segments=8)
    first.pop("replay"), second.pop("replay")
    assert first == second
    assert (out / "evaluation.json").is_file()
    assert (out / "segment-changes.jsonl").read_bytes() == (
        tmp_path / "b" / "segment-changes.jsonl").read_bytes()  # fmt: skip
    # 8 segments configured, room to grow by 2 (the emerging persona is born on the way)
    assert first["customers"] == 400 and 2 <= first["segments"] <= 10
    # segments carry information about the personas (far above chance, which is ≈ 0)
    assert first["ari"] > 0.3 and first["nmi"] > 0.4
    assert first["batch_kmeans"]["ari"] > 0.3
    assert first["migrations"]["customers"] > 0 and first["lapses"]["customers"] > 0
    assert 0 <= first["migrations"]["recall"] <= 1
    assert first["spurious"]["stable_customers"] > 0
    assert first["settings"]["segments"] == 8
    answer = json.loads(truth.read_text())
    assert len(answer["customers"]) == 400


def test_the_change_point_oracle_moves_only_the_migrants_and_sooner(
    tmp_path: Path, simulated: tuple[Path, Path], evaluated: tuple[Path, dict[str, Any]]
) -> None:
    events, truth = simulated
    plain_dir, plain = evaluated
    argv = ["evaluate", str(events), "--truth", str(truth), "--out", str(tmp_path / "oracle"),
            "--segments", "8", "--oracle-switches"]  # fmt: skip
    assert main(argv) == 0
    oracle = json.loads((tmp_path / "oracle" / "evaluation.json").read_text())
    answer = json.loads(truth.read_text())
    movers = {c["customer_id"] for c in answer["customers"]
              if c["migration"] and c["migration"]["to"] != "lapsed"}  # fmt: skip
    assert oracle["settings"]["oracle_switches"] == len(movers) > 0
    assert oracle["oracle"] == {"switches": len(movers), "seen": len(movers)}
    assert "oracle_switches" not in plain["settings"] and "oracle" not in plain
    # the trainer saw the same states: the same models; every other customer's changes are the
    # same, so every figure that is not about migrants to an active persona is too
    assert (tmp_path / "oracle" / "segment-model.jsonl").read_bytes() == (
        plain_dir / "segment-model.jsonl").read_bytes()  # fmt: skip

    def others(run: Path) -> list[str]:
        lines = (run / "segment-changes.jsonl").read_text().splitlines()
        return [line for line in lines if json.loads(line)["customer_id"] not in movers]

    assert others(tmp_path / "oracle") == others(plain_dir) and others(plain_dir)
    assert oracle["spurious"] == plain["spurious"] and oracle["lapses"] == plain["lapses"]
    assert oracle["migrations"]["by_target"]["lapsed"] == plain["migrations"]["by_target"]["lapsed"]
    # knowing the switch, the scorer follows the migrants to an active persona sooner
    ceiling, real = (
        oracle["migrations"]["by_target"]["active"],
        plain["migrations"]["by_target"]["active"],
    )
    assert ceiling["recall_to_target"] >= real["recall_to_target"]
    assert ceiling["median_delay_days"] < real["median_delay_days"]


def test_the_steady_operating_point_changes_only_the_scorer_and_emits_fewer_changes(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    simulated: tuple[Path, Path],
    evaluated: tuple[Path, dict[str, Any]],
) -> None:
    events, truth = simulated
    plain_dir, plain = evaluated
    monkeypatch.setenv("MICROSEG_MARGIN", "0.25")
    monkeypatch.setenv("MICROSEG_LAPSE_GRACE", "12")
    steady = run_evaluate([events], truth, tmp_path / "steady", segments=8)
    assert steady["settings"]["margin"] == 0.25 and steady["settings"]["lapse_grace"] == 12
    # the damping is the scorer's alone: the trainer and its detectors saw the same samples
    assert (tmp_path / "steady" / "segment-model.jsonl").read_bytes() == (
        plain_dir / "segment-model.jsonl").read_bytes()  # fmt: skip
    assert steady["spurious"]["changes"] < plain["spurious"]["changes"]
    assert steady["lapses"]["median_delay_days"] > plain["lapses"]["median_delay_days"]
    assert steady["changes"] < plain["changes"]


def test_a_negative_warm_up_is_refused_before_any_replay(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ReplayError, match="warm-up"):
        run_evaluate([tmp_path / "none.jsonl"], tmp_path / "none.json", tmp_path / "o", None, -1)
    # the command line hands --warmup-days over, and says what to fix
    argv = ["evaluate", str(tmp_path / "none.jsonl"), "--truth", str(tmp_path / "none.json"),
            "--out", str(tmp_path / "o"), "--warmup-days", "-1"]  # fmt: skip
    assert main(argv) == 2
    assert "warm-up must be 0 days or more" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_the_agreement_measures() -> None:
    a = [0, 0, 0, 1, 1, 1, 2, 2, 2]
    relabelled = [5, 5, 5, 3, 3, 3, 9, 9, 9]
    assert adjusted_rand(a, relabelled) == normalized_mutual_info(a, relabelled) == 1.0
    one_off = [0, 0, 1, 1, 1, 1, 2, 2, 2]
    assert 0 < adjusted_rand(a, one_off) < 1 and 0 < normalized_mutual_info(a, one_off) < 1
    assert adjusted_rand(a, [0] * 9) == 0.0
