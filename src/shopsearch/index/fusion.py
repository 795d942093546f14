"""Rank fusion of retriever outputs.

Both functions take, per retriever, a mapping ``row -> score`` over that retriever's
candidates, and return fused scores for the union of candidates. Neither depends on the
order in which rows or retrievers are given.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

DEFAULT_RRF_K = 60


def ranks(scores: Mapping[int, float]) -> dict[int, int]:
    """1-based ranks by descending score; ties broken by ascending row."""
    ordered = sorted(scores.items(), key=lambda item: (-item[1], item[0]))
    return {row: rank for rank, (row, _) in enumerate(ordered, start=1)}


def reciprocal_rank_fusion(
    runs: Mapping[str, Mapping[int, float]],
    weights: Mapping[str, float],
    k: int = DEFAULT_RRF_K,
) -> dict[int, float]:
    """RRF (Cormack et al., 2009): ``sum_r w_r / (k + rank_r(d))``; absent from a run adds 0."""
    fused: dict[int, float] = {}
    for name, run in runs.items():
        weight = weights.get(name, 1.0)
        for row, rank in ranks(run).items():
            fused[row] = fused.get(row, 0.0) + weight / (k + rank)
    return fused


def min_max(values: np.ndarray) -> np.ndarray:
    """Scale to [0, 1]; a constant vector maps to all ones (all equally good)."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return values
    low, high = float(values.min()), float(values.max())
    if high - low <= 1e-12:
        return np.ones_like(values)
    return (values - low) / (high - low)


def weighted_sum(
    runs: Mapping[str, Mapping[int, float]],
    weights: Mapping[str, float],
) -> dict[int, float]:
    """Min-max normalise each run over its candidates, then ``sum_r w_r * norm_r(d)``.

    A row missing from a run gets 0 from it (the bottom of that run's scale).
    """
    fused: dict[int, float] = {}
    for name, run in runs.items():
        if not run:
            continue
        weight = weights.get(name, 1.0)
        rows = np.fromiter(run.keys(), dtype=np.int64, count=len(run))
        normed = min_max(np.fromiter(run.values(), dtype=np.float64, count=len(run)))
        for row, value in zip(rows.tolist(), normed.tolist(), strict=True):
            fused[row] = fused.get(row, 0.0) + weight * value
    return fused


FUSION_METHODS = ("rrf", "weighted")
