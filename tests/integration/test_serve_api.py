"""The HTTP API in process (FastAPI's TestClient) over a copy of the tiny index: auth, scopes,
rate limits, error bodies, search, events, products, suggest, metrics, reload."""

from __future__ import annotations

import json
import re
import threading
import uuid
from contextlib import contextmanager

import pytest
from fastapi.testclient import TestClient
from serve_support import auth, copy_index, create_keys, event_record, query_record

from shopsearch.events.store import EventStore
from shopsearch.pipeline import SearchPipeline
from shopsearch.serve import ServeSettings, create_app
from shopsearch.serve.keys import KEYS_FILE, KeyFile

ERROR_KEYS = {"message", "code", "type"}


@contextmanager
def serve(index, encoder, **settings):
    app = create_app(index, ServeSettings(**settings), encoder=encoder)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def error(response, status: int, code: str, type_: str) -> str:
    """Assert the error shape; return the message."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == ERROR_KEYS, body
    assert body["code"] == code and body["type"] == type_, body
    assert isinstance(body["message"], str) and body["message"]
    return body["message"]


def metric(client, admin: str, line_prefix: str) -> float:
    """The value of the first sample line of /metrics that starts with ``line_prefix``."""
    text = client.get("/metrics", headers=auth(admin)).text
    for line in text.splitlines():
        if line.startswith(line_prefix):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


@pytest.fixture(scope="module")
def shared(tmp_path_factory, tiny_index_dir, encoder):
    """One server for the tests that do not write products (nor change limits)."""
    index = copy_index(tiny_index_dir, tmp_path_factory.mktemp("serve") / "index")
    keys = create_keys(index)
    with serve(index, encoder, rate_limit=10_000.0, rate_burst=10_000) as client:
        yield client, keys, index


@pytest.fixture
def fresh(tmp_path, tiny_index_dir):
    index = copy_index(tiny_index_dir, tmp_path / "index")
    return index, create_keys(index)


# ---------------------------------------------------------------------- auth


def test_healthz_needs_no_key(shared):
    client, _, _ = shared
    body = client.get("/healthz").json()
    assert body["status"] == "ok" and body["products"] == 50 and body["events"] >= 0


def test_a_missing_key_is_401_with_a_bearer_challenge(shared):
    client, _, _ = shared
    for method, path in (("POST", "/v1/search"), ("GET", "/metrics"), ("GET", "/openapi.json")):
        response = client.request(method, path, json={"query": "mug"})
        error(response, 401, "missing_api_key", "authentication_error")
        assert response.headers["www-authenticate"] == "Bearer"
    # another scheme is no key either
    response = client.post(
        "/v1/search", json={"query": "mug"}, headers={"Authorization": "Basic x"}
    )
    error(response, 401, "missing_api_key", "authentication_error")


def test_an_unknown_key_is_401(shared):
    client, _, _ = shared
    for headers in (auth("ss_not-a-key"), {"X-API-Key": "ss_not-a-key"}):
        response = client.post("/v1/search", json={"query": "mug"}, headers=headers)
        error(response, 401, "invalid_api_key", "authentication_error")


def test_both_header_forms_are_accepted(shared):
    client, keys, _ = shared
    for headers in (auth(keys["search"]), {"X-API-Key": keys["search"]}):
        assert client.post("/v1/search", json={"query": "mug"}, headers=headers).status_code == 200


def test_a_key_without_the_scope_is_403(shared):
    client, keys, _ = shared
    search, events = auth(keys["search"]), auth(keys["events"])
    cases = [
        client.put("/v1/products/B1", json={"title": "x"}, headers=search),
        client.delete("/v1/products/B1", headers=search),
        client.post(
            "/v1/products/bulk", json={"products": [{"id": "a", "title": "b"}]}, headers=search
        ),
        client.post("/v1/events", json={"records": [query_record("q")]}, headers=search),
        client.post("/v1/search", json={"query": "mug"}, headers=events),
        client.get("/metrics", headers=search),
        client.post("/v1/admin/reload", headers=events),
    ]
    for response in cases:
        message = error(response, 403, "insufficient_scope", "permission_error")
        assert "-key" in message  # names the key, never shows it
    # admin implies every scope
    admin = auth(keys["admin"])
    assert client.post("/v1/search", json={"query": "mug"}, headers=admin).status_code == 200


def test_openapi_and_docs_need_any_valid_key(shared):
    client, keys, _ = shared
    error(client.get("/openapi.json"), 401, "missing_api_key", "authentication_error")
    spec = client.get("/openapi.json", headers=auth(keys["events"])).json()
    assert {"/v1/search", "/v1/events", "/v1/products/{product_id}", "/healthz"} <= set(
        spec["paths"]
    )
    search_body = spec["components"]["schemas"]["SearchRequest"]["properties"]
    assert search_body["k"]["maximum"] == 100
    docs = client.get("/docs", headers=auth(keys["search"]))
    assert docs.status_code == 200 and "/v1/search" in docs.text
    assert "http://" not in docs.text.split("<pre>")[0]  # self-contained: no CDN
    assert "https://" not in docs.text.split("<pre>")[0]


def test_keys_are_stored_hashed(shared):
    _, keys, index = shared
    text = (index / KEYS_FILE).read_text()
    for key in keys.values():
        assert key.startswith("ss_") and key not in text
    stored = json.loads(text)["keys"]
    assert {k["name"] for k in stored} == {"search-key", "events-key", "admin-key"}
    assert all(re.fullmatch(r"[0-9a-f]{64}", k["sha256"]) for k in stored)
    assert ((index / KEYS_FILE).stat().st_mode & 0o777) == 0o600


# ---------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"query": "mug", "k": 101}, "body.k: Input should be less than or equal to 100"),
        ({"query": "mug", "k": 0}, "body.k: Input should be greater than or equal to 1"),
        ({"query": "   "}, "body.query: must not be blank"),
        ({"query": ""}, "body.query: String should have at least 1 character"),
        ({"query": "x" * 513}, "body.query: String should have at most 512 characters"),
        ({"query": "mug", "colour": "red"}, "body.colour: Extra inputs are not permitted"),
        ({"k": 3}, "body.query: Field required"),
        ({"query": "mug", "filters": {"price_min": "cheap"}}, "body.filters.price_min"),
        (
            {"query": "mug", "events": [{"action_name": "like", "object_id": "B1"}]},
            "body.events.0.action_name",
        ),
        ({"query": "\ud800 mug"}, "body.query: Input should be a valid string"),
    ],
)
def test_validation_errors_name_the_field(shared, body, message):
    client, keys, _ = shared
    headers = {**auth(keys["search"]), "Content-Type": "application/json"}
    response = client.post("/v1/search", content=json.dumps(body), headers=headers)  # \ud800 too
    assert message in error(response, 422, "validation_failed", "invalid_request_error")


def test_too_many_inline_events_is_a_validation_error(shared):
    client, keys, _ = shared
    events = [{"action_name": "click", "object_id": "B1"}] * 101
    response = client.post(
        "/v1/search", json={"query": "mug", "events": events}, headers=auth(keys["search"])
    )
    assert "body.events" in error(response, 422, "validation_failed", "invalid_request_error")


def test_malformed_json_is_400(shared):
    client, keys, _ = shared
    headers = {**auth(keys["search"]), "Content-Type": "application/json"}
    response = client.post("/v1/search", content=b'{"query": "mug",', headers=headers)
    assert "not valid JSON" in error(response, 400, "invalid_json", "invalid_request_error")


def test_shopsearch_errors_are_400(shared):
    client, keys, _ = shared
    headers = auth(keys["search"])
    response = client.post("/v1/search", json={"query": "mug", "pipeline": "nope"}, headers=headers)
    assert "unknown pipeline" in error(response, 400, "invalid_request", "invalid_request_error")
    body = {"query": "mug", "filters": {"price_min": 50, "price_max": 10}}
    response = client.post("/v1/search", json=body, headers=headers)
    assert "price" in error(response, 400, "invalid_request", "invalid_request_error")


def test_unknown_routes_and_methods(shared):
    client, keys, _ = shared
    error(client.get("/v2/nothing"), 404, "not_found", "not_found_error")
    error(client.delete("/healthz"), 405, "method_not_allowed", "invalid_request_error")
    response = client.get("/v1/products/NO-SUCH-ID", headers=auth(keys["search"]))
    error(response, 404, "not_found", "not_found_error")


def test_an_unexpected_exception_is_a_500_without_details(shared):
    client, keys, _ = shared
    app = client.app

    @app.get("/test-only/boom", include_in_schema=False)
    def boom() -> None:
        raise RuntimeError("secret internal detail")

    before = metric(client, keys["admin"], 'shopsearch_http_errors_total{code="internal_error"')
    response = client.get("/test-only/boom")
    error(response, 500, "internal_error", "api_error")
    assert "secret" not in response.text and "Traceback" not in response.text
    after = metric(client, keys["admin"], 'shopsearch_http_errors_total{code="internal_error"')
    assert after == before + 1


# ---------------------------------------------------------------------- search


def test_search_response(shared):
    client, keys, _ = shared
    body = {"query": "ugg slippers women", "k": 5, "filters": {"brands": ["UGG"]}}
    response = client.post("/v1/search", json=body, headers=auth(keys["search"]))
    assert response.status_code == 200
    result = response.json()
    assert set(result) == {
        "query_id",
        "query",
        "pipeline",
        "took_ms",
        "candidates",
        "hits",
        "facets",
        "personalized",
        "parsed",
    }
    assert uuid.UUID(result["query_id"]).version == 4
    assert result["personalized"] is False
    assert result["parsed"]["text"] == "ugg slippers women"
    assert result["parsed"]["audience"] == ["women"]
    assert result["query"] == "ugg slippers women" and result["pipeline"] == "hybrid"
    assert 1 <= len(result["hits"]) <= 5 and result["candidates"] >= len(result["hits"])
    for hit in result["hits"]:
        assert set(hit) == {"id", "score", "scores", "product", "explanation"}
        assert hit["explanation"] is None
        assert set(hit["scores"]) - {"rules"} == {"bm25", "dense", "fused"}
        product = hit["product"]
        assert set(product) == {
            "id", "title", "brand", "color", "price", "rating", "rating_count", "image", "category"
        }  # fmt: skip
        assert product["id"] == hit["id"] and product["brand"] == "UGG"
    scores = [h["score"] for h in result["hits"]]
    assert scores == sorted(scores, reverse=True)
    facets = result["facets"]
    assert facets and all(
        set(v) == {"value", "count"} and v["count"] > 0
        for values in facets.values()
        for v in values
    )
    no_facets = client.post(
        "/v1/search", json={**body, "facets": False}, headers=auth(keys["search"])
    ).json()
    assert no_facets["facets"] == {}


def test_explain_gives_component_scores_and_bm25_per_field(shared):
    client, keys, _ = shared
    body = {"query": "ugg slippers", "k": 3, "explain": True, "pipeline": "hybrid"}
    hits = client.post("/v1/search", json=body, headers=auth(keys["search"])).json()["hits"]
    for hit in hits:
        explanation = hit["explanation"]
        assert {"bm25", "dense", "fused", "bm25.title"} <= set(explanation)
        assert "bm25.title" not in hit["scores"]


def test_searches_are_logged_as_ubi_queries(shared):
    client, keys, index = shared
    body = {
        "query": "kitchen towels",
        "k": 4,
        "user_id": "shopper-7",
        "session_id": "sess-7",
        "filters": {"rating_min": 4.0},
        "events": [{"action_name": "click", "object_id": "B01N3A73IY"}],
    }
    result = client.post("/v1/search", json=body, headers=auth(keys["search"])).json()
    client.app.state.shopsearch.query_log.flush()
    with EventStore.open(index, readonly=True) as store:
        record = store.query(result["query_id"])
    assert record is not None
    assert (record.client_id, record.session_id, record.user_query) == (
        "shopper-7",
        "sess-7",
        "kitchen towels",
    )
    assert record.filters == {"rating_min": 4.0}
    assert record.extra["query_response_hit_ids"] == [h["id"] for h in result["hits"]]
    # an event can now link to it
    click = event_record(result["query_id"], result["hits"][0]["id"], client="shopper-7")
    response = client.post("/v1/events", json={"records": [click]}, headers=auth(keys["events"]))
    assert response.json() == {"stored": 1, "duplicates": 0}


# ---------------------------------------------------------------------- events


def test_events_are_stored_once(shared):
    client, keys, index = shared
    headers = auth(keys["events"])
    records = [query_record("q-events-1"), event_record("q-events-1", "B01N3A73IY")]
    events_before = client.get("/healthz").json()["events"]
    assert client.post("/v1/events", json={"records": records}, headers=headers).json() == {
        "stored": 2,
        "duplicates": 0,
    }
    assert client.post("/v1/events", json={"records": records}, headers=headers).json() == {
        "stored": 0,
        "duplicates": 2,
    }
    assert client.get("/healthz").json()["events"] == events_before + 1
    with EventStore.open(index, readonly=True) as store:
        assert store.query("q-events-1").user_query == "ugg slippers"
        assert [e.object_id for e in store.events_of_client("u1")] == ["B01N3A73IY"]


def test_a_malformed_batch_stores_nothing_and_names_each_bad_record(shared):
    client, keys, index = shared
    good = query_record("q-bad-batch")
    no_time = {k: v for k, v in event_record("q-bad-batch", "B1").items() if k != "timestamp"}
    body = {"records": [good, no_time, "not a record", {"query_id": "x"}]}
    response = client.post("/v1/events", json=body, headers=auth(keys["events"]))
    message = error(response, 400, "invalid_record", "invalid_request_error")
    assert "records[1]: missing required field 'timestamp'" in message
    assert "records[2]: record is a string" in message and "records[3]:" in message
    assert "records[0]" not in message
    with EventStore.open(index, readonly=True) as store:
        assert store.query("q-bad-batch") is None


def test_event_batch_size_limits(shared):
    client, keys, _ = shared
    headers = auth(keys["events"])
    response = client.post("/v1/events", json={"records": []}, headers=headers)
    assert "body.records" in error(response, 422, "validation_failed", "invalid_request_error")
    many = [query_record(f"q-many-{i}") for i in range(1001)]
    response = client.post("/v1/events", json={"records": many}, headers=headers)
    assert "body.records" in error(response, 422, "validation_failed", "invalid_request_error")


# ---------------------------------------------------------------------- suggest, page, metrics


def test_suggest_from_titles_and_served_queries(shared):
    pytest.importorskip("shopsearch.suggest")
    client, keys, _ = shared
    headers = auth(keys["search"])
    response = client.get("/v1/suggest", params={"q": "ugg", "k": 5}, headers=headers)
    assert response.status_code == 200
    suggestions = response.json()["suggestions"]
    assert 1 <= len(suggestions) <= 5
    assert all(set(s) == {"text", "source", "score"} for s in suggestions)
    assert any(s["source"] == "title" and "ugg" in s["text"].lower() for s in suggestions)
    # a served query is suggested once suggest_min_shoppers (3) distinct shoppers searched it
    # (with a private key, a shopper is its user id)
    for shopper in ("u1", "u1", "u2", "u3"):
        body = {"query": "ugg slippers for winter", "user_id": shopper}
        client.post("/v1/search", json=body, headers=headers)
        client.app.state.shopsearch.query_log.flush()
        found = client.get("/v1/suggest", params={"q": "ugg slippers f"}, headers=headers).json()
        texts = [s["text"] for s in found["suggestions"] if s["source"] == "query"]
        assert texts == ([] if shopper != "u3" else ["ugg slippers for winter"])
    response = client.get("/v1/suggest", params={"q": ""}, headers=headers)
    error(response, 422, "validation_failed", "invalid_request_error")
    response = client.get("/v1/suggest", params={"q": "ugg"})
    error(response, 401, "missing_api_key", "authentication_error")


def test_storefront_page_carries_an_ephemeral_search_and_events_key(shared):
    client, _, index = shared
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "__SHOPSEARCH_STOREFRONT_KEY__" not in page.text
    assert page.headers["cache-control"] == "no-store"
    key = client.app.state.storefront_key
    assert key in page.text and key not in (index / KEYS_FILE).read_text()
    headers = auth(key)
    assert client.post("/v1/search", json={"query": "mug"}, headers=headers).status_code == 200
    response = client.post("/v1/events", json={"records": [query_record("q-sf")]}, headers=headers)
    assert response.status_code == 200
    error(
        client.put("/v1/products/B1", json={"title": "x"}, headers=headers),
        403,
        "insufficient_scope",
        "permission_error",
    )
    error(client.get("/metrics", headers=headers), 403, "insufficient_scope", "permission_error")


def test_static_files_need_no_key(shared):
    client, _, _ = shared
    from shopsearch.serve.app import STATIC_DIR

    files = [p for p in STATIC_DIR.glob("*") if p.is_file()] if STATIC_DIR.is_dir() else []
    if not files:
        pytest.skip("no static files installed yet")
    response = client.get(f"/static/{files[0].name}")
    assert response.status_code == 200 and response.content == files[0].read_bytes()
    error(client.get("/static/no-such-file.js"), 404, "not_found", "not_found_error")


def test_metrics_count_requests_errors_and_sizes(shared):
    client, keys, _ = shared
    admin = keys["admin"]
    search_200 = 'shopsearch_http_requests_total{method="POST",route="/v1/search",status="200"}'
    search_401 = 'shopsearch_http_requests_total{method="POST",route="/v1/search",status="401"}'
    before_ok, before_401 = metric(client, admin, search_200), metric(client, admin, search_401)
    for _ in range(3):
        client.post("/v1/search", json={"query": "water bottle"}, headers=auth(keys["search"]))
    client.post("/v1/search", json={"query": "water bottle"})
    assert metric(client, admin, search_200) == before_ok + 3
    assert metric(client, admin, search_401) == before_401 + 1
    text = client.get("/metrics", headers=auth(admin)).text
    for name in (
        'shopsearch_http_request_duration_seconds_bucket{le="0.1",method="POST",route="/v1/search"}',
        'shopsearch_http_errors_total{code="missing_api_key",route="/v1/search"}',
        'shopsearch_http_requests_total{method="GET",route="/v1/products/{product_id}"',
        "shopsearch_catalog_products 50.0",
        "shopsearch_events_stored ",
        "shopsearch_query_log_pending ",
        "# TYPE shopsearch_rate_limited_total counter",
        "# TYPE shopsearch_reloads_total counter",
    ):
        assert name in text, name
    assert client.get("/metrics").status_code == 401


# ---------------------------------------------------------------------- limits


def test_rate_limit_is_per_key_with_retry_after(fresh, encoder):
    index, keys = fresh
    slow = KeyFile(index).create("slow", scopes=["search"], rate_limit=0.2, burst=2)
    with serve(index, encoder) as client:
        headers = auth(slow)
        statuses = [
            client.post("/v1/search", json={"query": "mug"}, headers=headers).status_code
            for _ in range(2)
        ]
        assert statuses == [200, 200]
        response = client.post("/v1/search", json={"query": "mug"}, headers=headers)
        message = error(response, 429, "rate_limited", "rate_limit_error")
        assert "slow" in message
        assert 1 <= int(response.headers["retry-after"]) <= 5  # one token per 5 s
        # another key has its own bucket
        other = client.post("/v1/search", json={"query": "mug"}, headers=auth(keys["search"]))
        assert other.status_code == 200
        assert metric(client, keys["admin"], 'shopsearch_rate_limited_total{key="slow"}') == 1


def test_oversized_bodies_are_413_unread(fresh, encoder):
    index, keys = fresh
    with serve(index, encoder, max_body_bytes=2_000) as client:
        headers = auth(keys["events"])
        big = {"records": [query_record(f"q-big-{i}") for i in range(40)]}
        response = client.post("/v1/events", json=big, headers=headers)
        assert "2,000 bytes" in error(response, 413, "body_too_large", "invalid_request_error")

        def stream():  # no Content-Length: counted while streamed
            for _ in range(10):
                yield b" " * 500

        response = client.post(
            "/v1/events",
            content=stream(),
            headers={**headers, "Content-Type": "application/json"},
        )
        error(response, 413, "body_too_large", "invalid_request_error")
        small = {"records": [query_record("q-small")]}
        assert client.post("/v1/events", json=small, headers=headers).status_code == 200
        with EventStore.open(index, readonly=True) as store:
            assert store.counts()["queries"] == 1


def test_cors_only_when_configured(fresh, encoder):
    index, _ = fresh
    preflight = {
        "Origin": "https://shop.example",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "x-api-key,content-type",
    }
    with serve(index, encoder, cors_origins=("https://shop.example",)) as client:
        response = client.options("/v1/search", headers=preflight)
        assert response.status_code == 200
        assert response.headers["access-control-allow-origin"] == "https://shop.example"
        other = client.options(
            "/v1/search", headers={**preflight, "Origin": "https://evil.example"}
        )
        assert "access-control-allow-origin" not in other.headers
    with serve(index, encoder) as client:
        response = client.options("/v1/search", headers=preflight)
        assert "access-control-allow-origin" not in response.headers


# ---------------------------------------------------------------------- products


def test_put_search_update_delete_a_product(fresh, encoder):
    index, keys = fresh
    admin, search = auth(keys["admin"]), auth(keys["search"])
    product = {
        "title": "Zorblax ceramic teapot with bamboo handle",
        "brand": "Zorblax",
        "price": 24.99,  # a JSON number: the API converts nothing ("$24.99" is a 400)
        "category": "Home & Kitchen > Teapots",
        "rating": 4.5,
    }
    query = {"query": "zorblax teapot", "k": 3}
    with serve(index, encoder) as client:
        response = client.put("/v1/products/ZB-1", json=product, headers=admin)
        assert response.status_code == 200
        stored = response.json()
        assert stored["id"] == "ZB-1" and stored["price"] == 24.99
        assert stored["category"] == ["Home & Kitchen", "Teapots"]
        hits = client.post("/v1/search", json=query, headers=search).json()["hits"]
        assert hits[0]["id"] == "ZB-1" and hits[0]["product"]["brand"] == "Zorblax"
        assert client.get("/v1/products/ZB-1", headers=search).json()["title"] == product["title"]
        assert client.get("/healthz").json()["products"] == 51

        renamed = {**product, "id": "ZB-1", "title": "Zorblax glass teapot"}
        assert client.put("/v1/products/ZB-1", json=renamed, headers=admin).status_code == 200
        hits = client.post("/v1/search", json=query, headers=search).json()["hits"]
        assert hits[0]["product"]["title"] == "Zorblax glass teapot"  # not a stale cached copy

        assert client.delete("/v1/products/ZB-1", headers=admin).json() == {"deleted": 1}
        hits = client.post("/v1/search", json=query, headers=search).json()["hits"]
        assert "ZB-1" not in [h["id"] for h in hits]
        response = client.get("/v1/products/ZB-1", headers=search)
        error(response, 404, "not_found", "not_found_error")
        response = client.delete("/v1/products/ZB-1", headers=admin)
        error(response, 404, "not_found", "not_found_error")
        assert client.get("/healthz").json()["products"] == 50
    # durable: a fresh pipeline sees the final state
    with SearchPipeline.open(index, encoder=encoder) as pipeline:
        assert pipeline.get("ZB-1") is None and len(pipeline) == 50


def test_put_validates_with_the_catalog_rules(fresh, encoder):
    index, keys = fresh
    admin = auth(keys["admin"])
    with serve(index, encoder) as client:
        response = client.put("/v1/products/A", json={"id": "B", "title": "x"}, headers=admin)
        assert "'B'" in error(response, 400, "id_mismatch", "invalid_request_error")
        response = client.put("/v1/products/A", json={"brand": "x"}, headers=admin)
        assert "title" in error(response, 400, "invalid_product", "invalid_request_error")
        response = client.put(
            "/v1/products/A", json={"title": "x", "price": "cheap"}, headers=admin
        )
        assert "price" in error(response, 400, "invalid_product", "invalid_request_error")
        response = client.put("/v1/products/A", json=["not", "an", "object"], headers=admin)
        error(response, 422, "validation_failed", "invalid_request_error")
        assert client.get("/healthz").json()["products"] == 50


def test_bulk_upsert(fresh, encoder):
    index, keys = fresh
    admin, search = auth(keys["admin"]), auth(keys["search"])
    products = [
        {"id": f"BULK-{i}", "title": f"Quuxonic travel kettle model {i}", "brand": "Quuxonic"}
        for i in range(3)
    ]
    with serve(index, encoder) as client:
        bad = [products[0], {"id": "BAD-1"}, {"id": "BAD-2", "title": "t", "rating": "great"}]
        response = client.post("/v1/products/bulk", json={"products": bad}, headers=admin)
        message = error(response, 400, "invalid_product", "invalid_request_error")
        assert "products[1]: missing required field 'title'" in message
        assert "products[2]: " in message and "products[0]" not in message
        assert client.get("/healthz").json()["products"] == 50  # nothing stored

        response = client.post("/v1/products/bulk", json={"products": products}, headers=admin)
        assert response.json() == {"upserted": 3}
        body = {"query": "quuxonic travel kettle", "k": 5, "filters": {"brands": ["Quuxonic"]}}
        hits = client.post("/v1/search", json=body, headers=search).json()["hits"]
        assert sorted(h["id"] for h in hits) == ["BULK-0", "BULK-1", "BULK-2"]
        error(
            client.post("/v1/products/bulk", json={"products": []}, headers=admin),
            422,
            "validation_failed",
            "invalid_request_error",
        )


# ---------------------------------------------------------------------- reload and concurrency


def test_reload_and_writes_under_concurrent_searches(fresh, encoder):
    """Threads search non-stop while the index is reloaded and written: every search
    succeeds; a reload picks up a change made by another process."""
    index, keys = fresh
    admin, search = auth(keys["admin"]), auth(keys["search"])
    queries = ["ugg slippers", "water bottle", "kitchen towels", "phone case", "dog toy"]
    statuses: list[int] = []
    stop = threading.Event()
    with serve(index, encoder, rate_limit=10_000.0, rate_burst=10_000) as client:

        def hammer(offset: int) -> None:
            i = offset
            while not stop.is_set():
                body = {"query": queries[i % len(queries)], "k": 10, "explain": i % 2 == 0}
                statuses.append(client.post("/v1/search", json=body, headers=search).status_code)
                i += 1

        threads = [threading.Thread(target=hammer, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        try:
            first = client.app.state.shopsearch.current
            for round_ in range(2):
                response = client.post("/v1/admin/reload", headers=admin)
                assert response.status_code == 200, response.text
                assert response.json()["reloaded"] and response.json()["products"] == 50 + round_
                product = {"title": f"Plimsoll slipper round {round_}", "brand": "UGG"}
                put = client.put(f"/v1/products/RL-{round_}", json=product, headers=admin)
                assert put.status_code == 200
            assert client.delete("/v1/products/RL-0", headers=admin).status_code == 200
            assert client.app.state.shopsearch.current is not first
        finally:
            stop.set()
            for t in threads:
                t.join()
        assert len(statuses) > 8 and set(statuses) == {200}
        assert first.retired and first.users == 0

        # another process writes the directory: the next search sees it, no reload needed
        with SearchPipeline.open(index, encoder=encoder) as other:
            from shopsearch.catalog.schema import Product

            other.upsert([Product(id="EXT-1", title="Frobnitz waffle iron", brand="Frobnitz")])
        body = {"query": "frobnitz waffle iron", "k": 3}
        assert (
            client.post("/v1/search", json=body, headers=search).json()["hits"][0]["id"] == "EXT-1"
        )
        # and the server's writes go on top of it (no 409 for a snapshot gone stale)
        with SearchPipeline.open(index, encoder=encoder) as other:
            other.upsert([Product(id="EXT-2", title="Frobnitz toaster", brand="Frobnitz")])
        assert client.put("/v1/products/X", json={"title": "x"}, headers=admin).status_code == 200
        assert client.post("/v1/admin/reload", headers=admin).json()["products"] == 54
        for pid in ("EXT-1", "EXT-2", "X"):
            assert client.get(f"/v1/products/{pid}", headers=search).status_code == 200
        assert metric(client, keys["admin"], "shopsearch_reloads_total") == 3


def test_a_failed_reload_keeps_serving_the_previous_index(fresh, encoder):
    index, keys = fresh
    with serve(index, encoder) as client:
        (index / "ltr").mkdir()
        (index / "ltr" / "model.txt").write_text("not a LightGBM model")
        response = client.post("/v1/admin/reload", headers=auth(keys["admin"]))
        message = error(response, 503, "reload_failed", "api_error")
        assert "still serving the previous index" in message
        body = {"query": "ugg slippers"}
        result = client.post("/v1/search", json=body, headers=auth(keys["search"])).json()
        assert result["pipeline"] == "hybrid" and result["hits"]


def test_query_vectors_are_cached_without_changing_results(shared, encoder):
    client, keys, index = shared
    body = {"query": "stainless steel water bottle for kids", "k": 5, "pipeline": "hybrid"}
    hits_before = metric(client, keys["admin"], "shopsearch_query_cache_hits ")
    first = client.post("/v1/search", json=body, headers=auth(keys["search"])).json()["hits"]
    second = client.post("/v1/search", json=body, headers=auth(keys["search"])).json()["hits"]
    assert metric(client, keys["admin"], "shopsearch_query_cache_hits ") >= hits_before + 1
    with SearchPipeline.open(index, encoder=encoder) as pipeline:  # no cache
        reference = pipeline.search(body["query"], 5, pipeline="hybrid").hits
    expected = [(h.product_id, h.scores["dense"]) for h in reference]
    for hits in (first, second):
        assert [h["id"] for h in hits] == [pid for pid, _ in expected]
        assert [h["scores"]["dense"] for h in hits] == pytest.approx([d for _, d in expected])


def test_a_search_during_a_reload_asked_elsewhere_waits_for_the_new_index(fresh, encoder):
    """Another worker asks for a reload (the shared marker grows) while this one is already
    reloading: a search arriving meanwhile must wait for the new generation, not find the
    process 'up to date' and answer from the old one (a race seen in CI)."""
    from shopsearch.serve.shared import ReloadMarker
    from shopsearch.serve.state import ServeState

    index, _ = fresh
    marker = ReloadMarker(index.parent / "reload-marker")
    state = ServeState(index, encoder=encoder, reload_marker=marker)
    opening, release = threading.Event(), threading.Event()
    open_generation = state._open

    def slow_open(*args, **kwargs):
        opening.set()
        assert release.wait(60)
        return open_generation(*args, **kwargs)

    try:
        old = state.current
        state._open = slow_open
        marker.request()  # another process asked
        reloading = threading.Thread(target=state.refresh)
        reloading.start()
        assert opening.wait(60)
        seen: list = []

        def search() -> None:
            with state.lease() as generation:
                seen.append((generation, state.reloads))

        searching = threading.Thread(target=search)
        searching.start()
        searching.join(0.5)  # (the old code answered at once, from the old generation)
        release.set()
        reloading.join(60)
        searching.join(60)
        assert seen and seen[0][0] is not old and seen[0][1] == 1
        assert state.reloads == 1  # and nobody reloaded twice
    finally:
        release.set()
        state.close()
