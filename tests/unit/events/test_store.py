"""The event store (shopsearch.events.store): idempotent adds, ingestion, queries, retention."""

from __future__ import annotations

import gzip
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from shopsearch.errors import EventRecordError, IndexNotFoundError, InvalidQueryError
from shopsearch.events import (
    ACTIONS,
    DB_NAME,
    AddResult,
    EventRecord,
    EventStore,
    IngestReport,
    QueryRecord,
    RetentionPolicy,
    to_ubi,
)

DAY = 86_400.0
T0 = 1_795_860_000.0  # 2026-11-28T10:00:00Z


def _q(query_id: str, client: str = "u1", t: float = T0, session: str | None = "s1") -> QueryRecord:
    return QueryRecord(query_id, client, session, f"query {query_id}", t, {"brand": "Acme"})


def _e(
    event_id: str,
    action: str = "click",
    *,
    query_id: str = "q1",
    client: str = "u1",
    session: str | None = "s1",
    t: float = T0,
    product: str = "B01",
    position: int | None = 1,
) -> EventRecord:
    return EventRecord(
        event_id, action, query_id, client, session, t, product, position, {"app": "web"}
    )


def _rows(store: EventStore) -> tuple[list[Any], list[Any]]:
    db = sqlite3.connect(store.path)
    try:
        queries = db.execute("SELECT * FROM queries ORDER BY query_id").fetchall()
        events = db.execute("SELECT * FROM events ORDER BY event_id").fetchall()
    finally:
        db.close()
    return queries, events


@pytest.fixture
def store(tmp_path):
    with EventStore.open(tmp_path / "index") as opened:
        yield opened


# --------------------------------------------------------------------------- open


def test_open_accepts_an_index_dir_or_a_sqlite_path(tmp_path):
    index = tmp_path / "index"
    index.mkdir()
    (index / "catalog.sqlite").write_bytes(b"")  # the catalog's file is never touched
    with EventStore.open(index) as store:
        assert store.path == index / DB_NAME
        store.add([_q("q1")])
    with EventStore.open(index / DB_NAME) as store:
        assert store.counts()["queries"] == 1
    assert (index / "catalog.sqlite").read_bytes() == b""
    with EventStore.open(tmp_path / "other.sqlite") as store:
        assert store.path == tmp_path / "other.sqlite"


def test_the_store_is_wal_with_full_sync(store):
    assert store._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_readonly_open_needs_an_existing_store(tmp_path):
    with pytest.raises(IndexNotFoundError):
        EventStore.open(tmp_path, readonly=True)
    assert not (tmp_path / DB_NAME).exists()
    with EventStore.open(tmp_path) as store:
        store.add([_q("q1"), _e("e1")])
    with EventStore.open(tmp_path, readonly=True) as store:
        assert store.counts()["events"] == 1
        with pytest.raises(sqlite3.OperationalError):
            store.add([_e("e2")])


# --------------------------------------------------------------------------- add


def test_add_is_idempotent(store):
    records = [_q("q1"), _q("q2"), _e("e1"), _e("e2", "purchase"), _e("e3", "impression")]
    assert store.add(records) == AddResult(2, 0, 3, 0)
    before = _rows(store)
    again = store.add(records)
    assert again == AddResult(0, 2, 0, 3)
    assert again.duplicates == 5
    assert _rows(store) == before
    mixed = store.add([_e("e3"), _e("e4"), _q("q2"), _q("q3")])
    assert mixed == AddResult(1, 1, 1, 1)


def test_the_first_copy_of_an_id_wins(store):
    store.add([_e("e1", "click")])
    assert store.add([_e("e1", "purchase")]).events_duplicate == 1
    assert store.event("e1").action_name == "click"


def test_add_is_one_transaction(store):
    with pytest.raises(TypeError):
        store.add([_q("q1"), _e("e1"), "not a record"])  # type: ignore[list-item]
    assert store.counts()["events"] == 0
    bad = _e("e2")
    object.__setattr__(bad, "extra", {"x": object()})  # not JSON-serialisable
    with pytest.raises(TypeError):
        store.add([_e("e1"), bad])
    assert store.counts() == {"queries": 0, "events": 0, **dict.fromkeys(ACTIONS, 0)}


