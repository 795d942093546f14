"""The reads of the event store: records, counts, and change tracking for caches.

:class:`EventReads` is the read half of :class:`~shopsearch.events.store.EventStore` (its
base class): every method is one SQL statement (or one streamed cursor) on the store's
connection.
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

from shopsearch.errors import InvalidQueryError
from shopsearch.events.database import EMPTY_JSON, EVENT_COLUMNS, QUERY_COLUMNS, Transactions
from shopsearch.events.schema import ACTIONS, EventRecord, QueryRecord

__all__ = ["EventReads", "Interaction", "LogPosition"]

BehaviourRow = tuple[int, str, str, str, str | None, str, str | None]
"""An event as :meth:`EventReads.events_after` returns it."""


class Interaction(NamedTuple):
    """What a profile needs of an event."""

    action_name: str
    object_id: str
    timestamp: float


class LogPosition(NamedTuple):
    """How far the store's tables reach (see :meth:`EventStore.position`)."""

    epoch: tuple[int, int]
    """Changes whenever rows may have been removed: a retention prune (by any connection or
    process) or a rolled-back transaction of this connection. Rows are otherwise only ever
    added (``INSERT OR IGNORE``: a stored record never changes)."""
    events: int
    """The largest event rowid (0 without events)."""
    queries: int
    """The largest query rowid (0 without queries)."""


