"""Metrics against hand-computed values, and nDCG's invariants as properties."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shopsearch.evaluation.metrics import (
    best_grade_ids,
    dcg,
    ndcg,
    percentile_ms,
    recall,
    reciprocal_rank,
)

LOG2_3 = math.log2(3)  # discount of rank 2
LOG2_5 = math.log2(5)  # discount of rank 4; rank 3's is log2(4) = 2


# --- dcg -------------------------------------------------------------------------------------


def test_dcg_linear_gain_standard_discount() -> None:
    # gains [1, 0.1, 0, 1] -> 1/log2(2) + 0.1/log2(3) + 0/log2(4) + 1/log2(5)
    #                       = 1 + 0.0630930 + 0 + 0.4306766 = 1.4937696
    expected = 1 + 0.1 / LOG2_3 + 0 / 2 + 1 / LOG2_5
    assert dcg([1, 0.1, 0, 1]) == pytest.approx(expected)
    assert dcg([1, 0.1, 0, 1]) == pytest.approx(1.4937696, abs=1e-7)


def test_dcg_cut_at_k() -> None:
    # k=2 keeps [1, 0.1] -> 1 + 0.1/log2(3)
    assert dcg([1, 0.1, 0, 1], k=2) == pytest.approx(1 + 0.1 / LOG2_3)
    # k beyond the list is the whole list
    assert dcg([1, 0.1, 0, 1], k=50) == pytest.approx(dcg([1, 0.1, 0, 1]))


def test_dcg_empty_and_k_zero() -> None:
    assert dcg([]) == 0.0
    assert dcg([1.0, 1.0], k=0) == 0.0


def test_dcg_rejects_negative_k() -> None:
    with pytest.raises(ValueError, match="k must be"):
        dcg([1.0], k=-1)


# --- ndcg ------------------------------------------------------------------------------------

QRELS = {"a": 1.0, "b": 0.1, "c": 0.01, "d": 0.0}  # an ESCI query: E, S, C, I


def test_ndcg_perfect_ranking_is_one() -> None:
    assert ndcg(["a", "b", "c", "d"], QRELS) == pytest.approx(1.0)
    assert ndcg(["a", "b", "c", "d"], QRELS, k=2) == pytest.approx(1.0)


def test_ndcg_swapped_pair() -> None:
    # ranking [b, a] gains [0.1, 1] -> DCG = 0.1 + 1/log2(3) = 0.7309298
    # ideal [1, 0.1]             -> IDCG = 1 + 0.1/log2(3) = 1.0630930
    # nDCG = 0.7309298 / 1.0630930 = 0.6875502
    qrels = {"a": 1.0, "b": 0.1}
    assert ndcg(["b", "a"], qrels) == pytest.approx((0.1 + 1 / LOG2_3) / (1 + 0.1 / LOG2_3))
    assert ndcg(["b", "a"], qrels) == pytest.approx(0.6875502, abs=1e-7)


def test_ndcg_unjudged_ids_have_gain_zero() -> None:
    # ranking [x, a]: x unjudged -> gains [0, 1] -> DCG = 1/log2(3) = 0.6309298; IDCG = 1
    assert ndcg(["x", "a"], {"a": 1.0}) == pytest.approx(1 / LOG2_3)


def test_ndcg_ideal_uses_all_judged_gains() -> None:
    # only "a" retrieved, "b" (also E) missed: DCG = 1; IDCG = 1 + 1/log2(3) = 1.6309298
    # nDCG = 1 / 1.6309298 = 0.6131472 < 1 even though the list is "perfectly ordered"
    score = ndcg(["a"], {"a": 1.0, "b": 1.0})
    assert score == pytest.approx(1 / (1 + 1 / LOG2_3))
    assert score < 1.0


def test_ndcg_cut_at_k_cuts_both_dcgs() -> None:
    # ranking [b, a, c], k=2: gains [0.1, 1]   -> DCG@2  = 0.1 + 1/log2(3)
    # ideal [1, 0.1, 0.01, 0] cut at 2 -> [1, 0.1] -> IDCG@2 = 1 + 0.1/log2(3)
    assert ndcg(["b", "a", "c"], QRELS, k=2) == pytest.approx(
        (0.1 + 1 / LOG2_3) / (1 + 0.1 / LOG2_3)
    )
    # k=1: [b] vs ideal [a] -> 0.1 / 1
    assert ndcg(["b", "a", "c"], QRELS, k=1) == pytest.approx(0.1)


def test_ndcg_zero_when_nothing_to_find() -> None:
    assert ndcg(["a", "b"], {"a": 0.0, "b": 0.0}) == 0.0  # all-zero gains: ideal DCG is 0
    assert ndcg(["a", "b"], {}) == 0.0  # no judgments at all
    assert ndcg([], {"a": 1.0}) == 0.0  # nothing returned


def test_ndcg_counts_a_repeated_id_once() -> None:
    # [a, a]: the second "a" scores 0 -> DCG = 1; IDCG = 1 + 1/log2(3) -> same as [a]
    qrels = {"a": 1.0, "b": 1.0}
    assert ndcg(["a", "a"], qrels) == pytest.approx(ndcg(["a"], qrels))
    assert ndcg(["a", "a", "a"], {"a": 1.0}) == pytest.approx(1.0)


ids = st.sampled_from([f"p{i}" for i in range(12)])
gains = st.floats(min_value=0.0, max_value=10.0, allow_nan=False, allow_infinity=False)


@given(
    ranking=st.lists(ids, max_size=15),
    qrels=st.dictionaries(ids, gains, max_size=10),
    k=st.none() | st.integers(min_value=0, max_value=15),
)
def test_ndcg_is_in_unit_interval(ranking: list[str], qrels: dict[str, float], k: int) -> None:
    assert 0.0 <= ndcg(ranking, qrels, k) <= 1.0


@given(
    qrels=st.dictionaries(ids, gains, min_size=1, max_size=10),
    k=st.none() | st.integers(min_value=1, max_value=15),
)
def test_ndcg_of_the_ideal_order_is_one(qrels: dict[str, float], k: int | None) -> None:
    ideal = sorted(qrels, key=qrels.__getitem__, reverse=True)
    expected = 1.0 if max(qrels.values()) > 0 else 0.0
    assert ndcg(ideal, qrels, k) == pytest.approx(expected)


# --- reciprocal rank -------------------------------------------------------------------------


def test_reciprocal_rank_first_relevant() -> None:
    assert reciprocal_rank(["x", "y", "a", "b"], {"a", "b"}) == pytest.approx(1 / 3)
    assert reciprocal_rank(["a", "b"], {"a", "b"}) == 1.0


def test_reciprocal_rank_beyond_k_or_missing_is_zero() -> None:
    assert reciprocal_rank(["x", "y", "a"], {"a"}, k=2) == 0.0
    assert reciprocal_rank(["x", "y", "a"], {"a"}, k=3) == pytest.approx(1 / 3)
    assert reciprocal_rank(["x", "y"], {"a"}) == 0.0
    assert reciprocal_rank([], {"a"}) == 0.0
    assert reciprocal_rank(["a"], set()) == 0.0


def test_reciprocal_rank_default_k_is_ten() -> None:
    ranking = [f"x{i}" for i in range(10)] + ["a"]  # "a" at rank 11
    assert reciprocal_rank(ranking, {"a"}) == 0.0


# --- recall ----------------------------------------------------------------------------------


def test_recall_share_found_in_top_k() -> None:
    # relevant {a, b, c}; top 3 of [a, x, b, c] holds a, b -> 2/3
    assert recall(["a", "x", "b", "c"], {"a", "b", "c"}, k=3) == pytest.approx(2 / 3)
    assert recall(["a", "x", "b", "c"], {"a", "b", "c"}, k=4) == 1.0


def test_recall_edge_cases() -> None:
    assert recall(["a", "b"], set()) == 0.0  # nothing relevant: defined as 0
    assert recall([], {"a"}) == 0.0
    assert recall(["a", "a", "a"], {"a", "b"}) == pytest.approx(0.5)  # repeats count once


def test_recall_default_k_is_hundred() -> None:
    ranking = [f"x{i}" for i in range(100)] + ["a"]  # "a" at rank 101
    assert recall(ranking, {"a"}) == 0.0
    assert recall(ranking[99:], {"a"}) == 1.0


# --- best grade ------------------------------------------------------------------------------


def test_best_grade_ids_is_exact_when_any() -> None:
    assert best_grade_ids({"a": 1.0, "b": 0.1, "c": 1.0, "d": 0.0}) == {"a", "c"}


def test_best_grade_ids_falls_back_to_the_highest_grade() -> None:
    assert best_grade_ids({"b": 0.1, "c": 0.01, "d": 0.1}) == {"b", "d"}


def test_best_grade_ids_empty_when_nothing_relevant() -> None:
    assert best_grade_ids({"a": 0.0, "b": 0.0}) == set()
    assert best_grade_ids({}) == set()


# --- latency ---------------------------------------------------------------------------------


def test_percentile_ms() -> None:
    latencies = [0.001, 0.002, 0.003, 0.004]  # seconds
    # linear interpolation: p50 at index 1.5 -> 2.5 ms; p95 at index 2.85 -> 3.85 ms
    assert percentile_ms(latencies, 50) == pytest.approx(2.5)
    assert percentile_ms(latencies, 95) == pytest.approx(3.85)
    assert percentile_ms(latencies, 100) == pytest.approx(4.0)


def test_percentile_ms_edge_cases() -> None:
    assert percentile_ms([], 50) == 0.0
    assert percentile_ms([0.5], 95) == pytest.approx(500.0)
    with pytest.raises(ValueError):
        percentile_ms([0.1], 101)
