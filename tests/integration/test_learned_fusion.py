"""Learned fusion: the features every candidate gets, a trained model ranking the hybrid
pipeline, the validation gate that installs it only when it wins, and removing it."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from tests_support import TINY_JUDGMENTS

from shopsearch.cli import main
from shopsearch.context.ltr import load_lightgbm
from shopsearch.errors import ModelLoadError
from shopsearch.evaluation.judgments import load_judgments
from shopsearch.pipeline import SearchPipeline
from shopsearch.search.fusion_features import FUSION_FEATURES, fusion_features
from shopsearch.search.fusion_model import FUSION_DIR, FusionModel
from shopsearch.training.fusion import collect, fusion_grade

COLUMN = {name: i for i, name in enumerate(FUSION_FEATURES)}


@pytest.fixture
def index(tmp_path, tiny_index_dir):
    path = tmp_path / "index"
    shutil.copytree(tiny_index_dir, path)
    return path


def test_every_candidate_gets_comparable_features(tiny_index_dir, encoder):
    with SearchPipeline.open(tiny_index_dir, encoder=encoder) as search:
        state, ids, components = search.fusion_inputs("ugg slippers women")
        rows = [state.snapshot.id_to_row[i] for i in ids]
        x = fusion_features(state, rows, components, search.documents)
        titles = {i: p.title for i, p in search.documents(ids).items()}
    assert x.shape == (len(ids), len(FUSION_FEATURES)) and len(ids) == len(set(ids)) > 10
    bm25 = x[:, COLUMN["bm25"]]
    assert x[:, COLUMN["bm25_rel"]].max() == pytest.approx(1.0)
    assert np.all((x[:, COLUMN["bm25_rr"]] > 0) == (bm25 > 0))  # no match, no rank
    assert x[:, COLUMN["dense_gap"]].max() == pytest.approx(0.0)
    assert np.all((0 < x[:, COLUMN["dense_rr"]]) & (x[:, COLUMN["dense_rr"]] <= 1))
    for name in ("coverage", "idf_coverage", "title_share"):
        assert np.all((0 <= x[:, COLUMN[name]]) & (x[:, COLUMN[name]] <= 1 + 1e-6)), name
    assert np.all((x[:, COLUMN["coverage"]] > 0) == (bm25 > 0))  # a word in common, a score
    assert (x[:, COLUMN["title_terms"]] > 0).all()  # every tiny product has a title
    assert np.isnan(x[:, COLUMN["mdense"]]).all()  # no multilingual retriever here
    for name in ("trigram_jaccard", "trigram_containment", "bigram_match"):
        assert np.all((0 <= x[:, COLUMN[name]]) & (x[:, COLUMN[name]] <= 1)), name
    assert np.isnan(x[:, COLUMN["number_match"]]).all()  # no number in the query
    best = ids[int(np.argmax(x[:, COLUMN["trigram_containment"]]))]
    assert "ugg" in titles[best].casefold()
    assert set(x[:, COLUMN["query_terms"]]) == {3.0}


def _planted_model(search: SearchPipeline) -> FusionModel:
    """A real LightGBM model trained on the tiny judgments (all 5 queries)."""
    judgments = load_judgments(TINY_JUDGMENTS)
    queries = list(dict.fromkeys(j.query for j in judgments))
    x, y, groups = collect(search, judgments, queries).stacked(useful_only=True)
    lgb = load_lightgbm()
    params = {"objective": "lambdarank", "min_data_in_leaf": 5, "verbosity": -1, "seed": 1}
    data = lgb.Dataset(x, label=y, group=groups, feature_name=list(FUSION_FEATURES))
    return FusionModel(lgb.train(params, data, num_boost_round=20))


def test_an_installed_model_ranks_the_hybrid_pipeline_and_removing_it_restores_rrf(index, encoder):
    with SearchPipeline.open(index, encoder=encoder) as search:
        before = [h.product_id for h in search.search("tool wrap", 10, pipeline="hybrid").hits]
        model = _planted_model(search)
        model.save(index / FUSION_DIR)
    with SearchPipeline.open(index, encoder=encoder) as search:
        assert "-> learned ->" in search.describe_pipelines()["hybrid"]["stages"]
        result = search.search("tool wrap", 10, pipeline="hybrid")
        state, ids, components = search.fusion_inputs("tool wrap")
        rows = [state.snapshot.id_to_row[i] for i in ids]
        scores = model.predict(fusion_features(state, rows, components, search.documents))
        expected = [ids[i] for i in sorted(range(len(ids)), key=lambda i: (-scores[i], rows[i]))]
        assert [h.product_id for h in result.hits] == expected[:10]
        assert [h.score for h in result.hits] == pytest.approx(sorted(scores, reverse=True)[:10])
        rrf = [h.product_id for h in search.search("tool wrap", 10, pipeline="rrf").hits]
        assert rrf == before  # the rrf pipeline stays equal-weight RRF
    assert main(["fusion", "remove", str(index)]) == 0
    with SearchPipeline.open(index, encoder=encoder) as search:
        assert [h.product_id for h in search.search("tool wrap", 10).hits] == before


def test_training_installs_only_a_model_that_beats_rrf_and_each_retriever(index, capsys):
    assert main(["fusion", "train", str(index), "--judgments", str(TINY_JUDGMENTS), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    validation = report["validation_ndcg@10"]
    assert {"learned", "rrf", "bm25", "dense"} <= set(validation)
    rivals = max(v for k, v in validation.items() if k != "learned")
    if report["installed"]:  # only a clear win installs (a paired t over the best rival)
        assert validation["learned"] > rivals and "paired t" in report["reason"]
    else:  # one validation query can never be a clear win
        assert "not a clear win" in report["reason"]
    assert (index / FUSION_DIR / "model.txt").is_file() == report["installed"]
    assert report["counts"]["validation_queries"] >= 1 and report["counts"]["train_queries"] >= 1


def test_a_model_over_other_features_is_refused_with_a_clear_error(tmp_path):
    lgb = load_lightgbm()
    x = np.random.default_rng(0).random((40, 2))
    data = lgb.Dataset(x, label=(x[:, 0] > 0.5).astype(int), feature_name=["a", "b"])
    booster = lgb.train({"objective": "binary", "verbosity": -1}, data, num_boost_round=2)
    booster.save_model(str(tmp_path / "model.txt"))
    with pytest.raises(ModelLoadError, match="retrain it"):
        FusionModel.load(tmp_path)


def test_the_gate_needs_a_clear_paired_win():
    from shopsearch.training.fusion import MIN_PAIRED_T, paired_t

    rng = np.random.default_rng(0)
    base = rng.random(400)
    assert paired_t(base + 0.05 + rng.normal(0, 0.1, 400), base) > MIN_PAIRED_T
    assert paired_t(base + rng.normal(0, 0.1, 400), base) < MIN_PAIRED_T  # noise
    assert paired_t(base, base) == 0.0


def test_grades_follow_esci_letters_and_numeric_gains():
    judgments = load_judgments(TINY_JUDGMENTS)
    assert {fusion_grade(j) for j in judgments if j.label == "E"} == {3}
    from shopsearch.evaluation.judgments import Judgment

    assert [fusion_grade(Judgment("q", "p", g, None)) for g in (0.0, 1.0, 2.0)] == [0, 3, 6]
