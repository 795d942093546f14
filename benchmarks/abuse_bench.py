"""Abuse benchmark of ``shopsearch serve``'s public edge (issue 10, "A hardened public edge").

Two things a visitor of the storefront can do with its public key, measured on a real
``shopsearch serve --workers 2`` over the bundled index (a copy, default settings):

1. **One client in a loop**: a process at 127.0.0.2 sends ``GET /v1/suggest?q=a`` as fast
   as it can on one keep-alive connection for ``--seconds`` while ``--shoppers`` shoppers
   (each at its own loopback address, 127.0.0.10 and up, plus one *behind the abuser's
   address* under another ``X-Shopper-Id``) type (three debounced autocomplete requests),
   search and pause, as the storefront page does. Run twice: with the key's limit only
   (``client_limited_keys = []``: how it was) and with the per-client limits (the default).
   Reported: the abuser's answers by status, each shopper's 429 count and latency.
2. **Autocomplete poisoning**: 25 searches of one phrase from one address under 25 user
   ids, then one search each from further addresses; after each step, is the phrase
   suggested for ``"sho"`` (by both workers), and where? Then the admin removes it.

Clients at distinct addresses are real: Linux routes all of 127.0.0.0/8 to loopback, and
the server sees each connection's own source address (no proxy headers involved).

    python benchmarks/abuse_bench.py                      # ~1 minute; table + JSON
    python benchmarks/abuse_bench.py --seconds 4 --shoppers 10

Writes ``benchmarks/results/abuse_bench.json``. Numbers to read, not asserts; the abuser
and the server share the machine's cores.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from shopsearch.serve.keys import KeyFile  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
BUNDLED_INDEX = ROOT / "indexes" / "esci-us"
QUERIES = (
    "shoes for women",
    "water bottle",
    "ugg slippers",
    "phone case",
    "coffee mug",
    "yoga mat",
    "led lights",
    "backpack",
    "dog toys",
    "headphones",
)
PHRASE = "shocking zq9 deal"  # suggested for "sho" if it gets in


# ---------------------------------------------------------------------- server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, index: Path, log: Path, workers: int, env: dict[str, str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(log, "wb")  # noqa: SIM115 - closed in stop()
        command = [sys.executable, "-m", "shopsearch", "serve", str(index)]
        self.proc = subprocess.Popen(
            [*command, "--workers", str(workers), "--port", str(self.port)],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "HF_HUB_OFFLINE": "1", **env},
            start_new_session=True,
        )
        self.log_path = log
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    if log.read_text().count('"message": "serving"') >= workers:
                        break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        else:
            raise SystemExit(f"the server did not start:\n{log.read_text()[-2000:]}")
        page = httpx.get(self.url + "/").text
        self.storefront = re.search(r'name="shopsearch-key" content="([^"]+)"', page)[1]

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.log.close()


def client(server: Server, address: str, key: str, **headers: str) -> httpx.Client:
    return httpx.Client(
        base_url=server.url,
        headers={"Authorization": f"Bearer {key}", **headers},
        timeout=30,
        transport=httpx.HTTPTransport(local_address=address),
    )


# ---------------------------------------------------------------------- 1. one client in a loop


def abuse(url: str, key: str, seconds: float, results: Any) -> None:
    """(A process of its own.) ``GET /v1/suggest?q=a`` in a loop, one connection."""
    statuses: Counter[int] = Counter()
    with httpx.Client(
        base_url=url,
        headers={"Authorization": f"Bearer {key}"},
        transport=httpx.HTTPTransport(local_address="127.0.0.2"),
        timeout=30,
    ) as http:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            statuses[http.get("/v1/suggest", params={"q": "a"}).status_code] += 1
    results.put(dict(statuses))


def shop(server: Server, address: str, shopper: str, query: str, seconds: float) -> dict:
    """A shopper of the storefront page: types (a debounced autocomplete request per
    keystroke pause), searches, looks, again."""
    statuses: Counter[int] = Counter()
    latencies: list[float] = []
    with client(server, address, server.storefront, **{"X-Shopper-Id": shopper}) as http:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            for n in (2, 4, len(query)):
                started = time.perf_counter()
                status = http.get("/v1/suggest", params={"q": query[:n]}).status_code
                latencies.append(time.perf_counter() - started)
                statuses[status] += 1
                time.sleep(0.15)
            started = time.perf_counter()
            body = {"query": query, "k": 10, "user_id": shopper}
            statuses[http.post("/v1/search", json=body).status_code] += 1
            latencies.append(time.perf_counter() - started)
            time.sleep(0.5)
    return {
        "address": address,
        "shopper": shopper,
        "requests": sum(statuses.values()),
        "statuses": dict(statuses),
        "rate_limited": statuses[429],
        "p50_ms": round(statistics.median(latencies) * 1000, 1),
        "max_ms": round(max(latencies) * 1000, 1),
    }


def one_client_in_a_loop(server: Server, seconds: float, shoppers: int) -> dict[str, Any]:
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    abuser = context.Process(target=abuse, args=(server.url, server.storefront, seconds, results))
    abuser.start()
    time.sleep(1.0)  # the abuser's interpreter starts; then the shoppers arrive
    found: list[dict] = []
    lock = threading.Lock()

    def run(address: str, shopper: str, query: str) -> None:
        result = shop(server, address, shopper, query, seconds - 1.5)
        with lock:
            found.append(result)

    people = [
        (f"127.0.0.{10 + i}", f"shopper-{i}", QUERIES[i % len(QUERIES)]) for i in range(shoppers)
    ]
    people.append(("127.0.0.2", "neighbour", "backpack"))  # behind the abuser's address
    threads = [threading.Thread(target=run, args=person) for person in people]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    abuser.join(60)
    statuses = results.get(timeout=30)
    found.sort(key=lambda r: r["address"] != "127.0.0.2")
    return {
        "abuser": {
            "requests": sum(statuses.values()),
            "per_second": round(sum(statuses.values()) / seconds),
            "statuses": statuses,
        },
        "shoppers": found,
        "shoppers_rate_limited": sum(1 for r in found if r["rate_limited"]),
        "shopper_429s": sum(r["rate_limited"] for r in found),
        "shopper_requests": sum(r["requests"] for r in found),
    }


# ---------------------------------------------------------------------- 2. poisoning


def suggestion_rank(server: Server, admin: str) -> list[int | None]:
    """Where PHRASE is in the suggestions for "sho" on each worker (1-based; None: absent)."""
    ranks: dict[str, int | None] = {}
    with httpx.Client(
        base_url=server.url,
        headers={"Authorization": f"Bearer {admin}"},
        transport=httpx.HTTPTransport(limits=httpx.Limits(max_keepalive_connections=0)),
    ) as http:
        for _ in range(200):
            response = http.get("/v1/suggest", params={"q": "sho", "k": 8})
            texts = [s["text"] for s in response.json()["suggestions"]]
            ranks[response.headers["x-worker"]] = (
                texts.index(PHRASE) + 1 if PHRASE in texts else None
            )
            if len(ranks) == 2:
                break
    return sorted(ranks.values(), key=lambda r: (r is None, r))


def settle(server: Server, admin: str, present: bool, wait_s: float = 3.0) -> list[int | None]:
    """The ranks once both workers agree on ``present`` (or after ``wait_s``)."""
    deadline = time.monotonic() + wait_s
    while True:
        ranks = suggestion_rank(server, admin)
        if all((r is not None) == present for r in ranks) or time.monotonic() > deadline:
            return ranks
        time.sleep(0.2)


def poisoning(server: Server, admin: str, min_shoppers: int) -> dict[str, Any]:
    steps = []
    with client(server, "127.0.0.30", server.storefront) as http:
        for i in range(25):
            http.post("/v1/search", json={"query": PHRASE, "k": 10, "user_id": f"sock-{i}"})
    ranks = settle(server, admin, present=True)
    steps.append({"step": "25 searches, 1 address, 25 user ids", "shoppers": 1, "ranks": ranks})
    for n in range(2, min_shoppers + 2):
        with client(server, f"127.0.0.{29 + n}", server.storefront) as http:
            http.post("/v1/search", json={"query": PHRASE, "k": 10})
        ranks = settle(server, admin, present=n >= min_shoppers)
        steps.append({"step": f"+1 search from address #{n}", "shoppers": n, "ranks": ranks})
    admitted_at = next(
        (s["shoppers"] for s in steps if all(r is not None for r in s["ranks"])), None
    )
    started = time.monotonic()
    response = httpx.delete(
        server.url + "/v1/admin/suggestions",
        params={"phrase": PHRASE},
        headers={"Authorization": f"Bearer {admin}"},
    )
    ranks = settle(server, admin, present=False, wait_s=10)
    steps.append({"step": "DELETE /v1/admin/suggestions", "shoppers": None, "ranks": ranks})
    return {
        "phrase": PHRASE,
        "min_shoppers": min_shoppers,
        "suggested_after_shoppers": admitted_at,
        "removal_status": response.status_code,
        "removed_from_both_workers_s": round(time.monotonic() - started, 2),
        "steps": steps,
    }


# ---------------------------------------------------------------------- report


def show(result: dict[str, Any]) -> None:
    print("\n1. one client in a loop (GET /v1/suggest?q=a), storefront key, "
          f"{result['seconds']:g} s, {result['workers']} workers")  # fmt: skip
    header = f"{'limits':<34} {'abuser req/s':>12} {'abuser 200':>10} {'abuser 429':>10} "
    header += f"{'shoppers with a 429':>19} {'shopper 429s':>12} {'shopper p50 ms':>14}"
    print(header)
    for name, run in result["scenarios"].items():
        abuser, shoppers = run["abuser"], run["shoppers"]
        p50 = statistics.median(s["p50_ms"] for s in shoppers)
        print(
            f"{name:<34} {abuser['per_second']:>12} {abuser['statuses'].get(200, 0):>10} "
            f"{abuser['statuses'].get(429, 0):>10} "
            f"{run['shoppers_rate_limited']:>9} of {len(shoppers):<6} "
            f"{run['shopper_429s']:>6} of {run['shopper_requests']:<5} {p50:>14.1f}"
        )
    poison = result["poisoning"]
    print(f"\n2. autocomplete poisoning: {poison['phrase']!r} for prefix 'sho' "
          f"(suggest_min_shoppers = {poison['min_shoppers']})")  # fmt: skip
    print(f"{'step':<40} {'distinct shoppers':>17} {'rank on each worker':>20}")
    for step in poison["steps"]:
        ranks = ", ".join("-" if r is None else str(r) for r in step["ranks"])
        shoppers = "" if step["shoppers"] is None else step["shoppers"]
        print(f"{step['step']:<40} {shoppers:>17} {ranks:>20}")
    print(f"suggested once {poison['suggested_after_shoppers']} distinct shoppers searched it; "
          f"removed from both workers in {poison['removed_from_both_workers_s']} s")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--index", type=Path, default=BUNDLED_INDEX)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--shoppers", type=int, default=10)
    parser.add_argument("--json", type=Path, default=RESULTS / "abuse_bench.json")
    args = parser.parse_args()
    if not (args.index / "catalog.sqlite").exists():
        raise SystemExit(f"no index at {args.index}: `make demo` builds the bundled one")

    from shopsearch.serve.settings import ServeSettings

    defaults = ServeSettings()
    result: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "seconds": args.seconds,
        "workers": args.workers,
        "settings": {
            name: getattr(defaults, name)
            for name in (
                "storefront_rate_limit",
                "storefront_burst",
                "client_rate_limit",
                "client_burst",
                "address_rate_limit",
                "address_burst",
                "suggest_min_shoppers",
            )
        },
        "scenarios": {},
    }
    with tempfile.TemporaryDirectory(prefix="shopsearch-abuse-") as tmp:
        index = Path(tmp) / "index"
        shutil.copytree(
            args.index, index, ignore=shutil.ignore_patterns("api_keys.json", "suggestions.sqlite*")
        )
        admin = KeyFile(index).create("bench-admin", scopes=["admin"], rate_limit=1e6, burst=10**6)
        runs = (
            ("key limit only (before)", {"SHOPSEARCH_SERVE_CLIENT_LIMITED_KEYS": ""}),
            ("per-client limits (now, defaults)", {}),
        )
        for name, env in runs:
            print(f"serving {index} ({name}) ...")
            server = Server(
                index, Path(tmp) / f"server-{len(result['scenarios'])}.log", args.workers, env
            )
            try:
                result["scenarios"][name] = one_client_in_a_loop(
                    server, args.seconds, args.shoppers
                )
                if not env:
                    result["poisoning"] = poisoning(server, admin, defaults.suggest_min_shoppers)
            finally:
                server.stop()
    show(result)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
