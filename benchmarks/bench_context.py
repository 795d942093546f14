"""Speed of the context stage: building profiles, and search with vs without personalization.

1. Profiles: a temporary event store holds ``--events`` synthetic events (default 1,000,000:
   clicks, add-to-carts and purchases of real catalog products) of ``--users`` shoppers
   (default 10,000); the time to read them all back and build every shopper's profile
   (affinities, price band, history embedding) is reported.
2. Search (needs an index with a trained personal stage, e.g. the work dir of
   ``benchmarks/personalization_eval.py --work DIR``): p50 / p95 / p99 of hybrid search and
   of personal search for shoppers with history, over the judged queries.

    python benchmarks/bench_context.py --index /tmp/personal/index

Writes ``benchmarks/results/bench_context.json``. No timed asserts: numbers to read.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

RESULTS = ROOT / "benchmarks" / "results"


def bench_profiles(n_events: int, n_users: int, seed: int) -> dict[str, float]:
    from shopsearch.catalog.loaders import load_catalog
    from shopsearch.context.profiles import build_profiles
    from shopsearch.datasets import esci_us_products
    from shopsearch.events.schema import EventRecord
    from shopsearch.events.store import EventStore

    products = {p.id: p for p in load_catalog(esci_us_products()).products}
    ids = sorted(products)
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(len(ids), 384)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    row = {pid: i for i, pid in enumerate(ids)}

    def lookup(product_ids):
        return vectors[[row[p] for p in product_ids]]

    actions = np.array(["click", "add_to_cart", "purchase"])
    with tempfile.TemporaryDirectory() as tmp:
        store = EventStore.open(Path(tmp) / "events.sqlite")
        user_of = rng.integers(0, n_users, n_events)
        product_of = rng.integers(0, len(ids), n_events)
        action_of = rng.choice(3, n_events, p=[0.75, 0.18, 0.07])
        times = np.sort(rng.uniform(1.7e9, 1.7e9 + 90 * 86_400, n_events))
        started = time.perf_counter()
        batch = []
        for i in range(n_events):
            batch.append(
                EventRecord(
                    event_id=f"e{i}",
                    action_name=str(actions[action_of[i]]),
                    query_id=f"q{i // 5}",
                    client_id=f"u{user_of[i]}",
                    session_id=f"s{user_of[i]}-{i // 50}",
                    timestamp=float(times[i]),
                    object_id=ids[product_of[i]],
                    position=int(i % 10) + 1,
                )
            )
            if len(batch) == 50_000:
                store.add(batch)
                batch = []
        if batch:
            store.add(batch)
        filled = time.perf_counter() - started
        started = time.perf_counter()
        events = list(store.iter_events())
        read = time.perf_counter() - started
        started = time.perf_counter()
        profiles = build_profiles(
            events,
            products,
            key=lambda e: e.client_id,
            now=float(times[-1]),
            vectors=lookup,
        )
        built = time.perf_counter() - started
        store.close()
    return {
        "events": n_events,
        "users": len(profiles),
        "store_fill_s": round(filled, 1),
        "read_events_s": round(read, 2),
        "build_profiles_s": round(built, 2),
        "total_profiles_s": round(read + built, 2),
    }


def bench_search(index: Path, repeats: int) -> dict[str, dict[str, float]]:
    from shopsearch.datasets import esci_us_judgments
    from shopsearch.evaluation.judgments import load_judgments
    from shopsearch.pipeline import SearchPipeline

    queries = list(dict.fromkeys(j.query for j in load_judgments(esci_us_judgments())))
    out: dict[str, dict[str, float]] = {}
    with SearchPipeline.open(index) as pipeline:
        users = [u for u in pipeline.events.clients()][:200]
        for q in queries[:5]:  # warm-up: encoder, caches, model
            pipeline.search(q, 10, pipeline="personal", user=users[0])
            pipeline.search(q, 10, pipeline="hybrid")
        for name, user_of in (
            ("hybrid", lambda i: None),
            ("personal", lambda i: users[i % len(users)]),
        ):
            times = []
            for r in range(repeats):
                for i, q in enumerate(queries):
                    started = time.perf_counter()
                    pipeline.search(q, 10, pipeline=name, user=user_of(i + r))
                    times.append((time.perf_counter() - started) * 1000)
            a = np.asarray(times)
            out[name] = {
                "searches": len(a),
                "p50_ms": round(float(np.percentile(a, 50)), 2),
                "p95_ms": round(float(np.percentile(a, 95)), 2),
                "p99_ms": round(float(np.percentile(a, 99)), 2),
            }
    out["p95_ratio"] = {
        "personal/hybrid": round(out["personal"]["p95_ms"] / out["hybrid"]["p95_ms"], 2)
    }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, help="index with a trained personal stage")
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-profiles", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS / "bench_context.json")
    args = parser.parse_args(argv)
    results: dict = {}
    if not args.skip_profiles:
        results["profiles"] = bench_profiles(args.events, args.users, seed=13)
        print("profiles:", results["profiles"])
    if args.index is not None:
        results["search"] = bench_search(args.index, args.repeats)
        print("search:", results["search"])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
