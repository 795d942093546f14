"""What query analysis costs per search.

    python benchmarks/bench_analysis.py [--index indexes/esci-us] [--rounds 5]

1. The analysis stage alone (``QueryAnalyzer.analyze`` against the index's vocabulary and
   BM25 index: cleaning, spelling, operators, price, negation, audience, synonyms and
   quantities) over the 100 judged queries and a one-typo copy of them (seed 13): p50 /
   p95 / p99 in ms. The first call (which loads symspellpy's English list and builds the
   correction dictionary) is reported apart.
2. A whole hybrid search with analysis on and off (the result rules included), the same
   queries, interleaved: p50 / p95.
"""

from __future__ import annotations

import argparse
import random
import time

import numpy as np
from rich.console import Console
from rich.table import Table
from typo_robustness import one_typo

from shopsearch.datasets import esci_us_judgments
from shopsearch.evaluation.judgments import load_judgments
from shopsearch.index.config import AnalysisConfig
from shopsearch.pipeline import SearchPipeline
from shopsearch.search.analysis import QueryAnalyzer


def percentiles(ms: list[float]) -> tuple[float, float, float]:
    a = np.asarray(ms)
    return float(np.percentile(a, 50)), float(np.percentile(a, 95)), float(np.percentile(a, 99))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--index", default="indexes/esci-us")
    parser.add_argument("--judgments", default=str(esci_us_judgments()))
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    queries = sorted({j.query for j in load_judgments(args.judgments)})
    rng = random.Random(13)
    typos = [one_typo(q, rng) for q in queries]
    console = Console()
    table = Table(title=f"query analysis, {len(queries)} queries x {args.rounds} rounds")
    for column in ("what", "queries", "p50 ms", "p95 ms", "p99 ms"):
        table.add_column(column, justify="left" if column == "what" else "right")
    with SearchPipeline.open(args.index) as pipeline:
        snapshot = pipeline.snapshot
        analyzer = QueryAnalyzer(AnalysisConfig(), pipeline.directory.path / "synonyms.txt")
        started = time.perf_counter()
        analyzer.analyze(queries[0], snapshot=snapshot)
        first_ms = (time.perf_counter() - started) * 1000
        for label, batch in (("analysis, typed queries", queries), ("analysis, one typo", typos)):
            ms = []
            for _ in range(args.rounds):
                for query in batch:
                    t0 = time.perf_counter()
                    analyzer.analyze(query, snapshot=snapshot)
                    ms.append((time.perf_counter() - t0) * 1000)
            table.add_row(label, str(len(batch)), *(f"{v:.3f}" for v in percentiles(ms)))
        searches: dict[str, list[float]] = {"off": [], "on": []}
        configs = {"off": AnalysisConfig(enabled=False), "on": AnalysisConfig()}
        for _ in range(args.rounds):
            for name, config in configs.items():  # interleaved rounds
                pipeline.use_analysis(config)
                for query in queries + typos:
                    t0 = time.perf_counter()
                    pipeline.search(query, 10, pipeline="hybrid")
                    searches[name].append((time.perf_counter() - t0) * 1000)
        for name, ms in searches.items():
            table.add_row(f"hybrid search, analysis {name}", str(len(queries) * 2),
                          *(f"{v:.2f}" for v in percentiles(ms)))  # fmt: skip
    console.print(table)
    console.print(
        f"first analysis (loads the English list, builds the dictionary): {first_ms:.0f} ms"
    )


if __name__ == "__main__":
    main()
