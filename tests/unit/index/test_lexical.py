from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import bm25s
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shopsearch.errors import IndexNotFoundError
from shopsearch.index.lexical import DEFAULT_FIELD_WEIGHTS, BM25Config, BM25Index
from shopsearch.text import Tokenizer, TokenizerConfig

TINY_CATALOG = Path(__file__).parents[2] / "data" / "tiny_catalog.jsonl"
# words that the tokenizer below maps to themselves
WORDS = [f"w{i}" for i in range(12)]
PLAIN = Tokenizer(TokenizerConfig(stem=False, stopwords=False, cjk=False))
FIELDS = {"title": 2.5, "body": 0.7, "tags": 1.3}

TokenDoc = Mapping[str, Sequence[str]]


def brute_force(
    docs: Sequence[TokenDoc],
    live: Sequence[bool],
    config: BM25Config,
    query: Sequence[str],
) -> np.ndarray:
    """The docstring's formula, one document and one term at a time."""
    live_docs = [d for d, alive in zip(docs, live, strict=True) if alive]
    n = len(live_docs)
    out = np.zeros(len(docs))
    for i, doc in enumerate(docs):
        if not live[i]:
            continue
        total = 0.0
        for name, weight in config.field_weights.items():
            avglen = sum(len(d.get(name, [])) for d in live_docs) / n
            tokens = list(doc.get(name, []))
            for term in dict.fromkeys(query):
                tf = tokens.count(term)
                if tf == 0:
                    continue
                df = sum(term in d.get(name, []) for d in live_docs)
                idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
                norm = config.k1 * (1 - config.b + config.b * len(tokens) / avglen)
                total += weight * idf * tf / (tf + norm)
        out[i] = total
    return out


def random_docs(rng: np.random.Generator, n: int, fields: Sequence[str]) -> list[dict[str, list]]:
    docs = []
    for _ in range(n):
        doc = {}
        for name in fields:
            length = int(rng.integers(0, 8))  # 0: an empty field
            if length:
                doc[name] = [str(w) for w in rng.choice(WORDS, size=length)]
        docs.append(doc)
    return docs


def as_text(doc: TokenDoc) -> dict[str, str]:
    return {name: " ".join(tokens) for name, tokens in doc.items()}


def queries(rng: np.random.Generator, count: int) -> list[list[str]]:
    out = [["w0"], ["w1", "w1", "w2"], ["nope"], ["w3", "nope", "w4"]]
    for _ in range(count):
        out.append([str(w) for w in rng.choice([*WORDS, "unknown"], size=int(rng.integers(1, 5)))])
    return out


def tiny_catalog_docs() -> list[dict[str, str]]:
    docs = []
    for line in TINY_CATALOG.read_text().splitlines():
        row = json.loads(line)
        docs.append(
            {
                "title": row["title"],
                "brand": row.get("brand") or "",
                "color": row.get("color") or "",
                "category": " > ".join(row.get("category") or []),
                "bullet_points": row.get("bullet_points") or "",
                "description": row.get("description") or "",
            }
        )
    return docs


@pytest.fixture(scope="module")
def catalog() -> list[dict[str, str]]:
    return tiny_catalog_docs()


@pytest.fixture(scope="module")
def catalog_index(catalog: list[dict[str, str]]) -> BM25Index:
    index = BM25Index()
    index.add(catalog)
    return index


# -- exactness --------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(6))
def test_matches_brute_force_with_weights_and_deletes(seed: int) -> None:
    rng = np.random.default_rng(seed)
    config = BM25Config(
        k1=float(rng.uniform(0.3, 2.0)), b=float(rng.uniform(0, 1)), field_weights=FIELDS
    )
    docs = random_docs(rng, 40, list(FIELDS))
    index = BM25Index(config, PLAIN)
    index.add_tokenized(docs[:25])
    index.delete(rng.choice(25, size=6, replace=False))
    index.add_tokenized(docs[25:])
    index.delete(rng.choice(40, size=5, replace=False))
    live = index.live_mask.tolist()
    for query in queries(rng, 10):
        expected = brute_force(docs, live, config, query)
        np.testing.assert_allclose(index.scores(" ".join(query)), expected, rtol=1e-6, atol=1e-5)


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_docs=st.integers(1, 30),
    k1=st.floats(0.0, 3.0),
    b=st.floats(0.0, 1.0),
    delete_fraction=st.floats(0.0, 1.0),
)
def test_matches_brute_force_property(
    seed: int, n_docs: int, k1: float, b: float, delete_fraction: float
) -> None:
    rng = np.random.default_rng(seed)
    config = BM25Config(k1=k1, b=b, field_weights=FIELDS)
    docs = random_docs(rng, n_docs, list(FIELDS))
    index = BM25Index(config, PLAIN)
    index.add(docs_text := [as_text(d) for d in docs])
    assert len(docs_text) == index.n_rows
    index.delete(np.flatnonzero(rng.random(n_docs) < delete_fraction))
    live = index.live_mask.tolist()
    for query in queries(rng, 3):
        expected = brute_force(docs, live, config, query)
        np.testing.assert_allclose(index.scores(" ".join(query)), expected, rtol=1e-6, atol=1e-5)


