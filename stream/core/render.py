"""The offline replay's output files, byte for byte: features, dead letters, each stage's
streams and the report.

Every file is canonical JSON (sorted keys, no spaces; `features.jsonl` rounded to 9 significant
digits), so the same run always writes the same bytes (`stream.core.engine`). ``features.jsonl``
is the bulk of a large replay's output and is written without building a dict per customer
(`_features_jsonl`), with exactly the bytes ``json.dumps`` would write.
"""

from __future__ import annotations

import json
import math
from itertools import chain
from json.encoder import encode_basestring_ascii
from operator import itemgetter
from typing import Any

import numpy as np

from stream.core.engine import RunResult
from stream.core.features import FEATURES, NAMES
from stream.core.outputs import json_line
from stream.core.state import encoded_size


def feature_statistics(
    features: dict[str, list[float]], matrix: np.ndarray | None = None
) -> dict[str, dict[str, float | str]]:
    """Per-feature population statistics over customers (mean, std, min, quartiles, p90, max).

    ``matrix`` is `_matrix` of ``features``, when the caller already has it.
    """
    if not features:
        return {}
    m = _matrix(features) if matrix is None else matrix
    q = np.percentile(m, [0, 25, 50, 75, 90, 100], axis=0)
    out: dict[str, dict[str, float | str]] = {}
    for j, f in enumerate(FEATURES):
        out[f.name] = {
            "mean": _num(m[:, j].mean()), "std": _num(m[:, j].std()), "min": _num(q[0, j]),
            "p25": _num(q[1, j]), "p50": _num(q[2, j]), "p75": _num(q[3, j]),
            "p90": _num(q[4, j]), "max": _num(q[5, j]), "unit": f.unit,
        }  # fmt: skip
    return out


def _matrix(features: dict[str, list[float]]) -> np.ndarray:
    """The customers' feature values as rows: ``np.asarray(list(features.values()))``, faster."""
    n, width = len(features), len(FEATURES)
    return np.fromiter(chain.from_iterable(features.values()), np.float64, n * width).reshape(
        n, width
    )


def _num(x: float) -> float:
    """Round for output: 9 significant digits, so reports are stable and readable."""
    x = float(x)
    return 0.0 if x == 0 or not math.isfinite(x) else float(f"{x:.9g}")


# Feature names in sorted order with their positions, and the JSON text before each value.
_SORTED = sorted(range(len(NAMES)), key=NAMES.__getitem__)
_PREFIXES = tuple(
    ("{" if k == 0 else ",") + json.dumps(NAMES[j]) + ":" for k, j in enumerate(_SORTED)
)
_IN_NAME_ORDER = itemgetter(*_SORTED)
_BITS = np.left_shift(1, np.arange(len(NAMES), dtype=np.int64))


# Per value: the JSON text before it and its ``%`` format, ``%.9g`` or ``%.1f``.
_PIECES = tuple(
    (p.replace("%", "%%").encode() + b"%.9g", p.replace("%", "%%").encode() + b"%.1f")
    for p in _PREFIXES
)


def _line_format(exact: int) -> bytes:
    """The ``%`` format of a customer's features (after the id) in `_features_jsonl`: ``%.1f``
    for the values flagged in the bit mask ``exact`` (exactly 0 or 1), ``%.9g`` for the others."""
    return b"".join([piece[exact >> k & 1] for k, piece in enumerate(_PIECES)]) + b"}}\n"


