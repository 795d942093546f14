"""SearchPipeline: retrieve (BM25, dense, hybrid), filter, fuse, facet, explain.

>>> pipeline = SearchPipeline.open("indexes/esci")                       # doctest: +SKIP
>>> result = pipeline.search("ugg slippers women", k=5, filters=Filters(rating_min=4))
>>> [(hit.product_id, hit.scores) for hit in result.hits]               # doctest: +SKIP

Later stages (cross-encoder reranking, personalization) plug in after fusion.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from shopsearch.catalog.schema import Product
from shopsearch.catalog.store import CatalogStore
from shopsearch.errors import IndexLockedError, InvalidQueryError
from shopsearch.index.config import IndexConfig
from shopsearch.index.directory import SNAPSHOTS, IndexDirectory
from shopsearch.index.filters import Filters
from shopsearch.index.fusion import reciprocal_rank_fusion, weighted_sum
from shopsearch.index.snapshot import IndexSnapshot
from shopsearch.models.encoders import Encoder, load_encoder, product_text
from shopsearch.models.scoring import with_prior
from shopsearch.progress import NULL_PROGRESS, Progress

PIPELINES = ("bm25", "dense", "hybrid", "rerank", "personal")
RETRIEVAL_PIPELINES = ("bm25", "dense", "hybrid")
#: Where `shopsearch context train` saves the learning-to-rank model inside an index dir.
LTR_DIR = "ltr"
#: Where `shopsearch index` / `refresh` record the backends the models run on, and why.
BACKENDS_FILE = "backends.json"
#: How many hybrid candidates the personalized stage re-orders.
PERSONAL_DEPTH = 50
#: Products kept in the read cache (parsed from the store once per snapshot).
DOC_CACHE_SIZE = 100_000
DEFAULT_K = 10
MAX_K = 1_000
MAX_QUERY_CHARS = 1_000
#: Tries of :meth:`SearchPipeline.refresh` when the snapshot it loads is replaced meanwhile.
_REFRESH_ATTEMPTS = 5


@dataclass(frozen=True, slots=True)
class Hit:
    """One result: its id, final score, and every component score that produced it."""

    product_id: str
    score: float
    scores: Mapping[str, float] = field(default_factory=dict)
    product: Product | None = None


@dataclass(frozen=True)
class SearchResult:
    query: str
    pipeline: str
    hits: list[Hit]
    facets: dict[str, list[tuple[str, int]]]
    candidates: int  # rows considered (after filters) before the top k were cut
    took_ms: float
    stages: tuple[str, ...] = ()  # the stages that ran, in order

    @property
    def personalized(self) -> bool:
        """Whether a stage that reads the shopper's context (the personal stage) ran."""
        return "personal" in self.stages or self.pipeline == "personal"


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
        self._reranker: tuple[object, tuple[str, ...]] | None = None  # loaded on first use
        self.reranker_choice: Any = None  # its BackendChoice, once loaded
        self._context: Any = None  # the personalized stage, loaded on first use
        self._events: Any = None
        self._doc_cache: dict[str, Product] = {}
        self._doc_cache_of: IndexSnapshot | None = None
        self._write_lock = threading.RLock()  # one writer at a time within this process
        self._load_lock = threading.RLock()  # stages loaded on first use are loaded once

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
        if encoder is None:
            with progress.stage("Loading encoder", 1) as advance:
                encoder = load_encoder(config.encoder)
                advance(1)
        directory = IndexDirectory(path)
        snapshot = directory.build(products, encoder, config, progress)
        return cls(directory, directory.open_store(), snapshot, encoder)

    def close(self) -> None:
        if self._events is not None:
            self._events.close()
        self.store.close()

    def __enter__(self) -> SearchPipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def config(self) -> IndexConfig:
        return self.snapshot.config

    @property
    def pipelines(self) -> tuple[str, ...]:
        """The pipelines this index can run: "rerank" needs a configured cross-encoder,
        "personal" a learning-to-rank model (`shopsearch context train`)."""
        names = RETRIEVAL_PIPELINES
        if self.config.reranker.path:
            names += ("rerank",)
        if self.has_personal_model:
            names += ("personal",)
        return names

    @property
    def has_personal_model(self) -> bool:
        return (self.directory.path / LTR_DIR / "model.txt").is_file()

    @property
    def default_pipeline(self) -> str:
        """The best available: personalized ranking when trained, then the rerank stage
        when configured, else hybrid retrieval."""
        if self.has_personal_model:
            return "personal"
        return "rerank" if self.config.reranker.path else "hybrid"

    def __len__(self) -> int:
        return len(self.snapshot)

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
            for _ in range(_REFRESH_ATTEMPTS):
                name = self.store.meta("snapshot")
                if name is None or name == self.snapshot.name:
                    return False
                try:
                    snapshot = IndexSnapshot.load(self.directory.path / SNAPSHOTS / name)
                except FileNotFoundError:  # replaced (and removed) by a newer write meanwhile
                    continue
                snapshot.name = name
                old = self.snapshot.config
                if (snapshot.config.encoder, snapshot.config.reranker) != (
                    old.encoder,
                    old.reranker,
                ):
                    raise IndexLockedError(
                        f"the index at {self.directory.path} changed its models on disk: reopen it"
                    )
                self.snapshot = snapshot
                return True
            raise IndexLockedError(f"the index at {self.directory.path} keeps changing: retry")

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
        if self._doc_cache_of is not self.snapshot or len(self._doc_cache) > DOC_CACHE_SIZE:
            self._doc_cache, self._doc_cache_of = {}, self.snapshot
        cache = self._doc_cache
        missing = [p for p in product_ids if p not in cache]
        if missing:
            cache.update(self.store.get_many(missing))
        return {p: cache[p] for p in product_ids if p in cache}

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
    ) -> SearchResult:
        """Top ``k`` products for ``query`` over the whole catalog.

        ``user``, ``session`` and ``session_events`` (recent events not stored yet, e.g.
        ``SimpleEvent``) personalize the "personal" pipeline; other pipelines ignore them.
        """
        started = time.perf_counter()
        pipeline = self._check(query, k, pipeline)
        if pipeline == "personal":

            def personalize(hits: list[Hit]) -> list[Hit]:
                return self._personalize(
                    query, hits, user, session, session_events, explain=explain
                )

            return self._search_second_stage(
                "personal",
                query,
                k,
                PERSONAL_DEPTH,
                personalize,
                filters,
                facets,
                products,
                explain,
                started,
            )
        if pipeline == "rerank":
            rerank_k = self.config.reranker.k

            def rerank(hits: list[Hit]) -> list[Hit]:
                docs = {h.product_id: h.product for h in hits if h.product is not None}
                head = self._rerank(query, hits[:rerank_k], docs)
                return head + hits[len(head) :]

            return self._search_second_stage(
                "rerank", query, k, rerank_k, rerank, filters, facets, products, explain, started
            )
        filters = filters or Filters()
        snapshot = self.snapshot
        filter_mask = snapshot.columns.mask(filters)  # None: no filters
        mask = snapshot.live_mask if filter_mask is None else snapshot.live_mask & filter_mask
        pool = snapshot.config.fusion.candidates
        runs: dict[str, dict[int, float]] = {}
        bm25_all: np.ndarray | None = None
        query_vector: np.ndarray | None = None
        if pipeline in ("bm25", "hybrid"):
            bm25_all = snapshot.bm25.scores(query)
            rows = _top_rows(bm25_all, mask, max(pool, k) if pipeline == "bm25" else pool)
            runs["bm25"] = dict(zip(rows.tolist(), bm25_all[rows].tolist(), strict=True))
        if pipeline in ("dense", "hybrid"):
            query_vector = self.encoder.encode_queries([query])[0]
            rows, scores = snapshot.vectors.search(  # it skips deleted rows itself
                query_vector, max(pool, k) if pipeline == "dense" else pool, filter_mask
            )
            runs["dense"] = dict(zip(rows.tolist(), scores.tolist(), strict=True))
        candidates = sorted(set().union(*runs.values()))
        ranked = self._fuse(pipeline, query, candidates, runs, bm25_all, query_vector, snapshot)
        top = ranked[:k]
        docs = self.documents([h.product_id for h in top]) if products else {}
        hits = [Hit(h.product_id, h.score, h.scores, docs.get(h.product_id)) for h in top]
        if explain:
            hits = self._explain(query, hits, snapshot)
        facet_counts = (
            snapshot.columns.facets(np.asarray(candidates, dtype=np.int64), filters)
            if facets
            else {}
        )
        took = (time.perf_counter() - started) * 1000
        return SearchResult(query, pipeline, hits, facet_counts, len(candidates), took)

    def rank(
        self,
        query: str,
        candidates: Sequence[str],
        *,
        pipeline: str | None = None,
        user: str | None = None,
        session: str | None = None,
    ) -> list[Hit]:
        """Order the given products for ``query``; unknown ids are left out."""
        pipeline = self._check(query, 1, pipeline)
        if pipeline == "personal":
            hits = self.with_documents(self.rank(query, candidates, pipeline="hybrid"))
            return self._personalize(query, hits, user, session, (), explain=False)
        if pipeline == "rerank":
            hits = self.rank(query, candidates, pipeline="hybrid")
            return self._rerank(query, hits, {})
        snapshot = self.snapshot
        rows = [snapshot.id_to_row[c] for c in candidates if c in snapshot.id_to_row]
        runs: dict[str, dict[int, float]] = {}
        row_array = np.asarray(rows, dtype=np.int64)
        if pipeline in ("bm25", "hybrid"):
            runs["bm25"] = dict(
                zip(rows, snapshot.bm25.scores(query, row_array).tolist(), strict=True)
            )
        if pipeline in ("dense", "hybrid"):
            vector = self.encoder.encode_queries([query])[0]
            runs["dense"] = dict(
                zip(rows, snapshot.vectors.scores(vector, row_array).tolist(), strict=True)
            )
        return self._fuse(pipeline, query, rows, runs, None, None, snapshot)

    # the personalized stage
    def _search_second_stage(
        self,
        name: str,
        query: str,
        k: int,
        depth: int,
        restage: Any,
        filters: Filters | None,
        facets: bool,
        products: bool,
        explain: bool,
        started: float,
    ) -> SearchResult:
        """Hybrid retrieval of ``max(k, depth)`` results, re-ordered by ``restage(hits)``."""
        first = self.search(
            query,
            max(k, depth),
            filters=filters,
            pipeline="hybrid",
            facets=facets,
            explain=explain,
        )
        hits = restage(first.hits)[:k]
        if not products:
            hits = [Hit(h.product_id, h.score, h.scores) for h in hits]
        took = (time.perf_counter() - started) * 1000
        return SearchResult(query, name, hits, first.facets, first.candidates, took)

    def _personalize(
        self,
        query: str,
        hits: list[Hit],
        user: str | None,
        session: str | None,
        session_events: Sequence[Any],
        *,
        explain: bool,
    ) -> list[Hit]:
        """Re-order ``hits`` (with products and hybrid scores) by the LTR model."""
        ranker = self.context_ranker()
        candidates = self.candidates(hits)
        ranked = ranker.rank(
            query,
            candidates,
            user=ranker.user_profile(user),
            session=ranker.session_profile(session, session_events),
            explain=explain,
        )
        by_id = {h.product_id: h for h in hits}
        out = []
        for r in ranked:
            h = by_id[r.candidate.product_id]
            scores = {**h.scores, "ltr": r.score}
            if r.explanation is not None:
                scores.update({f"ltr.{group}": v for group, v in r.explanation.items()})
            out.append(Hit(h.product_id, r.score, scores, h.product))
        return out

    @property
    def events(self) -> Any:
        """The index's event store (``DIR/events.sqlite``), opened on first use."""
        if self._events is None:
            from shopsearch.events.store import EventStore

            with self._load_lock:
                if self._events is None:
                    self._events = EventStore.open(self.directory.path)
        return self._events

    def context_ranker(self) -> Any:
        """The personalized stage (LTR model + event store), loaded on first use."""
        if self._context is None:
            with self._load_lock:
                if self._context is None:
                    self._context = self._load_context_ranker()
        return self._context

    def _load_context_ranker(self) -> Any:
        if not self.has_personal_model:
            raise InvalidQueryError(
                "the personal pipeline needs a learning-to-rank model: shopsearch context train DIR"
            )
        from shopsearch.context.ltr import LTRModel
        from shopsearch.context.ranker import ContextRanker

        return ContextRanker(
            LTRModel.load(self.directory.path / LTR_DIR),
            events=self.events,
            products=self.documents,
            vectors=self.product_vectors,
        )

    def candidates(self, hits: Sequence[Hit]) -> list[Any]:
        """Context-feature inputs of first-stage hits (their component scores, product and
        indexed vector): :class:`shopsearch.context.features.Candidate`."""
        from shopsearch.context.features import Candidate

        if not hits:
            return []
        # zeros for a product deleted by a write since the hits were retrieved
        vectors = self.product_vectors([h.product_id for h in hits])
        assert vectors is not None
        return [
            Candidate(
                h.product_id,
                float(h.scores.get("bm25", 0.0)),
                float(h.scores.get("dense", 0.0)),
                float(h.scores.get("fused", h.score)),
                h.product if h.product is not None else Product(id=h.product_id, title=""),
                vectors[i],
            )
            for i, h in enumerate(hits)
        ]

    def product_vectors(self, product_ids: Sequence[str]) -> np.ndarray | None:
        """The indexed dense vector of each product (zeros for one that is not indexed)."""
        if not product_ids:
            return None
        snapshot = self.snapshot
        matrix = snapshot.vectors.vectors
        out = np.zeros((len(product_ids), matrix.shape[1]), dtype=np.float32)
        for i, product_id in enumerate(product_ids):
            row = snapshot.id_to_row.get(product_id)
            if row is not None:
                out[i] = matrix[row]
        return out

    # the cross-encoder stage
    def _rerank(self, query: str, hits: list[Hit], docs: Mapping[str, Product]) -> list[Hit]:
        """Re-score ``hits`` with the cross-encoder, best first.

        ``scores["rerank"]`` is the cross-encoder's score (with its dense prior, if it was
        trained with one); the hit's score adds ``reranker.first_stage_weight`` times the
        z-scores of the first stage's scores over these hits.
        """
        if not hits:
            return []
        reranker, fields = self._load_reranker()
        missing = [h.product_id for h in hits if h.product_id not in docs]
        docs = {**docs, **self.documents(missing)} if missing else docs
        texts = [product_text(docs[h.product_id], fields) for h in hits]
        priors = None
        if getattr(reranker, "prior_weight", 0.0) and "dense" in self.pipelines:
            priors = self.dense_scores(query, [h.product_id for h in hits])
        scores = reranker.rank_scores(query, texts, priors)  # type: ignore[attr-defined]
        final = with_prior(
            np.asarray(scores, dtype=np.float32),
            [h.score for h in hits],
            self.config.reranker.first_stage_weight,
        )
        rescored = [
            Hit(h.product_id, float(f), {**h.scores, "rerank": float(s)}, docs.get(h.product_id))
            for h, s, f in zip(hits, scores.tolist(), final.tolist(), strict=True)
        ]
        order = sorted(
            range(len(rescored)),
            key=lambda i: (-rescored[i].score, -hits[i].score),  # ties: the first stage's order
        )
        return [rescored[i] for i in order]

    def dense_scores(self, query: str, product_ids: Sequence[str]) -> np.ndarray:
        """The dense (zero-shot encoder) similarity of ``query`` to each indexed product.

        Raises :class:`InvalidQueryError` for an id that is not in the index.
        """
        snapshot = self.snapshot
        unknown = [p for p in product_ids if p not in snapshot.id_to_row]
        if unknown:
            raise InvalidQueryError(f"{len(unknown)} products are not indexed: {unknown[:5]}")
        rows = np.asarray([snapshot.id_to_row[p] for p in product_ids], dtype=np.int64)
        if rows.size == 0:
            return np.zeros(0, dtype=np.float32)
        vector = self.encoder.encode_queries([query])[0]
        return np.asarray(snapshot.vectors.scores(vector, rows), dtype=np.float32)

    def prepare_reranker(self) -> None:
        """Load the cross-encoder now (ONNX forms are exported once into its run dir)."""
        self._load_reranker()

    def _load_reranker(self) -> tuple[object, tuple[str, ...]]:
        if self._reranker is None:
            with self._load_lock:
                if self._reranker is None:
                    from shopsearch.models.onnx_reranker import load_run_reranker_backend

                    settings = self.config.reranker
                    reranker, fields, choice = load_run_reranker_backend(
                        Path(settings.path),
                        settings.backend,
                        int8_min_pearson=settings.int8_min_pearson,
                    )
                    self.reranker_choice = choice
                    self._reranker = (reranker, fields)
        return self._reranker

    def backends(self) -> dict[str, Any]:
        """The backend each model runs on in this process, and the parity that chose it.

        The reranker appears once it is loaded (:meth:`prepare_reranker`).
        """
        out: dict[str, Any] = {}
        choice = getattr(self.encoder, "backend_choice", None)
        out["encoder"] = (
            choice.to_dict()
            if choice is not None
            else {"backend": getattr(self.encoder, "backend", type(self.encoder).__name__)}
        )
        if self.reranker_choice is not None:
            out["reranker"] = self.reranker_choice.to_dict()
        return out

    def record_backends(self) -> Path:
        """Write :meth:`backends` (and this machine's CPU) to ``DIR/backends.json``."""
        from shopsearch.system import cpu_model, int8_kernel_family

        record = {"cpu": cpu_model(), "kernels": int8_kernel_family(), **self.backends()}
        path = self.directory.path / BACKENDS_FILE
        tmp = path.with_name(f".{BACKENDS_FILE}.{os.getpid()}")
        tmp.write_text(json.dumps(record, indent=2), encoding="utf-8")
        os.replace(tmp, path)
        return path

    # internals
    def _check(self, query: str, k: int, pipeline: str | None) -> str:
        pipeline = pipeline or self.default_pipeline
        if pipeline == "rerank" and pipeline not in self.pipelines:
            raise InvalidQueryError(
                "the rerank pipeline needs a cross-encoder: shopsearch refresh DIR "
                "--reranker RUN_DIR (a `shopsearch train` run)"
            )
        if pipeline not in self.pipelines:
            raise InvalidQueryError(
                f"unknown pipeline {pipeline!r}: choose one of {', '.join(self.pipelines)}"
            )
        if not isinstance(query, str) or not query.strip():
            raise InvalidQueryError("the query is empty")
        if len(query) > MAX_QUERY_CHARS:
            raise InvalidQueryError(
                f"the query is {len(query):,} characters, limit {MAX_QUERY_CHARS:,}"
            )
        if not 1 <= k <= MAX_K:
            raise InvalidQueryError(f"k must be between 1 and {MAX_K}, got {k}")
        return pipeline

    def _fuse(
        self,
        pipeline: str,
        query: str,
        rows: Sequence[int],
        runs: dict[str, dict[int, float]],
        bm25_all: np.ndarray | None,
        query_vector: np.ndarray | None,
        snapshot: IndexSnapshot,
    ) -> list[Hit]:
        """Fill every component score for every row (of ``snapshot``), fuse, and sort best
        first."""
        row_array = np.asarray(rows, dtype=np.int64)
        if pipeline == "hybrid":
            components: dict[str, dict[int, float]] = {}
            bm25 = (
                bm25_all[row_array]
                if bm25_all is not None
                else np.asarray([runs["bm25"][r] for r in rows])
            )
            dense = (
                snapshot.vectors.scores(query_vector, row_array)
                if query_vector is not None
                else np.asarray([runs["dense"][r] for r in rows])
            )
            components["bm25"] = dict(zip(rows, bm25.tolist(), strict=True))
            components["dense"] = dict(zip(rows, dense.tolist(), strict=True))
            fusion = snapshot.config.fusion
            if fusion.method == "rrf":
                lexical = {r: s for r, s in components["bm25"].items() if s > 0}
                fused = reciprocal_rank_fusion(
                    {"bm25": lexical, "dense": components["dense"]}, fusion.weights, fusion.rrf_k
                )
            else:
                fused = weighted_sum(components, fusion.weights)
            hits = [
                Hit(
                    snapshot.row_ids[r],
                    fused.get(r, 0.0),
                    {
                        "bm25": components["bm25"][r],
                        "dense": components["dense"][r],
                        "fused": fused.get(r, 0.0),
                    },
                )
                for r in rows
            ]
        else:
            run = runs[pipeline]
            hits = [Hit(snapshot.row_ids[r], run[r], {pipeline: run[r]}) for r in rows]
        order = sorted(range(len(hits)), key=lambda i: (-hits[i].score, rows[i]))
        return [hits[i] for i in order]

    def _explain(self, query: str, hits: list[Hit], snapshot: IndexSnapshot) -> list[Hit]:
        """Add per-field BM25 contributions (``bm25.title`` ...) to each hit's scores."""
        rows = np.asarray([snapshot.id_to_row[h.product_id] for h in hits], dtype=np.int64)
        if rows.size == 0:
            return hits
        per_field = snapshot.bm25.field_scores(query, rows)
        return [
            Hit(
                h.product_id,
                h.score,
                {**h.scores, **{f"bm25.{f}": float(v[i]) for f, v in per_field.items()}},
                h.product,
            )
            for i, h in enumerate(hits)
        ]


def _top_rows(scores: np.ndarray, mask: np.ndarray, k: int) -> np.ndarray:
    """Rows with a positive score allowed by ``mask``, best ``k`` first (ties: lower row)."""
    allowed = np.flatnonzero(mask & (scores > 0))
    if allowed.size > k:
        part = np.argpartition(-scores[allowed], k - 1)[:k]
        allowed = allowed[part]
    order = np.lexsort((allowed, -scores[allowed]))
    return allowed[order]


class EvaluablePipelineAdapter:
    """Presents one named pipeline of a :class:`SearchPipeline` to the evaluation harness.

    It takes the judgments' user and session (``takes_context``): only the personal
    pipeline uses them.
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
