"""Sorted runs of the offline replay's queue in temporary files: the engine's external sort.

The offline engine (`stream.core.engine.Engine`) must see every event of a replay before it can
apply them in event-time order, and a queued event takes about 270 bytes of memory. Past
``MICROSEG_REPLAY_RUN_EVENTS`` queued events it sorts them into a run and hands the run to
`FileRuns`, which writes it to an anonymous temporary file (in ``TMPDIR``; unlinked when created,
so nothing is left behind, even by a crash) and reads it back block by block when the engine merges
the runs. A run is a sequence of blocks, each its length (4 bytes) and a `marshal` list of at most
``block`` entries, each entry as the engine holds it, its effect by code.

>>> from stream.core.facts import EFFECTS
>>> runs = FileRuns(block=2)
>>> runs.add([(1, "e1", 0, "c1", EFFECTS[0], 0.0, 7), (2, "e2", 1, "c1", EFFECTS[3], 9.5, 8),
...           (5, "e5", 2, "c2", EFFECTS[0], 0.0, 9)])
>>> [(t, effect.code, amount) for t, _, _, _, effect, amount, _ in runs.take()[0]]
[(1, 0, 0.0), (2, 3, 9.5), (5, 0, 0.0)]
>>> runs.take()
[]
"""

from __future__ import annotations

import marshal
import struct
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from stream.core.engine import Entry
from stream.core.facts import EFFECTS
from stream.errors import ReplayError

BLOCK = 4096
"""Entries per block: what a run being merged holds in memory (about 1 MB)."""
_SIZE = struct.Struct("<I")  # a block's length in bytes, before it


class FileRuns:
    """The engine's `stream.core.engine.Runs` in temporary files.

    Parameters
    ----------
    directory
        Where the files go; None: the system's temporary directory (``TMPDIR``).
    block
        Entries per `marshal` block.
    """

    def __init__(self, directory: Path | None = None, block: int = BLOCK) -> None:
        self.directory = directory
        self.block = block
        self._files: list[IO[bytes]] = []

    def add(self, entries: list[Entry]) -> None:
        """Write ``entries`` (sorted) to a new temporary file, as one run."""
        try:
            f = tempfile.TemporaryFile(dir=self.directory)  # noqa: SIM115  (closed when read)
        except OSError as exc:
            raise self._error(exc) from exc
        try:
            for i in range(0, len(entries), self.block):
                block = entries[i : i + self.block]
                data = marshal.dumps(
                    [(t, e, s, c, eff.code, a, h) for t, e, s, c, eff, a, h in block]
                )
                f.write(_SIZE.pack(len(data)))
                f.write(data)
            f.flush()
            f.seek(0)
        except BaseException as exc:
            f.close()
            if isinstance(exc, OSError):
                raise self._error(exc) from exc
            raise
        self._files.append(f)

    def _error(self, exc: OSError) -> ReplayError:
        where = self.directory or tempfile.gettempdir()
        return ReplayError(
            f"cannot write a sorted run of the replay's queue to {where} ({exc}): make room "
            "there, set TMPDIR to a directory with room, or raise MICROSEG_REPLAY_RUN_EVENTS"
        )

    def take(self) -> list[Iterator[Entry]]:
        """Every run written, each read back once, in order (its file closes when read)."""
        files, self._files = self._files, []
        return [_read(f) for f in files]

    def close(self) -> None:
        """Close (and so delete) every run not yet taken."""
        for f in self._files:
            f.close()
        self._files = []


def _read(f: IO[bytes]) -> Iterator[Entry]:
    effects = EFFECTS
    with f:
        while head := f.read(_SIZE.size):
            # (`marshal.load` on a file reads it a few bytes at a time: 15 times slower)
            block = marshal.loads(f.read(_SIZE.unpack(head)[0]))  # noqa: S302  (our own file)
            for t, e, s, c, code, a, h in block:
                yield t, e, s, c, effects[code], a, h
