"""Which product fields should the dense encoder embed? Dense-only retrieve nDCG@10.

    python benchmarks/product_text.py [--backend onnx-int8|onnx-fp32|torch] [--seed 0]

Embeds the bundled ESCI-US catalog once per field set, searches exactly (matrix product) for
the 100 judged queries, and prints nDCG@10 on the seeded validation and test halves plus the
encoding speed. Choose on validation; the test column is for the report.
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
from shopsearch.datasets import esci_us_judgments, esci_us_products
from shopsearch.evaluation.judgments import group_by_query, load_judgments, split_queries
from shopsearch.evaluation.metrics import ndcg
from shopsearch.models.encoders import EncoderConfig, load_encoder, product_text

FIELD_SETS = [
    ("title",),
    ("title", "brand", "color"),
    ("title", "brand", "color", "category"),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backend", default="onnx-int8")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/product_text.json"))
    args = parser.parse_args()
    console = Console()
    products = load_catalog(esci_us_products()).products
    ids = [p.id for p in products]
    qrels = group_by_query(load_judgments(esci_us_judgments()))
    queries = list(qrels)
    validation, test = split_queries(queries, seed=args.seed)
    encoder = load_encoder(EncoderConfig(backend=args.backend))
    query_vectors = dict(zip(queries, encoder.encode_queries(queries), strict=True))

    table = Table(title=f"Dense nDCG@10 by product text ({args.backend})")
    for column in ("fields", "validation", "test", "products/s"):
        table.add_column(column)
    report = []
    for fields in FIELD_SETS:
        texts = [product_text(p, fields) for p in products]
        with console.status(f"encoding {' | '.join(fields)}"):
            started = time.perf_counter()
            vectors = encoder.encode_products(texts)
            rate = len(texts) / (time.perf_counter() - started)
        row = {"fields": list(fields), "products_per_s": rate}
        for split, split_queries_ in (("validation", validation), ("test", test)):
            values = []
            for query in split_queries_:
                top = np.argsort(-(vectors @ query_vectors[query]), kind="stable")[:10]
                values.append(ndcg([ids[i] for i in top], qrels[query], k=10))
            row[split] = float(np.mean(values))
        report.append(row)
        table.add_row(
            " | ".join(fields), f"{row['validation']:.4f}", f"{row['test']:.4f}", f"{rate:.0f}"
        )
    console.print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
