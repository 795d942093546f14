"""The query-category predictor: centroids of the index's own product vectors."""

from __future__ import annotations

import numpy as np

from shopsearch.search.category import CategoryPredictor


class _Vectors:
    def __init__(self, vectors: np.ndarray) -> None:
        self.vectors = vectors
        self.dim = vectors.shape[1]


class _Columns:
    def __init__(self, category) -> None:
        self.category = category


class _Snapshot:
    def __init__(self, vectors, category, live) -> None:
        self.vectors = _Vectors(np.asarray(vectors, dtype=np.float32))
        self.columns = _Columns(category)
        self.live_mask = np.asarray(live)


def _snapshot():
    shoes, bottles = ("Clothing", "Shoes"), ("Kitchen", "Bottles")
    vectors = [[1, 0, 0]] * 5 + [[0, 1, 0]] * 5 + [[0, 0, 1]] * 2 + [[0, 1, 0]]
    category = [shoes] * 5 + [bottles] * 5 + [("Toys", "Small")] * 2 + [()]
    live = [True] * 12 + [True]
    return _Snapshot(vectors, category, live)


def test_a_query_near_a_category_centroid_is_predicted_with_high_probability():
    predictor = CategoryPredictor(_snapshot(), min_products=5)
    assert predictor.paths == [("Clothing", "Shoes"), ("Kitchen", "Bottles")]  # Toys: too few
    prediction = predictor.predict(np.asarray([0.9, 0.1, 0.0], dtype=np.float32))
    assert prediction.path == ("Clothing", "Shoes") and prediction.probability > 0.99
    unsure = predictor.predict(np.asarray([0.7, 0.7, 0.0], dtype=np.float32))
    assert 0.4 < unsure.probability < 0.6


def test_products_elsewhere_are_those_filed_under_another_known_category():
    predictor = CategoryPredictor(_snapshot(), min_products=5)
    shoes = predictor.predict(np.asarray([1.0, 0.0, 0.0], dtype=np.float32))
    assert not predictor.elsewhere(0, shoes)  # a shoe
    assert predictor.elsewhere(5, shoes)  # a bottle
    assert not predictor.elsewhere(10, shoes)  # a toy: its category is too small to know
    assert not predictor.elsewhere(12, shoes)  # no category at all


def test_deleted_rows_do_not_shape_the_centroids():
    snapshot = _snapshot()
    snapshot.live_mask = np.asarray([True] * 5 + [False] * 5 + [True] * 3)
    assert CategoryPredictor(snapshot, min_products=5).paths == [("Clothing", "Shoes")]
    assert CategoryPredictor(snapshot, min_products=99).predict(np.ones(3)) is None
