"""Validation metrics shared by the trainers."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from shopsearch.evaluation.metrics import ndcg
from shopsearch.training.data import PairExample

__all__ = ["ranking_ndcg"]


def ranking_ndcg(examples: Sequence[PairExample], scores: Sequence[float]) -> float | None:
    """Mean over queries of nDCG (whole list) of the examples ranked by ``scores``."""
    by_query: dict[str, list[tuple[float, str]]] = {}
    qrels: dict[str, dict[str, float]] = {}
    for ex, score in zip(examples, scores, strict=True):
        if not ex.query or ex.relevance is None:
            continue
        by_query.setdefault(ex.query, []).append((float(score), ex.product_id))
        qrels.setdefault(ex.query, {})[ex.product_id] = ex.gain
    if not by_query:
        return None
    values = [
        ndcg([pid for _, pid in sorted(pairs, key=lambda p: -p[0])], qrels[query])
        for query, pairs in by_query.items()
    ]
    return float(np.mean(values))
