"""Property-based fuzzing of every route from the API's own OpenAPI schema (schemathesis):
whatever the request, valid or not, the server never answers with a 5xx, and every error
keeps the error shape.

(Each operation's hypothesis strategy is driven directly: schemathesis's lazy pytest loader,
``schemathesis.pytest.from_fixture``, fails under pytest 9.)
"""

from __future__ import annotations

from urllib.parse import quote

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from serve_support import auth, copy_index, create_keys

from shopsearch.query.clean import has_searchable
from shopsearch.serve import ServeSettings, create_app

OPERATIONS = [  # (method, path, examples): bounded to keep the module near 30 s on 2 cores
    ("POST", "/v1/search", 100),
    ("GET", "/v1/suggest", 50),
    ("POST", "/v1/events", 60),
    ("GET", "/v1/products/{product_id}", 40),
    ("PUT", "/v1/products/{product_id}", 40),
    ("DELETE", "/v1/products/{product_id}", 25),
    ("POST", "/v1/products/bulk", 30),
    ("POST", "/v1/admin/reload", 3),  # opens a fresh pipeline each time: slow
    ("DELETE", "/v1/admin/suggestions", 25),
    ("GET", "/healthz", 5),
    ("GET", "/metrics", 5),
]


@pytest.fixture(scope="module")
def app_and_client(tmp_path_factory, tiny_index_dir, encoder):
    index = copy_index(tiny_index_dir, tmp_path_factory.mktemp("fuzz") / "index")
    keys = create_keys(index)
    limits = ServeSettings(rate_limit=100_000.0, rate_burst=100_000)
    app = create_app(index, limits, encoder=encoder)
    with TestClient(app) as client:  # runs the lifespan (closes the index at the end)
        yield app, client, auth(keys["admin"])


@pytest.fixture(scope="module")
def fuzzed(app_and_client):
    app, _, headers = app_and_client
    return schemathesis.openapi.from_asgi("/openapi.json", app, headers=headers), headers


@pytest.fixture(scope="module")
def fuzzed_client(app_and_client):
    _, client, headers = app_and_client
    return client, headers


def test_every_operation_is_fuzzed(fuzzed):
    schema, _ = fuzzed
    listed = {(method, path) for method, path, _ in OPERATIONS}
    for result in schema.get_all_operations():
        operation = result.ok()
        assert (operation.method.upper(), operation.path) in listed


@pytest.mark.parametrize(("method", "path", "examples"), OPERATIONS)
def test_no_request_makes_a_server_error(fuzzed, method, path, examples):
    schema, headers = fuzzed
    if path not in schema:
        pytest.skip(f"{path} is not served (optional module missing)")
    operation = schema[path][method]
    cases = operation.as_strategy(GenerationMode.POSITIVE) | operation.as_strategy(
        GenerationMode.NEGATIVE
    )

    @given(case=cases)
    @settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def check(case):
        response = case.call(headers=headers)
        case.validate_response(response, checks=[not_a_server_error], headers=headers)
        if response.status_code >= 400:
            assert set(response.json()) == {"message", "code", "type"}, response.text

    check()


# Free-form bodies (products, UBI records) are validated by shopsearch's own parsers, so the
# schema says little about them: these strategies produce mostly *valid* ones, with any text.
texts = st.text(max_size=40)
ids = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="/"), min_size=1, max_size=20
)


@given(
    product_id=ids,
    product=st.fixed_dictionaries(
        {"title": st.text(min_size=1, max_size=60).filter(str.strip)},
        optional={
            "brand": texts,
            "color": texts,
            "price": st.one_of(
                st.floats(allow_nan=False, allow_infinity=False), st.integers(), texts
            ),
            "rating": st.one_of(st.floats(0, 5), texts),
            "rating_count": st.one_of(st.integers(), texts),
            "category": st.one_of(texts, st.lists(texts, max_size=4)),
            "description": texts,
            "extra_field": st.one_of(texts, st.integers(), st.lists(st.integers())),
        },
    ),
)
@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
    database=None,
)
def test_any_product_is_stored_and_searchable_or_refused(fuzzed_client, product_id, product):
    client, headers = fuzzed_client
    response = client.put(
        f"/v1/products/{quote(product_id, safe='')}", json=product, headers=headers
    )
    assert response.status_code in (200, 400, 404, 422), response.text
    if response.status_code == 200:
        stored = response.json()
        assert (
            client.get(f"/v1/products/{quote(stored['id'], safe='')}", headers=headers).json()
            == stored
        )
        query = stored["title"][:100]
        found = client.post("/v1/search", json={"query": query, "k": 5}, headers=headers)
        if has_searchable(query):
            assert found.status_code == 200, found.text
        else:  # a title of punctuation or invisible characters is not a searchable query
            assert found.status_code == 422 and "no letters or digits" in found.text


@given(
    records=st.lists(
        st.fixed_dictionaries(
            {
                "query_id": ids,
                "client_id": ids,
                "timestamp": st.one_of(
                    st.floats(0, 2e9), st.just("2026-11-28T10:00:00Z"), texts, st.none()
                ),
            },
            optional={
                "user_query": texts,
                "action_name": st.sampled_from(["click", "purchase", "impression", "zap"]),
                "session_id": st.one_of(ids, st.none()),
                "event_attributes": st.fixed_dictionaries(
                    {"object": st.fixed_dictionaries({"object_id": st.one_of(ids, st.integers())})},
                    optional={"position": st.fixed_dictionaries({"ordinal": st.integers(-2, 50)})},
                ),
                "application": texts,
            },
        ),
        min_size=1,
        max_size=5,
    )
)
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
    database=None,
)
def test_any_record_batch_is_stored_or_refused_whole(fuzzed_client, records):
    client, headers = fuzzed_client
    response = client.post("/v1/events", json={"records": records}, headers=headers)
    assert response.status_code in (200, 400), response.text
    if response.status_code == 200:
        body = response.json()
        assert body["stored"] + body["duplicates"] == len(records)
        again = client.post("/v1/events", json={"records": records}, headers=headers).json()
        assert again == {"stored": 0, "duplicates": len(records)}
    else:
        assert response.json()["message"].count("records[") >= 1
