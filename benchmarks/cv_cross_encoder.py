"""K-fold cross-validation (by query) of cross-encoder recipes on the ESCI-US judgments.

For each fold the test part is one fold of the queries, validation is carved from the rest
(early stopping and the choice of ``prior_weight``), and every recipe is trained from the
same pretrained MiniLM with the same seed. Reported per recipe: rerank-protocol nDCG on the
test queries (mean and std over folds), ESCI micro-F1, category and query-category accuracy,
trainable parameters and wall time; baselines (random, BM25, zero-shot MiniLM dense) are
scored on the same test queries.

The retrieval inputs (each query's hybrid top 50 for hard negatives, and the BM25 and dense
scores of its judged and retrieved products) come from an index and are cached in
``--inputs``, so that the runs need no index (and can run where only torch is installed):

    python benchmarks/cv_cross_encoder.py --index indexes/esci-us --prepare-only
    python benchmarks/cv_cross_encoder.py --workers 4          # GPU: ~4 min; CPU: hours

Writes ``benchmarks/results/cv_cross_encoder.json`` and prints the table.
"""

from __future__ import annotations

import argparse
import gzip
import json
import multiprocessing as mp
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

RESULTS = ROOT / "benchmarks" / "results"
DEFAULT_INPUTS = RESULTS / "cv_inputs.json.gz"
CONFIG = ROOT / "configs" / "cross_encoder_esci.toml"

#: The ready config's recipe; the ablations change one thing each.
RECIPES: dict[str, list[str]] = {
    "recipe (multi-task, prior, rank loss)": [],
    "relevance only (alpha=0)": ["model.alpha=0.0", "data.category_products=0"],
    "category only (alpha=1)": ["model.alpha=1.0"],
    "LoRA r=8 (query, value)": ["lora.enabled=true", "optim.lr=5e-4"],
    "freeze bottom 4 of 6 layers": ["train.freeze=bottom:4"],
    "plain classifier (no prior, no rank loss)": [
        "model.prior_weight=0.0",
        "model.rank_loss_weight=0.0",
    ],
    "no rank loss": ["model.rank_loss_weight=0.0"],
    "no prior": ["model.prior_weight=0.0"],
}
#: prior_weight values tried for the recipe; the best mean validation nDCG is kept.
PRIOR_WEIGHTS = (0.1, 0.3, 1.0)


# --------------------------------------------------------------------------- inputs


def prepare_inputs(index_dir: Path, out: Path) -> None:
    """Cache per query: hybrid top 50 ids and the BM25 / dense scores of judged + retrieved."""
    from shopsearch.pipeline import SearchPipeline
    from shopsearch.training.config import TrainConfig
    from shopsearch.training.data import load_sources

    config = TrainConfig.load(CONFIG)
    _, judgments = load_sources(config.data)
    judged: dict[str, list[str]] = {}
    for j in judgments:
        judged.setdefault(j.query, []).append(j.product_id)
    cache: dict[str, Any] = {}
    with SearchPipeline.open(index_dir) as pipeline:
        for query, ids in judged.items():
            hits = pipeline.search(query, 50, pipeline="hybrid", facets=False, products=False)
            retrieved = [h.product_id for h in hits.hits]
            everything = list(dict.fromkeys(ids + retrieved))
            ranked = {h.product_id: h for h in pipeline.rank(query, everything, pipeline="hybrid")}
            cache[query] = {
                "retrieved": retrieved,
                "bm25": {p: ranked[p].scores.get("bm25", 0.0) for p in everything},
                "dense": dict(
                    zip(everything, pipeline.dense_scores(query, everything).tolist(), strict=True)
                ),
            }
    out.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(out, "wt", encoding="utf-8") as fh:
        json.dump({"index": str(index_dir), "queries": cache}, fh)
    print(f"cached retrieval inputs of {len(cache)} queries in {out}")


def load_inputs(path: Path) -> dict[str, Any]:
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        return json.load(fh)["queries"]


# --------------------------------------------------------------------------- one run


