"""What a running server holds: the open index (a "generation": SearchPipeline + autocomplete),
the event store's writer connection, and the query log.

* **Reads** lease the current generation (:meth:`ServeState.lease`); a reload opens a new
  generation and swaps it in atomically: requests in flight finish on the old one, which
  is closed when its last lease ends.
* **Product writes** are serialized by one lock and go through ``SearchPipeline.upsert`` /
  ``delete`` (copy-on-write: searches keep running meanwhile, on the previous snapshot).
* **Event writes** (``/v1/events`` and the query log) share one writer connection under a
  lock; the pipeline's own connection only reads (SQLite WAL: readers never wait).
* **Freshness across processes** (worker processes, or ``shopsearch upsert`` while serving):
  every lease first checks, in ~15 us, the snapshot name committed in ``catalog.sqlite`` and
  the size of the reload marker (:class:`~shopsearch.serve.shared.ReloadMarker`). A new
  snapshot is loaded and swapped in (``SearchPipeline.refresh``, ~0.12 s for 6,764
  products); a reload request reopens everything (:meth:`ServeState.reload`, ~1 s).
  Requests that arrive meanwhile wait for it, so a write acknowledged by one process is
  seen by every search any process answers after that. A watcher thread does the same
  check every ``watch_interval_s`` so that idle processes catch up before their next
  request.
* **Suggestions**: served queries reach autocomplete through the suggestion store
  (:mod:`~shopsearch.serve.suggestions`: distinct shoppers, blocklist, admin removals),
  written by the query log's thread; each generation's suggester follows the store from
  the cursor it was built at (:meth:`ServeState.sync_suggestions`: after each query-log
  write, and on the watcher thread, so what other processes add or remove arrives too).
* **Garbage collection**: an opened index is ~450,000 Python objects, which a full
  collection walks in ~0.3 s (a pause of every request in the process). Servers freeze
  them after startup (``gc.freeze()``: the collector skips them) and set ``freeze_heap``,
  so that closing a reloaded generation collects its garbage once and refreezes.
"""

from __future__ import annotations

import gc
import importlib
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from shopsearch.catalog.schema import Product
from shopsearch.catalog.store import CatalogStore
from shopsearch.errors import IndexLockedError, InvalidQueryError
from shopsearch.events.schema import EventRecord, QueryRecord
from shopsearch.events.store import AddResult, EventStore
from shopsearch.models.encoders import Encoder, load_encoder
from shopsearch.pipeline import SearchPipeline
from shopsearch.serve.cache import CachedQueryEncoder
from shopsearch.serve.querylog import QueryLog
from shopsearch.serve.shared import ReloadMarker
from shopsearch.serve.suggestions import SUGGESTIONS_FILE, Blocklist, Cursor, SuggestionStore

__all__ = ["Generation", "ServeState"]

logger = logging.getLogger("shopsearch.serve")

#: How long a product write waits for another process's write to the index to end.
WRITE_LOCK_WAIT_S = 30.0


def load_suggest_module() -> Any | None:
    """``shopsearch.suggest`` if it is installed (autocomplete is optional)."""
    try:
        return importlib.import_module("shopsearch.suggest")
    except ImportError:
        return None


class Generation:
    """One opened state of the index directory, shared by the requests that lease it."""

    def __init__(
        self, pipeline: SearchPipeline, suggester: Any | None, cursor: Cursor | None = None
    ) -> None:
        self.pipeline = pipeline
        # Pinned when opened: a model that `context train` writes later (or a broken one)
        # changes nothing until the next reload.
        self.pipelines = pipeline.pipelines
        self.default_pipeline = pipeline.default_pipeline
        self.suggester = suggester
        self.suggest_cursor = cursor or Cursor()  # how far it follows the suggestion store
        self.suggest_lock = threading.Lock()
        self.opened = time.time()
        self.users = 0
        self.retired = False

    def check_pipeline(self, name: str | None) -> str:
        """The pipeline to run: ``name`` or the default, if this generation serves it."""
        name = name or self.default_pipeline
        if name not in self.pipelines:
            raise InvalidQueryError(
                f"unknown pipeline {name!r}: choose one of {', '.join(self.pipelines)}"
            )
        return name

    def suggest(self, prefix: str, k: int) -> list[Any]:
        if self.suggester is None:
            return []
        with self.suggest_lock:
            return list(self.suggester.suggest(prefix, k))

    def follow(self, store: SuggestionStore) -> None:
        """Apply to the suggester what ``store`` gained (admitted phrases, new shoppers of
        admitted ones, removals) since this generation last looked, from any process."""
        if self.suggester is None:
            return
        with self.suggest_lock:
            while True:
                changes = store.changes(self.suggest_cursor)
                for text in changes.remove:
                    self.suggester.remove_query(text)
                for text, weight in changes.add:
                    self.suggester.add_query(text, weight)
                if changes.cursor == self.suggest_cursor:
                    return
                self.suggest_cursor = changes.cursor

    def forget(self, text: str) -> bool:
        """Stop suggesting the query ``text``; whether it was suggested."""
        with self.suggest_lock:
            return self.suggester is not None and bool(self.suggester.remove_query(text))

    def close(self, *, collect: bool = False) -> None:
        """``collect``: then collect its garbage (one full collection, ~0.3 s) and freeze
        the objects left (the new generation's): see ``ServeState.freeze_heap``."""
        self.pipeline.close()
        if collect:
            del self.pipeline, self.suggester  # callers may still hold the shell
            gc.unfreeze()
            gc.collect()
            gc.freeze()


