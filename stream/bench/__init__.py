"""``microseg bench``: the offline path (`stream.bench.offline`) and the end-to-end path through
Kafka against baseline Faust agents (`stream.bench.e2e`), in one run, with the targets.

The synthetic data set is `stream.bench.data`; the table and the targets are `stream.bench.report`.
"""

from __future__ import annotations

from stream.bench.data import _BAD, generate
from stream.bench.offline import run_bench

__all__ = ["_BAD", "generate", "run_bench"]
