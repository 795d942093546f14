"""The SIMULATED-user session simulator, its output files and the ``simulate`` command."""

from __future__ import annotations

import argparse
import json
from collections import Counter, defaultdict
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from tests_support import TINY_CATALOG, TINY_JUDGMENTS

from shopsearch.catalog.loaders import load_catalog
from shopsearch.catalog.schema import Product
from shopsearch.datasets import esci_us_judgments, esci_us_products
from shopsearch.errors import InvalidQueryError
from shopsearch.evaluation.judgments import ESCI_GAINS, Judgment, group_by_query, load_judgments
from shopsearch.simulation.simulator import (
    OUTPUT_FILES,
    SimulationConfig,
    SimulationResult,
    click_through_by_rank,
    pipeline_ranker,
    simulate,
    summarize,
    write_outputs,
)
from shopsearch.simulation.users import preference_match, query_categories, sample_users


def fixed_ranker(judgments: list[Judgment]):
    """A fake ``rank``: the query's judged products, best gain first, then by id."""
    qrels = group_by_query(judgments)
    order = {q: sorted(g, key=lambda p: (-g[p], p)) for q, g in qrels.items()}
    calls: list[tuple[str, str, str, int]] = []

    def rank(query: str, user_id: str, session_id: str, k: int) -> list[str]:
        calls.append((query, user_id, session_id, k))
        return order[query][:k]

    rank.calls = calls  # type: ignore[attr-defined]
    return rank


@pytest.fixture(scope="module")
def tiny() -> tuple[list[Product], list[Judgment]]:
    return load_catalog(TINY_CATALOG).products, load_judgments(TINY_JUDGMENTS)


@pytest.fixture(scope="module")
def esci() -> tuple[list[Product], list[Judgment]]:
    return load_catalog(esci_us_products()).products, load_judgments(esci_us_judgments())


@pytest.fixture(scope="module")
def tiny_config() -> SimulationConfig:
    return SimulationConfig(users=30, cold_start_users=5, seed=3)


@pytest.fixture(scope="module")
def tiny_run(tiny, tiny_config, tmp_path_factory) -> tuple[SimulationResult, dict[str, Path]]:
    products, judgments = tiny
    result = simulate(tiny_config, products, judgments, fixed_ranker(judgments))
    paths = write_outputs(result, tmp_path_factory.mktemp("sim") / "out")
    return result, paths


@pytest.fixture(scope="module")
def esci_run(esci) -> SimulationResult:
    products, judgments = esci
    config = SimulationConfig(users=200, cold_start_users=0, seed=21)
    return simulate(config, products, judgments, fixed_ranker(judgments))


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def is_simulated(record: dict[str, Any]) -> bool:
    attributes = record.get("query_attributes") or record.get("event_attributes") or {}
    return record.get("simulated") is True or attributes.get("simulated") is True


# users


