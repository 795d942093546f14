"""The public edge of ``shopsearch serve --workers 2``, probed from outside as an abuser would:
real server processes, HTTP over sockets (raw ones for half-sent and oversized requests),
clients at distinct loopback addresses (127.0.0.x) where who-is-who matters.

Per item of the hardening issue: per-client limits beneath the storefront's public key,
suggestions that need distinct shoppers (blocklist, admin removal), bounded request heads,
read timeouts, the key checked before the body, a hang-up counted as 499, strict request
types and bounded ids, prices and timestamps, CORS refusals in the error shape, HEAD
/healthz, no redirects, the storefront page's security headers.

One server for the module, with short timeouts and small client limits (below). Time
bounds are generous (seconds where the server needs tenths): no timing is measured.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from serve_support import ServerProcess, auth, copy_index, create_keys, query_record

from shopsearch.serve import ServeSettings, create_app

ENV = {
    "SHOPSEARCH_SERVE_RATE_LIMIT": "100000",  # private keys: never the limit under test
    "SHOPSEARCH_SERVE_RATE_BURST": "100000",
    "SHOPSEARCH_SERVE_CLIENT_RATE_LIMIT": "2",
    "SHOPSEARCH_SERVE_CLIENT_BURST": "10",
    "SHOPSEARCH_SERVE_ADDRESS_RATE_LIMIT": "5",
    "SHOPSEARCH_SERVE_ADDRESS_BURST": "30",
    "SHOPSEARCH_SERVE_HEADER_TIMEOUT_S": "2",
    "SHOPSEARCH_SERVE_BODY_TIMEOUT_S": "2",
    "SHOPSEARCH_SERVE_KEEP_ALIVE_TIMEOUT_S": "2",
    "SHOPSEARCH_SERVE_CORS_ORIGINS": "https://shop.example",
    "SHOPSEARCH_SERVE_SUGGEST_BLOCKLIST": "casino",
}
ERROR_KEYS = {"message", "code", "type"}
DEADLINE_S = 20.0  # for anything the server does on its own (timeouts, other workers)


class Edge:
    def __init__(self, server: ServerProcess, keys: dict[str, str], index: Path) -> None:
        self.server, self.keys, self.index = server, keys, index
        page = httpx.get(server.url + "/").text
        self.storefront = re.search(r'name="shopsearch-key" content="([^"]+)"', page)[1]

    def client(self, address: str = "127.0.0.1", **headers: str) -> httpx.Client:
        """A client at a loopback ``address``; a new connection per request (so that either
        worker may answer)."""
        return httpx.Client(
            base_url=self.server.url,
            headers=headers,
            timeout=30,
            transport=httpx.HTTPTransport(
                local_address=address, limits=httpx.Limits(max_keepalive_connections=0)
            ),
        )

    def metrics(self) -> str:
        return httpx.get(self.server.url + "/metrics", headers=auth(self.keys["admin"])).text


@pytest.fixture(scope="module")
def edge(tmp_path_factory, tiny_index_dir):
    tmp = tmp_path_factory.mktemp("edge")
    index = copy_index(tiny_index_dir, tmp / "index")
    keys = create_keys(index)
    server = ServerProcess(index, tmp / "server.log", env=ENV, args=("--workers", "2"))
    try:
        server.wait_ready(workers=2)
        yield Edge(server, keys, index)
    finally:
        server.stop()


def error(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == ERROR_KEYS and body["code"] == code, body
    return body["message"]


def metric(text: str, name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` that have all these labels."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def requests_total(text: str, route: str, status: int) -> float:
    return metric(text, "shopsearch_http_requests_total", route=route, status=str(status))


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        assert time.monotonic() < deadline, f"still waiting for {what}"
        time.sleep(0.1)


# ---------------------------------------------------------------------- raw HTTP


def connect(edge: Edge, address: str = "127.0.0.1") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", edge.server.port), source_address=(address, 0))
    sock.settimeout(DEADLINE_S)
    return sock


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (a reset ends it too)."""
    chunks = []
    try:
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    except ConnectionResetError:
        pass
    return b"".join(chunks)


def parse(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:] if ": " in line)
    return int(lines[0].split()[1]), headers, body


