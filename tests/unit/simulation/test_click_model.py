"""The SIMULATED users' click model and preference matching."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shopsearch.catalog.schema import Product
from shopsearch.evaluation.judgments import Judgment
from shopsearch.simulation.click_model import (
    DEFAULT_ATTRACTION,
    ClickModelConfig,
    attraction_probability,
    cart_probability,
    esci_letter,
    examination_probability,
    preference_multiplier,
    simulate_page,
)
from shopsearch.simulation.users import MATCH_WEIGHTS, UserPreferences, preference_match

CONFIG = ClickModelConfig()
BRANDS = ["Acme", "acme", "Zeta", "Nord", ""]
COLORS = ["Black", "black/white", "Red", "navy blue", ""]
CATEGORIES = [(), ("Home",), ("Home", "Kitchen"), ("Home", "Kitchen", "Mugs"), ("Toys", "Dolls")]
weights = st.floats(min_value=0.001, max_value=1.0)


@st.composite
def users(draw: st.DrawFn) -> UserPreferences:
    band = draw(
        st.one_of(
            st.none(),
            st.tuples(st.floats(0, 50), st.floats(0, 100)).map(lambda b: (min(b), max(b))),
        )
    )
    return UserPreferences(
        user_id="u",
        brands=draw(st.dictionaries(st.sampled_from(BRANDS[:4]), weights, max_size=3)),
        categories=draw(
            st.dictionaries(st.sampled_from(["Home > Kitchen", "Toys > Dolls"]), weights)
        ),
        colors=draw(st.dictionaries(st.sampled_from(["black", "red", "blue"]), weights)),
        price_band=band,
    )


products = st.builds(
    Product,
    id=st.just("p"),
    title=st.just("t"),
    brand=st.sampled_from(BRANDS),
    color=st.sampled_from(COLORS),
    category=st.sampled_from(CATEGORIES),
    price=st.one_of(st.none(), st.floats(0, 120)),
)


@settings(max_examples=300, deadline=None)
@given(user=users(), product=products)
def test_preference_multiplier_is_at_most_two_and_never_lifts_irrelevant(user, product):
    match = preference_match(user, product)
    assert 0.0 <= match <= 1.0
    for label in ("E", "S", "C"):
        multiplier = preference_multiplier(label, match)
        assert 1.0 <= multiplier <= 2.0
        attraction = attraction_probability(label, match, CONFIG)
        base = DEFAULT_ATTRACTION[label]
        assert min(base, CONFIG.max_attraction) <= attraction <= min(2 * base, 0.95)
        assert cart_probability(label, match, CONFIG) <= min(2 * CONFIG.p_cart, CONFIG.max_cart)
    assert preference_multiplier("I", match) == 1.0
    assert preference_multiplier(None, match) == 1.0
    assert attraction_probability("I", match, CONFIG) == CONFIG.attraction["I"]
    assert attraction_probability(None, match, CONFIG) == CONFIG.unjudged_attraction
    assert cart_probability("I", match, CONFIG) == CONFIG.p_cart


@given(match=st.floats(min_value=-5, max_value=5))
def test_multiplier_clips_out_of_range_matches(match):
    assert 1.0 <= preference_multiplier("E", match) <= 2.0


def test_preference_match_components():
    user = UserPreferences(
        "u", {"Acme": 1.0}, {"Home > Kitchen": 0.5}, {"black": 1.0}, price_band=(10.0, 20.0)
    )
    full = Product(
        id="p",
        title="t",
        brand="ACME",
        color="Jet Black",
        category=("Home", "Kitchen", "Mugs"),
        price=15.0,
    )
    assert preference_match(user, full) == pytest.approx(
        MATCH_WEIGHTS["brand"] + 0.5 * MATCH_WEIGHTS["category"] + MATCH_WEIGHTS["color"] + 0.1
    )
    nothing = Product(
        id="q", title="t", brand="Other", color="", category=("Home", "Kitchenware"), price=30.0
    )
    assert preference_match(user, nothing) == 0.0
    # the user color "black" is inside the product color, and "blk" is not a match
    assert preference_match(user, Product(id="r", title="t", color="BLACK")) == pytest.approx(0.2)
    assert preference_match(user, Product(id="s", title="t", color="blk")) == 0.0


def test_user_weights_must_be_in_unit_interval():
    with pytest.raises(ValueError, match="brands weight"):
        UserPreferences("u", {"Acme": 0.0}, {}, {}, None)
    with pytest.raises(ValueError, match="categories weight"):
        UserPreferences("u", {}, {"A > B": 1.5}, {}, None)


def test_examination_falls_with_rank():
    probabilities = [examination_probability(r) for r in range(1, 11)]
    assert probabilities[0] == 1.0
    assert all(a > b for a, b in zip(probabilities, probabilities[1:], strict=False))
    assert examination_probability(4, eta=2.0) == pytest.approx(1 / 16)
    assert examination_probability(7, eta=0.0) == 1.0
    with pytest.raises(ValueError):
        examination_probability(0)


def test_esci_letter_of_numeric_gains():
    def judgment(gain: float, label: str | None = None) -> Judgment:
        return Judgment("q", "p", gain, label)

    assert esci_letter(None) is None
    assert esci_letter(judgment(0.1, "S")) == "S"
    assert esci_letter(judgment(2.0)) == "E"
    assert esci_letter(judgment(0.06)) == "S"
    assert esci_letter(judgment(0.02)) == "C"
    assert esci_letter(judgment(0.0)) == "I"


def test_config_is_validated():
    with pytest.raises(ValueError, match="eta"):
        ClickModelConfig(eta=-1)
    with pytest.raises(ValueError, match="p_buy"):
        ClickModelConfig(p_buy=1.5)
    with pytest.raises(ValueError, match="lacks"):
        ClickModelConfig(attraction={"E": 0.5})


def test_simulate_page_is_deterministic_and_ordered():
    shown = [f"p{i}" for i in range(10)]
    labels = dict.fromkeys(shown, "E")

    def run(seed: int) -> list:
        return simulate_page(shown, labels, {}, np.random.default_rng(seed), CONFIG)

    first = run(5)
    assert first == run(5)
    assert [a for a in first if a.action == "impression"] == [
        a for a in first[:10] if a.action == "impression"
    ]
    assert [(a.product_id, a.position) for a in first[:10]] == [
        (p, i) for i, p in enumerate(shown, 1)
    ]
    assert any(run(seed) != first for seed in range(6, 10))
    # a purchase always follows an add_to_cart of the same product, which follows its click
    for before, after in zip(first, first[1:], strict=False):
        if after.action == "purchase":
            assert (before.action, before.product_id) == ("add_to_cart", after.product_id)
        if after.action == "add_to_cart":
            assert (before.action, before.product_id) == ("click", after.product_id)


def test_irrelevant_products_are_rarely_clicked_whatever_the_taste():
    rng = np.random.default_rng(0)
    clicks = 0
    for _ in range(2000):
        page = simulate_page(["bad"], {"bad": "I"}, {"bad": 1.0}, rng, CONFIG)
        clicks += sum(a.action == "click" for a in page)
    assert clicks / 2000 < 0.04  # 0.02 expected at rank 1


def test_brand_fan_clicks_the_brand_more():
    """A user who prefers brand B clicks B's relevant products more than a neutral user."""
    category = ("Sports & Outdoors", "Sports")
    shown = [
        Product(id=f"p{i}", title="t", brand="BrandB" if i % 2 == 0 else "Other", category=category)
        for i in range(10)
    ]
    labels = dict.fromkeys((p.id for p in shown), "S")  # S: far from the attraction cap
    fan = UserPreferences("fan", {"BrandB": 1.0}, {"Sports & Outdoors > Sports": 0.6}, {}, None)
    neutral = UserPreferences(
        "neutral", {"Other": 1.0}, {"Sports & Outdoors > Sports": 0.6}, {}, None
    )

    def brand_clicks(user: UserPreferences) -> int:
        rng = np.random.default_rng(42)
        matches = {p.id: preference_match(user, p) for p in shown}
        total = 0
        for _ in range(3000):
            page = simulate_page([p.id for p in shown], labels, matches, rng, CONFIG)
            total += sum(
                a.action == "click" and a.product_id in {p.id for p in shown[::2]} for a in page
            )
        return total

    fan_clicks, neutral_clicks = brand_clicks(fan), brand_clicks(neutral)
    # attraction 0.3 x 1.58 vs 0.3 x 1.18: expected ratio 1.34 on ~2,500 vs ~1,900 clicks
    assert fan_clicks > 1.2 * neutral_clicks, (fan_clicks, neutral_clicks)
