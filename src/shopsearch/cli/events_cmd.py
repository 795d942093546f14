"""``shopsearch events ingest`` and ``events info``: store user-behaviour logs (UBI JSONL)."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from rich.table import Table

from shopsearch.cli.common import add_index_dir, print_json, stderr, stdout
from shopsearch.errors import EventRecordError, IndexNotFoundError, InvalidQueryError
from shopsearch.events import (
    ACTIONS,
    DB_NAME,
    EventStore,
    IngestReport,
    RetentionPolicy,
    format_timestamp,
)
from shopsearch.events.store import DEFAULT_BATCH_SIZE
from shopsearch.progress import RichProgress

SHOWN_PROBLEMS = 20


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    events = subparsers.add_parser(
        "events",
        help="store user-behaviour events (OpenSearch UBI JSONL) next to an index",
        description="User-behaviour events: query records and impression, click, add_to_cart "
        "and purchase events in the OpenSearch User Behavior Insights format, stored in "
        f"DIR/{DB_NAME}.",
    )
    commands = events.add_subparsers(dest="events_command", required=True, metavar="COMMAND")

    ingest = commands.add_parser(
        "ingest",
        help="store the records of a UBI JSONL file (idempotent: records already stored are "
        "skipped)",
        description="Read FILE (JSONL or JSONL.gz, one UBI query or event record per line) and "
        "store its records in DIR. Bad lines are reported with their line number and skipped; "
        "ingesting a file again stores nothing twice.",
    )
    add_index_dir(ingest)
    ingest.add_argument("file", metavar="FILE", type=Path, help="UBI JSONL file (.gz too)")
    ingest.add_argument(
        "--errors", type=Path, metavar="FILE", help="write every rejected line to FILE (JSONL)"
    )
    ingest.add_argument(
        "--strict",
        action="store_true",
        help="stop at the first bad line and store nothing from FILE",
    )
    ingest.add_argument(
        "--max-age-days",
        type=float,
        metavar="N",
        help="then drop events older than N days before the newest stored event",
    )
    ingest.add_argument(
        "--max-events", type=int, metavar="N", help="then keep only the newest N events"
    )
    ingest.add_argument(
        "--batch-size",
        type=int,
        default=DEFAULT_BATCH_SIZE,
        metavar="N",
        help=f"records per commit (default {DEFAULT_BATCH_SIZE:,})",
    )
    ingest.set_defaults(run=run_ingest)

    info = commands.add_parser("info", help="count the stored queries and events")
    add_index_dir(info)
    info.add_argument("--json", action="store_true", help="print the counts as JSON")
    info.set_defaults(run=run_info)


def _require_dir(path: Path) -> None:
    if not path.is_dir():
        raise IndexNotFoundError(
            f"{path}: no such index directory (build one with `shopsearch index`)"
        )


def run_ingest(args: argparse.Namespace) -> int:
    _require_dir(args.index_dir)
    if args.batch_size < 1:
        raise InvalidQueryError(f"--batch-size must be >= 1, not {args.batch_size}")
    retention = None
    if args.max_age_days is not None or args.max_events is not None:
        retention = RetentionPolicy(max_age_days=args.max_age_days, max_events=args.max_events)
    started = time.perf_counter()
    with EventStore.open(args.index_dir) as store:
        with RichProgress().stage(f"Ingesting {args.file.name}") as advance:
            seen = 0

            def acknowledged(report: IngestReport) -> None:
                nonlocal seen
                advance(report.lines_read - seen)
                seen = report.lines_read

            report = store.ingest_file(
                args.file,
                batch_size=args.batch_size,
                on_commit=acknowledged,
                strict=args.strict,
                retention=retention,
            )
            advance(report.lines_read - seen)
    _report_problems(report, args.errors)
    stdout.print(
        f"{args.file}: {report.lines_read:,} lines read; {report.queries_stored:,} queries and "
        f"{report.events_stored:,} events stored, {report.duplicates:,} duplicates, "
        f"{report.rejected:,} rejected"
        + (f" (listed in {args.errors})" if args.errors and report.problems else "")
        + f" in {time.perf_counter() - started:.1f} s"
    )
    if report.pruned:
        stdout.print(f"Retention: {report.pruned:,} old events removed")
    if report.records_read == 0:
        raise EventRecordError(str(args.file), "no usable query or event records")
    return 0


def _report_problems(report: IngestReport, errors: Path | None) -> None:
    for problem in report.problems[:SHOWN_PROBLEMS]:
        stderr.print(f"[yellow]rejected[/] {problem.location}: {problem.reason}", markup=True)
    if len(report.problems) > SHOWN_PROBLEMS:
        stderr.print(f"... and {len(report.problems) - SHOWN_PROBLEMS:,} more rejected lines")
    if errors:
        with open(errors, "w", encoding="utf-8") as handle:
            for problem in report.problems:
                record = {
                    "source": problem.source,
                    "line": problem.line,
                    "location": problem.location,
                    "reason": problem.reason,
                }
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")


def run_info(args: argparse.Namespace) -> int:
    _require_dir(args.index_dir)
    if not (args.index_dir / DB_NAME).is_file():
        raise IndexNotFoundError(
            f"{args.index_dir} has no events yet (add some with `shopsearch events ingest "
            f"{args.index_dir} FILE`)"
        )
    with EventStore.open(args.index_dir, readonly=True) as store:
        counts = store.counts()
        clients = len(store.clients())
        span = store.time_range()
    info = {
        **counts,
        "clients": clients,
        "first_event": format_timestamp(span[0]) if span else None,
        "last_event": format_timestamp(span[1]) if span else None,
    }
    if args.json:
        print_json(info)
        return 0
    table = Table(title=f"Events in {args.index_dir}")
    table.add_column("", justify="left")
    table.add_column("count", justify="right")
    for key in ("queries", "events", *ACTIONS, "clients"):
        label = f"  {key}" if key in ACTIONS else key
        table.add_row(label, f"{info[key]:,}")
    stdout.print(table)
    if span:
        stdout.print(f"Events from {info['first_event']} to {info['last_event']}")
    return 0
