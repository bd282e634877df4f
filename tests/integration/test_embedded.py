"""The embedded broker goes with the process that started it, however that process ends."""

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

from tests.factories import without_settings

ROOT = Path(__file__).resolve().parents[2]
DEMO_FILE = ROOT / "stream" / "data" / "demo" / "simulated.jsonl.gz"

# A parent that starts the broker, says where, and then neither stops it nor exits.
STARTER = """
import time
from stream.adapters.embedded import EmbeddedBroker
b = EmbeddedBroker().start()
print(f"embedded broker on kafka://{b.bootstrap}", flush=True)
time.sleep(600)
"""


def _refuses(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    except OSError:
        return True
    return False


def _broker_port(proc: subprocess.Popen[str], timeout: float = 30.0) -> int:
    """The embedded broker's port, from the line the parent prints once it is up."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        found = re.search(r"embedded broker on kafka://127\.0\.0\.1:(\d+)", line)
        if found:
            return int(found.group(1))
        if not line and proc.poll() is not None:
            break
    pytest.fail("the parent never reported its embedded broker")


@pytest.mark.parametrize(
    ("argv", "sig"),
    [
        pytest.param([sys.executable, "-c", STARTER], signal.SIGKILL, id="parent-killed"),
        # SIGTERM is not handled by `microseg replay`: before, it left Tansu running.
        pytest.param(
            [sys.executable, "-m", "stream.cli", "replay", str(DEMO_FILE), "--speed", "1"],
            signal.SIGTERM,
            id="replay-terminated",
        ),
    ],
)
def test_broker_stops_when_its_parent_dies(argv: list[str], sig: signal.Signals) -> None:
    env = without_settings(os.environ)
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=ROOT
    )
    try:
        port = _broker_port(proc)
        assert not _refuses(port)  # it is up
        proc.send_signal(sig)
        proc.wait(15)
        deadline = time.monotonic() + 15
        while not _refuses(port) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _refuses(port), "the broker outlived its parent"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
