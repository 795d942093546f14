"""Durable, idempotent storage of user-behaviour records: SQLite in WAL mode.

The store lives next to the catalog in an index directory, in its own file
(``DIR/events.sqlite``), so ingesting events never contends with the catalog writer.

* **Idempotent.** Queries are keyed by ``query_id`` and events by ``event_id`` (derived from
  the record when the log has none), and rows are inserted with ``INSERT OR IGNORE``:
  ingesting a file twice, or resuming after a crash, stores every record once. The first
  copy of an id wins.
* **Durable.** ``synchronous=FULL``: when :meth:`EventStore.ingest_file` calls its
  ``on_commit`` callback, the records it reports are on disk and survive a crash or a
  ``SIGKILL``.
* **Fast.** :meth:`EventStore.ingest_file` parses on the calling thread and inserts on a
  helper thread (SQLite works without the GIL), many rows per statement, committing every
  :data:`DEFAULT_BATCH_SIZE` records: 1,000,000 records in under a minute on two cores
  (``benchmarks/bench_events.py``).

>>> with EventStore.open("indexes/esci-us") as store:          # doctest: +SKIP
...     report = store.ingest_file("ubi_events.jsonl.gz")
...     store.events_of_client("u42")
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from functools import lru_cache
from itertools import chain
from pathlib import Path
from typing import Any, NamedTuple

from shopsearch.errors import (
    EventRecordError,
    IndexLockedError,
    IndexNotFoundError,
    InvalidQueryError,
    ShopSearchError,
)
from shopsearch.events.reader import DEFAULT_MAX_LINE_BYTES, EventProblem, iter_parsed
from shopsearch.events.schema import ACTIONS, EventRecord, QueryRecord, compact_json, parse_values

__all__ = [
    "DB_NAME",
    "AddResult",
    "EventStore",
    "IngestReport",
    "LogPosition",
    "RetentionPolicy",
]

DB_NAME = "events.sqlite"
"""The store's file name inside an index directory."""

DEFAULT_BATCH_SIZE = 100_000
"""Records per commit in :meth:`EventStore.ingest_file`. Each commit rewrites every index
page its records touched; with random ids that is most of the indexes, so fewer, larger
commits are much faster (1M events: about 47 s of SQLite work with 20,000, 28 s with
100,000)."""

SCHEMA_VERSION = 1
SCHEMA = """
CREATE TABLE IF NOT EXISTS queries (
    query_id   TEXT PRIMARY KEY,
    client_id  TEXT NOT NULL,
    session_id TEXT,
    user_query TEXT NOT NULL,
    timestamp  REAL NOT NULL,
    filters    TEXT NOT NULL,  -- JSON object
    extra      TEXT NOT NULL   -- JSON object
);
CREATE TABLE IF NOT EXISTS events (
    event_id    TEXT PRIMARY KEY,
    action_name TEXT NOT NULL,
    query_id    TEXT NOT NULL,
    client_id   TEXT NOT NULL,
    session_id  TEXT,
    timestamp   REAL NOT NULL,
    object_id   TEXT NOT NULL,
    position    INTEGER,
    extra       TEXT NOT NULL  -- JSON object
);
CREATE INDEX IF NOT EXISTS events_client_time ON events (client_id, timestamp);
CREATE INDEX IF NOT EXISTS events_session ON events (session_id);
CREATE INDEX IF NOT EXISTS events_object ON events (object_id);
CREATE INDEX IF NOT EXISTS events_time ON events (timestamp);
CREATE INDEX IF NOT EXISTS queries_client_time ON queries (client_id, timestamp);
CREATE TABLE IF NOT EXISTS counters (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
"""
# ``counters``: 'deletions' counts the commits that deleted rows (retention pruning), so that
# readers folding in only the rows added since they last looked (by rowid) know when to
# re-read everything. A table added after schema version 1 shipped: older stores get it when
# opened for writing; a read-only store without it counts no deletions.
_QUERY_COLUMNS = "query_id, client_id, session_id, user_query, timestamp, filters, extra"
_EVENT_COLUMNS = (
    "event_id, action_name, query_id, client_id, session_id, timestamp, object_id, position, extra"
)
_MAX_ROWS_PER_STATEMENT = 10_000
_CHUNK_SIZE = 10_000  # records per hand-off to the ingest writer thread
_EMPTY = "{}"
_CACHE_KIB = 256 * 1024  # page cache: keeps the event-id index in memory while ingesting
_BUSY_TIMEOUT_S = 30.0
_SECONDS_PER_DAY = 86_400.0

