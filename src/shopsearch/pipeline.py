"""SearchPipeline: one index directory, opened once; writes, documents, and named pipelines.

>>> pipeline = SearchPipeline.open("indexes/esci")                       # doctest: +SKIP
>>> result = pipeline.search("ugg slippers women", k=5, filters=Filters(rating_min=4))
>>> [(hit.product_id, hit.scores) for hit in result.hits]               # doctest: +SKIP

A search runs one named pipeline of stages (:mod:`shopsearch.search`): query analysis,
retrievers (BM25, dense), fusion, second stages (cross-encoder, personal) and result
shaping. The built-ins are ``bm25``, ``dense``, ``hybrid``, ``rerank`` and ``personal``;
the index configuration can define more (``pipelines.NAME = "hybrid -> cross_encoder(top=50)
-> personal(top=100)"``) and choose the default.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from shopsearch.catalog.schema import Product
from shopsearch.catalog.store import CatalogStore, DocumentCache
from shopsearch.errors import IndexLockedError, InvalidQueryError
from shopsearch.index.config import BUILTIN_PIPELINES, AnalysisConfig, IndexConfig
from shopsearch.index.directory import SNAPSHOTS, IndexDirectory
from shopsearch.index.filters import Filters
from shopsearch.index.snapshot import IndexSnapshot
from shopsearch.models.encoders import Encoder, load_encoder
from shopsearch.progress import NULL_PROGRESS, Progress
from shopsearch.search.analysis import SYNONYMS, QueryAnalyzer
from shopsearch.search.models import BACKENDS_FILE, LTR_DIR, StageModels
from shopsearch.search.rerankers import context_candidates, product_vectors
from shopsearch.search.retrievers import dense_scores
from shopsearch.search.runner import PipelineSet, StagedPipeline
from shopsearch.search.shaping import facets as facet_counts
from shopsearch.search.shaping import shape
from shopsearch.search.spec import parse
from shopsearch.search.state import QueryState
from shopsearch.search.types import Hit, SearchRequest, SearchResult, Shopper

__all__ = [
    "BACKENDS_FILE",
    "LTR_DIR",
    "PIPELINES",
    "RETRIEVAL_PIPELINES",
    "EvaluablePipelineAdapter",
    "Hit",
    "SearchPipeline",
    "SearchResult",
]

PIPELINES = BUILTIN_PIPELINES
RETRIEVAL_PIPELINES = ("bm25", "dense", "hybrid")
#: Products kept in the read cache (parsed from the store once per snapshot).
DOC_CACHE_SIZE = 100_000
DEFAULT_K = 10
MAX_K = 1_000
MAX_QUERY_CHARS = 1_000


class SearchPipeline:
    """Search one index directory. Open it once, then call :meth:`search` / :meth:`rank`.

    Thread-safe for concurrent searches, also while another thread writes: a write
    (:meth:`upsert`, :meth:`delete`) builds a new snapshot and swaps it in when committed
    (copy-on-write), and each search reads the one snapshot it started with.
    """

    def __init__(
        self,
        directory: IndexDirectory,
        store: CatalogStore,
        snapshot: IndexSnapshot,
        encoder: Encoder,
    ) -> None:
        self.directory = directory
        self.store = store
        self.snapshot = snapshot
        self.encoder = encoder
        self.models = StageModels(
            directory.path,
            snapshot.config.reranker,
            documents=self.documents,
            vectors=self.product_vectors,
        )
        self._analyzer = QueryAnalyzer(snapshot.config.analysis, directory.path / SYNONYMS)
        self._pipelines = PipelineSet(snapshot.config, self.models)
        self._documents = DocumentCache(store, DOC_CACHE_SIZE)
        self._write_lock = threading.RLock()  # one writer at a time within this process

    @classmethod
    def open(cls, path: str | Path, *, encoder: Encoder | None = None) -> SearchPipeline:
        directory = IndexDirectory(path)
        store = directory.open_store()
        snapshot = directory.load_snapshot(store)
        if encoder is None:
            encoder = load_encoder(snapshot.config.encoder)
        return cls(directory, store, snapshot, encoder)

    @classmethod
    def build(
        cls,
        products: Sequence[Product],
        path: str | Path,
        *,
        config: IndexConfig | None = None,
        encoder: Encoder | None = None,
        progress: Progress = NULL_PROGRESS,
    ) -> SearchPipeline:
        """Index ``products`` into ``path`` (replacing its contents atomically) and open it."""
        config = config or IndexConfig()
        for name, definition in config.pipelines.defined.items():
            parse(name, definition)  # a mistake is reported before the work starts
        if encoder is None:
            with progress.stage("Loading encoder", 1) as advance:
                encoder = load_encoder(config.encoder)
                advance(1)
        directory = IndexDirectory(path)
        snapshot = directory.build(products, encoder, config, progress)
        return cls(directory, directory.open_store(), snapshot, encoder)

    def close(self) -> None:
        self.models.close()
        self.store.close()

    def __enter__(self) -> SearchPipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def config(self) -> IndexConfig:
        return self.snapshot.config

    def __len__(self) -> int:
        return len(self.snapshot)

    # pipelines
    @property
    def pipelines(self) -> tuple[str, ...]:
        """The pipelines this index can run: built-ins ("rerank" needs a configured
        cross-encoder, "personal" a learning-to-rank model), then configured ones."""
        return self._pipelines.names

    @property
    def default_pipeline(self) -> str:
        return self._pipelines.default

    def pipeline(self, name: str | None = None) -> StagedPipeline:
        """The named pipeline (default: :attr:`default_pipeline`); a clear error when this
        index cannot run it."""
        return self._pipelines.get(name)

    def describe_pipelines(self) -> dict[str, Any]:
        """Every pipeline with its stages, whether it can run, and what it needs if not."""
        return self._pipelines.describe()

    @property
    def has_personal_model(self) -> bool:
        return self.models.has_personal_model

    # writes
    def upsert(
        self,
        products: Sequence[Product],
        progress: Progress = NULL_PROGRESS,
        *,
        wait_s: float = 0.0,
    ) -> None:
        """Add or replace products; searchable when this returns (and durable).

        ``wait_s``: how long to wait for another process's write to end (then
        :class:`IndexLockedError`); the change is applied on top of what it committed.
        """
        latest = {p.id: p for p in products}  # the last version of a repeated id wins
        with self._writing(wait_s):
            self._write(list(latest.values()), [], progress)

    def delete(self, product_ids: Sequence[str], *, wait_s: float = 0.0) -> int:
        """Remove products by id; returns how many existed. ``wait_s``: as for :meth:`upsert`."""
        with self._writing(wait_s):
            known = [pid for pid in dict.fromkeys(product_ids) if pid in self.snapshot.id_to_row]
            self._write([], known, NULL_PROGRESS)
        return len(known)

    def refresh(self) -> bool:
        """Follow writes committed by other processes (or other pipelines on the directory):
        swap in the directory's committed snapshot if it is not this pipeline's. Searches in
        flight finish on the snapshot they started with. Returns whether it changed.

        Raises :class:`IndexLockedError` (swapping nothing) if the committed snapshot needs
        other models than this pipeline's (``shopsearch refresh`` changed the encoder or the
        reranker): reopen the index then.
        """
        with self._write_lock:
            snapshot = self.directory.load_newer_snapshot(self.store, self.snapshot.name)
            if snapshot is None:
                return False
            old, new = self.snapshot.config, snapshot.config
            if (new.encoder, new.reranker) != (old.encoder, old.reranker):
                raise IndexLockedError(
                    f"the index at {self.directory.path} changed its models on disk: reopen it"
                )
            if (new.pipelines, new.analysis) != (old.pipelines, old.analysis):
                self._pipelines = PipelineSet(new, self.models)
                self._analyzer = QueryAnalyzer(new.analysis, self.directory.path / SYNONYMS)
            self.snapshot = snapshot
            return True

    def use_analysis(self, analysis: AnalysisConfig) -> None:
        """Analyse queries with ``analysis`` in this process (not saved; for tuning and
        experiments: ``refresh --set analysis.KEY=VALUE`` changes the index's own)."""
        config = replace(self.snapshot.config, analysis=analysis)
        self._pipelines = PipelineSet(config, self.models)
        self._analyzer = QueryAnalyzer(analysis, self.directory.path / SYNONYMS)

    @contextmanager
    def _writing(self, wait_s: float) -> Iterator[None]:
        """One writer: this pipeline's threads (a lock), then every process (the directory's
        lock); on top of the latest committed snapshot."""
        with self._write_lock, self.directory.writer_lock(wait_s):
            self.refresh()
            yield

    def _write(self, upserts: list[Product], deletes: list[str], progress: Progress) -> None:
        """Copy-on-write (within :meth:`_writing`): the change is applied to a fresh copy of
        the current snapshot (loaded from its files), which replaces ``self.snapshot`` once
        committed. Searches running meanwhile keep reading the old one, which is never
        modified; on an error nothing changes."""
        current = self.snapshot
        if current.name is None:  # pragma: no cover - snapshots from a directory are named
            raise InvalidQueryError("this snapshot was never saved: reopen the index")
        base = IndexSnapshot.load(self.directory.path / SNAPSHOTS / current.name)
        base.name = current.name
        if base.vocabulary is None and current.vocabulary is not None:  # an older index
            base.vocabulary = current.vocabulary.copy()
        self.snapshot = self.directory.apply(base, upserts, deletes, self.encoder, progress)

    # reads
    def get(self, product_id: str) -> Product | None:
        return self.store.get(product_id)

    def with_documents(self, hits: Sequence[Hit]) -> list[Hit]:
        """The hits with their products attached (from :meth:`documents`)."""
        docs = self.documents([h.product_id for h in hits])
        return [Hit(h.product_id, h.score, h.scores, docs.get(h.product_id)) for h in hits]

    def documents(self, product_ids: Sequence[str]) -> dict[str, Product]:
        """Products by id from the catalog store, through a cache of the current snapshot
        (a write replaces the snapshot and so empties the cache)."""
        return self._documents.get(product_ids, self.snapshot)

    def search(
        self,
        query: str,
        k: int = DEFAULT_K,
        *,
        filters: Filters | None = None,
        pipeline: str | None = None,
        facets: bool = True,
        products: bool = True,
        explain: bool = False,
        user: str | None = None,
        session: str | None = None,
        session_events: Sequence[Any] = (),
        relax: Sequence[str] = (),
    ) -> SearchResult:
        """Top ``k`` products for ``query`` over the whole catalog, by the named pipeline.

        ``user``, ``session`` and ``session_events`` (recent events not stored yet, e.g.
        ``SimpleEvent``) are the shopper's context, read by stages that need it (personal).
        ``relax`` switches parts of the query analysis off for this search
        (:data:`~shopsearch.query.parsed.RELAXABLE`: a removed constraint chip).
        """
        started = time.perf_counter()
        staged = self._check(query, k, pipeline)
        request = SearchRequest(
            query,
            k,
            filters or Filters(),
            Shopper(user, session, tuple(session_events)),
            explain=explain,
            facets=facets,
            products=products,
        )
        snapshot = self.snapshot  # one snapshot from analysis to the last stage
        parsed = self._analyzer.analyze(query, relax, snapshot)
        state = QueryState(request, parsed, snapshot, self.encoder)
        hits, rows = staged.search(state)
        hits = shape(state, hits, self.documents)
        counts = facet_counts(state, rows) if facets else {}
        took = (time.perf_counter() - started) * 1000
        return SearchResult(
            query, staged.name, hits, counts, len(rows), took, staged.spec.stage_names, state.parsed
        )

    def fusion_inputs(
        self, query: str, pipeline: str = "hybrid"
    ) -> tuple[QueryState, list[str], dict[str, list[float]]]:
        """The analysed query, every candidate of ``pipeline``'s retrievers (product ids)
        and each retriever's scores: what learned fusion trains on."""
        staged = self._check(query, 1, pipeline)
        snapshot = self.snapshot
        parsed = self._analyzer.analyze(query, (), snapshot)
        state = QueryState(SearchRequest(query, 1), parsed, snapshot, self.encoder)
        rows, components = staged.fusion_inputs(state)
        return state, [snapshot.row_ids[r] for r in rows], components

    def rank(
        self,
        query: str,
        candidates: Sequence[str],
        *,
        pipeline: str | None = None,
        user: str | None = None,
        session: str | None = None,
    ) -> list[Hit]:
        """Order the given products for ``query`` (the rerank protocol); unknown ids are left
        out. The same stages as :meth:`search`, over every candidate."""
        staged = self._check(query, 1, pipeline)
        request = SearchRequest(query, 1, shopper=Shopper(user, session))
        analyzed = self._analyzer.analyze(query, snapshot=self.snapshot)
        state = QueryState(request, analyzed, self.snapshot, self.encoder, mode="rank")
        return staged.rank(state, candidates)

    # the stages' models, and what learning to rank reads
    @property
    def events(self) -> Any:
        """The index's event store (``DIR/events.sqlite``), opened on first use."""
        return self.models.events

    def context_ranker(self) -> Any:
        """The personal stage's ranker (LTR model + event store), loaded on first use."""
        return self.models.context_ranker()

    def prepare_reranker(self) -> None:
        """Load the cross-encoder now (ONNX forms are exported once into its run dir)."""
        self.models.reranker()

    @property
    def reranker_choice(self) -> Any:
        """The cross-encoder's :class:`BackendChoice`, once loaded."""
        return self.models.reranker_choice

    def backends(self) -> dict[str, Any]:
        """The backend each model runs on in this process, and the parity that chose it."""
        return self.models.backends(self.encoder)

    def record_backends(self) -> Path:
        """Write :meth:`backends` (and this machine's CPU) to ``DIR/backends.json``."""
        return self.models.record_backends(self.encoder)

    def candidates(self, hits: Sequence[Hit]) -> list[Any]:
        """Context-feature inputs of first-stage hits (:func:`context_candidates`)."""
        return context_candidates(self.snapshot, hits)

    def product_vectors(self, product_ids: Sequence[str]) -> np.ndarray | None:
        """The indexed dense vector of each product (zeros for one that is not indexed)."""
        return product_vectors(self.snapshot, product_ids)

    def dense_scores(self, query: str, product_ids: Sequence[str]) -> np.ndarray:
        """The dense similarity of ``query`` to each indexed product (:func:`dense_scores`)."""
        return dense_scores(self.snapshot, self.encoder, query, product_ids)

    def _check(self, query: str, k: int, pipeline: str | None) -> StagedPipeline:
        staged = self._pipelines.get(pipeline)
        check_request(query, k)
        return staged


def check_request(query: str, k: int) -> None:
    """:class:`InvalidQueryError` for an empty or too long query or ``k`` out of range."""
    if not isinstance(query, str) or not query.strip():
        raise InvalidQueryError("the query is empty")
    if len(query) > MAX_QUERY_CHARS:
        raise InvalidQueryError(
            f"the query is {len(query):,} characters, limit {MAX_QUERY_CHARS:,}"
        )
    if not 1 <= k <= MAX_K:
        raise InvalidQueryError(f"k must be between 1 and {MAX_K}, got {k}")


class EvaluablePipelineAdapter:
    """Presents one named pipeline of a :class:`SearchPipeline` to the evaluation harness.

    It takes the judgments' user and session (``takes_context``): only pipelines with a
    stage that reads the shopper use them.
    """

    takes_context = True

    def __init__(self, search: SearchPipeline, pipeline: str) -> None:
        self.search_pipeline = search
        self.name = pipeline

    def rank(
        self,
        query: str,
        candidates: Sequence[str],
        user_id: str | None = None,
        session_id: str | None = None,
    ) -> list[str]:
        hits = self.search_pipeline.rank(
            query, candidates, pipeline=self.name, user=user_id, session=session_id
        )
        return [h.product_id for h in hits]

    def search(
        self, query: str, k: int, user_id: str | None = None, session_id: str | None = None
    ) -> list[str]:
        result = self.search_pipeline.search(
            query,
            k,
            pipeline=self.name,
            facets=False,
            products=False,
            user=user_id,
            session=session_id,
        )
        return [h.product_id for h in result.hits]
