"""Scoring a segmentation against planted truth: ARI, NMI, migrations, spurious changes.

`evaluate` takes the ``segment-changes`` records of a run, the final feature vectors and the
simulator's truth file, and reports:

* **ARI / NMI** of every customer's final segment against their final planted persona, and the
  same for a batch k-means on the same final features (the offline optimum, best of ``n_init``
  seeds by inertia, then `stream.core.kmeans.improve`) with as many segments as the run ended
  with (``n_segments`` if it assigned nobody), so a segment born on the way is compared like
  for like;
* **migrations**: of customers whose persona switched at least ``min_observe_days`` before the
  end, the share whose segment changed after the switch (``recall``) and the share that moved to
  the segment where their new persona's stable customers end up (``recall_to_target``), with the
  median delay in days of event time of the latter; the same per flow (``by_flow``, e.g.
  ``store_regular->lapsed``: which kinds of change the segmentation follows slowly) and for
  migrations into silence and into another active persona apart (``by_target``: ``lapsed``,
  ``active``);
* **lapses**: the same for customers who go silent (move to any other segment after their last
  event), per persona they went silent from;
* **spurious changes**: segment changes (not micro-segment) of stable customers — same persona
  throughout, never silent — after a warm-up, per customer per 30 days; also counted by the
  change's ``reason`` (``by_reason``: the moves a model update forced, ``model_update`` and
  ``segment_retired``, apart from ``behaviour`` ones), by persona (``by_persona``, each with
  its own rate) and by kind (``by_kind``, each with its rate): ``into_lapsed`` and
  ``out_of_lapsed`` (the segment where the lapsed customers end up: false lapses and their
  returns), ``to_home`` (into the segment where the customer's persona ends up: a placement
  corrected as evidence came in), ``from_home`` (out of it) and ``elsewhere``. Not counted:
  the *adaptation* (``adaptation``, counted apart), a customer of the persona that emerges
  mid-stream (the truth's ``emerging``) moving for the first time into the segment where that
  persona ends up, when that segment held nobody yet when the customer was first placed: the
  model gaining a segment for a new kind of customer is the change, and their move into it is
  what it is for (issue 5), as a migrant's move is not spurious either.
  ``warmup_days`` sets the warm-up: decayed features take about two horizons (60 days) to
  fill, and the rate is lower once they have.

>>> adjusted_rand([0, 0, 1, 1], ["a", "a", "b", "b"]), adjusted_rand([0, 1, 0, 1], [0, 0, 1, 1])
(1.0, -0.5)
>>> round(normalized_mutual_info([0, 0, 1, 1], [1, 1, 0, 0]), 6)
1.0
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from stream.core.features import DAY_MS
from stream.core.kmeans import best_kmeans, improve
from stream.core.model import Z_CLIP, transform_many
from stream.core.outputs import parse_rfc3339_ms
from stream.core.personas import LAPSED
from stream.core.space import STD_FLOOR


def _contingency(a: Sequence[Hashable], b: Sequence[Hashable]) -> NDArray[np.float64]:
    ia = {v: i for i, v in enumerate(sorted(set(a), key=repr))}
    ib = {v: i for i, v in enumerate(sorted(set(b), key=repr))}
    m = np.zeros((len(ia), len(ib)))
    for x, y in zip(a, b, strict=True):
        m[ia[x], ib[y]] += 1
    return m


def adjusted_rand(a: Sequence[Hashable], b: Sequence[Hashable]) -> float:
    """Adjusted Rand index of two labelings (1 = identical partitions, ≈ 0 = chance)."""
    m = _contingency(a, b)

    def pairs(x: NDArray[np.float64]) -> float:
        return float((x * (x - 1) / 2).sum())

    n = pairs(np.asarray([m.sum()]))
    index, sa, sb = pairs(m), pairs(m.sum(axis=1)), pairs(m.sum(axis=0))
    expected = sa * sb / n if n else 0.0
    top = (sa + sb) / 2 - expected
    return 1.0 if top == 0 else round((index - expected) / top, 6)


def normalized_mutual_info(a: Sequence[Hashable], b: Sequence[Hashable]) -> float:
    """Normalised mutual information (arithmetic mean of the entropies)."""
    m = _contingency(a, b)
    p = m / m.sum()
    pa, pb = p.sum(axis=1), p.sum(axis=0)
    nz = p > 0
    mi = float((p[nz] * np.log(p[nz] / np.outer(pa, pb)[nz])).sum())
    ha = float(-(pa[pa > 0] * np.log(pa[pa > 0])).sum())
    hb = float(-(pb[pb > 0] * np.log(pb[pb > 0])).sum())
    return 1.0 if ha + hb == 0 else round(2 * mi / (ha + hb), 6)


def batch_kmeans(
    features: NDArray[np.float64], k: int, seed: int = 42, n_init: int = 10
) -> list[int]:
    """The offline optimum: k-means over all customers' final features, scaled like the model
    (transform, population standardisation, clipping), best of ``n_init`` seeds, then searched
    out of a poor local optimum as the trainer's are (`stream.core.kmeans.improve`): a baseline
    stuck in one would make the comparison easy."""
    x = transform_many(features)
    z = np.clip((x - x.mean(axis=0)) / np.maximum(x.std(axis=0), STD_FLOOR), -Z_CLIP, Z_CLIP)
    w = np.ones(len(z))
    centroids, _ = best_kmeans(z, w, k, seed, n_init=n_init)
    return improve(z, w, centroids, seed)[1]


def evaluate(
    changes: Sequence[dict[str, Any]],
    features: dict[str, list[float]],
    truth: dict[str, Any],
    n_segments: int,
    warmup_days: float = 30.0,
    min_observe_days: float = 14.0,
    seed: int = 42,
) -> dict[str, Any]:
    """The evaluation report (see the module docstring)."""
    people = {c["customer_id"]: c for c in truth["customers"]}
    history: dict[str, list[tuple[int, int]]] = {}  # customer → [(time, segment)] by version
    reasons: dict[str, list[str]] = {}  # customer → the reason of each change, likewise
    for ch in sorted(changes, key=lambda c: (c["customer_id"], c["version"])):
        seg = ch["current"]["segment_id"] if ch["current"] else 0
        history.setdefault(ch["customer_id"], []).append((parse_rfc3339_ms(ch["event_time"]), seg))
        reasons.setdefault(ch["customer_id"], []).append(ch["reason"])
    final = {cid: h[-1][1] for cid, h in history.items() if h[-1][1]}
    cids = sorted(c for c in final if c in people)
    personas = [people[c]["persona_end"] for c in cids]
    segments = [final[c] for c in cids]
    fcids = sorted(c for c in features if c in people)
    k = len(set(segments)) or n_segments
    km = batch_kmeans(np.asarray([features[c] for c in fcids]), k, seed)
    km_truth = [people[c]["persona_end"] for c in fcids]

    # Where each persona's stable customers end up: the segment a migrant should reach.
    stable = [c for c in cids if _stable(people[c])]
    home: dict[str, int] = {}
    for persona in sorted(set(personas)):
        got = Counter(final[c] for c in cids if people[c]["persona_end"] == persona
                      and (_stable(people[c]) or persona == LAPSED))  # fmt: skip
        if got:
            home[persona] = got.most_common(1)[0][0]
    end_ms = parse_rfc3339_ms(truth["parameters"]["end"])
    start_ms = parse_rfc3339_ms(truth["parameters"]["start"])
    observe = int(min_observe_days * DAY_MS)

    def moves(cid: str, since: int, target: int | None) -> tuple[bool, float | None]:
        h = history.get(cid, [])
        before = [s for t, s in h if t < since]
        held = before[-1] if before else None
        anymove, delay = False, None
        for t, s in h:
            if t >= since and s != held:
                anymove = True
                if target is not None and s == target and delay is None:
                    delay = (t - since) / DAY_MS
        return anymove, delay

    def movement(rows: list[tuple[str, int, str, str]], split: bool) -> dict[str, Any]:
        got = [moves(cid, since, home.get(to)) for cid, since, to, _ in rows]
        flows: dict[str, list[tuple[bool, float | None]]] = {}
        targets: dict[str, list[tuple[bool, float | None]]] = {"lapsed": [], "active": []}
        for (_, _, to, start), g in zip(rows, got, strict=True):
            flows.setdefault(f"{start}->{to}", []).append(g)
            targets["lapsed" if to == LAPSED else "active"].append(g)
        out = {**_moved(got), "by_flow": {f: _moved(flows[f]) for f in sorted(flows)}}
        if split:
            out["by_target"] = {k: _moved(v) for k, v in targets.items()}
        return out

    migrants = [(c, p["migration"]["switch_ms"], p["migration"]["to"], p["persona_start"])
                for c, p in people.items() if p.get("migration")
                and p["migration"]["switch_ms"] <= end_ms - observe and c in history]  # fmt: skip
    lapses = [(c, p["active_until_ms"], LAPSED, p["persona_start"]) for c, p in people.items()
              if p.get("active_until_ms") and p["active_until_ms"] <= end_ms - observe
              and c in history]  # fmt: skip
    warm = start_ms + int(warmup_days * DAY_MS)
    emerging = (truth.get("emerging") or {}).get("persona")
    opened: dict[int, int] = {}  # segment → when it first held anyone
    for h in history.values():
        for t, seg in h:
            opened[seg] = min(t, opened.get(seg, t))
    adapted = 0  # emerging persona's customers joining the segment opened for them
    spurious: Counter[str] = Counter()  # by reason
    kinds: Counter[str] = Counter({k: 0 for k in SPURIOUS_KINDS})
    by_persona: dict[str, list[float]] = {}  # persona → [changes, exposure days]
    for cid in stable:
        since = max(warm, people[cid]["joined_ms"] + observe)
        if since >= end_ms:
            continue
        persona = people[cid]["persona_end"]
        tally = by_persona.setdefault(persona, [0.0, 0.0])
        tally[1] += (end_ms - since) / DAY_MS
        h = history[cid]
        own = home.get(persona) if persona == emerging else None
        if own is not None and opened[own] <= h[0][0]:
            own = None  # their segment was open when they were placed: no adaptation to join
        for (t, seg), (_, prev), why in zip(h[1:], h, reasons[cid][1:], strict=False):
            if seg == own:
                own = None  # the first move into it is the adaptation; any later one counts
                if t >= since and prev:
                    adapted += 1
                    continue
            if t >= since and seg != prev and prev:
                spurious[why] += 1
                kinds[_kind(prev, seg, home.get(LAPSED), home.get(persona))] += 1
                tally[0] += 1
    exposure_days = sum(days for _, days in by_persona.values())
    n_spurious = spurious.total()

    def rate(n: float) -> float | None:
        return round(n / exposure_days * 30, 4) if exposure_days else None

    return {
        "customers": len(cids),
        "segments": len(set(segments)),
        "ari": adjusted_rand(personas, segments),
        "nmi": normalized_mutual_info(personas, segments),
        "batch_kmeans": {
            "segments": k,
            "ari": adjusted_rand(km_truth, km),
            "nmi": normalized_mutual_info(km_truth, km),
        },
        "migrations": movement(migrants, split=True),
        "lapses": movement(lapses, split=False),
        "spurious": {
            "stable_customers": len(stable),
            "changes": n_spurious,
            "by_reason": dict(sorted(spurious.items())),
            "by_kind": {
                k: {"changes": n, "per_customer_per_30_days": rate(n)} for k, n in kinds.items()
            },
            "per_customer_per_30_days": rate(n_spurious),
            "warmup_days": warmup_days,
            "adaptation": {"persona": emerging, "changes": adapted},
            "by_persona": {
                p: {"changes": int(n), "per_customer_per_30_days": round(n / days * 30, 4)}
                for p, (n, days) in sorted(by_persona.items())
            },
        },
        "changes": len(changes),
    }


SPURIOUS_KINDS = ("into_lapsed", "out_of_lapsed", "to_home", "from_home", "elsewhere")
"""What a stable customer's segment change did (``spurious.by_kind``, module docstring)."""


