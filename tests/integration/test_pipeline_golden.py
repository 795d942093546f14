"""Every built-in pipeline against a golden record of its rankings (slow tier).

The record (``tests/data/pipeline_golden.json.gz``) was made with the code from before the
pipelines became compositions of stages (``SHOPSEARCH_WRITE_GOLDEN=1 pytest -m slow
tests/integration/test_pipeline_golden.py`` rewrites it): for each of the 100 judged ESCI-US
queries, the top 10 of ``search`` (retrieve protocol) and of ``rank`` over the query's
judged products (rerank protocol), for bm25, dense, hybrid, rerank (the planted
cross-encoder of tests/reranker_support.py) and personal (trained on the tiny judgments'
SIMULATED and planted shoppers). On the machine that recorded it the rankings were
identical; the tolerances here hold on any CPU, whose int8 kernels move scores a little:
per pipeline and protocol nDCG@10 within 0.005 of the record, and per query at least 9 of
the recorded top 10 again in the top 10. The record predates query analysis (issue 12),
which is switched off here: this checks that the stages still compute what they did.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil

import numpy as np
import pytest
from reranker_support import save_planted_run
from tests_support import DATA, add_simulated_personalization

from shopsearch.cli import main
from shopsearch.datasets import esci_us_judgments
from shopsearch.evaluation.judgments import group_by_query, load_judgments
from shopsearch.evaluation.metrics import ndcg
from shopsearch.pipeline import SearchPipeline

pytestmark = pytest.mark.slow

GOLDEN = DATA / "pipeline_golden.json.gz"
PIPELINES = ("bm25", "dense", "hybrid", "rerank", "personal")
MAX_NDCG_CHANGE = 0.005
MIN_OVERLAP = 0.9


@pytest.fixture(scope="module")
def esci_all_pipelines(tmp_path_factory, esci_index_dir, encoder):
    work = tmp_path_factory.mktemp("golden")
    index = work / "index"
    shutil.copytree(esci_index_dir, index)
    run = save_planted_run(work / "run")
    # analysis off in the index itself: the personal stage is trained on its candidates
    refresh = ["refresh", str(index), "--reranker", str(run), "--set", "analysis.enabled=false"]
    assert main(refresh) == 0
    add_simulated_personalization(index, work)
    with SearchPipeline.open(index, encoder=encoder) as pipeline:
        assert set(PIPELINES) <= set(pipeline.pipelines)
        assert not pipeline.config.analysis.enabled  # the record predates query analysis
        yield pipeline


def record(pipeline: SearchPipeline) -> dict:
    qrels = group_by_query(load_judgments(esci_us_judgments()))
    out: dict = {}
    for name in PIPELINES:
        out[name] = {"retrieve": {}, "rerank": {}}
        for query, judged in qrels.items():
            hits = pipeline.search(query, 10, pipeline=name, facets=False, products=False).hits
            out[name]["retrieve"][query] = [h.product_id for h in hits]
            ranked = pipeline.rank(query, sorted(judged), pipeline=name)
            out[name]["rerank"][query] = [h.product_id for h in ranked[:10]]
    return out


def _ndcg10(rankings: dict[str, list[str]], qrels: dict) -> float:
    return float(np.mean([ndcg(ids, qrels[q], 10) for q, ids in rankings.items()]))


def test_every_built_in_pipeline_ranks_as_recorded(esci_all_pipelines):
    now = record(esci_all_pipelines)
    if os.environ.get("SHOPSEARCH_WRITE_GOLDEN"):
        with gzip.open(GOLDEN, "wt", encoding="utf-8") as f:
            json.dump(now, f, ensure_ascii=False, sort_keys=True)
        pytest.skip(f"wrote {GOLDEN}")
    with gzip.open(GOLDEN, "rt", encoding="utf-8") as f:
        golden = json.load(f)
    qrels = group_by_query(load_judgments(esci_us_judgments()))
    problems = []
    for name in PIPELINES:
        for protocol in ("retrieve", "rerank"):
            before, after = golden[name][protocol], now[name][protocol]
            assert set(before) == set(after) == set(qrels)
            change = _ndcg10(after, qrels) - _ndcg10(before, qrels)
            if abs(change) > MAX_NDCG_CHANGE:
                problems.append(f"{name} {protocol}: nDCG@10 moved by {change:+.4f}")
            for query, ids in before.items():
                if not ids:  # BM25 matches nothing for a few queries ("ecloth")
                    overlap = 1.0 if not after[query] else 0.0
                else:
                    overlap = len(set(ids) & set(after[query])) / len(ids)
                if overlap < MIN_OVERLAP:
                    problems.append(f"{name} {protocol} {query!r}: top-10 overlap {overlap:.1f}")
    assert not problems, "\n".join(problems[:30])


def test_the_record_is_complete():
    with gzip.open(GOLDEN, "rt", encoding="utf-8") as f:
        golden = json.load(f)
    assert set(golden) == set(PIPELINES)
    for name in PIPELINES:
        assert len(golden[name]["retrieve"]) == len(golden[name]["rerank"]) == 100
        lengths = [len(ids) for ids in golden[name]["retrieve"].values()]
        assert max(lengths) == 10 and sum(lengths) >= 950  # bm25 misses a few queries
