"""Shopper profiles and context features, checked against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from shopsearch.catalog.schema import Product
from shopsearch.context.features import FEATURES, Candidate, feature_matrix
from shopsearch.context.profiles import SimpleEvent, build_profile

DAY = 86_400.0

PRODUCTS = {
    "nike-run": Product(
        id="nike-run",
        title="Nike running shoe",
        brand="Nike",
        color="Red",
        category=("Shoes", "Running", "Road"),
        price=100.0,
        rating=4.5,
        rating_count=99,
    ),
    "nike-sock": Product(
        id="nike-sock",
        title="Nike socks",
        brand="nike ",
        color="white",
        category=("Clothing", "Socks"),
        price=10.0,
    ),
    "adidas-run": Product(
        id="adidas-run",
        title="Adidas running shoe",
        brand="Adidas",
        color="red",
        category=("Shoes", "Running"),
        price=120.0,
        rating=4.0,
        rating_count=0,
    ),
    "mug": Product(id="mug", title="Mug", category=("Kitchen",)),
}


def unit(*values: float) -> np.ndarray:
    v = np.asarray(values, dtype=np.float32)
    return v / np.linalg.norm(v)


VECTORS = {"nike-run": unit(1, 0, 0), "nike-sock": unit(0, 1, 0), "adidas-run": unit(1, 1, 0)}


def lookup(ids):
    return np.stack([VECTORS.get(i, np.zeros(3, dtype=np.float32)) for i in ids])


def test_affinities_weight_actions_and_decay_with_age():
    events = [
        SimpleEvent("purchase", "nike-run", timestamp=10 * DAY),  # weight 5, age 0
        SimpleEvent("click", "nike-sock", timestamp=0.0),  # weight 1, age 10 d -> 0.5
        SimpleEvent("impression", "adidas-run", timestamp=10 * DAY),  # weight 0
        SimpleEvent("click", "unknown-product", timestamp=10 * DAY),  # ignored
        SimpleEvent("click", "adidas-run", timestamp=11 * DAY),  # after now: ignored
    ]
    profile = build_profile(events, PRODUCTS, now=10 * DAY, half_life_s=10 * DAY, vectors=lookup)
    assert profile.events == 2
    assert profile.weight == pytest.approx(5.5)
    assert profile.affinity("brand", "NIKE") == pytest.approx(1.0)  # both are Nike, normalised
    assert profile.affinity("category1", "Shoes") == pytest.approx(5 / 5.5)
    assert profile.affinity("category2", "Shoes > Running") == pytest.approx(5 / 5.5)
    assert profile.affinity("category2", "Clothing > Socks") == pytest.approx(0.5 / 5.5)
    assert profile.affinity("color", "red") == pytest.approx(5 / 5.5)
    assert profile.affinity("brand", "Adidas") == 0.0
    mean = (5 * math.log(100) + 0.5 * math.log(10)) / 5.5
    assert profile.log_price == pytest.approx(
        (
            mean,
            math.sqrt((5 * (math.log(100) - mean) ** 2 + 0.5 * (math.log(10) - mean) ** 2) / 5.5),
        )
    )
    expected = unit(5, 0.5, 0)
    np.testing.assert_allclose(profile.embedding, expected, rtol=1e-6)
    assert profile.similarity(VECTORS["adidas-run"]) == pytest.approx(
        float(expected @ unit(1, 1, 0))
    )


def test_no_events_is_an_empty_profile():
    profile = build_profile([SimpleEvent("impression", "mug")], PRODUCTS, now=0.0)
    assert profile.empty and profile.embedding is None
    assert profile.affinity("brand", "Nike") == 0.0 and profile.price_fit(10.0) == 0.0


def test_price_fit_peaks_inside_the_band():
    profile = build_profile([SimpleEvent("click", "nike-run")], PRODUCTS, now=0.0)
    assert profile.price_fit(100.0) == pytest.approx(1.0)
    z = math.log(200 / 100) / 0.25  # the band's spread is floored at 0.25
    assert profile.price_fit(200.0) == pytest.approx(math.exp(-0.5 * z * z))
    assert profile.price_fit(None) == 0.0


def candidates() -> list[Candidate]:
    return [
        Candidate("adidas-run", 2.0, 0.7, 0.03, PRODUCTS["adidas-run"], VECTORS["adidas-run"]),
        Candidate("nike-run", 1.0, 0.5, 0.02, PRODUCTS["nike-run"], VECTORS["nike-run"]),
        Candidate("mug", 0.0, 0.1, 0.01, PRODUCTS["mug"], None),
    ]


def test_features_without_a_shopper_leave_personal_groups_at_zero():
    x = feature_matrix(candidates(), behaviour=[0.0, 7.0, 1.0])
    f = {name: x[:, i] for i, name in enumerate(FEATURES)}
    np.testing.assert_allclose(f["bm25"], [2.0, 1.0, 0.0])
    np.testing.assert_allclose(f["first_stage_rank"], [1.0, 0.5, 1 / 3])
    np.testing.assert_allclose(f["rating"], [4.0, 4.5, 0.0])
    np.testing.assert_allclose(f["log_rating_count"], [0.0, math.log1p(99), 0.0], rtol=1e-6)
    np.testing.assert_allclose(
        f["query_interactions"], [0.0, math.log1p(7.0), math.log1p(1.0)], rtol=1e-6
    )
    np.testing.assert_allclose(f["query_interaction_share"], [0.0, 7 / 8, 1 / 8], rtol=1e-6)
    # fused scores 0.03, 0.02, 0.01: softmax weights over their std; the mug has no level 2
    scores = np.array([0.03, 0.02, 0.01])
    w = np.exp((scores - scores.max()) / scores.std())
    share = (w[0] + w[1]) / (w[0] + w[1])
    np.testing.assert_allclose(f["query_category_match"], [share, share, 0.0], rtol=1e-6)
    for name in FEATURES:
        if name.startswith(("user_", "session_")):
            assert not f[name].any(), name
    assert not feature_matrix(candidates())[:, FEATURES.index("query_interactions")].any()


def test_features_for_a_hand_made_user_and_session():
    user = build_profile(
        [SimpleEvent("purchase", "nike-run"), SimpleEvent("click", "nike-sock")],
        PRODUCTS,
        now=0.0,
        vectors=lookup,
    )
    session = build_profile([SimpleEvent("click", "adidas-run")], PRODUCTS, now=0.0)
    x = feature_matrix(candidates(), user=user, session=session)
    f = {name: x[:, i] for i, name in enumerate(FEATURES)}
    np.testing.assert_allclose(f["user_brand"], [0.0, 1.0, 0.0])
    np.testing.assert_allclose(f["user_category2"], [5 / 6, 5 / 6, 0.0], rtol=1e-6)
    np.testing.assert_allclose(f["user_color"], [5 / 6, 5 / 6, 0.0], rtol=1e-6)
    np.testing.assert_allclose(f["user_history_size"], [math.log1p(6.0)] * 3, rtol=1e-6)
    emb = unit(5, 1, 0)
    np.testing.assert_allclose(
        f["user_history_sim"],
        [emb @ VECTORS["adidas-run"], emb @ VECTORS["nike-run"], 0.0],
        rtol=1e-5,
    )
    np.testing.assert_allclose(f["session_brand"], [1.0, 0.0, 0.0])
    np.testing.assert_allclose(f["session_category2"], [1.0, 1.0, 0.0])
    assert not f["session_history_sim"].any()  # the session profile has no vectors
