"""How much of its quality search keeps when each query has one typo.

    python benchmarks/typo_robustness.py [--index indexes/esci-us] [--pipeline hybrid]
        [--seeds 13,14,15] [--out benchmarks/results/typo_robustness.json]

For every judged query, one word of 5 or more letters gets one typo (seeded): two adjacent
letters swapped, a letter dropped, doubled or replaced by a neighbour on a QWERTY keyboard
(the word and the kind chosen at random). Retrieve protocol, nDCG@10 on the whole catalog,
for the clean and the typo queries, with the query analysis off (matched as typed), on
without spelling correction, and on in full. Queries without a word of 5+ letters are kept
unchanged (and counted). Random and BM25 baselines in the same run.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import statistics
from dataclasses import replace
from pathlib import Path

from rich.console import Console
from rich.table import Table

from shopsearch.datasets import esci_us_judgments
from shopsearch.evaluation.judgments import group_by_query, load_judgments
from shopsearch.evaluation.metrics import ndcg
from shopsearch.index.config import AnalysisConfig
from shopsearch.pipeline import SearchPipeline

NEIGHBOURS = {
    row[i]: row[max(0, i - 1) : i] + row[i + 1 : i + 2]
    for row in ("qwertyuiop", "asdfghjkl", "zxcvbnm")
    for i in range(len(row))
}
_WORD = re.compile(r"[a-zA-Z]{5,}")


def one_typo(query: str, rng: random.Random) -> str:
    """``query`` with one typo in one word of 5+ letters (unchanged when it has none)."""
    words = list(_WORD.finditer(query))
    if not words:
        return query
    m = rng.choice(words)
    word = m.group(0)
    i = rng.randrange(1, len(word) - 1)  # keep the first and last letter
    kind = rng.choice(("swap", "drop", "double", "replace"))
    if kind == "swap":
        typo = word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    elif kind == "drop":
        typo = word[:i] + word[i + 1 :]
    elif kind == "double":
        typo = word[:i] + word[i] + word[i:]
    else:
        options = NEIGHBOURS.get(word[i].lower(), "e") or "e"
        typo = word[:i] + rng.choice(options) + word[i + 1 :]
    if typo == word:  # a swap of two equal letters: drop one instead
        typo = word[:i] + word[i + 1 :]
    return query[: m.start()] + typo + query[m.end() :]


def mean_ndcg(pipeline: SearchPipeline, name: str, pairs: list[tuple[str, dict]]) -> float:
    scores = []
    for query, qrels in pairs:
        hits = pipeline.search(query, 10, pipeline=name, facets=False, products=False).hits
        scores.append(ndcg([h.product_id for h in hits], qrels, 10))
    return statistics.mean(scores)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--index", default="indexes/esci-us")
    parser.add_argument("--judgments", default=str(esci_us_judgments()))
    parser.add_argument("--pipeline", default="hybrid")
    parser.add_argument("--seeds", default="13,14,15")
    parser.add_argument("--out", default="benchmarks/results/typo_robustness.json")
    args = parser.parse_args()

    qrels = group_by_query(load_judgments(args.judgments))
    queries = sorted(qrels)
    seeds = [int(s) for s in args.seeds.split(",")]
    console = Console()
    typo_sets = {}
    for seed in seeds:
        rng = random.Random(seed)
        typo_sets[seed] = [(one_typo(q, rng), qrels[q]) for q in queries]
    clean = [(q, qrels[q]) for q in queries]
    unchanged = sum(t == q for (t, _), q in zip(typo_sets[seeds[0]], queries, strict=True))
    on = AnalysisConfig()
    variants = {
        "analysis off": AnalysisConfig(enabled=False),
        "analysis, no spelling": replace(on, spelling=False),
        "analysis + spelling from 5 letters": replace(on, typo_min_letters=5),
        f"analysis + spelling (default, from {on.typo_min_letters} letters)": on,
    }
    results: dict[str, dict[str, float]] = {}
    with SearchPipeline.open(args.index) as pipeline:
        rows = pipeline.snapshot.row_ids
        rng = random.Random(13)
        rand = statistics.mean(ndcg(rng.sample(rows, 10), q, 10) for _, q in clean)
        pipeline.use_analysis(AnalysisConfig(enabled=False))
        bm25 = {"clean": mean_ndcg(pipeline, "bm25", clean)}
        bm25["typo"] = statistics.mean(mean_ndcg(pipeline, "bm25", typo_sets[s]) for s in seeds)
        for label, config in variants.items():
            pipeline.use_analysis(config)
            clean_score = mean_ndcg(pipeline, args.pipeline, clean)
            typo_scores = [mean_ndcg(pipeline, args.pipeline, typo_sets[s]) for s in seeds]
            results[label] = {
                "clean": clean_score,
                "typo": statistics.mean(typo_scores),
                "typo_per_seed": typo_scores,
            }
            console.print(f"{label}: done")

    table = Table(title=f"{args.pipeline}, retrieve nDCG@10, one typo per query, seeds {seeds}")
    for column in ("variant", "clean", "one typo", "kept"):
        table.add_column(column, justify="right" if column != "variant" else "left")
    table.add_row("random", f"{rand:.4f}", "", "")
    table.add_row(
        "bm25 (as typed)", f"{bm25['clean']:.4f}", f"{bm25['typo']:.4f}",
        f"{bm25['typo'] / bm25['clean']:.1%}",
    )  # fmt: skip
    for label, r in results.items():
        table.add_row(
            label, f"{r['clean']:.4f}", f"{r['typo']:.4f}", f"{r['typo'] / r['clean']:.1%}"
        )
    console.print(table)
    console.print(f"{unchanged} of {len(queries)} queries have no word of 5+ letters (unchanged)")
    examples = [(q, t) for q, (t, _) in zip(queries, typo_sets[seeds[0]], strict=True) if q != t]
    console.print("examples: " + "; ".join(f"{q!r} -> {t!r}" for q, t in examples[:5]))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(
        json.dumps(
            {
                "pipeline": args.pipeline,
                "seeds": seeds,
                "random": rand,
                "bm25": bm25,
                "variants": results,
                "typo_queries": {s: [t for t, _ in typo_sets[s]] for s in seeds},
            },
            indent=2,
        )
    )
    console.print(f"written {args.out}")


if __name__ == "__main__":
    main()