def raw_error(raw: bytes, status: int, code: str) -> str:
    got, headers, body = parse(raw)
    assert got == status, raw[:300]
    assert headers["content-type"] == "application/json" and headers["connection"] == "close"
    data = json.loads(body)
    assert set(data) == ERROR_KEYS and data["code"] == code, data
    return data["message"]


# ---------------------------------------------------------------------- per-client limits


def test_one_abusive_client_does_not_lock_out_other_shoppers(edge):
    key = auth(edge.storefront)
    statuses: Counter[int] = Counter()
    messages = set()
    with httpx.Client(
        base_url=edge.server.url,
        headers=key,
        transport=httpx.HTTPTransport(local_address="127.0.0.2"),
    ) as abuser:
        for _ in range(300):  # `GET /v1/suggest?q=a` in a loop, one keep-alive connection
            response = abuser.get("/v1/suggest", params={"q": "a"})
            statuses[response.status_code] += 1
            if response.status_code == 429:
                messages.add(response.json()["message"].split(";")[0])
                assert int(response.headers["retry-after"]) >= 1
    assert statuses[429] >= 250 and set(statuses) == {200, 429}
    assert messages == {"rate limit of the key 'storefront' per client: this client exceeded 2 "
                        "requests/s per shopper"}  # fmt: skip

    # ...while other shoppers search undisturbed: another address, the same address
    # under another shopper id (each within its own burst)
    for address, shopper in (("127.0.0.3", "shopper-b"), ("127.0.0.2", "shopper-c")):
        with edge.client(address, **key, **{"X-Shopper-Id": shopper}) as other:
            for _ in range(8):
                assert other.post("/v1/search", json={"query": "mug", "k": 3}).status_code == 200

    # inventing shopper ids does not escape the address's own limit (30 at once, 5/s)
    refused = None
    with httpx.Client(
        base_url=edge.server.url,
        headers=key,
        transport=httpx.HTTPTransport(local_address="127.0.0.4"),
    ) as rotating:
        for i in range(300):
            response = rotating.get(
                "/v1/suggest", params={"q": "a"}, headers={"X-Shopper-Id": f"fake-{i}"}
            )
            if response.status_code == 429:
                refused = response.json()["message"]
                break
    assert refused is not None and "this address (127.0.0.4)" in refused
    text = edge.metrics()
    assert metric(text, "shopsearch_client_rate_limited_total", bucket="client") >= 250
    assert metric(text, "shopsearch_client_rate_limited_total", bucket="address") >= 1


# ---------------------------------------------------------------------- suggestions


def suggested(edge: Edge, prefix: str) -> list[set[str]]:
    """The logged-query suggestions for ``prefix`` from each worker, until both answered."""
    by_worker: dict[str, set[str]] = {}

    def ask(client: httpx.Client) -> str:
        response = client.get("/v1/suggest", params={"q": prefix, "k": 20})
        found = {s["text"] for s in response.json()["suggestions"] if s["source"] == "query"}
        by_worker[response.headers["x-worker"]] = found
        return response.headers["x-worker"]

    on_both_workers(edge, ask, auth(edge.keys["search"]))
    return list(by_worker.values())


def on_both_workers(
    edge: Edge, send: Callable[[httpx.Client], str], headers: dict[str, str]
) -> None:
    """Call ``send`` (which returns the answering worker) until both workers answered: new
    connections, spaced out a little (a busy machine may hand many in a row to one)."""
    workers: set[str] = set()
    deadline = time.monotonic() + DEADLINE_S
    with edge.client(**headers) as client:
        while len(workers) < 2:
            assert time.monotonic() < deadline, f"only worker {workers} answered"
            workers.add(send(client))
            time.sleep(0.01)


def search_from(edge: Edge, address: str, query: str, user_ids: tuple[str, ...] = ("",)) -> None:
    with edge.client(address, **auth(edge.storefront)) as client:
        for user in user_ids:
            body = {"query": query, "k": 3, "user_id": user or None}
            assert client.post("/v1/search", json=body).status_code == 200