class EventReads:
    """Every read of an event store's tables, on one connection.

    ``transactions``: the connection's own commits and rollbacks, which
    ``PRAGMA data_version`` does not count (:meth:`version`, :meth:`position`).
    """

    def __init__(self, db: sqlite3.Connection, transactions: Transactions) -> None:
        self._db = db
        self._transactions = transactions

    def query(self, query_id: str) -> QueryRecord | None:
        """The query record with this id, or ``None``."""
        row = self._db.execute(
            f"SELECT {QUERY_COLUMNS} FROM queries WHERE query_id = ?", (query_id,)
        ).fetchone()
        return None if row is None else _query(row)

    def queries_of_client(self, client_id: str, since: float | None = None) -> list[QueryRecord]:
        """A user's searches, oldest first (``since``: epoch seconds, inclusive)."""
        rows = self._db.execute(
            f"SELECT {QUERY_COLUMNS} FROM queries WHERE client_id = ? AND timestamp >= ? "
            "ORDER BY timestamp, query_id",
            (client_id, _since(since)),
        )
        return [_query(row) for row in rows]

    def event(self, event_id: str) -> EventRecord | None:
        """The event record with this id, or ``None``."""
        row = self._db.execute(
            f"SELECT {EVENT_COLUMNS} FROM events WHERE event_id = ?", (event_id,)
        ).fetchone()
        return None if row is None else _event(row)

    def events_of_client(self, client_id: str, since: float | None = None) -> list[EventRecord]:
        """A user's events, oldest first (``since``: epoch seconds, inclusive)."""
        rows = self._db.execute(
            f"SELECT {EVENT_COLUMNS} FROM events WHERE client_id = ? AND timestamp >= ? "
            "ORDER BY timestamp, event_id",
            (client_id, _since(since)),
        )
        return [_event(row) for row in rows]

    def events_of_session(self, session_id: str) -> list[EventRecord]:
        """A session's events, oldest first."""
        rows = self._db.execute(
            f"SELECT {EVENT_COLUMNS} FROM events WHERE session_id = ? ORDER BY timestamp, event_id",
            (session_id,),
        )
        return [_event(row) for row in rows]

    def interactions(
        self, *, client_id: str | None = None, session_id: str | None = None
    ) -> list[Interaction]:
        """The non-impression events of a user or a session, oldest first, as light
        ``(action_name, object_id, timestamp)`` tuples (what profiles read; no JSON to
        decode, so a search can afford it)."""
        if (client_id is None) == (session_id is None):
            raise ValueError("give exactly one of client_id and session_id")
        column, value = (
            ("client_id", client_id)
            if client_id is not None
            else (
                "session_id",
                session_id,
            )
        )
        rows = self._db.execute(
            f"SELECT action_name, object_id, timestamp FROM events WHERE {column} = ? "
            "AND action_name != 'impression' ORDER BY timestamp, event_id",
            (value,),
        )
        return [Interaction(*row) for row in rows]

    def events_of_object(self, object_id: str) -> list[EventRecord]:
        """A product's events, oldest first."""
        rows = self._db.execute(
            f"SELECT {EVENT_COLUMNS} FROM events WHERE object_id = ? ORDER BY timestamp, event_id",
            (object_id,),
        )
        return [_event(row) for row in rows]

    def iter_events(
        self, since: float | None = None, actions: Sequence[str] | None = None
    ) -> Iterator[EventRecord]:
        """Every event (optionally from ``since`` on, of the given ``actions``), oldest first;
        streamed, so it suits the whole log."""
        sql = f"SELECT {EVENT_COLUMNS} FROM events WHERE timestamp >= ?"
        params: list[Any] = [_since(since)]
        if actions is not None:
            wanted = _check_actions(actions)
            sql += f" AND action_name IN ({', '.join('?' * len(wanted))})"
            params += wanted
        cursor = self._db.execute(sql + " ORDER BY timestamp, event_id", params)
        try:
            while rows := cursor.fetchmany(1_000):
                for row in rows:
                    yield _event(row)
        finally:
            cursor.close()

    def query_counts(self, limit: int | None = None) -> list[tuple[str, int]]:
        """``(user_query, times logged)`` of every distinct query text, most frequent first
        (ties by text); ``limit`` keeps the top ones (e.g. to seed autocomplete)."""
        sql = (
            "SELECT user_query, COUNT(*) AS n FROM queries GROUP BY user_query "
            "ORDER BY n DESC, user_query"
        )
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [(text, int(n)) for text, n in self._db.execute(sql)]

    def session_queries(self) -> Iterator[tuple[str, float, str, bool]]:
        """``(session_id, timestamp, user_query, engaged)`` of every query logged in a
        session, by session then time; ``engaged``: a click, add-to-cart or purchase
        followed it."""
        cursor = self._db.execute(
            "SELECT q.session_id, q.timestamp, q.user_query, EXISTS(SELECT 1 FROM events e "
            "WHERE e.query_id = q.query_id AND e.action_name IN "
            "('click', 'add_to_cart', 'purchase')) FROM queries q "
            "WHERE q.session_id IS NOT NULL ORDER BY q.session_id, q.timestamp, q.query_id"
        )
        try:
            while rows := cursor.fetchmany(1_000):
                for session, timestamp, text, engaged in rows:
                    yield session, float(timestamp), text, bool(engaged)
        finally:
            cursor.close()

    def counts(self) -> dict[str, int]:
        """``{"queries": n, "events": n, "impression": n, "click": n, ...}`` (every action
        in :data:`~shopsearch.events.schema.ACTIONS`, zero when absent)."""
        db = self._db
        result = {
            "queries": db.execute("SELECT COUNT(*) FROM queries").fetchone()[0],
            "events": db.execute("SELECT COUNT(*) FROM events").fetchone()[0],
        }
        result.update(dict.fromkeys(ACTIONS, 0))
        for action, n in db.execute("SELECT action_name, COUNT(*) FROM events GROUP BY 1"):
            result[action] = n
        return result

    def version(self) -> int:
        """Changes whenever a transaction that may have changed the store ends: committed by
        this connection, by another one or by another process (``PRAGMA data_version``), or
        rolled back on this connection. Caches of derived data (profiles, per-query behaviour)
        compare it to know when to look again (:meth:`position`, :meth:`events_after`).

        Cheap enough to call on every search (no table is read): see
        ``benchmarks/bench_behaviour.py``.
        """
        data_version = self._db.execute("PRAGMA data_version").fetchone()[0]
        own = self._transactions.commits + self._transactions.rollbacks
        return (int(data_version) << 32) | (own & 0xFFFFFFFF)

    def position(self) -> LogPosition:
        """The largest event and query rowids and the deletion epoch, read in one statement.

        Rowids only grow while nothing is deleted (one writer at a time, rows never updated),
        so a reader that has seen everything up to a position can read just what lies beyond
        it (:meth:`events_after`, :meth:`queries_after`) as long as ``epoch`` is unchanged.
        """
        db = self._db
        try:
            events, queries, deletions = db.execute(
                "SELECT (SELECT MAX(rowid) FROM events), (SELECT MAX(rowid) FROM queries), "
                "(SELECT value FROM counters WHERE name = 'deletions')"
            ).fetchone()
        except sqlite3.OperationalError:  # a read-only store from before the counters table
            events, queries = db.execute(
                "SELECT (SELECT MAX(rowid) FROM events), (SELECT MAX(rowid) FROM queries)"
            ).fetchone()
            deletions = 0
        epoch = (int(deletions or 0), self._transactions.rollbacks)
        return LogPosition(epoch, events or 0, queries or 0)

    def events_after(
        self, rowid: int, actions: Sequence[str] | None = None, *, limit: int | None = None
    ) -> list[BehaviourRow]:
        """The events with a rowid above ``rowid`` (optionally only the given ``actions``; at
        most ``limit`` of them), in rowid (insertion) order, as ``(rowid, action_name,
        object_id, client_id, session_id, query_id, user_query)`` tuples, ``user_query`` being
        the text of the event's query (``None`` while its query record is not stored): one
        statement, joining the queries table by its primary key. ``events_after(0)`` reads
        the whole log (page through a large one with ``limit``)."""
        sql = (
            "SELECT e.rowid, e.action_name, e.object_id, e.client_id, e.session_id, "
            "e.query_id, q.user_query FROM events AS e "
            "LEFT JOIN queries AS q ON q.query_id = e.query_id WHERE e.rowid > ?"
        )
        params: list[Any] = [int(rowid)]
        if actions is not None:
            wanted = _check_actions(actions)
            if not wanted:
                return []
            sql += f" AND e.action_name IN ({', '.join('?' * len(wanted))})"
            params += wanted
        sql += " ORDER BY e.rowid"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return self._db.execute(sql, params).fetchall()

    def queries_after(self, rowid: int) -> list[tuple[int, str, str]]:
        """``(rowid, query_id, user_query)`` of the queries with a rowid above ``rowid``, in
        rowid (insertion) order."""
        return self._db.execute(
            "SELECT rowid, query_id, user_query FROM queries WHERE rowid > ? ORDER BY rowid",
            (int(rowid),),
        ).fetchall()

    def clients(self) -> list[str]:
        """Every user (``client_id``) with a stored query or event, sorted."""
        rows = self._db.execute(
            "SELECT client_id FROM queries UNION SELECT client_id FROM events ORDER BY 1"
        )
        return [row[0] for row in rows]

    def time_range(self) -> tuple[float, float] | None:
        """``(oldest, newest)`` event timestamp, or ``None`` without events."""
        oldest, newest = self._db.execute(
            "SELECT MIN(timestamp), MAX(timestamp) FROM events"
        ).fetchone()
        return None if oldest is None else (float(oldest), float(newest))

    def object_counts(self, since: float | None = None) -> dict[str, dict[str, int]]:
        """Product id -> action -> number of events (only actions that occurred), e.g. for
        popularity; ``since``: epoch seconds, inclusive."""
        result: dict[str, dict[str, int]] = {}
        rows = self._db.execute(
            "SELECT object_id, action_name, COUNT(*) FROM events WHERE timestamp >= ? "
            "GROUP BY object_id, action_name",
            (_since(since),),
        )
        for object_id, action, n in rows:
            result.setdefault(object_id, {})[action] = n
        return result


def _loads(text: str) -> dict[str, Any]:
    return {} if text == EMPTY_JSON else json.loads(text)


def _query(row: Sequence[Any]) -> QueryRecord:
    return QueryRecord(row[0], row[1], row[2], row[3], row[4], _loads(row[5]), _loads(row[6]))


def _event(row: Sequence[Any]) -> EventRecord:
    return EventRecord(
        row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7], _loads(row[8])
    )


def _since(since: float | None) -> float:
    return -math.inf if since is None else float(since)


def _check_actions(actions: Sequence[str]) -> list[str]:
    if isinstance(actions, str):
        actions = [actions]
    unknown = [a for a in actions if a not in ACTIONS]
    if unknown:
        raise InvalidQueryError(
            f"unknown action(s) {', '.join(map(repr, unknown))} (expected {', '.join(ACTIONS)})"
        )
    return list(dict.fromkeys(actions))