def bm25s_scores(corpus: list[list[str]], query: list[str], k1: float, b: float) -> np.ndarray:
    retriever = bm25s.BM25(method="lucene", k1=k1, b=b)
    retriever.index(corpus, show_progress=False)
    # bm25s sums repeated query tokens and needs a non-empty list: give it the distinct
    # tokens it knows (unknown tokens contribute nothing on either side)
    known = [t for t in dict.fromkeys(query) if t in retriever.vocab_dict]
    if not known:
        return np.zeros(len(corpus), dtype=np.float32)
    return retriever.get_scores(known)


@pytest.mark.parametrize(("k1", "b"), [(1.2, 0.75), (0.9, 0.4), (2.0, 1.0), (1.5, 0.0)])
def test_single_field_matches_bm25s_on_catalog(
    catalog: list[dict[str, str]], k1: float, b: float
) -> None:
    tok = Tokenizer()
    # titles plus descriptions: some empty documents
    corpus = [tok.tokenize(d["description"] or "") for d in catalog] + [
        tok.tokenize(d["title"]) for d in catalog
    ]
    index = BM25Index(BM25Config(k1=k1, b=b, field_weights={"text": 1.0}), tok)
    index.add_tokenized([{"text": tokens} for tokens in corpus])
    texts = [
        "ugg slippers women",
        "kitchen towels towels",
        "water bottle without straw",
        "zzzz",
        "the",
    ]
    texts += [d["title"] for d in catalog[:10]]
    for text in texts:
        query = tok.tokenize(text)
        np.testing.assert_allclose(
            index.scores(text), bm25s_scores(corpus, query, k1, b), rtol=1e-5, atol=1e-4
        )


def test_single_field_matches_bm25s_random() -> None:
    rng = np.random.default_rng(7)
    corpus = [d.get("t", []) for d in random_docs(rng, 200, ["t"])]
    index = BM25Index(BM25Config(field_weights={"t": 1.0}), PLAIN)
    index.add_tokenized([{"t": tokens} for tokens in corpus])
    for query in queries(rng, 20):
        np.testing.assert_allclose(
            index.scores(" ".join(query)),
            bm25s_scores(corpus, query, 1.2, 0.75),
            rtol=1e-5,
            atol=1e-4,
        )


def test_query_terms_count_once(catalog_index: BM25Index) -> None:
    np.testing.assert_array_equal(
        catalog_index.scores("slipper slipper slippers"), catalog_index.scores("slipper")
    )


# -- incremental updates ----------------------------------------------------------------------


def test_incremental_equals_rebuild_and_compact(catalog: list[dict[str, str]]) -> None:
    rng = np.random.default_rng(3)
    a = BM25Index()
    a.add(catalog[:30])
    a.delete([1, 5, 7, 29])
    a.delete([5])  # idempotent
    for start in range(30, 50, 7):
        a.add(catalog[start : start + 7])
    a.delete(rng.choice(50, size=8, replace=False))
    live_rows = np.flatnonzero(a.live_mask)
    assert a.n_rows == 50 and a.n_live == live_rows.size

    b = BM25Index()
    b.add([catalog[i] for i in live_rows])
    texts = [
        "ugg slippers women",
        "towels",
        "stainless steel water bottle",
        "black",
        "nothing-here",
    ]
    texts += [catalog[i]["title"] for i in range(0, 50, 5)]
    for text in texts:
        scores_a = a.scores(text)
        np.testing.assert_allclose(scores_a[live_rows], b.scores(text), rtol=1e-5, atol=1e-5)
        assert not scores_a[~a.live_mask].any()

    mapping = a.compact()
    assert mapping.dtype == np.int64 and mapping.shape == (50,)
    np.testing.assert_array_equal(mapping[live_rows], np.arange(live_rows.size))
    assert (np.delete(mapping, live_rows) == -1).all()
    assert a.n_rows == a.n_live == live_rows.size
    assert a.n_terms == b.n_terms  # terms used only by deleted rows are gone
    for text in texts:
        np.testing.assert_allclose(a.scores(text), b.scores(text), rtol=1e-5, atol=1e-5)
    # still usable after compaction
    assert a.add([catalog[0]]).tolist() == [live_rows.size]
    b.add([catalog[0]])
    np.testing.assert_allclose(a.scores("ugg"), b.scores("ugg"), rtol=1e-5, atol=1e-5)


