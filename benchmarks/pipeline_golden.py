"""Record every pipeline's rankings and scores on the bundled queries, or compare with a record.

    python benchmarks/pipeline_golden.py record DIR OUT.json.gz [--context holdout_context.jsonl]
    python benchmarks/pipeline_golden.py compare DIR GOLDEN.json.gz [--exact]

For every pipeline the index offers, every judged ESCI-US query: the retrieve protocol's
top 100 (``search``, ids, scores and component scores, facets, candidate count) and the
rerank protocol's order of the judged products (``rank``). With ``--context`` (a SIMULATED
``holdout_context.jsonl``), the personal pipeline is also run for up to 150 shoppers' (user,
session, query) rows.

``compare --exact`` demands identical ids, scores (floats compared exactly) and facets: the
check for a refactoring on one machine. Without ``--exact``, the tolerances that hold on any
CPU: per pipeline nDCG@10 within 0.005 of the record, and top-10 overlap >= 0.9 per query.
Query analysis (issue 12, after the records were made) is switched off in both modes.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
from pathlib import Path

import numpy as np

from shopsearch.datasets import esci_us_judgments
from shopsearch.evaluation.judgments import group_by_query, load_judgments
from shopsearch.evaluation.metrics import ndcg
from shopsearch.index.config import AnalysisConfig
from shopsearch.pipeline import SearchPipeline

DEPTH = 100
MAX_CONTEXT_ROWS = 150


def _hits(hits) -> list:  # noqa: ANN001
    return [[h.product_id, h.score, dict(sorted(h.scores.items()))] for h in hits]


def record(index: Path, context: Path | None) -> dict:
    qrels = group_by_query(load_judgments(esci_us_judgments()))
    out: dict = {"pipelines": {}, "personal_context": []}
    with SearchPipeline.open(index) as pipeline:
        pipeline.use_analysis(AnalysisConfig(enabled=False))
        for name in pipeline.pipelines:
            runs = {}
            for query, rel in qrels.items():
                result = pipeline.search(query, DEPTH, pipeline=name)
                runs[query] = {
                    "search": _hits(result.hits),
                    "facets": {k: [list(v) for v in vs] for k, vs in result.facets.items()},
                    "candidates": result.candidates,
                    "rank": _hits(pipeline.rank(query, sorted(rel), pipeline=name)),
                }
            out["pipelines"][name] = runs
            print(f"recorded {name}", file=sys.stderr, flush=True)
        if context is not None and "personal" in pipeline.pipelines:
            rows = [json.loads(line) for line in context.read_text().splitlines() if line]
            for row in rows[:MAX_CONTEXT_ROWS]:
                result = pipeline.search(
                    row["query"],
                    10,
                    pipeline="personal",
                    user=row["user_id"],
                    session=row["session_id"],
                )
                out["personal_context"].append(
                    {
                        "query": row["query"],
                        "user": row["user_id"],
                        "session": row["session_id"],
                        "search": _hits(result.hits),
                    }
                )
    return out


def _ndcg10(runs: dict, qrels: dict) -> float:
    return float(
        np.mean([ndcg([h[0] for h in r["search"][:10]], qrels[q], 10) for q, r in runs.items()])
    )


def compare(index: Path, golden: dict, exact: bool, context: Path | None) -> list[str]:
    """Differences between ``index``'s pipelines now and ``golden`` (empty: none)."""
    qrels = group_by_query(load_judgments(esci_us_judgments()))
    now = record(index, context)
    problems = []
    for name, runs in golden["pipelines"].items():
        if name not in now["pipelines"]:
            problems.append(f"{name}: missing")
            continue
        current = now["pipelines"][name]
        if exact:
            for query, expected in runs.items():
                for part in ("search", "rank", "facets", "candidates"):
                    if current[query][part] != expected[part]:
                        problems.append(f"{name} {query!r}: {part} differs")
        else:
            before, after = _ndcg10(runs, qrels), _ndcg10(current, qrels)
            if abs(before - after) > 0.005:
                problems.append(f"{name}: nDCG@10 {before:.4f} -> {after:.4f}")
            for query, expected in runs.items():
                a = {h[0] for h in expected["search"][:10]}
                b = {h[0] for h in current[query]["search"][:10]}
                if a and len(a & b) / len(a) < 0.9:
                    problems.append(f"{name} {query!r}: top-10 overlap {len(a & b)}/{len(a)}")
        print(f"compared {name}", file=sys.stderr)
    if exact and golden["personal_context"] != now["personal_context"]:
        problems.append("personal with user and session context differs")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=("record", "compare"))
    parser.add_argument("index", type=Path)
    parser.add_argument("golden", type=Path)
    parser.add_argument("--context", type=Path, help="SIMULATED holdout_context.jsonl")
    parser.add_argument("--exact", action="store_true")
    args = parser.parse_args()
    if args.mode == "record":
        data = record(args.index, args.context)
        with gzip.open(args.golden, "wt", encoding="utf-8") as f:
            json.dump(data, f)
        print(f"wrote {args.golden}")
        return 0
    with gzip.open(args.golden, "rt", encoding="utf-8") as f:
        golden = json.load(f)
    problems = compare(args.index, golden, args.exact, args.context)
    for line in problems[:50]:
        print(line)
    print(f"{len(problems)} differences ({'exact' if args.exact else 'tolerant'})")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
