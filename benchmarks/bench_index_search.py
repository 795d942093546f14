"""Indexing time and search latency on the bundled ESCI-US catalog.

    python benchmarks/bench_index_search.py [--rounds 3] [--out benchmarks/results/bench.json]

1. Runs `shopsearch index` on the 6,764-product sample as a fresh process (wall time, with
   interpreter start, model load and everything), into a temporary directory.
2. Opens the index and runs the 100 judged queries `--rounds` times through every pipeline,
   the full search path (filters mask, facets, product documents from SQLite), and prints
   p50 / p95 / p99 latency and sequential throughput.
3. Builds an HNSW graph over the same product vectors and reports its recall@10 against
   exact search for the 100 queries (small catalogs use exact search by default).
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from shopsearch.datasets import esci_us_judgments, esci_us_products
from shopsearch.evaluation.judgments import load_judgments
from shopsearch.index.filters import Filters
from shopsearch.pipeline import RETRIEVAL_PIPELINES, SearchPipeline


def time_index(out: Path) -> float:
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "shopsearch", "index", str(esci_us_products()), "--out", str(out)],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - started


def time_searches(
    pipeline: SearchPipeline,
    queries: list[str],
    name: str,
    rounds: int,
    filters: Filters | None = None,
) -> dict:
    for query in queries[:5]:  # warm-up
        pipeline.search(query, 10, pipeline=name, filters=filters)
    latencies = []
    started = time.perf_counter()
    for _ in range(rounds):
        for query in queries:
            t0 = time.perf_counter()
            pipeline.search(query, 10, pipeline=name, filters=filters)
            latencies.append(time.perf_counter() - t0)
    total = time.perf_counter() - started
    ms = np.asarray(latencies) * 1000
    return {
        "pipeline": name + (" + filters" if filters else ""),
        "searches": len(latencies),
        "p50_ms": float(np.percentile(ms, 50)),
        "p95_ms": float(np.percentile(ms, 95)),
        "p99_ms": float(np.percentile(ms, 99)),
        "qps": len(latencies) / total,
    }


def ann_recall(pipeline: SearchPipeline, queries: list[str]) -> dict:
    from shopsearch.index.vector import VectorIndex, VectorIndexConfig

    vectors = np.asarray(pipeline.snapshot.vectors.vectors)
    index = VectorIndex(vectors.shape[1], VectorIndexConfig(exact_below=0))
    index.add(vectors)
    started = time.perf_counter()
    index.build_ann()
    build = time.perf_counter() - started
    recalls, exact_s, ann_s = [], 0.0, 0.0
    for vector in pipeline.encoder.encode_queries(queries):
        t0 = time.perf_counter()
        exact, _ = index.search(vector, 10, exact=True)
        t1 = time.perf_counter()
        approx, _ = index.search(vector, 10, exact=False)
        ann_s += time.perf_counter() - t1
        exact_s += t1 - t0
        recalls.append(len(set(exact.tolist()) & set(approx.tolist())) / 10)
    n = len(queries)
    return {
        "recall@10": float(np.mean(recalls)),
        "exact_ms": exact_s / n * 1000,
        "ann_ms": ann_s / n * 1000,
        "build_s": build,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/bench.json"))
    args = parser.parse_args()
    console = Console()
    queries = list(dict.fromkeys(j.query for j in load_judgments(esci_us_judgments())))

    with tempfile.TemporaryDirectory() as tmp:
        index_dir = Path(tmp) / "esci-us"
        with console.status("indexing the 6,764-product sample (fresh process)"):
            index_seconds = time_index(index_dir)
        console.print(
            f"[bold]shopsearch index[/] (6,764 products, end to end): {index_seconds:.1f} s"
        )
        with SearchPipeline.open(index_dir) as pipeline:
            rows = [
                time_searches(pipeline, queries, name, args.rounds) for name in RETRIEVAL_PIPELINES
            ]
            rows.append(
                time_searches(
                    pipeline,
                    queries,
                    "hybrid",
                    args.rounds,
                    Filters(rating_min=4.0, price_max=100.0),
                )
            )
            ann = ann_recall(pipeline, queries)
        console.print(
            f"[bold]HNSW vs exact[/]: recall@10 {ann['recall@10']:.4f}, "
            f"exact {ann['exact_ms']:.2f} ms, ANN {ann['ann_ms']:.2f} ms per query "
            f"(graph built in {ann['build_s']:.1f} s)"
        )

    table = Table(title=f"Search latency, {len(queries)} ESCI queries x {args.rounds} rounds, k=10")
    for column in ("pipeline", "searches", "p50 ms", "p95 ms", "p99 ms", "searches/s"):
        table.add_column(column, justify="right" if column != "pipeline" else "left")
    for row in rows:
        table.add_row(
            row["pipeline"],
            str(row["searches"]),
            f"{row['p50_ms']:.1f}",
            f"{row['p95_ms']:.1f}",
            f"{row['p99_ms']:.1f}",
            f"{row['qps']:.0f}",
        )
    console.print(table)
    report = {
        "index_seconds": index_seconds,
        "search": rows,
        "ann": ann,
        "machine": {"cpus": __import__("os").cpu_count(), "python": platform.python_version()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    console.print(f"written {args.out}")


if __name__ == "__main__":
    main()