def test_records_read_back_equal(store):
    query, event = _q("q1"), _e("e1", position=None, session=None)
    store.add([query, event])
    assert store.query("q1") == query
    assert store.query("nope") is None
    assert store.event("e1") == event


# --------------------------------------------------------------------------- queries


@pytest.fixture
def filled(store):
    store.add(
        [
            _q("q1", "alice", T0, "s-a1"),
            _q("q2", "bob", T0 + 10, "s-b1"),
            _q("q3", "alice", T0 + 3 * DAY, "s-a2"),
            _e("e1", "impression", query_id="q1", client="alice", session="s-a1", t=T0 + 1),
            _e("e2", "click", query_id="q1", client="alice", session="s-a1", t=T0 + 2),
            _e("e3", "impression", query_id="q2", client="bob", session="s-b1", t=T0 + 11),
            _e("e4", "purchase", query_id="q1", client="alice", session="s-a1", t=T0 + 5),
            _e(
                "e5",
                "add_to_cart",
                query_id="q3",
                client="alice",
                session="s-a2",
                t=T0 + 3 * DAY + 1,
                product="B02",
            ),
            _e("e6", "click", query_id="q2", client="bob", session=None, t=T0 + 12, product="B02"),
        ]
    )
    return store


def test_events_of_a_client_in_time_order(filled):
    assert [e.event_id for e in filled.events_of_client("alice")] == ["e1", "e2", "e4", "e5"]
    assert [e.event_id for e in filled.events_of_client("alice", since=T0 + 2)] == [
        "e2",
        "e4",
        "e5",
    ]
    assert filled.events_of_client("carol") == []
    assert [q.query_id for q in filled.queries_of_client("alice")] == ["q1", "q3"]


def test_events_of_a_session_and_of_a_product(filled):
    assert [e.event_id for e in filled.events_of_session("s-a1")] == ["e1", "e2", "e4"]
    assert [e.event_id for e in filled.events_of_session("s-b1")] == ["e3"]
    assert [e.event_id for e in filled.events_of_object("B02")] == ["e6", "e5"]


def test_iter_events_in_time_order_with_filters(filled):
    assert [e.event_id for e in filled.iter_events()] == ["e1", "e2", "e4", "e3", "e6", "e5"]
    assert [e.event_id for e in filled.iter_events(actions=["click", "purchase"])] == [
        "e2",
        "e4",
        "e6",
    ]
    assert [e.event_id for e in filled.iter_events(since=T0 + 11, actions=("impression",))] == [
        "e3"
    ]
    with pytest.raises(InvalidQueryError, match="unknown action"):
        list(filled.iter_events(actions=["view"]))


def test_counts_clients_and_object_counts(filled):
    assert filled.counts() == {
        "queries": 3,
        "events": 6,
        "impression": 2,
        "click": 2,
        "add_to_cart": 1,
        "purchase": 1,
    }
    assert filled.clients() == ["alice", "bob"]
    assert filled.object_counts() == {
        "B01": {"impression": 2, "click": 1, "purchase": 1},
        "B02": {"click": 1, "add_to_cart": 1},
    }
    assert filled.object_counts(since=T0 + 12) == {"B02": {"click": 1, "add_to_cart": 1}}
    assert filled.time_range() == (T0 + 1, T0 + 3 * DAY + 1)


# --------------------------------------------------------------------------- retention


def _history(store: EventStore) -> None:
    """One query and one event per day, days 0..9 (event e<day> at T0 + day)."""
    records: list[QueryRecord | EventRecord] = []
    for day in range(10):
        records.append(_q(f"q{day}", t=T0 + day * DAY))
        records.append(_e(f"e{day}", query_id=f"q{day}", t=T0 + day * DAY + 60))
    store.add(records)


def _event_ids(store: EventStore) -> list[str]:
    return [e.event_id for e in store.iter_events()]


def _query_ids(store: EventStore) -> list[str]:
    return sorted(row[0] for row in _rows(store)[0])


