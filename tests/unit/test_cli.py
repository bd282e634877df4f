"""The command line: usage errors and interruptions end in one line, never a traceback."""

from __future__ import annotations

import argparse

import pytest

from stream import cli


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for k in list(os.environ):
        if k.startswith("MICROSEG_"):
            monkeypatch.delenv(k)


def test_ctrl_c_says_interrupted_and_exits_130(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def interrupted(args: argparse.Namespace) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_replay", interrupted)
    assert cli.main(["replay", "events.jsonl"]) == 130
    assert capsys.readouterr().err == "microseg: interrupted\n"
