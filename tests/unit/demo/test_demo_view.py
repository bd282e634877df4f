"""The demo's pure parts: the timeline of the bundled files, its state, and how it is shown."""

from __future__ import annotations

import gzip
import json
from datetime import datetime
from pathlib import Path

from rich.console import Console

from stream.demo.data import DAY_MS, WEEK_MS, scan, shift_line, split_live, timeline
from stream.demo.state import DemoState, Feed, Snapshot, parse_metrics
from stream.demo.view import (
    fmt_change,
    fmt_event,
    live_view,
    render_summary,
    segment_rows,
    status_line,
    summary,
    urls,
)

METRICS = """\
# HELP microseg_events_total events
microseg_events_total{stream="email",type="email_open",outcome="accepted"} 70.0
microseg_events_total{stream="purchases",type="purchase",outcome="accepted"} 20.0
microseg_events_total{stream="clickstream",type="invalid",outcome="dead_lettered"} 3.0
microseg_events_total{stream="email",type="email_open",outcome="too_old"} 1.0
microseg_dead_letters_total{stream="clickstream",reason="not_json"} 2.0
microseg_dead_letters_total{stream="clickstream",reason="wrong_type"} 1.0
microseg_consumer_lag_records{topic="email",partition="0"} 4.0
microseg_consumer_lag_records{topic="email",partition="1"} 1.0
microseg_model_version 3.0
microseg_segment_customers{segment="1"} 30.0
microseg_segment_customers{segment="2"} 10.0
microseg_segment_changes_total{from_segment="none",to_segment="1",reason="new_customer"} 40.0
microseg_segment_changes_total{from_segment="1",to_segment="2",reason="behaviour"} 5.0
microseg_input_pace_timeouts_total 1.0
"""

SEGMENTS = [
    {
        "segment_id": 1,
        "name": "High-value app loyalists",
        "traits": [{"feature": "share_app", "z": 2.1, "direction": "above"}],
        "value_tier": "high",
        "suggested_action": "loyalty perks and early access",
    },
    {
        "segment_id": 2,
        "name": "Lapsed",
        "traits": [],
        "value_tier": "low",
        "suggested_action": "win-back offer with a time limit",
    },
]


def change(cid: str, reason: str = "behaviour", current: str | None = "Lapsed") -> bytes:
    ref = {"segment_id": 2, "segment_name": current, "micro_segment_id": 5} if current else None
    return json.dumps(
        {"customer_id": cid, "previous": None, "current": ref, "reason": reason,
         "explanation": [{"feature": "recency_activity_days", "value": 41.0, "z": 2.4}]}
    ).encode()  # fmt: skip


def state() -> DemoState:
    s = DemoState(phase="live", lines_total=100, lines_sent=94, base_url="http://127.0.0.1:1")
    s.observe(parse_metrics(METRICS), at=1.0)
    s.segments = SEGMENTS
    s.feed.add_change(change("sim-c000001", "new_customer"))
    s.feed.add_change(change("sim-c000002"))
    s.feed.add_event(json.dumps({"kind": "segment_born", "model_version": 3,
                                 "segment_ids": [2], "names": {"2": "Lapsed"}}).encode())  # fmt: skip
    return s


def test_snapshot_reads_the_demo_figures() -> None:
    snap = Snapshot.of(parse_metrics(METRICS), at=0.0)
    assert snap.events_in == 94
    assert snap.outcomes == {"accepted": 90, "dead_lettered": 3, "too_old": 1}
    assert snap.dead_letters == {"not_json": 2, "wrong_type": 1}
    assert snap.lag == 5
    assert snap.model_version == 3
    assert snap.segment_sizes == {"1": 30, "2": 10}
    assert snap.changes_by_reason == {"new_customer": 40, "behaviour": 5}


def test_rate_comes_from_two_scrapes() -> None:
    s = DemoState()
    s.observe(parse_metrics("microseg_events_total 10"), at=1.0)
    assert s.events_per_s == 0
    s.observe(parse_metrics("microseg_events_total 40"), at=3.0)
    assert s.events_per_s == 15


