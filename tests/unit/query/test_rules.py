"""Query rules with the phrasings shoppers really type: negation, price, operators,
audience, blank queries."""

from __future__ import annotations

import pytest

from shopsearch.errors import InvalidQueryError
from shopsearch.query import QueryParser
from shopsearch.query.audience import find_audience, product_audiences
from shopsearch.query.clean import check_searchable, clean
from shopsearch.query.negation import find_negations, mention
from shopsearch.query.operators import split_operators
from shopsearch.query.price import find_price


@pytest.mark.parametrize(
    ("query", "text", "negated"),
    [
        ("toddler water bottle without straw", "toddler water bottle", ("straw",)),
        ("Toddler Water Bottle WITHOUT Straw", "Toddler Water Bottle", ("Straw",)),
        ("water bottle w/o straw", "water bottle", ("straw",)),
        ("sippy cup no straw", "sippy cup", ("straw",)),
        ("cat treats without chicken", "cat treats", ("chicken",)),
        ("weighted blanket without glass beads", "weighted blanket", ("glass beads",)),
        ("lights without wiring with switch", "lights with switch", ("wiring",)),
        ("remote control batteries not included", "remote control", ("batteries",)),
        ("gift not included batteries", "gift", ("batteries",)),
        ("shampoo without sulfates and parabens", "shampoo and parabens", ("sulfates",)),
        ("phone case not pink", "phone case", ("pink",)),
    ],
)
def test_negations_leave_the_matching_text(query, text, negated):
    got_text, got_negated = find_negations(query)
    assert got_text == text
    assert tuple(n.lower() for n in got_negated) == tuple(n.lower() for n in negated)


@pytest.mark.parametrize(
    "query",
    [
        "non-slip bath mat",
        "non stick frying pan",
        "no-show socks women",
        "no show socks",
        "BPA free water bottle",
        "sugar free candy",
        "no. 2 pencils",
        "no 5 perfume",
        "not only",
        "without",
        "no",
    ],
)
def test_positive_attributes_that_look_negative_are_not_negations(query):
    assert find_negations(query) == (query, ())


def test_a_query_made_only_of_a_negation_is_matched_as_typed():
    assert find_negations("no straw") == ("no straw", ())


def test_the_scope_stops_at_max_words():
    text, negated = find_negations("tortillas without interesterified soybean oil", max_words=2)
    assert negated == ("interesterified soybean",)
    assert text == "tortillas oil"


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("Kids Water Bottle with Straw Lid", "positive"),
        ("Straw Cup for Toddlers", "positive"),
        ("Water Bottle with 2 Straws", "positive"),
        ("BPA Free, Flip Straw Cap", "positive"),
        ("Water Jug with Time Marker and Straw,BPA Free Sports Jug", "positive"),
        ("Tumbler with Straw - BPA Free", "positive"),
        ("Cup, straw sold separately", "lacks"),
        ("Sippy cup, no straw, 10 oz", "lacks"),
        ("Tumbler without a straw", "lacks"),
        ("Straw-Free Sippy Cup", "lacks"),
        ("Toy car (batteries not included)", None),
        ("Steel Bottle, 32 oz", None),
        ("Strawberry Scented Bottle", None),
    ],
)
def test_a_product_states_the_negated_phrase_or_its_absence(title, expected):
    assert mention(title, "straw") == expected


def test_product_side_absence_after_the_word():
    assert mention("Toy car, Batteries Not Included", "batteries") == "lacks"
    assert mention("Remote with 2 AA batteries", "battery") == "positive"
    assert mention("Blanket with Glass Beads, 15 lbs", "glass beads") == "positive"
    assert mention("Blanket, beads of glass", "glass beads") is None  # not in order


