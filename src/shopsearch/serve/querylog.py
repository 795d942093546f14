"""The served queries' log, written to the event store off the request path.

A search only puts its :class:`~shopsearch.events.QueryRecord` on a queue; one background
thread commits them in batches (every ``interval_s`` seconds or ``batch_size`` records), so
search latency never includes a SQLite commit. :meth:`QueryLog.close` (graceful shutdown)
writes everything still queued. A process killed with SIGKILL loses at most the last
interval's queries; events posted to ``/v1/events`` are never queued (they are committed
before the response).

>>> log = QueryLog(write=store_add, interval_s=0.2)       # doctest: +SKIP
>>> log.put(record); log.close()                           # doctest: +SKIP
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence

from shopsearch.events.schema import QueryRecord

__all__ = ["QueryLog"]

logger = logging.getLogger("shopsearch.serve")
_STOP = object()


class QueryLog:
    """Batches records to ``write(records)`` on a daemon thread; ``on_written(records,
    shoppers)`` is called after each successful write with the records written and who
    searched each (as given to :meth:`put`; e.g. to feed autocomplete)."""

    def __init__(
        self,
        write: Callable[[Sequence[QueryRecord]], object],
        *,
        interval_s: float = 0.25,
        batch_size: int = 2_000,
        max_pending: int = 100_000,
        on_written: Callable[[Sequence[QueryRecord], Sequence[str | None]], None] | None = None,
    ) -> None:
        self._write = write
        self._on_written = on_written
        self.interval_s = interval_s
        self.batch_size = batch_size
        self.max_pending = max_pending
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._closed = False
        self.written = 0
        self.dropped = 0
        self._thread = threading.Thread(target=self._run, name="shopsearch-query-log", daemon=True)
        self._thread.start()

    def put(self, record: QueryRecord, shopper: str | None = None) -> None:
        """Queue a record and who searched (never blocks; drops and counts it when the
        queue is full or the log is closed)."""
        if self._closed or self._queue.qsize() >= self.max_pending:
            self.dropped += 1
            return
        self._queue.put((record, shopper))

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    def flush(self, timeout: float = 30.0) -> None:
        """Wait until everything queued so far is written."""
        done = threading.Event()
        self._queue.put(done)
        done.wait(timeout)

    def close(self, timeout: float = 30.0) -> None:
        """Write what is queued, then stop the thread."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(_STOP)
        self._thread.join(timeout)

    def _run(self) -> None:
        batch: list[tuple[QueryRecord, str | None]] = []
        waiters: list[threading.Event] = []
        stop = False
        while not stop:
            item = self._queue.get()  # wait for the first record of a batch
            deadline = time.monotonic() + self.interval_s
            while True:
                if item is _STOP:
                    stop = True
                elif isinstance(item, threading.Event):
                    waiters.append(item)  # a flush(): write now
                else:
                    batch.append(item)  # type: ignore[arg-type]
                remaining = deadline - time.monotonic()
                if stop or waiters or len(batch) >= self.batch_size or remaining <= 0:
                    break
                try:
                    item = self._queue.get(timeout=remaining)
                except queue.Empty:
                    break
            if batch:
                self._commit(batch)
                batch = []
            for waiter in waiters:
                waiter.set()
            waiters = []
        # drain anything put after the stop marker (racing puts)
        rest: list[tuple[QueryRecord, str | None]] = []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, threading.Event):
                item.set()
            elif item is not _STOP:
                rest.append(item)  # type: ignore[arg-type]
        if rest:
            self._commit(rest)

    def _commit(self, batch: list[tuple[QueryRecord, str | None]]) -> None:
        try:
            self._write([record for record, _ in batch])
        except Exception:  # noqa: BLE001 - a bad batch must not stop the log
            logger.exception("query log: writing %d records failed; retrying each", len(batch))
            kept = []
            for item in batch:
                try:
                    self._write([item[0]])
                    kept.append(item)
                except Exception:  # noqa: BLE001
                    self.dropped += 1
                    logger.exception("query log: dropped query %s", item[0].query_id)
            batch = kept
        self.written += len(batch)
        if self._on_written is not None and batch:
            try:
                self._on_written([r for r, _ in batch], [s for _, s in batch])
            except Exception:  # noqa: BLE001
                logger.exception("query log: on_written failed")
