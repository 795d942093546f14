"""int8 quantization recipes for the encoder and the cross-encoder: parity with PyTorch,
ranking quality and speed on *this* CPU.

    python benchmarks/bench_quantization.py [--reranker runs/ce-quick] [--titles 2000]

For each recipe of ``shopsearch.models.quantization.RECIPES`` (plus fp32 ONNX):

- encoder (all-MiniLM-L6-v2): min cosine to PyTorch on the 6 parity texts (what
  ``load_encoder`` checks against ``encoder.int8_min_cosine``), mean / min cosine over
  ``--titles`` ESCI titles, dense retrieve nDCG@10 over the 6,764-product sample and its 100
  judged queries, titles/s (one text per call on 2 threads, as indexing runs);
- reranker (a trained run, ``--reranker``): Pearson with PyTorch on the parity pairs (what
  the pipeline checks against ``reranker.int8_min_pearson``) and on ``--per-query`` judged
  pairs of each of the 100 queries, rerank-protocol nDCG of those pairs, pairs/s (2 threads).

The int8 kernels differ between CPUs (AVX2 alone vs VNNI): the results are written to
``benchmarks/results/quantization_<kernels>.json`` so that machines can be compared.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from shopsearch.catalog.loaders import load_catalog
from shopsearch.datasets import esci_us_judgments, esci_us_products
from shopsearch.evaluation.judgments import group_by_query, load_judgments
from shopsearch.evaluation.metrics import ndcg
from shopsearch.models import onnx_reranker
from shopsearch.models.encoders import EncoderConfig, load_encoder, product_text
from shopsearch.models.onnx import MODEL_FILE, PARITY_TEXTS, OnnxEncoder, export_encoder
from shopsearch.models.quantization import DEFAULT_RECIPE, RECIPES, min_cosine, pearson, quantize
from shopsearch.system import cpu_model, int8_kernel_family

RERANK_FIELDS = ("title", "brand", "color", "category")
VARIANTS = ("fp32", *RECIPES)


def _variant_dirs(fp32_dir: Path, work: Path, meta_file: str) -> dict[str, Path]:
    """One export directory per variant: the fp32 export, and each recipe's int8 form."""
    dirs = {"fp32": fp32_dir}
    for recipe in RECIPES:
        target = work / recipe
        shutil.copytree(fp32_dir, target, ignore=shutil.ignore_patterns(MODEL_FILE))
        quantize(fp32_dir / MODEL_FILE, target / MODEL_FILE, recipe)
        meta = json.loads((target / meta_file).read_text())
        meta.update(precision="int8", recipe=recipe, parity={})
        (target / meta_file).write_text(json.dumps(meta))
        dirs[recipe] = target
    return dirs


def _dense_ndcg(vectors: np.ndarray, ids: list[str], queries: np.ndarray, qrels: dict) -> float:
    scores = queries @ vectors.T
    top = np.argsort(-scores, axis=1)[:, :10]
    rankings = [[ids[i] for i in row] for row in top]
    pairs = zip(rankings, qrels.values(), strict=True)
    return float(np.mean([ndcg(ranking, rel, 10) for ranking, rel in pairs]))


