"""The event store's SQLite file: its schema, how it is opened, and its transactions.

:class:`~shopsearch.events.store.EventStore` is the interface; this module owns the file
format (tables, indexes, ``PRAGMA user_version``) and the connection settings.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from shopsearch.errors import IndexLockedError, IndexNotFoundError, ShopSearchError

__all__ = ["DB_NAME", "SCHEMA", "SCHEMA_VERSION", "Transactions", "open_database"]

DB_NAME = "events.sqlite"
"""The store's file name inside an index directory."""

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
QUERY_COLUMNS = "query_id, client_id, session_id, user_query, timestamp, filters, extra"
EVENT_COLUMNS = (
    "event_id, action_name, query_id, client_id, session_id, timestamp, object_id, position, extra"
)
EMPTY_JSON = "{}"
"""How an empty JSON object (``filters``, ``extra``) is stored."""

_CACHE_KIB = 256 * 1024  # page cache: keeps the event-id index in memory while ingesting
_BUSY_TIMEOUT_S = 30.0


def open_database(
    path: str | os.PathLike[str], *, readonly: bool = False
) -> tuple[sqlite3.Connection, Path]:
    """Connect to the store at ``path`` (an index directory or a ``.sqlite`` file); return the
    connection and the database file's path. See :meth:`EventStore.open
    <shopsearch.events.store.EventStore.open>`."""
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
    return db, db_path


class Transactions:
    """Explicit transactions of one connection (``BEGIN IMMEDIATE`` ... ``COMMIT``), counted.

    ``PRAGMA data_version`` only sees other connections' commits, so the store counts its
    own commits and rollbacks here for its change tracking (``EventStore.version`` and
    ``EventStore.position``).
    """

    def __init__(self, db: sqlite3.Connection, path: Path) -> None:
        self._db = db
        self._path = path
        self.commits = 0
        self.rollbacks = 0

    def begin(self) -> None:
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                raise IndexLockedError(
                    f"{self._path} is being written by another process (waited "
                    f"{_BUSY_TIMEOUT_S:.0f} s)"
                ) from exc
            raise

    def commit(self) -> None:
        self._db.execute("COMMIT")
        self.commits += 1

    def rollback(self) -> None:
        if self._db.in_transaction:
            # Rows this connection inserted (and may have read back) are gone: their rowids
            # will be reused, so readers of this connection must re-read (see position()).
            self.rollbacks += 1
            self._db.execute("ROLLBACK")


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
