"""Writing records into the event store: :meth:`EventStore.add
<shopsearch.events.store.EventStore.add>` and :meth:`EventStore.ingest_file
<shopsearch.events.store.EventStore.ingest_file>`.

Rows go in with ``INSERT OR IGNORE``, many per statement (the first copy of an id wins); a
file is parsed on the calling thread and inserted on a helper thread, committing every
``batch_size`` records.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from functools import lru_cache
from itertools import chain
from typing import Any

from shopsearch.errors import EventRecordError, InvalidQueryError
from shopsearch.events.database import EMPTY_JSON, EVENT_COLUMNS, QUERY_COLUMNS, Transactions
from shopsearch.events.reader import EventProblem, iter_parsed
from shopsearch.events.schema import EventRecord, QueryRecord, compact_json, parse_values

__all__ = ["DEFAULT_BATCH_SIZE", "AddResult", "EventWriter", "IngestReport"]

DEFAULT_BATCH_SIZE = 100_000
"""Records per commit in :meth:`EventStore.ingest_file`. Each commit rewrites every index
page its records touched; with random ids that is most of the indexes, so fewer, larger
commits are much faster (1M events: about 47 s of SQLite work with 20,000, 28 s with
100,000)."""

_MAX_ROWS_PER_STATEMENT = 10_000
_CHUNK_SIZE = 10_000  # records per hand-off to the ingest writer thread

_QueryRow = tuple[str, str, str | None, str, float, str, str]
_EventRow = tuple[str, str, str, str, str | None, float, str, int | None, str]


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


class EventWriter:
    """Inserts query and event rows on one connection, in its :class:`Transactions`."""

    def __init__(self, db: sqlite3.Connection, transactions: Transactions) -> None:
        self._db = db
        self._transactions = transactions
        self._max_variables = db.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)

    def add(self, records: Iterable[QueryRecord | EventRecord]) -> AddResult:
        """:meth:`EventStore.add <shopsearch.events.store.EventStore.add>`."""
        queries: list[_QueryRow] = []
        events: list[_EventRow] = []
        for record in records:
            if type(record) is EventRecord:
                events.append(_event_row(record))
            elif type(record) is QueryRecord:
                queries.append(_query_row(record))
            else:
                raise TypeError(f"not a QueryRecord or EventRecord: {type(record).__name__}")
        self._transactions.begin()
        try:
            queries_new, events_new = self._insert(queries, events)
            self._transactions.commit()
        except BaseException:
            self._transactions.rollback()
            raise
        return AddResult(
            queries_new, len(queries) - queries_new, events_new, len(events) - events_new
        )

    def ingest_file(
        self,
        path: str | os.PathLike[str],
        *,
        batch_size: int,
        on_commit: Callable[[IngestReport], None] | None,
        strict: bool,
        max_line_bytes: int,
    ) -> IngestReport:
        """:meth:`EventStore.ingest_file <shopsearch.events.store.EventStore.ingest_file>`
        without the retention step."""
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
                self._transactions.begin()  # one transaction for the whole file
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
            self._transactions.rollback()
            raise
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()
        return report

    def _insert(self, queries: list[_QueryRow], events: list[_EventRow]) -> tuple[int, int]:
        """Insert rows inside the current transaction; return (queries new, events new)."""
        db = self._db
        before = db.total_changes
        self._insert_rows("queries", QUERY_COLUMNS, queries)
        middle = db.total_changes
        self._insert_rows("events", EVENT_COLUMNS, events)
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

    def write_batch(
        self, queries: list[_QueryRow], events: list[_EventRow], *, commit: bool
    ) -> tuple[int, int]:
        """Insert rows, in the open transaction or a new one; commit if ``commit``. On an
        error the whole open transaction is rolled back."""
        if not self._db.in_transaction:
            self._transactions.begin()
        try:
            result = self._insert(queries, events)
            if commit:
                self._transactions.commit()
        except BaseException:
            self._transactions.rollback()
            raise
        return result


class _BatchWriter:
    """Writes :meth:`EventWriter.ingest_file`'s records on one background thread.

    SQLite runs its B-tree work without holding the GIL (one statement inserts a whole chunk
    of up to 10,000 rows), so inserting chunk *k* overlaps with parsing chunk *k+1* on the
    caller's thread.
    At most one chunk is in flight. Acknowledgements (``on_commit``) run on the caller's
    thread, as soon as it sees a finished commit, and never while a chunk is being written.
    """

    def __init__(
        self,
        writer: EventWriter,
        report: IngestReport,
        on_commit: Callable[[IngestReport], None] | None,
    ) -> None:
        self._writer = writer
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
        self._pending = self._pool.submit(self._writer.write_batch, queries, events, commit=commit)

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


def _dumps(value: dict[str, Any]) -> str:
    # ASCII escapes: lone surrogates from JSON escapes stay storable.
    return compact_json(value) if value else EMPTY_JSON


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