def test_retention_by_age_is_relative_to_the_newest_event(store):
    _history(store)
    deleted = store.prune(RetentionPolicy(max_age_days=3))
    # newest event: day 9 + 60 s; cut-off day 6 + 60 s: e6 (day 6 + 60 s) is kept.
    assert deleted == 6
    assert _event_ids(store) == ["e6", "e7", "e8", "e9"]
    # queries older than the cut-off with no event left go; q6 (day 6, before the cut-off)
    # stays because e6 still refers to it.
    assert _query_ids(store) == ["q6", "q7", "q8", "q9"]
    assert store.prune(RetentionPolicy(max_age_days=3)) == 0  # stable when repeated


def test_retention_by_age_with_an_explicit_now(store):
    _history(store)
    assert store.prune(RetentionPolicy(max_age_days=1), now=T0 + 5 * DAY) == 4
    assert _event_ids(store) == ["e4", "e5", "e6", "e7", "e8", "e9"]


def test_queries_that_still_have_events_are_kept(store):
    _history(store)
    store.add([_e("late", query_id="q0", t=T0 + 9 * DAY + 120)])  # an old query, a new event
    store.prune(RetentionPolicy(max_age_days=2))
    assert "q0" in _query_ids(store)
    assert "q1" not in _query_ids(store)


def test_retention_by_count_keeps_the_newest(store):
    _history(store)
    assert store.prune(RetentionPolicy(max_events=3)) == 7
    assert _event_ids(store) == ["e7", "e8", "e9"]
    assert _query_ids(store) == ["q7", "q8", "q9"]
    assert store.prune(RetentionPolicy(max_events=3)) == 0
    assert store.prune(RetentionPolicy(max_events=0)) == 3
    assert store.counts()["events"] == 0 and store.counts()["queries"] == 0


def test_retention_by_count_breaks_ties_by_event_id(store):
    store.add([_e(f"e{i}", t=T0) for i in range(5)])
    store.prune(RetentionPolicy(max_events=2))
    assert _event_ids(store) == ["e3", "e4"]


def test_retention_by_age_and_count(store):
    _history(store)
    assert store.prune(RetentionPolicy(max_age_days=5, max_events=2)) == 8
    assert _event_ids(store) == ["e8", "e9"]


def test_retention_on_an_empty_store_and_bad_policies(store):
    assert store.prune(RetentionPolicy(max_age_days=1, max_events=1)) == 0
    for bad in ({"max_age_days": -1}, {"max_events": -1}, {"max_events": 1.5}):
        with pytest.raises(InvalidQueryError):
            RetentionPolicy(**bad)


# --------------------------------------------------------------------------- ingest_file


def _ubi_event(i: int, **fields: Any) -> dict[str, Any]:
    record = {
        "action_name": ACTIONS[i % 4],
        "query_id": f"q{i // 10}",
        "client_id": f"u{i % 7}",
        "session_id": f"s{i % 13}",
        "timestamp": T0 + i,
        "event_attributes": {
            "object": {"object_id": f"B{i % 50:03d}"},
            "position": {"ordinal": i % 10},
        },
    }
    record.update(fields)
    return record


def _ubi_query(n: int) -> dict[str, Any]:
    return {
        "query_id": f"q{n}",
        "client_id": f"u{n % 7}",
        "user_query": f"query {n}",
        "timestamp": T0 + n * 10,
    }


def _log(path: Path, lines: list[Any]) -> Path:
    text = "".join((json.dumps(x) if isinstance(x, dict) else x) + "\n" for x in lines)
    if path.name.endswith(".gz"):
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text, encoding="utf-8")
    return path


def test_ingest_reports_counts_and_problems(store, tmp_path):
    lines = [_ubi_query(0), _ubi_event(0), _ubi_event(1), "{oops", _ubi_event(1), "", _ubi_event(2)]
    log = _log(tmp_path / "log.jsonl", lines)
    report = store.ingest_file(log)
    assert (report.lines_read, report.queries_stored, report.events_stored) == (6, 1, 3)
    assert report.duplicates == 1  # line 5 repeats line 3
    assert [(p.line, p.location) for p in report.problems] == [(4, f"{log}:4")]
    assert report.rejected == 1 and report.records_read == 5
    assert store.counts()["events"] == 3


