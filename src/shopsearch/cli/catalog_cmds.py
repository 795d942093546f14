"""``shopsearch index``, ``upsert`` and ``delete``: write the catalog and its indexes."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from shopsearch.catalog.loaders import LoadReport, load_catalog
from shopsearch.cli.common import add_index_dir, key_values, stderr, stdout
from shopsearch.errors import CatalogError
from shopsearch.index.config import IndexConfig
from shopsearch.pipeline import SearchPipeline
from shopsearch.progress import RichProgress

SHOWN_PROBLEMS = 20


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    index = subparsers.add_parser(
        "index",
        help="build an index directory from a catalog file (replaces its contents atomically)",
        description="Load CATALOG (JSONL, JSONL.gz, CSV or Parquet), then build the BM25 and "
        "dense indexes and the embedded catalog database in DIR.",
    )
    index.add_argument("catalog", metavar="CATALOG", type=Path)
    index.add_argument("--out", required=True, type=Path, metavar="DIR", help="index directory")
    _add_load_options(index)
    index.add_argument("--config", type=Path, help="an index config JSON file")
    index.add_argument(
        "--set",
        action="append",
        metavar="SECTION.KEY=VALUE",
        help="override a config value, e.g. --set fusion.method=weighted (repeatable)",
    )
    _add_model_options(index)
    index.set_defaults(run=run_index)

    refresh = subparsers.add_parser(
        "refresh",
        help="rebuild an index from its own catalog with new models or settings",
        description="Re-index the products stored in DIR (no catalog file needed), e.g. with a "
        "fine-tuned encoder or a reranker; the swap is atomic like any write.",
    )
    add_index_dir(refresh)
    _add_model_options(refresh)
    refresh.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE")
    refresh.set_defaults(run=run_refresh)

    upsert = subparsers.add_parser(
        "upsert", help="add or replace products from a catalog file, incrementally"
    )
    add_index_dir(upsert)
    upsert.add_argument("catalog", metavar="CATALOG", type=Path)
    _add_load_options(upsert)
    upsert.set_defaults(run=run_upsert)

    delete = subparsers.add_parser("delete", help="remove products by id, incrementally")
    add_index_dir(delete)
    delete.add_argument("ids", nargs="*", metavar="ID")
    delete.add_argument("--ids-file", type=Path, help="a file with one product id per line")
    delete.set_defaults(run=run_delete)


def _add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--encoder",
        metavar="MODEL",
        help="bi-encoder: 'minilm' (default), a sentence-transformers model dir, or a "
        "`shopsearch train` bi-encoder run (its best/)",
    )
    parser.add_argument(
        "--reranker", metavar="RUN_DIR", help="a `shopsearch train` cross-encoder run"
    )


def _model_overrides(args: argparse.Namespace) -> dict[str, str]:
    overrides = key_values(args.set, "--set")
    if args.encoder:
        encoder = Path(args.encoder)
        if (encoder / "best").is_dir():
            encoder = encoder / "best"
        overrides["encoder.name"] = json.dumps(str(encoder) if encoder.exists() else args.encoder)
    if args.reranker:
        if not Path(args.reranker).is_dir():
            raise CatalogError(f"--reranker {args.reranker}: no such run directory")
        overrides["reranker.path"] = json.dumps(str(Path(args.reranker).resolve()))
    return overrides


def _add_load_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--field",
        action="append",
        metavar="SOURCE=CANONICAL",
        help="map a source field to a canonical one, e.g. --field sku_code=id (repeatable)",
    )
    parser.add_argument(
        "--strict", action="store_true", help="stop at the first bad row instead of reporting it"
    )
    parser.add_argument(
        "--errors", type=Path, metavar="FILE", help="write every rejected row to FILE (JSONL)"
    )


def _load(args: argparse.Namespace) -> LoadReport:
    aliases = key_values(args.field, "--field")
    progress = RichProgress()
    with progress.stage(f"Reading {args.catalog.name}") as advance:
        seen = 0

        def report(rows: int) -> None:
            nonlocal seen
            advance(rows - seen)
            seen = rows

        report_ = load_catalog(args.catalog, aliases=aliases, strict=args.strict, progress=report)
    for problem in report_.problems[:SHOWN_PROBLEMS]:
        stderr.print(f"[yellow]rejected[/] {problem.location}: {problem.reason}", markup=True)
    if len(report_.problems) > SHOWN_PROBLEMS:
        stderr.print(f"... and {len(report_.problems) - SHOWN_PROBLEMS:,} more rejected rows")
    if args.errors:
        with open(args.errors, "w", encoding="utf-8") as handle:
            for problem in report_.problems:
                handle.write(
                    json.dumps(
                        {
                            "source": problem.source,
                            "line": problem.line,
                            "product_id": problem.product_id,
                            "reason": problem.reason,
                        },
                        ensure_ascii=False,
                    )
                    + "\n"
                )
    stderr.print(
        f"{args.catalog}: {report_.rows_read:,} rows read, {len(report_.products):,} accepted, "
        f"{len(report_.problems):,} rejected"
        + (f" (listed in {args.errors})" if args.errors and report_.problems else "")
    )
    if not report_.products:
        raise CatalogError(f"{args.catalog}: no usable product rows")
    return report_


def run_index(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    config = IndexConfig.load(args.config) if args.config else IndexConfig()
    config = config.with_overrides(_model_overrides(args))
    report = _load(args)
    pipeline = SearchPipeline.build(
        report.products, args.out, config=config, progress=RichProgress()
    )
    _prepare_reranker(pipeline)
    seconds = time.perf_counter() - started
    stdout.print(
        f"Indexed {len(pipeline):,} products into {args.out} in {seconds:.1f} s "
        f"({len(report.problems):,} rows rejected)"
    )
    pipeline.close()
    return 0


def _prepare_reranker(pipeline: SearchPipeline) -> None:
    """Load the reranker now (exporting it to ONNX once) rather than at the first search,
    then record which backend each model runs on, and why, in ``DIR/backends.json``."""
    if pipeline.config.reranker.path:
        with RichProgress().stage("Loading the reranker", 1) as advance:
            pipeline.prepare_reranker()
            advance(1)
    pipeline.record_backends()
    for model, choice in (
        ("encoder", getattr(pipeline.encoder, "backend_choice", None)),
        ("reranker", pipeline.reranker_choice),
    ):
        if choice is not None:
            stdout.print(f"{model.capitalize()} backend: {choice.summary()}")


def run_refresh(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    with SearchPipeline.open(args.index_dir) as current:
        config = current.config.with_overrides(_model_overrides(args))
        products = list(current.store.iter_products())
    pipeline = SearchPipeline.build(
        products, args.index_dir, config=config, progress=RichProgress()
    )
    _prepare_reranker(pipeline)
    stdout.print(
        f"Refreshed {args.index_dir}: {len(pipeline):,} products re-indexed in "
        f"{time.perf_counter() - started:.1f} s; pipelines: {', '.join(pipeline.pipelines)}"
    )
    pipeline.close()
    return 0


def run_upsert(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    report = _load(args)
    with SearchPipeline.open(args.index_dir) as pipeline:
        before = len(pipeline)
        pipeline.upsert(report.products, progress=RichProgress())
        stdout.print(
            f"Upserted {len(report.products):,} products into {args.index_dir} "
            f"({len(pipeline) - before:+,} net, {len(pipeline):,} total) "
            f"in {time.perf_counter() - started:.1f} s"
        )
    return 0


def run_delete(args: argparse.Namespace) -> int:
    ids = list(args.ids)
    if args.ids_file:
        ids += [
            line.strip()
            for line in args.ids_file.read_text(encoding="utf-8").splitlines()
            if line.strip()
        ]
    if not ids:
        stderr.print("nothing to delete: give ids or --ids-file")
        return 2
    with SearchPipeline.open(args.index_dir) as pipeline:
        removed = pipeline.delete(ids)
        stdout.print(
            f"Deleted {removed:,} of {len(set(ids)):,} ids ({len(set(ids)) - removed:,} unknown); "
            f"{len(pipeline):,} products remain"
        )
    return 0