def test_a_phrase_needs_distinct_shoppers_and_can_be_removed(edge, encoder):
    poison, control = "zqxv poison phrase", "zqxv control phrase"
    # one address, many searches under invented user ids: one shopper (the public key)
    search_from(edge, "127.0.0.10", poison, tuple(f"u{i}" for i in range(6)))
    search_from(edge, "127.0.0.11", poison)
    for address in ("127.0.0.10", "127.0.0.11", "127.0.0.12"):
        search_from(edge, address, control)
        search_from(edge, address, "casino zqxv bonus")  # blocklisted
    wait_for(lambda: all(control in s for s in suggested(edge, "zqxv")), "the control phrase")
    assert all(s == {control} for s in suggested(edge, "zqxv"))  # 2 shoppers: not yet

    search_from(edge, "127.0.0.12", poison)  # the third shopper
    wait_for(lambda: all(poison in s for s in suggested(edge, "zqxv p")), "the phrase")

    with edge.client(**auth(edge.keys["admin"])) as admin:
        response = admin.delete("/v1/admin/suggestions", params={"phrase": "ZQXV  Poison phrase"})
        assert response.status_code == 200 and response.json()["removed"] == "ZQXV  Poison phrase"
        response = admin.delete("/v1/admin/suggestions", params={"phrase": " "})
        error(response, 400, "invalid_phrase")
    with edge.client(**auth(edge.keys["search"])) as searcher:
        response = searcher.delete("/v1/admin/suggestions", params={"phrase": poison})
        error(response, 403, "insufficient_scope")
    wait_for(lambda: all(poison not in s for s in suggested(edge, "zqxv")), "the removal")

    # more shoppers do not bring it back (after them, a new phrase shows the log caught up)
    later = "zqxv later phrase"
    for address in ("127.0.0.13", "127.0.0.14", "127.0.0.15"):
        search_from(edge, address, poison)
        search_from(edge, address, later)
    wait_for(lambda: all(later in s for s in suggested(edge, "zqxv")), "the later phrase")
    assert all(s == {control, later} for s in suggested(edge, "zqxv"))

    # kept across restarts: another server process on the same index (in process, here)
    app = create_app(edge.index, ServeSettings(suggest_blocklist=("casino",)), encoder=encoder)
    with TestClient(app) as client:
        response = client.get(
            "/v1/suggest", params={"q": "zqxv", "k": 20}, headers=auth(edge.keys["search"])
        )
        found = {s["text"] for s in response.json()["suggestions"] if s["source"] == "query"}
        assert found == {control, later}


# ---------------------------------------------------------------------- request heads


def test_request_heads_are_bounded(edge):
    big = b"x" * 6_000  # three of them: each line fits, the head does not (16 KiB)
    sock = connect(edge)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: a\r\n" + b"".join(
        b"X-Pad-%d: %s\r\n" % (i, big) for i in range(3)
    ) + b"\r\n")  # fmt: skip
    assert "16,384 bytes" in raw_error(read_until_closed(sock), 431, "headers_too_large")

    sock = connect(edge)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: a\r\nX-Big: " + b"y" * 9_000 + b"\r\n\r\n")
    assert "'X-Big'" in raw_error(read_until_closed(sock), 431, "header_too_large")

    sock = connect(edge)
    sock.sendall(b"GET /healthz?q=" + b"z" * 9_000 + b" HTTP/1.1\r\nHost: a\r\n\r\n")
    raw_error(read_until_closed(sock), 414, "uri_too_long")

    sock = connect(edge)
    sock.sendall(b"GARBAGE\r\n\r\n")
    raw_error(read_until_closed(sock), 400, "bad_request")

    # an 8 MB header, unfinished, on 12 connections at once: each is cut off early and the
    # workers do not buffer the megabytes (before: 200 for one, ~105 MB held for twelve)
    workers = {pid for pid in worker_pids(edge)}
    before = {pid: rss_kib(pid) for pid in workers}
    answers: list[bytes] = []

    def flood() -> None:
        sock = connect(edge)
        try:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: a\r\nX-Flood: " + b"f" * 8_000_000)
        except OSError:
            pass  # the server closed the connection mid-send: expected
        answers.append(read_until_closed(sock))

    threads = [threading.Thread(target=flood) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(DEADLINE_S)
    assert len(answers) == 12 and not any(t.is_alive() for t in threads)
    assert all(a == b"" or a.startswith(b"HTTP/1.1 431 ") for a in answers)
    for pid in workers:
        assert rss_kib(pid) - before[pid] < 30_000, "a worker buffered the flood"
    assert httpx.get(edge.server.url + "/healthz").status_code == 200
    errors = metric(
        edge.metrics(), "shopsearch_http_errors_total", route="connection", code="headers_too_large"
    )
    assert errors >= 1


def worker_pids(edge: Edge) -> set[int]:
    pids: set[int] = set()

    def ask(client: httpx.Client) -> str:
        worker = client.get("/healthz").headers["x-worker"]
        pids.add(int(worker))
        return worker

    on_both_workers(edge, ask, {})
    return pids


def rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+) kB", status)[1])


