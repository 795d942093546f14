"""Quality against latency of the cross-encoder stage: how many of the first stage's results
to rerank, chosen on validation queries.

Copies the index, installs the reranker run (``refresh --reranker``) and one pipeline per
``--tops`` value (``hybrid -> cross_encoder(top=N)``), then runs each with the retrieve
protocol over one part of a ``shopsearch train`` run's query split (``--part validation``
to choose; ``test`` once, to report). Prints nDCG@10, MRR@10, p50/p95 ms per search and
queries/s; latency includes everything a search does (analysis, both retrievers, fusion,
the reranker on ``--backend``). Writes ``benchmarks/results/rerank_tradeoff-NAME.json``
and a PNG of nDCG@10 against p95.

    python benchmarks/rerank_tradeoff.py --index HD_INDEX --reranker runs/ce-hd \\
        --judgments ../shared/data/homedepot/judgments.jsonl.gz --split runs/bi-hd \\
        --part validation --tops 10,20,30 --name homedepot-validation
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from shopsearch.cli import main as cli  # noqa: E402
from shopsearch.evaluation.judgments import load_judgments  # noqa: E402
from shopsearch.evaluation.protocols import compare  # noqa: E402
from shopsearch.pipeline import EvaluablePipelineAdapter, SearchPipeline  # noqa: E402


def add_split_arguments(parser: argparse.ArgumentParser) -> None:
    """The index, the cross-encoder run and which judged queries to measure on (shared
    with ``rerank_sweep.py``)."""
    parser.add_argument("--index", type=Path, required=True)
    parser.add_argument("--reranker", type=Path, required=True, help="a cross-encoder run")
    parser.add_argument("--judgments", type=Path, required=True)
    parser.add_argument("--split", type=Path, required=True, help="a run with split.json")
    parser.add_argument("--part", choices=("validation", "test"), default="validation")
    parser.add_argument("--limit", type=int, default=0, help="at most this many queries")
    parser.add_argument("--name", default="run")


def part_queries(args: argparse.Namespace) -> list[str]:
    """The ``--part`` queries of ``--split``'s split.json (the first ``--limit``)."""
    queries = json.loads((args.split / "split.json").read_text())[args.part]
    return queries[: args.limit] if args.limit else queries


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_split_arguments(parser)
    parser.add_argument("--tops", default="10,20,30")
    parser.add_argument("--backend", default="onnx-int8")
    parser.add_argument("--first-stage-weight", type=float, default=None)
    args = parser.parse_args()

    queries = part_queries(args)
    keep = set(queries)
    judgments = [j for j in load_judgments(args.judgments) if j.query in keep]
    tops = [int(t) for t in args.tops.split(",")]
    work = Path(tempfile.mkdtemp(prefix="rerank-tradeoff-"))
    try:
        index = work / "index"
        shutil.copytree(args.index, index)
        settings = ["--set", f"reranker.backend={args.backend}"]
        if args.first_stage_weight is not None:
            settings += ["--set", f"reranker.first_stage_weight={args.first_stage_weight}"]
        for top in tops:
            settings += ["--set", f"pipelines.ce{top}=hybrid -> cross_encoder(top={top})"]
        assert cli(["refresh", str(index), "--reranker", str(args.reranker), *settings]) == 0
        names = ["bm25", "rrf", "hybrid", *(f"ce{top}" for top in tops)]
        with SearchPipeline.open(index) as search:
            search.prepare_reranker()  # (loaded before timing)
            results = compare(
                [EvaluablePipelineAdapter(search, name) for name in names],
                judgments,
                protocol="retrieve",
                catalog_ids=set(search.snapshot.id_to_row),
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    rows = [r.summary() for r in results if r.pipeline != "random"]
    print(f"{args.part} queries: {len(keep)}")
    print("pipeline  nDCG@10  MRR@10   p50 ms   p95 ms   q/s")
    for s in rows:
        print(
            f"{s['pipeline']:8s}  {s['ndcg@10']:.4f}   {s['mrr@10']:.4f}  {s['p50_ms']:7.1f}  "
            f"{s['p95_ms']:7.1f}  {s['qps']:5.1f}"
        )
    out = ROOT / "benchmarks" / "results" / f"rerank_tradeoff-{args.name}.json"
    out.write_text(json.dumps({"part": args.part, "queries": len(keep), "rows": rows}, indent=2))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for s in rows:
        ax.scatter(s["p95_ms"], s["ndcg@10"])
        ax.annotate(s["pipeline"], (s["p95_ms"], s["ndcg@10"]), fontsize=8)
    ax.set_xlabel("p95 latency per search (ms, 2-core CPU)")
    ax.set_ylabel("nDCG@10 (retrieve)")
    ax.set_title(f"Reranking depth: quality vs latency ({args.part})")
    fig.tight_layout()
    fig.savefig(out.with_suffix(".png"), dpi=120)
    print(f"wrote {out} and {out.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
