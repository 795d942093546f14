from __future__ import annotations

import math

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
    assert dict(facets["brand"]) == {"UGG": 1, "ugg": 1, "Contigo": 1, "Thermos": 1}
    assert dict(facets["color"]) == {"Black": 2, "Brown": 1, "Blue": 1}
    assert facets["category"] == [("Clothing", 3), ("Kitchen", 2)]
    assert facets["price"] == [("0-10", 1), ("10-25", 1), ("50-100", 1), ("100-200", 1)]
    assert facets["rating"] == [("4.5+", 2), ("4+", 3), ("3+", 4)]


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
