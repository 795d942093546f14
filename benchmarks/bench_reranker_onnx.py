"""PyTorch fp32 cross-encoder reranking against its int8 ONNX export: speed and agreement.

    python benchmarks/bench_reranker_onnx.py [runs/ce-esci] [--per-query 50]

Loads a trained reranker run (or saved reranker dir), exports it to int8 ONNX in a temporary
directory, and scores the 100 judged ESCI-US queries against their first ``--per-query``
judged products (text: title | brand | color | category) with both. Prints pairs/s for each,
the speedup and the Pearson correlation of all scores; writes
``benchmarks/results/reranker_onnx.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from shopsearch.catalog.loaders import load_catalog
from shopsearch.datasets import esci_us_judgments, esci_us_products
from shopsearch.evaluation.judgments import load_judgments
from shopsearch.models.cross_encoder import load_run_reranker
from shopsearch.models.encoders import product_text
from shopsearch.models.onnx_reranker import OnnxReranker, export_reranker

FIELDS = ("title", "brand", "color", "category")


def _workload(per_query: int) -> list[tuple[str, list[str]]]:
    products = {p.id: p for p in load_catalog(esci_us_products()).products}
    by_query: dict[str, list[str]] = {}
    for j in load_judgments(esci_us_judgments()):
        if j.product_id in products:
            texts = by_query.setdefault(j.query, [])
            if len(texts) < per_query:
                texts.append(product_text(products[j.product_id], FIELDS))
    return list(by_query.items())


def _time(rank, workload) -> tuple[float, np.ndarray]:  # noqa: ANN001
    rank(workload[0][0], workload[0][1][:8])  # warm-up
    start = time.perf_counter()
    scores = [rank(query, texts) for query, texts in workload]
    return time.perf_counter() - start, np.concatenate(scores)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("run", nargs="?", type=Path, default=Path("runs/ce-esci"))
    parser.add_argument("--per-query", type=int, default=50)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/reranker_onnx.json"))
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    reranker, _ = load_run_reranker(args.run, device="cpu")
    workload = _workload(args.per_query)
    pairs = sum(len(texts) for _, texts in workload)
    print(f"{len(workload)} queries, {pairs} (query, product) pairs, {os.cpu_count()} CPUs")

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        export_dir = export_reranker(reranker, Path(tmp) / "onnx", precision="int8")
        export_s = time.perf_counter() - start
        parity = json.loads((export_dir / "export.json").read_text())["parity_pearson"]
        onnx = OnnxReranker(export_dir)
        torch_s, torch_scores = _time(reranker.rank_scores, workload)
        onnx_s, onnx_scores = _time(onnx.rank_scores, workload)
        onnx.close()

    pearson = float(np.corrcoef(torch_scores, onnx_scores)[0, 1])
    result = {
        "run": str(args.run),
        "queries": len(workload),
        "pairs": pairs,
        "cpus": os.cpu_count(),
        "export_seconds": round(export_s, 1),
        "export_parity_pearson": round(parity, 5),
        "torch_fp32_pairs_per_s": round(pairs / torch_s, 1),
        "onnx_int8_pairs_per_s": round(pairs / onnx_s, 1),
        "speedup": round(torch_s / onnx_s, 2),
        "pearson": round(pearson, 5),
        "max_abs_diff": round(float(np.abs(torch_scores - onnx_scores).max()), 5),
    }
    print(f"export: {export_s:.1f} s (parity Pearson {parity:.4f})")
    print(f"PyTorch fp32: {result['torch_fp32_pairs_per_s']} pairs/s")
    print(f"ONNX int8:    {result['onnx_int8_pairs_per_s']} pairs/s")
    print(f"speedup {result['speedup']}x, Pearson {pearson:.4f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
