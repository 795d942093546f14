"""A pipeline composed in the index configuration: hybrid retrieval, the cross-encoder on
the head, then the personal stage. Trained, searched with a shopper, ranked and evaluated.
"""

from __future__ import annotations

import json
import shutil

import pytest
from reranker_support import save_planted_run
from tests_support import TINY_JUDGMENTS, add_simulated_personalization

from shopsearch.cli import main
from shopsearch.errors import InvalidQueryError
from shopsearch.pipeline import SearchPipeline

RP = "hybrid -> cross_encoder(top=8) -> personal(top=20)"


@pytest.fixture(scope="module")
def composed(tmp_path_factory, tiny_index_dir, encoder):
    work = tmp_path_factory.mktemp("composed")
    index = work / "index"
    shutil.copytree(tiny_index_dir, index)
    run = save_planted_run(work / "run")
    refresh = ["refresh", str(index), "--reranker", str(run), "--set", "reranker.backend=torch"]
    pipelines = ["--set", f"pipelines.rp={RP}", "--set", "pipelines.default=rp"]
    pipelines += ["--set", "pipelines.ce8=hybrid -> cross_encoder(top=8)"]
    assert main([*refresh, *pipelines]) == 0
    users = add_simulated_personalization(index, work)
    with SearchPipeline.open(index, encoder=encoder) as pipeline:
        yield pipeline, users


def test_the_composed_pipeline_is_listed_with_its_stages(composed):
    pipeline, _ = composed
    assert pipeline.pipelines == (
        "bm25",
        "dense",
        "hybrid",
        "rrf",
        "rerank",
        "personal",
        "rp",
        "ce8",
    )
    assert pipeline.default_pipeline == "rp"
    described = pipeline.describe_pipelines()["rp"]
    assert described["available"] and described["definition"] == RP
    assert described["stages"].endswith("cross_encoder(top=8) -> personal(top=20) -> shape")


def test_search_runs_every_stage_with_the_shoppers_context(composed):
    pipeline, users = composed
    user = next(u["user_id"] for u in users if u["group"] == "test")
    result = pipeline.search("ugg slippers women", k=10, user=user, explain=True)
    assert result.pipeline == "rp" and result.personalized
    assert result.stages == (
        "analyze",
        "bm25",
        "dense",
        "fuse",
        "cross_encoder",
        "personal",
        "shape",
    )
    assert len(result.hits) == 10
    assert all("ltr" in h.scores and "fused" in h.scores for h in result.hits)
    assert any("rerank" in h.scores for h in result.hits)  # the cross-encoder's head
    assert all(h.score == h.scores["ltr"] for h in result.hits)  # the personal stage ranks
    assert [h.score for h in result.hits] == sorted((h.score for h in result.hits), reverse=True)
    assert any(k.startswith("ltr.") for k in result.hits[0].scores)  # explanations
    assert any(k.startswith("bm25.") for k in result.hits[0].scores)


def test_the_personal_stage_reads_the_cross_encoders_output(composed):
    """The personal stage gets the cross-encoder's head: exactly the products the
    cross-encoder alone (``hybrid -> cross_encoder(top=8)``) re-scored, with its scores."""
    pipeline, _ = composed
    query = "ugg slippers women"
    head = pipeline.search(query, k=8, pipeline="ce8").hits
    expected = {h.product_id: h.scores["rerank"] for h in head}
    hits = pipeline.search(query, k=20, pipeline="rp").hits
    got = {h.product_id: h.scores["rerank"] for h in hits if "rerank" in h.scores}
    assert got == expected
    hybrid = {h.product_id for h in pipeline.search(query, k=20, pipeline="hybrid").hits}
    assert {h.product_id for h in hits} == hybrid  # the personal stage re-orders hybrid's 20


def test_rank_and_eval_run_the_same_stages(composed, capsys):
    pipeline, _ = composed
    ids = [h.product_id for h in pipeline.search("tool wrap", k=6, pipeline="bm25").hits]
    ranked = pipeline.rank("tool wrap", ids, pipeline="rp", user="nobody")
    assert sorted(h.product_id for h in ranked) == sorted(ids)
    assert all({"rerank", "ltr"} <= set(h.scores) for h in ranked)  # every candidate
    index = str(pipeline.directory.path)
    for protocol in ("rerank", "retrieve"):
        args = ["eval", index, "--judgments", str(TINY_JUDGMENTS), "--protocol", protocol]
        assert main([*args, "--pipeline", "rp,rerank,hybrid", "--json"]) == 0
        report = json.loads(capsys.readouterr().out)
        assert set(report["pipelines"]) == {"random", "rp", "rerank", "hybrid"}
        assert 0.0 < report["pipelines"]["rp"]["ndcg@10"] <= 1.0


def test_a_pipeline_the_index_cannot_run_says_what_it_needs(tiny_index_dir, encoder, tmp_path):
    index = tmp_path / "index"
    shutil.copytree(tiny_index_dir, index)
    assert main(["refresh", str(index), "--set", "pipelines.ce=bm25 -> cross_encoder"]) == 0
    with SearchPipeline.open(index, encoder=encoder) as pipeline:
        assert "ce" not in pipeline.pipelines
        described = pipeline.describe_pipelines()["ce"]
        assert not described["available"] and "cross-encoder" in described["needs"]
        with pytest.raises(InvalidQueryError, match="the ce pipeline needs a cross-encoder"):
            pipeline.search("mug", pipeline="ce")
        with pytest.raises(InvalidQueryError, match="unknown pipeline 'nope'"):
            pipeline.search("mug", pipeline="nope")
    assert main(["refresh", str(index), "--set", "pipelines.bad=hybrid -> translate"]) == 1
