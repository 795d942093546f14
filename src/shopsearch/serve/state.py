"""What a running server holds: the open index (a "generation": SearchPipeline + autocomplete),
the event store's writer connection, and the query log.

* **Reads** lease the current generation (:meth:`ServeState.lease`); a reload opens a new
  generation and swaps it in atomically: requests in flight finish on the old one, which
  is closed when its last lease ends.
* **Product writes** are serialized by one lock and go through ``SearchPipeline.upsert`` /
  ``delete`` (copy-on-write: searches keep running meanwhile, on the previous snapshot).
* **Event writes** (``/v1/events`` and the query log) share one writer connection under a
  lock; the pipeline's own connection only reads (SQLite WAL: readers never wait).
"""

from __future__ import annotations

import importlib
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from shopsearch.catalog.schema import Product
from shopsearch.errors import InvalidQueryError
from shopsearch.events.schema import EventRecord, QueryRecord
from shopsearch.events.store import AddResult, EventStore
from shopsearch.models.encoders import Encoder, load_encoder
from shopsearch.pipeline import SearchPipeline
from shopsearch.serve.cache import CachedQueryEncoder
from shopsearch.serve.querylog import QueryLog

__all__ = ["Generation", "ServeState"]

logger = logging.getLogger("shopsearch.serve")

#: Logged query texts that seed autocomplete at startup (the most frequent ones).
SUGGEST_SEED_QUERIES = 100_000


def load_suggest_module() -> Any | None:
    """``shopsearch.suggest`` if it is installed (autocomplete is optional)."""
    try:
        return importlib.import_module("shopsearch.suggest")
    except ImportError:
        return None


class Generation:
    """One opened state of the index directory, shared by the requests that lease it."""

    def __init__(self, pipeline: SearchPipeline, suggester: Any | None) -> None:
        self.pipeline = pipeline
        # Pinned when opened: a model that `context train` writes later (or a broken one)
        # changes nothing until the next reload.
        self.pipelines = pipeline.pipelines
        self.default_pipeline = pipeline.default_pipeline
        self.suggester = suggester
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

    def add_queries(self, texts: Sequence[str]) -> None:
        if self.suggester is None or not texts:
            return
        with self.suggest_lock:
            for text in texts:
                self.suggester.add_query(text)

    def close(self) -> None:
        self.pipeline.close()


