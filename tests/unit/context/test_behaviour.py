"""Incremental per-query behaviour (QueryBehaviour.refresh) and the ranker's profile cache:
the same weights as a full rebuild, re-reads after pruning, per-shopper invalidation."""

from __future__ import annotations

import random
import subprocess
import sys
import textwrap
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shopsearch.catalog.schema import Product
from shopsearch.context import behaviour as behaviour_module
from shopsearch.context.behaviour import QueryBehaviour, normalise_query
from shopsearch.context.profiles import ACTION_WEIGHTS, ProfileConfig, SimpleEvent
from shopsearch.context.ranker import ContextRanker
from shopsearch.errors import EventRecordError
from shopsearch.events import EventRecord, EventStore, QueryRecord, RetentionPolicy
from shopsearch.suggest import Suggester, normalize
from shopsearch.text import key

T0 = 1_795_860_000.0
TEXTS = ["Red Shoes", "red  shoes", "blue mug", "Blue Mug ", "lamp", "desk lamp", "socks"]
PRODUCTS = [f"p{n}" for n in range(12)]
CLIENTS = [f"u{n}" for n in range(6)]
ACTIONS = ["impression", "impression", "click", "click", "add_to_cart", "purchase"]


class Log:
    """Random UBI records; some events arrive before their query record (or never get one)."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.n_queries = 0
        self.n_events = 0
        self.late: list[QueryRecord] = []  # query records sent after their events

    def batch(self, size: int) -> list[QueryRecord | EventRecord]:
        rng, out = self.rng, []
        for _ in range(size):
            self.n_queries += 1
            query_id, client = f"q{self.n_queries}", rng.choice(CLIENTS)
            t = T0 + self.n_queries * 60.0
            query = QueryRecord(query_id, client, f"s-{client}", rng.choice(TEXTS), t)
            r = rng.random()
            if 0.05 <= r < 0.2:
                self.late.append(query)  # stored in a later batch
            elif r >= 0.2:
                out.append(query)  # (r < 0.05: never stored)
            for _ in range(rng.randint(1, 5)):
                self.n_events += 1
                out.append(
                    EventRecord(
                        f"e{self.n_events}",
                        rng.choice(ACTIONS),
                        query_id,
                        client,
                        f"s-{client}",
                        t + self.n_events,
                        rng.choice(PRODUCTS),
                        1,
                    )
                )
        if self.late and rng.random() < 0.7:
            k = rng.randint(1, len(self.late))
            out += self.late[:k]
            del self.late[:k]
        rng.shuffle(out)
        return out


def table(b: QueryBehaviour) -> dict:
    """Every weight the behaviour can give, with and without each shopper's own actions."""
    out = {}
    for text in [*TEXTS, "unknown"]:
        out[text, "knows"] = b.knows(text)
        for exclude in [None, *CLIENTS]:
            out[text, exclude] = b.weights(text, PRODUCTS, exclude_client=exclude).tolist()
    return out


@pytest.fixture
def store(tmp_path):
    with EventStore.open(tmp_path / "index") as opened:
        yield opened


@pytest.mark.parametrize(
    "weights",
    [ACTION_WEIGHTS, {"impression": 0.25, "click": 0.1, "add_to_cart": 0.7, "purchase": 1.3}],
    ids=["default", "fractional"],
)
def test_incremental_refresh_equals_a_full_rebuild(store, monkeypatch, weights):
    monkeypatch.setattr(behaviour_module, "MIN_DELTA_ENTRIES", 20)  # merges happen too
    log = Log(seed=7)
    store.add(log.batch(20))
    b = QueryBehaviour.from_store(store, weights)
    merged = False
    for size in (1, 3, 10, 0, 25, 2, 40, 5):
        before = table(b)
        store.add(log.batch(size))
        update = b.refresh(store)
        assert not update.rebuilt
        assert table(b) == before  # the old object is left as it was
        merged |= update.behaviour._delta.own == {} and update.events > 0
        b = update.behaviour
        assert table(b) == table(QueryBehaviour.from_store(store, weights))
    assert merged
    # ... and, with whole-number weights, exactly what the event-by-event path gives
    if weights is ACTION_WEIGHTS:
        assert table(b) == table(QueryBehaviour._from_event_iter(store, weights))
    else:
        old = table(QueryBehaviour._from_event_iter(store, weights))
        for key, value in table(b).items():
            assert value == (pytest.approx(old[key]) if isinstance(value, list) else old[key])


