"""The command line: usage errors and interruptions end in one line, never a traceback."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from stream import cli
from tests.factories import clear_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    clear_settings(monkeypatch)


def test_ctrl_c_says_interrupted_and_exits_130(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def interrupted(args: argparse.Namespace) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_replay", interrupted)
    assert cli.main(["replay", "events.jsonl"]) == 130
    assert capsys.readouterr().err == "microseg: interrupted\n"


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["simulate", "--days", "5"], "argument --days: must be at least 7, not 5"),
        (["simulate", "--customers", "0"], "argument --customers: must be at least 1, not 0"),
        (["simulate", "--customers", "-5"], "argument --customers: must be at least 1"),
        (["simulate", "--seed", "-1"], "argument --seed: must be at least 0"),
        (["replay", "F", "--offline", "--out", "x", "--limit", "-1"], "argument --limit"),
        (["replay", "F", "--speed", "-2"], "argument --speed: must be at least 0"),
        (["replay", "F", "--speed", "nan"], "argument --speed"),
        (["demo", "--speed", "-1"], "argument --speed: must be at least 0"),
        (["evaluate", "F", "--truth", "T", "--segments", "20"], "argument --segments"),
        (["evaluate", "F", "--truth", "T", "--segments", "1"], "argument --segments"),
        (["demo", "--limit", "0"], "argument --limit: must be at least 1"),
        (["demo", "--live-days", "-1"], "argument --live-days"),
        (["demo", "--backfill-seconds", "-1"], "argument --backfill-seconds"),
        (["demo", "--drain-timeout", "-5"], "argument --drain-timeout"),
        (["replay", "--compare", "A", "B", "--examples", "-1"], "argument --examples"),
        (["bench", "--quick", "--events", "0"], "argument --events"),
        (["bench", "--repeat", "0"], "argument --repeat"),
    ],
)
def test_bad_arguments_are_usage_errors_naming_the_flag(
    argv: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.build_parser().parse_args(argv)  # (parsing only: nothing runs, even if it passes)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert says in err and "Traceback" not in err


def test_evaluate_segments_take_the_range_of_microseg_segments() -> None:
    from stream.config import Settings
    from stream.errors import ConfigError

    parse = cli.build_parser().parse_args
    for k in (2, 12):
        assert parse(["evaluate", "F", "--truth", "T", "--segments", str(k)]).segments == k
        Settings.load(segments=k)
    for k in (1, 13):
        with pytest.raises(ConfigError):
            Settings.load(segments=k)


def test_replay_out_needs_offline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def no_replay(args: argparse.Namespace) -> int:
        raise AssertionError("the replay must not start")

    monkeypatch.setattr("stream.replay_run.run_replay", no_replay)
    events = tmp_path / "events.jsonl"
    events.write_text("")
    assert cli.main(["replay", str(events), "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err == (
        "microseg: --out needs --offline (without it the replay goes to Kafka)\n"
    )
    assert not (tmp_path / "out").exists()


def test_replay_compare_takes_no_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def no_compare(*args: object) -> int:
        raise AssertionError("the comparison must not start")

    monkeypatch.setattr("stream.compare.run_compare", no_compare)
    argv = ["replay", "--compare", str(tmp_path / "a"), str(tmp_path / "b"), "--out", "x"]
    assert cli.main(argv) == 2
    assert "--compare takes two output directories and no replay source or --out" in (
        capsys.readouterr().err
    )


def test_schemas_check_of_a_missing_dir_reports_missing_files_and_creates_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    where = tmp_path / "nowhere"
    assert cli.main(["schemas", "export", "--check", "--dir", str(where)]) == 1
    out = capsys.readouterr().out
    assert out.startswith("missing: ") and "out of date" not in out
    assert out.rstrip().endswith(f"(run `microseg schemas export --dir {where}`)")
    assert not where.exists()


def test_schemas_check_names_stale_and_missing_files_apart(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["schemas", "export", "--dir", str(tmp_path)]) == 0
    files = sorted(tmp_path.iterdir())
    files[0].write_text("{}\n")
    files[1].unlink()
    capsys.readouterr()
    assert cli.main(["schemas", "export", "--check", "--dir", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert f"out of date: {files[0].name}; missing: {files[1].name} in {tmp_path}" in out


def _subparser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices[name]  # type: ignore[no-any-return]
    raise KeyError(name)


def test_help_is_plain_and_says_each_default() -> None:
    parser = cli.build_parser()
    assert "``" not in parser.format_help()
    assert "MICROSEG_*" in _subparser(parser, "worker").format_help()
    for command, flags in {
        "broker": ["--port"],
        "simulate": ["--out", "--truth", "--customers", "--days", "--seed"],
        "evaluate": ["--out"],
    }.items():
        sub = _subparser(parser, command)
        for action in sub._actions:
            if set(action.option_strings) & set(flags):
                assert action.help and f"(default {action.default})" in action.help, action


def test_a_misspelt_setting_stops_the_worker_with_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from stream import worker

    def no_worker(settings: object) -> int:
        raise AssertionError("the worker must not start")

    monkeypatch.setattr(worker, "run_worker", no_worker)
    var = "MICROSEG_" + "PARTITION"  # built from parts: no name the repository uses
    monkeypatch.setenv(var, "4")
    assert cli.main(["worker"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("microseg: unknown MICROSEG_* variables")
    assert f"{var} is not a setting (did you mean MICROSEG_PARTITIONS?)" in err


@pytest.fixture
def hostile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory of plausible wrong arguments: a directory, a regular file, a plain
    file named .gz, a truncated gzip file, an empty file, JSON that is no truth file, a valid
    truth file, a directory with a report.json that is not JSON."""
    import gzip

    (tmp_path / "adir").mkdir()
    (tmp_path / "adir" / "evaluation.json").write_text("{}\n")
    (tmp_path / "regfile").write_text("a file\n")
    (tmp_path / "plain.jsonl.gz").write_text('{"type": "page_view"}\n')
    lines = "".join(f'{{"customer_id": "c-{i}", "n": {i * 7919 % 10007}}}\n' for i in range(5000))
    packed = gzip.compress(lines.encode(), mtime=0)
    (tmp_path / "trunc.jsonl.gz").write_bytes(packed[: len(packed) // 2])
    (tmp_path / "empty.jsonl").write_text("")
    (tmp_path / "notjson.json").write_text("nope{\n")
    (tmp_path / "otherjson.json").write_text('{"customers": 3}\n')
    truth = {"parameters": {"start": "2025-01-06T00:00:00+00:00",
                            "end": "2025-01-13T00:00:00+00:00", "emerge_day": 4},
             "customers": [{"customer_id": "c-1", "persona_end": "p"}]}  # fmt: skip
    (tmp_path / "truth.json").write_text(json.dumps(truth))
    (tmp_path / "run").mkdir()  # a truth file kept where a replay writes its report
    (tmp_path / "run" / "report.json").write_text(json.dumps(truth))
    (tmp_path / "badrun").mkdir()
    (tmp_path / "badrun" / "report.json").write_text("garbage\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        ("simulate --out adir", "--out adir is a directory: give the path of a file"),
        ("simulate --truth adir", "--truth adir is a directory: give the path of a file"),
        ("simulate --out regfile/e.jsonl.gz",
         "--out regfile/e.jsonl.gz cannot be created: regfile is a file, not a directory"),
        ("simulate --truth regfile/t.json", "--truth regfile/t.json cannot be created"),
        ("simulate --out same.json --truth ./same.json",
         "--out and --truth are the same file (same.json): give two files"),
        ("evaluate nothere.jsonl --truth truth.json", "FILE nothere.jsonl: no such file"),
        ("evaluate adir --truth truth.json", "FILE adir is a directory: give a file"),
        ("evaluate empty.jsonl --truth adir", "--truth adir is a directory: give a file"),
        ("evaluate empty.jsonl --truth nothere.json", "--truth nothere.json: no such file"),
        ("evaluate empty.jsonl --truth notjson.json",
         "--truth notjson.json is not JSON: give the truth file `microseg simulate` wrote"),
        ("evaluate empty.jsonl --truth trunc.jsonl.gz", "--truth trunc.jsonl.gz is not JSON"),
        ("evaluate empty.jsonl --truth otherjson.json",
         "--truth otherjson.json is not a truth file (no parameters or customers)"),
        ("evaluate empty.jsonl --truth truth.json --out regfile",
         "--out regfile is a file, not a directory: give a directory"),
        ("evaluate empty.jsonl --truth truth.json --out empty.jsonl",
         "--out empty.jsonl is a file, not a directory"),
        ("evaluate empty.jsonl --truth truth.json --out regfile/o",
         "--out regfile/o cannot be created: regfile is a file, not a directory"),
        ("evaluate empty.jsonl --truth truth.json --out o",
         "no customer of --truth truth.json has an event in empty.jsonl"),
        ("evaluate adir/evaluation.json --truth truth.json --out adir",
         "--out adir would overwrite the input evaluation.json with the evaluation"),
        ("evaluate empty.jsonl --truth run/report.json --out run",
         "--out run would overwrite the input report.json with an output of the same name"),
        ("evaluate trunc.jsonl.gz --truth truth.json --out o",
         "cannot read trunc.jsonl.gz: Compressed file ended before the end-of-stream marker was "
         "reached (a truncated or damaged gzip file: write or copy it again)"),
        ("evaluate plain.jsonl.gz --truth truth.json --out o",
         "cannot read plain.jsonl.gz: Not a gzipped file"),
        ("replay nothere.jsonl --offline --out o", "FILE nothere.jsonl: no such file"),
        ("replay adir --offline --out o", "FILE adir is a directory: give a file"),
        ("replay plain.jsonl.gz --offline --out o",
         "(a file whose name ends in .gz is read as gzip: rename a plain JSONL file)"),
        ("replay trunc.jsonl.gz --offline --out o --stream email",
         "cannot read trunc.jsonl.gz: Compressed file ended"),
        ("replay empty.jsonl --offline --out regfile", "--out regfile is a file, not a directory"),
        ("replay empty.jsonl --offline --out empty.jsonl", "--out empty.jsonl is a file"),
        ("replay empty.jsonl --offline --out regfile/o",
         "--out regfile/o cannot be created: regfile is a file, not a directory"),
        ("replay empty.jsonl --offline --out o --customers-file adir",
         "--customers-file adir is a directory: give a file"),
        ("replay empty.jsonl --offline --out o --customers-file trunc.jsonl.gz",
         "--customers-file trunc.jsonl.gz is not UTF-8 text"),
        ("replay --compare regfile adir", "--compare regfile is not a directory"),
        ("replay --compare nothere adir", "--compare nothere is not a directory"),
        ("replay --compare badrun adir",
         "badrun/report.json is not a report of `microseg replay --offline`"),
        ("schemas export --dir regfile", "--dir regfile is a file, not a directory"),
        ("schemas export --check --dir regfile", "--dir regfile is a file, not a directory"),
        ("schemas export --dir regfile/s", "--dir regfile/s cannot be created: regfile is a file"),
        ("demo --files adir", "--files adir is a directory: give a file"),
        ("demo --files nothere.jsonl", "--files nothere.jsonl: no such file"),
        ("demo --files plain.jsonl.gz", "cannot read plain.jsonl.gz: Not a gzipped file"),
        ("demo --summary-json adir", "--summary-json adir is a directory"),
        ("demo --summary-json regfile/s.json",
         "--summary-json regfile/s.json cannot be created: regfile is a file, not a directory"),
    ],
)  # fmt: skip
def test_a_path_argument_that_cannot_be_used_is_one_line_naming_it_and_exit_2(
    argv: str, says: str, hostile: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    def no_start(*args: object, **kwargs: object) -> None:
        raise AssertionError("nothing may start on a bad argument")

    monkeypatch.setattr("stream.simulate.run_simulate", no_start)
    monkeypatch.setattr("stream.demo.run.broker_for", no_start)
    monkeypatch.setattr("stream.adapters.embedded.broker_for", no_start)
    assert cli.main([*argv.split(), *(["--no-progress"] if argv.startswith("replay") else [])]) == 2
    err = capsys.readouterr().err
    assert err.startswith("microseg: ") and err.count("\n") == 1 and "Traceback" not in err
    assert says in err
    assert not (hostile / "same.json").exists()
    if "no customer" not in says:  # (found in the replay's outputs: they are written)
        assert not (hostile / "o").exists()


def test_path_checks_leave_valid_outputs_alone(
    hostile: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A missing output directory, with its parents, is still created; outputs are what they
    were (the simulation's files are byte-identical to a direct run's)."""
    from stream.simulate import run_simulate

    argv = ["simulate", "--customers", "20", "--days", "7", "--seed", "3"]
    assert cli.main([*argv, "--out", "new/deep/e.jsonl.gz", "--truth", "new/t.json"]) == 0
    run_simulate(Path("direct.jsonl.gz"), Path("direct.json"), 20, 7, 3)
    assert Path("new/deep/e.jsonl.gz").read_bytes() == Path("direct.jsonl.gz").read_bytes()
    assert Path("new/t.json").read_bytes() == Path("direct.json").read_bytes()
    assert sorted(p.name for p in Path("new").iterdir()) == ["deep", "t.json"]  # no probe left
    assert cli.main(["schemas", "export", "--dir", "adir/schemas"]) == 0
    assert capsys.readouterr().err == ""
