"""Pacing a worker's input by the trainer's progress: a backlog is scored with the models of its time.

When a worker starts on retained history (a first deployment, a restart after an outage, a
backfill replayed into the topics), it reads events much faster than they happened, and the
trainer learns each day only once every partition has sent that day's sample
(`stream.core.collate`). Unpaced, a worker went through a 40-day backlog before the trainer had
published its second model, so every customer was scored by an early model trained on a few
days, and since a model update alone moves nobody (issue 4), they stayed there: final segments
against the offline replay ARI .66 and .56 on two simulated backlogs.

The `Pacer` gives the worker's `stream.adapters.align.Aligner` an event-time horizon: input
records at or past ``learnt + lead`` wait, where ``learnt`` is the end of the newest day the
trainer has learnt (its progress reports on ``segment-model``, `stream.adapters.model_feed`). The
lead must let the partitions send the reports the trainer waits for. The `Collator` releases a
day once every partition has passed it, or once one partition is ``max_lag_days`` ahead (an idle
partition never reports):

* ``lead_ms`` (2 days): when every partition reported the day learnt last (``complete``), each
  may pass the next day's boundary, which is all the trainer needs to learn it. Workers then stay
  within a day or so of each other, and no partition's samples reach the trainer after their day
  (on a two-worker 40-day backlog: none, against 83 of 6,445 with the wide lead throughout);
* ``wide_ms`` (``max_lag_days + 2`` days): when a partition did not report it (idle, or far
  behind), one may pass the boundary ``max_lag_days + 1`` days after ``learnt``, which releases
  the next day without the missing one.

Before the trainer has reported anything, the wide lead counts from the first event time the
worker saw: unpaced until the first report, a worker went through the 40-day test backlog before
it came (final segments against the offline replay ARI .656, as with no pacing at all).

A gap in the events cannot stall the worker (`gap`): once the trainer has learnt every day up to
the one the worker has reached, holding the next records back cannot help it, and the worker goes
on through the day of the next record (and before the first report, if the worker has not got a
day past its first event, the lead counts from the next record instead: one record far older
than the rest, to be dead-lettered, cannot hold everything back). Without this, a test stream
whose malformed records, dated today, followed valid events from 2024 waited ``max_wait_s`` for a
trainer that had nothing left to learn. How far the worker got is what it processed, or, before it
has processed anything since it started, where its stored partitions had got
(`stream.adapters.align.Aligner`'s ``reached_before``).

A partition whose next records are days ahead passes no day boundary until they go, and they
wait at the horizon: the trainer waited for its sample and everyone for the trainer. So when every
next record of a partition waits at the horizon, the worker steps the partition's calendar
without them to the days its other partitions have reached, as a record there would
(`stream.adapters.align.Aligner.paced`, `stream.adapters.catch_up.step_paced`); a partition the
trainer learnt days without too, since the collator waits for it again at the next day. For the
collator to know a partition at all, the partition's first event reports the day boundary before
it, with no samples (`stream.core.assigner.Assigner.step`); and a record to be dead-lettered
counts for how far the worker got only until it is processed (`Aligner.processed`). The demo's
sparse history ran into all three at its start: its view froze for 30 s at the default
``max_wait_s`` (2026-12-07, before: one pace timeout and 5,115 samples the trainer got after their
day; after: none and 781). A partition that goes idle (nothing held, nothing to read) while the others are paced at the narrow
lead still stalls the trainer: the others cannot get far enough ahead for it to learn the next day
without it, and nothing says the idle partition will not receive an earlier record next. That is
what ``max_wait_s`` resolves, as for a trainer that is down: after that much wall time without
progress while records waited, pacing is suspended until the trainer reports progress again
(``timeouts`` counts these, and each is logged); the day the trainer then learns without the
idle partition is not ``complete``, so the wide lead holds until the partition reports again.
Widening sooner, after a couple of seconds without progress, was tried: a trainer busy
publishing a model took longer than that, the partitions drifted apart, and the wide lead then
held (two-worker backlog: 161 late samples, final segments against the offline replay ARI .80).
A live stream waits only in that case: the trainer learns a day within ``max_lag_days`` of it.

>>> DAY = 86_400_000
>>> now = [0.0]
>>> p = Pacer(2 * DAY, 4 * DAY, max_wait_s=30, clock=lambda: now[0])
>>> p.horizon() is None  # nothing seen yet
True
>>> p.seen(10 * DAY); p.horizon() == 14 * DAY  # no report yet: the wide lead
True
>>> p.learnt_until(12 * DAY, complete=True); p.horizon() == 14 * DAY
True
>>> p.waiting(); now[0] = 30.0; p.waiting()  # no progress for 30 s: give up waiting
False
True
>>> p.horizon() is None, p.timeouts
(True, 1)
>>> p.learnt_until(13 * DAY, complete=False); p.horizon() == 17 * DAY  # progress: paced again
True
>>> p.gap(released=14 * DAY + 5, head=20 * DAY) is None  # the trainer can learn on: wait
True
>>> p.gap(released=13 * DAY + 5, head=20 * DAY + 5) == 21 * DAY  # it waits for us: go on
True
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from stream.core.features import DAY_MS

log = logging.getLogger(__name__)


class Pacer:
    """The event-time horizon a worker's input waits at (module docstring).

    Parameters
    ----------
    lead_ms
        How far past the newest day the trainer has learnt the input may go when every
        partition reported that day (event time, ms).
    wide_ms
        How far when one did not, or before the trainer has reported.
    max_wait_s
        Wall time records wait for the trainer's progress before pacing is suspended.
    clock
        Wall clock in seconds (monotonic).
    """

    def __init__(
        self,
        lead_ms: int,
        wide_ms: int,
        max_wait_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.lead_ms = lead_ms
        self.wide_ms = wide_ms
        self.max_wait_s = max_wait_s
        self.clock = clock
        self.learnt: int | None = None
        """The end of the newest day the trainer has learnt (event time, ms), once reported."""
        self.complete = False
        """Whether every partition reported that day."""
        self.timeouts = 0
        """Times pacing was suspended because the trainer made no progress."""
        self._since: tuple[int, float] | None = None  # (base, wall clock) records wait since
        self._suspended: int | None = None  # the base waiting gave up at
        self._start: int | None = None  # the first event time seen
        self._past: int | None = None  # a horizon past a gap in the events

    @property
    def started(self) -> bool:
        """Whether it has seen the worker's first records (`seen`)."""
        return self._start is not None

    def seen(self, t: int) -> None:
        """The earliest event time of the worker's first records (the horizon counts from it
        until the trainer reports)."""
        if self._start is None:
            self._start = t

    def learnt_until(self, t: int, complete: bool) -> None:
        """The trainer reports it has learnt every day ending at or before ``t``; ``complete``:
        every partition reported the last of them."""
        if self.learnt is None or t > self.learnt:
            self.learnt, self.complete = t, complete

    def horizon(self) -> int | None:
        """Input records at or past this event time wait (None: none wait)."""
        base = self._base()
        if base is None or base == self._suspended:
            return None
        narrow = self.learnt is not None and self.complete
        h = base + (self.lead_ms if narrow else self.wide_ms)
        return h if self._past is None else max(h, self._past)

    def gap(self, released: int, head: int) -> int | None:
        """The horizon moved past a gap in the events, or None. ``released``: the newest event
        time the worker has let go; ``head``: the next record's. If the trainer has learnt every
        day before the one ``released`` is in, it waits for a day boundary the worker can only
        pass with the next record, however far that is: the records up to the end of that
        record's day go (and stay let go: records fetched later go too). Before the first
        report, if the worker has not got a day past its first event, the lead counts from
        ``head``."""
        if self.learnt is None:
            if self._start is None or released >= self._start + DAY_MS:
                return None
            self._start = head
        elif self.learnt >= released - released % DAY_MS:
            past = head - head % DAY_MS + DAY_MS
            self._past = past if self._past is None else max(self._past, past)
        else:
            return None
        return self.horizon()

    def flowing(self) -> None:
        """Records went: what waits now waits from now."""
        self._since = None

    def waiting(self) -> bool:
        """Records wait at the horizon and nothing else could go. Returns True when they have
        waited ``max_wait_s`` without progress: pacing is then suspended until it comes."""
        base, now = self._base(), self.clock()
        if base is None or base == self._suspended:
            return False
        if self._since is None or self._since[0] != base:
            self._since = (base, now)
            return False
        waited = now - self._since[1]
        if waited < self.max_wait_s:
            return False
        self._suspended, self._since = base, None
        self.timeouts += 1
        log.warning(
            "input goes ahead of the trainer after %.0f s without progress from it (down or "
            "far behind): customers are scored with the model at hand until it reports again",
            waited,
        )
        return True

    def _base(self) -> int | None:
        return self.learnt if self.learnt is not None else self._start
