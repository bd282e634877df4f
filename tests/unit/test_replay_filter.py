"""Replay filters, offset ranges, pacing and the progress bar (no broker)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from stream.core.events import Stream
from stream.errors import ReplayError
from stream.replay import file_items
from stream.replay_filter import ReplayFilter, attribute, parse_ts_ms, read_ids
from stream.replay_run import Kept
from stream.replay_sink import Pacer, Progress
from stream.replay_source import OffsetRange, parse_offsets

T0 = parse_ts_ms("2025-01-01T00:00:00Z")
assert T0 is not None


def line(**fields: object) -> bytes:
    return json.dumps(fields).encode()


def test_attribution_reads_customer_stream_and_time_or_nothing() -> None:
    a = attribute(line(customer_id="c1", type="purchase", ts="2025-01-01T01:00:00+01:00"))
    assert (a.customer, a.stream, a.ts_ms) == ("c1", Stream.PURCHASES, T0)
    for raw in (b"\xff not json", b"[1]", b"", None, line(customer_id=3, type="x", ts="today")):
        assert attribute(raw) == attribute(None)
    # a time without an offset is not RFC 3339 (the validator rejects it too)
    assert attribute(line(ts="2025-01-01T00:00:00")).ts_ms is None


def test_a_filter_drops_only_on_what_a_record_says() -> None:
    f = ReplayFilter(frozenset({"c1"}), frozenset({Stream.EMAIL}), T0, T0 + 1000)
    keep = line(customer_id="c1", type="email_open", ts="2025-01-01T00:00:00.5Z")
    assert f.drop(None, None, attribute(keep)) is None
    other = line(customer_id="c2", type="email_open", ts="2025-01-01T00:00:00Z")
    assert f.drop(None, None, attribute(other)) == "customer"
    click = line(customer_id="c1", type="page_view", ts="2025-01-01T00:00:00Z")
    assert f.drop(None, None, attribute(click)) == "stream"
    late = line(customer_id="c1", type="email_open", ts="2025-01-01T00:00:01Z")  # until: excl.
    assert f.drop(None, None, attribute(late)) == "time"
    # Cannot be attributed: passes, so it is still dead-lettered.
    assert f.drop(None, None, attribute(b"not json")) is None
    assert f.drop(None, None, attribute(line(customer_id="c1", type="?", ts="?"))) is None
    # Attributed to another customer: dropped even though it is invalid.
    assert f.drop(None, None, attribute(line(customer_id="c2", amount=-1))) == "customer"
    # A Kafka key decides the customer, without the value.
    assert ReplayFilter(frozenset({"c1"})).drop(b"c1", None, None) is None
    assert ReplayFilter(frozenset({"c1"})).drop(b"c2", None, attribute(keep)) == "customer"


def test_only_what_needs_the_value_decodes_it() -> None:
    by_customer = ReplayFilter(frozenset({"c1"}))
    assert not by_customer.needs_value(keyed=True) and by_customer.needs_value(keyed=False)
    by_record_time = ReplayFilter(since_ms=T0, record_time=True)
    assert not by_record_time.needs_value(keyed=True)
    assert by_record_time.drop(b"k", T0 - 1, None) == "time"
    assert ReplayFilter(since_ms=T0).needs_value(keyed=True)
    assert ReplayFilter(streams=frozenset({Stream.EMAIL})).needs_value(keyed=True)
    assert not ReplayFilter().active and ReplayFilter(until_ms=T0).active


def test_filtered_lines_for_the_offline_core_are_counted(tmp_path: Path) -> None:
    path = tmp_path / "e.jsonl"
    path.write_bytes(
        b"\n".join(
            [
                line(customer_id="c1", type="page_view", ts="2025-01-01T00:00:00Z"),
                line(customer_id="c2", type="page_view", ts="2025-01-01T00:00:00Z"),
                b"",
                b"garbage",
                line(customer_id="c1", type="email_open", ts="2025-01-01T00:00:00Z"),
            ]
        )
    )
    kept = Kept()
    f = ReplayFilter(frozenset({"c1"}), frozenset({Stream.CLICKSTREAM}))
    got = list(kept.lines(file_items([path]), f))
    assert [(origin, n) for origin, n, _ in got] == [("e.jsonl", 1), ("e.jsonl", 4)]
    assert kept.read == 4 and kept.filtered == {"customer": 1, "stream": 1}


def test_customer_id_files_skip_blanks_and_comments(tmp_path: Path) -> None:
    ids = tmp_path / "ids"
    ids.write_text("# incident 42\nc1\n\n  c2  \n")
    assert read_ids(ids) == ["c1", "c2"]
    ids.write_text("sim-c000002  # note\nc3\t# tab\n  # indented\nc#4 # an id may hold #\n")
    assert read_ids(ids) == ["sim-c000002", "c3", "c#4"]
    with pytest.raises(ReplayError):
        read_ids(tmp_path / "missing")


def test_offsets_for_every_partition_or_one() -> None:
    assert parse_offsets(["10", "2:40", "0:5"], "--start-offset") == (10, {2: 40, 0: 5})
    r = OffsetRange.from_args([0, 2], ["10", "2:40"], ["1:7"])
    assert (r.start_of(0), r.start_of(2), r.end_of(1), r.end_of(0)) == (10, 40, 7, None)
    assert r.partitions == {0, 2}
    for bad in ("x", "1:", "-3", "1:-1"):
        with pytest.raises(ReplayError, match="--end-offset"):
            parse_offsets([bad], "--end-offset")


def test_pacing_follows_event_time_at_speed() -> None:
    now = [100.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(round(s, 6))
        now[0] += s

    pacer = Pacer(10.0, clock=lambda: now[0], sleep=sleep)
    pacer.wait(T0)  # the first timed event sets the origin
    pacer.wait(None)  # no time: at once
    pacer.wait(T0 + 20_000)  # 20 s of event time at 10x: 2 s later
    now[0] += 0.5  # sending took time
    pacer.wait(T0 + 30_000)  # due at 3 s: 0.5 s left
    pacer.wait(T0 + 1_000)  # in the past (another partition): at once
    assert slept == [2.0, 0.5]


def test_progress_shows_rate_and_eta_only_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    p = Progress(1000, enabled=True)
    assert p.line(250, 5.0, "sent 200") == f"[{'#' * 7}{'-' * 23}] 250/1000 50/s ETA 15s sent 200"
    assert Progress(None).line(250, 5.0) == "250 lines 50/s"
    err = io.StringIO()
    monkeypatch.setattr("sys.stderr", err)  # not a terminal
    quiet = Progress(1000, enabled=True)
    quiet.update(10, force=True)
    assert not quiet.enabled and err.getvalue() == ""
    tty = io.StringIO()
    tty.isatty = lambda: True  # type: ignore[method-assign]
    monkeypatch.setattr("sys.stderr", tty)
    assert not Progress(1000, enabled=False).enabled  # --no-progress
    shown = Progress(1000, enabled=True)
    shown.update(1000, force=True)
    assert "1000/1000" in tty.getvalue() and "ETA 0s" in tty.getvalue()
