"""Checks of path arguments: what they refuse, what they say, and that they leave nothing."""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

import pytest

from stream.errors import ConfigError
from stream.paths import distinct, input_file, output_dir, output_file


def test_usable_paths_pass_and_leave_nothing_behind(tmp_path: Path) -> None:
    (tmp_path / "in.jsonl").write_text("")
    input_file(tmp_path / "in.jsonl", "FILE")
    output_file(tmp_path / "new" / "deeper" / "out.json", "--out")  # parents created later
    output_file(tmp_path / "in.jsonl", "--out")  # an existing file is replaced
    output_dir(tmp_path / "new" / "dir", "--out")
    output_dir(tmp_path, "--out")
    distinct({"--out": tmp_path / "a", "--truth": tmp_path / "b"})
    assert [p.name for p in tmp_path.iterdir()] == ["in.jsonl"]


def test_a_directory_where_a_file_goes_and_back(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^FILE .* is a directory: give a file$"):
        input_file(tmp_path, "FILE")
    with pytest.raises(ConfigError, match=r"^--out .* is a directory: give the path of a file$"):
        output_file(tmp_path, "--out")
    (tmp_path / "f").write_text("")
    with pytest.raises(ConfigError, match=r"is a file, not a directory: give a directory$"):
        output_dir(tmp_path / "f", "--out")
    with pytest.raises(ConfigError, match=r"f/x/y\.json cannot be created: .*/f is a file"):
        output_file(tmp_path / "f" / "x" / "y.json", "--truth")


def test_a_directory_that_cannot_be_written_in_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # (by a failing probe: chmod does not stop root, and a read-only file system lets
    # os.access say yes to root as well)
    def refused(**kwargs: object) -> str:
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))

    monkeypatch.setattr(tempfile, "mkdtemp", refused)
    with pytest.raises(ConfigError) as err:
        output_file(tmp_path / "sub" / "e.jsonl.gz", "--out")
    assert str(err.value) == (
        f"--out {tmp_path}/sub/e.jsonl.gz cannot be written: {tmp_path}: Permission denied "
        "(give a path in a directory you may write)"
    )
    with pytest.raises(ConfigError, match=r"^--dir .* cannot be written"):
        output_dir(tmp_path, "--dir")


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write in a read-only directory")
def test_a_read_only_directory_is_refused(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o555)
    with pytest.raises(ConfigError, match="Permission denied"):
        output_dir(ro / "out", "--out")


def test_a_missing_input(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^--truth .*t\.json: no such file$"):
        input_file(tmp_path / "t.json", "--truth")


def test_two_arguments_naming_one_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^--out and --truth are the same file"):
        distinct({"--out": tmp_path / "x.json", "--truth": tmp_path / "." / "x.json"})
