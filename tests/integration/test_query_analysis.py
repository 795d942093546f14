"""Query analysis end to end on the tiny index: negation, price, operators, spelling,
synonyms re-read without re-indexing, the synonym miner, and blank queries."""

from __future__ import annotations

import shutil

import pytest

from shopsearch.cli import main
from shopsearch.errors import InvalidQueryError
from shopsearch.pipeline import SearchPipeline

NEGATION_QUERY = "toddler water bottle without straw"


@pytest.fixture(scope="module")
def index(tmp_path_factory, tiny_index_dir):
    path = tmp_path_factory.mktemp("analysis") / "index"
    shutil.copytree(tiny_index_dir, path)
    return path


@pytest.fixture(scope="module")
def pipeline(index, encoder):
    with SearchPipeline.open(index, encoder=encoder) as opened:
        yield opened


def _straw(hits) -> int:
    return sum("straw" in h.product.title.lower() for h in hits)


def test_a_negated_word_leaves_the_match_and_products_stating_it_go_down(pipeline):
    only = ("audience",)  # the negation alone
    understood = pipeline.search(NEGATION_QUERY, k=5, pipeline="hybrid", relax=only)
    as_typed = pipeline.search(NEGATION_QUERY, k=5, pipeline="hybrid", relax=("negation", *only))
    assert understood.parsed.text == "toddler water bottle"
    assert understood.parsed.negated == ("straw",)
    assert as_typed.parsed.negated == () and as_typed.parsed.text == NEGATION_QUERY
    assert _straw(as_typed.hits) >= 2  # the words matched as typed favour straw bottles
    assert _straw(understood.hits) < _straw(as_typed.hits)
    straw = [h for h in understood.hits if "with straw" in h.product.title.lower()]
    assert all(h.scores.get("rules", 0) < 0 for h in straw)  # stated: demoted


def test_a_price_in_the_query_filters_and_can_be_removed(pipeline):
    result = pipeline.search("water bottle under $15", k=10, pipeline="hybrid")
    assert result.parsed.price is not None and result.parsed.price.max == 15
    assert result.hits and all(h.product.price is not None for h in result.hits)
    assert all(h.product.price <= 15 for h in result.hits)
    relaxed = pipeline.search("water bottle under $15", k=10, pipeline="hybrid", relax=("price",))
    assert any(h.product.price is None or h.product.price > 15 for h in relaxed.hits)
    # an explicit price filter wins over the text
    from shopsearch.index.filters import Filters

    explicit = pipeline.search(
        "water bottle under $15", k=10, filters=Filters(price_min=15.0), pipeline="bm25"
    )
    assert all(h.product.price >= 15 for h in explicit.hits)


def test_exclusions_and_quoted_phrases_hold_over_the_whole_catalog(pipeline):
    excluded = pipeline.search("water bottle -straw", k=20, pipeline="hybrid")
    assert excluded.hits and _straw(excluded.hits) == 0
    phrase = pipeline.search('"stainless steel" bottle', k=20, pipeline="hybrid")
    assert phrase.hits
    assert all("stainless steel" in h.product.title.lower() + h.product.bullet_points.lower()
               for h in phrase.hits)  # fmt: skip


def test_typos_are_corrected_against_the_catalog(pipeline):
    typo = pipeline.search("toddler watter botle", k=5, pipeline="bm25")
    clean = pipeline.search("toddler water bottle", k=5, pipeline="bm25")
    assert typo.parsed.corrected == "toddler water bottle"
    assert [h.product_id for h in typo.hits] == [h.product_id for h in clean.hits]
    as_typed = pipeline.search("toddler watter botle", k=5, pipeline="bm25", relax=("spelling",))
    assert as_typed.parsed.corrections == ()


def test_the_index_synonym_file_applies_at_once_without_reindexing(index, encoder):
    with SearchPipeline.open(index, encoder=encoder) as pipeline:
        before = pipeline.search("wobblefrump", k=5, pipeline="bm25")
        assert before.hits == [] and before.parsed.expansions == ()
        (index / "synonyms.txt").write_text("wobblefrump => slipper\n", encoding="utf-8")
        after = pipeline.search("wobblefrump", k=5, pipeline="bm25")
        assert after.parsed.expansions == ("slipper",)
        assert after.hits and all("slipper" in h.product.title.lower() for h in after.hits)
    assert main(["synonyms", "check", str(index)]) == 0
    (index / "synonyms.txt").write_text("ok, fine\nbroken =>\n", encoding="utf-8")
    assert main(["synonyms", "check", str(index)]) == 1
    (index / "synonyms.txt").unlink()


def test_the_synonym_miner_proposes_without_applying(index, tmp_path, capsys):
    out = tmp_path / "proposed.txt"
    assert main(["synonyms", "mine", str(index), "--min-count", "1", "--out", str(out)]) == 0
    assert out.read_text().startswith("# Proposed by `shopsearch synonyms mine`")
    assert not (index / "synonyms.txt").exists()
    assert main(["synonyms", "mine", str(index), "--out", str(index / "synonyms.txt")]) == 1
    assert "would overwrite" in capsys.readouterr().err


@pytest.mark.parametrize("query", ["\u200b\u200b", " ... ", "\x00"])
def test_a_query_with_nothing_searchable_is_a_clear_error(pipeline, query, capsys, index):
    with pytest.raises(InvalidQueryError, match="no letters or digits"):
        pipeline.search(query, k=5)
    assert main(["search", str(index), query]) == 1
    assert "no letters or digits" in capsys.readouterr().err


def test_the_query_category_is_predicted_when_a_dense_retriever_ran(pipeline):
    hybrid = pipeline.search("ugg slippers women", k=5, pipeline="hybrid").parsed
    assert hybrid.category is not None and hybrid.category.startswith("Clothing")
    assert 0 < hybrid.category_probability <= 1
    assert pipeline.search("ugg slippers women", k=5, pipeline="bm25").parsed.category is None
