"""The search pipeline end to end on the 50-product ESCI fixture with the real MiniLM."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from shopsearch.catalog.schema import Product
from shopsearch.errors import IndexNotFoundError, InvalidQueryError
from shopsearch.index.filters import Filters
from shopsearch.pipeline import RETRIEVAL_PIPELINES as PIPELINES
from shopsearch.pipeline import SearchPipeline


@pytest.fixture(scope="module")
def pipeline(tiny_index_dir, encoder):
    with SearchPipeline.open(tiny_index_dir, encoder=encoder) as opened:
        yield opened


@pytest.fixture()
def writable(tmp_path, tiny_index_dir, encoder):
    shutil.copytree(tiny_index_dir, tmp_path / "index")
    with SearchPipeline.open(tmp_path / "index", encoder=encoder) as opened:
        yield opened


@pytest.mark.parametrize("name", PIPELINES)
def test_every_pipeline_returns_ranked_explained_hits(pipeline, name):
    result = pipeline.search("ugg slippers women", k=5, pipeline=name)
    assert result.pipeline == name
    assert 1 <= len(result.hits) <= 5
    scores = [h.score for h in result.hits]
    assert scores == sorted(scores, reverse=True)
    assert len({h.product_id for h in result.hits}) == len(result.hits)
    for hit in result.hits:
        assert hit.product is not None and hit.product.id == hit.product_id
        expected = {"bm25", "dense", "fused"} if name == "hybrid" else {name}
        assert set(hit.scores) - {"rules"} == expected  # "rules": the audience boost
    assert "ugg" in result.hits[0].product.title.lower()


def test_hybrid_scores_are_consistent_with_component_runs(pipeline):
    hybrid = pipeline.search("toddler water bottle without straw", k=10, pipeline="hybrid")
    bm25 = pipeline.search("toddler water bottle without straw", k=50, pipeline="bm25")
    dense = pipeline.search("toddler water bottle without straw", k=50, pipeline="dense")
    bm25_scores = {h.product_id: h.scores["bm25"] for h in bm25.hits}
    dense_scores = {h.product_id: h.scores["dense"] for h in dense.hits}
    assert hybrid.parsed.negated == ("straw",)  # every pipeline matches the same parsed text
    for hit in hybrid.hits:
        assert hit.scores["dense"] == pytest.approx(dense_scores[hit.product_id], abs=1e-5)
        assert hit.scores["bm25"] == pytest.approx(bm25_scores.get(hit.product_id, 0.0), abs=1e-4)
        assert hit.score == pytest.approx(hit.scores["fused"] + hit.scores.get("rules", 0.0))


@pytest.mark.parametrize("name", PIPELINES)
def test_filters_are_respected(pipeline, name):
    filters = Filters(brands=("UGG",), rating_min=4.5)
    result = pipeline.search("slippers", k=20, filters=filters, pipeline=name)
    assert result.hits
    for hit in result.hits:
        assert hit.product.brand.lower() == "ugg" and hit.product.rating >= 4.5
    assert dict(result.facets["brand"]) == {"UGG": result.candidates}


def test_a_filter_that_matches_nothing_returns_nothing(pipeline):
    result = pipeline.search("slippers", filters=Filters(brands=("no such brand",)))
    assert result.hits == [] and result.candidates == 0


def test_facets_count_the_candidates(pipeline):
    result = pipeline.search("water bottle", k=3)
    assert sum(n for _, n in result.facets["category"]) <= result.candidates
    assert result.facets["brand"] and result.facets["rating"]


def test_explain_adds_per_field_bm25_that_sum_to_bm25(pipeline):
    result = pipeline.search("ugg slippers women", k=5, explain=True)
    for hit in result.hits:
        fields = sum(v for k, v in hit.scores.items() if k.startswith("bm25."))
        assert fields == pytest.approx(hit.scores["bm25"], rel=1e-4, abs=1e-5)


@pytest.mark.parametrize("name", PIPELINES)
def test_rank_orders_exactly_the_known_candidates(pipeline, name):
    ids = [h.product_id for h in pipeline.search("tool wrap", k=8, pipeline="bm25").hits]
    ranked = pipeline.rank("tool wrap", list(reversed(ids)) + ["unknown-id"], pipeline=name)
    assert sorted(h.product_id for h in ranked) == sorted(ids)


def test_chinese_and_mixed_queries_run(pipeline):
    for query in ("拖鞋", "ugg 拖鞋 women", "Тапочки"):
        result = pipeline.search(query, k=3)
        assert len(result.hits) == 3  # the dense side always answers


@pytest.mark.parametrize(
    "kwargs",
    [
        {"query": ""},
        {"query": "   "},
        {"query": "x" * 5_000},
        {"k": 0},
        {"k": 100_000},
        {"pipeline": "nope"},
        {"pipeline": "rerank"},  # no cross-encoder configured
    ],
)
def test_bad_queries_raise_clear_errors(pipeline, kwargs):
    call = {"query": "slippers", **kwargs}
    with pytest.raises(InvalidQueryError):
        pipeline.search(call.pop("query"), **call)


def test_missing_index_raises(tmp_path):
    with pytest.raises(IndexNotFoundError, match="shopsearch index"):
        SearchPipeline.open(tmp_path / "nothing-here")


def test_upsert_makes_a_product_searchable_and_durable(writable, encoder):
    new = Product("NEW-1", "Purple waterproof hiking slippers", brand="Zzyzx", price=42.0)
    writable.upsert([new])
    top = writable.search("zzyzx purple hiking slippers", k=1).hits[0]
    assert top.product_id == "NEW-1" and top.product == new
    with SearchPipeline.open(writable.directory.path, encoder=encoder) as reopened:
        assert reopened.get("NEW-1") == new
        assert reopened.search("zzyzx purple hiking slippers", k=1).hits[0].product_id == "NEW-1"


def test_incremental_changes_equal_a_full_rebuild(writable, tiny_products, encoder, tmp_path):
    """Upserts and deletes give the same scores as indexing the final catalog from scratch."""
    changed = Product(tiny_products[0].id, "Stainless steel toddler bottle", brand="Acme")
    added = [Product(f"ADD-{i}", f"Slipper model {i}", brand="UGG") for i in range(3)]
    deleted = [p.id for p in tiny_products[5:20]]  # enough to trigger a compaction
    writable.upsert([changed, *added])
    assert writable.delete(deleted + ["not-there"]) == len(deleted)
    final = [changed, *tiny_products[1:5], *tiny_products[20:], *added]
    rebuilt = SearchPipeline.build(final, tmp_path / "rebuilt", encoder=encoder)
    assert len(writable) == len(rebuilt) == len(final)
    for query in ("ugg slippers women", "toddler bottle", "tool wrap"):
        for name in PIPELINES:
            a = writable.search(query, k=10, pipeline=name)
            b = rebuilt.search(query, k=10, pipeline=name)
            assert [h.product_id for h in a.hits] == [h.product_id for h in b.hits]
            np.testing.assert_allclose(
                [h.score for h in a.hits], [h.score for h in b.hits], rtol=1e-4, atol=1e-6
            )
    assert writable.get(deleted[0]) is None
    assert all(h.product_id not in deleted for h in writable.search("slippers", k=50).hits)
    rebuilt.close()


def test_reopened_index_gives_identical_results(tiny_index_dir, pipeline, encoder):
    with SearchPipeline.open(tiny_index_dir, encoder=encoder) as again:
        for name in PIPELINES:
            a = pipeline.search("face wash", k=10, pipeline=name)
            b = again.search("face wash", k=10, pipeline=name)
            assert [(h.product_id, h.score) for h in a.hits] == [
                (h.product_id, h.score) for h in b.hits
            ]


def test_a_pipeline_follows_and_builds_on_other_writers(tmp_path, tiny_index_dir, encoder):
    """Another pipeline (another process) wrote: refresh() swaps its snapshot in, and a
    write here goes on top of it instead of being refused."""
    shutil.copytree(tiny_index_dir, tmp_path / "index")
    with (
        SearchPipeline.open(tmp_path / "index", encoder=encoder) as mine,
        SearchPipeline.open(tmp_path / "index", encoder=encoder) as other,
    ):
        other.upsert([Product(id="OTHER-1", title="Frobnitz waffle iron")])
        assert mine.get("OTHER-1") is not None and "OTHER-1" not in mine.snapshot.id_to_row
        before = mine.snapshot
        assert mine.refresh() is True and mine.refresh() is False
        assert before.name != mine.snapshot.name and "OTHER-1" in mine.snapshot.id_to_row
        assert mine.search("frobnitz waffle iron", k=1).hits[0].product_id == "OTHER-1"

        other.upsert([Product(id="OTHER-2", title="Frobnitz toaster")])
        mine.upsert([Product(id="MINE-1", title="Snorkel kettle")])  # no stale-snapshot error
        assert mine.delete(["OTHER-1"]) == 1
        assert {"OTHER-2", "MINE-1"} <= set(mine.snapshot.id_to_row)
        assert "OTHER-1" not in mine.snapshot.id_to_row
        assert other.refresh() and set(other.snapshot.id_to_row) == set(mine.snapshot.id_to_row)