def test_sampled_users_come_from_the_judged_products(esci):
    products, judgments = esci
    users = sample_users(100, products, judgments, seed=1)
    assert users == sample_users(100, products, judgments, seed=1)
    assert users != sample_users(100, products, judgments, seed=2)
    by_id = {p.id: p for p in products}
    judged = [by_id[pid] for pid in {j.product_id for j in judgments}]
    topics = set(query_categories(judgments, by_id).values())
    for user in users:
        assert 1 <= len(user.categories) <= 2 and set(user.categories) <= topics
        assert all(key.count(" > ") == 1 for key in user.categories)
        home = [p for p in judged if " > ".join(p.category[:2]) in user.categories]
        assert 1 <= len(user.brands) <= 3
        assert set(user.brands) <= {p.brand for p in home}
        assert 1 <= len(user.colors) <= 2
        assert set(user.colors) <= {p.color.strip().casefold() for p in home}
        prices = [p.price for p in home if p.price]
        if user.price_band is None:
            assert not prices
        else:
            low, high = user.price_band
            assert prices and low < sorted(prices)[len(prices) // 2] < high
    # most ESCI prices are null, but some home categories have prices
    assert any(u.price_band is None for u in users) or any(u.price_band for u in users)


# determinism


def test_same_seed_gives_byte_identical_files_and_another_seed_differs(tiny, tmp_path):
    products, judgments = tiny
    config = SimulationConfig(users=12, cold_start_users=3, seed=5)

    def files(config: SimulationConfig, out: Path) -> dict[str, bytes]:
        result = simulate(config, products, judgments, fixed_ranker(judgments))
        return {name: path.read_bytes() for name, path in write_outputs(result, out).items()}

    first = files(config, tmp_path / "a")
    assert set(first) == set(OUTPUT_FILES)
    assert files(config, tmp_path / "b") == first
    other = files(SimulationConfig(users=12, cold_start_users=3, seed=6), tmp_path / "c")
    assert other["events.jsonl"] != first["events.jsonl"]
    assert other["users.json"] != first["users.json"]


# behaviour


def test_click_through_rate_falls_with_rank(esci_run):
    ctr = click_through_by_rank(esci_run.train_events + esci_run.test_user_events)
    assert len(ctr) == 10
    assert ctr[0] > ctr[1] > ctr[2] > ctr[4] > ctr[9] > 0
    for higher, lower in zip(ctr, ctr[1:], strict=False):
        assert lower <= higher + 0.02, ctr
    assert ctr[0] > 3 * ctr[9]


def test_click_through_by_rank_counts_clicks_over_impressions():
    def event(action: str, ordinal: int) -> dict[str, Any]:
        return {"action_name": action, "event_attributes": {"position": {"ordinal": ordinal}}}

    events = [event("impression", 1), event("impression", 1), event("click", 1)]
    events += [event("impression", 2), event("add_to_cart", 2), {"query_id": "q"}]
    assert click_through_by_rank(events, k=3) == [0.5, 0.0, 0.0]


def test_unrelated_queries_are_at_least_the_configured_share(esci_run, esci):
    products, judgments = esci
    topics = query_categories(judgments, {p.id: p for p in products})
    categories = {u.user_id: set(u.preferences.categories) for u in esci_run.users}
    per_user: dict[str, Counter[bool]] = defaultdict(Counter)
    for q in esci_run.queries:
        per_user[q.user_id][q.related] += 1
        assert q.related == (topics.get(q.query) in categories[q.user_id])
    total = sum(sum(c.values()) for c in per_user.values())
    unrelated = sum(c[False] for c in per_user.values())
    assert 0.3 <= unrelated / total <= 0.45
    for user_id, counts in per_user.items():
        n = sum(counts.values())
        assert counts[False] >= 0.3 * n, user_id
        assert counts[False] >= 1, user_id
        assert counts[True] >= 1 or n == counts[False], user_id
    assert summarize(esci_run)["queries"]["unrelated_share"] >= 0.3


def test_session_queries_and_timestamps(esci_run):
    config = esci_run.config
    sessions: dict[str, list] = defaultdict(list)
    for q in esci_run.queries:
        sessions[q.session_id].append(q)
    assert len(sessions) == config.users * config.sessions_per_user
    for queries in sessions.values():
        assert 1 <= len(queries) <= 3
        times = [q.timestamp for q in queries]
        assert times == sorted(times)
        assert config.start_epoch - 30 * 86_400 <= times[0] < config.start_epoch
    query_times = {}
    for record in esci_run.train_events:
        if "user_query" in record:
            query_times[record["query_id"]] = record["timestamp"]
            assert record["application"] == "shopsearch-simulator"
            assert record["timestamp"].endswith("Z")
        else:
            assert record["timestamp"] > query_times[record["query_id"]]


def test_the_ranker_sees_user_session_and_k(tiny):
    products, judgments = tiny
    rank = fixed_ranker(judgments)
    simulate(SimulationConfig(users=3, cold_start_users=0, k_shown=4), products, judgments, rank)
    assert rank.calls and all(k == 4 for *_, k in rank.calls)
    assert {user for _, user, _, _ in rank.calls} == {"sim-u-0001", "sim-u-0002", "sim-u-0003"}
    assert all(session.startswith(user + "-s") for _, user, session, _ in rank.calls)


# files and splits


def test_holdout_judgments_load_with_users_and_sessions(tiny_run, tiny):
    result, paths = tiny_run
    products, judgments = tiny
    loaded = load_judgments(paths["holdout_judgments.jsonl"])
    assert len(loaded) == len(result.holdout_judgments) > 0
    assert all(j.user_id and j.session_id and j.label is None for j in loaded)
    users = {u.user_id: u.preferences for u in result.users}
    by_id = {p.id: p for p in products}
    esci = {(j.query, j.product_id): j.label for j in judgments}
    for j in loaded:
        label = esci[(j.query, j.product_id)]
        match = preference_match(users[j.user_id], by_id[j.product_id])
        expected = ESCI_GAINS[label] * (1 + match if label in "ESC" else 1)
        assert j.gain == pytest.approx(expected, abs=1e-6)
    assert any(j.gain > 1.0 for j in loaded)  # taste changes the order of relevant products


def test_held_out_test_and_cold_users_stay_out_of_training_events(tiny_run, tiny_config):
    result, paths = tiny_run
    train_events = read_jsonl(paths["events.jsonl"])
    test_events = read_jsonl(paths["events_test_users.jsonl"])
    context = read_jsonl(paths["holdout_context.jsonl"])
    holdout = load_judgments(paths["holdout_judgments.jsonl"])
    groups = {u.user_id: u.group for u in result.users}
    assert Counter(groups.values()) == {"train": 21, "test": 9, "cold_start": 5}

    held_out = {j.session_id for j in holdout}
    first_holdout = tiny_config.sessions_per_user - tiny_config.holdout_sessions + 1
    for j in holdout:  # the last sessions are held out; cold-start users have only those
        number = int(j.session_id.rsplit("-s", 1)[1])
        if groups[j.user_id] == "cold_start":
            assert number <= tiny_config.holdout_sessions
        else:
            assert number >= first_holdout
    assert {groups[j.user_id] for j in holdout} == {"train", "test", "cold_start"}
    assert {r["session_id"] for r in train_events + test_events}.isdisjoint(held_out)
    assert {groups[r["client_id"]] for r in train_events} == {"train"}
    assert {groups[r["client_id"]] for r in test_events} == {"test"}

    cold = {u for u, g in groups.items() if g == "cold_start"}
    assert all(u.startswith("sim-cold-") for u in cold)
    assert cold <= {j.user_id for j in holdout}
    logged = train_events + test_events + [r for line in context for r in line["context"]]
    assert not cold & {r["client_id"] for r in logged}
    assert all(not line["context"] for line in context if line["user_id"] in cold)


def test_holdout_context_replays_the_earlier_queries_of_the_session(tiny_run):
    result, paths = tiny_run
    context = read_jsonl(paths["holdout_context.jsonl"])
    judged = {(j["user_id"], j["session_id"], j["query"]) for j in result.holdout_judgments}
    assert {(c["user_id"], c["session_id"], c["query"]) for c in context} == judged
    issued = {q.query_id: q for q in result.queries}
    with_context = 0
    for line in context:
        query = issued[line["query_id"]]
        assert query.holdout and query.session_id == line["session_id"]
        for record in line["context"]:
            assert record["session_id"] == line["session_id"]
            assert record["timestamp"] <= line["timestamp"]
            assert issued[record["query_id"]].timestamp < query.timestamp
        with_context += bool(line["context"])
    assert with_context > 0


def test_every_written_file_says_simulated(tiny_run):
    _, paths = tiny_run
    assert "SIMULATED" in paths["README.txt"].read_text(encoding="utf-8")
    users = json.loads(paths["users.json"].read_text(encoding="utf-8"))
    assert users["simulated"] is True and users["summary"]["simulated"] is True
    assert users["click_model"]["eta"] == 1.0 and users["config"]["seed"] == 3
    for name in OUTPUT_FILES:
        if not name.endswith(".jsonl"):
            continue
        records = read_jsonl(paths[name])
        assert records, name
        for record in records:
            assert is_simulated(record), (name, record)
            assert all(is_simulated(inner) for inner in record.get("context", []))


def test_ubi_record_shapes(tiny_run):
    _, paths = tiny_run
    records = read_jsonl(paths["events.jsonl"])
    queries = [r for r in records if "user_query" in r]
    events = [r for r in records if "event_id" in r]
    assert len(queries) + len(events) == len(records)
    assert set(queries[0]) == {
        "query_id",
        "client_id",
        "session_id",
        "user_query",
        "timestamp",
        "query_attributes",
        "application",
    }
    assert {e["action_name"] for e in events} <= {"impression", "click", "add_to_cart", "purchase"}
    event = events[0]
    assert event["event_id"].startswith("sim-e-") and event["query_id"].startswith("sim-q-")
    assert event["event_attributes"]["object"]["object_id_field"] == "product_id"
    assert 1 <= event["event_attributes"]["position"]["ordinal"] <= 10
    assert len({e["event_id"] for e in events}) == len(events)


def test_config_is_validated():
    with pytest.raises(ValueError, match="holdout_sessions"):
        SimulationConfig(sessions_per_user=2, holdout_sessions=3)
    with pytest.raises(ValueError, match="queries_per_session"):
        SimulationConfig(queries_per_session=(2, 1))
    with pytest.raises(ValueError, match="cold-start"):
        SimulationConfig(holdout_sessions=0, cold_start_users=1)
    with pytest.raises(ValueError, match="eta"):
        SimulationConfig(eta=-0.5)


# ranker and command


def test_pipeline_ranker_uses_the_hybrid_pipeline_once_per_query():
    calls = []

    class FakePipeline:
        def search(self, query: str, k: int, **options: Any) -> SimpleNamespace:
            calls.append((query, k, options))
            return SimpleNamespace(
                hits=[SimpleNamespace(product_id=f"{query}-{i}") for i in range(k)]
            )

    rank = pipeline_ranker(FakePipeline())  # type: ignore[arg-type]
    assert rank("mug", "u1", "s1", 3) == ["mug-0", "mug-1", "mug-2"]
    assert rank("mug", "u2", "s9", 3) == ["mug-0", "mug-1", "mug-2"]
    assert calls == [("mug", 3, {"pipeline": "hybrid", "facets": False, "products": False})]


def test_simulate_command(tiny, tmp_path, monkeypatch, capsys):
    import shopsearch.pipeline
    from shopsearch.cli import simulate_cmd

    products, judgments = tiny
    order = fixed_ranker(judgments)

    class FakePipeline:
        def __init__(self) -> None:
            self.store = SimpleNamespace(iter_products=lambda: iter(products))

        @classmethod
        def open(cls, path: Path) -> FakePipeline:
            assert path == tmp_path / "index"
            return cls()

        def __enter__(self) -> FakePipeline:
            return self

        def __exit__(self, *exc: object) -> None:
            pass

        def search(self, query: str, k: int, **options: Any) -> SimpleNamespace:
            ids = order(query, "", "", k)
            return SimpleNamespace(hits=[SimpleNamespace(product_id=p) for p in ids])

    monkeypatch.setattr(shopsearch.pipeline, "SearchPipeline", FakePipeline)
    parser = argparse.ArgumentParser()
    subparsers = parser.add_subparsers()
    simulate_cmd.add_parsers(subparsers)
    help_text = subparsers.choices["simulate"].format_help()
    assert "SIMULATED" in help_text
    out = tmp_path / "out"
    args = parser.parse_args(
        [
            "simulate",
            str(tmp_path / "index"),
            "--out",
            str(out),
            "--judgments",
            str(TINY_JUDGMENTS),
            "--users",
            "10",
            "--sessions",
            "4",
            "--seed",
            "2",
            "--cold-start",
            "2",
            "--test-share",
            "0.5",
        ]
    )
    assert args.run(args) == 0
    printed = capsys.readouterr().out
    assert "SIMULATED" in printed and "10 users (5 train, 5 test) + 2 cold-start" in printed
    assert "CTR by rank 1-10" in printed
    users = json.loads((out / "users.json").read_text(encoding="utf-8"))
    assert users["config"]["sessions_per_user"] == 4 and users["config"]["test_user_share"] == 0.5

    bad = parser.parse_args(["simulate", "x", "--out", str(out), "--test-share", "1.5"])
    with pytest.raises(InvalidQueryError, match="test_user_share"):
        bad.run(bad)