def test_feed_counts_everything_keeps_the_newest_and_skips_unreadable_records() -> None:
    f = Feed(keep=3)
    for i in range(5):
        f.add_change(change(f"c{i}"))
    f.add_change(b"not json")
    f.add_change(None)
    f.add_change(change("c9", "erased", current=None))
    assert f.change_count == 6 and f.unreadable == 2
    assert f.change_reasons == {"behaviour": 5, "erased": 1}
    assert [c["customer_id"] for c in f.changes] == ["c3", "c4", "c9"]
    assert f.example_customer() == "c4"  # c9 was erased: it has no segment to look up


def test_feed_keeps_one_model_published_in_a_row() -> None:
    f = Feed()
    for v in (1, 2, 3):
        f.add_event(json.dumps({"kind": "model_published", "model_version": v}).encode())
    f.add_event(json.dumps({"kind": "drift_detected", "model_version": 3}).encode())
    assert [e["model_version"] for e in f.events] == [3, 3]
    assert f.event_kinds == {"model_published": 3, "drift_detected": 1}


def test_change_line_says_who_where_why() -> None:
    line = fmt_change(json.loads(change("sim-c000002")))
    assert line == ("sim-c000002: – → Lapsed (behaviour) because recency_activity_days=41 (+2.4σ)")


def test_every_lifecycle_kind_renders() -> None:
    assert fmt_event({"kind": "model_published", "model_version": 2, "segment_ids": [1, 2]}) == (
        "v2 model_published: 2 segments"
    )
    assert fmt_event({"kind": "segment_merged", "model_version": 4, "segment_ids": [5],
                      "mapping": {"5": [2]}}) == "v4 segment_merged: 5 → 2"  # fmt: skip
    assert fmt_event({"kind": "segment_retired", "model_version": 4, "segment_ids": [7]}) == (
        "v4 segment_retired: 7"
    )
    drift = {"kind": "drift_detected", "model_version": 6, "detector": "page_hinkley",
             "level": "alarm", "subject": "segment 3 size", "statistic": 12.5,
             "event_time": "2025-02-01T00:00:00.000Z", "event_id": "x", "schema_version": 1}  # fmt: skip
    assert fmt_event(drift) == (
        "v6 drift_detected: detector=page_hinkley level=alarm subject=segment 3 size "
        "statistic=12.5 event_time=2025-02-01T00:00:00.000Z"
    )
    assert fmt_event({"kind": "brand_new", "b": 1, "a": "x"}) == "brand_new: a=x b=1"


def test_segment_rows_have_sizes_shares_and_leave_out_dead_segments() -> None:
    rows = segment_rows(SEGMENTS, {"1": 30.0, "2": 10.0, "99": 7.0})
    assert [(r["segment_id"], r["size"], r["share"]) for r in rows] == [
        (1, 30, 0.75),
        (2, 10, 0.25),
    ]
    assert rows[0]["suggested_action"] == "loyalty perks and early access"
    assert segment_rows(SEGMENTS, {})[0]["share"] == 0.0


def test_urls_use_a_customer_from_the_changes_feed() -> None:
    assert urls(state()) == [
        "http://127.0.0.1:1/segments",
        "http://127.0.0.1:1/customers/sim-c000002",
        "http://127.0.0.1:1/metrics",
    ]


