"""``shopsearch serve DIR --workers 2``: a real multi-process server. Whichever worker answers,
a write acknowledged by another is seen, reloads reach every worker, rate limits and the
storefront key are shared, /metrics adds every worker up; SIGTERM flushes every worker's
query log (exit status 0), SIGKILL of the whole group loses no acknowledged event. Also the
per-process search cap (503 ``overloaded``). Which worker answered: ``X-Worker: <pid>``.
No timed asserts: loops wait (with generous deadlines) until both workers have answered."""

from __future__ import annotations

import collections
import json
import re
import shutil
import signal
import threading
import time
from collections.abc import Callable

import httpx
import pytest
from fastapi.testclient import TestClient
from serve_support import (
    ServerProcess,
    auth,
    copy_index,
    create_keys,
    event_record,
    query_record,
)

from shopsearch.cli import main
from shopsearch.events.store import EventStore
from shopsearch.serve import ServeSettings, create_app
from shopsearch.serve.keys import KeyFile

WORKERS = ("--workers", "2")
LIMITS = {  # (per-client limits of the storefront's key: test_serve_edge.py)
    f"SHOPSEARCH_SERVE_{name}": "100000"
    for name in (
        "RATE_LIMIT",
        "RATE_BURST",
        "CLIENT_RATE_LIMIT",
        "CLIENT_BURST",
        "ADDRESS_RATE_LIMIT",
        "ADDRESS_BURST",
    )
}
MAX_TRIES = 400  # requests before giving up on reaching both workers
#: A new connection per request (so that either worker may accept it).
CLIENT = httpx.Client(limits=httpx.Limits(max_keepalive_connections=0), timeout=60)


def call(server: ServerProcess, method: str, path: str, key: str | None = None, **kw):
    headers = auth(key) if key else {}
    return CLIENT.request(method, server.url + path, headers=headers, **kw)


def on_both_workers(send: Callable[[], httpx.Response], each: int = 3) -> list[httpx.Response]:
    """Send until both workers have answered ``each`` times; every response."""
    responses: list[httpx.Response] = []
    by_worker: collections.Counter[str] = collections.Counter()
    while len(by_worker) < 2 or min(by_worker.values()) < each:
        assert len(responses) < MAX_TRIES, f"only these workers answered: {dict(by_worker)}"
        response = send()
        responses.append(response)
        by_worker[response.headers["x-worker"]] += 1
    return responses


def metric(text: str, sample: str) -> float:
    for line in text.splitlines():
        if line.startswith(sample + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, tiny_index_dir):
    """One 2-worker server for the tests below (each writes its own products)."""
    tmp = tmp_path_factory.mktemp("workers")
    index = copy_index(tiny_index_dir, tmp / "index")
    keys = create_keys(index)
    keys["tight"] = KeyFile(index).create("tight", scopes=["search"], rate_limit=0.001, burst=5)
    server = ServerProcess(index, tmp / "server.log", env=LIMITS, args=WORKERS)
    try:
        server.wait_ready(workers=2)
        yield server, keys, index
    finally:
        server.stop()


def test_every_worker_sees_a_write_acknowledged_by_another(cluster):
    server, keys, _ = cluster
    admin, search = keys["admin"], keys["search"]
    product = {"title": "Zorbulator quantum teapot", "brand": "Zorb"}
    assert call(server, "PUT", "/v1/products/W-1", admin, json=product).status_code == 200

    def find() -> httpx.Response:
        body = {"query": "zorbulator quantum teapot", "k": 3}
        return call(server, "POST", "/v1/search", search, json=body)

    for response in on_both_workers(find):
        assert response.json()["hits"][0]["id"] == "W-1"

    assert call(server, "DELETE", "/v1/products/W-1", admin).status_code == 200
    for response in on_both_workers(find):
        assert "W-1" not in [h["id"] for h in response.json()["hits"]]
    for response in on_both_workers(lambda: call(server, "GET", "/v1/products/W-1", search)):
        assert response.status_code == 404

    bulk = {"products": [{"id": f"WB-{i}", "title": f"Blorptastic mug {i}"} for i in range(3)]}
    assert call(server, "POST", "/v1/products/bulk", admin, json=bulk).status_code == 200
    for i in range(3):
        responses = on_both_workers(lambda i=i: call(server, "GET", f"/v1/products/WB-{i}", search))
        assert {r.status_code for r in responses} == {200}


def test_writes_through_both_workers_never_conflict(cluster):
    server, keys, _ = cluster
    writers: collections.Counter[str] = collections.Counter()
    n = 0
    while len(writers) < 2 or n < 6:
        assert n < 60, f"only these workers wrote: {dict(writers)}"
        body = {"title": f"Snorkelwidget gadget number {n}"}
        response = call(server, "PUT", f"/v1/products/WC-{n}", keys["admin"], json=body)
        assert response.status_code == 200, response.text  # never 409 index_locked
        writers[response.headers["x-worker"]] += 1
        n += 1
    for i in range(n):
        get = lambda i=i: call(server, "GET", f"/v1/products/WC-{i}", keys["search"])  # noqa: E731
        assert {r.status_code for r in on_both_workers(get, each=1)} == {200}


