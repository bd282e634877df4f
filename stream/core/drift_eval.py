"""Scoring drift handling against a simulation's truth: detection delay, newborn segments.

`drift_report` takes the ``segment-events`` and ``segment-changes`` records of a run and the
simulator's truth file and reports:

* **detections**: drift detections by level, and those on or after each planted change (the
  churn wave's day, the emerging persona's first day) with the delay in days of event time of
  the first model-fit or segment detection;
* **births**: each segment born after the emerging persona's start, with its birth time and,
  ``purity_days`` after the start (after its birth, if it was born later: ``checked_days``
  says when), its size and the share of its members who are of the emerging persona (members
  reconstructed from the changes up to that time). A segment that comes into being as the new
  side of a split counts too (``"from"``: the segment it split from): the stable-identity
  matching publishes a newborn as a split when most of its customers had been in one segment,
  as an emerging persona's first members often were, and it is just as new.

>>> truth = {"parameters": {"start": "2025-01-01T00:00:00.000Z", "emerge_day": 1},
...          "emerging": {"persona": "new"}, "customers": [
...              {"customer_id": "a", "persona_end": "new"},
...              {"customer_id": "b", "persona_end": "old"}]}
>>> ev = [{"kind": "drift_detected", "event_time": "2025-01-02T12:00:00.000Z",
...        "drift": {"level": "model_fit"}},
...       {"kind": "segment_born", "event_time": "2025-01-03T00:00:00.000Z", "segment_ids": [7]}]
>>> ch = [{"customer_id": "a", "version": 1, "event_time": "2025-01-03T01:00:00.000Z",
...        "current": {"segment_id": 7}}]
>>> r = drift_report(ev, ch, truth)
>>> r["emergence"]["first_detection_delay_days"], r["births"][0]["emerging_share"]
(0.5, 1.0)
>>> ev.append({"kind": "segment_born", "event_time": "2025-01-20T00:00:00.000Z", "segment_ids": [8]})
>>> ch.append({"customer_id": "b", "version": 1, "event_time": "2025-01-21T00:00:00.000Z",
...            "current": {"segment_id": 8}})
>>> [(b["checked_days"], b["members_at_check"], b["emerging_share"])
...  for b in drift_report(ev, ch, truth)["births"]]
[(7.0, 1, 1.0), (25.0, 1, 0.0)]
>>> ev[1] = {"kind": "segment_split", "event_time": "2025-01-03T00:00:00.000Z",
...          "mapping": {"3": [3, 7]}, "segment_ids": [3, 7]}
>>> [(b["segment_id"], b.get("from"), b["emerging_share"])
...  for b in drift_report(ev, ch, truth)["births"]]
[(7, 3, 1.0), (8, None, 0.0)]
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from stream.core.features import DAY_MS
from stream.core.outputs import parse_rfc3339_ms


def _members_at(changes: list[dict[str, Any]], t: int) -> dict[str, int]:
    """Customer → segment id at event time ``t`` (from the changes up to then)."""
    at: dict[str, tuple[int, int]] = {}
    for ch in changes:
        if parse_rfc3339_ms(ch["event_time"]) > t:
            continue
        seg = ch["current"]["segment_id"] if ch.get("current") else 0
        v = ch["version"]
        if ch["customer_id"] not in at or at[ch["customer_id"]][0] < v:
            at[ch["customer_id"]] = (v, seg)
    return {c: s for c, (_, s) in at.items() if s}


def _after(detections: list[tuple[int, str]], since: int) -> dict[str, Any]:
    later = [(t, lvl) for t, lvl in detections if t >= since]
    first = min((t for t, lvl in later if lvl in ("model_fit", "segment")), default=None)
    return {
        "detections": dict(sorted(Counter(lvl for _, lvl in later).items())),
        "first_detection_delay_days": None if first is None else round((first - since) / DAY_MS, 2),
    }


def drift_report(
    events: list[dict[str, Any]],
    changes: list[dict[str, Any]],
    truth: dict[str, Any],
    purity_days: float = 7.0,
) -> dict[str, Any]:
    """The drift section of an evaluation (see the module docstring)."""
    params = truth["parameters"]
    start = parse_rfc3339_ms(params["start"])
    detections = sorted((parse_rfc3339_ms(e["event_time"]), e["drift"]["level"])
                        for e in events if e["kind"] == "drift_detected")  # fmt: skip
    out: dict[str, Any] = {
        "detections": dict(sorted(Counter(lvl for _, lvl in detections).items())),
    }
    if "churn_day" in params:
        out["churn"] = {"day": params["churn_day"],
                        **_after(detections, start + params["churn_day"] * DAY_MS)}  # fmt: skip
    emerge = start + int(params["emerge_day"]) * DAY_MS
    out["emergence"] = {"day": params["emerge_day"], **_after(detections, emerge)}
    persona = {c["customer_id"]: c["persona_end"] for c in truth["customers"]}
    window = int(purity_days * DAY_MS)
    births = []
    for e in events:
        born = parse_rfc3339_ms(e["event_time"])
        if born < emerge:
            continue
        new: list[tuple[int, int | None]]
        if e["kind"] == "segment_born":
            new = [(e["segment_ids"][0], None)]
        elif e["kind"] == "segment_split":
            new = [(sid, int(old)) for old, ids in e["mapping"].items() for sid in ids
                   if sid != int(old)]  # fmt: skip
        else:
            continue
        # a segment born after the emergence's check gets its own week
        check = emerge + window if born <= emerge + window else born + window
        members = _members_at(changes, check)
        for sid, parent in new:
            who = [c for c, s in members.items() if s == sid]
            hits = sum(1 for c in who if persona.get(c) == truth["emerging"]["persona"])
            births.append({
                "segment_id": sid,
                **({} if parent is None else {"from": parent}),
                "born_days_after_start": round((born - emerge) / DAY_MS, 2),
                "checked_days": round((check - emerge) / DAY_MS, 2),
                "members_at_check": len(who),
                "emerging_share": round(hits / len(who), 4) if who else None,
            })  # fmt: skip
    out["births"] = births
    out["purity_check_days"] = purity_days
    return out
