"""The HTTP API with the personalized pipeline (SIMULATED shoppers): a running server picks up
`context train` on reload, personalizes by user / session / inline events, explains scores
by feature group, and keeps answering while events stream in."""

from __future__ import annotations

import threading

import pytest
from fastapi.testclient import TestClient
from serve_support import auth, copy_index, create_keys, event_record
from tests_support import add_simulated_personalization

from shopsearch.context.features import FEATURE_GROUPS
from shopsearch.serve import ServeSettings, create_app

QUERY = "ugg slippers women"


@pytest.fixture(scope="module")
def served(tmp_path_factory, tiny_index_dir, encoder):
    root = tmp_path_factory.mktemp("serve-personal")
    index = copy_index(tiny_index_dir, root / "index")
    keys = create_keys(index)
    app = create_app(index, ServeSettings(rate_limit=10_000.0, rate_burst=10_000), encoder=encoder)
    with TestClient(app) as client:
        before = client.post("/v1/search", json={"query": QUERY}, headers=auth(keys["search"]))
        assert before.json()["pipeline"] == "hybrid"
        # meanwhile, offline: simulate shoppers, ingest their events, train the LTR stage
        users = add_simulated_personalization(index, root)
        reloaded = client.post("/v1/admin/reload", headers=auth(keys["admin"])).json()
        assert reloaded["default_pipeline"] == "personal" and "personal" in reloaded["pipelines"]
        yield client, keys, [u["user_id"] for u in users if u["group"] == "test"]


def search(client, keys, **body):
    response = client.post(
        "/v1/search", json={"query": QUERY, **body}, headers=auth(keys["search"])
    )
    assert response.status_code == 200, response.text
    return response.json()


def test_explanations_are_feature_groups_that_sum_to_the_score(served):
    client, keys, users = served
    result = search(client, keys, k=8, user_id=users[0], explain=True)
    assert result["pipeline"] == "personal" and len(result["hits"]) == 8
    for hit in result["hits"]:
        explanation = hit["explanation"]
        assert set(explanation) <= {*FEATURE_GROUPS, "base", "retrieval"}
        assert sum(explanation.values()) == pytest.approx(hit["score"], rel=1e-6, abs=1e-9)
        assert hit["scores"]["ltr"] == hit["score"] and "fused" in hit["scores"]
        assert not any("." in name for name in hit["scores"])


def test_users_and_inline_session_events_personalize(served):
    client, keys, users = served
    anonymous = [h["id"] for h in search(client, keys, k=10)["hits"]]
    assert [h["id"] for h in search(client, keys, k=10, user_id="never-seen")["hits"]] == anonymous

    # a known shopper's profile reaches the model: the user group's contributions change
    def user_part(user_id):
        hits = search(client, keys, k=10, user_id=user_id, explain=True)["hits"]
        return {h["id"]: h["explanation"]["user"] for h in hits}

    unknown = user_part("never-seen")
    assert any(user_part(user) != unknown for user in users)
    target = anonymous[-1]
    events = [{"action_name": "add_to_cart", "object_id": target, "timestamp": t} for t in (1, 2)]
    hits = search(client, keys, k=10, session_id="live-1", events=events, explain=True)["hits"]
    assert any(h["explanation"].get("session", 0) != 0 for h in hits)


def test_searches_continue_while_events_stream_in(served):
    """Posting events changes the behaviour table the personal stage reads: searches in other
    threads keep succeeding while it is rebuilt."""
    client, keys, users = served
    statuses: list[int] = []
    stop = threading.Event()

    def hammer(n: int) -> None:
        i = n
        while not stop.is_set():
            body = {"query": QUERY, "k": 10, "user_id": users[i % len(users)], "explain": True}
            response = client.post("/v1/search", json=body, headers=auth(keys["search"]))
            statuses.append(response.status_code)
            i += 1

    threads = [threading.Thread(target=hammer, args=(n,)) for n in range(3)]
    for t in threads:
        t.start()
    try:
        anonymous = search(client, keys, k=10)
        for batch in range(5):
            records = [
                event_record(anonymous["query_id"], hit["id"], "purchase", client=f"buyer-{batch}")
                for hit in anonymous["hits"][:3]
            ]
            response = client.post(
                "/v1/events", json={"records": records}, headers=auth(keys["events"])
            )
            assert response.json()["stored"] == 3
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert len(statuses) > 5 and set(statuses) == {200}