def test_concurrent_writes_through_both_workers_all_succeed(cluster):
    server, keys, _ = cluster
    statuses: list[int] = []

    def write(i: int) -> None:
        body = {"title": f"Parallel frobnicator {i}"}
        statuses.append(
            call(server, "PUT", f"/v1/products/WP-{i}", keys["admin"], json=body).status_code
        )

    threads = [threading.Thread(target=write, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == [200] * 8
    for i in range(8):
        get = lambda i=i: call(server, "GET", f"/v1/products/WP-{i}", keys["search"])  # noqa: E731
        assert {r.status_code for r in on_both_workers(get, each=1)} == {200}


def test_a_cli_upsert_while_serving_is_seen_by_every_worker(cluster, tmp_path, capsys):
    server, keys, index = cluster
    catalog = tmp_path / "more.jsonl"
    catalog.write_text(json.dumps({"id": "CLI-1", "title": "Wobblefrump garden gnome"}) + "\n")
    assert main(["upsert", str(index), str(catalog)]) == 0
    body = {"query": "wobblefrump garden gnome", "k": 3}
    find = lambda: call(server, "POST", "/v1/search", keys["search"], json=body)  # noqa: E731
    for response in on_both_workers(find):
        assert response.json()["hits"][0]["id"] == "CLI-1"


def test_admin_reload_and_sighup_reach_every_worker(cluster):
    server, keys, _ = cluster

    def probe() -> httpx.Response:
        """A search (which catches up with reloads first), then /healthz on the same
        connection, hence the same worker."""
        with httpx.Client(base_url=server.url, headers=auth(keys["admin"]), timeout=60) as c:
            searched = c.post("/v1/search", json={"query": "mug", "k": 1})
            health = c.get("/healthz")
        assert health.json()["pid"] == int(searched.headers["x-worker"])
        return health

    def reloads() -> dict[int, int]:
        return {r.json()["pid"]: r.json()["reloads"] for r in on_both_workers(probe, each=1)}

    before = reloads()
    assert call(server, "POST", "/v1/admin/reload", keys["admin"]).status_code == 200
    assert reloads() == {pid: n + 1 for pid, n in before.items()}

    server.signal(signal.SIGHUP)  # to the parent: it asks the workers
    wanted = {pid: n + 2 for pid, n in before.items()}
    deadline = time.monotonic() + 60
    while (seen := reloads()) != wanted and time.monotonic() < deadline:
        time.sleep(0.2)
    assert seen == wanted
    text = call(server, "GET", "/metrics", keys["admin"]).text
    assert metric(text, "shopsearch_reloads_total") == sum(seen.values())


def test_metrics_add_up_every_worker(cluster):
    server, keys, _ = cluster
    sample = 'shopsearch_http_requests_total{method="POST",route="/v1/search",status="200"}'
    count = 'shopsearch_http_request_duration_seconds_count{method="POST",route="/v1/search"}'
    before = call(server, "GET", "/metrics", keys["admin"]).text
    body = {"query": "water bottle", "k": 2}
    searches = on_both_workers(
        lambda: call(server, "POST", "/v1/search", keys["search"], json=body)
    )
    after = call(server, "GET", "/metrics", keys["admin"]).text
    assert metric(after, sample) - metric(before, sample) == len(searches)
    assert metric(after, count) - metric(before, count) == len(searches)
    assert metric(after, "shopsearch_catalog_products") >= 50
    assert metric(after, "shopsearch_query_cache_hits") + metric(
        after, "shopsearch_query_cache_misses"
    ) >= len(searches)


def test_rate_limits_are_shared_by_the_workers(cluster):
    server, keys, _ = cluster
    body = {"query": "mug", "k": 1}
    responses = on_both_workers(
        lambda: call(server, "POST", "/v1/search", keys["tight"], json=body), each=6
    )
    statuses = collections.Counter(r.status_code for r in responses)
    assert statuses[200] == 5 and statuses[429] == len(responses) - 5  # the burst, once


def test_keys_created_and_revoked_while_serving_reach_every_worker(cluster):
    server, _, index = cluster
    late = KeyFile(index).create("late", scopes=["search"])
    body = {"query": "mug", "k": 1}

    def status_on_both(wanted: int) -> None:
        """Until both workers have re-read the key file (they check once a second)."""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            search = lambda: call(server, "POST", "/v1/search", late, json=body)  # noqa: E731
            if {r.status_code for r in on_both_workers(search, each=2)} == {wanted}:
                return
            time.sleep(0.2)
        raise AssertionError(f"not every worker answers {wanted}")

    status_on_both(200)
    KeyFile(index).revoke("late")
    status_on_both(401)


def test_the_storefront_key_is_the_same_in_every_worker(cluster):
    server, _, index = cluster
    pages = on_both_workers(lambda: call(server, "GET", "/"))
    found = {re.search(r'name="shopsearch-key" content="([^"]+)"', p.text).group(1) for p in pages}
    assert len(found) == 1
    key = found.pop()
    assert key.startswith("ss_")
    body = {"query": "mug", "k": 1}
    searches = on_both_workers(lambda: call(server, "POST", "/v1/search", key, json=body), each=1)
    assert {r.status_code for r in searches} == {200}
    assert key not in server.log_path.read_text()
    assert all(key not in p.read_text(errors="replace") for p in index.glob("*.json"))


def test_sigterm_flushes_every_workers_query_log_and_exits_0(tmp_path, tiny_index_dir):
    index = copy_index(tiny_index_dir, tmp_path / "index")
    keys = create_keys(index)
    server = ServerProcess(index, tmp_path / "server.log", env=LIMITS, args=WORKERS)
    try:
        server.wait_ready(workers=2)
        n = iter(range(10_000))

        def search() -> httpx.Response:
            body = {"query": f"water bottle {next(n)}", "user_id": "term-user"}
            return call(server, "POST", "/v1/search", keys["search"], json=body)

        query_ids = [r.json()["query_id"] for r in on_both_workers(search, each=10)]
        server.signal(signal.SIGTERM)  # the last queries are still queued in each worker
        assert server.wait() == 0
    finally:
        server.stop()
    with EventStore.open(index, readonly=True) as store:
        assert [q for q in query_ids if store.query(q) is None] == []
    log = server.log_path.read_text()
    assert log.count("Application shutdown complete.") == 2


def test_sigkill_of_the_whole_group_after_acknowledged_events_loses_nothing(
    tmp_path, tiny_index_dir
):
    index = copy_index(tiny_index_dir, tmp_path / "index")
    keys = create_keys(index)
    server = ServerProcess(index, tmp_path / "server.log", env=LIMITS, args=WORKERS)
    acknowledged: list[str] = []
    try:
        server.wait_ready(workers=2)
        batch = iter(range(10_000))

        def post() -> httpx.Response:
            b = next(batch)
            records = []
            for i in range(10):
                records += [query_record(f"k{b}-{i}"), event_record(f"k{b}-{i}", f"B{i:03d}")]
            response = call(server, "POST", "/v1/events", keys["events"], json={"records": records})
            assert response.json() == {"stored": 20, "duplicates": 0}
            acknowledged.extend(r["query_id"] for r in records[::2])
            return response

        on_both_workers(post)
        server.kill_group()  # right after the last acknowledgement
        assert server.wait() == -signal.SIGKILL
    finally:
        server.stop()
        for line in server.log_path.read_text().splitlines():  # killed: nobody removed it
            if '"starting workers"' in line:
                shutil.rmtree(json.loads(line)["shared"], ignore_errors=True)
    with EventStore.open(index, readonly=True) as store:
        assert store.counts()["queries"] == len(acknowledged)
        assert store.counts()["events"] == len(acknowledged)
        assert [q for q in acknowledged if store.query(q) is None] == []


def test_searches_beyond_the_queue_are_refused_with_503(tmp_path, tiny_index_dir, encoder):
    index = copy_index(tiny_index_dir, tmp_path / "index")
    keys = create_keys(index)
    settings = ServeSettings(search_concurrency=1, max_queued_searches=1)
    app = create_app(index, settings, encoder=encoder)
    pipeline = app.state.shopsearch.current.pipeline
    inside, release = threading.Event(), threading.Event()
    real_search = pipeline.search

    def blocking_search(*args, **kwargs):
        inside.set()
        release.wait(60)
        return real_search(*args, **kwargs)

    pipeline.search = blocking_search
    gate = app.state.search_gate
    results: list[httpx.Response] = []
    with TestClient(app) as client:

        def search() -> None:
            body = {"query": "mug", "k": 1}
            results.append(client.post("/v1/search", json=body, headers=auth(keys["search"])))

        first = threading.Thread(target=search)
        first.start()
        assert inside.wait(60)  # the one slot is taken
        second = threading.Thread(target=search)
        second.start()
        deadline = time.monotonic() + 60
        while gate.inside < 2 and time.monotonic() < deadline:  # the one queue place too
            time.sleep(0.01)
        assert gate.inside == 2
        refused = client.post("/v1/search", json={"query": "mug"}, headers=auth(keys["search"]))
        release.set()
        first.join()
        second.join()
    assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
    body = refused.json()
    assert set(body) == {"message", "code", "type"}
    assert body["code"] == "overloaded" and body["type"] == "api_error"
    assert [r.status_code for r in results] == [200, 200]