def test_refresh_reports_the_shoppers_and_sessions_with_new_events(store):
    store.add([QueryRecord("q1", "u1", "s1", "mug", T0)])
    b = QueryBehaviour.from_store(store)
    assert b.refresh(store).behaviour is b  # nothing new
    store.add(
        [
            EventRecord("e1", "impression", "q1", "u2", "s2", T0, "p1", 1),
            EventRecord("e2", "click", "q1", "u3", "s3", T0, "p1", 1),
            EventRecord("e3", "purchase", "q-missing", "u4", None, T0, "p2", 1),
        ]
    )
    update = b.refresh(store)
    assert not update.rebuilt and update.events == 2  # impressions are not read
    assert update.clients == {"u3", "u4"} and update.sessions == {"s3"}
    assert update.behaviour.weights("mug", ["p1", "p2"]).tolist() == [1.0, 0.0]


def test_events_wait_for_their_query_record(store):
    store.add([EventRecord("e1", "purchase", "q1", "u1", None, T0, "p1", 1)])
    b = QueryBehaviour.from_store(store)
    assert not b.knows("mug")
    store.add([QueryRecord("q0", "u1", None, "other", T0)])
    b = b.refresh(store).behaviour
    assert not b.knows("mug")
    store.add([QueryRecord("q1", "u1", None, "Mug", T0)])
    update = b.refresh(store)
    assert not update.rebuilt and update.clients == frozenset()
    assert update.behaviour.weights("mug", ["p1"]).tolist() == [5.0]


@pytest.mark.parametrize(
    "policy", [RetentionPolicy(max_events=3), RetentionPolicy(max_events=0)], ids=str
)
def test_a_prune_makes_the_next_refresh_read_everything(store, policy):
    log = Log(seed=3)
    store.add(log.batch(10))
    b = QueryBehaviour.from_store(store)
    store.prune(policy)
    store.add(log.batch(3))  # with max_events=0: rowids of deleted events are reused
    update = b.refresh(store)
    assert update.rebuilt
    assert table(update.behaviour) == table(QueryBehaviour.from_store(store))


def test_a_prune_of_old_rows_only_is_seen(store):
    """The newest rowids survive: only the deletion counter tells the reader."""
    store.add([QueryRecord("q1", "u1", None, "mug", T0), click("e1", "u1", "p1")])
    later = T0 + 10 * 86_400.0
    store.add([QueryRecord("q2", "u1", None, "mug", later)])
    store.add([EventRecord("e2", "click", "q2", "u2", None, later, "p1", 1)])
    b = QueryBehaviour.from_store(store)
    assert b.weights("mug", ["p1"]).tolist() == [2.0]
    position = store.position()
    assert store.prune(RetentionPolicy(max_age_days=5)) == 1
    assert store.position()[1:] == position[1:] and store.position().epoch != position.epoch
    update = b.refresh(store)
    assert update.rebuilt and update.behaviour.weights("mug", ["p1"]).tolist() == [1.0]


def test_a_prune_by_another_connection_is_seen(store):
    log = Log(seed=4)
    store.add(log.batch(10))
    b = QueryBehaviour.from_store(store)
    with EventStore.open(store.path) as other:
        assert other.prune(RetentionPolicy(max_events=5)) > 0
    assert b.refresh(store).rebuilt