def test_status_line_and_live_view_show_the_figures() -> None:
    s = state()
    line = status_line(s)
    assert "sent 94/100" in line and "lag 5" in line and "model v3" in line
    assert "2 segments" in line and "2 changes" in line
    console = Console(width=160, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    console.print(live_view(s))
    text = console.export_text()
    for expected in ("High-value app loyalists", "75%", "share_app +2.1σ", "sim-c000002",
                     'v3 segment_born: 2 "Lapsed"', "/customers/sim-c000002"):  # fmt: skip
        assert expected in text, expected


def test_summary_cross_checks_and_renders() -> None:
    s = state()
    assert s.snapshot is not None
    result = summary(s, s.snapshot, wall_s=61.0)
    assert result["lines_sent"] == 94 == result["events_in"]
    assert sum(result["dead_lettered"].values()) == result["outcomes"]["dead_lettered"]
    assert result["changes_emitted"] == 45 and result["changes_consumed"] == 2
    assert [r["name"] for r in result["segments"]] == ["High-value app loyalists", "Lapsed"]
    text = render_summary(result)
    assert "dead-lettered: 3 (not_json 2, wrong_type 1)" in text
    assert "High-value app loyalists" in text and "loyalty perks and early access" in text
    assert "changes emitted: 45 (behaviour 5, new_customer 40)" in text
    assert "too_old: more than MICROSEG_LATENESS_DAYS" in text  # explained when there are any
    assert result["customers_assigned"] == 40 and "still in segments" not in text
    assert result["pace_timeouts"] == 1 and "gave up waiting for the trainer 1 times" in text
    result["segments"][1]["size"] = 0
    text = render_summary(result)
    assert "members by source: none scored into it yet" in text
    result["pace_timeouts"] = 0
    assert "waiting for the trainer" not in render_summary(result)
    assert "(10 of 40 customers are still in segments this model no longer has" in text
    json.dumps(result)  # JSON-ready


def _write(path: Path, events: list[dict[str, str]]) -> Path:
    with gzip.open(path, "wt") as fh:
        fh.write("".join(json.dumps(e) + "\n" for e in events))
    return path


def test_timeline_aligns_files_by_whole_weeks_and_merges_them(tmp_path: Path) -> None:
    old = _write(tmp_path / "old.jsonl.gz", [
        {"event_id": "o1", "ts": "2008-03-03T09:00:00+00:00"},
        {"event_id": "o2", "ts": "2008-03-10T22:30:00+01:00"},
    ])  # fmt: skip
    new = _write(tmp_path / "new.jsonl.gz", [
        {"event_id": "n1", "ts": "2025-01-06T00:00:00+00:00"},
        {"event_id": "n2", "ts": "2025-02-09T00:00:00+00:00"},
    ])  # fmt: skip
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b"{not json\n")
    lines = timeline([scan(p) for p in (new, bad, old)])
    assert lines[0] == (None, b"{not json")
    ids = [json.loads(line)["event_id"] for _, line in lines[1:]]
    assert ids == ["n1", "o1", "o2", "n2"]
    times = [t for t, _ in lines[1:]]
    assert times == sorted(times)
    moved = {json.loads(line)["event_id"]: json.loads(line)["ts"] for _, line in lines[1:]}
    before = datetime.fromisoformat("2008-03-10T22:30:00+01:00")
    after = datetime.fromisoformat(moved["o2"])
    assert after.weekday() == before.weekday() and after.time() == before.time()
    assert after.utcoffset() == before.utcoffset()
    assert 0 <= datetime.fromisoformat(moved["n2"]).timestamp() - after.timestamp() < WEEK_MS / 1000
    assert moved["n1"] == "2025-01-06T00:00:00+00:00"  # the newest file is not moved
    back, live = split_live(lines, live_days=10)
    assert [json.loads(x)["event_id"] for x in live] == ["o2", "n2"]
    assert len(back) + len(live) == 5
    assert len(timeline([scan(p, limit=1) for p in (new, old)], limit=1)) == 2


def test_shift_line_changes_only_the_timestamp() -> None:
    line = b'{"event_id":"e","ts":"2017-01-01T15:14:16+00:00","note":"2017-01-01T15:14:16+00:00"}'
    t, out = shift_line(line, 3 * WEEK_MS)
    assert out == line.replace(b'"ts":"2017-01-01', b'"ts":"2017-01-22', 1)
    assert t == int(datetime.fromisoformat("2017-01-22T15:14:16+00:00").timestamp() * 1000)
    assert shift_line(b'{"ts":"2017-01-01T15:14:16"}', DAY_MS)[0] is None  # no offset
    assert shift_line(b"[1]", DAY_MS) == (None, b"[1]")