def _features_jsonl(features: dict[str, list[float]], matrix: np.ndarray | None = None) -> bytes:
    r"""``{"customer_id": …, "features": {name: _num(value)}}`` per line, exactly as
    ``json.dumps(…, sort_keys=True, separators=(",", ":"))`` writes it, without the dict walk.

    ``json.dumps(_num(x))`` writes ``repr(float(f"{x:.9g}"))``, which has the digits of
    ``f"{x:.9g}"``: it is the shortest text that reads back as the same float, and no other text
    of at most 9 significant digits does. Both write fixed notation from 1e-4 up to 1e9 and
    ``…e-XX`` below 1e-4, so the ``%.9g`` text of ``x`` is the output except for whole numbers
    (``repr`` adds ``.0``: for exactly 0 and 1, ``%.1f`` writes that), zero and non-finite values
    (both written 0.0), negative values, those from 1e9 up (fixed notation in ``repr``) and
    subnormal ones (fewer digits tell them apart: 4.94065646e-324 is written 5e-324). A customer
    with a value of these last kinds (or below 1e-300), or one near a whole number but for exactly
    0 and 1, is written the plain way instead. ``matrix`` is `_matrix` of ``features``, if any.

    >>> vals = [float(i) / 3 for i in range(len(NAMES))]
    >>> vals[3], vals[4], vals[5], vals[6], vals[7] = 0.0, -1e-300, float("nan"), 1e-5, 2e9
    >>> vals[8], vals[9], vals[10], vals[11] = 99.0, 1234567890123.0, 3.5e-300, 0.9999999999
    >>> vals[12] = 5e-324
    >>> n = len(NAMES)
    >>> for v in (vals, vals[::-1], [0.0] * n, [float(i) * 1e-5 for i in range(n)],
    ...           [1.0 - i * 1e-10 for i in range(n)], [0.0, 1.0] * (n // 2) + [0.0] * (n % 2)):
    ...     rec = {"customer_id": "cé\"", "features": dict(zip(NAMES, map(_num, v)))}
    ...     want = json.dumps(rec, sort_keys=True, separators=(",", ":")).encode() + b"\n"
    ...     assert _features_jsonl({"cé\"": v}) == want, v
    """
    if not features:
        return b""
    m = _matrix(features) if matrix is None else matrix
    exact = (m == 0.0) | (m == 1.0)
    with np.errstate(invalid="ignore"):
        plain = (
            ~np.isfinite(m)
            | np.signbit(m)
            | (m >= 999_999_999.0)
            | ((m > 0.0) & (m < 1e-300))
            | ((m >= 0.5) & (np.abs(m - np.rint(m)) <= 1e-8 * np.maximum(1.0, m)) & ~exact)
        ).any(axis=1)
    masks = (exact[:, _SORTED] @ _BITS).tolist()
    formats: dict[int, bytes] = {}
    quote, pick = encode_basestring_ascii, _IN_NAME_ORDER
    parts: list[bytes] = []
    add = parts.append
    for (cid, vals), slow, mask in zip(features.items(), plain.tolist(), masks, strict=True):
        add(b'{"customer_id":' + quote(cid).encode() + b',"features":')  # as json.dumps(cid)
        if slow:
            add(_features_plain(vals).encode())
        else:
            fmt = formats.get(mask)
            if fmt is None:
                fmt = formats[mask] = _line_format(mask)
            add(fmt % pick(vals))
    return b"".join(parts)


def _features_plain(vals: list[float]) -> str:
    """The ``{name: value}`` JSON text of one customer's features, one value at a time."""
    parts = [prefix + repr(_num(vals[j])) for prefix, j in zip(_PREFIXES, _SORTED, strict=True)]
    return "".join(parts) + "}}\n"


def render_outputs(result: RunResult, config: dict[str, Any]) -> dict[str, bytes]:
    """File name → bytes of every output of a run (JSONL per stream, plus ``report.json``)."""

    matrix = _matrix(result.features)
    dead = (json_line(d.model_dump(mode="json")) for d in result.dead_letters)
    files = {
        "dead-letter.jsonl": b"".join(dead),
        "features.jsonl": _features_jsonl(result.features, matrix),
    }
    for name, lines in sorted(result.streams.items()):
        files[f"{name}.jsonl"] = b"".join(lines)
    report = {
        "config": config,
        "counts": dict(sorted(result.counts.items())),
        "dead_lettered_by_reason": dict(sorted(result.by_reason.items())),
        "accepted_by_type": dict(sorted(result.by_type.items())),
        "watermark_ms": result.watermark,
        "state_bytes_per_customer": encoded_size(),
        "features": feature_statistics(result.features, matrix),
        **result.report,
    }
    files["report.json"] = (json.dumps(report, sort_keys=True, indent=2) + "\n").encode()
    return files