def test_ingest_twice_stores_nothing_new(store, tmp_path):
    lines = [_ubi_query(n) for n in range(5)] + [_ubi_event(i) for i in range(50)]
    log = _log(tmp_path / "log.jsonl.gz", lines)
    first = store.ingest_file(log, batch_size=7)
    assert (first.queries_stored, first.events_stored, first.duplicates) == (5, 50, 0)
    before = _rows(store)
    second = store.ingest_file(log, batch_size=7)
    assert (second.queries_stored, second.events_stored, second.duplicates) == (0, 0, 55)
    assert _rows(store) == before
    # The same records written back by to_ubi (explicit ids, ISO timestamps) are duplicates.
    written = [to_ubi(r) for r in [*store.iter_events()]]
    third = store.ingest_file(_log(tmp_path / "again.jsonl", written))
    assert (third.events_stored, third.duplicates) == (0, 50)


def test_on_commit_acknowledges_committed_records(tmp_path):
    lines = (
        [_ubi_event(i) for i in range(95)] + ["bad line"] + [_ubi_event(i) for i in range(95, 100)]
    )
    log = _log(tmp_path / "log.jsonl", lines)
    acks: list[IngestReport] = []
    path = tmp_path / "index"
    with EventStore.open(path) as store:

        def on_commit(report: IngestReport) -> None:
            # What is acknowledged is committed: another connection sees it.
            with EventStore.open(path, readonly=True) as other:
                assert other.counts()["events"] >= report.events_stored
            acks.append(report)

        final = store.ingest_file(log, batch_size=20, on_commit=on_commit)
    assert [a.events_stored for a in acks] == [20, 40, 60, 80, 100]
    assert [a.lines_read for a in acks] == [20, 40, 60, 80, 101]
    assert [len(a.problems) for a in acks] == [0, 0, 0, 0, 1]
    assert acks[-1].problems == final.problems
    assert acks[0] is not final and acks[0].problems is not final.problems


def test_strict_mode_stores_nothing_from_a_bad_file(store, tmp_path):
    store.add([_q("q-old")])
    lines = [_ubi_query(0)] + [_ubi_event(i) for i in range(30)] + [_ubi_event(30, timestamp="?")]
    log = _log(tmp_path / "bad.jsonl", lines)
    acks: list[IngestReport] = []
    with pytest.raises(EventRecordError) as info:
        store.ingest_file(log, strict=True, batch_size=5, on_commit=acks.append)
    assert info.value.location == f"{log}:32"
    assert "unparsable timestamp" in info.value.reason
    assert acks == []
    assert store.counts()["events"] == 0
    assert _query_ids(store) == ["q-old"]
    # A good file in strict mode: one commit, one acknowledgement.
    good = _log(tmp_path / "good.jsonl", lines[:-1])
    report = store.ingest_file(good, strict=True, batch_size=5, on_commit=acks.append)
    assert (report.queries_stored, report.events_stored) == (1, 30)
    assert len(acks) == 1 and acks[0].events_stored == 30


def test_ingest_applies_retention_after_the_last_commit(store, tmp_path):
    lines = [_ubi_event(i, timestamp=T0 + i * DAY) for i in range(10)]
    log = _log(tmp_path / "log.jsonl", lines)
    report = store.ingest_file(log, retention=RetentionPolicy(max_events=4), batch_size=3)
    assert report.events_stored == 10 and report.pruned == 6
    assert store.counts()["events"] == 4


def test_an_error_in_on_commit_keeps_what_was_committed(store, tmp_path):
    log = _log(tmp_path / "log.jsonl", [_ubi_event(i) for i in range(30)])

    def fail(report: IngestReport) -> None:
        raise RuntimeError("consumer down")

    with pytest.raises(RuntimeError):
        store.ingest_file(log, batch_size=10, on_commit=fail)
    assert store.counts()["events"] == 10
    assert store.ingest_file(log).events_stored == 20


