"""Ingest speed of the user-behaviour event store (OpenSearch UBI JSONL).

    python benchmarks/bench_events.py [--queries 50000] [--events 950000] [--clients 10000]
                                      [--out benchmarks/results/bench_events.json]

1. Generates a seeded synthetic UBI log into a temporary directory: query records and the
   impressions, clicks, add-to-carts and purchases that follow them, for ``--clients`` users
   over 90 days. Events carry no ``event_id`` (the worst case: every id is derived from the
   record) and keep the UBI fields shopsearch does not use (``object_id_field``,
   ``application``), so ``extra`` is stored too.
2. Times a fresh :meth:`EventStore.ingest_file` end to end (open, parse, validate, commit
   every ``--batch-size`` records, 100,000 by default, with ``synchronous=FULL``).
3. Times re-ingesting the same file into the same store, which must store nothing new.

Target (issue): 1,000,000 records in <= 60 s on a 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from shopsearch.events import EventStore
from shopsearch.events.schema import format_timestamp
from shopsearch.events.store import DEFAULT_BATCH_SIZE

DAYS = 90
START = 1_788_220_800.0  # 2026-09-01T00:00:00Z
WORDS = (
    "ugg slippers women water bottle kitchen towels toddler without straw wireless earbuds "
    "running shoes men phone case coffee grinder yoga mat desk lamp backpack"
).split()


def generate(path: Path, *, queries: int, events: int, clients: int, seed: int) -> int:
    """Write a synthetic UBI JSONL log; return the number of lines written."""
    rng = random.Random(seed)
    products = [f"B{n:09d}" for n in range(20_000)]
    per_query = events / queries
    sessions: dict[tuple[str, int], str] = {}
    written_events = 0
    lines = 0
    dumps = json.dumps
    with path.open("w", encoding="utf-8") as out:
        # A log is written as things happen: queries in time order, each followed by its events.
        times = sorted(START + rng.random() * DAYS * 86_400 for _ in range(queries))
        for q, ts in enumerate(times):
            client = f"u{rng.randrange(clients):05d}"
            # UUID-like session and query ids, as UBI clients send them (random index keys).
            session = sessions.setdefault(
                (client, rng.randrange(40)), f"{rng.getrandbits(128):032x}"
            )
            query_id = f"{rng.getrandbits(128):032x}"
            query: dict[str, Any] = {
                "query_id": query_id,
                "client_id": client,
                "session_id": session,
                "user_query": " ".join(rng.sample(WORDS, rng.randint(1, 4))),
                "timestamp": format_timestamp(round(ts, 3)),
                "application": "shopsearch",
                "query_response_id": f"r{q:07d}",
            }
            if rng.random() < 0.3:
                query["query_attributes"] = {"filters": {"price_max": rng.choice([20, 50, 100])}}
            out.write(dumps(query) + "\n")
            lines += 1
            # Spread the events evenly: the last query takes what is left.
            n_events = round((q + 1) * per_query) - written_events
            shown = rng.sample(products, 20)
            for e in range(n_events):
                r = rng.random()
                action = (
                    "impression"
                    if r < 0.6
                    else "click"
                    if r < 0.85
                    else "add_to_cart"
                    if r < 0.95
                    else "purchase"
                )
                ordinal = e % 20
                event = {
                    "action_name": action,
                    "query_id": query_id,
                    "client_id": client,
                    "session_id": session,
                    "timestamp": format_timestamp(round(ts + 1 + e * 2.5, 3)),
                    "application": "shopsearch",
                    "event_attributes": {
                        "object": {"object_id": shown[ordinal], "object_id_field": "asin"},
                        "position": {"ordinal": ordinal},
                    },
                }
                out.write(dumps(event) + "\n")
                lines += 1
            written_events += n_events
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--queries", type=int, default=50_000)
    parser.add_argument("--events", type=int, default=950_000)
    parser.add_argument("--clients", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/bench_events.json"))
    args = parser.parse_args()
    console = Console()

    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "ubi.jsonl"
        started = time.perf_counter()
        with console.status("generating the synthetic UBI log"):
            lines = generate(
                log, queries=args.queries, events=args.events, clients=args.clients, seed=args.seed
            )
        generate_s = time.perf_counter() - started
        size_mb = log.stat().st_size / 1e6
        console.print(f"generated {lines:,} lines ({size_mb:.0f} MB) in {generate_s:.1f} s")

        commits = 0

        def count_commit(_report: object) -> None:
            nonlocal commits
            commits += 1

        index_dir = Path(tmp) / "index"
        index_dir.mkdir()
        started, cpu = time.perf_counter(), time.process_time()
        with EventStore.open(index_dir) as store:
            first = store.ingest_file(log, batch_size=args.batch_size, on_commit=count_commit)
        ingest_s = time.perf_counter() - started
        ingest_cpu = time.process_time() - cpu
        assert not first.problems, first.problems[:3]
        assert first.queries_stored == args.queries and first.events_stored == args.events, first
        db_mb = sum(p.stat().st_size for p in index_dir.iterdir()) / 1e6

        started, cpu = time.perf_counter(), time.process_time()
        with EventStore.open(index_dir) as store:
            second = store.ingest_file(log, batch_size=args.batch_size)
        reingest_s = time.perf_counter() - started
        reingest_cpu = time.process_time() - cpu
        with EventStore.open(index_dir) as store:
            counts = store.counts()
        assert second.queries_stored == 0 and second.events_stored == 0, second
        assert second.duplicates == lines, second
        assert counts["events"] == args.events, counts

    table = Table(
        title=f"EventStore.ingest_file, {lines:,} UBI records (batch {args.batch_size:,})"
    )
    for column in ("run", "seconds", "CPU seconds", "lines/s", "stored", "duplicates"):
        table.add_column(column, justify="left" if column == "run" else "right")
    table.add_row(
        "fresh store",
        f"{ingest_s:.1f}",
        f"{ingest_cpu:.1f}",
        f"{lines / ingest_s:,.0f}",
        f"{first.queries_stored + first.events_stored:,}",
        f"{first.duplicates:,}",
    )
    table.add_row(
        "re-ingest",
        f"{reingest_s:.1f}",
        f"{reingest_cpu:.1f}",
        f"{lines / reingest_s:,.0f}",
        f"{second.queries_stored + second.events_stored:,}",
        f"{second.duplicates:,}",
    )
    console.print(table)
    target = "meets" if ingest_s <= 60 else "MISSES"
    console.print(f"target (1,000,000 records in <= 60 s): {target} ({ingest_s:.1f} s)")
    result = {
        "records": lines,
        "queries": args.queries,
        "events": args.events,
        "clients": args.clients,
        "batch_size": args.batch_size,
        "log_mb": round(size_mb, 1),
        "database_mb": round(db_mb, 1),
        "commits": commits,
        "generate_seconds": round(generate_s, 2),
        "ingest_seconds": round(ingest_s, 2),
        "ingest_cpu_seconds": round(ingest_cpu, 2),
        "ingest_lines_per_second": round(lines / ingest_s),
        "reingest_seconds": round(reingest_s, 2),
        "reingest_cpu_seconds": round(reingest_cpu, 2),
        "reingest_lines_per_second": round(lines / reingest_s),
        "target_seconds": 60,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "sqlite": sqlite3.sqlite_version,
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    console.print(f"written {args.out}")


if __name__ == "__main__":
    main()
