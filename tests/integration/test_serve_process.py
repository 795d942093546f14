"""``shopsearch serve`` as a real process (uvicorn): nothing acknowledged is lost when it is
SIGKILLed; SIGTERM shuts it down gracefully, writing the queries it logged; SIGHUP reloads.
Also the ``keys`` commands."""

from __future__ import annotations

import json
import signal
import time

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

from shopsearch.catalog.schema import Product
from shopsearch.cli import main
from shopsearch.events.store import EventStore
from shopsearch.pipeline import SearchPipeline
from shopsearch.serve import ServeSettings, create_app
from shopsearch.serve.keys import KEYS_FILE


@pytest.fixture
def index(tmp_path, tiny_index_dir):
    return copy_index(tiny_index_dir, tmp_path / "index")


def test_sigkill_after_acknowledged_events_loses_nothing(index, tmp_path, encoder):
    keys = create_keys(index)
    server = ServerProcess(index, tmp_path / "server.log")
    acknowledged = []
    try:
        server.wait_ready()
        with httpx.Client(base_url=server.url, headers=auth(keys["events"])) as client:
            for batch in range(5):
                records = []
                for i in range(20):
                    query_id = f"kill-{batch}-{i}"
                    records += [query_record(query_id), event_record(query_id, f"B{i:03d}")]
                response = client.post("/v1/events", json={"records": records})
                assert response.json() == {"stored": 40, "duplicates": 0}
                acknowledged += records
            server.signal(signal.SIGKILL)  # right after the last acknowledgement
        assert server.wait() == -signal.SIGKILL
    finally:
        server.stop()
    with EventStore.open(index, readonly=True) as store:
        assert store.counts()["queries"] == 100 and store.counts()["events"] == 100
        for record in acknowledged[::2]:
            assert store.query(record["query_id"]) is not None
    # re-posting after the crash stores nothing twice
    with TestClient(create_app(index, ServeSettings(), encoder=encoder)) as client:
        response = client.post(
            "/v1/events", json={"records": acknowledged[:40]}, headers=auth(keys["events"])
        )
        assert response.json() == {"stored": 0, "duplicates": 40}


def test_sigterm_flushes_logged_queries_and_sighup_reloads(index, tmp_path):
    keys = create_keys(index)
    server = ServerProcess(index, tmp_path / "server.log")
    query_ids = []
    try:
        server.wait_ready()
        with httpx.Client(base_url=server.url, headers=auth(keys["admin"]), timeout=30) as client:
            # SIGHUP: reload after another process changed the index
            with SearchPipeline.open(index) as other:
                other.upsert([Product(id="HUP-1", title="Gizmotron hover kettle")])
            server.signal(signal.SIGHUP)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                if client.get("/healthz").json()["products"] == 51:
                    break
                time.sleep(0.1)
            hits = client.post("/v1/search", json={"query": "gizmotron hover kettle"}).json()
            assert hits["hits"][0]["id"] == "HUP-1"
            query_ids.append(hits["query_id"])
            for i in range(30):
                body = {"query": f"water bottle {i}", "user_id": "term-user", "session_id": "t1"}
                query_ids.append(client.post("/v1/search", json=body).json()["query_id"])
        server.signal(signal.SIGTERM)  # the last queries are still queued, not yet written
        # uvicorn shuts down gracefully, then re-raises the signal to a no-op handler
        assert server.wait() == 0
    finally:
        server.stop()
    with EventStore.open(index, readonly=True) as store:
        missing = [q for q in query_ids if store.query(q) is None]
        assert not missing
        assert len(store.queries_of_client("term-user")) == 30
    lines = [json.loads(line) for line in server.log_path.read_text().splitlines() if line]
    requests = [line for line in lines if line.get("logger") == "shopsearch.serve.access"]
    search = next(line for line in requests if line["route"] == "/v1/search")
    assert search["status"] == 200 and search["key"] == "admin-key" and search["ms"] > 0
    assert search["method"] == "POST" and "query_id" in search
    log_text = server.log_path.read_text()
    assert all(key not in log_text for key in keys.values())  # names, never keys
    assert any(line.get("message") == "reloaded on SIGHUP" for line in lines)
    assert any(line.get("message") == "Application shutdown complete." for line in lines)


def test_keys_commands(index, capsys):
    assert main(["keys", "create", str(index), "--name", "web", "--scopes", "search,events"]) == 0
    key = capsys.readouterr().out.strip()
    assert key.startswith("ss_") and len(key) > 40
    args = ["keys", "create", str(index), "--name", "ops", "--scopes", "admin", "--rate", "5"]
    assert main(args) == 0
    ops_key = capsys.readouterr().out.strip()
    text = (index / KEYS_FILE).read_text()
    assert key not in text and ops_key not in text

    assert main(["keys", "list", str(index), "--json"]) == 0
    listed = {k["name"]: k for k in json.loads(capsys.readouterr().out)}
    assert listed["web"]["scopes"] == ["search", "events"] and listed["web"]["rate_limit"] is None
    assert listed["ops"]["scopes"] == ["admin"] and listed["ops"]["rate_limit"] == 5.0
    assert "sha256" not in listed["web"]

    assert main(["keys", "create", str(index), "--name", "web", "--scopes", "search"]) == 1
    assert "exists" in capsys.readouterr().err
    assert main(["keys", "create", str(index), "--name", "x", "--scopes", "root"]) == 1
    assert "unknown scope" in capsys.readouterr().err

    assert main(["keys", "revoke", str(index), "web"]) == 0
    assert main(["keys", "revoke", str(index), "web"]) == 1
    assert [k["name"] for k in json.loads((index / KEYS_FILE).read_text())["keys"]] == ["ops"]


def test_keys_revoked_or_created_while_serving_take_effect(index, encoder, capsys):
    keys = create_keys(index)
    app = create_app(index, ServeSettings(), encoder=encoder)
    app.state.keyring.recheck_s = 0.0  # re-check the key file on every lookup
    with TestClient(app) as client:
        assert main(["keys", "create", str(index), "--name", "late", "--scopes", "search"]) == 0
        late = capsys.readouterr().out.strip()
        body = {"query": "mug"}
        assert client.post("/v1/search", json=body, headers=auth(late)).status_code == 200
        assert main(["keys", "revoke", str(index), "late"]) == 0
        assert client.post("/v1/search", json=body, headers=auth(late)).status_code == 401
        assert client.post("/v1/search", json=body, headers=auth(keys["search"])).status_code == 200
