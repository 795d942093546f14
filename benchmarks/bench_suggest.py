"""Autocomplete speed on the bundled ESCI-US catalog.

    python benchmarks/bench_suggest.py [--rounds 5] [--k 8]
                                       [--out benchmarks/results/bench_suggest.json]

Builds a :class:`Suggester` from the 6,764 product titles plus the 100 judged queries as a
query log (each query's count: its number of judged products, a stand-in for popularity),
then times :meth:`Suggester.suggest` on every character prefix of every judged query, as a
shopper typing them would send (``"t"``, ``"t "``, ``"t t"``, ... ``"t towels kitchen"``),
and :meth:`Suggester.add_query` for new and repeated queries. Single thread; the catalog
load is not timed.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections import Counter
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from shopsearch.catalog.loaders import load_catalog
from shopsearch.datasets import esci_us_judgments, esci_us_products
from shopsearch.evaluation.judgments import load_judgments
from shopsearch.suggest import Suggester


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="passes over all prefixes")
    parser.add_argument("--k", type=int, default=8, help="suggestions per call")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/bench_suggest.json"))
    args = parser.parse_args()
    console = Console()

    titles = [p.title for p in load_catalog(esci_us_products()).products]
    query_log = Counter(j.query for j in load_judgments(esci_us_judgments()))
    prefixes = [q[:n] for q in query_log for n in range(1, len(q) + 1)]

    builds = []
    for _ in range(3):
        t0 = time.perf_counter()
        suggester = Suggester.build(titles, query_log.items())
        builds.append(time.perf_counter() - t0)

    times = []
    t_all = time.perf_counter()
    for _ in range(args.rounds):
        for prefix in prefixes:
            t0 = time.perf_counter()
            suggester.suggest(prefix, k=args.k)
            times.append(time.perf_counter() - t0)
    wall = time.perf_counter() - t_all
    us = np.asarray(times) * 1e6
    results = [suggester.suggest(p, k=args.k) for p in prefixes]
    answered = sum(bool(r) for r in results) / len(results)
    mean_n = sum(len(r) for r in results) / len(results)

    adds = []
    for i in range(2_000):  # 1,000 new queries, then each again
        t0 = time.perf_counter()
        suggester.add_query(f"new query {i % 1_000} shoes", 1)
        adds.append(time.perf_counter() - t0)
    add_us = np.asarray(adds) * 1e6

    result = {
        "products": len(titles),
        "logged_queries": len(query_log),
        "prefixes": len(prefixes),
        "rounds": args.rounds,
        "k": args.k,
        "build_s_best_of_3": min(builds),
        "suggest_us": {
            q: float(np.percentile(us, p)) for q, p in (("p50", 50), ("p95", 95), ("p99", 99))
        }
        | {"max": float(us.max())},
        "suggest_per_s": len(times) / wall,
        "answered_share": answered,
        "mean_suggestions": mean_n,
        "add_query_us": {
            "p50": float(np.percentile(add_us, 50)),
            "p95": float(np.percentile(add_us, 95)),
        },
        "python": platform.python_version(),
        "machine": platform.machine(),
    }

    table = Table(title=f"Suggester on {len(titles):,} titles + {len(query_log)} logged queries")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("build (best of 3)", f"{result['build_s_best_of_3'] * 1000:.0f} ms")
    table.add_row("prefixes x rounds", f"{len(prefixes):,} x {args.rounds}")
    for name, value in result["suggest_us"].items():
        table.add_row(f"suggest {name}", f"{value:.1f} µs")
    table.add_row("suggest throughput", f"{result['suggest_per_s']:,.0f} calls/s")
    table.add_row("prefixes with a suggestion", f"{answered:.1%}")
    table.add_row(f"mean suggestions (k={args.k})", f"{mean_n:.2f}")
    add = result["add_query_us"]
    table.add_row("add_query p50 / p95", f"{add['p50']:.1f} / {add['p95']:.1f} µs")
    console.print(table)
    for prefix in ("t", "ugg sl", "kitchen tow", "iphone 1"):
        shown = ", ".join(f"{s.text} ({s.source})" for s in suggester.suggest(prefix, k=4))
        console.print(f"[bold]{prefix!r}[/bold] -> {shown}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    console.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
