from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from shopsearch.catalog.schema import Product
from shopsearch.errors import InvalidQueryError
from shopsearch.index.filters import FilterColumns, Filters


@pytest.fixture()
def columns():
    products = [
        Product(
            "a",
            "Slipper",
            brand="UGG",
            color="Black",
            price=80.0,
            rating=4.7,
            category=("Clothing", "Women", "Shoes"),
        ),
        Product(
            "b",
            "Slipper",
            brand="ugg",
            color="Brown",
            price=120.0,
            rating=4.2,
            category=("Clothing", "Women", "Slippers"),
        ),
        Product(
            "c",
            "Bottle",
            brand="Contigo",
            color="Blue",
            price=12.5,
            rating=3.9,
            category=("Kitchen", "Bottles"),
        ),
        Product(
            "d", "Bottle", brand="Thermos", color="", price=None, rating=None, category=("Kitchen",)
        ),
        Product(
            "e",
            "Towel",
            brand="",
            color="Black",
            price=5.0,
            rating=4.5,
            category=("Clothing", "Womens"),
        ),
    ]
    cols = FilterColumns()
    cols.add(products[:2])
    cols.add(products[2:])  # added in two batches, as upserts do
    return cols


def rows(mask):
    return np.flatnonzero(mask).tolist()


def test_parse_every_spec_form():
    f = Filters.parse(
        [
            "brand=UGG,Koolaburra",
            "color=black",
            "category=Clothing > Women",
            "price=10..50",
            "rating>=4",
        ]
    )
    assert f == Filters(("UGG", "Koolaburra"), ("black",), "Clothing > Women", 10.0, 50.0, 4.0)
    assert Filters.parse(["price<=20"]).price_max == 20.0
    assert Filters.parse(["price>=$1,000"]).price_min == 1000.0
    assert Filters.parse(["price=..30"]) == Filters(price_max=30.0)
    assert Filters.parse([]).is_empty


@pytest.mark.parametrize(
    "spec", ["brand", "size=XL", "price=cheap", "rating<=3", "price=50..10", "price>=nan", "=x"]
)
def test_bad_specs_raise_clear_errors(spec):
    with pytest.raises(InvalidQueryError):
        Filters.parse([spec])


def test_empty_filters_give_no_mask(columns):
    assert columns.mask(Filters()) is None


def test_brand_is_case_insensitive_any_of(columns):
    assert rows(columns.mask(Filters(brands=("Ugg",)))) == [0, 1]
    assert rows(columns.mask(Filters(brands=("ugg", "THERMOS")))) == [0, 1, 3]


def test_category_prefix_matches_whole_levels(columns):
    assert rows(columns.mask(Filters(category="clothing > women"))) == [0, 1]  # not "Womens"
    assert rows(columns.mask(Filters(category="Clothing"))) == [0, 1, 4]
    assert rows(columns.mask(Filters(category="Kitchen>Bottles"))) == [2]


def test_price_and_rating_ranges_exclude_missing_values(columns):
    assert rows(columns.mask(Filters(price_min=10, price_max=100))) == [0, 2]
    assert rows(columns.mask(Filters(rating_min=4.5))) == [0, 4]
    assert rows(columns.mask(Filters(price_max=1000, brands=("thermos",)))) == []


def test_facets_count_the_given_rows(columns):
    facets = columns.facets(np.array([0, 1, 2, 3, 4]))
    # "UGG" and "ugg" are one brand (tie between the spellings: code-point order)
    assert dict(facets["brand"]) == {"UGG": 2, "Contigo": 1, "Thermos": 1}
    assert dict(facets["color"]) == {"Black": 2, "Brown": 1, "Blue": 1}
    assert facets["category"] == [("Clothing", 3), ("Kitchen", 2)]
    assert facets["price"] == [("0-10", 1), ("10-25", 1), ("50-100", 1), ("100-200", 1)]
    assert facets["rating"] == [("4.5+", 2), ("4+", 3), ("3+", 4)]


def _columns(**values: list[Any]) -> FilterColumns:
    """Columns of products with the given attribute values (one product per position)."""
    n = len(next(iter(values.values())))
    cols = FilterColumns()
    cols.add(
        [Product(str(i), "x", **{field: vs[i] for field, vs in values.items()}) for i in range(n)]
    )
    return cols


def test_facet_merges_spellings_under_the_most_common_one():
    cols = _columns(color=["blue", "Blue", "Blue", "Red", "blue", "Blue"])
    facets = cols.facets(np.arange(len(cols)))
    assert facets["color"] == [("Blue", 5), ("Red", 1)]