def test_add_returns_contiguous_rows_and_accepts_partial_docs() -> None:
    index = BM25Index()
    assert index.add([]).tolist() == []
    rows = index.add([{"title": "steel bottle"}, {}, {"brand": None, "title": "mug"}])
    assert rows.dtype == np.int64 and rows.tolist() == [0, 1, 2]
    assert index.add([{"title": "cup", "price": "12"}]).tolist() == [3]  # unknown field ignored
    assert index.n_rows == index.n_live == 4
    assert index.search("price 12", k=5)[0].tolist() == []
    with pytest.raises(TypeError):
        index.add_tokenized([{"title": "not tokenized"}])  # type: ignore[dict-item]


def test_delete_tombstones() -> None:
    index = BM25Index()
    index.add([{"title": "red mug"}, {"title": "red cup"}, {"title": "blue mug"}])
    index.delete(np.array([0]))
    index.delete([0, 0])
    assert index.n_live == 2 and index.n_rows == 3
    assert index.is_live([0, 1, 2]).tolist() == [False, True, True]
    assert index.scores("red mug")[0] == 0
    assert 0 not in index.search("red mug", k=3)[0].tolist()
    with pytest.raises(IndexError):
        index.delete([3])
    with pytest.raises(IndexError):
        index.is_live([-1])
    index.delete([1, 2])
    assert index.n_live == 0
    assert index.search("red", k=3)[0].size == 0
    assert not index.scores("red").any()


def test_live_mask_is_a_read_only_snapshot() -> None:
    index = BM25Index()
    index.add([{"title": "a1"}, {"title": "b2"}])
    mask = index.live_mask
    with pytest.raises(ValueError):
        mask[0] = False
    index.delete([0])
    assert mask.tolist() == [True, True]
    assert index.live_mask.tolist() == [False, True]


# -- reads ------------------------------------------------------------------------------------


def test_search_orders_by_score_then_row(catalog_index: BM25Index) -> None:
    for text in ["ugg slippers women", "towels kitchen", "black", "water bottle"]:
        scores = catalog_index.scores(text)
        rows, top = catalog_index.search(text, k=7)
        positive = np.flatnonzero(scores > 0)
        expected = positive[np.lexsort((positive, -scores[positive]))][:7]
        assert rows.dtype == np.int64 and top.dtype == np.float32
        np.testing.assert_array_equal(rows, expected)
        np.testing.assert_array_equal(top, scores[expected])


def test_search_breaks_ties_by_row() -> None:
    index = BM25Index()
    index.add([{"title": "mug"}, {"title": "red mug"}, {"title": "mug"}, {"title": "mug"}])
    rows, scores = index.search("mug", k=2)
    assert rows.tolist() == [0, 2]
    assert scores[0] == scores[1]
    assert index.search("mug", k=10)[0].tolist() == [0, 2, 3, 1]


def test_search_respects_mask_and_k(catalog_index: BM25Index) -> None:
    scores = catalog_index.scores("slippers")
    matching = np.flatnonzero(scores > 0)
    assert matching.size >= 3
    mask = np.ones(catalog_index.n_rows, dtype=bool)
    mask[matching[:2]] = False
    rows, _ = catalog_index.search("slippers", k=100, mask=mask)
    assert set(rows.tolist()) == set(matching[2:].tolist())  # k larger than the matches
    assert catalog_index.search("slippers", k=100, mask=~np.ones_like(mask))[0].size == 0
    assert len(catalog_index.search("slippers", k=1)[0]) == 1
    assert catalog_index.search("slippers", k=0)[0].size == 0


@pytest.mark.parametrize("text", ["", "   ", "the and of", "qqqzzz xxyyzz", "!!!"])
def test_search_empty_or_unknown_query(catalog_index: BM25Index, text: str) -> None:
    rows, scores = catalog_index.search(text, k=5)
    assert rows.size == 0 and scores.size == 0
    assert not catalog_index.scores(text).any()


def test_search_rejects_bad_arguments(catalog_index: BM25Index) -> None:
    with pytest.raises(ValueError):
        catalog_index.search("mug", k=-1)
    with pytest.raises(ValueError):
        catalog_index.search("mug", k=5, mask=np.ones(3, dtype=bool))
    with pytest.raises(ValueError):
        catalog_index.search("mug", k=5, mask=np.ones(catalog_index.n_rows))
    with pytest.raises(IndexError):
        catalog_index.scores("mug", rows=[catalog_index.n_rows])


def test_empty_index() -> None:
    index = BM25Index()
    assert index.scores("anything").shape == (0,)
    assert index.search("anything", k=3)[0].size == 0