def run_one(job: dict[str, Any]) -> dict[str, Any]:
    """Train one recipe on one fold; measure it on the fold's test queries."""
    import torch

    torch.set_num_threads(max(1, job["threads"]))
    from shopsearch.training.config import TrainConfig
    from shopsearch.training.data import load_sources, prepare
    from shopsearch.training.reports import evaluate_reranker
    from shopsearch.training.trainer import train_cross_encoder

    inputs = load_inputs(Path(job["inputs"]))
    overrides = [
        f"data.folds={job['folds']}",
        f"data.fold={job['fold']}",
        f"train.epochs={job['epochs']}",
        f"train.device={job['device']}",
        *job["overrides"],
    ]
    if job["base_model"]:
        overrides.append(f"base_model={job['base_model']}")
    if job["max_steps"]:
        overrides.append(f"train.max_steps={job['max_steps']}")
    config = TrainConfig.load(CONFIG).with_overrides(dict(o.split("=", 1) for o in overrides))
    products, judgments = load_sources(config.data)

    def search(query: str, k: int) -> list[str]:
        return inputs[query]["retrieved"][:k]

    def prior(query: str, ids: list[str]) -> list[float]:
        return [inputs[query]["dense"][p] for p in ids]

    data = prepare(
        config,
        products=products,
        judgments=judgments,
        search=search,
        prior=prior if config.model.prior_weight > 0 else None,
    )
    test_ids = {e.product_id for e in data.test}
    from shopsearch.models.encoders import product_text

    fields = tuple(f for f in config.data.product_fields if f != "category") or ("title",)
    by_id = {p.id: p for p in products if p.id in test_ids and p.category}
    with tempfile.TemporaryDirectory() as tmp:
        result = train_cross_encoder(config, data, Path(tmp) / "run")
        evaluation = evaluate_reranker(
            result.reranker,
            data.test,
            name=job["recipe"],
            query_categories={
                q: c for q, c in data.query_categories.items() if q in set(data.split.test)
            },
            product_categories={pid: data.vocab.encode(p.category) for pid, p in by_id.items()},
            product_texts_for_category={pid: product_text(p, fields) for pid, p in by_id.items()},
        )
    return {
        "recipe": job["recipe"],
        "fold": job["fold"],
        "overrides": job["overrides"],
        "val_ndcg": result.best_metric,
        "best_step": result.best_step,
        "steps": result.history.get("steps", [])[-1]["step"] if result.history.get("steps") else 0,
        "test_ndcg": evaluation.rerank_ndcg,
        "esci_micro_f1": evaluation.esci_micro_f1,
        "category_accuracy": evaluation.category_accuracy,
        "query_category_accuracy": evaluation.query_category_accuracy,
        "trainable_params": result.trainable_params,
        "total_params": result.total_params,
        "seconds": result.seconds,
        "device": result.history.get("device"),
    }


# --------------------------------------------------------------------------- baselines


def baselines(inputs: dict[str, Any], folds: int, seed: int) -> list[dict[str, Any]]:
    """Random, BM25 and zero-shot dense rerank nDCG on each fold's test queries."""
    from shopsearch.evaluation.metrics import ndcg
    from shopsearch.training.config import TrainConfig
    from shopsearch.training.data import kfold_by_query, load_sources

    config = TrainConfig.load(CONFIG)
    _, judgments = load_sources(config.data)
    qrels: dict[str, dict[str, float]] = {}
    for j in judgments:
        qrels.setdefault(j.query, {})[j.product_id] = j.gain
    rows = []
    rng = random.Random(seed)
    for fold in range(folds):
        split = kfold_by_query(
            list(qrels),
            folds=folds,
            fold=fold,
            validation_fraction=config.data.validation_fraction,
            seed=config.seed,
        )
        for name in ("random", "bm25", "dense"):
            values = []
            for query in split.test:
                ids = list(qrels[query])
                if name == "random":
                    order = ids[:]
                    rng.shuffle(order)
                else:
                    scores = inputs[query][name]
                    order = sorted(ids, key=lambda p: -scores[p])
                values.append(ndcg(order, qrels[query]))
            rows.append({"recipe": f"baseline: {name}", "fold": fold, "test_ndcg": mean(values)})
    return rows


# --------------------------------------------------------------------------- driver


def mean(values: list[float]) -> float:
    return float(sum(values) / len(values)) if values else float("nan")