class ServeState:
    """The server's resources; :meth:`close` on shutdown (flushes the query log).

    ``reload_marker``: shared with the other processes of a multi-process server (a reload
    here is requested there too, and theirs here); ``on_reload(generation)`` is called
    after every reload, whoever asked for it; ``watch_interval_s``: run :meth:`refresh` on
    a background thread that often too (``None``: only when a request comes).
    ``suggest_min_shoppers`` and ``suggest_blocklist``: which served queries become
    suggestions (:class:`~shopsearch.serve.suggestions.SuggestionStore`).
    """

    def __init__(
        self,
        index_dir: str | Path,
        *,
        encoder: Encoder | None = None,
        query_cache_size: int = 0,
        query_log_interval_s: float = 0.25,
        reload_marker: ReloadMarker | None = None,
        watch_interval_s: float | None = None,
        on_reload: Callable[[Generation], None] | None = None,
        suggest_min_shoppers: int = 3,
        suggest_blocklist: Blocklist | None = None,
    ) -> None:
        self.index_dir = Path(index_dir)
        self._suggest_min_shoppers = suggest_min_shoppers
        self._suggest_blocklist = suggest_blocklist
        self.suggestions: SuggestionStore | None = None
        self._lock = threading.Lock()  # guards the current generation and lease counts
        self._reload_lock = threading.Lock()  # reloads and refreshes, one at a time
        self.write_lock = threading.Lock()  # product writes (and reloads) one at a time
        self._events_lock = threading.Lock()  # the event store's writer connection
        self._suggest_module = load_suggest_module()
        self._encoder = encoder
        self.query_cache_size = query_cache_size
        self._query_log_interval_s = query_log_interval_s
        self._marker = reload_marker
        self._watch_interval_s = watch_interval_s
        self.on_reload = on_reload
        #: Servers set it (after ``gc.freeze()`` at startup): a reload then refreezes.
        self.freeze_heap = False
        self.reloads = 0  # generations opened after the first
        self.closed = True
        self.start()

    def start(self) -> None:
        """Open everything (done by the constructor; again after :meth:`close`, e.g. when an
        ASGI server runs the app's lifespan more than once)."""
        with self._reload_lock:
            if not self.closed:
                return
            self._marker_seen = self._marker.count() if self._marker else 0
            if self._suggest_module is not None:
                self.suggestions = SuggestionStore(
                    self.index_dir / SUGGESTIONS_FILE,
                    min_shoppers=self._suggest_min_shoppers,
                    blocklist=self._suggest_blocklist,
                )
            current = self._open(self._encoder)
            try:
                events = EventStore.open(self.index_dir)
                counts = events.counts()
                catalog = CatalogStore(current.pipeline.directory.db_path, readonly=True)
            except BaseException:
                current.close()
                raise
            self.current, self.events, self._catalog = current, events, catalog
            self._stuck: str | None = None  # a committed snapshot that failed to load
            self.events_count = counts["events"]
            self.queries_count = counts["queries"]
            self.query_log = QueryLog(
                self._write_queries,
                interval_s=self._query_log_interval_s,
                on_written=self._suggest_queries,
            )
            self.closed = False
            self._stop_watching = threading.Event()
            self._watcher: threading.Thread | None = None
            if self._watch_interval_s:
                self._watcher = threading.Thread(
                    target=self._watch, name="shopsearch-watch", daemon=True
                )
                self._watcher.start()

    @property
    def suggest_available(self) -> bool:
        return self._suggest_module is not None

    # ------------------------------------------------------------------ generations

    @contextmanager
    def lease(self, *, refresh: bool = True) -> Iterator[Generation]:
        """The current generation, kept open until the block ends; first brought up to
        date with the directory (:meth:`refresh`) unless ``refresh`` is false."""
        if refresh:
            self.refresh()
        with self._lock:
            generation = self.current
            generation.users += 1
        try:
            yield generation
        finally:
            with self._lock:
                generation.users -= 1
                close = generation.retired and generation.users == 0
            if close:
                generation.close(collect=self.freeze_heap)  # nobody uses it any more

    def refresh(self) -> None:
        """Catch up with what other processes did: load a snapshot they committed, reload
        if one of them asked for a reload. Cheap when nothing changed (a stat and a SQLite
        read); otherwise the caller waits until the new state is in place."""
        if self.closed or self._up_to_date():
            return
        with self._reload_lock:
            if self.closed:
                return
            marker = self._marker.count() if self._marker else 0
            if marker != self._marker_seen:
                self._reload_logged("reload requested by another process")
                # (only now: until the new generation is in place, other requests must
                # not find this process up to date; they wait on the lock instead)
                self._marker_seen = marker
                return
            try:
                self.current.pipeline.refresh()
            except IndexLockedError:  # another process changed the models: reopen
                self._reload_logged("the index's models changed on disk")
            except Exception:  # noqa: BLE001 - keep serving what we have
                self._stuck = self._committed()
                logger.exception("cannot load the committed snapshot; still serving the old one")

    def _up_to_date(self) -> bool:
        if self._marker is not None and self._marker.count() != self._marker_seen:
            return False
        committed = self._committed()
        return committed in (self.current.pipeline.snapshot.name, self._stuck)

    def _committed(self) -> str | None:
        return self._catalog.meta("snapshot")

    def _watch(self) -> None:
        stop, interval = self._stop_watching, self._watch_interval_s or 0.5
        while not stop.wait(interval):
            try:
                self.refresh()
                self.sync_suggestions()
            except Exception:  # noqa: BLE001 - the next request tries again (and reports)
                logger.exception("background refresh failed")

    def reload(self) -> Generation:
        """Open the directory afresh (a new snapshot, LTR model, reranker, encoder, ...) and
        swap it in; ask the other processes sharing the reload marker to do the same.
        In-flight requests finish on the old generation. Raises (keeping the old one) if the
        new one cannot be opened."""
        with self._reload_lock:  # (before asking: a refresh here must not reload too)
            asked = self._marker.request() if self._marker is not None else 0
            try:
                return self._reload()
            finally:
                if self._marker is not None:
                    self._marker_seen = asked

    def _reload_logged(self, why: str) -> None:
        try:
            self._reload()
            logger.info("reloaded", extra={"fields": {"why": why, "reloads": self.reloads}})
        except Exception:  # noqa: BLE001 - keep serving the old generation
            logger.exception("reload failed (%s); still serving the previous index", why)

    def _reload(self) -> Generation:
        """(Under the reload lock.)"""
        with self.write_lock:  # no product write straddles the swap
            with self.lease(refresh=False) as old:
                new = self._open(None, previous=old.pipeline)
            with self._lock:
                old, self.current = self.current, new
                old.retired = True
                close = old.users == 0
            if close:
                old.close(collect=self.freeze_heap)
            self._stuck = None
            self.reloads += 1
            counts = self._count_events()
            self.events_count, self.queries_count = counts["events"], counts["queries"]
        if self.on_reload is not None:
            self.on_reload(new)
        return new

    def _open(self, encoder: Encoder | None, previous: SearchPipeline | None = None) -> Generation:
        if previous is not None:
            encoder = previous.encoder  # with its query cache: the same model
        pipeline = SearchPipeline.open(self.index_dir, encoder=encoder)
        try:
            _prepare(pipeline, previous, self.query_cache_size)
            suggester, cursor = _build_suggester(self._suggest_module, self.suggestions, pipeline)
        except BaseException:
            pipeline.close()
            raise
        return Generation(pipeline, suggester, cursor)

    # ------------------------------------------------------------------ writes

    def upsert(self, products: Sequence[Product]) -> None:
        """Searchable (by every process) and durable when this returns. Applied on top of
        whatever another process committed; waits for another process's write to end."""
        self.refresh()  # (before the write lock: a reload takes it)
        with self.write_lock, self.lease(refresh=False) as generation:
            generation.pipeline.upsert(products, wait_s=WRITE_LOCK_WAIT_S)

    def delete(self, product_id: str) -> int:
        self.refresh()
        with self.write_lock, self.lease(refresh=False) as generation:
            return generation.pipeline.delete([product_id], wait_s=WRITE_LOCK_WAIT_S)

    def add_records(self, records: Sequence[QueryRecord | EventRecord]) -> AddResult:
        """Store records in one durable commit (synchronous=FULL) before returning."""
        with self._events_lock:
            result = self.events.add(records)
            self.events_count += result.events_new
            self.queries_count += result.queries_new
        return result

    def log_query(self, record: QueryRecord, shopper: str | None = None) -> None:
        """Queue a served query for the log (written off the request path); ``shopper``:
        who searched, as suggestion admission counts shoppers (``None``: not counted)."""
        self.query_log.put(record, shopper)

    def _write_queries(self, records: Sequence[QueryRecord]) -> None:
        self.add_records(records)

    def _suggest_queries(
        self, records: Sequence[QueryRecord], shoppers: Sequence[str | None]
    ) -> None:
        """(The query log's thread.) Count the shoppers of the queries that found something."""
        if self.suggestions is None:
            return
        searches = [
            (r.user_query, shopper)
            for r, shopper in zip(records, shoppers, strict=True)
            if shopper is not None and r.extra.get("query_response_hit_ids")
        ]
        if searches and self.suggestions.record(searches):
            self.sync_suggestions()

    def sync_suggestions(self) -> None:
        """Apply to the current suggester what the suggestion store gained (admitted phrases,
        new shoppers of admitted ones, removals) since it last looked, from any process."""
        if self.suggestions is None or self.closed:
            return
        self.current.follow(self.suggestions)

    def remove_suggestion(self, text: str) -> bool:
        """Never suggest the query ``text`` again, in any process (persisted); whether this
        process suggested it. Raises ``ValueError`` for a blank text."""
        if self.suggestions is None:
            return False
        newly = self.suggestions.remove(text)
        suggested = self.current.forget(text)
        self.sync_suggestions()
        return bool(newly and suggested)

    def count_events(self) -> dict[str, int]:
        """Count the stored records again (other processes add some too); updates
        ``events_count`` and ``queries_count``."""
        counts = self._count_events()
        self.events_count, self.queries_count = counts["events"], counts["queries"]
        return counts

    def _count_events(self) -> dict[str, int]:
        with self._events_lock:
            return self.events.counts()

    # ------------------------------------------------------------------ shutdown

    def close(self) -> None:
        """Flush the query log, then close the event store and the index."""
        if self._watcher is not None:
            self._stop_watching.set()
            self._watcher.join()
        with self._reload_lock:
            if self.closed:
                return
            self.closed = True
            self.query_log.close()
            with self._events_lock:
                self.events.close()
            if self.suggestions is not None:
                self.suggestions.close()
                self.suggestions = None
            self._catalog.close()
            with self._lock:
                current = self.current
                current.retired = True
                close = current.users == 0
            self._encoder = current.pipeline.encoder  # reused by a later start()
            if close:
                current.close()


