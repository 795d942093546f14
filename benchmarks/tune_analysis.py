"""Choose the query-analysis settings by cross-validation, and measure what they change.

    python benchmarks/tune_analysis.py [--index indexes/esci-us] [--pipeline hybrid]
        [--folds 5] [--out benchmarks/results/tune_analysis.json]

Retrieve protocol (the whole catalog, nDCG@10 against the bundled judgments). The settings
(``analysis.negation_words``, ``negation_demote``, ``lacks_boost``, ``audience_boost``) are
chosen on the training folds of a seeded K-fold split of the queries and scored on the
held-out fold, so every query's reported figure comes from settings chosen without it.
Baselines in the same run: random, BM25, and the pipeline with analysis disabled (the
query matched as typed). Groups: queries with a negation word ("without", "not", "no") and
the others.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import re
import statistics
from pathlib import Path

from rich.console import Console
from rich.table import Table

from shopsearch.datasets import esci_us_judgments
from shopsearch.evaluation.judgments import group_by_query, load_judgments
from shopsearch.evaluation.metrics import ndcg
from shopsearch.index.config import AnalysisConfig
from shopsearch.pipeline import SearchPipeline

NEGATION = re.compile(r"\b(without|not|no)\b", re.IGNORECASE)
CATEGORY_GRID = {
    "category_boost": [0.0, 0.05, 0.1, 0.2],
    "category_min_probability": [0.5, 0.7],
}
GRID = {
    "negation_words": [2, 3],
    "negation_demote": [0.0, 0.25, 0.5, 1.0],
    "lacks_boost": [0.0, 0.1, 0.25, 0.5],
    "audience_boost": [0.0, 0.05, 0.1],
}


def per_query(
    pipeline: SearchPipeline, name: str, qrels: dict[str, dict[str, float]], queries: list[str]
) -> dict[str, float]:
    out = {}
    for query in queries:
        result = pipeline.search(query, 10, pipeline=name, facets=False, products=False)
        out[query] = ndcg([h.product_id for h in result.hits], qrels[query], 10)
    return out


def random_ndcg(pipeline: SearchPipeline, qrels: dict[str, dict[str, float]]) -> float:
    rng = random.Random(13)
    ids = list(pipeline.snapshot.row_ids)
    return statistics.mean(ndcg(rng.sample(ids, 10), q, 10) for q in qrels.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--index", default="indexes/esci-us")
    parser.add_argument("--judgments", default=str(esci_us_judgments()))
    parser.add_argument("--pipeline", default="hybrid")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--out", default="benchmarks/results/tune_analysis.json")
    parser.add_argument(
        "--category",
        action="store_true",
        help="tune the category boost (the other settings at their defaults) instead",
    )
    args = parser.parse_args()
    grid = CATEGORY_GRID if args.category else GRID

    qrels = group_by_query(load_judgments(args.judgments))
    queries = sorted(qrels)
    console = Console()
    with SearchPipeline.open(args.index) as pipeline:
        pipeline.use_analysis(AnalysisConfig(enabled=False))
        off = per_query(pipeline, args.pipeline, qrels, queries)
        bm25 = per_query(pipeline, "bm25", qrels, queries)
        rand = random_ndcg(pipeline, qrels)
        names = list(grid)
        settings = [
            dict(zip(names, values, strict=True)) for values in itertools.product(*grid.values())
        ]
        # negation settings touch only queries with a negation; audience ones only queries
        # with an audience: each setting is scored on all queries all the same
        scores: list[dict[str, float]] = []
        for i, setting in enumerate(settings):
            pipeline.use_analysis(AnalysisConfig(**setting))
            scores.append(per_query(pipeline, args.pipeline, qrels, queries))
            console.print(f"\r{i + 1}/{len(settings)} settings", end="")
        console.print()

    rng = random.Random(13)
    shuffled = queries[:]
    rng.shuffle(shuffled)
    folds = [shuffled[f :: args.folds] for f in range(args.folds)]
    cv: dict[str, float] = {}
    chosen = []
    for fold in folds:
        held = set(fold)
        train = [q for q in queries if q not in held]
        best = max(
            range(len(settings)), key=lambda s: (statistics.mean(scores[s][q] for q in train), -s)
        )
        chosen.append(settings[best])
        cv.update({q: scores[best][q] for q in fold})
    everywhere = max(range(len(settings)), key=lambda s: (statistics.mean(scores[s].values()), -s))

    groups = {
        "negation": [q for q in queries if NEGATION.search(q)],
        "other": [q for q in queries if not NEGATION.search(q)],
        "all": queries,
    }
    table = Table(title=f"{args.pipeline}, retrieve nDCG@10, {args.folds}-fold CV settings")
    table.add_column("queries")
    for column in ("n", "random", "bm25", "analysis off", "analysis (CV)", "change"):
        table.add_column(column, justify="right")
    rows = {}
    for group, members in groups.items():
        a = statistics.mean(off[q] for q in members)
        b = statistics.mean(cv[q] for q in members)
        r = statistics.mean(bm25[q] for q in members)
        rows[group] = {"queries": len(members), "bm25": r, "off": a, "cv": b}
        table.add_row(
            group,
            str(len(members)),
            f"{rand:.4f}",
            f"{r:.4f}",
            f"{a:.4f}",
            f"{b:.4f}",
            f"{b - a:+.4f}",
        )
    console.print(table)
    console.print(f"settings chosen per fold: {chosen}")
    console.print(f"best on all queries (the shipped default candidate): {settings[everywhere]}")
    changed = sorted((cv[q] - off[q], q) for q in queries if abs(cv[q] - off[q]) > 1e-9)
    for delta, q in changed:
        console.print(f"  {delta:+.3f}  {q}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(
        json.dumps(
            {
                "pipeline": args.pipeline,
                "folds": args.folds,
                "random": rand,
                "groups": rows,
                "chosen_per_fold": chosen,
                "best_on_all": settings[everywhere],
                "per_query": {q: {"off": off[q], "cv": cv[q], "bm25": bm25[q]} for q in queries},
            },
            indent=2,
        )
    )
    console.print(f"written {args.out}")


if __name__ == "__main__":
    main()
