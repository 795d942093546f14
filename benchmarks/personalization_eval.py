"""Does context help? Personalized vs plain hybrid ranking on SIMULATED shoppers (issue 4).

No real behaviour data ships with the ESCI sample, so shoppers are simulated
(``shopsearch simulate``: latent brand/category/colour/price preferences, a position-based
click model; see ``src/shopsearch/simulation``). Protocol, all seeded:

1. The judged queries are split in two halves (``shopsearch.evaluation.split_queries``,
   seed 0): half A is used for everything that learns, half B only to check that
   anonymous quality does not drop.
2. Simulated shoppers issue half-A queries; 70% of them are training users, 30% test
   users (never seen in training), plus cold-start users with no events at all.
3. Events of all users except their held-out sessions are ingested into a copy of the index.
4. ``shopsearch context train`` learns from the half-A ESCI judgments and the training
   users' clicks only.
5. Measured (retrieve protocol, nDCG@10): test users' held-out sessions (per-user graded
   judgments) and cold-start users, personal vs hybrid; half-B ESCI judgments without users,
   personal vs hybrid (and vs the rerank stage when the index has one).

    python benchmarks/personalization_eval.py indexes/esci-us --users 300 [--seeds 13,14,15]

Each seed is a full run (new simulated population, new training); the summary gives the
mean, min and max of each ratio over the seeds.

Writes ``benchmarks/results/personalization.json``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

RESULTS = ROOT / "benchmarks" / "results"
CLI = [sys.executable, "-m", "shopsearch"]


def shopsearch(*args: str) -> str:
    started = time.perf_counter()
    done = subprocess.run([*CLI, *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"shopsearch {' '.join(args)} failed:\n{done.stderr}")
    print(f"  shopsearch {' '.join(args[:2])} ... ({time.perf_counter() - started:.0f} s)")
    return done.stdout


def oracle_ceiling(index: Path, rows: list[dict], esci_file: Path, depth: int = 50) -> dict:
    """How much could knowing the shopper's taste *perfectly* add to the context-free ranking?

    For each held-out (query, user) group: the personal pipeline's top ``depth`` without the
    user's context; then, among products of the same ESCI grade, the ones the user likes
    more (higher per-user gain) take the best of those products' places. Relevance errors
    stay (the simulator's preferences never make an irrelevant product attractive), so the
    nDCG@10 of that oracle order bounds what the user's own context can add.
    """
    import numpy as np

    from shopsearch.evaluation.metrics import ndcg
    from shopsearch.pipeline import SearchPipeline

    esci = {}
    for line in esci_file.open():
        r = json.loads(line)
        esci[(r["query"], r["product_id"])] = r["label"]
    groups: dict[tuple[str, str, str], dict[str, float]] = {}
    for r in rows:
        groups.setdefault((r["query"], r["user_id"], r["session_id"]), {})[r["product_id"]] = r[
            "label"
        ]
    without, oracle = [], []
    with SearchPipeline.open(index) as pipeline:
        for (query, user, _session), gains in groups.items():
            hits = pipeline.search(
                query, depth, pipeline="personal", user="anonymous-" + user, facets=False
            ).hits
            ids = [h.product_id for h in hits]
            places: dict[float, list[int]] = {}
            for place, pid in enumerate(ids):
                places.setdefault(esci.get((query, pid), 0.0), []).append(place)
            reordered = list(ids)
            for grade_places in places.values():
                liked = sorted((ids[p] for p in grade_places), key=lambda i: -gains.get(i, 0.0))
                for place, pid in zip(grade_places, liked, strict=True):
                    reordered[place] = pid
            without.append(ndcg(ids, gains, 10))
            oracle.append(ndcg(reordered, gains, 10))
    return {
        "groups": len(groups),
        "depth": depth,
        "without": float(np.mean(without)),
        "oracle": float(np.mean(oracle)),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("index", type=Path, help="an index of the bundled catalog")
    parser.add_argument("--users", type=int, default=300)
    parser.add_argument("--sessions", type=int, default=6)
    parser.add_argument("--cold-start", type=int, default=30)
    parser.add_argument(
        "--seeds", default="13,14,15", help="simulation seeds, one full run each (comma list)"
    )
    parser.add_argument("--work", type=Path, help="keep the work dirs here (default: temp)")
    parser.add_argument("--out", type=Path, default=RESULTS / "personalization.json")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    root = args.work or Path(tempfile.mkdtemp(prefix="shopsearch-personal-"))
    runs = {}
    for seed in [int(s) for s in args.seeds.split(",")]:
        print(f"\n=== seed {seed}")
        runs[seed] = run_seed(args, seed, root / f"seed-{seed}")
    summary = summarize(runs)
    print(f"\nover {len(runs)} seeds: mean (min .. max) of the ratios")
    for name, stats in summary.items():
        print(f"  {name:44} {stats['mean']:.3f} ({stats['min']:.3f} .. {stats['max']:.3f})")
    results = {
        "simulated": True,
        "summary": summary,
        "seeds": runs,
        "seconds": round(time.perf_counter() - started, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out} in {results['seconds']:.0f} s (work dirs under {root})")
    return 0


RATIOS = {
    "test users: personal / hybrid": ("test users (held-out sessions)", "hybrid"),
    "cold-start users: personal / hybrid": ("cold-start users", "hybrid"),
    "ESCI half B: personal / hybrid": ("ESCI half B, no users", "hybrid"),
}


def summarize(runs: dict) -> dict:
    """Mean, min and max over seeds of each ratio the acceptance reads."""
    ratios: dict[str, list[float]] = {}
    for results in runs.values():
        for name, (group, baseline) in RATIOS.items():
            r = results[group]
            ratios.setdefault(name, []).append(r["personal"]["ndcg@10"] / r[baseline]["ndcg@10"])
        alone = results["test users, personal pipeline without their context"]
        with_context = results["test users (held-out sessions)"]["personal"]["ndcg@10"]
        ratios.setdefault("test users: with / without their own context", []).append(
            with_context / alone["personal"]["ndcg@10"]
        )
        ceiling = results["oracle ceiling of the user's own context"]
        ratios.setdefault("oracle (perfect taste) / without own context", []).append(
            ceiling["oracle"] / ceiling["without"]
        )
    return {
        name: {
            "mean": round(sum(v) / len(v), 4),
            "min": round(min(v), 4),
            "max": round(max(v), 4),
            "values": [round(x, 4) for x in v],
        }
        for name, v in ratios.items()
    }


def run_seed(args: argparse.Namespace, seed: int, work: Path) -> dict:
    from shopsearch.datasets import esci_us_judgments
    from shopsearch.evaluation.judgments import load_judgments, split_queries

    started = time.perf_counter()
    work.mkdir(parents=True, exist_ok=True)
    index = work / "index"
    if index.exists():
        shutil.rmtree(index)
    shutil.copytree(args.index, index, ignore=shutil.ignore_patterns("events.sqlite*", "ltr"))

    judgments = load_judgments(esci_us_judgments())
    half_a, half_b = split_queries(list(dict.fromkeys(j.query for j in judgments)), seed=0)
    keep_a, keep_b = set(half_a), set(half_b)
    a_file, b_file = work / "judgments_a.jsonl", work / "judgments_b.jsonl"
    for path, keep in ((a_file, keep_a), (b_file, keep_b)):
        with path.open("w", encoding="utf-8") as fh:
            for j in judgments:
                if j.query in keep:
                    fh.write(
                        json.dumps({"query": j.query, "product_id": j.product_id, "label": j.gain})
                        + "\n"
                    )
    print(f"queries: {len(half_a)} for learning (A), {len(half_b)} held out (B)")

    sim = work / "simulation"
    shopsearch(
        "simulate",
        str(index),
        "--out",
        str(sim),
        "--judgments",
        str(a_file),
        "--users",
        str(args.users),
        "--sessions",
        str(args.sessions),
        "--cold-start",
        str(args.cold_start),
        "--seed",
        str(seed),
    )
    from shopsearch.events.store import EventStore

    with EventStore.open(index) as store:  # = shopsearch events ingest DIR FILE
        for name in ("events.jsonl", "events_test_users.jsonl"):
            report = store.ingest_file(sim / name)
            print(f"  ingested {name}: {report.events_stored:,} events")
    train_users = sim / "train_users.txt"
    users = json.loads((sim / "users.json").read_text())["users"]
    train_users.write_text("\n".join(u["user_id"] for u in users if u["group"] == "train") + "\n")
    train_out = shopsearch(
        "context",
        "train",
        str(index),
        "--judgments",
        str(a_file),
        "--clients",
        str(train_users),
        "--json",
    )
    training = json.loads(train_out)

    def evaluate(judgments_file: Path, pipelines: str) -> dict:
        out = shopsearch(
            "eval",
            str(index),
            "--judgments",
            str(judgments_file),
            "--protocol",
            "retrieve",
            "--pipeline",
            pipelines,
            "--json",
        )
        return json.loads(out)

    holdout = [json.loads(line) for line in (sim / "holdout_judgments.jsonl").open()]
    group_of = {u["user_id"]: u["group"] for u in users}
    groups = {
        "test users (held-out sessions)": [r for r in holdout if group_of[r["user_id"]] == "test"],
        "cold-start users": [r for r in holdout if group_of[r["user_id"]] == "cold_start"],
    }
    results: dict = {"simulated": True, "training": training, "queries_a": len(half_a)}
    for name, rows in groups.items():
        path = work / (name.split()[0] + "_holdout.jsonl")
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        report = evaluate(path, "hybrid,personal")
        results[name] = {p: s for p, s in report["pipelines"].items()}
    # The same personal pipeline without the shoppers' own context: unknown user ids.
    anonymous = work / "test_holdout_anonymous.jsonl"
    anonymous.write_text(
        "".join(
            json.dumps({**r, "user_id": "anonymous-" + r["user_id"]}) + "\n"
            for r in groups["test users (held-out sessions)"]
        )
    )
    report = evaluate(anonymous, "personal")
    results["test users, personal pipeline without their context"] = report["pipelines"]
    results["oracle ceiling of the user's own context"] = oracle_ceiling(
        index, groups["test users (held-out sessions)"], a_file
    )
    pipelines = "hybrid,personal"
    report = evaluate(b_file, pipelines)
    results["ESCI half B, no users"] = {p: s for p, s in report["pipelines"].items()}

    print("\nretrieve nDCG@10 (SIMULATED users; ESCI judgments for half B)")
    for name in (*groups, "ESCI half B, no users"):
        h = results[name]["hybrid"]["ndcg@10"]
        p = results[name]["personal"]["ndcg@10"]
        print(f"  {name:34} hybrid {h:.4f}  personal {p:.4f}  ratio {p / h:.3f}")
    alone = results["test users, personal pipeline without their context"]["personal"]["ndcg@10"]
    with_context = results["test users (held-out sessions)"]["personal"]["ndcg@10"]
    print(
        f"  {'test users: with vs without context':34} without {alone:.4f}  with "
        f"{with_context:.4f}  ratio {with_context / alone:.3f}"
    )
    ceiling = results["oracle ceiling of the user's own context"]
    print(
        f"  {'oracle: perfect taste, same relevance':34} without {ceiling['without']:.4f}  "
        f"oracle {ceiling['oracle']:.4f}  ratio {ceiling['oracle'] / ceiling['without']:.3f}"
    )
    for name in ("hybrid", "personal"):
        s = results["test users (held-out sessions)"][name]
        print(f"  latency {name:9} p50 {s['p50_ms']:.1f} ms  p95 {s['p95_ms']:.1f} ms")
    results["seconds"] = round(time.perf_counter() - started, 1)
    return results


if __name__ == "__main__":
    raise SystemExit(main())
