"""What drives the demo: the replay thread and the monitor that decides when the run settled.

`Replayer` sends the parts of the timeline one after another, each at its own pace (reusing
`stream.replay.produce_lines`); `Monitor` polls the worker's ``/metrics`` and ``/segments`` into
the `DemoState` and tells when everything sent has been consumed and the outputs are quiet.
"""

from __future__ import annotations

import threading
import time
from collections import Counter

from stream.config import Settings
from stream.demo.feed import live_segments, scrape
from stream.demo.state import DemoState
from stream.replay import Progress, make_producer, produce_lines


class _Stopped(Exception):
    """The replay was asked to stop (`Replayer.stop`)."""


class _Sent(Progress):
    """Counts what `produce_lines` has sent into the demo state (no progress bar)."""

    def __init__(
        self, state: DemoState, base: int, stopping: threading.Event | None = None
    ) -> None:
        super().__init__(None, enabled=False)
        self.enabled = True  # `produce_items` reports each line only to an enabled one
        self.state = state
        self.base = base
        self.stopping = stopping

    def update(self, done: int, force: bool = False, note: str = "") -> None:
        self.state.lines_sent = self.base + done
        if self.stopping is not None and self.stopping.is_set():
            raise _Stopped


class Replayer:
    """Sends the parts of the replay one after another, each at its own pace, in a thread.

    ``parts`` are ``(phase name, lines, event-time speed-up or None for as fast as possible)``.
    """

    def __init__(
        self, bootstrap: list[str], settings: Settings, state: DemoState,
        parts: list[tuple[str, list[bytes], float | None]],
    ) -> None:  # fmt: skip
        self.bootstrap, self.settings, self.state, self.parts = bootstrap, settings, state, parts
        self.done = threading.Event()
        self.error: BaseException | None = None
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="demo-replay", daemon=True)

    def start(self) -> Replayer:
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop sending after the current line and close the producer (while the broker is still
        up: a producer left open at exit waits for a broker that is gone, and says so at length)."""
        self._stopping.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        producer = make_producer(self.bootstrap, self.settings)
        try:
            sent = 0
            for phase, lines, speed in self.parts:
                self.state.phase, self.state.speed = phase, speed
                progress = _Sent(self.state, sent, self._stopping)
                produce_lines(lines, producer, self.settings, speed, progress)
                sent += len(lines)
            self.state.phase = "draining"
        except _Stopped:
            pass
        except Exception as exc:
            self.error = exc
        finally:
            producer.close()
            self.done.set()


class Monitor:
    """Polls the worker and decides when the run has settled."""

    def __init__(self, state: DemoState, lock: threading.Lock, replayer: Replayer) -> None:
        self.state, self.lock, self.replayer = state, lock, replayer
        self._last_segments = 0.0
        self._quiet_since: float | None = None
        self._last_seen: tuple[int, int, float] = (-1, -1, -1.0)

    def poll(self) -> None:
        now = time.monotonic()
        metrics = scrape(self.state.base_url)
        with self.lock:
            self.state.elapsed = now - self.state.started
            if metrics is not None:
                self.state.observe(metrics, now)
        if now - self._last_segments >= 2.0:
            segments = live_segments(self.state.base_url)
            if segments is not None:
                self.state.segments = segments
            self._last_segments = now

    def settled(self, quiet_s: float = 4.0) -> bool:
        """Everything sent was consumed, nothing lags, and for ``quiet_s`` no change or
        segment event arrived and the model version stayed the same."""
        snap = self.state.snapshot
        if not self.replayer.done.is_set() or snap is None:
            return False
        if snap.events_in < self.state.lines_sent or snap.lag > 0:
            self._quiet_since = None
            return False
        feed = self.state.feed
        if not _agree(snap.segment_sizes, feed.sources()):
            self._quiet_since = None  # changes the worker counted are still on their way here
            return False
        seen = (feed.change_count, feed.event_kinds.total(), snap.model_version)
        now = time.monotonic()
        if seen != self._last_seen or self._quiet_since is None:
            self._last_seen, self._quiet_since = seen, now
        return now - self._quiet_since >= quiet_s


def _agree(gauge: dict[str, float], sources: dict[str, Counter[str]]) -> bool:
    """Whether the worker's segment sizes (``microseg_segment_customers``) are the members the
    changes read so far put in each segment.

    >>> _agree({"1": 2.0, "2": 0.0}, {"1": Counter(cj=1, sim=1)}), _agree({"1": 3.0}, {})
    (True, False)
    """
    read = {sid: sum(c.values()) for sid, c in sources.items()}
    return all(read.get(sid, 0) == n for sid, n in gauge.items()) and all(
        gauge.get(sid, 0.0) == n for sid, n in read.items()
    )
