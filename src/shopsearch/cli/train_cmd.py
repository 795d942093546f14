"""``shopsearch train``: fine-tune a cross-encoder reranker or a bi-encoder from a config."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

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


def _dense_prior(args: argparse.Namespace, products: list[Product]) -> tuple[Any, str]:
    """``prior(query, ids)``: the zero-shot dense scores of ``--index``, or of MiniLM."""
    if args.index is not None:
        from shopsearch.pipeline import SearchPipeline

        return SearchPipeline.open(args.index).dense_scores, f"the dense index of {args.index}"
    from shopsearch.models.encoders import EncoderConfig, load_encoder
    from shopsearch.training.data import EncoderPrior

    encoder_config = EncoderConfig()
    prior = EncoderPrior(load_encoder(encoder_config), products, encoder_config.product_fields)
    return prior, f"zero-shot {encoder_config.name} ({encoder_config.backend})"


def _write_cross_encoder_report(args, config, data, products, judgments, result) -> None:  # noqa: ANN001
    """Zero-shot (untrained heads) vs fine-tuned on the test queries, plus retrieval baselines."""
    from shopsearch.models.cross_encoder import CrossEncoderReranker
    from shopsearch.models.encoders import product_text
    from shopsearch.training.reports import evaluate_reranker, write_run_report
    from shopsearch.training.trainer import base_model_dir

    test_queries = set(data.split.test)
    test_ids = {e.product_id for e in data.test}
    fields = tuple(f for f in config.data.product_fields if f != "category") or ("title",)
    by_id = {p.id: p for p in products if p.id in test_ids and p.category}
    category_inputs = {
        "query_categories": {q: c for q, c in data.query_categories.items() if q in test_queries},
        "product_categories": {pid: data.vocab.encode(p.category) for pid, p in by_id.items()},
        "product_texts_for_category": {pid: product_text(p, fields) for pid, p in by_id.items()},
    }
    base = base_model_dir(config.base_model)
    if (base / "reranker.json").is_file():  # warm start from a run: its backbone
        base = base / "model"
    untrained = CrossEncoderReranker.from_pretrained(
        base,
        num_categories=len(data.vocab.labels),
        category_labels=tuple(data.vocab.labels),
        config=config.model,
        max_length=config.data.max_length,
        seed=config.seed,
    )
    before = evaluate_reranker(
        untrained, data.test, name="zero-shot (untrained heads)", **category_inputs
    )
    after = evaluate_reranker(result.reranker, data.test, name="fine-tuned", **category_inputs)
    extra: dict = {"seconds": result.seconds}
    if args.index is not None:
        from shopsearch.evaluation.protocols import compare
        from shopsearch.pipeline import EvaluablePipelineAdapter, SearchPipeline

        with SearchPipeline.open(args.index) as search:
            results = compare(
                [EvaluablePipelineAdapter(search, n) for n in ("bm25", "dense", "hybrid")],
                [j for j in judgments if j.query in test_queries],
                protocol="rerank",
                catalog_ids=set(search.snapshot.id_to_row),
            )
        extra["baselines_rerank_ndcg_test"] = {r.pipeline: r.summary()["ndcg"] for r in results}
    write_run_report(args.out, history=result.history, before=before, after=after, extra=extra)
    stderr.print(
        f"test queries: rerank nDCG {before.rerank_ndcg:.4f} -> {after.rerank_ndcg:.4f}, "
        f"ESCI micro-F1 {before.esci_micro_f1:.4f} -> {after.esci_micro_f1:.4f}"
        + "".join(
            f", {name} {value:.4f}"
            for name, value in extra.get("baselines_rerank_ndcg_test", {}).items()
        )
        + f"; report: {args.out / 'report.md'}"
    )


def _catalog_products(args: argparse.Namespace, config: Any) -> tuple[list[Product], str]:
    """The catalog of ``--index`` (what a shop without judgments has), else data.catalog."""
    if args.index is not None:
        from shopsearch.catalog.store import CatalogStore
        from shopsearch.index.directory import IndexDirectory

        directory = IndexDirectory(args.index)
        if not directory.db_path.is_file():
            raise IndexNotFoundError(f"no index at {args.index}")
        with CatalogStore(directory.db_path, readonly=True) as store:
            return list(store.iter_products()), f"the catalog of {args.index}"
    from shopsearch.training.data import load_sources

    products, _ = load_sources(config.data)
    return products, config.data.catalog or "the bundled ESCI-US catalog"


def _run_self_supervised(args: argparse.Namespace, config: Any, started: float) -> int:
    from shopsearch.training.bi_encoder import train_bi_encoder
    from shopsearch.training.self_supervised import self_supervised_data

    products, where = _catalog_products(args, config)
    settings = config.self_supervised
    data = self_supervised_data(
        products,
        fields=config.data.product_fields,
        max_products=settings.max_products,
        queries_per_product=settings.queries_per_product,
        word_dropout=settings.word_dropout,
        typo_rate=settings.typo_rate,
        seed=config.seed,
        validation_products=settings.validation_products,
    )
    stderr.print(
        f"self-supervised: {len(data.train):,} pseudo-query pairs from {where} "
        f"({len(products):,} products), {len(data.split.validation)} validation queries; "
        "no judgments read"
    )
    examples = [ex.query for ex in data.train[:5]]
    stderr.print(f"e.g. {examples}")
    args.out.mkdir(parents=True, exist_ok=True)
    result = train_bi_encoder(config, data, args.out, progress=RichProgress())
    stdout.print(
        f"Trained a self-supervised bi-encoder in {time.perf_counter() - started:.0f} s: best "
        f"val_ndcg (pseudo-queries) {result.best_metric:.4f}; model in {result.best_dir}"
    )
    return 0


def run_train(args: argparse.Namespace) -> int:
    from shopsearch.training.config import TrainConfig
    from shopsearch.training.data import load_mixture, prepare_mixture

    started = time.perf_counter()
    config = TrainConfig.load(args.config).with_overrides(key_values(args.set, "--set"))
    if config.self_supervised.enabled:
        return _run_self_supervised(args, config, started)
    sources = load_mixture(config)
    if args.index is not None and len(sources) > 1:
        raise IndexNotFoundError(
            "--index mines negatives from one catalog: a mixture of sources mines each "
            "source's with an in-memory BM25 instead (leave --index out)"
        )
    products = [p for s in sources for p in s.products]
    judgments = [j for s in sources for j in s.judgments]
    searches = {}
    if config.data.hard_negatives > 0:
        for source in sources:
            searches[source.name], how = _negatives_search(
                args, source.products, config.data.negatives_from
            )
            stderr.print(
                f"{source.name}: mining {config.data.hard_negatives} hard negatives per query "
                f"with {how}"
            )
    prior = None
    if config.task == "cross-encoder" and config.model.prior_weight > 0.0:
        prior, how = _dense_prior(args, products)
        stderr.print(f"prior: dense similarity from {how}")
    data, per_source = prepare_mixture(config, sources, searches=searches, prior=prior)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "split.json").write_text(json.dumps(data.split.to_dict(), indent=2))
    if len(per_source) > 1:
        (args.out / "sources.json").write_text(json.dumps(per_source, indent=2))
        for name, summary in per_source.items():
            stderr.print(f"{name}: {summary}")
    stderr.print(f"training data: {data.summary()}")
    progress = RichProgress()
    if config.task == "cross-encoder":
        from shopsearch.training.trainer import train_cross_encoder

        result = train_cross_encoder(config, data, args.out, progress=progress, resume=args.resume)
    else:
        from shopsearch.training.bi_encoder import train_bi_encoder

        result = train_bi_encoder(config, data, args.out, progress=progress)
    if config.task == "cross-encoder":
        _write_cross_encoder_report(args, config, data, products, judgments, result)
    stdout.print(
        f"Trained a {config.task} in {time.perf_counter() - started:.0f} s: best "
        f"{config.train.early_stopping_metric} {result.best_metric:.4f}; "
        f"{result.trainable_params:,} of {result.total_params:,} parameters trained"
        + (" (stopped early)" if result.stopped_early else "")
        + f"; model in {result.best_dir}"
    )
    return 0
