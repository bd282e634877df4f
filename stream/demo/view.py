"""How the demo shows what it knows: a live ``rich`` view, plain status lines, the summary.

Every function here is pure: it takes the `DemoState` (or a part of it) and returns text or a
``rich`` renderable; `stream.demo.run` decides when and where to print them.

>>> fmt_traits([{"feature": "share_app", "z": 2.14}, {"feature": "spend_30d", "z": -0.5}])
'share_app +2.1σ, spend_30d -0.5σ'
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from stream.demo.state import DemoState, Snapshot

_HIDDEN = {"event_id", "schema_version", "kind", "model_version", "names", "mapping"}
_DRIFT_FIELDS = ("detector", "level", "subject", "statistic", "event_time")


def fmt_traits(traits: list[dict[str, Any]], most: int = 3) -> str:
    """A segment's defining traits as ``feature ±zσ``."""
    return ", ".join(
        f"{t.get('feature', '?')} {float(t.get('z', 0.0)):+.1f}σ" for t in traits[:most]
    )


def fmt_sources(sources: dict[str, int]) -> str:
    """Members by source, largest first.

    >>> fmt_sources({"sim": 12, "cj": 3}), fmt_sources({})
    ('sim 12, cj 3', '–')
    """
    return ", ".join(f"{k} {v:,}" for k, v in sources.items()) or "–"


def _ref(ref: Any) -> str:
    if not isinstance(ref, dict):
        return "–"
    return str(ref.get("segment_name") or f"#{ref.get('segment_id', '?')}")


def fmt_change(change: dict[str, Any]) -> str:
    """One ``segment-changes`` record: who moved where, why, and the features that explain it.

    >>> fmt_change({"customer_id": "c1", "previous": None, "reason": "new_customer",
    ...             "current": {"segment_id": 2, "segment_name": "Lapsed"},
    ...             "explanation": [{"feature": "recency_activity_days", "value": 40.0, "z": 2.5}]})
    'c1: – → Lapsed (new_customer) because recency_activity_days=40 (+2.5σ)'
    >>> fmt_change({"customer_id": "c1", "reason": "behaviour", "explanation": [],
    ...             "previous": {"segment_id": 2, "segment_name": "Lapsed", "micro_segment_id": 4},
    ...             "current": {"segment_id": 2, "segment_name": "Lapsed", "micro_segment_id": 5}})
    'c1: Lapsed, micro-segment 4 → 5 (behaviour)'
    """
    why = ", ".join(
        f"{e.get('feature', '?')}={float(e.get('value', 0.0)):.3g} ({float(e.get('z', 0.0)):+.1f}σ)"
        for e in change.get("explanation") or []
        if isinstance(e, dict)
    )
    before, after = change.get("previous"), change.get("current")
    if (
        isinstance(before, dict)
        and isinstance(after, dict)
        and (before.get("segment_id") == after.get("segment_id"))
    ):
        move = (
            f"{_ref(after)}, micro-segment {before.get('micro_segment_id')} → "
            f"{after.get('micro_segment_id')}"
        )
    else:
        move = f"{_ref(before)} → {_ref(after)}"
    text = f"{change.get('customer_id', '?')}: {move} ({change.get('reason', '?')})"
    return text + (f" because {why}" if why else "")


def fmt_event(event: dict[str, Any]) -> str:
    """One ``segment-events`` record of any kind; kinds this demo does not know are shown by
    their fields.

    >>> fmt_event({"kind": "segment_split", "model_version": 4, "segment_ids": [3, 9],
    ...            "mapping": {"3": [3, 9]}, "names": {"9": "Night owls"}})
    'v4 segment_split: 3 → 3, 9; 9 "Night owls"'
    >>> fmt_event({"kind": "drift_detected", "model_version": 5, "detector": "adwin",
    ...            "level": "warning", "subject": "spend_30d", "statistic": 0.31,
    ...            "event_time": "2025-02-01T00:00:00.000Z", "segment_ids": []})
    'v5 drift_detected: detector=adwin level=warning subject=spend_30d statistic=0.31 event_time=2025-02-01T00:00:00.000Z'
    >>> fmt_event({"kind": "something_new", "weight": 2})
    'something_new: weight=2'
    """
    kind = str(event.get("kind", "?"))
    head = f"v{event['model_version']} {kind}" if "model_version" in event else kind
    parts: list[str] = []
    if kind == "model_published":
        parts.append(f"{len(event.get('segment_ids') or [])} segments")
    elif kind in _LIFECYCLE:
        mapping = event.get("mapping") or {}
        parts += [f"{old} → {', '.join(map(str, new))}" for old, new in mapping.items()]
        parts += [f'{sid} "{name}"' for sid, name in (event.get("names") or {}).items()]
        if not parts:
            parts.append(", ".join(map(str, event.get("segment_ids") or [])))
    else:  # drift, or a kind added after this demo: its fields as they are
        fields = [k for k in _DRIFT_FIELDS if k in event]
        fields += sorted(k for k in event if k not in _HIDDEN and k not in _DRIFT_FIELDS)
        details = [f"{k}={event[k]}" for k in fields if event[k] not in (None, "", [], {})]
        if details:
            parts.append(" ".join(details))
    return head + (": " + "; ".join(p for p in parts if p) if any(parts) else "")


