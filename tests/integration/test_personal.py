"""The personalized pipeline end to end on the tiny catalog with SIMULATED shoppers:
simulate -> ingest events -> train the LTR stage -> search / explain / eval per user."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from tests_support import add_simulated_personalization

from shopsearch.cli import main
from shopsearch.context.features import FEATURE_GROUPS
from shopsearch.context.profiles import SimpleEvent
from shopsearch.errors import InvalidQueryError
from shopsearch.pipeline import SearchPipeline


@pytest.fixture(scope="module")
def personal(tmp_path_factory, tiny_index_dir, encoder):
    root = tmp_path_factory.mktemp("personal")
    index = root / "index"
    shutil.copytree(tiny_index_dir, index)
    users = add_simulated_personalization(index, root)
    sim = root / "sim"
    with SearchPipeline.open(index, encoder=encoder) as pipeline:
        yield pipeline, sim, users


def test_training_makes_personal_the_default(personal):
    pipeline, _, _ = personal
    assert "personal" in pipeline.pipelines and pipeline.default_pipeline == "personal"
    assert (pipeline.directory.path / "ltr" / "model.txt").is_file()


def test_explanations_sum_to_the_score(personal):
    pipeline, _, users = personal
    user = next(u["user_id"] for u in users if u["group"] == "test")
    result = pipeline.search("ugg slippers women", k=8, user=user, explain=True)
    assert result.pipeline == "personal" and len(result.hits) == 8
    scores = [h.score for h in result.hits]
    assert scores == sorted(scores, reverse=True)
    for hit in result.hits:
        parts = [hit.scores[f"ltr.{g}"] for g in (*FEATURE_GROUPS, "base")]
        assert sum(parts) == pytest.approx(hit.score, rel=1e-6, abs=1e-9)
        assert hit.scores["ltr"] == hit.score and "fused" in hit.scores


def test_a_users_history_changes_the_ranking_and_anonymous_search_still_works(personal):
    pipeline, _, users = personal
    anonymous = pipeline.search("ugg slippers women", k=10)
    unknown = pipeline.search("ugg slippers women", k=10, user="never-seen-user")
    assert [h.product_id for h in unknown.hits] == [h.product_id for h in anonymous.hits]
    changed = 0
    for u in users:
        if u["group"] != "test":
            continue
        hits = pipeline.search("ugg slippers women", k=10, user=u["user_id"]).hits
        changed += [h.product_id for h in hits] != [h.product_id for h in anonymous.hits]
    assert changed > 0


def test_inline_session_events_move_the_clicked_brand_up(personal):
    pipeline, _, _ = personal
    base = pipeline.search("ugg slippers women", k=10, explain=True).hits
    target = base[-1]
    clicks = [SimpleEvent("add_to_cart", target.product_id, timestamp=float(t)) for t in range(3)]
    hits = pipeline.search(
        "ugg slippers women", k=10, session="live-1", session_events=clicks, explain=True
    ).hits
    session_part = {h.product_id: h.scores["ltr.session"] for h in hits}
    assert any(v != 0 for v in session_part.values())


def test_eval_measures_per_user_judgments(personal, capsys):
    pipeline, sim, _ = personal
    judgments = sim / "holdout_judgments.jsonl"
    index = str(pipeline.directory.path)
    args = ["eval", index, "--judgments", str(judgments), "--pipeline", "hybrid,personal"]
    assert main([*args, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    users = {q["user_id"] for q in report["per_query"]["personal"]}
    assert len(users) > 1 and None not in users
    assert 0.0 < report["pipelines"]["personal"]["ndcg@10"] <= 1.0


def test_rank_under_the_personal_pipeline(personal):
    pipeline, _, _ = personal
    ids = [h.product_id for h in pipeline.search("tool wrap", k=6, pipeline="bm25").hits]
    ranked = pipeline.rank("tool wrap", ids, pipeline="personal", user="nobody")
    assert sorted(h.product_id for h in ranked) == sorted(ids)
    assert np.isfinite([h.score for h in ranked]).all()


def test_without_a_model_the_personal_pipeline_is_a_clear_error(tiny_index_dir, encoder):
    with SearchPipeline.open(tiny_index_dir, encoder=encoder) as pipeline:
        assert "personal" not in pipeline.pipelines
        with pytest.raises(InvalidQueryError, match="unknown pipeline 'personal'"):
            pipeline.search("mug", pipeline="personal")
