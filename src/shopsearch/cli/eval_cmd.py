"""``shopsearch eval``: measure pipelines against graded judgments, beside a random baseline."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from shopsearch.cli.common import add_index_dir, print_json, stderr
from shopsearch.errors import InvalidQueryError
from shopsearch.evaluation.judgments import load_judgments, split_queries
from shopsearch.evaluation.protocols import compare
from shopsearch.evaluation.reports import plot_comparison, print_table, to_json
from shopsearch.pipeline import EvaluablePipelineAdapter, SearchPipeline
from shopsearch.progress import RichProgress

PROTOCOLS = ("rerank", "retrieve")
SPLITS = ("all", "validation", "test")


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="evaluate pipelines on graded judgments (nDCG, MRR, recall, latency)",
        description="rerank: order each query's judged products (KDD Cup 2022 task 1); "
        "retrieve: search the whole catalog, unjudged products count as irrelevant. "
        "A random baseline is always reported.",
    )
    add_index_dir(parser)
    parser.add_argument("--judgments", required=True, type=Path, metavar="FILE")
    parser.add_argument("--protocol", choices=PROTOCOLS, default="retrieve")
    parser.add_argument(
        "--pipeline",
        action="append",
        metavar="NAME",
        help="pipeline(s) to measure, comma-separated or repeated, or 'all' "
        "(default: the index's best)",
    )
    parser.add_argument("--depth", type=int, default=100, help="retrieve depth (default 100)")
    parser.add_argument(
        "--split",
        choices=SPLITS,
        default="all",
        help="evaluate on all queries or one half of a seeded validation/test split",
    )
    parser.add_argument(
        "--holdout",
        type=Path,
        metavar="RUN_DIR",
        help="evaluate on the test queries of a `shopsearch train` run (its split.json), "
        "so that a fine-tuned model is measured only on queries it never saw",
    )
    parser.add_argument(
        "--holdout-part",
        choices=("test", "validation"),
        default="test",
        help="which part of the --holdout run's split to evaluate on (default test; "
        "validation: where settings are chosen)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the split and baseline")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument(
        "--plot",
        type=Path,
        metavar="PNG",
        help="chart comparing the pipelines (default: DIR/reports/eval-PROTOCOL.png)",
    )
    parser.set_defaults(run=run_eval)


def _pipeline_names(requested: list[str] | None, search: SearchPipeline) -> list[str]:
    if not requested:
        return [search.default_pipeline]
    names: list[str] = []
    for item in requested:
        for name in (n.strip() for n in item.split(",")):
            if name == "all":
                names += list(search.pipelines)
            elif name:
                names.append(search.pipeline(name).name)  # a clear error if it cannot run here
    return list(dict.fromkeys(names))


def _holdout(judgments: list, run_dir: Path, part: str = "test") -> list:
    """The judgments of the ``part`` queries (test or validation) in ``run_dir/split.json``."""
    split_file = run_dir / "split.json"
    try:
        queries = set(json.loads(split_file.read_text(encoding="utf-8"))[part])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InvalidQueryError(
            f"--holdout {run_dir}: no readable split.json with a {part} list ({exc})"
        ) from exc
    kept = [j for j in judgments if j.query in queries]
    if not kept:
        raise InvalidQueryError(f"--holdout {run_dir}: none of its {part} queries is judged here")
    return kept


def run_eval(args: argparse.Namespace) -> int:
    judgments = load_judgments(args.judgments)
    if args.split != "all":
        validation, test = split_queries(
            list(dict.fromkeys(j.query for j in judgments)), seed=args.seed
        )
        keep = set(validation if args.split == "validation" else test)
        judgments = [j for j in judgments if j.query in keep]
    if args.holdout is not None:
        judgments = _holdout(judgments, args.holdout, args.holdout_part)
    with SearchPipeline.open(args.index_dir) as search:
        names = _pipeline_names(args.pipeline, search)
        pipelines = [EvaluablePipelineAdapter(search, name) for name in names]
        n_queries = len({(j.query, j.user_id, j.session_id) for j in judgments})
        with RichProgress(transient=True).stage(
            f"Evaluating ({args.protocol})", n_queries * (len(pipelines) + 1)
        ) as advance:
            results = compare(
                pipelines,
                judgments,
                protocol=args.protocol,
                depth=args.depth,
                random_seed=args.seed,
                catalog_ids=set(search.snapshot.id_to_row),
                progress=lambda done, total: advance(1),
            )
    plot = args.plot or args.index_dir / "reports" / f"eval-{args.protocol}.png"
    plot.parent.mkdir(parents=True, exist_ok=True)
    plot_comparison(results, plot)
    extra = {
        "judgments": str(args.judgments),
        "index": str(args.index_dir),
        "split": args.split,
        "holdout": str(args.holdout) if args.holdout else None,
        "holdout_part": args.holdout_part if args.holdout else None,
        "plot": str(plot),
    }
    if args.json:
        print_json(to_json(results, extra=extra))
    else:
        print_table(results)
        stderr.print(f"chart: {plot}")
    return 0