def test_chunks_handed_to_the_writer_are_committed_at_the_end(store, tmp_path, monkeypatch):
    import shopsearch.events.ingest as ingest_module

    monkeypatch.setattr(ingest_module, "_CHUNK_SIZE", 4)
    log = _log(tmp_path / "log.jsonl", [_ubi_event(i) for i in range(8)])
    acks: list[IngestReport] = []
    # Two chunks of 4, neither reaching batch_size: the end of the file commits them.
    report = store.ingest_file(log, batch_size=10, on_commit=acks.append)
    assert report.events_stored == 8
    assert [a.events_stored for a in acks] == [8]
    store.close()
    with EventStore.open(store.path) as reopened:
        assert reopened.counts()["events"] == 8


def test_rows_are_inserted_in_several_statements(store, monkeypatch):
    import shopsearch.events.ingest as ingest_module

    monkeypatch.setattr(ingest_module, "_MAX_ROWS_PER_STATEMENT", 3)
    events = [_e(f"e{i}", t=T0 + i) for i in range(10)]
    assert store.add([*events, events[4], _q("q1")]) == AddResult(1, 0, 10, 1)
    assert [e.event_id for e in store.iter_events()] == [f"e{i}" for i in range(10)]


# --------------------------------------------------------------------------- change tracking


def test_version_changes_with_every_commit_of_any_connection(store, tmp_path):
    v0 = store.version()
    assert store.version() == v0  # nothing happened
    store.add([_q("q1")])  # this connection (not counted by PRAGMA data_version)
    v1 = store.version()
    assert v1 != v0
    with EventStore.open(store.path) as other:
        other.add([_e("e1")])
    v2 = store.version()
    assert v2 != v1 and store.version() == v2
    with EventStore.open(store.path, readonly=True) as reader:
        before = reader.version()
        store.add([_e("e2")])
        assert reader.version() != before
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(to_ubi(_e("e3"))) + "\n{\n")
    v3 = store.version()
    with pytest.raises(EventRecordError):
        store.ingest_file(bad, strict=True)  # rolled back
    assert store.version() != v3


def test_position_and_events_after(store):
    assert store.position() == ((0, 0), 0, 0)
    store.add([_e("e1", query_id="q1"), _q("q1"), _e("e2", "impression", query_id="q1")])
    store.add([_e("e3", "purchase", query_id="q9", client="u2", session=None, product="B02")])
    position = store.position()
    assert position.events == 3 and position.queries == 1 and position.epoch == (0, 0)
    rows = store.events_after(0)
    assert [r[1] for r in rows] == ["click", "impression", "purchase"]
    assert rows[0][1:] == ("click", "B01", "u1", "s1", "q1", "query q1")
    assert rows[2][1:] == ("purchase", "B02", "u2", None, "q9", None)  # no query record yet
    assert [r[0] for r in store.events_after(rows[0][0], ["click", "purchase"])] == [rows[2][0]]
    assert store.events_after(0, limit=1) == rows[:1]
    assert store.events_after(position.events) == []
    assert store.queries_after(0) == [(1, "q1", "query q1")]
    with pytest.raises(InvalidQueryError):
        store.events_after(0, ["wishlist"])


def test_a_prune_that_deletes_something_changes_the_epoch(store):
    store.add([_q("q1"), _e("e1", t=T0), _e("e2", t=T0 + 10 * DAY)])
    epoch = store.position().epoch
    store.prune(RetentionPolicy(max_age_days=30))  # deletes nothing
    assert store.position().epoch == epoch
    store.prune(RetentionPolicy(max_events=1))
    assert store.position().epoch != epoch
    with EventStore.open(store.path, readonly=True) as reader:
        assert reader.position().epoch == store.position().epoch


def test_position_of_a_read_only_store_without_the_counters_table(store):
    store.add([_q("q1"), _e("e1")])
    store.close()
    db = sqlite3.connect(store.path)
    db.execute("DROP TABLE counters")  # as written before the table existed
    db.commit()
    db.close()
    with EventStore.open(store.path, readonly=True) as reader:
        assert reader.position() == ((0, 0), 1, 1)
