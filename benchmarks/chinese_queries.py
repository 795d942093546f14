"""Chinese queries against the English catalog: how close to the English figures they get.

    python benchmarks/chinese_queries.py --index indexes/esci-us [--index indexes/esci-us-ml]
        [--out benchmarks/results/chinese_queries.json]

The 100 bundled dev queries as a Chinese shopper would type them
(``tests/data/esci_dev_queries_zh.jsonl``: Chinese words, brands and model numbers in Latin
letters; written for this project) are run next to the English originals, retrieve protocol,
nDCG@10 on the whole catalog: BM25, dense and hybrid, per index (give an index refreshed with
``--set multilingual.enabled=true`` to measure the multilingual retriever), with and
without query translation. Random baseline in the same run.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from shopsearch.datasets import esci_us_judgments
from shopsearch.evaluation.judgments import group_by_query, load_judgments
from shopsearch.evaluation.metrics import ndcg
from shopsearch.pipeline import SearchPipeline

ZH = Path(__file__).resolve().parents[1] / "tests" / "data" / "esci_dev_queries_zh.jsonl"


def run(pipeline: SearchPipeline, name: str, pairs, relax=()) -> tuple[float, float]:
    scores, ms = [], []
    for query, qrels in pairs:
        t0 = time.perf_counter()
        hits = pipeline.search(query, 10, pipeline=name, facets=False, products=False, relax=relax)
        ms.append((time.perf_counter() - t0) * 1000)
        scores.append(ndcg([h.product_id for h in hits.hits], qrels, 10))
    ms.sort()
    return statistics.mean(scores), ms[int(0.95 * (len(ms) - 1))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--index", action="append", required=True)
    parser.add_argument("--queries", default=str(ZH))
    parser.add_argument("--out", default="benchmarks/results/chinese_queries.json")
    args = parser.parse_args()
    qrels = group_by_query(load_judgments(esci_us_judgments()))
    rows = [json.loads(line) for line in Path(args.queries).read_text("utf-8").splitlines()]
    english = [(r["query"], qrels[r["query"]]) for r in rows]
    chinese = [(r["query_zh"], qrels[r["query"]]) for r in rows]
    console = Console()
    table = Table(title=f"retrieve nDCG@10, {len(rows)} queries (p95 ms)")
    for column in ("index", "pipeline", "English", "Chinese", "Chinese, no translation", "zh/en"):
        table.add_column(column, justify="left" if column in ("index", "pipeline") else "right")
    results = {}
    for index in args.index:
        with SearchPipeline.open(index) as pipeline:
            ids = list(pipeline.snapshot.row_ids)
            rng = random.Random(13)
            rand = statistics.mean(ndcg(rng.sample(ids, 10), q, 10) for _, q in english)
            multilingual = pipeline.snapshot.mvectors is not None
            label = f"{Path(index).name}{' (multilingual)' if multilingual else ''}"
            names = ["bm25", "dense", "hybrid"] + (["multilingual"] if multilingual else [])
            for name in names:
                en, en_ms = run(pipeline, name, english)
                zh, zh_ms = run(pipeline, name, chinese)
                raw, _ = run(pipeline, name, chinese, relax=("translation",))
                results[f"{label}/{name}"] = {"en": en, "zh": zh, "zh_untranslated": raw,
                                              "en_p95_ms": en_ms, "zh_p95_ms": zh_ms}  # fmt: skip
                table.add_row(label, name, f"{en:.4f} ({en_ms:.0f})", f"{zh:.4f} ({zh_ms:.0f})",
                              f"{raw:.4f}", f"{zh / en:.2f}x")  # fmt: skip
            table.add_row(label, "random", f"{rand:.4f}", "", "", "")
    console.print(table)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))
    console.print(f"written {args.out}")


if __name__ == "__main__":
    main()
