"""Checks of the files and directories a command is given, before it starts working.

A command that reads for a minute and then finds it cannot write its output, or that stops on
a Python traceback because an argument names a directory, wastes the run and says nothing
useful. These checks run first and raise `ConfigError` naming the argument and what to give
instead; they leave nothing behind (a write is tried with an empty directory, removed at once; a
command creates missing directories itself).

>>> output_file(Path("/"), "--out")
Traceback (most recent call last):
stream.errors.ConfigError: --out / is a directory: give the path of a file
>>> distinct({"--out": Path("a.json"), "--truth": Path("./a.json")})
Traceback (most recent call last):
stream.errors.ConfigError: --out and --truth are the same file (a.json): give two files
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from stream.errors import ConfigError


def input_file(path: Path, what: str) -> None:
    """``path`` is a file this process may read; else `ConfigError` naming ``what``."""
    if path.is_dir():
        raise ConfigError(f"{what} {path} is a directory: give a file")
    if not path.exists():
        raise ConfigError(f"{what} {path}: no such file")
    if not os.access(path, os.R_OK):
        raise ConfigError(f"{what} {path} cannot be read (permission denied)")


def no_file(path: Path, what: str) -> None:
    """``path``, if it exists, is a directory."""
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{what} {path} is a file, not a directory: give a directory")


def output_dir(path: Path, what: str) -> None:
    """``path`` is, or can be created as, a directory this process may write in."""
    no_file(path, what)
    _writable(path, what)


def output_file(path: Path, what: str) -> None:
    """``path`` can be written as a file: not a directory, in a directory that exists or can be
    created, and may be written in."""
    if path.is_dir():
        raise ConfigError(f"{what} {path} is a directory: give the path of a file")
    _writable(path.parent, what, path)


def distinct(paths: dict[str, Path]) -> None:
    """No two arguments (``what`` → path) name the same file: one would overwrite the other."""
    seen: dict[Path, str] = {}
    for what, path in paths.items():
        key = path.resolve()
        if key in seen:
            raise ConfigError(f"{seen[key]} and {what} are the same file ({path}): give two files")
        seen[key] = what


def _writable(directory: Path, what: str, target: Path | None = None) -> None:
    """The nearest existing ancestor of ``directory`` (itself included) is a writable directory."""
    target = directory if target is None else target
    existing = directory
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(
            f"{what} {target} cannot be created: {existing} is a file, not a directory"
        )
    try:  # (a probe, not os.access: that says yes to root where a write fails, as under /sys)
        os.rmdir(tempfile.mkdtemp(prefix=".microseg-write-check-", dir=existing))
    except OSError as exc:
        raise ConfigError(
            f"{what} {target} cannot be written: {existing}: {exc.strerror or exc} (give a "
            "path in a directory you may write)"
        ) from None