def test_scores_for_rows_and_field_scores(catalog_index: BM25Index) -> None:
    rows = np.array([4, 0, 17, 4])
    for text in ["ugg slippers women chestnut", "towels", "zzz"]:
        full = catalog_index.scores(text)
        np.testing.assert_array_equal(catalog_index.scores(text, rows), full[rows])
        parts = catalog_index.field_scores(text, rows)
        assert list(parts) == list(DEFAULT_FIELD_WEIGHTS)
        np.testing.assert_allclose(sum(parts.values()), full[rows], rtol=1e-6, atol=1e-6)


def test_field_scores_attribute_matches_to_fields() -> None:
    index = BM25Index()
    index.add([{"title": "teapot", "brand": "acme"}, {"title": "acme teapot"}, {"color": "teal"}])
    parts = index.field_scores("acme", [0, 1, 2])
    assert parts["brand"][0] > 0 and parts["title"][0] == 0
    assert parts["title"][1] > 0 and parts["brand"][1] == 0
    assert all(v[2] == 0 for v in parts.values())


def test_weights_scale_field_contributions() -> None:
    docs = [{"title": "acme kettle"}, {"brand": "acme"}, {"title": "other"}]
    one = BM25Index(BM25Config(field_weights={"title": 1.0, "brand": 1.0}))
    three = BM25Index(BM25Config(field_weights={"title": 3.0, "brand": 1.0}))
    one.add(docs)
    three.add(docs)
    assert three.scores("acme")[0] == pytest.approx(3 * one.scores("acme")[0])
    assert three.scores("acme")[1] == pytest.approx(one.scores("acme")[1])


# -- persistence ------------------------------------------------------------------------------


def test_save_load_roundtrip(tmp_path: Path, catalog: list[dict[str, str]]) -> None:
    config = BM25Config(k1=0.9, b=0.6, field_weights={"title": 2.0, "bullet_points": 1.0})
    index = BM25Index(config, Tokenizer(TokenizerConfig(stem=False)))
    index.add(catalog[:40])
    index.delete([3, 9])
    index.add(catalog[40:45])  # pending rows must be saved too
    index.save(tmp_path / "lexical")
    assert {p.name for p in (tmp_path / "lexical").iterdir()} == {
        "config.json",
        "vocab.json",
        "arrays.npz",
    }
    loaded = BM25Index.load(tmp_path / "lexical")
    assert loaded.config == config
    assert loaded.tokenizer.config == TokenizerConfig(stem=False)
    assert (loaded.n_rows, loaded.n_live, loaded.n_terms) == (
        index.n_rows,
        index.n_live,
        index.n_terms,
    )
    np.testing.assert_array_equal(loaded.live_mask, index.live_mask)
    texts = ["ugg slippers women", "slipper", "towels", "water bottle"]
    for text in texts:
        np.testing.assert_array_equal(loaded.scores(text), index.scores(text))
    # both keep working the same way after load
    for idx in (index, loaded):
        idx.add(catalog[45:])
        idx.delete([0])
    for text in texts:
        np.testing.assert_allclose(loaded.scores(text), index.scores(text), rtol=1e-6)


def test_load_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(IndexNotFoundError):
        BM25Index.load(tmp_path / "nope")


def test_save_load_empty_index(tmp_path: Path) -> None:
    BM25Index().save(tmp_path)
    loaded = BM25Index.load(tmp_path)
    assert loaded.n_rows == 0
    loaded.add([{"title": "mug"}])
    assert loaded.search("mug", k=1)[0].tolist() == [0]


# -- config -----------------------------------------------------------------------------------


def test_config_roundtrip_and_defaults() -> None:
    config = BM25Config(k1=1.0, b=0.5, field_weights={"title": 2.0})
    assert BM25Config.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    assert BM25Config.from_dict({}) == BM25Config()
    assert dict(BM25Config().field_weights) == DEFAULT_FIELD_WEIGHTS


def test_config_copies_weights_and_validates() -> None:
    weights = {"title": 1.0}
    config = BM25Config(field_weights=weights)
    weights["title"] = 5.0
    assert config.field_weights["title"] == 1.0
    for bad in [{"k1": -1.0}, {"b": 1.5}, {"field_weights": {}}, {"field_weights": {"t": -1.0}}]:
        with pytest.raises(ValueError):
            BM25Config(**bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        BM25Config.from_dict({"k": 1.0})


def test_term_frequencies_and_lengths_count_duplicates() -> None:
    index = BM25Index(BM25Config(field_weights={"title": 1.0}), PLAIN)
    index.add([{"title": "w1 w1 w1 w2"}, {"title": "w1"}, {"title": "w2 w3"}])
    tokens = [["w1", "w1", "w1", "w2"], ["w1"], ["w2", "w3"]]
    expected = brute_force([{"title": t} for t in tokens], [True] * 3, index.config, ["w1"])
    assert expected[0] != expected[1]
    np.testing.assert_allclose(index.scores("w1"), expected, rtol=1e-6)
