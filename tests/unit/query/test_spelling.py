"""Spelling correction against a catalog's words: what it fixes and what it never touches."""

from __future__ import annotations

import pytest

from shopsearch.catalog.schema import Product
from shopsearch.query import QueryParser
from shopsearch.query.spelling import Speller
from shopsearch.text.vocabulary import Vocabulary

CATALOG = [
    Product(id="1", title="Stainless Steel Water Bottle with Straw Lid", brand="Hydro Flask"),
    Product(id="2", title="Kids Water Bottle, 12 oz", brand="Thermos"),
    Product(id="3", title="TRP Spyre Mechanical Disc Brake", brand="TRP"),
    Product(id="4", title="Apple AirPods (2nd Generation) Wireless Earbuds", brand="Apple"),
    Product(id="5", title="NVIDIA GeForce RTX 3080 Graphics Card", brand="EVGA"),
    Product(id="6", title="Audible Books Gift Card", brand="Audible"),
    Product(id="7", title="Tool Box with Tools", brand="Stanley"),
    Product(id="8", title="Hand Tools Set", brand="Craftsman"),
    Product(id="9", title="Books for Kids", brand="Scholastic"),
    Product(id="10", title="Dremel Cleaing Brush", brand="Dremel"),  # a catalog typo
] + [Product(id=f"c{i}", title=f"Cleaning Cloth {i}", brand="Acme") for i in range(25)]


@pytest.fixture(scope="module")
def vocab():
    vocabulary = Vocabulary()
    vocabulary.add(CATALOG)
    return vocabulary


def _together(words):
    """How many products contain every word (stems aside, as the index would answer)."""
    return sum(all(w in p.title.lower() for w in words) for p in CATALOG)


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("stainles steel botle", "stainless steel bottle"),
        ("watre bottle", "water bottle"),  # a transposition
        ("kids watter bottle", "kids water bottle"),  # a doubled letter
        ("stanless steel", "stainless steel"),
        ("WATER BOTTEL", "WATER bottle"),
    ],
)
def test_typos_are_corrected_to_catalog_words(vocab, typed, expected):
    assert Speller().correct(typed, vocab, _together)[0] == expected


@pytest.mark.parametrize(
    "typed",
    [
        "airpods 2",
        "rtx 3080",
        "rtx 3090",  # a model number the catalog lacks: digits are never corrected
        "trp spyre",
        "trp spyre c",
        "B07XJ8C8F5",  # an ASIN
        "SKU-12345-XL",
        "hydro flask",
        "thermos",
        "32oz bottle",
        "water bottle",  # words the catalog contains
        "moose",  # a common English word the catalog lacks
    ],
)
def test_model_numbers_skus_brands_and_known_words_are_never_corrected(vocab, typed):
    assert Speller().correct(typed, vocab, _together) == (typed, ())


def test_brand_words_are_never_corrected_even_when_rare(vocab):
    vocabulary = Vocabulary()
    vocabulary.add([*CATALOG, Product(id="x", title="Spyra Water Gun", brand="Spyra")])
    assert Speller().correct("spyra", vocabulary) == ("spyra", ())


def test_the_query_context_picks_between_equally_close_words(vocab):
    # "bools" is one edit from "tools" (in more products) and "books"
    assert Speller().correct("audible bools", vocab, _together)[0] == "audible books"
    assert Speller().correct("hand bools", vocab, _together)[0] == "hand tools"


def test_a_rare_catalog_word_is_corrected_to_a_much_more_common_one(vocab):
    assert Speller().correct("cleaing cloth", vocab, _together)[0] == "cleaning cloth"


def test_short_words_and_words_in_many_products_stay(vocab):
    speller = Speller(min_letters=5)
    assert speller.correct("botl", vocab) == ("botl", ())  # below min_letters
    assert Speller().correct("tool box", vocab) == ("tool box", ())


def test_the_speller_follows_the_vocabulary_as_it_changes(vocab):
    speller = Speller()
    assert speller.correct("kayak paddel", vocab)[0] == "kayak paddel"  # nothing close
    grown = vocab.copy()
    grown.add([Product(id="p", title="Kayak Paddle", brand="Pelican")])
    assert speller.correct("kayak paddel", grown)[0] == "kayak paddle"
    grown.remove([Product(id="p", title="Kayak Paddle", brand="Pelican")])
    assert speller.correct("kayak paddel", grown)[0] == "kayak paddel"


def test_the_parser_reports_the_correction_and_can_relax_it(vocab):
    parsed = QueryParser().parse("stainles bottle witout straw", vocabulary=vocab)
    assert parsed.corrected == "stainless bottle without straw"
    assert parsed.corrections == (("stainles", "stainless"), ("witout", "without"))
    assert parsed.text == "stainless bottle" and parsed.negated == ("straw",)
    as_typed = QueryParser().parse("stainles bottle", relax=("spelling",), vocabulary=vocab)
    assert as_typed.text == "stainles bottle" and as_typed.corrected is None