def _kind(prev: int, seg: int, lapsed: int | None, home: int | None) -> str:
    """The `SPURIOUS_KINDS` entry of a move ``prev`` → ``seg``, given the lapsed customers' and
    the customer's persona's segments.

    >>> _kind(1, 5, 5, 1), _kind(5, 1, 5, 1), _kind(2, 1, 5, 1), _kind(1, 2, 5, 1), _kind(2, 3, 5, 1)
    ('into_lapsed', 'out_of_lapsed', 'to_home', 'from_home', 'elsewhere')
    """
    if lapsed is not None and seg == lapsed:
        return "into_lapsed"
    if lapsed is not None and prev == lapsed:
        return "out_of_lapsed"
    if seg == home:
        return "to_home"
    return "from_home" if prev == home else "elsewhere"


def _moved(got: list[tuple[bool, float | None]]) -> dict[str, Any]:
    """Recall (any move), recall to the target segment and median delay of ``moves`` results."""
    delays = [d for _, d in got if d is not None]
    return {
        "customers": len(got),
        "recall": round(sum(a for a, _ in got) / len(got), 4) if got else None,
        "recall_to_target": round(len(delays) / len(got), 4) if got else None,
        "median_delay_days": round(statistics.median(delays), 2) if delays else None,
    }


def _stable(person: dict[str, Any]) -> bool:
    return (not person.get("migration") and person["persona_start"] == person["persona_end"]
            and not person.get("active_until_ms"))  # fmt: skip
