"""The ranking objective: pairwise loss within a query, and the dense prior added to scores."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from shopsearch.errors import InvalidQueryError
from shopsearch.models.cross_encoder import pairwise_rank_loss
from shopsearch.models.scoring import standardize, with_prior


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))


def test_pairwise_loss_matches_hand_computed_value():
    scores = torch.tensor([2.0, 1.0, 0.0])
    gains = torch.tensor([1.0, 0.1, 0.0])
    groups = torch.tensor([0, 0, 0])
    # pairs (better, worse): (0, 1) weight 0.9, (0, 2) weight 1.0, (1, 2) weight 0.1
    expected = (0.9 * softplus(-1.0) + 1.0 * softplus(-2.0) + 0.1 * softplus(-1.0)) / 2.0
    got = pairwise_rank_loss(scores, gains, groups, temperature=1.0)
    assert float(got) == pytest.approx(expected, rel=1e-6)
    # the temperature divides the margins
    hot = (0.9 * softplus(-10.0) + 1.0 * softplus(-20.0) + 0.1 * softplus(-10.0)) / 2.0
    assert float(pairwise_rank_loss(scores, gains, groups, 0.1)) == pytest.approx(hot, rel=1e-5)


def test_pairwise_loss_ignores_pairs_across_queries_and_query_less_rows():
    scores = torch.tensor([0.0, 5.0, 1.0, 9.0])
    gains = torch.tensor([1.0, 0.0, 1.0, 0.0])
    # rows 0-1 form query 0; row 2 is query 1 alone; row 3 is a category-only example
    groups = torch.tensor([0, 0, 1, -1])
    expected = softplus(5.0)  # only the pair (0, 1) counts
    got = pairwise_rank_loss(scores, gains, groups, temperature=1.0)
    assert float(got) == pytest.approx(expected, rel=1e-6)


def test_pairwise_loss_is_none_without_a_pair_of_different_gains():
    scores = torch.tensor([0.3, 0.1])
    assert pairwise_rank_loss(scores, torch.tensor([1.0, 1.0]), torch.tensor([0, 0]), 1.0) is None
    assert pairwise_rank_loss(scores, torch.tensor([1.0, 0.0]), torch.tensor([0, 1]), 1.0) is None


def test_pairwise_loss_gradient_raises_the_better_product():
    scores = torch.tensor([0.0, 0.0], requires_grad=True)
    loss = pairwise_rank_loss(scores, torch.tensor([0.0, 1.0]), torch.tensor([3, 3]), 0.5)
    assert loss is not None
    loss.backward()
    assert scores.grad[1] < 0 < scores.grad[0]  # descending the loss raises row 1


def test_standardize_hand_values_and_constant_input():
    np.testing.assert_allclose(standardize([1.0, 2.0, 3.0]), [-1.2247449, 0.0, 1.2247449])
    assert standardize([0.4, 0.4, 0.4]).tolist() == [0.0, 0.0, 0.0]
    assert standardize([]).size == 0


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(-10, 10), min_size=2, max_size=30), st.floats(0.1, 5), st.floats(-3, 3))
def test_standardize_ignores_scale_and_shift(values, scale, shift):
    base = standardize(values)
    moved = standardize([v * scale + shift for v in values])
    np.testing.assert_allclose(base, moved, atol=1e-3)


def test_with_prior_adds_the_weighted_z_scores():
    scores = np.array([0.5, 0.5, 0.2], dtype=np.float32)
    got = with_prior(scores, [0.1, 0.3, 0.2], weight=0.5)
    np.testing.assert_allclose(got, scores + 0.5 * standardize([0.1, 0.3, 0.2]), rtol=1e-6)
    assert with_prior(scores, [0.1, 0.3, 0.2], weight=0.0) is scores
    assert with_prior(scores, None, weight=0.5) is scores
    with pytest.raises(InvalidQueryError, match="2 priors for 3 texts"):
        with_prior(scores, [0.1, 0.2], weight=0.5)
