"""Torch-free score helpers shared by the PyTorch and ONNX rerankers.

A reranker's rank score may add a *prior*: the zero-shot dense similarity of the query and
each candidate (the index's dense score), standardized over the query's candidates, so that
the fine-tuned model only has to learn where the pretrained similarity is wrong.

>>> with_prior(np.array([0.5, 0.5], dtype=np.float32), [0.2, 0.4], weight=0.1)
array([0.4, 0.6], dtype=float32)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from shopsearch.errors import InvalidQueryError

__all__ = ["standardize", "with_prior"]


def standardize(values: np.ndarray | Sequence[float]) -> np.ndarray:
    """Z-scores of one query's candidate values (all zeros when they do not vary)."""
    array = np.asarray(values, dtype=np.float64)
    if array.size == 0:
        return array.astype(np.float32)
    spread = float(array.std())
    if spread < 1e-12:
        return np.zeros(array.shape, dtype=np.float32)
    return ((array - array.mean()) / spread).astype(np.float32)


def with_prior(
    scores: np.ndarray, priors: Sequence[float] | np.ndarray | None, weight: float
) -> np.ndarray:
    """``scores + weight * standardize(priors)`` over one query's candidates."""
    if weight == 0.0 or priors is None:
        return scores
    priors = np.asarray(priors, dtype=np.float64)
    if priors.shape != scores.shape:
        raise InvalidQueryError(f"{priors.size} priors for {scores.size} texts")
    return (scores + weight * standardize(priors)).astype(np.float32)
