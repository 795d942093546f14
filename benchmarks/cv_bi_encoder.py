"""K-fold cross-validation (by query) of bi-encoder fine-tuning: dense-only retrieval.

Each fold fine-tunes MiniLM (``configs/bi_encoder_esci.toml``: MultipleNegativesRankingLoss,
E products as positives, same-query hard negatives) on the other folds' queries, then
embeds every catalog product with the fine-tuned and with the zero-shot model and scores
the fold's test queries with exact cosine search: retrieve-protocol nDCG@10, MRR@10 and
recall@100 (unjudged products gain 0), as ``shopsearch eval --protocol retrieve
--pipeline dense`` does with an exact index.

Hard negatives come from the cached hybrid top 50 of ``benchmarks/cv_cross_encoder.py
--prepare-only`` (``--inputs``), so no index is needed here.

    python benchmarks/cv_bi_encoder.py --workers 5     # GPU: ~2 min; CPU: ~1 h
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from cv_cross_encoder import DEFAULT_INPUTS, load_inputs  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
CONFIG = ROOT / "configs" / "bi_encoder_esci.toml"


def retrieval_metrics(model: Any, products: list[Any], judgments: list[Any], queries: list[str]):
    """nDCG@10, MRR@10, recall@100 of exact cosine search over the whole catalog."""
    import numpy as np

    from shopsearch.evaluation.metrics import ndcg
    from shopsearch.models.encoders import product_text

    vectors = model.encode(
        [product_text(p, ("title",)) for p in products],
        batch_size=256,
        normalize_embeddings=True,
        convert_to_numpy=True,
    )
    ids = [p.id for p in products]
    qrels: dict[str, dict[str, float]] = {}
    for j in judgments:
        qrels.setdefault(j.query, {})[j.product_id] = j.gain
    q_vectors = model.encode(queries, normalize_embeddings=True, convert_to_numpy=True)
    out: dict[str, list[float]] = {"ndcg@10": [], "mrr@10": [], "recall@100": []}
    for query, vector in zip(queries, q_vectors, strict=True):
        top = np.argsort(-(vectors @ vector), kind="stable")[:100]
        ranking = [ids[i] for i in top]
        judged = qrels[query]
        out["ndcg@10"].append(ndcg(ranking, judged, 10))
        first = next((r for r, p in enumerate(ranking[:10], 1) if judged.get(p, 0) > 0), None)
        out["mrr@10"].append(1.0 / first if first else 0.0)
        relevant = {p for p, g in judged.items() if g > 0}
        found = len(relevant & set(ranking))
        out["recall@100"].append(found / len(relevant) if relevant else 0.0)
    return {k: float(np.mean(v)) for k, v in out.items()}


def run_fold(job: dict[str, Any]) -> dict[str, Any]:
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(max(1, job["threads"]))
    from shopsearch.training.bi_encoder import train_bi_encoder
    from shopsearch.training.config import TrainConfig
    from shopsearch.training.data import load_sources, prepare
    from shopsearch.training.trainer import base_model_dir

    inputs = load_inputs(Path(job["inputs"]))
    overrides = {
        "data.folds": str(job["folds"]),
        "data.fold": str(job["fold"]),
        "train.epochs": str(job["epochs"]),
        **dict(o.split("=", 1) for o in job["overrides"]),
    }
    if job["base_model"]:
        overrides["base_model"] = job["base_model"]
    config = TrainConfig.load(CONFIG).with_overrides(overrides)
    products, judgments = load_sources(config.data)
    data = prepare(
        config,
        products=products,
        judgments=judgments,
        search=lambda q, k: inputs[q]["retrieved"][:k],
    )
    test = list(data.split.test)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    zero_shot = SentenceTransformer(str(base_model_dir(config.base_model)), device=device)
    before = retrieval_metrics(zero_shot, products, judgments, test)
    with tempfile.TemporaryDirectory() as tmp:
        result = train_bi_encoder(config, data, Path(tmp) / "run")
        tuned = SentenceTransformer(str(result.best_dir), device=device)
        after = retrieval_metrics(tuned, products, judgments, test)
    return {
        "fold": job["fold"],
        "zero_shot": before,
        "fine_tuned": after,
        "val_ndcg": result.best_metric,
        "best_step": result.best_step,
        "seconds": result.seconds,
        "trainable_params": result.trainable_params,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=Path, default=DEFAULT_INPUTS)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--set", nargs="*", default=[], help="config overrides key=value")
    parser.add_argument("--only-folds", type=int, nargs="*", help="run these folds only")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--base-model", default="")
    parser.add_argument("--out", type=Path, default=RESULTS / "cv_bi_encoder.json")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    threads = max(1, (os.cpu_count() or 2) // max(1, args.workers))
    jobs = [
        {
            "fold": fold,
            "folds": args.folds,
            "epochs": args.epochs,
            "overrides": args.set,
            "base_model": args.base_model,
            "inputs": str(args.inputs),
            "threads": threads,
        }
        for fold in (args.only_folds or range(args.folds))
    ]
    if args.workers > 1:
        with mp.get_context("spawn").Pool(args.workers) as pool:
            rows = list(pool.imap_unordered(run_fold, jobs))
    else:
        rows = [run_fold(job) for job in jobs]
    rows.sort(key=lambda r: r["fold"])
    summary: dict[str, Any] = {}
    for model in ("zero_shot", "fine_tuned"):
        for metric in ("ndcg@10", "mrr@10", "recall@100"):
            values = [r[model][metric] for r in rows]
            summary[f"{model} {metric}"] = {
                "mean": statistics.fmean(values),
                "std": statistics.pstdev(values),
                "per_fold": values,
            }
    for key, value in summary.items():
        print(f"{key:26} {value['mean']:.4f} ± {value['std']:.4f}  {value['per_fold']}")
    payload = {
        "folds": args.folds,
        "epochs": args.epochs,
        "overrides": args.set,
        "summary": summary,
        "runs": rows,
        "seconds": time.perf_counter() - started,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {args.out} in {payload['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
