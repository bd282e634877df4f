"""The segment model snapshot: what the trainer publishes and every scorer loads.

Small and self-contained: scaler statistics of the clustering space (`stream.core.space`),
segment and micro-segment centroids in scaled space, their stable ids and names, and the version. Encoded as canonical
JSON (sorted keys, floats as their shortest repr) — never pickled — so any consumer can read it
and the same model always encodes to the same bytes.

>>> m = SegmentModel(version=1, trained_at=0, mean=[0.0, 0.0], std=[1.0, 1.0],
...                  segments=[Segment(1, "Steady", [0.0, 0.0], [MicroSegment(1, [0.0, 0.0])])],
...                  next_segment_id=2, next_micro_id=2, features=["a", "b"])
>>> SegmentModel.decode(m.encode()) == m
True
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from stream.core.features import FEATURES
from stream.core.space import transform, transform_many

__all__ = ["Z_CLIP", "MicroSegment", "Segment", "SegmentModel", "transform", "transform_many"]

ENCODING_VERSION = 5
"""Version 5: ``recency_activity_days`` counts the customer's own events only (not e-mails sent,
delivered or bounced to them); version 4: the pace weighting of `stream.core.space` counts
touches, not events; version 3: average order value shrunk towards a typical order; version 2:
coordinates in `stream.core.space` first; version 1: log1p of counts, nothing else."""

Z_CLIP = 3.0
"""Scaled coordinates are clipped to ±Z_CLIP, so one extreme customer cannot claim a segment."""

_NAMES = tuple(f.name for f in FEATURES)


@dataclass
class MicroSegment:
    """A finer group inside a segment."""

    id: int
    centroid: list[float]


@dataclass
class Segment:
    """A segment: id (stable across versions), descriptive name, centroid, micro-segments."""

    id: int
    name: str
    centroid: list[float]
    micro: list[MicroSegment]
    weight: float = 0.0
    traits: list[dict[str, Any]] = field(default_factory=list)
    value_tier: str = ""
    action: str = ""


@dataclass
class SegmentModel:
    """A versioned model snapshot."""

    version: int
    trained_at: int
    mean: list[float]
    std: list[float]
    segments: list[Segment]
    next_segment_id: int
    next_micro_id: int
    features: list[str] = field(default_factory=lambda: list(_NAMES))
    reshuffled: list[int] = field(default_factory=list)
    """Previous-version segments merged or split away: their members move for ``model_update``."""

    def encode(self) -> bytes:
        """Canonical JSON bytes (the value of a ``segment-model`` record)."""
        return json.dumps(
            {"encoding": ENCODING_VERSION, **asdict(self)}, sort_keys=True, separators=(",", ":")
        ).encode()

    @classmethod
    def decode(cls, data: bytes) -> SegmentModel:
        """Read an encoded snapshot; raise ValueError if it is not one this code understands."""
        obj = json.loads(data)
        if obj.pop("encoding", None) != ENCODING_VERSION:
            raise ValueError("unsupported segment-model encoding")
        segments = [
            Segment(**{**s, "micro": [MicroSegment(**m) for m in s["micro"]]})
            for s in obj.pop("segments")
        ]
        return cls(segments=segments, **obj)

    def standardise(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        """Clustering-space coordinates (`transform_many`'s rows, or one row) → scaled space."""
        z = (x - np.asarray(self.mean)) / np.asarray(self.std)
        out: NDArray[np.float64] = np.clip(z, -Z_CLIP, Z_CLIP)
        return out

    def scale(self, values: list[float]) -> NDArray[np.float64]:
        """Raw feature vector → scaled clustering space."""
        return self.standardise(np.asarray(transform(values), dtype=np.float64))

    def scale_many(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        """Rows of raw feature vectors → scaled clustering space."""
        return self.standardise(transform_many(x))

    def centroids(self) -> NDArray[np.float64]:
        """Segment centroids as a matrix (segment order)."""
        return np.asarray([s.centroid for s in self.segments], dtype=np.float64)

    def segment(self, segment_id: int) -> Segment | None:
        """The segment with this id, if live."""
        return next((s for s in self.segments if s.id == segment_id), None)