# ---------------------------------------------------------------------- slow clients


def test_slow_clients_time_out(edge):
    before = requests_total(edge.metrics(), "/v1/search", 408)
    started = time.monotonic()
    half_head = connect(edge)
    half_head.sendall(b"GET /healthz HTTP/1.1\r\nHost: a\r\nX-Slow: ")
    silent = connect(edge)  # sends nothing at all
    key = auth(edge.keys["search"])["Authorization"].encode()
    half_body = connect(edge)
    half_body.sendall(
        b"POST /v1/search HTTP/1.1\r\nHost: a\r\nAuthorization: " + key + b"\r\n"
        b'Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"query"'
    )
    idle = connect(edge)  # a keep-alive connection that goes quiet after one request
    idle.sendall(b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n")

    assert "2 s" in raw_error(read_until_closed(half_head), 408, "header_timeout")
    assert read_until_closed(silent) == b""
    assert "body" in raw_error(read_until_closed(half_body), 408, "body_timeout")
    status, headers, _ = parse(read_until_closed(idle))  # answered, then closed when idle
    assert status == 200 and "connection" not in headers
    assert time.monotonic() - started < DEADLINE_S  # (each took ~2 s; before: unbounded)
    wait_for(lambda: requests_total(edge.metrics(), "/v1/search", 408) > before, "a 408 counted")


def test_the_key_is_checked_before_the_body_is_read(edge):
    # a body that will never come: without a key, 401 at once (not a wait for the body,
    # which would end in a 408), and the connection is closed
    sock = connect(edge)
    sock.sendall(
        b"POST /v1/search HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\n"
        b'Content-Length: 1000\r\n\r\n{"query"'
    )
    raw_error(read_until_closed(sock), 401, "missing_api_key")
    sock = connect(edge)
    sock.sendall(
        b"POST /v1/events HTTP/1.1\r\nHost: a\r\nX-API-Key: ss_wrong\r\n"
        b"Content-Length: 1000\r\n\r\n{"
    )
    raw_error(read_until_closed(sock), 401, "invalid_api_key")


def test_a_client_hanging_up_mid_body_is_a_499_not_a_500(edge):
    key = auth(edge.keys["search"])["Authorization"].encode()
    before = requests_total(edge.metrics(), "/v1/search", 499)
    for _ in range(3):
        sock = connect(edge)
        sock.sendall(
            b"POST /v1/search HTTP/1.1\r\nHost: a\r\nAuthorization: " + key + b"\r\n"
            b"Content-Type: application/json\r\nContent-Length: 1000\r\n"
            b"Expect: 100-continue\r\n\r\n"
        )
        # "100 Continue" comes when the app asks for the body: it is waiting for it now
        assert sock.recv(1024).startswith(b"HTTP/1.1 100 Continue")
        sock.sendall(b'{"query"')
        sock.close()
    wait_for(lambda: requests_total(edge.metrics(), "/v1/search", 499) >= before + 3, "3 499s")
    text = edge.metrics()
    errors = metric(
        text, "shopsearch_http_errors_total", route="/v1/search", code="client_closed_request"
    )
    assert errors >= 3
    assert not [line for line in text.splitlines() if 'status="500"' in line]
    assert "unhandled error" not in edge.server.log_path.read_text()


# ---------------------------------------------------------------------- strict bodies


def test_request_types_are_strict_and_values_bounded(edge):
    with edge.client(**auth(edge.keys["admin"])) as client:
        for bad, field in (
            ({"query": "mug", "k": True}, "body.k"),
            ({"query": "mug", "k": "5"}, "body.k"),
            ({"query": "mug", "explain": 1}, "body.explain"),
            ({"query": "mug", "filters": {"price_max": "9.99"}}, "body.filters.price_max"),
            ({"query": "mug", "user_id": "a\u202eb"}, "body.user_id"),
            ({"query": "mug", "session_id": "s\x00"}, "body.session_id"),
        ):
            message = error(client.post("/v1/search", json=bad), 422, "validation_failed")
            assert message.startswith(field), message
        message = error(
            client.post("/v1/search", json={"query": "mug", "user_id": "a\u202eb"}),
            422,
            "validation_failed",
        )
        assert "U+202E" in message and "reorders" in message
        far = time.time() + 10 * 86_400
        event = {"action_name": "click", "object_id": "B1", "timestamp": far}
        message = error(
            client.post("/v1/search", json={"query": "mug", "events": [event]}),
            422,
            "validation_failed",
        )
        assert message.startswith("body.events.0.timestamp") and "future" in message

        for product, reason in (
            ({"title": "Mug", "price": "9.99"}, "price must be a JSON number"),
            ({"title": "Mug", "price": 1e308}, "price must be at most 1,000,000,000,000"),
            ({"title": 12}, "title must be a string"),
            ({"id": "P-\u202e1", "title": "Mug"}, "id holds the invisible bidirectional"),
        ):
            response = client.put("/v1/products/P-1", json=product)
            assert reason in error(response, 400, "invalid_product")
        message = error(client.get("/v1/products/a%00b"), 422, "validation_failed")
        assert message.startswith("path.product_id") and "U+0000" in message

        year_9999 = {**query_record("q-9999"), "timestamp": "9999-12-31T23:59:59Z"}
        huge_id = query_record("q" * 102_400)
        nul_client = query_record("q-nul", client="u\x00")
        response = client.post("/v1/events", json={"records": [year_9999, huge_id, nul_client]})
        message = error(response, 400, "invalid_record")
        assert (
            "records[0]: timestamp 9999-12-31T23:59:59Z is more than 86,400 s in the future"
            in message
        )
        assert "records[1]: field 'query_id' is 102,400 characters, limit 256" in message
        assert "records[2]: field 'client_id' holds the control character U+0000" in message


# ---------------------------------------------------------------------- the rest of the edge


def test_cors_refusals_have_the_error_shape(edge):
    preflight = {"Access-Control-Request-Method": "POST"}
    response = httpx.options(
        edge.server.url + "/v1/search", headers={**preflight, "Origin": "https://evil.example"}
    )
    message = error(response, 400, "cors_rejected")
    assert "'https://evil.example'" in message and "origin" in message
    response = httpx.options(
        edge.server.url + "/v1/search", headers={**preflight, "Origin": "https://shop.example"}
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "https://shop.example"


def test_head_healthz_and_no_redirects(edge):
    response = httpx.head(edge.server.url + "/healthz")
    assert response.status_code == 200 and response.content == b""
    assert int(response.headers["content-length"]) > 0  # as for GET
    headers = {**auth(edge.keys["search"]), "Host": "evil.example"}
    for method, path in (("POST", "/v1/search/"), ("GET", "/healthz/"), ("GET", "/v1/suggest/")):
        response = httpx.request(
            method, edge.server.url + path, headers=headers, json={"query": "x"}
        )
        error(response, 404, "not_found")
        assert "location" not in response.headers


def test_the_storefront_page_sends_security_headers(edge):
    response = httpx.get(edge.server.url + "/")
    headers = response.headers
    assert headers["x-frame-options"] == "DENY" and headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"
    policy = {d.strip() for d in headers["content-security-policy"].split(";")}
    assert "frame-ancestors 'none'" in policy and "script-src 'self'" in policy
    meta = re.search(r'http-equiv="Content-Security-Policy"\s+content="([^"]+)"', response.text)
    assert {d.strip() for d in meta[1].split(";")} <= policy  # the header says at least as much
    assert httpx.head(edge.server.url + "/").status_code == 200