def test_facet_merges_width_accent_and_space_variants():
    cols = _columns(
        brand=["Wüsthof", "WUSTHOF", "Ｗüsthof", "wüsthof", "Wüsthof", "Le  Creuset", "le creuset"]
    )
    facets = cols.facets(np.arange(len(cols)))
    assert facets["brand"] == [("Wüsthof", 5), ("Le  Creuset", 2)]


def test_facet_label_tie_is_code_point_order_whatever_the_row_order():
    cols = _columns(color=["blue", "Blue", "BLUE", "Red"])
    for order in ([0, 1, 2, 3], [3, 2, 1, 0], [1, 3, 0, 2]):
        assert dict(cols.facets(np.array(order))["color"]) == {"BLUE": 3, "Red": 1}


def test_facet_order_without_variants_is_unchanged():
    """Counts descending, ties in first-seen order: what counting the raw values gave."""
    cols = _columns(color=["Red", "Green", "Blue", "Green", "Red", "Black"])
    facets = cols.facets(np.arange(len(cols)))
    assert facets["color"] == [("Red", 2), ("Green", 2), ("Blue", 1), ("Black", 1)]


def test_blank_values_are_not_facet_values():
    cols = _columns(brand=["", "   ", "Acme"])
    assert cols.facets(np.arange(3))["brand"] == [("Acme", 1)]


def test_category_facet_merges_level_variants():
    cols = _columns(
        category=[("Kitchen", "Bottles"), ("kitchen", "Mugs"), ("Toys",), ("Kitchen", "Cups")]
    )
    assert cols.facets(np.arange(4))["category"] == [("Kitchen", 3), ("Toys", 1)]
    assert rows(cols.mask(Filters(category="KITCHEN"))) == [0, 1, 3]


@pytest.mark.parametrize("value", ["blue", "Blue", "BLUE", "ｂｌｕｅ", " blue ", "Blue"])
def test_color_filter_matches_every_variant(value):
    cols = _columns(color=["Blue", "BLUE", "blue", "Ｂｌｕｅ", "Navy Blue", "Bleu", ""])
    assert rows(cols.mask(Filters(colors=(value,)))) == [0, 1, 2, 3]
    assert rows(cols.mask(Filters.parse([f"color={value}"]))) == [0, 1, 2, 3]


def test_filters_fold_accents_and_spaces():
    cols = _columns(brand=["Wüsthof", "WÜSTHOF", "Le Creuset", "Café Bustelo"])
    assert rows(cols.mask(Filters(brands=("wusthof",)))) == [0, 1]
    assert rows(cols.mask(Filters(brands=("le   creuset", "CAFE BUSTELO")))) == [2, 3]


def test_a_filtered_value_keeps_the_filters_spelling():
    """A storefront that filtered by the facet value "Blue" finds "Blue" again, even where
    the filtered rows mostly spell it "blue"."""
    cols = _columns(color=["blue", "blue", "Blue", "Red"], brand=["Acme", "ACME", "acme", "X"])
    filters = Filters(colors=("Blue",), brands=("ACME", "acme"))
    matching = np.flatnonzero(cols.mask(filters))
    facets = cols.facets(matching, filters)
    assert facets["color"] == [("Blue", 3)]
    assert facets["brand"] == [("ACME", 3)]
    assert cols.facets(matching)["color"] == [("blue", 3)]


def test_a_facet_value_used_as_a_filter_selects_exactly_its_rows():
    cols = _columns(color=["Blue", "blue", "Ｂｌｕｅ", "Red", "RED"])
    for label, count in cols.facets(np.arange(5))["color"]:
        assert len(rows(cols.mask(Filters(colors=(label,))))) == count


def test_facets_go_one_level_below_the_category_filter(columns):
    facets = columns.facets(np.array([0, 1, 4]), Filters(category="Clothing"))
    assert dict(facets["category"]) == {"Women": 2, "Womens": 1}


def test_roundtrip_and_compact(columns, tmp_path):
    columns.save(tmp_path)
    loaded = FilterColumns.load(tmp_path)
    assert rows(loaded.mask(Filters(brands=("ugg",)))) == [0, 1]
    assert math.isnan(loaded.price[3])
    loaded.compact(np.array([0, -1, 1, 2, -1]))
    assert len(loaded) == 3
    assert rows(loaded.mask(Filters(brands=("ugg",)))) == [0]
    assert rows(loaded.mask(Filters(category="Kitchen"))) == [1, 2]


def test_from_dict_rejects_unknown_fields():
    assert Filters.from_dict({"brands": ["a"], "rating_min": 4}) == Filters(("a",), rating_min=4)
    with pytest.raises(InvalidQueryError):
        Filters.from_dict({"size": "XL"})