_LIFECYCLE = {"segment_born", "segment_retired", "segment_split", "segment_merged"}


def segment_rows(
    segments: list[dict[str, Any]],
    sizes: dict[str, float],
    sources: dict[str, Counter[str]] | None = None,
) -> list[dict[str, Any]]:
    """The live segments (from ``GET /segments``) with their sizes (``microseg_segment_customers``)
    and their share of the customers assigned to a live segment, largest first; ``sources``
    adds each segment's members by source (`Feed.sources`).

    >>> rows = segment_rows([{"segment_id": 1, "name": "A"}, {"segment_id": 2, "name": "B"}],
    ...                     {"1": 30.0, "2": 10.0, "7": 5.0})
    >>> [(r["name"], r["size"], r["share"]) for r in rows]
    [('A', 30, 0.75), ('B', 10, 0.25)]
    """
    live = {str(s.get("segment_id")): s for s in segments}
    total = sum(n for sid, n in sizes.items() if sid in live) or 1.0
    rows = []
    for sid, s in live.items():
        n = int(sizes.get(sid, 0))
        rows.append(
            {
                "segment_id": s.get("segment_id"),
                "name": s.get("name", "?"),
                "size": n,
                "share": round(n / total, 4),
                "traits": s.get("traits", []),
                "value_tier": s.get("value_tier", ""),
                "suggested_action": s.get("suggested_action", ""),
                "sources": dict((sources or {}).get(sid, Counter()).most_common()),
            }
        )
    return sorted(rows, key=lambda r: (-r["size"], str(r["name"])))


def urls(state: DemoState) -> list[str]:
    """Where to look while the demo runs."""
    base = state.base_url
    example = state.feed.example_customer() or "<customer id>"
    return [f"{base}/segments", f"{base}/customers/{example}", f"{base}/metrics"]


def status_line(state: DemoState) -> str:
    """One plain line for logs and pipes.

    >>> s = DemoState(phase="live", lines_total=200, lines_sent=50, elapsed=12.0)
    >>> status_line(s)
    '[    12s] live: sent 50/200 | consumed 0 (0/s) | lag 0 | model v0 | 0 segments | 0 changes'
    """
    snap = state.snapshot
    consumed = snap.events_in if snap else 0.0
    lag = snap.lag if snap else 0.0
    model = snap.model_version if snap else 0.0
    return (
        f"[{state.elapsed:6.0f}s] {state.phase}: sent {state.lines_sent:,}/{state.lines_total:,} | "
        f"consumed {consumed:,.0f} ({state.events_per_s:,.0f}/s) | lag {lag:,.0f} | "
        f"model v{model:.0f} | {len(state.segments)} segments | "
        f"{state.feed.change_count:,} changes"
    )


def _lines(lines: list[str]) -> Text:
    """Lines that are cut, not wrapped, at the width of the terminal."""
    return Text("\n".join(lines) or "(none yet)", no_wrap=True, overflow="ellipsis")


def live_view(state: DemoState, rows: int = 8) -> RenderableType:
    """The live terminal view (about 40 lines): status and URLs, segments, change feed,
    lifecycle and drift events."""
    sizes = state.snapshot.segment_sizes if state.snapshot else {}
    seg = Table(title="segments (GET /segments; sizes from /metrics)", expand=True)
    right: dict[str, Any] = {"justify": "right"}
    for col, kw in (("id", {**right, "min_width": 3}), ("name", {"ratio": 3}),
                    ("size", {**right, "min_width": 6}), ("share", {**right, "min_width": 5}),
                    ("tier", {"min_width": 4}), ("traits", {"ratio": 3}),
                    ("suggested action", {"ratio": 2}), ("members by source", {"ratio": 2})):  # fmt: skip
        seg.add_column(col, no_wrap=True, overflow="ellipsis", **kw)
    for r in segment_rows(state.segments, sizes, state.feed.sources())[:rows]:
        seg.add_row(
            str(r["segment_id"]), str(r["name"]), f"{r['size']:,}", f"{r['share']:.0%}",
            str(r["value_tier"]), fmt_traits(r["traits"], 2), str(r["suggested_action"]),
            fmt_sources(r["sources"]),
        )  # fmt: skip
    feed = state.feed
    changes = _lines([fmt_change(c) for c in reversed(feed.changes)][:rows])
    events = _lines([fmt_event(e) for e in reversed(feed.events)][:rows])
    reasons = ", ".join(f"{k} {v:,}" for k, v in feed.change_reasons.most_common())
    reasons = f" ({reasons})" if reasons else ""
    if not state.segments:
        seg.caption = (
            "no model yet: the trainer publishes one after MICROSEG_WARMUP_SAMPLES samples"
        )
    head = Text("\n".join([status_line(state), *urls(state)]), no_wrap=True, overflow="ellipsis")
    return Group(
        Panel(head, title="microseg demo (curl the URLs while it runs)", subtitle=_speed(state)),
        seg,
        Panel(changes, title=f"segment-changes: {feed.change_count:,}{reasons}"),
        Panel(events, title="segment-events: lifecycle and drift"),
    )


