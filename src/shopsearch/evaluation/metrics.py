"""Ranking metrics: DCG, nDCG, reciprocal rank, recall, latency percentiles.

Pure functions over plain Python values (gains are floats, rankings are lists of product ids),
computed with numpy. Gains are linear (``g_i / log2(i + 1)``), as in the KDD Cup 2022
(Amazon ESCI) task 1 evaluation, so an ESCI query scores with gains E=1, S=0.1, C=0.01, I=0.

>>> from shopsearch.evaluation.metrics import ndcg
>>> round(ndcg(["b", "a"], {"a": 1.0, "b": 0.1}), 4)
0.6876
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence, Set

import numpy as np

__all__ = [
    "best_grade_ids",
    "dcg",
    "ndcg",
    "percentile_ms",
    "recall",
    "reciprocal_rank",
]


def _check_k(k: int | None) -> None:
    if k is not None and k < 0:
        raise ValueError(f"k must be >= 0 or None, got {k}")


def dcg(gains: Sequence[float], k: int | None = None) -> float:
    """Discounted cumulative gain of ``gains`` (best-first), cut at ``k`` (``None``: all).

    ``sum(g_i / log2(i + 1))`` with ``i`` counted from 1, so the first gain is undiscounted.
    """
    _check_k(k)
    g = np.asarray(gains, dtype=np.float64)
    if k is not None:
        g = g[:k]
    if g.size == 0:
        return 0.0
    discounts = np.log2(np.arange(2, g.size + 2, dtype=np.float64))
    return float(np.sum(g / discounts))


def ndcg(ranking: Sequence[str], qrels: Mapping[str, float], k: int | None = None) -> float:
    """Normalised DCG of ``ranking`` against the graded judgments ``qrels`` (id -> gain).

    Unjudged ids have gain 0. The ideal DCG is computed from *all* judged gains of the query
    sorted in decreasing order, so a ranking that misses relevant products scores below 1.
    Both DCGs are cut at ``k``. An id repeated in ``ranking`` counts only at its first
    position. When the ideal DCG is 0 (no judged product has a positive gain) the query has
    nothing to find and the score is defined as 0.0. Gains must be >= 0; the result is
    always in [0, 1].
    """
    _check_k(k)
    seen: set[str] = set()
    gains: list[float] = []
    for pid in ranking if k is None else ranking[:k]:
        gains.append(0.0 if pid in seen else float(qrels.get(pid, 0.0)))
        seen.add(pid)
    ideal = dcg(sorted(qrels.values(), reverse=True), k)
    if ideal <= 0.0:
        return 0.0
    # Mathematically <= 1; clip float rounding (e.g. 1.0000000000000002).
    return min(1.0, max(0.0, dcg(gains) / ideal))


def reciprocal_rank(ranking: Sequence[str], relevant: Set[str], k: int = 10) -> float:
    """``1 / rank`` of the first id of ``relevant`` within the top ``k``; 0.0 if none."""
    _check_k(k)
    for rank, pid in enumerate(ranking[:k], start=1):
        if pid in relevant:
            return 1.0 / rank
    return 0.0


def recall(ranking: Sequence[str], relevant: Set[str], k: int = 100) -> float:
    """Share of ``relevant`` found in the top ``k``; 0.0 when ``relevant`` is empty.

    A query with nothing relevant cannot be recalled; scoring it 0 (rather than skipping it)
    keeps every evaluated query in the mean.
    """
    _check_k(k)
    if not relevant:
        return 0.0
    return len(set(ranking[:k]) & relevant) / len(relevant)


def best_grade_ids(qrels: Mapping[str, float]) -> set[str]:
    """Ids carrying the query's maximum gain (its "best grade"); empty if that gain is 0.

    For ESCI gains this is the set of Exact products when the query has any, else the
    Substitutes, and so on. Used as the relevant set for MRR and recall.
    """
    if not qrels:
        return set()
    best = max(qrels.values())
    if best <= 0.0:
        return set()
    return {pid for pid, gain in qrels.items() if gain == best}


def percentile_ms(latencies_s: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100, linear interpolation) of latencies in seconds, in ms.

    Returns 0.0 for an empty sequence.
    """
    if not 0 <= q <= 100:
        raise ValueError(f"q must be in [0, 100], got {q}")
    if len(latencies_s) == 0:
        return 0.0
    return float(np.percentile(np.asarray(latencies_s, dtype=np.float64), q)) * 1000.0