_QueryRow = tuple[str, str, str | None, str, float, str, str]
_EventRow = tuple[str, str, str, str, str | None, float, str, int | None, str]
_BehaviourRow = tuple[int, str, str, str, str | None, str, str | None]


@dataclass(frozen=True)
class AddResult:
    """What one :meth:`EventStore.add` stored (new) and skipped (already stored)."""

    queries_new: int = 0
    queries_duplicate: int = 0
    events_new: int = 0
    events_duplicate: int = 0

    @property
    def duplicates(self) -> int:
        """Records skipped because their id was already stored."""
        return self.queries_duplicate + self.events_duplicate


@dataclass
class IngestReport:
    """What :meth:`EventStore.ingest_file` read, stored, skipped and rejected.

    ``lines_read`` counts non-blank lines (records and problems); ``duplicates`` counts
    records whose id was already stored (from an earlier ingest or earlier in the file);
    ``pruned`` counts the events removed by the retention policy afterwards.
    """

    lines_read: int = 0
    queries_stored: int = 0
    events_stored: int = 0
    duplicates: int = 0
    problems: list[EventProblem] = field(default_factory=list)
    pruned: int = 0

    @property
    def rejected(self) -> int:
        """Number of lines that were not records (see :attr:`problems`)."""
        return len(self.problems)

    @property
    def records_read(self) -> int:
        """Number of valid records read (stored or duplicate)."""
        return self.queries_stored + self.events_stored + self.duplicates


@dataclass(frozen=True)
class RetentionPolicy:
    """How much history :meth:`EventStore.prune` keeps.

    ``max_age_days``: drop events older than this, relative to the ``now`` given to
    :meth:`~EventStore.prune` (by default the newest stored event, so replaying an old log
    gives the same result whenever it runs). ``max_events``: then keep only the newest this
    many events. ``None`` disables a limit.

    >>> RetentionPolicy(max_age_days=90).max_events is None
    True
    """

    max_age_days: float | None = None
    max_events: int | None = None

    def __post_init__(self) -> None:
        if self.max_age_days is not None and not (
            isinstance(self.max_age_days, int | float)
            and math.isfinite(self.max_age_days)
            and self.max_age_days >= 0
        ):
            raise InvalidQueryError(
                f"max_age_days must be a number >= 0, not {self.max_age_days!r}"
            )
        if self.max_events is not None and not (
            isinstance(self.max_events, int)
            and not isinstance(self.max_events, bool)
            and self.max_events >= 0
        ):
            raise InvalidQueryError(f"max_events must be an integer >= 0, not {self.max_events!r}")


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


