"""Speed of the personal stage's per-query behaviour table and of the store's change check.

    python benchmarks/bench_behaviour.py [--queries 50000] [--events 950000] [--clients 10000]
                                         [--store DIR] [--out FILE]

1. Fills an event store with the synthetic UBI log of ``benchmarks/bench_events.py`` (same
   generator and defaults: 50,000 queries and 950,000 events of 10,000 shoppers), or reuses
   the one at ``--store DIR`` (kept there for the next run).
2. Times a full build of :class:`~shopsearch.context.behaviour.QueryBehaviour` from the store
   (``from_store``: one paged JOIN over every event), and once the event-by-event path it
   replaces (every event decoded, one query lookup per event) for comparison.
3. Times the incremental refresh after another connection (as the server's ``POST
   /v1/events`` does) adds 10 or 1,000 events (with their query records), both
   ``QueryBehaviour.refresh`` alone and ``ContextRanker.behaviour()`` (the change check,
   the refresh and the per-shopper profile invalidation), and a refresh with nothing new.
4. Times ``EventStore.version()`` per call (``PRAGMA data_version``) and the query it
   replaces (``SELECT MAX(rowid) FROM events``).

Prints p50 / p95 and writes JSON (by default ``benchmarks/results/bench_behaviour.json``).
No timed asserts: numbers to read.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))
RESULTS = ROOT / "benchmarks" / "results"

from bench_events import START, WORDS, generate  # noqa: E402

from shopsearch.context.behaviour import QueryBehaviour  # noqa: E402
from shopsearch.context.ranker import ContextRanker  # noqa: E402
from shopsearch.events import EventRecord, EventStore, QueryRecord  # noqa: E402


def fill(directory: Path, *, queries: int, events: int, clients: int, seed: int) -> float:
    """Ingest the synthetic log into ``directory`` unless it already holds it; seconds."""
    with EventStore.open(directory) as store:
        if store.counts()["events"] >= events:
            return 0.0
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "ubi.jsonl"
        generate(log, queries=queries, events=events, clients=clients, seed=seed)
        with EventStore.open(directory) as store:
            report = store.ingest_file(log)
    assert not report.problems, report.problems[:3]
    return time.perf_counter() - started


class Traffic:
    """New records as a live shop produces them: a query and its events (bench_events'
    action mix) of random shoppers, with the same products and query words."""

    def __init__(self, clients: int, seed: int) -> None:
        self.rng = random.Random(seed)
        self.clients = clients
        self.n = 0
        self.run = f"{time.time_ns():x}"  # new ids in a reused store too

    def records(self, n_events: int) -> list[QueryRecord | EventRecord]:
        rng, out = self.rng, []
        while n_events > 0:
            self.n += 1
            client = f"u{rng.randrange(self.clients):05d}"
            query_id = f"live-q{self.run}-{self.n}"
            t = START + 91 * 86_400 + self.n
            text = " ".join(rng.sample(WORDS, rng.randint(1, 4)))
            out.append(QueryRecord(query_id, client, f"live-s{client}", text, t))
            for e in range(min(n_events, 10)):
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
                out.append(
                    EventRecord(
                        f"live-e{self.run}-{self.n}-{e}",
                        action,
                        query_id,
                        client,
                        f"live-s{client}",
                        t + e,
                        f"B{rng.randrange(20_000):09d}",
                        e,
                    )
                )
            n_events -= 10
        return out


def stats(seconds: list[float], unit: float = 1e3) -> dict[str, float]:
    a = np.asarray(seconds) * unit
    return {
        "p50": round(float(np.percentile(a, 50)), 3),
        "p95": round(float(np.percentile(a, 95)), 3),
        "mean": round(float(a.mean()), 3),
        "n": len(seconds),
    }


def per_call_us(fn: Callable[[], Any], calls: int, blocks: int) -> list[float]:
    """Mean seconds per call of ``blocks`` blocks of ``calls`` calls (a call is too short to
    time alone)."""
    for _ in range(calls):
        fn()
    out = []
    for _ in range(blocks):
        started = time.perf_counter()
        for _ in range(calls):
            fn()
        out.append((time.perf_counter() - started) / calls)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--queries", type=int, default=50_000)
    parser.add_argument("--events", type=int, default=950_000)
    parser.add_argument("--clients", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--store", type=Path, help="keep (and reuse) the event store here")
    parser.add_argument("--rebuilds", type=int, default=3)
    parser.add_argument("--refreshes", type=int, default=30, help="per batch size")
    parser.add_argument("--skip-legacy", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS / "bench_behaviour.json")
    args = parser.parse_args()
    console = Console()

    with tempfile.TemporaryDirectory() as tmp:
        directory = args.store or Path(tmp) / "index"
        with console.status("filling the event store"):
            fill_s = fill(
                directory,
                queries=args.queries,
                events=args.events,
                clients=args.clients,
                seed=args.seed,
            )
        reader, writer = EventStore.open(directory), EventStore.open(directory)
        try:
            counts = reader.counts()
            console.print(
                f"store: {counts['events']:,} events ({counts['events'] - counts['impression']:,}"
                f" non-impression), {counts['queries']:,} queries"
                + (f"; filled in {fill_s:.1f} s" if fill_s else "; reused")
            )
            results: dict[str, Any] = {
                "events": counts["events"],
                "weighted_events": counts["events"] - counts["impression"],
                "queries": counts["queries"],
                "clients": args.clients,
            }

            # 1. full rebuild
            rebuilds = []
            behaviour = None
            for _ in range(args.rebuilds):
                started = time.perf_counter()
                behaviour = QueryBehaviour.from_store(reader)
                rebuilds.append(time.perf_counter() - started)
            assert behaviour is not None
            results["full_rebuild_ms"] = stats(rebuilds)
            results["pairs"] = len(behaviour._base.pairs)
            results["query_product_shopper_entries"] = len(behaviour._base.own)
            if not args.skip_legacy:
                started = time.perf_counter()
                QueryBehaviour._from_event_iter(reader)
                results["legacy_full_rebuild_ms"] = stats([time.perf_counter() - started])

            # 2. incremental refreshes (another connection writes, as the server does)
            traffic = Traffic(args.clients, seed=args.seed + 1)
            ranker = ContextRanker(None, events=reader, products=lambda ids: {})
            ranker.behaviour()
            for size in (10, 1_000):
                refresh, through_ranker, read = [], [], 0
                for _ in range(args.refreshes):
                    assert writer.add(traffic.records(size)).events_new == size
                    started = time.perf_counter()
                    update = behaviour.refresh(reader)
                    refresh.append(time.perf_counter() - started)
                    assert not update.rebuilt
                    behaviour, read = update.behaviour, read + update.events
                    started = time.perf_counter()
                    ranker.behaviour()
                    through_ranker.append(time.perf_counter() - started)
                assert read > 0
                results[f"refresh_{size}_events_ms"] = stats(refresh)
                results[f"ranker_behaviour_after_{size}_events_ms"] = stats(through_ranker)
            nothing = []
            for _ in range(args.refreshes):
                started = time.perf_counter()
                behaviour.refresh(reader)
                nothing.append(time.perf_counter() - started)
            results["refresh_nothing_new_ms"] = stats(nothing)

            # 3. the change check
            db = reader._db
            results["version_us"] = stats(per_call_us(reader.version, 2_000, 40), unit=1e6)
            results["legacy_max_rowid_us"] = stats(
                per_call_us(
                    lambda: db.execute("SELECT MAX(rowid) FROM events").fetchone(), 2_000, 40
                ),
                unit=1e6,
            )
        finally:
            reader.close()
            writer.close()

    table = Table(title=f"QueryBehaviour over {results['events']:,} events")
    for column in ("measure", "p50", "p95", "n"):
        table.add_column(column, justify="left" if column == "measure" else "right")
    for key, value in results.items():
        if isinstance(value, dict):
            table.add_row(key, f"{value['p50']:,.3f}", f"{value['p95']:,.3f}", str(value["n"]))
    console.print(table)
    results["machine"] = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    console.print(f"written {args.out}")


if __name__ == "__main__":
    main()