@pytest.mark.parametrize(
    ("query", "low", "high", "rest"),
    [
        ("water bottle under $50", None, 50.0, "water bottle"),
        ("water bottle under 50 dollars", None, 50.0, "water bottle"),
        ("headphones less than 20 dollars", None, 20.0, "headphones"),
        ("headphones below $19.99", None, 19.99, "headphones"),
        ("rug $20-$50", 20.0, 50.0, "rug"),
        ("rug $20 - 50", 20.0, 50.0, "rug"),
        ("rug between $20 and $50", 20.0, 50.0, "rug"),
        ("rug 20 to 50 dollars", 20.0, 50.0, "rug"),
        ("rug $50-$20", 20.0, 50.0, "rug"),
        ("tv over 100", 100.0, None, "tv"),
        ("tv over $1,000", 1000.0, None, "tv"),
        ("gift at least $15", 15.0, None, "gift"),
        ("watch under 50", None, 50.0, "watch"),
    ],
)
def test_price_constraints(query, low, high, rest):
    text, price = find_price(query)
    assert price is not None and (price.min, price.max) == (low, high)
    assert text == rest


@pytest.mark.parametrize(
    "query",
    [
        "dumbbells under 50 lbs",
        "tv over 100 inches",
        "rug 5-10",
        "32 oz water bottle",
        "over the door hooks",
        "iphone 12",
        "$50",
        "under 5 year old toys",
    ],
)
def test_numbers_that_are_not_prices(query):
    assert find_price(query) == (query, None)


def test_operators():
    assert split_operators('water bottle -plastic "stainless steel"') == (
        "water bottle stainless steel",
        ("plastic",),
        ("stainless steel",),
    )
    assert split_operators("“curly quotes” mug") == ("curly quotes mug", (), ("curly quotes",))
    assert split_operators('open "quote mug') == ('open "quote mug', (), ())
    for typed in ("t-shirt", "-5 degrees", "5-10 lbs", "a - b", "x-large"):
        assert split_operators(typed) == (typed, (), ())


@pytest.mark.parametrize(
    ("query", "audience"),
    [
        ("mens slippers", ("men",)),
        ("men's slippers", ("men",)),
        ("men’s slippers", ("men",)),
        ("MENS SLIPPERS", ("men",)),
        ("womens tankini", ("women",)),
        ("women's tankini", ("women",)),
        ("ladies watch", ("women",)),
        ("toddler water bottle", ("toddler",)),
        ("blue suit for baby boy", ("baby", "boys")),
        ("girls dress", ("girls",)),
        ("kids headphones", ("kids",)),
        ("childrens books", ("kids",)),
        ("slippers", ()),
        ("mensa puzzle", ()),
        ("omen laptop", ()),
    ],
)
def test_audience_in_its_usual_spellings(query, audience):
    assert find_audience(query) == audience


def test_product_audiences_from_title_and_category():
    assert product_audiences("Dearfoams Women's Slipper Clothing > Women > Shoes") == {"women"}
    assert product_audiences("Steel Water Bottle") == frozenset()


@pytest.mark.parametrize(
    "query", ["   ", "\u200b\u200c\u200d", "\ufeff", "...!?", "\x00", "\u200b - \u200b", "\t\n"]
)
def test_blank_after_normalisation_is_a_clear_error(query):
    with pytest.raises(InvalidQueryError, match="no letters or digits"):
        check_searchable(query)
    with pytest.raises(InvalidQueryError, match="no letters or digits"):
        QueryParser().parse(query)


def test_invisible_characters_are_removed():
    assert clean("water\u200b bottle\x00\ufeff") == "water bottle"
    assert check_searchable("保温杯\u200b") == "保温杯"


def test_the_parser_combines_the_rules_and_can_relax_them():
    parser = QueryParser()
    parsed = parser.parse('mens "wool" socks without cotton under $20 -nylon')
    assert parsed.text == "mens wool socks"
    assert parsed.negated == ("cotton",)
    assert parsed.excluded == ("nylon",)
    assert parsed.phrases == ("wool",)
    assert parsed.price is not None and parsed.price.max == 20.0
    assert parsed.audience == ("men",)
    kinds = [c["kind"] for c in parsed.constraints()]
    assert kinds == ["price", "negation", "operators", "operators", "audience"]
    relaxed = parser.parse("socks under $20 without cotton", relax=("price", "negation"))
    assert relaxed.text == "socks under $20 without cotton"
    assert relaxed.price is None and relaxed.negated == ()
    with pytest.raises(InvalidQueryError, match="cannot relax 'typos'"):
        parser.parse("socks", relax=("typos",))


