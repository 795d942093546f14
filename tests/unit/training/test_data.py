"""Training data: query splits, category vocabulary, pairs, hard negatives, prepare()."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests_support import TINY_CATALOG, TINY_JUDGMENTS

from shopsearch.catalog.loaders import load_catalog
from shopsearch.catalog.schema import Product
from shopsearch.evaluation.judgments import Judgment, load_judgments
from shopsearch.training.config import TrainConfig
from shopsearch.training.data import (
    ESCI_LABELS,
    IRRELEVANT,
    CategoryVocab,
    PairExample,
    QuerySplit,
    TrainingData,
    attach_priors,
    build_pairs,
    category_examples,
    category_key,
    kfold_by_query,
    mine_hard_negatives,
    prepare,
    product_text,
    query_category_labels,
    relevance_class,
    split_by_query,
)

QUERY_SETS = st.sets(st.text(min_size=1, max_size=12), min_size=0, max_size=40)
SEEDS = st.integers(min_value=0, max_value=2**31)


def judgment(query: str, product_id: str, label: str | float) -> Judgment:
    if isinstance(label, str):
        gains = {"E": 1.0, "S": 0.1, "C": 0.01, "I": 0.0}
        return Judgment(query=query, product_id=product_id, gain=gains[label], label=label)
    return Judgment(query=query, product_id=product_id, gain=float(label), label=None)


def product(pid: str, category: tuple[str, ...] = (), **fields: str) -> Product:
    return Product(id=pid, title=fields.pop("title", f"title {pid}"), category=category, **fields)


# --- splits ----------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(queries=QUERY_SETS, seed=SEEDS)
def test_split_is_disjoint_covering_and_order_independent(queries: set[str], seed: int) -> None:
    ordered = sorted(queries)
    split = split_by_query(ordered, validation_fraction=0.15, test_fraction=0.15, seed=seed)
    parts = [set(split.train), set(split.validation), set(split.test)]
    assert parts[0].isdisjoint(parts[1]) and parts[0].isdisjoint(parts[2])
    assert parts[1].isdisjoint(parts[2])
    assert parts[0] | parts[1] | parts[2] == queries
    if len(queries) >= 3:
        assert all(parts)
    shuffled = ordered[::-1] + ordered[:3]  # another order, with duplicates
    random.Random(seed).shuffle(shuffled)
    again = split_by_query(shuffled, validation_fraction=0.15, test_fraction=0.15, seed=seed)
    assert again == split


def test_split_sizes_follow_fractions() -> None:
    queries = [f"q{i}" for i in range(100)]
    split = split_by_query(queries, validation_fraction=0.15, test_fraction=0.15, seed=13)
    assert (len(split.train), len(split.validation), len(split.test)) == (70, 15, 15)
    other = split_by_query(queries, validation_fraction=0.15, test_fraction=0.15, seed=14)
    assert other.test != split.test  # the seed matters


def test_split_with_zero_validation() -> None:
    split = split_by_query(
        ["a", "b", "c", "d"], validation_fraction=0.0, test_fraction=0.25, seed=0
    )
    assert split.validation == () and len(split.test) == 1 and len(split.train) == 3


def test_split_rejects_bad_fractions() -> None:
    with pytest.raises(ValueError):
        split_by_query(["a"], validation_fraction=0.6, test_fraction=0.4, seed=0)
    with pytest.raises(ValueError):
        split_by_query(["a"], validation_fraction=-0.1, test_fraction=0.1, seed=0)


def test_query_split_refuses_overlap() -> None:
    with pytest.raises(ValueError, match="shares"):
        QuerySplit(train=("a", "b"), validation=("b",), test=())


@settings(max_examples=100, deadline=None)
@given(
    queries=st.sets(st.text(min_size=1, max_size=8), min_size=5, max_size=40),
    folds=st.integers(min_value=2, max_value=5),
    seed=SEEDS,
)
def test_kfold_test_parts_partition_queries(queries: set[str], folds: int, seed: int) -> None:
    splits = [
        kfold_by_query(list(queries), folds=folds, fold=f, validation_fraction=0.15, seed=seed)
        for f in range(folds)
    ]
    tests = [set(s.test) for s in splits]
    assert sum(map(len, tests)) == len(queries)
    assert set().union(*tests) == queries
    assert max(map(len, tests)) - min(map(len, tests)) <= 1
    for s in splits:
        parts = [set(s.train), set(s.validation), set(s.test)]
        assert parts[0] | parts[1] | parts[2] == queries
        assert sum(map(len, parts)) == len(queries)  # disjoint
        assert s.train and s.validation and s.test


def test_kfold_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError):
        kfold_by_query(["a", "b"], folds=1, fold=0, validation_fraction=0.1, seed=0)
    with pytest.raises(ValueError):
        kfold_by_query(["a", "b"], folds=2, fold=2, validation_fraction=0.1, seed=0)
    with pytest.raises(ValueError):
        kfold_by_query(["a", "b"], folds=3, fold=0, validation_fraction=0.1, seed=0)


# --- categories and text ---------------------------------------------------------------------

SHOES = ("Clothing", "Women", "Shoes")
BOOTS = ("Clothing", "Women", "Boots")
BOTTLES = ("Sports", "Bottles")


def catalog() -> list[Product]:
    return [
        product("s1", SHOES),
        product("s2", SHOES),
        product("s3", SHOES),
        product("b1", BOOTS),
        product("w1", BOTTLES),
        product("n1", ()),
    ]


def test_category_key() -> None:
    assert category_key(SHOES, 1) == "Clothing"
    assert category_key(SHOES, 2) == "Clothing > Women"
    assert category_key(SHOES, 9) == "Clothing > Women > Shoes"
    assert category_key((), 2) == ""


def test_vocab_depth_and_min_count() -> None:
    depth1 = CategoryVocab.build(catalog(), depth=1, min_count=1)
    assert depth1.labels == ("other", "Clothing", "Sports")
    depth2 = CategoryVocab.build(catalog(), depth=2, min_count=1)
    assert depth2.labels == ("other", "Clothing > Women", "Sports > Bottles")
    depth3 = CategoryVocab.build(catalog(), depth=3, min_count=2)
    assert depth3.labels == ("other", "Clothing > Women > Shoes")  # boots (1) and bottles (1)
    assert depth3.encode(SHOES) == 1
    assert depth3.encode(BOOTS) == 0
    assert depth3.encode(()) == 0
    assert depth3.encode("Clothing > Women > Shoes") == 1
    assert depth3.decode(1) == "Clothing > Women > Shoes"
    assert len(depth3) == 2
    with pytest.raises(IndexError):
        depth3.decode(2)
    assert CategoryVocab.from_dict(depth3.to_dict()) == depth3


def test_vocab_needs_other_first() -> None:
    with pytest.raises(ValueError):
        CategoryVocab(labels=("Clothing",))


def test_product_text_uses_chosen_fields() -> None:
    p = Product(id="x", title="Slipper", brand="UGG", color="", category=("A", "B"))
    assert product_text(p, ("title", "brand", "color", "category")) == "Slipper | UGG | A > B"
    assert product_text(p, ("title",)) == "Slipper"


# --- pairs -----------------------------------------------------------------------------------


def test_relevance_class() -> None:
    assert [relevance_class(judgment("q", "p", label)) for label in ESCI_LABELS] == [0, 1, 2, 3]
    assert relevance_class(judgment("q", "p", 1.0)) == 0
    assert relevance_class(judgment("q", "p", 3.0)) == 0  # above E: nearest is E
    assert relevance_class(judgment("q", "p", 0.5)) == 1  # |0.5 - 0.1| < |0.5 - 1.0|
    assert relevance_class(judgment("q", "p", 0.02)) == 2
    assert relevance_class(judgment("q", "p", 0.0)) == 3


def test_build_pairs_labels_and_missing() -> None:
    products = {p.id: p for p in catalog()}
    vocab = CategoryVocab.build(products.values(), depth=3, min_count=2)
    judgments = [
        judgment("q", "s1", "E"),
        judgment("q", "b1", "S"),
        judgment("q", "w1", "C"),
        judgment("q", "n1", "I"),
        judgment("q", "gone", "E"),
        judgment("r", "s2", 0.5),
        judgment("r", "gone", "I"),
        judgment("r", "gone2", "I"),
    ]
    report = build_pairs(judgments, products, vocab, fields=("title", "category"))
    assert report.missing == 3
    assert report.missing_ids == ("gone", "gone2")
    assert [(p.query, p.product_id) for p in report.pairs] == [
        ("q", "s1"),
        ("q", "b1"),
        ("q", "w1"),
        ("q", "n1"),
        ("r", "s2"),
    ]
    assert [p.relevance for p in report.pairs] == [0, 1, 2, 3, 1]
    assert [p.category for p in report.pairs] == [1, 0, 0, None, 1]
    assert [p.gain for p in report.pairs] == [1.0, 0.1, 0.01, 0.0, 0.5]
    assert report.pairs[0].text == "title s1 | Clothing > Women > Shoes"
    assert not any(p.mined for p in report.pairs)


def test_category_examples_skip_uncategorised() -> None:
    vocab = CategoryVocab.build(catalog(), depth=1, min_count=1)
    examples = category_examples(catalog(), vocab, fields=("title",))
    assert [e.product_id for e in examples] == ["s1", "s2", "s3", "b1", "w1"]
    assert all(e.query == "" and e.relevance is None for e in examples)
    assert [e.category for e in examples] == [1, 1, 1, 1, 2]
    assert category_examples(catalog(), vocab, 2, ("title",))[0].category == 0  # depth-2 key


def test_query_category_labels() -> None:
    products = {p.id: p for p in catalog()}
    vocab = CategoryVocab.build(products.values(), depth=3, min_count=1)
    shoes, boots, bottles = (vocab.encode(c) for c in (SHOES, BOOTS, BOTTLES))
    judgments = [
        # "boots": E on two shoes and one boot -> shoes; the S bottle does not count
        judgment("boots", "s1", "E"),
        judgment("boots", "s2", "E"),
        judgment("boots", "b1", "E"),
        judgment("boots", "w1", "S"),
        # "tie": one boot, one bottle -> the lower id
        judgment("tie", "w1", "E"),
        judgment("tie", "b1", "E"),
        # "numeric": gain 1.0 counts as E; duplicates by another user count once
        judgment("numeric", "w1", 1.0),
        Judgment(query="numeric", product_id="w1", gain=1.0, label="E", user_id="u2"),
        judgment("numeric", "s1", "E"),
        judgment("numeric", "s3", "C"),
        # no E product with a category -> no entry
        judgment("none", "n1", "E"),
        judgment("none", "gone", "E"),
        judgment("none", "s1", "I"),
    ]
    labels = query_category_labels(judgments, products, vocab)
    assert (boots, shoes, bottles) == (1, 2, 3)  # labels are sorted
    assert labels == {"boots": shoes, "tie": boots, "numeric": shoes}


# --- hard negatives --------------------------------------------------------------------------


class FakeSearch:
    """A dict-based retriever: fixed rankings per query, cut at k; records calls."""

    def __init__(self, rankings: dict[str, list[str]]) -> None:
        self.rankings = rankings
        self.calls: list[tuple[str, int]] = []

    def __call__(self, query: str, k: int) -> list[str]:
        self.calls.append((query, k))
        return self.rankings.get(query, [])[:k]


def test_mine_hard_negatives_skips_judged_and_respects_per_query() -> None:
    search = FakeSearch(
        {
            "q": ["j1", "a", "j2", "b", "c", "d"],
            "r": ["x"],
            "s": ["j3"],
        }
    )
    judged = {"q": {"j1", "j2"}, "s": {"j3"}}
    mined = mine_hard_negatives(["q", "r", "s", "q"], judged, search, per_query=3, depth=10)
    assert mined == {"q": ["a", "b", "c"], "r": ["x"], "s": []}
    assert search.calls == [("q", 10), ("r", 10), ("s", 10)]
    assert mine_hard_negatives(["q"], judged, search, per_query=0) == {"q": []}


@settings(max_examples=100, deadline=None)
@given(
    ranking=st.lists(st.sampled_from("abcdefghij"), max_size=20),
    judged=st.sets(st.sampled_from("abcdefghij")),
    per_query=st.integers(min_value=0, max_value=6),
)
def test_mined_never_judged(ranking: list[str], judged: set[str], per_query: int) -> None:
    mined = mine_hard_negatives(
        ["q"], {"q": judged}, FakeSearch({"q": ranking}), per_query=per_query
    )["q"]
    assert len(mined) <= per_query
    assert not set(mined) & judged
    assert len(set(mined)) == len(mined)
    assert mined == [p for p in dict.fromkeys(ranking) if p not in judged][:per_query]


# --- prepare ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny() -> tuple[list[Product], list[Judgment]]:
    report = load_catalog(TINY_CATALOG)
    return list(report.products), load_judgments(TINY_JUDGMENTS)


def test_prepare_end_to_end(tiny: tuple[list[Product], list[Judgment]]) -> None:
    products, judgments = tiny
    config = TrainConfig().with_overrides(
        {"data.min_category_count": "2", "data.hard_negatives": "2"}
    )
    ids = [p.id for p in products]
    search = FakeSearch({q: ["not-in-catalog", *ids] for q in {j.query for j in judgments}})
    data = prepare(config, products=products, judgments=judgments, search=search)

    split = data.split
    assert len(split.train) == 3 and len(split.validation) == 1 and len(split.test) == 1
    assert set(split.train) | set(split.validation) | set(split.test) == {
        j.query for j in judgments
    }
    for name in ("train", "validation", "test"):
        assert {ex.query for ex in getattr(data, name)} <= set(getattr(split, name))

    judged_pairs = [ex for ex in data.train if not ex.mined]
    mined = [ex for ex in data.train if ex.mined]
    assert len(judged_pairs) + len(data.validation) + len(data.test) == len(judgments) == 50
    assert data.missing == 0
    assert len(mined) == 2 * len(split.train)  # hard negatives for training queries only
    judged = {(j.query, j.product_id) for j in judgments}
    catalog_ids = set(ids)
    for ex in mined:
        assert (ex.query, ex.product_id) not in judged
        assert ex.product_id in catalog_ids
        assert ex.relevance == IRRELEVANT and ex.gain == 0.0
    assert {q for q, _ in search.calls} == set(split.train)

    assert data.vocab.labels[0] == "other" and data.vocab.depth == 2
    assert "Tools & Home Improvement > Power & Hand Tools" in data.vocab.labels
    for ex in [*data.train, *data.validation, *data.test]:
        assert ex.relevance in range(4)
        assert ex.category is None or 0 <= ex.category < len(data.vocab)
        assert " | " in ex.text
    # each tiny query has E products, all with a category
    assert set(data.query_categories) == {j.query for j in judgments}
    slippers = data.query_categories["ugg slippers women"]
    assert data.vocab.decode(slippers) == "Clothing, Shoes & Jewelry > Women"
    assert data.summary()["train_mined_negatives"] == len(mined)


def test_prepare_without_search_and_with_missing_products(
    tiny: tuple[list[Product], list[Judgment]],
) -> None:
    products, judgments = tiny
    dropped = {judgments[0].product_id, judgments[1].product_id}
    kept = [p for p in products if p.id not in dropped]
    data = prepare(TrainConfig(), products=kept, judgments=judgments, search=None)
    assert data.missing == sum(j.product_id in dropped for j in judgments)
    assert not any(ex.mined for ex in data.train)
    total = len(data.train) + len(data.validation) + len(data.test)
    assert total == len(judgments) - data.missing


def test_prepare_is_deterministic_and_kfold(tiny: tuple[list[Product], list[Judgment]]) -> None:
    products, judgments = tiny
    first = prepare(TrainConfig(), products=products, judgments=judgments)
    second = prepare(TrainConfig(), products=products[::-1], judgments=judgments[::-1])
    assert first.split == second.split
    assert Counter(first.train) == Counter(second.train)

    tests = []
    for fold in range(5):
        config = TrainConfig().with_overrides({"data.folds": "5", "data.fold": str(fold)})
        tests.extend(prepare(config, products=products, judgments=judgments).split.test)
    assert sorted(tests) == sorted({j.query for j in judgments})


def test_training_data_refuses_leaks() -> None:
    split = QuerySplit(train=("a",), validation=("b",), test=())
    leak = PairExample(query="b", product_id="p", text="t", relevance=0, category=0, gain=1.0)
    with pytest.raises(ValueError, match="train"):
        TrainingData(
            split=split,
            vocab=CategoryVocab(labels=("other",)),
            train=[leak],
            validation=[],
            test=[],
            query_categories={},
            missing=0,
        )


# --- priors and the category task ------------------------------------------------------------


def test_attach_priors_standardizes_within_each_query() -> None:
    examples = [
        PairExample("q", "a", "t", 0, None, 1.0),
        PairExample("r", "b", "t", 0, None, 1.0),
        PairExample("q", "c", "t", 3, None, 0.0),
        PairExample("", "d", "t", None, 1, 0.0),
        PairExample("q", "e", "t", 1, None, 0.1),
    ]
    raw = {"a": 0.9, "b": 0.5, "c": 0.1, "e": 0.5}
    calls: list[tuple[str, list[str]]] = []

    def prior(query: str, ids: list[str]) -> list[float]:
        calls.append((query, list(ids)))
        return [raw[i] for i in ids]

    out = attach_priors(examples, prior)
    assert [ex.product_id for ex in out] == ["a", "b", "c", "d", "e"]
    assert sorted(calls) == [("q", ["a", "c", "e"]), ("r", ["b"])]
    q = [out[0].prior, out[2].prior, out[4].prior]
    assert q == pytest.approx([1.2247449, -1.2247449, 0.0], abs=1e-6)
    assert out[1].prior == 0.0  # one product: nothing to compare with
    assert out[3] == examples[3]  # category-only example unchanged


def test_pairs_showing_the_category_path_carry_no_category_label(
    tiny: tuple[list[Product], list[Judgment]],
) -> None:
    products, judgments = tiny
    shown = prepare(TrainConfig(), products=products, judgments=judgments)
    assert all(ex.category is None for ex in [*shown.train, *shown.validation, *shown.test])
    hidden = prepare(
        TrainConfig().with_overrides({"data.product_fields": '["title", "brand"]'}),
        products=products,
        judgments=judgments,
    )
    assert any(ex.category is not None for ex in hidden.train)


def test_category_products_add_path_free_products_and_training_queries(
    tiny: tuple[list[Product], list[Judgment]],
) -> None:
    products, judgments = tiny
    config = TrainConfig().with_overrides({"data.category_products": "4"})
    data = prepare(config, products=products, judgments=judgments)
    extra = [ex for ex in data.train if not ex.query]
    product_rows = [ex for ex in extra if ex.product_id]
    query_rows = [ex for ex in extra if not ex.product_id]
    assert len(product_rows) == 4
    by_id = {p.id: p for p in products}
    for ex in product_rows:
        assert ex.relevance is None and ex.category is not None
        assert " > " not in ex.text and by_id[ex.product_id].title in ex.text
    assert {ex.text for ex in query_rows} == {
        q for q in data.split.train if q in data.query_categories
    }
    assert all(ex.category == data.query_categories[ex.text] for ex in query_rows)
    again = prepare(config, products=products[::-1], judgments=judgments)
    assert Counter(again.train) == Counter(data.train)


def test_prepare_attaches_priors(tiny: tuple[list[Product], list[Judgment]]) -> None:
    products, judgments = tiny
    data = prepare(
        TrainConfig(),
        products=products,
        judgments=judgments,
        prior=lambda query, ids: [float(len(i)) + hash(i) % 7 for i in ids],
    )
    for part in (data.train, data.validation, data.test):
        by_query: dict[str, list[float]] = {}
        for ex in part:
            by_query.setdefault(ex.query, []).append(ex.prior)
        for values in by_query.values():
            assert sum(values) == pytest.approx(0.0, abs=1e-5)