class EventStore:
    """Query and event records in one SQLite file; see the module docstring.

    Open it with :meth:`open`; close it with :meth:`close` or a ``with`` block.
    """

    def __init__(self, db: sqlite3.Connection, path: Path) -> None:
        self._db = db
        self.path = path
        self._max_variables = db.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
        # Transactions of this connection: PRAGMA data_version only counts other connections'.
        self._commits = 0
        self._rollbacks = 0

    # ------------------------------------------------------------------ lifecycle

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, readonly: bool = False) -> EventStore:
        """Open the store at ``path``: an index directory (its ``events.sqlite``) or a
        ``.sqlite`` file. Creates the database (and directory) if missing, unless
        ``readonly``, which raises :class:`~shopsearch.errors.IndexNotFoundError` instead."""
        p = Path(path)
        db_path = p if p.suffix == ".sqlite" or p.is_file() else p / DB_NAME
        if readonly:
            if not db_path.is_file():
                raise IndexNotFoundError(f"no events database at {db_path}")
            uri = db_path.resolve().as_uri() + "?mode=ro"
            db = _connect(uri, uri=True)
        else:
            db_path.parent.mkdir(parents=True, exist_ok=True)
            db = _connect(str(db_path))
        try:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise ShopSearchError(
                    f"{db_path} was written by a newer shopsearch (events schema {version})"
                )
            if not readonly:
                db.execute("PRAGMA journal_mode=WAL")
                db.executescript(SCHEMA)
                if version < SCHEMA_VERSION:
                    db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            # FULL: a commit is on disk (not only in the OS cache) before it returns.
            db.execute("PRAGMA synchronous=FULL")
            db.execute(f"PRAGMA cache_size=-{_CACHE_KIB}")
            db.execute("PRAGMA temp_store=MEMORY")
        except sqlite3.DatabaseError as exc:
            db.close()
            raise ShopSearchError(f"cannot open events database {db_path}: {exc}") from exc
        except BaseException:
            db.close()
            raise
        return cls(db, db_path)

    def close(self) -> None:
        """Close the database connection."""
        self._db.close()

    def __enter__(self) -> EventStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ writes

    def add(self, records: Iterable[QueryRecord | EventRecord]) -> AddResult:
        """Store records in one transaction; ids already stored are skipped and counted.

        >>> store.add([query, click]).events_new                  # doctest: +SKIP
        1
        """
        queries: list[_QueryRow] = []
        events: list[_EventRow] = []
        for record in records:
            if type(record) is EventRecord:
                events.append(_event_row(record))
            elif type(record) is QueryRecord:
                queries.append(_query_row(record))
            else:
                raise TypeError(f"not a QueryRecord or EventRecord: {type(record).__name__}")
        self._begin()
        try:
            queries_new, events_new = self._insert(queries, events)
            self._commit()
        except BaseException:
            self._rollback()
            raise
        return AddResult(
            queries_new, len(queries) - queries_new, events_new, len(events) - events_new
        )

    def ingest_file(
        self,
        path: str | os.PathLike[str],
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        on_commit: Callable[[IngestReport], None] | None = None,
        strict: bool = False,
        retention: RetentionPolicy | None = None,
        max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    ) -> IngestReport:
        """Read a UBI JSONL file (``.gz`` too) and store its records.

        Records are committed every ``batch_size`` records (and at the end); right after
        each commit, ``on_commit`` gets a copy of the report so far, on the calling thread:
        what it counts as stored is durable (an acknowledgement). Bad lines (see
        :func:`~shopsearch.events.reader.iter_records`; lines over ``max_line_bytes`` too)
        are collected in ``report.problems`` and never stop the ingestion. After a crash,
        ingesting the same file again resumes it: what was stored is counted as duplicates.

        With ``strict=True`` the whole file is one transaction: the first bad line raises
        :class:`~shopsearch.errors.EventRecordError`, the transaction is rolled back and
        nothing from the file is stored (``on_commit`` is called once, after the single
        commit, when the file is good).

        ``retention``, if given, is applied with :meth:`prune` after the last commit.
        """
        if batch_size < 1:
            raise InvalidQueryError(f"batch_size must be >= 1, not {batch_size}")
        report = IngestReport()
        items = iter_parsed(path, _parse_row, max_line_bytes=max_line_bytes)
        writer = _BatchWriter(self, report, on_commit)
        # Records go to the writer thread in chunks, so that it works while the file is
        # parsed; a transaction spans chunks until batch_size records are in it.
        chunk_size = min(batch_size, _CHUNK_SIZE)
        uncommitted = 0
        queries: list[_QueryRow] = []
        events: list[_EventRow] = []
        add_query, add_event = queries.append, events.append
        problems = report.problems
        lines = 0
        try:
            if strict:
                self._begin()  # one transaction for the whole file
            for _line, item in items:
                lines += 1
                if type(item) is tuple:
                    is_event, row = item
                    if is_event:
                        add_event(row)  # type: ignore[arg-type]
                    else:
                        add_query(row)  # type: ignore[arg-type]
                    if len(events) + len(queries) >= chunk_size:
                        uncommitted += len(events) + len(queries)
                        commit = not strict and uncommitted >= batch_size
                        writer.submit(queries, events, lines, commit=commit)
                        if commit:
                            uncommitted = 0
                        queries, events = [], []
                        add_query, add_event = queries.append, events.append
                    elif not lines & 1023:
                        writer.poll()  # acknowledge a finished commit promptly
                else:
                    assert isinstance(item, EventProblem)
                    if strict:
                        raise EventRecordError(item.location, item.reason)
                    problems.append(item)
            if queries or events or uncommitted or strict:
                writer.submit(queries, events, lines, commit=True)
            writer.finish()
            report.lines_read = lines
        except BaseException:
            writer.abort()
            self._rollback()
            raise
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()
        if retention is not None:
            report.pruned = self.prune(retention)
        return report

    def prune(self, policy: RetentionPolicy, now: float | None = None) -> int:
        """Apply a retention policy; return the number of events deleted.

        ``now`` (epoch seconds) defaults to the newest stored event's timestamp, not the wall
        clock. Events older than ``now - max_age_days`` go first, then all but the newest
        ``max_events`` (ties broken by event id). Queries with no remaining event that are
        older than the age limit (or than the oldest event kept by ``max_events``) go too.
        """
        self._begin()
        try:
            deleted = self._prune(policy, now)
            self._commit()
        except BaseException:
            self._rollback()
            raise
        return deleted

    def _prune(self, policy: RetentionPolicy, now: float | None) -> int:
        db = self._db
        if now is None:
            newest = db.execute("SELECT MAX(timestamp) FROM events").fetchone()[0]
            if newest is None:
                newest = db.execute("SELECT MAX(timestamp) FROM queries").fetchone()[0]
            if newest is None:
                return 0
            now = float(newest)
        deleted = 0
        query_cutoff: float | None = None
        if policy.max_age_days is not None:
            query_cutoff = now - policy.max_age_days * _SECONDS_PER_DAY
            deleted += db.execute(
                "DELETE FROM events WHERE timestamp < ?", (query_cutoff,)
            ).rowcount
        if policy.max_events is not None:
            if policy.max_events == 0:
                oldest_kept = None
                trimmed = db.execute("DELETE FROM events").rowcount
                if trimmed:
                    query_cutoff = math.inf
            else:
                oldest_kept = db.execute(
                    "SELECT timestamp, event_id FROM events "
                    "ORDER BY timestamp DESC, event_id DESC LIMIT 1 OFFSET ?",
                    (policy.max_events - 1,),
                ).fetchone()
                trimmed = 0
                if oldest_kept is not None:
                    trimmed = db.execute(
                        "DELETE FROM events WHERE timestamp < ? "
                        "OR (timestamp = ? AND event_id < ?)",
                        (oldest_kept[0], oldest_kept[0], oldest_kept[1]),
                    ).rowcount
                if trimmed:
                    query_cutoff = max(query_cutoff or -math.inf, oldest_kept[0])
            deleted += trimmed
        queries_deleted = 0
        if query_cutoff is not None:
            cutoff = query_cutoff if math.isfinite(query_cutoff) else 1e300
            queries_deleted = db.execute(
                "DELETE FROM queries WHERE timestamp < ? "
                "AND query_id NOT IN (SELECT query_id FROM events)",
                (cutoff,),
            ).rowcount
        if deleted or queries_deleted:
            db.execute(
                "INSERT INTO counters (name, value) VALUES ('deletions', 1) "
                "ON CONFLICT (name) DO UPDATE SET value = value + 1"
            )
        return deleted

    # ------------------------------------------------------------------ reads

    def query(self, query_id: str) -> QueryRecord | None:
        """The query record with this id, or ``None``."""
        row = self._db.execute(
            f"SELECT {_QUERY_COLUMNS} FROM queries WHERE query_id = ?", (query_id,)
        ).fetchone()
        return None if row is None else _query(row)

    def queries_of_client(self, client_id: str, since: float | None = None) -> list[QueryRecord]:
        """A user's searches, oldest first (``since``: epoch seconds, inclusive)."""
        rows = self._db.execute(
            f"SELECT {_QUERY_COLUMNS} FROM queries WHERE client_id = ? AND timestamp >= ? "
            "ORDER BY timestamp, query_id",
            (client_id, _since(since)),
        )
        return [_query(row) for row in rows]

    def event(self, event_id: str) -> EventRecord | None:
        """The event record with this id, or ``None``."""
        row = self._db.execute(
            f"SELECT {_EVENT_COLUMNS} FROM events WHERE event_id = ?", (event_id,)
        ).fetchone()
        return None if row is None else _event(row)

    def events_of_client(self, client_id: str, since: float | None = None) -> list[EventRecord]:
        """A user's events, oldest first (``since``: epoch seconds, inclusive)."""
        rows = self._db.execute(
            f"SELECT {_EVENT_COLUMNS} FROM events WHERE client_id = ? AND timestamp >= ? "
            "ORDER BY timestamp, event_id",
            (client_id, _since(since)),
        )
        return [_event(row) for row in rows]

    def events_of_session(self, session_id: str) -> list[EventRecord]:
        """A session's events, oldest first."""
        rows = self._db.execute(
            f"SELECT {_EVENT_COLUMNS} FROM events WHERE session_id = ? "
            "ORDER BY timestamp, event_id",
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
            f"SELECT {_EVENT_COLUMNS} FROM events WHERE object_id = ? ORDER BY timestamp, event_id",
            (object_id,),
        )
        return [_event(row) for row in rows]

    def iter_events(
        self, since: float | None = None, actions: Sequence[str] | None = None
    ) -> Iterator[EventRecord]:
        """Every event (optionally from ``since`` on, of the given ``actions``), oldest first;
        streamed, so it suits the whole log."""
        sql = f"SELECT {_EVENT_COLUMNS} FROM events WHERE timestamp >= ?"
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
        return (int(data_version) << 32) | ((self._commits + self._rollbacks) & 0xFFFFFFFF)

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
        return LogPosition((int(deletions or 0), self._rollbacks), events or 0, queries or 0)

    def events_after(
        self, rowid: int, actions: Sequence[str] | None = None, *, limit: int | None = None
    ) -> list[_BehaviourRow]:
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

    # ------------------------------------------------------------------ internals

    def _begin(self) -> None:
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                raise IndexLockedError(
                    f"{self.path} is being written by another process (waited "
                    f"{_BUSY_TIMEOUT_S:.0f} s)"
                ) from exc
            raise

    def _commit(self) -> None:
        self._db.execute("COMMIT")
        self._commits += 1

    def _rollback(self) -> None:
        if self._db.in_transaction:
            # Rows this connection inserted (and may have read back) are gone: their rowids
            # will be reused, so readers of this connection must re-read (see position()).
            self._rollbacks += 1
            self._db.execute("ROLLBACK")

    def _insert(self, queries: list[_QueryRow], events: list[_EventRow]) -> tuple[int, int]:
        """Insert rows inside the current transaction; return (queries new, events new)."""
        db = self._db
        before = db.total_changes
        self._insert_rows("queries", _QUERY_COLUMNS, queries)
        middle = db.total_changes
        self._insert_rows("events", _EVENT_COLUMNS, events)
        return middle - before, db.total_changes - middle

    def _insert_rows(self, table: str, columns: str, rows: Sequence[tuple[Any, ...]]) -> None:
        """``INSERT OR IGNORE`` with many rows per statement: one ``sqlite3_step`` (run without
        the GIL) does the B-tree work of hundreds of rows."""
        if not rows:
            return
        width = len(rows[0])
        per_statement = max(1, min(_MAX_ROWS_PER_STATEMENT, self._max_variables // width))
        sql = _insert_sql(table, columns, width, per_statement)
        for start in range(0, len(rows), per_statement):
            chunk = rows[start : start + per_statement]
            if len(chunk) < per_statement:
                sql = _insert_sql(table, columns, width, len(chunk))
            self._db.execute(sql, list(chain.from_iterable(chunk)))

    def _write_batch(
        self, queries: list[_QueryRow], events: list[_EventRow], *, commit: bool
    ) -> tuple[int, int]:
        """Insert rows, in the open transaction or a new one; commit if ``commit``. On an
        error the whole open transaction is rolled back."""
        if not self._db.in_transaction:
            self._begin()
        try:
            result = self._insert(queries, events)
            if commit:
                self._commit()
        except BaseException:
            self._rollback()
            raise
        return result


class _BatchWriter:
    """Writes :meth:`EventStore.ingest_file`'s records on one background thread.

    SQLite runs its B-tree work without holding the GIL (one statement inserts a whole chunk
    of up to 10,000 rows), so inserting chunk *k* overlaps with parsing chunk *k+1* on the
    caller's thread.
    At most one chunk is in flight. Acknowledgements (``on_commit``) run on the caller's
    thread, as soon as it sees a finished commit, and never while a chunk is being written.
    """

    def __init__(
        self,
        store: EventStore,
        report: IngestReport,
        on_commit: Callable[[IngestReport], None] | None,
    ) -> None:
        self._store = store
        self._report = report
        self._on_commit = on_commit
        self._pool: ThreadPoolExecutor | None = None
        self._pending: Future[tuple[int, int]] | None = None
        self._batch = (0, 0, 0, 0, False)  # lines, problems, queries, events, commit

    def submit(
        self, queries: list[_QueryRow], events: list[_EventRow], lines: int, *, commit: bool
    ) -> None:
        """Wait for (and acknowledge) the batch in flight, then start writing this one."""
        self.wait()
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="shopsearch-events")
        self._batch = (lines, len(self._report.problems), len(queries), len(events), commit)
        self._pending = self._pool.submit(self._store._write_batch, queries, events, commit=commit)

    def poll(self) -> None:
        """Acknowledge the batch in flight if it is done."""
        if self._pending is not None and self._pending.done():
            self.wait()

    def wait(self) -> None:
        """Wait for the batch in flight; count it; acknowledge it if it was committed."""
        pending, self._pending = self._pending, None
        if pending is None:
            return
        queries_new, events_new = pending.result()
        lines, problems, queries, events, committed = self._batch
        report = self._report
        report.queries_stored += queries_new
        report.events_stored += events_new
        report.duplicates += queries + events - queries_new - events_new
        if committed:
            report.lines_read = lines
            if self._on_commit is not None:
                self._on_commit(replace(report, problems=report.problems[:problems]))

    def finish(self) -> None:
        """Wait for the last batch and stop the thread."""
        try:
            self.wait()
        finally:
            self._shutdown()

    def abort(self) -> None:
        """Let the batch in flight end (its error, if any, is dropped) and stop the thread."""
        pending, self._pending = self._pending, None
        if pending is not None:
            wait([pending])
        self._shutdown()

    def _shutdown(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None


@lru_cache(maxsize=64)
def _insert_sql(table: str, columns: str, width: int, rows: int) -> str:
    values = ",".join(["(" + ",".join("?" * width) + ")"] * rows)
    return f"INSERT OR IGNORE INTO {table} ({columns}) VALUES {values}"


def _connect(database: str, *, uri: bool = False) -> sqlite3.Connection:
    # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE ... COMMIT).
    # check_same_thread=False: ingest_file writes on a helper thread, never concurrently.
    return sqlite3.connect(
        database,
        uri=uri,
        isolation_level=None,
        timeout=_BUSY_TIMEOUT_S,
        check_same_thread=False,
    )


def _dumps(value: dict[str, Any]) -> str:
    # ASCII escapes: lone surrogates from JSON escapes stay storable.
    return compact_json(value) if value else _EMPTY


def _loads(text: str) -> dict[str, Any]:
    return {} if text == _EMPTY else json.loads(text)


def _parse_row(obj: dict[str, Any], location: str) -> tuple[bool, _QueryRow | _EventRow]:
    """``(is_event, row to insert)`` for one decoded line (the ingestion hot path)."""
    is_event, v = parse_values(obj, location)
    extra = v[-1]
    if is_event:
        return True, (v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], _dumps(extra))
    return False, (v[0], v[1], v[2], v[3], v[4], _dumps(v[5]), _dumps(extra))


def _query_row(r: QueryRecord) -> _QueryRow:
    return (
        r.query_id,
        r.client_id,
        r.session_id,
        r.user_query,
        r.timestamp,
        _dumps(r.filters),
        _dumps(r.extra),
    )


def _event_row(r: EventRecord) -> _EventRow:
    return (
        r.event_id,
        r.action_name,
        r.query_id,
        r.client_id,
        r.session_id,
        r.timestamp,
        r.object_id,
        r.position,
        _dumps(r.extra),
    )


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