def test_a_query_of_only_operators_is_matched_as_typed():
    parsed = QueryParser().parse("-plastic")
    assert parsed.text == "-plastic" and parsed.excluded == ("plastic",)


def test_quantities_have_their_other_spellings():
    from shopsearch.query.units import unit_variants

    assert "200 mg" in unit_variants("vitamin c 200mg")
    assert "200mg" in unit_variants("vitamin c 200 mg")
    assert {"32 ounce", "32oz"} <= set(unit_variants("32 oz tumbler"))
    assert {"32 oz", "32ounce"} <= set(unit_variants("32-ounce tumbler"))
    assert {"1/2 in", "1/2 inch"} <= set(unit_variants('1/2" pvc pipe'))
    assert {"1/2 inch"} <= set(unit_variants("1/2in pvc pipe"))
    assert {"3 pack", "3pk"} <= set(unit_variants("pack of 3 socks"))
    assert {"3 pack", "pack of 3"} & set(unit_variants("3pk socks")) == {"3 pack"}
    assert unit_variants("iphone 12") == () and unit_variants("3x5 rug") == ()


def test_numbers_are_never_spell_corrected():
    from shopsearch.query.spelling import Speller
    from shopsearch.text.vocabulary import Vocabulary

    vocab = Vocabulary({"bottle": 5, "ounce": 5})
    assert Speller().correct("32oz bottle 1000ml 3080", vocab) == ("32oz bottle 1000ml 3080", ())


def test_synonym_rules_in_the_solr_format():
    from shopsearch.query.synonyms import SynonymRules

    rules = SynonymRules.parse("# comment\ntshirt, t-shirt, t shirt\n\nhoodie => sweatshirt\n")
    assert len(rules) == 2
    assert rules.expansions("Mens T-Shirt, black") == ("tshirt", "t shirt")
    assert rules.expansions("zip hoodie") == ("sweatshirt",)
    assert rules.expansions("sweatshirt") == ()  # "=>" is one way
    assert rules.expansions("tshirts") == ()  # whole words only
    for bad, where in (("a => b => c", "line 1"), ("lonely", "line 1"), ("x, y\n => b", "2")):
        with pytest.raises(InvalidQueryError, match=f"synonyms:{where[-1]}"):
            SynonymRules.parse(bad)


def test_the_synonym_file_is_reread_when_it_changes(tmp_path):
    import os

    from shopsearch.query.synonyms import SynonymFile

    path = tmp_path / "synonyms.txt"
    synonyms = SynonymFile(path)
    assert synonyms.rules().expansions("couch") == ()  # built-ins only
    path.write_text("couch, sofa, settee\n")
    assert synonyms.rules().expansions("couch") == ("sofa", "settee")
    assert synonyms.rules().expansions("tshirt")  # the built-ins stay
    path.write_text("couch => \n")  # a mistake: the rules last read stay, the error is kept
    os.utime(path, ns=(1, 1))
    assert synonyms.rules().expansions("couch") == ("sofa", "settee")
    assert synonyms.error is not None and "synonyms.txt:1" in synonyms.error
    path.unlink()
    assert synonyms.rules().expansions("couch") == ()


def test_compounds_the_catalog_contains():
    from shopsearch.query.synonyms import compound_expansions
    from shopsearch.text.vocabulary import Vocabulary

    vocab = Vocabulary({"airpods": 4, "wifi": 9, "doorbell": 1})
    assert compound_expansions("air pods case", vocab) == ("airpods",)
    assert compound_expansions("wi fi extender", vocab) == ()  # too short to join safely
    assert compound_expansions("door bell", vocab) == ()  # in one product only
