"""How much a cross-encoder adds to the first stage, for every reranking depth and
``reranker.first_stage_weight``, on one part of a run's query split (choose on
``validation``).

Searches each query once with the index's ``hybrid`` pipeline (top ``max(--depths)``),
scores those hits with the reranker as searches load it (int8 ONNX where its parity holds,
one pair per call; exported into the run on first use) but without its dense prior, then
re-orders the top ``depth`` by ``score + w * z(first-stage score)`` offline: nDCG@10 per
(depth, w), the reranker alone (w = 0 is its own order) and the time to score 20 pairs.
The index is not changed.

    python benchmarks/rerank_sweep.py --index HD_INDEX --reranker runs/ce-hd \\
        --judgments ../shared/data/homedepot/judgments.jsonl.gz --split runs/bi-hd \\
        --part validation --limit 400 --name homedepot-3layers

Writes ``benchmarks/results/rerank_sweep-NAME.json`` and a PNG beside it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from rerank_tradeoff import add_split_arguments, part_queries  # noqa: E402

from shopsearch.evaluation.judgments import group_by_query, load_judgments  # noqa: E402
from shopsearch.evaluation.metrics import ndcg, percentile_ms  # noqa: E402
from shopsearch.models.encoders import product_text  # noqa: E402
from shopsearch.models.onnx_reranker import load_run_reranker_backend  # noqa: E402
from shopsearch.models.scoring import with_prior  # noqa: E402
from shopsearch.pipeline import SearchPipeline  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_split_arguments(parser)
    parser.add_argument("--depths", default="5,10,15,20,30")
    parser.add_argument("--weights", default="0,0.1,0.3,0.5,1,2,4")
    args = parser.parse_args()

    queries = part_queries(args)
    qrels = group_by_query(j for j in load_judgments(args.judgments) if j.query in set(queries))
    depths = [int(d) for d in args.depths.split(",")]
    weights = [float(w) for w in args.weights.split(",")]
    reranker, fields, choice = load_run_reranker_backend(args.reranker)
    print(f"reranker backend: {choice.summary()}")
    rows, timings = [], []
    with SearchPipeline.open(args.index) as search:
        for i, query in enumerate(queries):
            hits = search.search(query, max(depths), facets=False, pipeline="hybrid").hits
            texts = [product_text(h.product, fields) for h in hits]
            started = time.perf_counter()
            scores = reranker.rank_scores(query, texts[:20])
            timings.append(time.perf_counter() - started)
            scores = np.concatenate([scores, reranker.rank_scores(query, texts[20:])])
            rows.append(([h.product_id for h in hits], [h.score for h in hits], scores))
            if i % 100 == 0:
                print(f"{i}/{len(queries)} queries", flush=True)

    def mean_ndcg(depth: int | None, weight: float) -> float:
        values = []
        for query, (ids, first, scores) in zip(queries, rows, strict=True):
            if depth is None:
                values.append(ndcg(ids, qrels[query], 10))
                continue
            d = min(depth, len(ids))
            score = with_prior(scores[:d], first[:d], weight)
            order = sorted(range(d), key=lambda j: -score[j])
            values.append(ndcg([ids[j] for j in order] + ids[d:], qrels[query], 10))
        return float(np.mean(values))

    first_stage = mean_ndcg(None, 0.0)
    grid = {f"{d}": {f"{w:g}": mean_ndcg(d, w) for w in weights} for d in depths}
    best = max(
        ((d, w) for d in depths for w in weights), key=lambda dw: grid[str(dw[0])][f"{dw[1]:g}"]
    )
    result = {
        "part": args.part,
        "queries": len(queries),
        "reranker": str(args.reranker),
        "layers": json.loads((args.reranker / "best" / "model" / "config.json").read_text())[
            "num_hidden_layers"
        ],
        "first_stage_ndcg@10": first_stage,
        "ndcg@10": grid,
        "best": {
            "depth": best[0],
            "first_stage_weight": best[1],
            "ndcg@10": grid[str(best[0])][f"{best[1]:g}"],
        },
        "score_20_pairs_ms": {"p50": percentile_ms(timings, 50), "p95": percentile_ms(timings, 95)},
    }
    out = RESULTS / f"rerank_sweep-{args.name}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"first stage (hybrid) nDCG@10 {first_stage:.4f}")
    print("depth  " + "  ".join(f"w={w:g}".rjust(7) for w in weights))
    for d in depths:
        print(f"{d:5d}  " + "  ".join(f"{grid[str(d)][f'{w:g}']:.4f}".rjust(7) for w in weights))
    print(
        f"best: top {best[0]}, w {best[1]:g}: {result['best']['ndcg@10']:.4f}; "
        f"20 pairs p50/p95 {result['score_20_pairs_ms']['p50']:.1f}/"
        f"{result['score_20_pairs_ms']['p95']:.1f} ms"
    )
    _plot(result, weights, depths, out.with_suffix(".png"))
    return 0


def _plot(result: dict, weights: list[float], depths: list[int], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4))
    for w in weights[1:]:
        ax.plot(
            depths,
            [result["ndcg@10"][str(d)][f"{w:g}"] for d in depths],
            marker="o",
            label=f"w = {w:g}",
        )
    ax.axhline(result["first_stage_ndcg@10"], color="black", linestyle="--", label="first stage")
    ax.set_xlabel("reranked depth (top N of the hybrid)")
    ax.set_ylabel("nDCG@10")
    ax.set_title(
        f"{result['layers']}-layer cross-encoder, {result['queries']} {result['part']} queries"
    )
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    raise SystemExit(main())
