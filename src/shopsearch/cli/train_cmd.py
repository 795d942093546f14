"""``shopsearch train``: fine-tune a cross-encoder reranker or a bi-encoder from a config."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

from shopsearch.catalog.schema import Product
from shopsearch.cli.common import key_values, stderr, stdout
from shopsearch.errors import IndexNotFoundError
from shopsearch.progress import RichProgress


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="fine-tune a model (cross-encoder reranker or bi-encoder) from a config file",
        description="Train from CONFIG (TOML or JSON, see configs/), refined with --set "
        "SECTION.KEY=VALUE; the run directory gets the best model, history, split and reports.",
    )
    parser.add_argument("config", metavar="CONFIG", type=Path)
    parser.add_argument("--out", required=True, type=Path, metavar="RUN_DIR")
    parser.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE")
    parser.add_argument(
        "--index",
        type=Path,
        metavar="DIR",
        help="an index of the same catalog to mine hard negatives with "
        "(data.negatives_from); without it they are mined with an in-memory BM25",
    )
    parser.add_argument("--resume", action="store_true", help="continue RUN_DIR's checkpoint")
    parser.set_defaults(run=run_train)


def _negatives_search(
    args: argparse.Namespace, products: list[Product], pipeline: str
) -> tuple[Callable[[str, int], list[str]], str]:
    """A ``search(query, k) -> ids`` for mining, and a description of where it comes from."""
    if args.index is not None:
        from shopsearch.pipeline import SearchPipeline

        search_pipeline = SearchPipeline.open(args.index)
        if pipeline not in search_pipeline.pipelines:
            raise IndexNotFoundError(f"{args.index} cannot run the {pipeline!r} pipeline")

        def search(query: str, k: int) -> list[str]:
            result = search_pipeline.search(
                query, k, pipeline=pipeline, facets=False, products=False
            )
            return [h.product_id for h in result.hits]

        return search, f"{pipeline} retrieval over {args.index}"
    from shopsearch.index.lexical import BM25Index
    from shopsearch.index.snapshot import lexical_fields

    index = BM25Index()
    index.add([lexical_fields(p) for p in products])
    ids = [p.id for p in products]

    def bm25_search(query: str, k: int) -> list[str]:
        rows, _ = index.search(query, k)
        return [ids[r] for r in rows.tolist()]

    return bm25_search, "in-memory BM25 (pass --index DIR to use another pipeline)"


def run_train(args: argparse.Namespace) -> int:
    from shopsearch.training.config import TrainConfig
    from shopsearch.training.data import load_sources, prepare

    started = time.perf_counter()
    config = TrainConfig.load(args.config).with_overrides(key_values(args.set, "--set"))
    products, judgments = load_sources(config.data)
    search = None
    if config.data.hard_negatives > 0:
        search, source = _negatives_search(args, products, config.data.negatives_from)
        stderr.print(f"mining {config.data.hard_negatives} hard negatives per query with {source}")
    data = prepare(config, products=products, judgments=judgments, search=search)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "split.json").write_text(json.dumps(data.split.to_dict(), indent=2))
    stderr.print(f"training data: {data.summary()}")
    progress = RichProgress()
    if config.task == "cross-encoder":
        from shopsearch.training.trainer import train_cross_encoder

        result = train_cross_encoder(config, data, args.out, progress=progress, resume=args.resume)
    else:
        from shopsearch.training.bi_encoder import train_bi_encoder

        result = train_bi_encoder(config, data, args.out, progress=progress)
    stdout.print(
        f"Trained a {config.task} in {time.perf_counter() - started:.0f} s: best "
        f"{config.train.early_stopping_metric} {result.best_metric:.4f}; "
        f"{result.trainable_params:,} of {result.total_params:,} parameters trained"
        + (" (stopped early)" if result.stopped_early else "")
        + f"; model in {result.best_dir}"
    )
    return 0
