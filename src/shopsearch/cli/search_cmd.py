"""``shopsearch search`` and ``shopsearch info``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.markup import escape
from rich.table import Table

from shopsearch.cli.common import add_index_dir, print_json, stdout
from shopsearch.index.filters import Filters
from shopsearch.pipeline import (
    BACKENDS_FILE,
    DEFAULT_K,
    PIPELINES,
    SearchPipeline,
    SearchResult,
)
from shopsearch.query.parsed import RELAXABLE


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    search = subparsers.add_parser(
        "search",
        help="search an index",
        description="Search DIR. Filters: brand=A,B color=A,B 'category=A > B' "
        "price=LOW..HIGH price<=N price>=N rating>=N.",
    )
    add_index_dir(search)
    search.add_argument("queries", nargs="+", metavar="QUERY")
    search.add_argument("-k", type=int, default=DEFAULT_K, help="results per query")
    search.add_argument("--filter", action="append", default=[], metavar="SPEC")
    search.add_argument(
        "--pipeline",
        metavar="NAME",
        help=f"a built-in ({', '.join(PIPELINES)}) or one the index defines; "
        "default: the index's default (see `shopsearch info`)",
    )
    search.add_argument(
        "--explain",
        action="store_true",
        help="score breakdown: BM25 per field; for the personal pipeline, the contribution "
        "of each feature group (they sum to the score)",
    )
    search.add_argument(
        "--relax",
        action="append",
        default=[],
        choices=RELAXABLE,
        help="switch a part of the query analysis off (a price written in the query, "
        "negations, the audience boost, -word and quoted-phrase operators); repeatable",
    )
    search.add_argument("--user", metavar="ID", help="personalize for this shopper (client_id)")
    search.add_argument("--session", metavar="ID", help="and this session (session_id)")
    search.add_argument("--json", action="store_true", help="machine-readable output")
    search.set_defaults(run=run_search)

    info = subparsers.add_parser("info", help="describe an index directory")
    add_index_dir(info)
    info.add_argument("--json", action="store_true")
    info.set_defaults(run=run_info)


def result_to_dict(result: SearchResult) -> dict:
    return {
        "query": result.query,
        "pipeline": result.pipeline,
        "took_ms": round(result.took_ms, 2),
        "candidates": result.candidates,
        "parsed": result.parsed.to_dict() if result.parsed is not None else None,
        "hits": [
            {
                "product_id": h.product_id,
                "score": h.score,
                "scores": dict(h.scores),
                "product": h.product.to_dict() if h.product else None,
            }
            for h in result.hits
        ],
        "facets": {name: [[v, n] for v, n in values] for name, values in result.facets.items()},
    }


def _print_result(result: SearchResult, explain: bool) -> None:
    table = Table(
        title=f"[bold]{result.query}[/]  ({result.pipeline}, {result.took_ms:.1f} ms)",
        title_justify="left",
    )
    for column in ("#", "score", "bm25", "dense", "title", "brand", "price", "rating"):
        if column == "title":
            table.add_column(column, overflow="ellipsis", no_wrap=True, max_width=70)
        else:
            table.add_column(column, no_wrap=True)
    for rank, hit in enumerate(result.hits, start=1):
        p = hit.product
        table.add_row(
            str(rank),
            f"{hit.score:.4f}",
            f"{hit.scores['bm25']:.2f}" if "bm25" in hit.scores else "",
            f"{hit.scores['dense']:.3f}" if "dense" in hit.scores else "",
            (p.title[:90] if p else hit.product_id),
            p.brand if p else "",
            f"${p.price:,.2f}" if p and p.price is not None else "",
            f"{p.rating:.1f} ({p.rating_count or 0:,})" if p and p.rating is not None else "",
        )
        if explain:
            parts = ", ".join(
                f"{k}={v:.3f}"
                for k, v in hit.scores.items()
                if (k.startswith("bm25.") or k.startswith("ltr.")) and v
            )
            table.add_row("", "", "", "", f"[dim]{parts}[/]", "", "", "")
    stdout.print(table)
    _print_parsed(result, explain)
    facets = "   ".join(
        f"[bold]{name}[/]: " + ", ".join(f"{v} ({n})" for v, n in values[:5])
        for name, values in result.facets.items()
        if values
    )
    if facets:
        stdout.print(facets)


def _print_parsed(result: SearchResult, explain: bool) -> None:
    """What query analysis understood: always when it changed something, in full with
    ``--explain``."""
    parsed = result.parsed
    if parsed is None or not (explain or parsed.rewritten or parsed.constraints()):
        return
    parts = [f"matched [bold]{escape(parsed.text)}[/]"]
    if parsed.corrections:
        fixed = ", ".join(f"{escape(a)} -> {escape(b)}" for a, b in parsed.corrections)
        parts.append(f"spelling: {fixed} (--relax spelling: as typed)")
    parts += [escape(c["label"]) for c in parsed.constraints()]
    if parsed.relaxed:
        parts.append(f"relaxed: {', '.join(parsed.relaxed)}")
    stdout.print("[dim]Understood:[/] " + "; ".join(parts))


def run_search(args: argparse.Namespace) -> int:
    filters = Filters.parse(args.filter)
    with SearchPipeline.open(args.index_dir) as pipeline:
        results = [
            pipeline.search(
                q,
                args.k,
                filters=filters,
                pipeline=args.pipeline,
                explain=args.explain,
                user=args.user,
                session=args.session,
                relax=args.relax,
            )
            for q in args.queries
        ]
    if args.json:
        print_json(
            [result_to_dict(r) for r in results] if len(results) > 1 else result_to_dict(results[0])
        )
    else:
        for result in results:
            _print_result(result, args.explain)
    return 0


def run_info(args: argparse.Namespace) -> int:
    with SearchPipeline.open(args.index_dir) as pipeline:
        snapshot = pipeline.snapshot
        info = {
            "directory": str(args.index_dir),
            "products": len(pipeline),
            "snapshot": snapshot.name,
            "pipelines": pipeline.describe_pipelines(),
            "default_pipeline": pipeline.default_pipeline,
            "dense_search": "ann (HNSW)" if snapshot.vectors.uses_ann else "exact",
            "config": pipeline.config.to_dict(),
            "encoder": {"name": pipeline.encoder.name, "dim": pipeline.encoder.dim},
            "backends": pipeline.backends(),
            "backends_recorded": _recorded_backends(args.index_dir),
        }
    if args.json:
        print_json(info)
        return 0
    pipelines = info.pop("pipelines")
    for key, value in info.items():
        stdout.print(f"[bold]{key}[/]: {value}")
    stdout.print("[bold]pipelines[/]:")
    for name, entry in pipelines.items():
        mark = "*" if name == info["default_pipeline"] else " "
        needs = "" if entry["available"] else f"  [dim](needs {entry['needs']})[/]"
        stdout.print(f" {mark} {name}: {entry['stages']}{needs}", markup=True)
    return 0


def _recorded_backends(index_dir: Path) -> dict | None:
    """What `shopsearch index` / `refresh` recorded in DIR/backends.json (None if nothing)."""
    path = Path(index_dir) / BACKENDS_FILE
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))
