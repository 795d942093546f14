"""Choose the hybrid fusion settings on a validation split; report them once on the test split.

    python benchmarks/tune_fusion.py INDEX_DIR [--judgments FILE] [--seed 0] [--out FILE]

Grid: RRF (k, dense weight) and normalised weighted sum (dense weight), each with several
candidate-pool sizes. Selection uses retrieve-protocol nDCG@10 on the validation queries only,
and a setting replaces the current default only if it gains at least ``--min-gain`` there:
with 50 validation queries, smaller gains are within noise and rarely carry over.
"""

from __future__ import annotations

import argparse
import itertools
import json
from dataclasses import replace
from pathlib import Path

from rich.console import Console
from rich.table import Table

from shopsearch.datasets import esci_us_judgments
from shopsearch.evaluation.judgments import load_judgments, split_queries
from shopsearch.evaluation.protocols import evaluate
from shopsearch.index.config import FusionConfig
from shopsearch.pipeline import EvaluablePipelineAdapter, SearchPipeline


class CachedEncoder:
    """Wraps an encoder so that each query is embedded once across the whole grid."""

    def __init__(self, encoder):
        self.inner, self.name, self.dim, self.cache = encoder, encoder.name, encoder.dim, {}

    def encode_queries(self, texts):
        import numpy as np

        missing = [t for t in texts if t not in self.cache]
        if missing:
            for text, vector in zip(missing, self.inner.encode_queries(missing), strict=True):
                self.cache[text] = vector
        return np.stack([self.cache[t] for t in texts])

    def encode_products(self, texts, *, progress=None):
        return self.inner.encode_products(texts, progress=progress)


def grid() -> list[FusionConfig]:
    configs = []
    for candidates in (50, 100, 200):
        for k, dense in itertools.product((10, 30, 60, 100), (0.5, 0.75, 1.0, 1.5, 2.0)):
            configs.append(FusionConfig("rrf", {"bm25": 1.0, "dense": dense}, k, candidates))
        for dense in (0.3, 0.4, 0.5, 0.6, 0.7, 0.8):
            configs.append(
                FusionConfig("weighted", {"bm25": 1 - dense, "dense": dense}, 60, candidates)
            )
    return configs


def label(config: FusionConfig) -> str:
    dense = config.weights["dense"]
    if config.method == "rrf":
        return f"rrf k={config.rrf_k} w_dense={dense:g} pool={config.candidates}"
    return f"weighted w_dense={dense:g} pool={config.candidates}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("index_dir", type=Path)
    parser.add_argument("--judgments", type=Path, default=esci_us_judgments())
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/fusion.json"))
    parser.add_argument("--min-gain", type=float, default=0.01)
    args = parser.parse_args()
    console = Console()

    judgments = load_judgments(args.judgments)
    validation, test = split_queries(
        list(dict.fromkeys(j.query for j in judgments)), seed=args.seed
    )
    by_split = {
        "validation": [j for j in judgments if j.query in set(validation)],
        "test": [j for j in judgments if j.query in set(test)],
    }
    search = SearchPipeline.open(args.index_dir)
    search.encoder = CachedEncoder(search.encoder)
    catalog_ids = set(search.snapshot.id_to_row)
    base = search.snapshot.config

    def ndcg10(name: str, split: str, fusion: FusionConfig | None = None) -> dict:
        if fusion is not None:
            search.snapshot.config = replace(base, fusion=fusion)
        result = evaluate(
            EvaluablePipelineAdapter(search, name),
            by_split[split],
            protocol="retrieve",
            catalog_ids=catalog_ids,
        )
        search.snapshot.config = base
        return result.summary()

    rows = []
    with console.status("grid search on the validation queries"):
        for fusion in grid():
            rows.append((fusion, ndcg10("hybrid", "validation", fusion)["ndcg@10"]))
    rows.sort(key=lambda item: -item[1])
    default_score = ndcg10("hybrid", "validation", base.fusion)["ndcg@10"]
    best = rows[0][0] if rows[0][1] - default_score >= args.min_gain else base.fusion
    console.print(
        f"grid best {label(rows[0][0])}: {rows[0][1]:.4f}; current default "
        f"{label(base.fusion)}: {default_score:.4f}; chosen: {label(best)}"
    )

    table = Table(title=f"Top fusion settings, validation nDCG@10 ({len(validation)} queries)")
    table.add_column("setting")
    table.add_column("nDCG@10", justify="right")
    for fusion, value in rows[:10]:
        table.add_row(label(fusion), f"{value:.4f}")
    console.print(table)

    report = {
        "seed": args.seed,
        "validation_queries": len(validation),
        "test_queries": len(test),
        "chosen": {
            "method": best.method,
            "weights": dict(best.weights),
            "rrf_k": best.rrf_k,
            "candidates": best.candidates,
        },
        "current_default": label(base.fusion),
        "splits": {},
    }
    final = Table(title="Retrieve protocol: chosen fusion vs single retrievers")
    for column in ("split", "pipeline", "nDCG@10", "MRR@10", "R@100"):
        final.add_column(column)
    for split in ("validation", "test"):
        entries = {
            "bm25": ndcg10("bm25", split),
            "dense": ndcg10("dense", split),
            f"hybrid, chosen ({label(best)})": ndcg10("hybrid", split, best),
        }
        report["splits"][split] = entries
        for name, summary in entries.items():
            final.add_row(
                split,
                name,
                f"{summary['ndcg@10']:.4f}",
                f"{summary['mrr@10']:.4f}",
                f"{summary['recall@100']:.4f}",
            )
    console.print(final)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    console.print(f"written {args.out}")


if __name__ == "__main__":
    main()
