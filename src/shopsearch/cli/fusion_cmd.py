"""``shopsearch fusion train DIR --judgments FILE``: learn how to fuse the retrievers."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from shopsearch.cli.common import add_index_dir, print_json, stderr, stdout
from shopsearch.errors import InvalidQueryError
from shopsearch.progress import RichProgress


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "fusion",
        help="learned fusion of the retrievers (LightGBM lambdarank over their scores)",
        description="Learned fusion replaces equal-weight RRF in the hybrid pipeline once "
        "trained; it is installed only when it beats RRF and each retriever alone on the "
        "validation queries.",
    )
    commands = parser.add_subparsers(dest="fusion_command", required=True, metavar="COMMAND")
    train = commands.add_parser(
        "train",
        help="train on judgments of this index's catalog (queries split by query)",
        description="Train on the training queries, stop early and decide on the validation "
        "queries; test queries are never read. The split is a `shopsearch train` run's "
        "(--holdout RUN_DIR), or a seeded 70/15/15 split of the judged queries.",
    )
    add_index_dir(train)
    train.add_argument("--judgments", required=True, type=Path, metavar="FILE")
    train.add_argument(
        "--holdout",
        type=Path,
        metavar="RUN_DIR",
        help="use the train/validation/test split of a `shopsearch train` run (split.json)",
    )
    train.add_argument("--seed", type=int, default=13, help="seed of the split (default 13)")
    train.add_argument("--pipeline", default="hybrid", help="whose retrievers (default hybrid)")
    train.add_argument("--json", action="store_true", help="print the report as JSON")
    train.set_defaults(run=run_train)
    remove = commands.add_parser("remove", help="uninstall the learned model (back to RRF)")
    add_index_dir(remove)
    remove.set_defaults(run=run_remove)


def _split(args: argparse.Namespace, queries: list[str]):  # noqa: ANN202
    from shopsearch.training.data import QuerySplit, split_by_query

    if args.holdout is None:
        return split_by_query(queries, validation_fraction=0.15, test_fraction=0.15, seed=args.seed)
    path = args.holdout / "split.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        judged = set(queries)
        return QuerySplit(
            *(
                tuple(q for q in data[part] if q in judged)
                for part in ("train", "validation", "test")
            )
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InvalidQueryError(
            f"--holdout {args.holdout}: no readable split.json ({exc})"
        ) from exc


def run_train(args: argparse.Namespace) -> int:
    from shopsearch.evaluation.judgments import load_judgments
    from shopsearch.pipeline import SearchPipeline
    from shopsearch.training.fusion import train_fusion

    judgments = load_judgments(args.judgments)
    split = _split(args, list(dict.fromkeys(j.query for j in judgments)))
    stderr.print(
        f"queries: {len(split.train)} train, {len(split.validation)} validation, "
        f"{len(split.test)} test (never read)"
    )
    with SearchPipeline.open(args.index_dir) as search:
        report = train_fusion(
            search,
            judgments,
            split,
            pipeline=args.pipeline,
            progress=RichProgress(),
            extra_meta={"judgments": str(args.judgments)},
        )
    if args.json:
        print_json(report.to_dict())
        return 0
    stdout.print(
        "validation nDCG@10: "
        + ", ".join(f"{name} {value:.4f}" for name, value in report.validation.items())
    )
    stdout.print(
        ("Installed learned fusion" if report.installed else "Not installed")
        + f" ({report.reason}); {report.rounds} rounds, {report.seconds:.0f} s"
    )
    return 0


def run_remove(args: argparse.Namespace) -> int:
    import shutil

    from shopsearch.search.fusion_model import FUSION_DIR

    path = args.index_dir / FUSION_DIR
    if not path.is_dir():
        stdout.print(f"no learned fusion model in {args.index_dir}")
        return 0
    shutil.rmtree(path)
    stdout.print(f"removed {path}: the hybrid pipeline fuses with RRF again")
    return 0