def _speed(state: DemoState) -> str:
    if not state.speed:
        return "as fast as possible"
    return f"{state.speed:,.0f}× event time ({86_400 / state.speed:.1f} s per day)"


def summary(state: DemoState, snap: Snapshot, wall_s: float) -> dict[str, Any]:
    """The end-of-demo figures, JSON-ready (also written by ``--summary-json``)."""
    outcomes = {k: int(v) for k, v in sorted(snap.outcomes.items())}
    return {
        "lines_sent": state.lines_sent,
        "events_in": int(snap.events_in),
        "outcomes": outcomes,
        "dead_lettered": {k: int(v) for k, v in sorted(snap.dead_letters.items())},
        "model_version": int(snap.model_version),
        "customers_assigned": int(sum(snap.segment_sizes.values())),
        "segments": segment_rows(state.segments, snap.segment_sizes, state.feed.sources()),
        "changes_emitted": int(sum(snap.changes_by_reason.values())),
        "changes_by_reason": {k: int(v) for k, v in sorted(snap.changes_by_reason.items())},
        "changes_consumed": state.feed.change_count,
        "segment_events": dict(sorted(state.feed.event_kinds.items())),
        "pace_timeouts": int(snap.pace_timeouts),
        "wall_time_s": round(wall_s, 1),
    }


_TOO_OLD = [
    "  (too_old: more than MICROSEG_LATENESS_DAYS older than the customer's newest event when it"
    " was read; the worker reads the three input topics independently, so one can run ahead)"
]


def render_summary(s: dict[str, Any]) -> str:
    """The summary as text."""
    dead = s["dead_lettered"]
    out = [
        "",
        "=== microseg demo summary ===",
        f"lines sent: {s['lines_sent']:,}    events in (consumed by the worker): "
        f"{s['events_in']:,}",
        "  by outcome: " + ", ".join(f"{k} {v:,}" for k, v in s["outcomes"].items()),
        *_TOO_OLD[: 1 if s["outcomes"].get("too_old") else 0],
        f"dead-lettered: {sum(dead.values()):,}"
        + (" (" + ", ".join(f"{k} {v}" for k, v in dead.items()) + ")" if dead else ""),
        f"segments found (model v{s['model_version']}): {len(s['segments'])}",
    ]
    stale = s["customers_assigned"] - sum(r["size"] for r in s["segments"])
    if stale > 0:
        out.append(
            f"  ({stale:,} of {s['customers_assigned']:,} customers are still in segments this model "
            "no longer has; the worker moves them when their partition next gets events)"
        )
    for r in s["segments"]:
        out.append(
            f"  #{r['segment_id']:<3} {r['name']:<40} {r['size']:>6,} {r['share']:>6.1%}  "
            f"{r['value_tier']:<4} {fmt_traits(r['traits'])}"
        )
        members = fmt_sources(r["sources"]) if r["size"] else "none scored into it yet"
        out.append(f"       → {r['suggested_action']}; members by source: {members}")
    reasons = ", ".join(f"{k} {v:,}" for k, v in s["changes_by_reason"].items())
    out.append(
        f"changes emitted: {s['changes_emitted']:,}"
        + (f" ({reasons})" if reasons else "")
        + f"; read from segment-changes: {s['changes_consumed']:,}"
    )
    kinds = ", ".join(f"{k} {v}" for k, v in s["segment_events"].items())
    out.append("segment events: " + (kinds or "none"))
    if s.get("pace_timeouts"):
        out.append(f"the worker gave up waiting for the trainer {s['pace_timeouts']} times "
                   "(MICROSEG_PACE_MAX_WAIT_S; see the worker's log)")  # fmt: skip
    out.append(f"wall time: {s['wall_time_s']:.0f} s")
    return "\n".join(out)
