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

The store is split by job: :mod:`~shopsearch.events.database` (the file: schema, opening,
transactions), :mod:`~shopsearch.events.ingest` (writes), :mod:`~shopsearch.events.reads`
(reads, the base class of :class:`EventStore`) and :mod:`~shopsearch.events.retention`.

>>> with EventStore.open("indexes/esci-us") as store:          # doctest: +SKIP
...     report = store.ingest_file("ubi_events.jsonl.gz")
...     store.events_of_client("u42")
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Iterable
from pathlib import Path

from shopsearch.events.database import DB_NAME, Transactions, open_database
from shopsearch.events.database import SCHEMA as SCHEMA  # re-exported names
from shopsearch.events.database import SCHEMA_VERSION as SCHEMA_VERSION
from shopsearch.events.ingest import DEFAULT_BATCH_SIZE, AddResult, EventWriter, IngestReport
from shopsearch.events.reader import DEFAULT_MAX_LINE_BYTES
from shopsearch.events.reads import EventReads, LogPosition
from shopsearch.events.reads import Interaction as Interaction
from shopsearch.events.retention import RetentionPolicy, delete_expired
from shopsearch.events.schema import EventRecord, QueryRecord

__all__ = [
    "DB_NAME",
    "AddResult",
    "EventStore",
    "IngestReport",
    "LogPosition",
    "RetentionPolicy",
]


class EventStore(EventReads):
    """Query and event records in one SQLite file; see the module docstring.

    Open it with :meth:`open`; close it with :meth:`close` or a ``with`` block. The reads
    (records, counts, change tracking) are :class:`~shopsearch.events.reads.EventReads`'.
    """

    def __init__(self, db: sqlite3.Connection, path: Path) -> None:
        transactions = Transactions(db, path)
        super().__init__(db, transactions)
        self.path = path
        self._writer = EventWriter(db, transactions)

    # ------------------------------------------------------------------ lifecycle

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, readonly: bool = False) -> EventStore:
        """Open the store at ``path``: an index directory (its ``events.sqlite``) or a
        ``.sqlite`` file. Creates the database (and directory) if missing, unless
        ``readonly``, which raises :class:`~shopsearch.errors.IndexNotFoundError` instead."""
        db, db_path = open_database(path, readonly=readonly)
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
        return self._writer.add(records)

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
        report = self._writer.ingest_file(
            path,
            batch_size=batch_size,
            on_commit=on_commit,
            strict=strict,
            max_line_bytes=max_line_bytes,
        )
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
        transactions = self._transactions
        transactions.begin()
        try:
            deleted = delete_expired(self._db, policy, now)
            transactions.commit()
        except BaseException:
            transactions.rollback()
            raise
        return deleted
