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

    python benchmarks/personalization_eval.py indexes/esci-us --users 300

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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("index", type=Path, help="an index of the bundled catalog")
    parser.add_argument("--users", type=int, default=300)
    parser.add_argument("--sessions", type=int, default=6)
    parser.add_argument("--cold-start", type=int, default=30)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--work", type=Path, help="keep the work dir here (default: temp)")
    parser.add_argument("--out", type=Path, default=RESULTS / "personalization.json")
    args = parser.parse_args(argv)

    from shopsearch.datasets import esci_us_judgments
    from shopsearch.evaluation.judgments import load_judgments, split_queries

    started = time.perf_counter()
    work = args.work or Path(tempfile.mkdtemp(prefix="shopsearch-personal-"))
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
        str(args.seed),
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
    for name in ("hybrid", "personal"):
        s = results["test users (held-out sessions)"][name]
        print(f"  latency {name:9} p50 {s['p50_ms']:.1f} ms  p95 {s['p95_ms']:.1f} ms")
    results["seconds"] = round(time.perf_counter() - started, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out} in {results['seconds']:.0f} s (work dir {work})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