def test_a_rolled_back_transaction_makes_the_next_refresh_read_everything(store, tmp_path):
    store.add(Log(seed=5).batch(5))
    b = QueryBehaviour.from_store(store)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"user_query": "mug", "query_id": "x", "client_id": "u", "timestamp": 1}\n{')
    with pytest.raises(EventRecordError):
        store.ingest_file(bad, strict=True)
    assert b.refresh(store).rebuilt


# --------------------------------------------------------------------------- the ranker

CATALOG = {p: Product(id=p, title=p, brand=f"brand-{p}") for p in PRODUCTS}


class CountingStore:
    """An EventStore that counts the profile reads per shopper."""

    def __init__(self, store: EventStore) -> None:
        self.store = store
        self.reads: dict[str, int] = {}

    def __getattr__(self, name):
        return getattr(self.store, name)

    def interactions(self, *, client_id=None, session_id=None):
        if client_id is not None:
            self.reads[client_id] = self.reads.get(client_id, 0) + 1
        return self.store.interactions(client_id=client_id, session_id=session_id)


def click(event_id: str, client: str, product: str, t: float = T0) -> EventRecord:
    return EventRecord(event_id, "click", "q1", client, None, t, product, 1)


def ranker_on(store) -> ContextRanker:
    return ContextRanker(None, events=store, products=lambda ids: {i: CATALOG[i] for i in ids})


def test_profiles_are_invalidated_only_for_shoppers_with_new_events(store):
    store.add([QueryRecord("q1", "u1", None, "mug", T0), click("e1", "u1", "p1")])
    store.add([click("e2", "u2", "p2")])
    counting = CountingStore(store)
    ranker = ranker_on(counting)
    for user in ("u1", "u2", "u1", "u2"):
        ranker.user_profile(user)
    assert counting.reads == {"u1": 1, "u2": 1}
    store.add([click("e3", "u1", "p3", T0 + 1)])  # u1 only
    store.add([EventRecord("e4", "impression", "q1", "u2", None, T0, "p4", 1)])
    profile = ranker.user_profile("u1")
    assert profile.affinity("brand", "brand-p3") > 0
    ranker.user_profile("u2")
    assert counting.reads == {"u1": 2, "u2": 1}
    assert ranker.behaviour().weights("mug", ["p3"]).tolist() == [1.0]
    # a prune invalidates everybody
    store.prune(RetentionPolicy(max_events=2))
    ranker.user_profile("u1"), ranker.user_profile("u2")
    assert counting.reads == {"u1": 3, "u2": 2}


def test_a_profile_read_while_its_events_are_folded_in_is_not_kept(store, monkeypatch):
    """The race: a profile read from the store before new events of its shopper are
    committed, cached after the refresh that reads them has dropped the stale entry."""
    store.add([QueryRecord("q1", "u1", None, "mug", T0), click("e1", "u1", "p1")])
    ranker = ranker_on(store)
    ranker.behaviour()
    real = ranker._user_profile

    def slow(user, before):
        profile = real(user, before)  # what the store held before e2
        store.add([click("e2", "u1", "p2", T0 + 1)])
        ranker.behaviour()  # another search refreshes (and drops u1's cached profile)
        return profile

    monkeypatch.setattr(ranker, "_user_profile", slow)
    assert ranker.user_profile("u1").affinity("brand", "brand-p2") == 0
    monkeypatch.setattr(ranker, "_user_profile", real)
    assert ranker.user_profile("u1").affinity("brand", "brand-p2") > 0


def test_profiles_are_read_afresh_while_another_thread_refreshes(store):
    store.add([QueryRecord("q1", "u1", None, "mug", T0), click("e1", "u1", "p1")])
    ranker = ranker_on(store)
    assert ranker.user_profile("u1").affinity("brand", "brand-p2") == 0
    store.add([click("e2", "u1", "p2", T0 + 1)])
    with ranker._behaviour_lock:  # a refresh in progress on another thread
        result = []
        thread = threading.Thread(target=lambda: result.append(ranker.user_profile("u1")))
        thread.start()
        thread.join()
    assert result[0].affinity("brand", "brand-p2") > 0


def test_a_search_sees_what_another_connection_committed(store):
    store.add([QueryRecord("q1", "u1", None, "mug", T0)])
    ranker = ranker_on(store)
    assert not ranker.behaviour().knows("mug")
    with EventStore.open(store.path) as writer:
        writer.add([click("e1", "u2", "p1")])
    assert ranker.behaviour().weights("mug", ["p1"]).tolist() == [1.0]
    assert ranker.user_profile("u2") is not None


def test_a_search_sees_what_another_process_committed(store):
    store.add([QueryRecord("q1", "u1", None, "mug", T0)])
    ranker = ranker_on(store)
    assert ranker.user_profile("u9") is None and not ranker.behaviour().knows("mug")
    code = textwrap.dedent(
        f"""
        from shopsearch.events import EventRecord, EventStore
        with EventStore.open({str(store.path)!r}) as s:
            s.add([EventRecord("e1", "purchase", "q1", "u9", None, {T0}, "p1", 1)])
        """
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    assert ranker.behaviour().weights("mug", ["p1"]).tolist() == [5.0]
    assert ranker.user_profile("u9") is not None


def test_a_store_without_incremental_reads_is_rebuilt(store):
    """A store offering only iter_events / query / version: every change re-reads all."""
    store.add([QueryRecord("q1", "u1", None, "mug", T0), click("e1", "u1", "p1")])

    class Plain:
        def __init__(self, inner: EventStore) -> None:
            self.iter_events, self.query = inner.iter_events, inner.query
            self.interactions, self.version = inner.interactions, inner.version

    ranker = ContextRanker(
        None,
        events=Plain(store),
        products=lambda ids: {i: CATALOG[i] for i in ids},
        config=ProfileConfig(),
    )
    assert ranker.behaviour().weights("mug", ["p1"]).tolist() == [1.0]
    store.add([click("e2", "u2", "p1")])
    assert ranker.behaviour().weights("mug", ["p1"]).tolist() == [2.0]
    assert ranker.behaviour()._read is None


# -- behaviour keys are the package's matching key, as suggestion keys are ---------------


@pytest.mark.parametrize(
    "variants",
    [
        ["Ugg Slippers", "ugg  slippers", " UGG slippers\t", "ＵＧＧ ｓｌｉｐｐｅｒｓ"],
        ["crème brûlée torch", "Creme Brulee Torch"],
        ["Straße sign", "STRASSE SIGN"],
        ["保温杯 500ml", "保温杯　５００ＭＬ"],
    ],
)
def test_suggestion_and_behaviour_keys_agree(variants: list[str]) -> None:
    assert len({normalise_query(v) for v in variants}) == 1
    assert len({normalize(v) for v in variants}) == 1
    assert normalise_query(variants[0]) == normalize(variants[0]) == key(variants[0])

    # behaviour: every spelling is one query
    events = [(v, f"u{i}", SimpleEvent("click", "p1")) for i, v in enumerate(variants)]
    behaviour = QueryBehaviour.from_events(events)
    for v in variants:
        assert behaviour.knows(v)
        assert behaviour.weights(v, ["p1"]).tolist() == [float(len(variants))]

    # autocomplete: one suggestion, with every spelling's count
    suggester = Suggester.build([], [(v, 1) for v in variants])
    results = suggester.suggest(variants[1][:3])
    assert [s.source for s in results] == ["query"]
    assert results[0].score == pytest.approx(3 + len(variants) / (len(variants) + 1))


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_behaviour_key_is_the_suggestion_key(text: str) -> None:
    assert normalise_query(text) == normalize(text)


def test_stored_query_texts_are_keyed_when_read(store):
    """The event store keeps each query's text as logged; behaviour keys are computed when
    it is read, so texts logged before the key rule gained NFKC and accent folding group
    with their variants."""
    store.add(
        [
            QueryRecord("q1", "u1", None, "ＵＧＧ  Slippers", T0),
            EventRecord("e1", "click", "q1", "u1", None, T0, "p1", 1),
            QueryRecord("q2", "u2", None, "Crème brûlée torch", T0),
            EventRecord("e2", "purchase", "q2", "u2", None, T0, "p2", 1),
        ]
    )
    behaviour = QueryBehaviour.from_store(store)
    assert behaviour.weights("ugg slippers", ["p1"]).tolist() == [1.0]
    assert behaviour.weights("creme brulee TORCH", ["p2"]).tolist() == [5.0]