def bench_encoder(work: Path, n_titles: int) -> list[dict]:
    products = load_catalog(esci_us_products()).products
    qrels = group_by_query(load_judgments(esci_us_judgments()))
    titles = [product_text(p) for p in products]
    sample = titles[:: max(1, len(titles) // n_titles)][:n_titles]
    torch_encoder = load_encoder(EncoderConfig(backend="torch"))
    reference_parity = torch_encoder.encode_queries(list(PARITY_TEXTS))
    reference_sample = torch_encoder.encode_products(sample)
    reference_queries = torch_encoder.encode_queries(list(qrels))
    torch_ndcg = _dense_ndcg(
        torch_encoder.encode_products(titles), [p.id for p in products], reference_queries, qrels
    )
    rows = [{"variant": "torch fp32", "dense_ndcg@10": torch_ndcg}]
    from shopsearch.models.encoders import resolve_encoder_path

    fp32_dir = export_encoder(resolve_encoder_path("minilm"), work / "fp32", precision="fp32")
    for variant, path in _variant_dirs(fp32_dir, work, "export.json").items():
        encoder = OnnxEncoder(path, name=variant, workers=2)
        parity = min_cosine(reference_parity, encoder.encode_queries(list(PARITY_TEXTS)))
        start = time.perf_counter()
        vectors = encoder.encode_products(sample)
        seconds = time.perf_counter() - start
        cosines = (vectors * reference_sample).sum(axis=1)
        all_vectors = encoder.encode_products(titles)
        queries = encoder.encode_queries(list(qrels))
        rows.append(
            {
                "variant": variant,
                "parity_min_cosine": parity,
                "mean_cosine": float(cosines.mean()),
                "min_cosine": float(cosines.min()),
                "dense_ndcg@10": _dense_ndcg(all_vectors, [p.id for p in products], queries, qrels),
                "per_second": len(sample) / seconds,
                "size_mb": (path / MODEL_FILE).stat().st_size / 1e6,
            }
        )
        print(f"encoder {variant}: {rows[-1]}", flush=True)
    return rows


def bench_reranker(run: Path, work: Path, per_query: int) -> list[dict]:
    from shopsearch.models.cross_encoder import load_run_reranker

    reranker, fields = load_run_reranker(run, device="cpu")
    products = {p.id: p for p in load_catalog(esci_us_products()).products}
    qrels = group_by_query(load_judgments(esci_us_judgments()))
    workload = []
    for query, rel in qrels.items():
        ids = [i for i in rel if i in products][:per_query]
        workload.append((query, ids, [product_text(products[i], fields) for i in ids]))

    def score_all(model) -> tuple[np.ndarray, float]:  # noqa: ANN001
        start = time.perf_counter()
        scores = [model.rank_scores(q, texts) for q, _, texts in workload]
        return np.concatenate(scores), time.perf_counter() - start

    def rerank_ndcg(scores: np.ndarray) -> float:
        values, at = [], 0
        for query, ids, _ in workload:
            part = scores[at : at + len(ids)]
            at += len(ids)
            ranking = [ids[i] for i in np.argsort(-part, kind="stable")]
            values.append(ndcg(ranking, {i: qrels[query][i] for i in ids}))
        return float(np.mean(values))

    reference, torch_seconds = score_all(reranker)
    n_pairs = len(reference)
    rows = [
        {
            "variant": "torch fp32",
            "rerank_ndcg": rerank_ndcg(reference),
            "per_second": n_pairs / torch_seconds,
        }
    ]
    fp32_dir = onnx_reranker.export_reranker(reranker, work / "fp32", precision="fp32")
    for variant, path in _variant_dirs(fp32_dir, work, onnx_reranker.META_FILE).items():
        onnx = onnx_reranker.OnnxReranker(path, workers=2)
        parity = onnx_reranker.reranker_parity(path, threshold=0.0).value
        got, seconds = score_all(onnx)
        rows.append(
            {
                "variant": variant,
                "parity_pearson": parity,
                "pearson": pearson(reference, got),
                "spearman": float(spearmanr(reference, got).statistic),
                "rerank_ndcg": rerank_ndcg(got),
                "per_second": n_pairs / seconds,
                "size_mb": (path / MODEL_FILE).stat().st_size / 1e6,
            }
        )
        onnx.close()
        print(f"reranker {variant}: {rows[-1]}", flush=True)
    return rows


def _print_table(title: str, rows: list[dict]) -> None:
    columns = [c for c in rows[-1] if c != "variant"]
    print(f"\n{title}")
    print("| variant | " + " | ".join(columns) + " |")
    print("|---" * (len(columns) + 1) + "|")
    for row in rows:
        cells = []
        for column in columns:
            value = row.get(column)
            cells.append("" if value is None else f"{value:.4f}" if value < 10 else f"{value:.0f}")
        name = row["variant"] + (" (default)" if row["variant"] == DEFAULT_RECIPE else "")
        print(f"| {name} | " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reranker", type=Path, default=Path("runs/ce-quick"))
    parser.add_argument("--titles", type=int, default=2000)
    parser.add_argument("--per-query", type=int, default=20)
    parser.add_argument("--out-dir", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    kernels = int8_kernel_family()
    report: dict = {"cpu": cpu_model(), "kernels": kernels, "default_recipe": DEFAULT_RECIPE}
    with tempfile.TemporaryDirectory() as tmp:
        report["encoder"] = bench_encoder(Path(tmp) / "encoder", args.titles)
        if args.reranker.is_dir():
            work = Path(tmp) / "reranker"
            report["reranker"] = bench_reranker(args.reranker, work, args.per_query)
        else:
            print(f"no reranker run at {args.reranker}: reranker part skipped")
    _print_table(f"Encoder on {report['cpu']} ({kernels})", report["encoder"])
    if "reranker" in report:
        _print_table(f"Reranker {args.reranker} on {report['cpu']} ({kernels})", report["reranker"])
    args.out_dir.mkdir(parents=True, exist_ok=True)
    out = args.out_dir / f"quantization_{kernels}.json"
    out.write_text(json.dumps(report, indent=2))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
