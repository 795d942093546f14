"""Synonym proposals from the catalog and from logged reformulations (never applied)."""

from __future__ import annotations

from shopsearch.catalog.schema import Product
from shopsearch.query.mining import catalog_proposals, reformulation_proposals


def test_a_word_written_joined_and_apart_in_the_catalog_is_proposed():
    titles = ["Apple AirPods Case"] * 3 + ["Silicone case for Air Pods Pro"] * 3
    titles += ["Red air-pods cover", "Lunch Box", "Kids lunchbox"]
    products = [Product(id=str(i), title=t) for i, t in enumerate(titles)]
    proposals = catalog_proposals(products, min_count=3)
    assert [p.rule for p in proposals] == ["airpods, air pods"]
    assert proposals[0].evidence == 7 and proposals[0].source == "catalog"
    assert catalog_proposals(products, min_count=1)[1].rule == "lunchbox, lunch box"


def test_a_reformulation_followed_by_a_click_in_enough_sessions_is_proposed():
    rows = [
        ("s1", 0.0, "ear buds", False),
        ("s1", 20.0, "earbuds", True),
        ("s2", 0.0, "Ear Buds", False),
        ("s2", 30.0, "earbuds", True),
        ("s3", 0.0, "ear buds", False),
        ("s3", 500.0, "earbuds", True),  # too late to be a rewrite
        ("s4", 0.0, "socks", False),
        ("s4", 10.0, "garden hose", True),  # unrelated: a new need
        ("s5", 0.0, "socks", True),
        ("s5", 10.0, "wool socks", True),  # the first already found something
    ]
    proposals = reformulation_proposals(rows, window_s=120, min_sessions=2)
    assert [(p.rule, p.evidence) for p in proposals] == [("ear buds => earbuds", 2)]
    assert reformulation_proposals(rows, min_sessions=3) == []
