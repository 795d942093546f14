"""The cross-encoder rerank stage over hybrid retrieval (a planted head: wiring, not quality)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from reranker_support import save_planted_run
from tests_support import TINY_JUDGMENTS

from shopsearch.cli import main
from shopsearch.errors import InvalidQueryError
from shopsearch.models.cross_encoder import load_run_reranker
from shopsearch.models.encoders import product_text
from shopsearch.models.scoring import standardize
from shopsearch.pipeline import BACKENDS_FILE, SearchPipeline


@pytest.fixture(scope="module")
def reranker_run(tmp_path_factory):
    return save_planted_run(tmp_path_factory.mktemp("run"))


@pytest.fixture(scope="module")
def reranked(tmp_path_factory, tiny_index_dir, reranker_run, encoder):
    path = tmp_path_factory.mktemp("reranked") / "index"
    shutil.copytree(tiny_index_dir, path)
    assert (
        main(
            [
                "refresh",
                str(path),
                "--reranker",
                str(reranker_run),
                "--set",
                "reranker.k=8",
                "--set",
                "reranker.backend=torch",
            ]
        )
        == 0
    )
    with SearchPipeline.open(path, encoder=encoder) as pipeline:
        yield pipeline


def test_refresh_enables_the_rerank_pipeline_as_default(reranked):
    assert reranked.pipelines == ("bm25", "dense", "hybrid", "rrf", "rerank")
    assert reranked.default_pipeline == "rerank"
    assert len(reranked) == 50


def test_rerank_reorders_the_hybrid_head_by_cross_encoder_score(reranked, reranker_run):
    hybrid = reranked.search("ugg slippers women", k=8, pipeline="hybrid")
    result = reranked.search("ugg slippers women", k=10)
    assert result.pipeline == "rerank" and len(result.hits) == 10
    head, tail = result.hits[:8], result.hits[8:]
    assert {h.product_id for h in head} == {h.product_id for h in hybrid.hits}
    assert [h.score for h in head] == sorted((h.score for h in head), reverse=True)
    model, fields = load_run_reranker(reranker_run)
    expected = model.rank_scores(
        "ugg slippers women", [product_text(h.product, fields) for h in head]
    )
    np.testing.assert_allclose([h.scores["rerank"] for h in head], expected, rtol=1e-5)
    assert all({"bm25", "dense", "fused", "rerank"} <= set(h.scores) for h in head)
    first_stage = {h.product_id: h.score for h in hybrid.hits}
    weight = reranked.config.reranker.first_stage_weight
    assert weight == 0.3  # the default
    final = expected + weight * standardize([first_stage[h.product_id] for h in head])
    np.testing.assert_allclose([h.score for h in head], final, rtol=1e-5, atol=1e-6)
    assert all("rerank" not in h.scores for h in tail)  # beyond reranker.k: first-stage order


def test_rank_and_eval_accept_the_rerank_pipeline(reranked, capsys):
    ids = [h.product_id for h in reranked.search("tool wrap", k=6, pipeline="bm25").hits]
    ranked = reranked.rank("tool wrap", ids, pipeline="rerank")
    assert sorted(h.product_id for h in ranked) == sorted(ids)
    assert (
        main(
            [
                "eval",
                str(reranked.directory.path),
                "--judgments",
                str(TINY_JUDGMENTS),
                "--protocol",
                "rerank",
                "--json",
            ]
        )
        == 0
    )
    assert '"pipeline": "rerank"' in capsys.readouterr().out


def test_the_onnx_int8_backend_agrees_with_pytorch(reranked, reranker_run, encoder, tmp_path):
    """The default backend: exported once into RUN_DIR/onnx-int8 when the index is refreshed,
    its backend and parity recorded in DIR/backends.json."""
    path = tmp_path / "index"
    shutil.copytree(reranked.directory.path, path)
    assert main(["refresh", str(path), "--set", "reranker.backend=onnx-int8"]) == 0
    assert (reranker_run / "onnx-int8" / "export.json").is_file()
    recorded = json.loads((path / BACKENDS_FILE).read_text())
    assert recorded["reranker"]["requested"] == "onnx-int8"
    assert recorded["reranker"]["parity"][0]["backend"] == "onnx-int8"
    with SearchPipeline.open(path, encoder=encoder) as onnx:
        a = onnx.search("ugg slippers women", k=8)
        b = reranked.search("ugg slippers women", k=8)
        assert onnx.reranker_choice.backend == recorded["reranker"]["backend"]
    by_id = {h.product_id: h.scores["rerank"] for h in b.hits}
    pairs = [(h.scores["rerank"], by_id[h.product_id]) for h in a.hits if h.product_id in by_id]
    assert len(pairs) >= 6
    assert np.corrcoef(np.asarray(pairs).T)[0, 1] > 0.95


def test_refresh_succeeds_with_a_warning_and_fp32_when_int8_parity_fails(reranked, tmp_path):
    """The user command never fails because of the CPU: forced to fail int8 parity (a
    threshold of 1.0), `shopsearch refresh` warns, uses fp32 ONNX, and records why."""
    path = tmp_path / "index"
    shutil.copytree(reranked.directory.path, path)
    command = [sys.executable, "-m", "shopsearch", "refresh", str(path)]
    overrides = ["--set", "reranker.backend=onnx-int8", "--set", "reranker.int8_min_pearson=1.0"]
    done = subprocess.run([*command, *overrides], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "shopsearch: warning: reranker" in done.stderr
    assert "using the onnx-fp32 backend instead of onnx-int8" in done.stderr
    assert "Reranker backend: onnx-fp32" in done.stdout
    recorded = json.loads((path / BACKENDS_FILE).read_text())["reranker"]
    assert recorded["backend"] == "onnx-fp32" and "< 1.0" in recorded["reason"]
    assert [p["passed"] for p in recorded["parity"]] == [False, True]
    info = subprocess.run(
        [sys.executable, "-m", "shopsearch", "info", str(path), "--json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert info.returncode == 0, info.stderr
    assert json.loads(info.stdout)["backends_recorded"]["reranker"]["backend"] == "onnx-fp32"


def test_dense_scores_are_the_dense_components_of_rank(reranked):
    ids = [h.product_id for h in reranked.search("ugg slippers women", k=6).hits]
    dense = reranked.dense_scores("ugg slippers women", ids)
    by_rank = {
        h.product_id: h.scores["dense"]
        for h in reranked.rank("ugg slippers women", ids, pipeline="dense")
    }
    np.testing.assert_allclose(dense, [by_rank[i] for i in ids], rtol=1e-5)
    with pytest.raises(InvalidQueryError, match="not indexed"):
        reranked.dense_scores("ugg", ["no-such-product"])


def test_a_reranker_with_a_prior_adds_the_weighted_dense_z_scores(
    tmp_path, reranked, reranker_run, encoder
):
    run = tmp_path / "run"
    shutil.copytree(reranker_run, run)
    config = json.loads((run / "best" / "reranker.json").read_text())
    (run / "best" / "reranker.json").write_text(json.dumps({**config, "prior_weight": 0.5}))
    path = tmp_path / "index"
    shutil.copytree(reranked.directory.path, path)
    refresh = ["refresh", str(path), "--reranker", str(run), "--set", "reranker.backend=torch"]
    assert main(refresh) == 0
    query = "ugg slippers women"
    with SearchPipeline.open(path, encoder=encoder) as pipeline:
        head = pipeline.search(query, k=8).hits
        ids = [h.product_id for h in head]
        model, fields = load_run_reranker(run)
        plain = model.rank_scores(query, [product_text(h.product, fields) for h in head])
        dense = pipeline.dense_scores(query, ids)
    expected = plain + 0.5 * standardize(dense)
    np.testing.assert_allclose([h.scores["rerank"] for h in head], expected, rtol=1e-4, atol=1e-5)


def test_eval_holdout_measures_only_the_runs_test_queries(reranked, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "split.json").write_text(
        json.dumps({"train": [], "validation": ["ugg slippers women"], "test": ["tool wrap"]})
    )
    index = str(reranked.directory.path)
    args = ["eval", index, "--judgments", str(TINY_JUDGMENTS), "--pipeline", "bm25", "--json"]
    assert main([*args, "--holdout", str(run)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [q["query"] for q in report["per_query"]["bm25"]] == ["tool wrap"]
    assert main([*args, "--holdout", str(run), "--holdout-part", "validation"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [q["query"] for q in report["per_query"]["bm25"]] == ["ugg slippers women"]
    assert report["holdout_part"] == "validation"
    (run / "split.json").write_text(json.dumps({"test": ["never judged"]}))
    assert main([*args, "--holdout", str(run)]) == 1
    assert "none of its test queries" in capsys.readouterr().err
