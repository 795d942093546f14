"""Query category: which part of the catalog a query is about, with a probability.

A light classifier with nothing to train: each category path (the first ``depth`` levels)
is the mean of the English dense vectors of its products (the index has them), and a query
is scored against these centroids with a softmax at ``temperature``. It is computed once
per index snapshot (a few ms per 10,000 products) and costs one matrix-vector product per
query, reusing the query vector dense retrieval computed. Categories with fewer than
``min_products`` products are left out.

The prediction is returned with the parsed query; when its probability reaches
``analysis.category_min_probability`` (no effect when unsure), products filed in another
category lose ``analysis.category_boost`` x the spread of the candidates' scores.
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass

import numpy as np

from shopsearch.catalog.schema import CATEGORY_SEPARATOR
from shopsearch.index.snapshot import IndexSnapshot

__all__ = ["CategoryPrediction", "CategoryPredictor", "predictor_for"]

DEPTH = 2
MIN_PRODUCTS = 5
TEMPERATURE = 0.05


@dataclass(frozen=True)
class CategoryPrediction:
    path: tuple[str, ...]
    probability: float

    @property
    def label(self) -> str:
        return CATEGORY_SEPARATOR.join(self.path)


class CategoryPredictor:
    """Category centroids of one snapshot (see the module docstring)."""

    def __init__(
        self,
        snapshot: IndexSnapshot,
        depth: int = DEPTH,
        min_products: int = MIN_PRODUCTS,
        temperature: float = TEMPERATURE,
    ) -> None:
        self.depth = depth
        self.temperature = temperature
        live = snapshot.live_mask
        rows_of: dict[tuple[str, ...], list[int]] = {}
        for row, path in enumerate(snapshot.columns.category):
            if live[row] and len(path) >= depth:
                rows_of.setdefault(tuple(path[:depth]), []).append(row)
        self.paths = [p for p, rows in rows_of.items() if len(rows) >= min_products]
        self.row_paths = {
            row: i for i, p in enumerate(self.paths) for row in rows_of[p]
        }  # row -> index of its path
        if not self.paths:
            self.centroids = np.zeros((0, snapshot.vectors.dim), dtype=np.float32)
            return
        vectors = snapshot.vectors
        centroids = np.stack(
            [
                vectors.vectors[np.asarray(rows_of[p], dtype=np.int64)].mean(axis=0)
                for p in self.paths
            ]
        ).astype(np.float32)
        norms = np.linalg.norm(centroids, axis=1, keepdims=True)
        self.centroids = centroids / np.maximum(norms, 1e-12)

    def predict(self, query_vector: np.ndarray) -> CategoryPrediction | None:
        if not self.paths:
            return None
        logits = (self.centroids @ query_vector.astype(np.float32)) / self.temperature
        logits -= logits.max()
        probabilities = np.exp(logits)
        probabilities /= probabilities.sum()
        best = int(np.argmax(probabilities))
        return CategoryPrediction(self.paths[best], float(probabilities[best]))

    def elsewhere(self, row: int, prediction: CategoryPrediction) -> bool:
        """Whether ``row`` is filed under a known category other than the predicted one
        (``False`` for a product without one, or in a category too small to learn)."""
        index = self.row_paths.get(row)
        return index is not None and self.paths[index] != prediction.path


_lock = threading.Lock()
_predictors: weakref.WeakKeyDictionary[IndexSnapshot, CategoryPredictor] = (
    weakref.WeakKeyDictionary()
)


def predictor_for(snapshot: IndexSnapshot) -> CategoryPredictor:
    """The snapshot's predictor, built on first use and kept while the snapshot lives."""
    predictor = _predictors.get(snapshot)
    if predictor is None:
        with _lock:
            predictor = _predictors.get(snapshot)
            if predictor is None:
                predictor = _predictors[snapshot] = CategoryPredictor(snapshot)
    return predictor
