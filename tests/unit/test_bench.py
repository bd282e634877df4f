"""Smoke test of ``microseg bench``: the command runs and reports every figure (no timing asserts)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from stream.bench import generate
from stream.cli import main

FIGURES = (
    "read_decode_events_per_s",
    "read_validate_events_per_s",
    "offline_replay_events_per_s",
    "offline_over_read_decode",
    "state_bytes_per_customer",
    "engine_memory_bytes_per_customer",
)


def test_bench_json_has_every_figure(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--events", "2000", "--customers", "300", "--repeat", "1", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    for name in FIGURES:
        value = result[name]
        assert isinstance(value, int | float) and not isinstance(value, bool), name
        assert value > 0, name
    assert result["events"] == 2000
    assert result["counts"]["lines"] == 2000
    assert result["counts"]["dead_lettered"] > 0  # the synthetic data carries bad lines
    assert set(result["machine"]) >= {"cpu_count", "python", "platform"}
    for target in ("offline_events_per_s", "state_bytes_per_customer"):
        assert isinstance(result["targets"][target]["met"], bool)
        assert result["targets"][target]["target"] > 0


def test_bench_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--events", "500", "--customers", "50", "--repeat", "1"]) == 0
    out = capsys.readouterr().out
    assert "offline replay" in out and "events/s" in out and "bytes" in out


def test_synthetic_data_is_deterministic(tmp_path: Path) -> None:
    a, b = tmp_path / "a.jsonl.gz", tmp_path / "b.jsonl.gz"
    generate(a, 300, 40)
    generate(b, 300, 40)
    assert gzip.decompress(a.read_bytes()) == gzip.decompress(b.read_bytes())
