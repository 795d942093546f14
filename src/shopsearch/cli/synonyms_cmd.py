"""``shopsearch synonyms``: propose synonym rules for review, and check a synonym file."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.markup import escape
from rich.table import Table

from shopsearch.catalog.store import CatalogStore
from shopsearch.cli.common import add_index_dir, print_json, stdout
from shopsearch.errors import IndexNotFoundError
from shopsearch.events.database import DB_NAME
from shopsearch.events.store import EventStore
from shopsearch.index.directory import IndexDirectory
from shopsearch.query.mining import catalog_proposals, reformulation_proposals
from shopsearch.query.synonyms import SynonymRules
from shopsearch.search.analysis import SYNONYMS


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    synonyms = subparsers.add_parser(
        "synonyms",
        help="propose synonym rules (for review) and check DIR/synonyms.txt",
        description="Synonym rules live in DIR/synonyms.txt (Solr / Elasticsearch format: "
        "'a, b, c' and 'a => b'); searches re-read the file when it changes, no re-indexing. "
        "`mine` proposes rules from the catalog and the logged reformulations; it never "
        "changes DIR/synonyms.txt: review the proposals and copy the good ones there.",
    )
    commands = synonyms.add_subparsers(dest="synonyms_command", required=True, metavar="COMMAND")
    mine = commands.add_parser("mine", help="propose rules from the catalog and the event log")
    add_index_dir(mine)
    mine.add_argument("--min-count", type=int, default=3, help="products per spelling")
    mine.add_argument("--min-sessions", type=int, default=2, help="sessions per reformulation")
    mine.add_argument("--out", type=Path, metavar="FILE", help="write the proposals there")
    mine.add_argument("--json", action="store_true")
    mine.set_defaults(run=run_mine)
    check = commands.add_parser("check", help="parse DIR/synonyms.txt and report mistakes")
    add_index_dir(check)
    check.set_defaults(run=run_check)


def run_mine(args: argparse.Namespace) -> int:
    directory = IndexDirectory(args.index_dir)
    if not directory.db_path.exists():
        raise IndexNotFoundError(f"no index at {args.index_dir} (run `shopsearch index`)")
    with CatalogStore(directory.db_path, readonly=True) as store:
        proposals = catalog_proposals(store.iter_products(), args.min_count)
    if (args.index_dir / DB_NAME).exists():
        with EventStore.open(args.index_dir, readonly=True) as events:
            proposals += reformulation_proposals(
                events.session_queries(), min_sessions=args.min_sessions
            )
    if args.out is not None:
        if args.out.resolve() == (args.index_dir / SYNONYMS).resolve():
            raise IndexNotFoundError(
                f"--out would overwrite the rules in use ({args.out}): write elsewhere, review"
            )
        lines = ["# Proposed by `shopsearch synonyms mine`: review before use", ""]
        lines += [f"{p.rule}  # {p.source}: {p.note}" for p in proposals]
        args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    if args.json:
        print_json([p.__dict__ for p in proposals])
        return 0
    table = Table(title=f"{len(proposals)} proposed rules (not applied)", title_justify="left")
    for column in ("rule", "source", "evidence"):
        table.add_column(column)
    for p in proposals:
        table.add_row(escape(p.rule), p.source, escape(p.note))
    stdout.print(table)
    if args.out is not None:
        stdout.print(f"written {args.out}: copy the good lines into {args.index_dir / SYNONYMS}")
    return 0


def run_check(args: argparse.Namespace) -> int:
    path = args.index_dir / SYNONYMS
    if not path.exists():
        stdout.print(f"{path} does not exist: only the built-in rules apply")
        return 0
    rules = SynonymRules.parse(path.read_text(encoding="utf-8"), str(path))
    stdout.print(f"{path}: {len(rules)} rules, no mistakes")
    return 0
