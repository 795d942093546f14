"""Load test of ``shopsearch serve`` (issue "Serve it"): open-loop searches at a fixed rate.

1. **Setup** (cached in ``--work DIR``): a copy of the bundled index (``indexes/esci-us``,
   built if missing) without its events and LTR model; SIMULATED shoppers over the bundled
   judgments (``shopsearch simulate``), their events ingested, ``shopsearch context train``
   so that ``personal`` (hybrid retrieval + the personalized LTR stage, no cross-encoder) is
   the default pipeline; an API key with a rate limit far above the test's; then
   ``shopsearch serve`` as a subprocess on a free port, ready when ``/healthz`` answers.
2. **Load**: an open-loop generator (asyncio) sends ``POST /v1/search`` at ``--rate``
   requests/s for ``--duration`` s after ``--warmup`` s, over at most ``--connections``
   keep-alive HTTP/1.1 connections. Latency runs from each request's *scheduled* send time
   to the end of its response, so a slow server cannot slow the generator down and hide its
   own queueing (no coordinated omission). Requests (seeded): the 100 judged queries, as
   they are (55%) or as a prefix, with an added word or with a typo (15% each); simulated
   shoppers with history (55%), simulated cold-start shoppers (10%), unknown user ids (10%),
   anonymous (25%); ~20% with a brand, price or rating filter; k=10, facets on.
   ``--events-share X`` replaces that share of the requests by ``POST /v1/events`` batches
   (impressions of a served result list and one click, with its query_id).
3. **Report**: throughput (OK responses completed per second of the measured window),
   p50/p95/p99/max latency, errors by status, the server's CPU (``/proc/PID/stat``, the
   whole process tree) and the generator's own CPU; a table, ``benchmarks/results/
   load_test.json`` and a PNG of the latency percentiles per second. ``--find-max`` then
   steps the rate (``--rates``) with short runs and reports the highest rate that keeps
   p95 <= ``--p95-ms`` with no errors.
4. **Graceful stop**: SIGTERM to the server; its exit status, the seconds it took, and
   whether every answered search reached the event store (the query log is flushed).

Every run starts from the prepared event store (the queries a run logs are dropped before
the next). ``--workers N`` (default 2, what a 2-core machine wants) is passed to
``shopsearch serve --workers N`` when its ``--help`` lists the option; ``--server-env
NAME=VALUE`` sets the server's environment (e.g. ``SHOPSEARCH_SERVE_SEARCH_CONCURRENCY=2``).

    python benchmarks/load_test.py --work /tmp/shopsearch-load            # 60 s at 100/s
    python benchmarks/load_test.py --work /tmp/shopsearch-load --duration 10 --find-max
    python benchmarks/load_test.py --work /tmp/shopsearch-load --events-share 0.1 --rate 40

The generator shares the machine's cores with the server, so it is kept cheap: a minimal
HTTP/1.1 client on asyncio streams for this fixed request shape (``--client raw``, the
default) or httpx (``--client httpx``), uvloop when installed. Its CPU is reported.
No timed asserts: numbers to read. The shoppers and their events are SIMULATED.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import gzip
import json
import os
import platform
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

RESULTS = ROOT / "benchmarks" / "results"
CLI = [sys.executable, "-m", "shopsearch"]
BUNDLED_INDEX = ROOT / "indexes" / "esci-us"
DATASET = ROOT / "src" / "shopsearch" / "datasets" / "esci_us"
KEY_NAME = "load-test"
CLK_TCK = os.sysconf("SC_CLK_TCK")

EXTRA_WORDS = ("cheap", "best", "black", "women", "men", "kids", "large", "set", "2 pack", "gift")
QUERY_FORMS = (("exact", 0.55), ("prefix", 0.15), ("added word", 0.15), ("typo", 0.15))
USER_KINDS = (("history", 0.55), ("cold-start", 0.10), ("unknown", 0.10), ("anonymous", 0.25))
FILTER_SHARE = 0.2


# ---------------------------------------------------------------------- setup


def shopsearch(*args: str, quiet: bool = False) -> str:
    started = time.perf_counter()
    done = subprocess.run([*CLI, *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"shopsearch {' '.join(args)} failed:\n{done.stderr}")
    if not quiet:
        print(f"  shopsearch {' '.join(args[:2])} ... ({time.perf_counter() - started:.0f} s)")
    return done.stdout


@dataclass
class Setup:
    index: Path
    users: dict[str, list[str]]  # group (train, test, cold_start) -> user ids
    events: int
    training: dict[str, Any] = field(default_factory=dict)


def prepare(args: argparse.Namespace, work: Path) -> Setup:
    """The work index with SIMULATED users and a trained personal stage (reused when the
    work dir already holds one made with the same settings)."""
    source = args.index or BUNDLED_INDEX
    if not (source / "catalog.sqlite").exists():
        if args.index is not None:
            raise SystemExit(f"no index at {source}")
        print(f"building the bundled index at {source}")
        shopsearch("index", str(DATASET / "products.jsonl.gz"), "--out", str(source))
    index, sim, marker = work / "index", work / "simulation", work / "setup.json"
    wanted = {"source": str(source.resolve()), "users": args.users, "seed": args.seed}
    pristine = work / "events-pristine"
    if marker.exists() and (index / "ltr").exists() and pristine.exists():
        done = json.loads(marker.read_text())
        if done.get("settings") == wanted:
            print(f"reusing the prepared index {index} (its event store reset)")
            restore_events(index, pristine)
            return Setup(index, _users(sim), done["events"], done.get("training", {}))
    print(f"preparing {index} (SIMULATED users, personal stage)")
    if index.exists():
        shutil.rmtree(index)
    if sim.exists():
        shutil.rmtree(sim)
    shutil.copytree(
        source, index, ignore=shutil.ignore_patterns("events.sqlite*", "ltr", "api_keys.json*")
    )
    shopsearch(
        "simulate",
        str(index),
        "--out",
        str(sim),
        "--users",
        str(args.users),
        "--seed",
        str(args.seed),
    )
    for name in ("events.jsonl", "events_test_users.jsonl"):
        shopsearch("events", "ingest", str(index), str(sim / name))
    training = json.loads(shopsearch("context", "train", str(index), "--json"))
    info = json.loads(shopsearch("events", "info", str(index), "--json", quiet=True) or "{}")
    events = int(info.get("events", 0))
    # Every run starts from this event store: the served queries a run logs stay out of the
    # next one (it would otherwise grow from run to run).
    if pristine.exists():
        shutil.rmtree(pristine)
    pristine.mkdir()
    for path in index.glob("events.sqlite*"):
        shutil.copy2(path, pristine / path.name)
    marker.write_text(
        json.dumps({"settings": wanted, "events": events, "training": training}, indent=2)
    )
    return Setup(index, _users(sim), events, training)


def restore_events(index: Path, pristine: Path) -> None:
    for path in index.glob("events.sqlite*"):
        path.unlink()
    for path in pristine.iterdir():
        shutil.copy2(path, index / path.name)


def _users(sim: Path) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for user in json.loads((sim / "users.json").read_text())["users"]:
        groups.setdefault(user["group"], []).append(user["user_id"])
    return groups


def create_key(index: Path) -> str:
    """A key with search and events scopes and a limit far above any tested rate."""
    from shopsearch.serve.keys import KeyFile

    if any(k.name == KEY_NAME for k in KeyFile(index).load()):
        shopsearch("keys", "revoke", str(index), KEY_NAME, quiet=True)
    out = shopsearch(
        "keys",
        "create",
        str(index),
        "--name",
        KEY_NAME,
        "--scopes",
        "search,events",
        "--rate",
        "1000000",
        "--burst",
        "1000000",
        quiet=True,
    )
    return out.strip().splitlines()[-1]


# ---------------------------------------------------------------------- the server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (uvicorn workers, if any)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of the processes (``/proc/PID/stat`` utime + stime)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return total / CLK_TCK


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far (``/proc/stat``)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    total = sum(values[:8])
    return (total - idle) / CLK_TCK, total / CLK_TCK


class Server:
    """``shopsearch serve`` in a subprocess; its log (JSON lines) goes to a file."""

    def __init__(self, index: Path, port: int, log: Path, args: argparse.Namespace) -> None:
        self.port = port
        self.log_path = log
        command = [*CLI, "serve", str(index), "--port", str(port)]
        self.workers = 1
        if args.workers > 1:
            help_text = shopsearch("serve", "--help", quiet=True)
            if "--workers" in help_text:
                command += ["--workers", str(args.workers)]
                self.workers = args.workers
            else:
                print(
                    "note: `shopsearch serve` has no --workers option: "
                    f"one process, not {args.workers}"
                )
        env = dict(os.environ)
        if args.log_level:
            env["SHOPSEARCH_SERVE_LOG_LEVEL"] = args.log_level
        for assignment in args.server_env:
            name, _, value = assignment.partition("=")
            env[name] = value
        self.log_file = log.open("w")
        self.started = time.perf_counter()
        self.process = subprocess.Popen(
            command, stdout=self.log_file, stderr=subprocess.STDOUT, env=env
        )
        self.pids = [self.process.pid]

    def wait_ready(self, timeout: float) -> dict[str, Any]:
        import urllib.request

        deadline = time.monotonic() + timeout
        answered: set[Any] = set()  # worker pids (a new connection per /healthz)
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(
                    f"the server exited ({self.process.returncode}):\n{self.log_path.read_text()}"
                )
            try:
                url = f"http://127.0.0.1:{self.port}/healthz"
                with urllib.request.urlopen(url, timeout=2) as response:
                    health = json.loads(response.read())
            except OSError:
                time.sleep(0.25)
                continue
            answered.add(health.get("pid"))
            serving = self.log_path.read_text().count('"message": "serving"')
            if len(answered) >= self.workers or serving >= self.workers:  # all workers up
                self.pids = process_tree(self.process.pid)
                health["startup_s"] = round(time.perf_counter() - self.started, 1)
                return health
            time.sleep(0.1)
        self.process.kill()
        raise SystemExit(f"the server did not answer /healthz in {timeout} s")

    def cpu(self) -> float:
        return cpu_seconds(self.pids)

    def serving_line(self) -> dict[str, Any]:
        for line in self.log_path.read_text().splitlines():
            if '"serving"' in line:
                try:
                    return json.loads(line)
                except json.JSONDecodeError:
                    pass
        return {}

    def log_levels(self) -> dict[str, int]:
        levels: collections.Counter[str] = collections.Counter()
        for line in self.log_path.read_text().splitlines():
            try:
                levels[json.loads(line).get("level", "?")] += 1
            except (json.JSONDecodeError, AttributeError):
                levels["not json"] += 1
        return dict(levels)

    def wait_idle(self, timeout: float = 60.0) -> float:
        """Wait until the server uses under 5% of a core (requests that the generator gave
        up on may still be queued there); the seconds waited."""
        started = time.perf_counter()
        while time.perf_counter() - started < timeout:
            before = self.cpu()
            time.sleep(0.5)
            if self.cpu() - before < 0.025:
                break
        return time.perf_counter() - started

    def stop(self, timeout: float) -> dict[str, Any]:
        """SIGTERM, then wait up to ``timeout`` s (SIGKILL after that)."""
        if self.process.poll() is not None:
            return {"signal": None, "exit_code": self.process.returncode, "note": "already exited"}
        started = time.perf_counter()
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout)
            killed = False
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
            killed = True
        self.log_file.close()
        return {
            "signal": "SIGTERM",
            "exit_code": code,
            "seconds": round(time.perf_counter() - started, 2),
            "killed_after_timeout": killed,
            "log_levels": self.log_levels(),
        }


# ---------------------------------------------------------------------- the workload


def load_queries() -> tuple[list[str], dict[str, list[str]]]:
    """The judged queries, and each one's judged product ids."""
    products_of: dict[str, list[str]] = {}
    with (DATASET / "judgments.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            products_of.setdefault(row["query"], []).append(row["product_id"])
    return list(products_of), products_of


def load_catalog_fields() -> dict[str, tuple[str, float | None]]:
    """product id -> (brand, price), read straight from the bundled catalog file."""
    out = {}
    with gzip.open(DATASET / "products.jsonl.gz", "rt", encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            out[str(row["asin"])] = (row.get("brand") or "", row.get("price"))
    return out


def _pick(rng: random.Random, table: tuple[tuple[str, float], ...]) -> str:
    x = rng.random()
    for name, share in table:
        x -= share
        if x < 0:
            return name
    return table[-1][0]


def vary(query: str, form: str, rng: random.Random) -> str:
    words = query.split()
    if form == "prefix":
        if len(words) > 1 and rng.random() < 0.5:
            return " ".join(words[:-1])
        last = words[-1]
        return " ".join([*words[:-1], last[: max(2, len(last) // 2)]])
    if form == "added word":
        return f"{query} {rng.choice(EXTRA_WORDS)}"
    if form == "typo":
        long = [i for i, w in enumerate(words) if len(w) >= 4] or [0]
        i = rng.choice(long)
        w = words[i]
        j = rng.randrange(max(1, len(w) - 1))
        op = rng.randrange(3)
        if op == 0 and len(w) > 1:  # swap two neighbours
            w = w[:j] + w[j + 1] + w[j] + w[j + 2 :]
        elif op == 1 and len(w) > 2:  # drop a letter
            w = w[:j] + w[j + 1 :]
        else:  # double a letter
            w = w[: j + 1] + w[j:]
        words[i] = w
        return " ".join(words)
    return query


class Workload:
    """Seeded request bodies, and the follow-up event batches of served searches."""

    def __init__(self, users: dict[str, list[str]], seed: int) -> None:
        self.rng = random.Random(seed)
        self.queries, products_of = load_queries()
        catalog = load_catalog_fields()
        self.brands: dict[str, list[str]] = {}
        self.prices: dict[str, list[float]] = {}
        for q, ids in products_of.items():
            rows = [catalog[p] for p in ids if p in catalog]
            self.brands[q] = sorted({b for b, _ in rows if b})
            self.prices[q] = sorted(float(p) for _, p in rows if p)
        self.history = users.get("train", []) + users.get("test", [])
        self.cold = users.get("cold_start", [])
        self.counts: collections.Counter[str] = collections.Counter()

    def search(self) -> dict[str, Any]:
        rng = self.rng
        base = rng.choice(self.queries)
        form = _pick(rng, QUERY_FORMS)
        body: dict[str, Any] = {"query": vary(base, form, rng), "k": 10, "facets": True}
        kind = _pick(rng, USER_KINDS)
        if kind == "history" and self.history:
            body["user_id"] = rng.choice(self.history)
        elif kind == "cold-start" and self.cold:
            body["user_id"] = rng.choice(self.cold)
        elif kind == "unknown":
            body["user_id"] = f"visitor-{rng.randrange(1_000_000)}"
        if "user_id" in body and rng.random() < 0.5:
            body["session_id"] = f"{body['user_id']}-load-{rng.randrange(4)}"
        self.counts[f"query: {form}"] += 1
        self.counts[f"user: {kind}"] += 1
        if rng.random() < FILTER_SHARE:
            kind, filters = self._filters(base)
            body["filters"] = filters
            self.counts[f"filter: {kind}"] += 1
        return body

    def _filters(self, query: str) -> tuple[str, dict[str, Any]]:
        rng = self.rng
        kind = rng.choice(("brand", "price", "rating"))
        if kind == "brand" and self.brands[query]:
            brands = self.brands[query]
            return kind, {"brands": rng.sample(brands, min(len(brands), rng.choice((1, 2))))}
        if kind in ("brand", "price") and self.prices[query]:
            prices = self.prices[query]
            if rng.random() < 0.5:
                return "price", {"price_max": round(prices[len(prices) // 2], 2)}
            lo, hi = prices[len(prices) // 4], prices[(3 * len(prices)) // 4]
            return "price", {"price_min": round(lo, 2), "price_max": round(hi, 2)}
        return "rating", {"rating_min": rng.choice((4.0, 4.5))}

    def events(self, served: tuple[str, str | None, str | None, list[str]], n: int) -> dict:
        """Impressions of a served result list and one click on it (UBI event records)."""
        query_id, user, session, hits = served
        now = time.time()
        client = user or "anonymous"
        records = []
        for position, pid in enumerate(hits, 1):
            records.append(
                _event(
                    f"load-{n}-i{position}",
                    "impression",
                    query_id,
                    client,
                    session,
                    now,
                    pid,
                    position,
                )
            )
        if hits:
            position = min(len(hits), 1 + int(self.rng.expovariate(0.5)))
            records.append(
                _event(
                    f"load-{n}-c",
                    "click",
                    query_id,
                    client,
                    session,
                    now + 1,
                    hits[position - 1],
                    position,
                )
            )
        return {"records": records}


def _event(event_id, action, query_id, client, session, ts, pid, position) -> dict[str, Any]:
    record = {
        "event_id": event_id,
        "action_name": action,
        "query_id": query_id,
        "client_id": client,
        "timestamp": ts,
        "event_attributes": {"object": {"object_id": pid}, "position": {"ordinal": position}},
    }
    if session:
        record["session_id"] = session
    return record


# ---------------------------------------------------------------------- HTTP clients


class RawConnection:
    """A minimal HTTP/1.1 keep-alive client for one connection: requests with a known
    body, responses with Content-Length (or chunked, or read to EOF)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, head: bytes, body: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(
                self.host, self.port, limit=1 << 20
            )
        reader = self.reader
        assert reader is not None
        self.writer.write(head + str(len(body)).encode() + b"\r\n\r\n" + body)
        header = await reader.readuntil(b"\r\n\r\n")
        status = int(header[9:12])
        length, chunked, close = None, False, False
        for line in header.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            elif name == b"connection":
                close = b"close" in value.lower()
        if chunked:
            parts = []
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                chunk = await reader.readexactly(size + 2)  # the chunk and its CRLF
                if size == 0:
                    break  # (no trailers)
                parts.append(chunk[:-2])
            data = b"".join(parts)
        elif length is not None:
            data = await reader.readexactly(length)
        else:
            data = await reader.read()
            close = True
        if close:
            self.close()
        return status, data

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


class RawClient:
    name = "raw"

    def __init__(self, ports: list[int], key: str, connections: int) -> None:
        self.pool: asyncio.Queue[RawConnection] = asyncio.Queue()
        for i in range(connections):  # spread over the servers, round-robin
            self.pool.put_nowait(RawConnection("127.0.0.1", ports[i % len(ports)]))
        self.heads = {
            path: (
                f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Authorization: Bearer {key}\r\nContent-Type: application/json\r\n"
                "Content-Length: "
            ).encode()
            for path in ("/v1/search", "/v1/events")
        }

    async def post(self, path: str, body: bytes, timeout: float) -> tuple[int, bytes]:
        """Wait for a free connection and send; ``timeout`` covers both."""
        return await asyncio.wait_for(self._post(path, body), timeout)

    async def _post(self, path: str, body: bytes) -> tuple[int, bytes]:
        connection = await self.pool.get()
        try:
            return await connection.request(self.heads[path], body)
        except BaseException:
            connection.close()  # unknown state (e.g. cancelled by the timeout): reconnect
            raise
        finally:
            self.pool.put_nowait(connection)

    async def aclose(self) -> None:
        while not self.pool.empty():
            self.pool.get_nowait().close()


class HttpxClient:
    name = "httpx"

    def __init__(self, ports: list[int], key: str, connections: int) -> None:
        import httpx

        if len(ports) > 1:
            raise SystemExit("--client httpx talks to one server: use --client raw")
        port = ports[0]

        self.client = httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}",
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
            limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
            timeout=None,
        )

    async def post(self, path: str, body: bytes, timeout: float) -> tuple[int, bytes]:
        response = await asyncio.wait_for(self.client.post(path, content=body), timeout)
        return response.status_code, response.content

    async def aclose(self) -> None:
        await self.client.aclose()


# ---------------------------------------------------------------------- one run


@dataclass
class Sample:
    kind: str  # "search" or "events"
    scheduled: float  # seconds since the run's start
    latency: float  # seconds, from the scheduled send time to the end of the response
    status: str  # "200", "429", ..., "timeout", "connection error", "bad body"
    took_ms: float | None = None  # the server's own search time (response "took_ms")


async def run_load(
    ports: list[int],
    key: str,
    workload: Workload,
    server: Server,
    *,
    rate: float,
    duration: float,
    warmup: float,
    connections: int,
    client_name: str,
    arrivals: str,
    events_share: float,
    timeout: float,
    seed: int,
) -> dict[str, Any]:
    rng = random.Random(seed)
    total = warmup + duration
    if arrivals == "poisson":
        offsets, t = [], 0.0
        while True:
            t += rng.expovariate(rate)
            if t >= total:
                break
            offsets.append(t)
    else:
        offsets = [i / rate for i in range(int(total * rate))]
    plan = []
    for _ in offsets:
        if events_share > 0 and rng.random() < events_share:
            plan.append(None)  # an events batch, built at send time from a served search
        else:
            plan.append(workload.search())
    bodies = [None if p is None else json.dumps(p, separators=(",", ":")).encode() for p in plan]
    client: RawClient | HttpxClient = (
        RawClient(ports, key, connections)
        if client_name == "raw"
        else HttpxClient(ports, key, connections)
    )
    served: collections.deque[tuple[str, str | None, str | None, list[str]]] = collections.deque(
        maxlen=200
    )
    samples: list[Sample] = []
    completions: list[tuple[float, bool]] = []  # (completion time since start, ok)
    loop = asyncio.get_running_loop()
    start = loop.time() + 0.2
    pipelines: collections.Counter[str] = collections.Counter()

    async def one(i: int, at: float) -> None:
        body, request = bodies[i], plan[i]
        path, kind = "/v1/search", "search"
        if body is None:
            if served:
                path, kind = "/v1/events", "events"
                body = json.dumps(workload.events(served.popleft(), i)).encode()
            else:  # nothing served yet: a search instead
                request = workload.search()
                body = json.dumps(request).encode()
        took = None
        try:  # the timeout runs from the scheduled time (waiting for a connection counts)
            code, data = await client.post(path, body, max(0.001, at + timeout - loop.time()))
            status = str(code)
            if code == 200 and kind == "search":
                try:
                    result = json.loads(data)
                    took = result["took_ms"]
                    pipelines[result["pipeline"]] += 1
                    if events_share > 0:
                        hits = [h["id"] for h in result["hits"]]
                        assert request is not None
                        served.append(
                            (
                                result["query_id"],
                                request.get("user_id"),
                                request.get("session_id"),
                                hits,
                            )
                        )
                except (ValueError, KeyError, TypeError):
                    status = "bad body"
        except TimeoutError:
            status = "timeout"
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            status = "connection error"
        except Exception as exc:  # noqa: BLE001 - httpx's own errors, counted by type
            status = type(exc).__name__
        done = loop.time()
        samples.append(Sample(kind, at - start, done - at, status, took))
        completions.append((done - start, status == "200"))

    tasks = []
    marks: dict[str, tuple[float, float, float, tuple[float, float]]] = {}

    def mark(name: str) -> None:
        marks[name] = (loop.time(), server.cpu(), time.process_time(), machine_busy())

    measure_at = start + warmup
    for i, offset in enumerate(offsets):
        at = start + offset
        if "measure" not in marks and at >= measure_at:
            delay = measure_at - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            mark("measure")
        delay = at - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i, at)))
    end_at = start + total
    delay = end_at - loop.time()
    if delay > 0:
        await asyncio.sleep(delay)
    if "measure" not in marks:
        mark("measure")
    mark("end")  # the measured window: [measure, end]
    await asyncio.gather(*tasks)
    mark("drained")
    await client.aclose()

    t0, cpu0, gen0, (busy0, all0) = marks["measure"]
    t1, cpu1, gen1, (busy1, all1) = marks["end"]
    window = t1 - t0
    measured = [s for s in samples if s.scheduled >= warmup]
    ok_in_window = sum(1 for t, ok in completions if ok and t0 - start <= t <= t1 - start)
    ok_searches_in_window = sum(
        1
        for s in samples
        if s.kind == "search"
        and s.status == "200"
        and t0 - start <= s.scheduled + s.latency <= t1 - start
    )
    server_cpu = cpu1 - cpu0
    gen_cpu = gen1 - gen0
    return {
        "rate": rate,
        "arrivals": arrivals,
        "duration_s": duration,
        "warmup_s": warmup,
        "connections": connections,
        "client": client.name,
        "events_share": events_share,
        "window_s": round(window, 2),
        "sent": len(measured),
        "throughput_rps": round(ok_in_window / window, 2),
        "search_throughput_rps": round(ok_searches_in_window / window, 2),
        "drain_s": round(marks["drained"][0] - t1, 3),
        "server_cpu_s": round(server_cpu, 2),
        "server_cores": round(server_cpu / window, 3),
        "generator_cpu_s": round(gen_cpu, 2),
        "generator_cores": round(gen_cpu / window, 3),
        "generator_share_of_used_cpu": round(gen_cpu / max(1e-9, gen_cpu + server_cpu), 3),
        "machine_busy": round((busy1 - busy0) / max(1e-9, all1 - all0), 3),
        "pipelines": dict(pipelines),
        "distinct_query_share": round(
            len({p["query"] for p in plan if p is not None}) / max(1, sum(1 for p in plan if p)),
            3,
        ),
        "by_kind": {
            kind: stats([s for s in measured if s.kind == kind])
            for kind in ("search", "events")
            if any(s.kind == kind for s in measured)
        },
        "errors": dict(collections.Counter(s.status for s in measured if s.status != "200")),
        "ok_searches": sum(1 for s in samples if s.kind == "search" and s.status == "200"),
        "ok_events": sum(1 for s in samples if s.kind == "events" and s.status == "200"),
        "timeline": timeline(measured, warmup),
    }


def stats(samples: list[Sample]) -> dict[str, Any]:
    ms = np.array([s.latency for s in samples]) * 1000
    took = np.array([s.took_ms for s in samples if s.took_ms is not None])
    out: dict[str, Any] = {
        "requests": len(samples),
        "ok": sum(1 for s in samples if s.status == "200"),
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p95_ms": round(float(np.percentile(ms, 95)), 2),
        "p99_ms": round(float(np.percentile(ms, 99)), 2),
        "max_ms": round(float(ms.max()), 2),
        "mean_ms": round(float(ms.mean()), 2),
    }
    if len(took):
        out["server_took_p50_ms"] = round(float(np.percentile(took, 50)), 2)
        out["server_took_p95_ms"] = round(float(np.percentile(took, 95)), 2)
    return out


def timeline(samples: list[Sample], warmup: float) -> list[dict[str, float]]:
    """Latency percentiles per second of scheduled send time (after the warm-up)."""
    buckets: dict[int, list[float]] = {}
    for s in samples:
        buckets.setdefault(int(s.scheduled - warmup), []).append(s.latency * 1000)
    out = []
    for second in sorted(buckets):
        a = np.array(buckets[second])
        out.append(
            {
                "second": second,
                "requests": len(a),
                "p50_ms": round(float(np.percentile(a, 50)), 2),
                "p95_ms": round(float(np.percentile(a, 95)), 2),
                "p99_ms": round(float(np.percentile(a, 99)), 2),
                "max_ms": round(float(a.max()), 2),
            }
        )
    return out


def passes(run: dict[str, Any], p95_ms: float) -> bool:
    search = run["by_kind"].get("search", {})
    return not run["errors"] and search.get("p95_ms", float("inf")) <= p95_ms


# ---------------------------------------------------------------------- report


def print_run(title: str, run: dict[str, Any]) -> None:
    print(f"\n{title}")
    rows = [
        ("offered rate", f"{run['rate']:g} req/s ({run['arrivals']} arrivals)"),
        ("measured window", f"{run['window_s']} s after {run['warmup_s']:g} s warm-up"),
        ("requests sent (window)", f"{run['sent']:,}"),
        ("throughput (OK)", f"{run['throughput_rps']:.1f} req/s"),
        ("searches (OK)", f"{run['search_throughput_rps']:.1f} /s"),
    ]
    for kind, s in run["by_kind"].items():
        rows.append(
            (
                f"{kind} latency ms",
                f"p50 {s['p50_ms']:.1f}  p95 {s['p95_ms']:.1f}  p99 {s['p99_ms']:.1f}  "
                f"max {s['max_ms']:.1f}  (mean {s['mean_ms']:.1f})",
            )
        )
        if "server_took_p50_ms" in s:
            rows.append(
                (
                    f"{kind} in pipeline ms",
                    f"p50 {s['server_took_p50_ms']:.1f}  p95 {s['server_took_p95_ms']:.1f}"
                    "  (response took_ms)",
                )
            )
    errors = ", ".join(f"{k}: {v}" for k, v in sorted(run["errors"].items())) or "none"
    rows += [
        ("errors", errors),
        ("pipelines served", ", ".join(f"{k}: {v}" for k, v in run["pipelines"].items())),
        ("distinct query texts", f"{100 * run['distinct_query_share']:.0f}% of the searches"),
        ("server CPU", f"{run['server_cpu_s']:.1f} s = {run['server_cores']:.2f} cores"),
        (
            "generator CPU",
            f"{run['generator_cpu_s']:.1f} s = {run['generator_cores']:.2f} cores "
            f"({100 * run['generator_share_of_used_cpu']:.0f}% of server + generator)",
        ),
        ("machine busy", f"{100 * run['machine_busy']:.0f}% of {os.cpu_count()} cores"),
        ("drain after window", f"{run['drain_s']:.2f} s"),
    ]
    width = max(len(r[0]) for r in rows)
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")


def plot(run: dict[str, Any], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    line = run["timeline"]
    x = [b["second"] for b in line]
    fig, ax = plt.subplots(figsize=(9, 4.5))
    for name, style in (("p50_ms", "-"), ("p95_ms", "-"), ("p99_ms", "--"), ("max_ms", ":")):
        ax.plot(x, [b[name] for b in line], style, label=name.replace("_ms", ""))
    ax.axhline(100, color="grey", linewidth=0.8, linestyle="-.", label="100 ms")
    ax.set_xlabel("second of the measured run (scheduled send time)")
    ax.set_ylabel("latency (ms)")
    ax.set_yscale("log")
    ax2 = ax.twinx()
    ax2.bar(x, [b["requests"] for b in line], alpha=0.12, color="black", width=1.0)
    ax2.set_ylabel("requests sent per second")
    ax.set_title(title)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def start_py_spy(path: Path | None, server: Server, seconds: float) -> subprocess.Popen | None:
    """``py-spy record`` of the server (its workers too) for ``seconds`` (in the
    background)."""
    if path is None:
        return None
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    formats = {".svg": "flamegraph", ".json": "speedscope"}
    path.parent.mkdir(parents=True, exist_ok=True)
    pid = server.process.pid
    command = [spy, "record", "-p", str(pid), "-d", str(int(seconds) + 1)]
    if server.workers > 1:
        command.append("--subprocesses")
    command += [
        "--nonblocking",
        "-r",
        "100",
        "-f",
        formats.get(path.suffix, "raw"),
        "-o",
        str(path),
    ]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def event_counts(index: Path) -> dict[str, int]:
    out = shopsearch("events", "info", str(index), "--json", quiet=True)
    return {k: v for k, v in json.loads(out).items() if isinstance(v, int)}


# ---------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, help="work dir, reused between runs (default: temp)")
    parser.add_argument("--index", type=Path, help=f"source index (default {BUNDLED_INDEX})")
    parser.add_argument("--users", type=int, default=200, help="simulated shoppers")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--rate", type=float, default=100.0, help="requests per second")
    parser.add_argument("--duration", type=float, default=60.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds before measuring")
    parser.add_argument("--connections", type=int, default=32, help="keep-alive connections")
    parser.add_argument("--arrivals", choices=("uniform", "poisson"), default="uniform")
    parser.add_argument("--client", choices=("raw", "httpx"), default="raw")
    parser.add_argument("--events-share", type=float, default=0.0, help="share of event posts")
    parser.add_argument("--timeout", type=float, default=10.0, help="per request, seconds")
    parser.add_argument(
        "--workers", type=int, default=2, help="serve --workers N (if the CLI has it)"
    )
    parser.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="environment of the server (e.g. OPENBLAS_NUM_THREADS=1); repeatable",
    )
    parser.add_argument("--log-level", help="the server's log level (default: its own, info)")
    parser.add_argument("--p95-ms", type=float, default=100.0, help="the latency target")
    parser.add_argument("--find-max", action="store_true", help="then step the rate up")
    parser.add_argument(
        "--rates", default="50,75,100,125,150,200,250,300", help="--find-max steps (req/s)"
    )
    parser.add_argument("--step-duration", type=float, default=15.0)
    parser.add_argument("--stop-timeout", type=float, default=15.0)
    parser.add_argument(
        "--py-spy",
        type=Path,
        metavar="FILE",
        help="profile the server with py-spy during the main run (.svg flame graph, "
        ".json speedscope, else collapsed stacks)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "load_test.json")
    parser.add_argument("--plot", type=Path, default=RESULTS / "load_test.png")
    parser.add_argument("--no-plot", action="store_true")
    args = parser.parse_args(argv)

    try:
        import uvloop
    except ImportError:
        uvloop = None
    started = time.perf_counter()
    work = args.work or Path(tempfile.mkdtemp(prefix="shopsearch-load-"))
    work.mkdir(parents=True, exist_ok=True)
    setup = prepare(args, work)
    key = create_key(setup.index)
    workload = Workload(setup.users, args.seed)
    before = event_counts(setup.index)
    server = Server(setup.index, free_port(), work / "server.log", args)
    ports = [server.port]
    results: dict[str, Any] = {
        "simulated_users": True,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "generator": {"client": args.client, "loop": "uvloop" if uvloop else "asyncio"},
        "setup": {
            "work": str(work),
            "index": str(setup.index),
            "users": {g: len(u) for g, u in setup.users.items()},
            "events": setup.events,
            "server_workers": server.workers,
            "server_env": args.server_env,
            "log_level": args.log_level or "default",
        },
    }

    all_runs: list[dict[str, Any]] = []

    def run(rate: float, duration: float, warmup: float, seed: int) -> dict[str, Any]:
        coroutine = run_load(
            ports,
            key,
            workload,
            server,
            rate=rate,
            duration=duration,
            warmup=warmup,
            connections=args.connections,
            client_name=args.client,
            arrivals=args.arrivals,
            events_share=args.events_share,
            timeout=args.timeout,
            seed=seed,
        )
        out = uvloop.run(coroutine) if uvloop else asyncio.run(coroutine)
        all_runs.append(out)
        return out

    try:
        health = server.wait_ready(timeout=300)
        serving = server.serving_line()
        results["setup"]["health"] = health
        results["setup"]["default_pipeline"] = serving.get("pipeline")
        print(
            f"server up ({server.workers} worker(s), port {server.port}) in "
            f"{health['startup_s']} s: {health['products']:,} products, {health['events']:,} "
            f"events, default pipeline {serving.get('pipeline')!r} (log: {work}/server*.log)"
        )
        if args.duration > 0:
            spy = start_py_spy(args.py_spy, server, args.warmup + args.duration)
            main_run = run(args.rate, args.duration, args.warmup, args.seed)
            if spy is not None:
                spy.wait()
                print(f"py-spy profile: {args.py_spy}")
            main_run["meets_target"] = passes(main_run, args.p95_ms) and (
                main_run["search_throughput_rps"] >= 0.99 * args.rate * (1 - args.events_share)
            )
            results["run"] = main_run
            print_run(f"open-loop run: {args.rate:g} req/s for {args.duration:g} s", main_run)
            verdict = "meets" if main_run["meets_target"] else "MISSES"
            print(
                f"  => {verdict} the target: {args.rate:g}/s with p95 <= {args.p95_ms:g} ms "
                "and 0 errors"
            )
            if not args.no_plot:
                setting = f"{server.workers} worker process{'es' if server.workers > 1 else ''}"
                setting += "".join(f", {e}" for e in args.server_env)
                plot(
                    main_run,
                    args.plot,
                    f"shopsearch serve, {serving.get('pipeline')} pipeline: {args.rate:g} req/s "
                    f"on {os.cpu_count()} cores\n{setting}",
                )
                print(f"  plot: {args.plot}")
        if args.find_max:
            steps = []
            best = None
            print(f"\nfind max: {args.step_duration:g} s per rate, p95 <= {args.p95_ms:g} ms")
            for i, rate in enumerate(float(r) for r in args.rates.split(",")):
                server.wait_idle()  # the previous run's queue must be gone
                step = run(rate, args.step_duration, 3.0, args.seed + 1 + i)
                step["passes"] = passes(step, args.p95_ms)
                steps.append(step)
                s = step["by_kind"].get("search", {})
                print(
                    f"  {rate:6g}/s: {step['search_throughput_rps']:6.1f} searches/s  "
                    f"p50 {s.get('p50_ms', 0):7.1f}  p95 {s.get('p95_ms', 0):8.1f}  "
                    f"p99 {s.get('p99_ms', 0):8.1f} ms  errors {sum(step['errors'].values())}"
                    f"  server {step['server_cores']:.2f} cores  "
                    f"machine busy {100 * step['machine_busy']:.0f}%  "
                    f"{'ok' if step['passes'] else 'FAIL'}"
                )
                if step["passes"]:
                    best = rate
                else:
                    break
            for step in steps:
                step.pop("timeline")
            results["find_max"] = {"p95_ms": args.p95_ms, "max_rate": best, "steps": steps}
            print(f"  highest rate meeting p95 <= {args.p95_ms:g} ms with 0 errors: {best}")
    finally:
        stop = server.stop(args.stop_timeout)
        results["shutdown"] = stop
        after = event_counts(setup.index)
        stop["queries_logged"] = after.get("queries", 0) - before.get("queries", 0)
        stop["events_stored"] = after.get("events", 0) - before.get("events", 0)
        stop["searches_answered_200"] = sum(r["ok_searches"] for r in all_runs)
        print(
            f"\nSIGTERM: exit code {stop['exit_code']} after {stop.get('seconds')} s"
            f"{' (killed after the timeout)' if stop.get('killed_after_timeout') else ''}; "
            f"server log levels {stop.get('log_levels')}"
        )
        print(
            f"  searches answered 200 (warm-ups included): {stop['searches_answered_200']:,}; "
            f"queries logged to the event store: {stop['queries_logged']:,}; "
            f"events stored: {stop['events_stored']:,}"
        )
    results["request_mix"] = dict(sorted(workload.counts.items()))
    results["seconds"] = round(time.perf_counter() - started, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