class ServeState:
    """The server's resources; :meth:`close` on shutdown (flushes the query log)."""

    def __init__(
        self,
        index_dir: str | Path,
        *,
        encoder: Encoder | None = None,
        query_cache_size: int = 0,
        query_log_interval_s: float = 0.25,
    ) -> None:
        self.index_dir = Path(index_dir)
        self._lock = threading.Lock()  # guards the current generation and lease counts
        self._reload_lock = threading.Lock()
        self.write_lock = threading.Lock()  # product writes (and reloads) one at a time
        self._events_lock = threading.Lock()  # the event store's writer connection
        self._suggest_module = load_suggest_module()
        self._encoder = encoder
        self.query_cache_size = query_cache_size
        self._query_log_interval_s = query_log_interval_s
        self.closed = True
        self.start()

    def start(self) -> None:
        """Open everything (done by the constructor; again after :meth:`close`, e.g. when an
        ASGI server runs the app's lifespan more than once)."""
        with self._reload_lock:
            if not self.closed:
                return
            current = self._open(self._encoder)
            try:
                events = EventStore.open(self.index_dir)
                counts = events.counts()
            except BaseException:
                current.close()
                raise
            self.current, self.events = current, events
            self.events_count = counts["events"]
            self.queries_count = counts["queries"]
            self.query_log = QueryLog(
                self._write_queries,
                interval_s=self._query_log_interval_s,
                on_written=self._suggest_queries,
            )
            self.closed = False

    @property
    def suggest_available(self) -> bool:
        return self._suggest_module is not None

    # ------------------------------------------------------------------ generations

    @contextmanager
    def lease(self) -> Iterator[Generation]:
        """The current generation, kept open until the block ends."""
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
                generation.close()

    def reload(self) -> Generation:
        """Open the directory afresh (a new snapshot, LTR model, reranker, encoder, ...) and
        swap it in. In-flight requests finish on the old generation. Raises (keeping the old
        one) if the new one cannot be opened."""
        with self._reload_lock, self.write_lock:  # no product write straddles the swap
            with self.lease() as old:
                new = self._open(None, previous=old.pipeline)
            with self._lock:
                old, self.current = self.current, new
                old.retired = True
                close = old.users == 0
            if close:
                old.close()
            counts = self._count_events()
            self.events_count, self.queries_count = counts["events"], counts["queries"]
            return new

    def _open(self, encoder: Encoder | None, previous: SearchPipeline | None = None) -> Generation:
        if previous is not None:
            encoder = previous.encoder  # with its query cache: the same model
        pipeline = SearchPipeline.open(self.index_dir, encoder=encoder)
        try:
            if previous is not None and pipeline.config.encoder != previous.config.encoder:
                pipeline.encoder = load_encoder(pipeline.config.encoder)  # `refresh --encoder`
            if self.query_cache_size and not isinstance(pipeline.encoder, CachedQueryEncoder):
                cached = CachedQueryEncoder(pipeline.encoder, self.query_cache_size)
                pipeline.encoder = cached  # type: ignore[assignment]
            _warm_up(pipeline)
            suggester = self._build_suggester(pipeline)
        except BaseException:
            pipeline.close()
            raise
        return Generation(pipeline, suggester)

    def _build_suggester(self, pipeline: SearchPipeline) -> Any | None:
        if self._suggest_module is None:
            return None
        titles = (p.title for p in pipeline.store.iter_products())
        with EventStore.open(self.index_dir) as events:
            queries = events.query_counts(SUGGEST_SEED_QUERIES)
        return self._suggest_module.Suggester.build(titles, queries)

    # ------------------------------------------------------------------ writes

    def upsert(self, products: Sequence[Product]) -> None:
        with self.write_lock, self.lease() as generation:
            generation.pipeline.upsert(products)

    def delete(self, product_id: str) -> int:
        with self.write_lock, self.lease() as generation:
            return generation.pipeline.delete([product_id])

    def add_records(self, records: Sequence[QueryRecord | EventRecord]) -> AddResult:
        """Store records in one durable commit (synchronous=FULL) before returning."""
        with self._events_lock:
            result = self.events.add(records)
            self.events_count += result.events_new
            self.queries_count += result.queries_new
        return result

    def log_query(self, record: QueryRecord) -> None:
        """Queue a served query for the log (written off the request path)."""
        self.query_log.put(record)

    def _write_queries(self, records: Sequence[QueryRecord]) -> None:
        self.add_records(records)

    def _suggest_queries(self, records: Sequence[QueryRecord]) -> None:
        texts = [r.user_query for r in records if r.extra.get("query_response_hit_ids")]
        self.current.add_queries(texts)

    def _count_events(self) -> dict[str, int]:
        with self._events_lock:
            return self.events.counts()

    # ------------------------------------------------------------------ shutdown

    def close(self) -> None:
        """Flush the query log, then close the event store and the index."""
        with self._reload_lock:
            if self.closed:
                return
            self.closed = True
            self.query_log.close()
            with self._events_lock:
                self.events.close()
            with self._lock:
                current = self.current
                current.retired = True
                close = current.users == 0
            self._encoder = current.pipeline.encoder  # reused by a later start()
            if close:
                current.close()


def _warm_up(pipeline: SearchPipeline) -> None:
    """Load what the first searches would otherwise load (and race to load): the event
    store, the personalized stage and its behaviour table, the reranker; run one search."""
    _ = pipeline.events
    if pipeline.has_personal_model:
        pipeline.context_ranker().behaviour()
    if "rerank" in pipeline.pipelines:
        pipeline.prepare_reranker()
    if len(pipeline):
        pipeline.search("warm up", k=1, facets=False)