def summarize(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by_recipe: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_recipe.setdefault(row["recipe"], []).append(row)
    table = []
    for recipe, runs in by_recipe.items():
        entry: dict[str, Any] = {"recipe": recipe, "folds": len(runs)}
        for key in (
            "test_ndcg",
            "val_ndcg",
            "esci_micro_f1",
            "category_accuracy",
            "query_category_accuracy",
            "seconds",
        ):
            values = [float(r[key]) for r in runs if r.get(key) is not None]
            if values:
                entry[key] = mean(values)
                entry[f"{key}_std"] = statistics.pstdev(values) if len(values) > 1 else 0.0
        if runs[0].get("trainable_params") is not None:
            entry["trainable_params"] = runs[0]["trainable_params"]
            entry["total_params"] = runs[0]["total_params"]
        table.append(entry)
    return table


def print_table(table: list[dict[str, Any]]) -> None:
    header = (
        f"{'recipe':46} {'test nDCG':>16} {'val nDCG':>8} {'ESCI F1':>7} "
        f"{'cat acc':>7} {'q-cat':>6} {'trainable':>11} {'s/run':>6}"
    )
    print(header)
    print("-" * len(header))
    for e in table:
        ndcg_text = f"{e['test_ndcg']:.4f} ± {e['test_ndcg_std']:.4f}"

        def fmt(key: str, spec: str = ".3f", e: dict[str, Any] = e) -> str:
            return format(e[key], spec) if key in e else "-"

        trainable = f"{e['trainable_params']:,}" if "trainable_params" in e else "-"
        print(
            f"{e['recipe'][:46]:46} {ndcg_text:>16} {fmt('val_ndcg', '.4f'):>8} "
            f"{fmt('esci_micro_f1'):>7} {fmt('category_accuracy'):>7} "
            f"{fmt('query_category_accuracy'):>6} {trainable:>11} {fmt('seconds', '.0f'):>6}"
        )


def plot_table(table: list[dict[str, Any]], out: Path) -> None:
    """Horizontal bars: mean test nDCG per recipe with its std over folds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [e for e in table if not e["recipe"].startswith("recipe, prior_weight")]
    names = [e["recipe"] for e in rows]
    means = [e["test_ndcg"] for e in rows]
    stds = [e.get("test_ndcg_std", 0.0) for e in rows]
    colors = ["#999999" if n.startswith("baseline") else "#3b7dd8" for n in names]
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(rows) + 1.2))
    ax.barh(range(len(rows)), means, xerr=stds, color=colors, capsize=3)
    ax.set_yticks(range(len(rows)), names, fontsize=8)
    ax.invert_yaxis()
    best = max(e["test_ndcg"] for e in rows if e["recipe"] in ("baseline: bm25", "baseline: dense"))
    ax.axvline(best, color="black", linestyle=":", linewidth=1, label="best zero-shot baseline")
    ax.axvline(best + 0.02, color="red", linestyle="--", linewidth=1, label="target (+0.02)")
    ax.set_xlim(min(means) - 0.05, max(max(means), best + 0.02) + 0.02)
    ax.set_xlabel("rerank-protocol nDCG on held-out queries (mean ± std over folds)")
    ax.legend(loc="upper right", fontsize=8)
    ax.set_title("Cross-encoder recipes, k-fold CV by query (ESCI-US, 100 queries)", fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def run_jobs(jobs: list[dict[str, Any]], workers: int, log: Path) -> list[dict[str, Any]]:
    """Run the jobs (``workers`` at a time); each result is also appended to ``log``."""
    out: list[dict[str, Any]] = []

    def done(row: dict[str, Any]) -> None:
        out.append(row)
        print(_progress_line(row), flush=True)
        with log.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(row) + "\n")

    if workers <= 1:
        for job in jobs:
            done(run_one(job))
        return out
    with mp.get_context("spawn").Pool(workers) as pool:
        for row in pool.imap_unordered(run_one, jobs):
            done(row)
    return out


def _progress_line(row: dict[str, Any]) -> str:
    return (
        f"  fold {row['fold']} {row['recipe'][:40]:40} val {row['val_ndcg']:.4f} "
        f"test {row['test_ndcg']:.4f} ({row['seconds']:.0f} s)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, help="index to cache retrieval inputs from")
    parser.add_argument("--inputs", type=Path, default=DEFAULT_INPUTS)
    parser.add_argument("--prepare-only", action="store_true")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--max-steps", type=int, default=0, help="smoke test: steps per run")
    parser.add_argument("--only-folds", type=int, nargs="*", help="run these folds only")
    parser.add_argument("--recipes", nargs="*", help="substrings of recipe names to run")
    parser.add_argument("--prior-weights", type=float, nargs="*", default=list(PRIOR_WEIGHTS))
    parser.add_argument("--workers", type=int, default=1, help="parallel runs")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--base-model", default="", help="default: the config's (MiniLM)")
    parser.add_argument("--out", type=Path, default=RESULTS / "cv_cross_encoder.json")
    parser.add_argument("--plot-only", action="store_true", help="redraw the PNG of --out")
    args = parser.parse_args(argv)
    if args.plot_only:
        plot_table(json.loads(args.out.read_text())["table"], args.out.with_suffix(".png"))
        return 0

    if args.index is not None and (args.prepare_only or not args.inputs.is_file()):
        prepare_inputs(args.index, args.inputs)
    if args.prepare_only:
        return 0
    if not args.inputs.is_file():
        parser.error(f"{args.inputs} does not exist: pass --index DIR to create it")
    inputs = load_inputs(args.inputs)
    folds = args.only_folds if args.only_folds else list(range(args.folds))
    threads = max(1, (os.cpu_count() or 2) // max(1, args.workers))
    started = time.perf_counter()
    log = args.out.with_suffix(".runs.jsonl")
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("")

    def jobs_for(recipe: str, overrides: list[str]) -> list[dict[str, Any]]:
        return [
            {
                "recipe": recipe,
                "overrides": overrides,
                "fold": fold,
                "folds": args.folds,
                "epochs": args.epochs,
                "max_steps": args.max_steps,
                "device": args.device,
                "base_model": args.base_model,
                "inputs": str(args.inputs),
                "threads": threads,
            }
            for fold in folds
        ]

    def wanted(name: str) -> bool:
        return not args.recipes or any(s in name for s in args.recipes)

    # Phase 1: the recipe's prior weight, chosen on validation queries only.
    print(f"phase 1: prior_weight in {args.prior_weights}, {len(folds)} folds")
    phase1 = run_jobs(
        [
            job
            for w in args.prior_weights
            for job in jobs_for(f"recipe, prior_weight={w}", [f"model.prior_weight={w}"])
        ],
        args.workers,
        log,
    )
    val = {
        w: mean([r["val_ndcg"] for r in phase1 if r["recipe"] == f"recipe, prior_weight={w}"])
        for w in args.prior_weights
    }
    best_w = max(val, key=lambda w: val[w])
    print(f"validation nDCG by prior_weight: {val}; chosen {best_w}")

    # Phase 2: ablations at the chosen weight.
    jobs = []
    for name, overrides in RECIPES.items():
        if name.startswith("recipe") or not wanted(name):
            continue
        extra = (
            []
            if any(o.startswith("model.prior_weight") for o in overrides)
            else [f"model.prior_weight={best_w}"]
        )
        jobs.extend(jobs_for(name, extra + overrides))
    phase2 = run_jobs(jobs, args.workers, log)
    recipe_rows = [
        {**r, "recipe": f"recipe (multi-task, prior {best_w}, rank loss)"}
        for r in phase1
        if r["recipe"] == f"recipe, prior_weight={best_w}"
    ]
    rows = baselines(inputs, args.folds, seed=13)
    rows = [r for r in rows if r["fold"] in folds] + recipe_rows + phase2 + phase1
    table = summarize(rows)
    print_table(table)
    payload = {
        "folds": args.folds,
        "run_folds": folds,
        "epochs": args.epochs,
        "max_steps": args.max_steps,
        "prior_weight_validation": val,
        "chosen_prior_weight": best_w,
        "table": table,
        "runs": rows,
        "seconds": time.perf_counter() - started,
        "workers": args.workers,
        "device": args.device,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=2) + "\n")
    plot_table(table, args.out.with_suffix(".png"))
    print(f"wrote {args.out} in {payload['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
