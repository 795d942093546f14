from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from shopsearch.index.fusion import min_max, ranks, reciprocal_rank_fusion, weighted_sum


def test_ranks_break_ties_by_row():
    assert ranks({5: 1.0, 2: 1.0, 9: 3.0}) == {9: 1, 2: 2, 5: 3}


def test_rrf_matches_hand_computed_values():
    runs = {"bm25": {1: 3.0, 2: 2.0}, "dense": {2: 0.9, 3: 0.8}}
    fused = reciprocal_rank_fusion(runs, {"bm25": 1.0, "dense": 1.0}, k=60)
    # row 1: bm25 rank 1 -> 1/61; row 2: bm25 rank 2 + dense rank 1 -> 1/62 + 1/61
    # row 3: dense rank 2 -> 1/62
    assert fused[1] == pytest.approx(1 / 61)
    assert fused[2] == pytest.approx(1 / 62 + 1 / 61)
    assert fused[3] == pytest.approx(1 / 62)


def test_rrf_weights_scale_each_run():
    runs = {"bm25": {1: 3.0}, "dense": {2: 0.5}}
    fused = reciprocal_rank_fusion(runs, {"bm25": 2.0, "dense": 0.5}, k=10)
    assert fused == {1: pytest.approx(2.0 / 11), 2: pytest.approx(0.5 / 11)}


def test_weighted_sum_matches_hand_computed_values():
    runs = {"bm25": {1: 10.0, 2: 5.0, 3: 0.0}, "dense": {1: 0.2, 2: 0.6, 3: 0.4}}
    fused = weighted_sum(runs, {"bm25": 0.3, "dense": 0.7})
    # bm25 normalised: 1.0, 0.5, 0.0; dense normalised: 0.0, 1.0, 0.5
    assert fused[1] == pytest.approx(0.3 * 1.0 + 0.7 * 0.0)
    assert fused[2] == pytest.approx(0.3 * 0.5 + 0.7 * 1.0)
    assert fused[3] == pytest.approx(0.3 * 0.0 + 0.7 * 0.5)


def test_weighted_sum_row_missing_from_a_run_gets_zero_from_it():
    fused = weighted_sum({"bm25": {1: 2.0, 2: 1.0}, "dense": {2: 0.5}}, {})
    assert fused == {1: pytest.approx(1.0), 2: pytest.approx(0.0 + 1.0)}


def test_min_max_constant_and_empty():
    assert min_max(np.array([3.0, 3.0])).tolist() == [1.0, 1.0]
    assert min_max(np.array([])).size == 0


runs_strategy = st.dictionaries(
    st.sampled_from(["bm25", "dense", "other"]),
    st.dictionaries(st.integers(0, 40), st.floats(-5, 5, allow_nan=False), min_size=1, max_size=12),
    min_size=1,
)


@given(runs_strategy, st.randoms(use_true_random=False))
def test_fusion_ignores_input_order(runs, rnd):
    weights = {"bm25": 1.0, "dense": 0.7, "other": 0.2}
    shuffled = {}
    for name in rnd.sample(sorted(runs), len(runs)):
        items = list(runs[name].items())
        rnd.shuffle(items)
        shuffled[name] = dict(items)
    for fuse in (lambda r: reciprocal_rank_fusion(r, weights), lambda r: weighted_sum(r, weights)):
        a, b = fuse(runs), fuse(shuffled)
        assert a.keys() == b.keys()
        assert all(math.isclose(a[key], b[key], abs_tol=1e-12) for key in a)
