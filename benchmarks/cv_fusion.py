"""Learned fusion on the bundled ESCI judgments, 5-fold cross-validation by query, beside
RRF and each retriever: retrieve-protocol nDCG@10 (whole catalog, unjudged = 0) of the
fold's test queries, through the real pipeline (analysis, fusion, result rules).

Each fold trains on the other folds' queries (15% of them for early stopping and the
install gate) with ``train_fusion``; the test fold is never read in training. A fold whose
model fails the gate keeps RRF, as ``shopsearch fusion train`` would. ``--model DIR/fusion``
instead applies one model trained elsewhere (e.g. on Home Depot) to every query: no ESCI
judgment is used then.

    python benchmarks/cv_fusion.py --index indexes/esci-us [--model OTHER/fusion] [--folds 5]

Writes ``benchmarks/results/cv_fusion[-NAME].json``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from shopsearch.datasets import esci_us_judgments  # noqa: E402
from shopsearch.evaluation.judgments import load_judgments  # noqa: E402
from shopsearch.evaluation.protocols import compare  # noqa: E402
from shopsearch.pipeline import EvaluablePipelineAdapter, SearchPipeline  # noqa: E402
from shopsearch.search.fusion_model import FUSION_DIR, FusionModel  # noqa: E402
from shopsearch.training.data import kfold_by_query  # noqa: E402
from shopsearch.training.fusion import train_fusion  # noqa: E402

PIPELINES = ("bm25", "dense", "rrf", "hybrid")


def evaluate(index: Path, judgments: list, queries: set[str]) -> dict[str, float]:
    kept = [j for j in judgments if j.query in queries]
    with SearchPipeline.open(index) as search:
        results = compare(
            [EvaluablePipelineAdapter(search, name) for name in PIPELINES],
            kept,
            protocol="retrieve",
            catalog_ids=set(search.snapshot.id_to_row),
        )
    return {r.pipeline: r.summary()["ndcg@10"] for r in results if r.pipeline != "random"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--index", type=Path, default=ROOT / "indexes" / "esci-us")
    parser.add_argument("--judgments", type=Path, default=None)
    parser.add_argument("--model", type=Path, help="a trained DIR/fusion to apply instead")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--name", default="", help="suffix of the results file")
    args = parser.parse_args()
    judgments = load_judgments(args.judgments or esci_us_judgments())
    queries = list(dict.fromkeys(j.query for j in judgments))
    work = Path(tempfile.mkdtemp(prefix="cv-fusion-"))
    folds = []
    try:
        index = work / "index"
        shutil.copytree(args.index, index, ignore=shutil.ignore_patterns(FUSION_DIR))
        for fold in range(args.folds):
            split = kfold_by_query(
                queries, folds=args.folds, fold=fold, validation_fraction=0.15, seed=args.seed
            )
            shutil.rmtree(index / FUSION_DIR, ignore_errors=True)
            if args.model is not None:
                FusionModel.load(args.model).save(index / FUSION_DIR)
                report = None
            else:
                with SearchPipeline.open(index) as search:
                    report = train_fusion(search, judgments, split)
            scores = evaluate(index, judgments, set(split.test))
            folds.append(
                {
                    "fold": fold,
                    "test_queries": len(split.test),
                    "installed": True if report is None else report.installed,
                    "validation": None if report is None else report.validation,
                    "test_ndcg@10": scores,
                }
            )
            print(f"fold {fold}: {json.dumps(folds[-1]['test_ndcg@10'])}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    mean = {name: statistics.fmean(f["test_ndcg@10"][name] for f in folds) for name in PIPELINES}
    result = {
        "index": str(args.index),
        "model": str(args.model) if args.model else "trained per fold",
        "folds": folds,
        "mean_test_ndcg@10": mean,
        "note": "hybrid = learned fusion where installed (RRF otherwise); rrf = equal-weight RRF",
    }
    out = ROOT / "benchmarks" / "results" / f"cv_fusion{'-' + args.name if args.name else ''}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print("mean test nDCG@10: " + ", ".join(f"{k} {v:.4f}" for k, v in mean.items()))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