def _build_suggester(
    module: Any | None, store: SuggestionStore | None, pipeline: SearchPipeline
) -> tuple[Any | None, Cursor]:
    """Catalog title phrases plus the admitted queries (and where the store was then)."""
    if module is None or store is None:
        return None, Cursor()
    titles = (p.title for p in pipeline.store.iter_products())
    queries, cursor = store.snapshot()
    return module.Suggester.build(titles, queries), cursor


def _prepare(
    pipeline: SearchPipeline, previous: SearchPipeline | None, query_cache_size: int
) -> None:
    """A new encoder if the index's changed (``refresh --encoder``), the query cache, the
    warm-up."""
    if previous is not None and pipeline.config.encoder != previous.config.encoder:
        pipeline.encoder = load_encoder(pipeline.config.encoder)
    if query_cache_size and not isinstance(pipeline.encoder, CachedQueryEncoder):
        cached = CachedQueryEncoder(pipeline.encoder, query_cache_size)
        pipeline.encoder = cached  # type: ignore[assignment]
    _warm_up(pipeline)


def _warm_up(pipeline: SearchPipeline) -> None:
    """Load what the first searches would otherwise load (and race to load): the event
    store, the personalized stage and its behaviour table, the reranker, the spelling
    dictionary; run one search. (The Chinese dictionary loads with the first Chinese query,
    ~1.5 s: most shops never need it.)"""
    _ = pipeline.events
    if pipeline.has_personal_model:
        pipeline.context_ranker().behaviour()
    if "rerank" in pipeline.pipelines:
        pipeline.prepare_reranker()
    if len(pipeline):
        # an unknown word: the spelling corrector builds its dictionary now, not in the
        # first shopper's search (seconds at 50,000+ products)
        pipeline.search("warm up qzxwv", k=1, facets=False)
