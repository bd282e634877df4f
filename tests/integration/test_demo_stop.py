"""``microseg demo`` stopped mid-replay: nothing left running, nothing but its own line printed.

Apart from `test_demo` so that ``--dist loadfile`` can run it beside that file's long test.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from stream.adapters.embedded import free_port
from tests.factories import without_settings

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
LIMIT = 1000  # lines per bundled file: the replay is still under way when it is stopped


def test_demo_stops_cleanly_when_terminated(tmp_path: Path) -> None:
    """SIGTERM mid-replay: the replay's producer closes before its broker goes, so nothing is left
    running and nothing but the demo's own line is printed on the way out."""
    env = without_settings(os.environ)
    env["MICROSEG_WEB_PORT"] = str(free_port())  # its own embedded broker: it must stop it too
    proc = subprocess.Popen(
        [sys.executable, "-m", "stream.cli", "demo", "--plain", "--speed", "0",
         "--limit", str(LIMIT)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=ROOT,
    )  # fmt: skip
    assert proc.stdout is not None
    seen: list[str] = []
    port = None
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:  # until the replay is under way
            line = proc.stdout.readline()
            if not line:
                break
            seen.append(line)
            if m := re.search(r"broker: kafka://127\.0\.0\.1:(\d+)", line):
                port = int(m.group(1))
            if line.startswith("[") and "sent 0/" not in line:
                break
        assert port is not None and seen[-1].startswith("["), "".join(seen)
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    out = "".join(seen) + rest
    assert proc.returncode == 128 + signal.SIGTERM, out[-3000:]
    assert "demo terminated: worker and broker stopped" in rest
    assert "Traceback" not in out and "ERROR" not in out, out[-3000:]
    with pytest.raises(ConnectionRefusedError):  # the demo's broker is gone
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