def test_shift_line_rewrites_a_line_that_is_not_compact() -> None:
    _, out = shift_line(
        b'{"note": "2017-01-01T00:00:00+00:00", "ts": "2017-01-01T00:00:00+00:00"}', WEEK_MS
    )
    assert json.loads(out) == {
        "note": "2017-01-01T00:00:00+00:00",
        "ts": "2017-01-08T00:00:00+00:00",
    }


def test_monitor_settles_once_everything_sent_is_consumed_and_nothing_lags() -> None:
    import threading
    from types import SimpleNamespace

    from stream.demo.drive import Monitor

    replayer = SimpleNamespace(done=threading.Event())
    s = DemoState(lines_sent=94)
    monitor = Monitor(s, threading.Lock(), replayer)  # type: ignore[arg-type]
    assert not monitor.settled(quiet_s=0.0)  # no scrape yet
    s.observe(parse_metrics(METRICS), at=1.0)  # 94 consumed, lag 5
    assert not monitor.settled(quiet_s=0.0)  # still sending
    replayer.done.set()
    assert not monitor.settled(quiet_s=0.0)  # lagging
    caught_up = "\n".join(x for x in METRICS.splitlines() if "lag" not in x)
    s.observe(parse_metrics(caught_up), at=2.0)
    assert s.snapshot is not None and s.snapshot.lag == 0
    # the worker counts 30 + 10 customers in segments 1 and 2: not settled until the changes
    # that put them there have been read too
    assert not monitor.settled(quiet_s=0.0)
    for i in range(40):
        s.feed.add_change(
            json.dumps({"customer_id": f"sim-{i}", "current": {"segment_id": 1 + (i >= 30)}})
            .encode()
        )  # fmt: skip
    assert monitor.settled(quiet_s=0.0)
    assert not monitor.settled(quiet_s=3600.0)  # quiet for an hour: not yet
    s.lines_sent = 95  # one more line sent than consumed
    assert not monitor.settled(quiet_s=0.0)


def test_the_status_line_counts_lines_as_they_are_sent() -> None:
    """The replay thread counts every line into the demo state as it goes: the status line used
    to show ``sent 0/91,856`` for the whole backfill, then each part's total at its end."""
    from stream.config import Settings
    from stream.demo.drive import _Sent
    from stream.replay_sink import produce_lines

    state = DemoState(lines_total=13, lines_sent=10)  # 10 sent by an earlier part
    seen: list[int] = []

    class Producer:
        def send(self, topic: str, **kwargs: object) -> None:
            seen.append(state.lines_sent)

        def flush(self) -> None:
            pass

    lines = [b'{"event_id":"e%d","customer_id":"c","type":"page_view",'
             b'"ts":"2024-01-01T00:00:00Z"}' % i for i in range(3)]  # fmt: skip
    produce_lines(lines, Producer(), Settings(), None, _Sent(state, 10))
    assert seen == [10, 11, 12] and state.lines_sent == 13


def test_the_intro_credits_the_bundled_files_only_when_they_are_replayed() -> None:
    from stream.demo.data import DemoFile
    from stream.demo.run import _intro

    files = [DemoFile(Path("a.jsonl"), 2, 0, DAY_MS), DemoFile(Path("b.jsonl"), 1, 0, WEEK_MS)]
    parts: list[tuple[str, list[bytes], float | None]] = [("live", [b"x", b"y", b"z"], None)]
    bundled = _intro(files, parts, 35.0)
    own = _intro(files, parts, 35.0, bundled=False)
    one = _intro(files[:1], parts, 35.0, bundled=False)
    assert "SOURCES.md" in bundled and "simulated one" in bundled
    assert "SOURCES.md" not in own and "end with the newest one" in own
    assert "moved forward" not in one  # one file of one's own: nothing moves
    assert all(text.startswith("replaying 3 lines of a.jsonl") for text in (bundled, own, one))
