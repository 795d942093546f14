"""First-stage retrievers: each finds its best rows for the query over the whole catalog
(``retrieve``) and scores any given rows (``score``), so that fusion can give every
candidate every retriever's score.

>>> BM25Retriever().retrieve(state, 100)        # doctest: +SKIP
{412: 17.3, 90: 15.1, ...}
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from shopsearch.errors import InvalidQueryError
from shopsearch.index.snapshot import IndexSnapshot
from shopsearch.index.vector import VectorIndex
from shopsearch.models.encoders import Encoder
from shopsearch.search.state import QueryState

__all__ = [
    "RETRIEVERS",
    "BM25Retriever",
    "DenseRetriever",
    "MultilingualRetriever",
    "Retriever",
    "dense_scores",
]

Run = dict[int, float]


class Retriever(Protocol):
    name: str
    #: whether a row with a score of 0 or less is not a match (left out of rank fusion)
    positive_only: bool

    def retrieve(self, state: QueryState, n: int) -> Run:
        """The best ``n`` rows the state's mask allows, with their scores."""
        ...

    def score(self, state: QueryState, rows: np.ndarray) -> np.ndarray:
        """The scores of ``rows`` (float, one per row)."""
        ...


class BM25Retriever:
    """Per-field BM25 over the lexical index; only rows with a positive score match."""

    name = "bm25"
    positive_only = True

    def retrieve(self, state: QueryState, n: int) -> Run:
        scores = state.bm25_all()
        rows = top_rows(scores, state.mask, n)
        return dict(zip(rows.tolist(), scores[rows].tolist(), strict=True))

    def score(self, state: QueryState, rows: np.ndarray) -> np.ndarray:
        if state.has_bm25_all:
            return state.bm25_all()[rows]
        return np.asarray(state.snapshot.bm25.scores(state.parsed.lexical_text, rows))


class DenseRetriever:
    """Inner product with the query's embedding: exact, or HNSW for large catalogs."""

    name = "dense"
    positive_only = False

    def retrieve(self, state: QueryState, n: int) -> Run:
        vectors, query = self._index(state)
        rows, scores = vectors.search(query, n, state.filter_mask)  # skips deleted rows
        return dict(zip(rows.tolist(), scores.tolist(), strict=True))

    def score(self, state: QueryState, rows: np.ndarray) -> np.ndarray:
        vectors, query = self._index(state)
        return np.asarray(vectors.scores(query, rows))

    @staticmethod
    def _index(state: QueryState) -> tuple[VectorIndex, np.ndarray]:
        """The English vectors and the (translated) query's MiniLM embedding."""
        return state.snapshot.vectors, state.query_vector()


class MultilingualRetriever(DenseRetriever):
    """The query as typed (any language), embedded by multilingual-e5-small, against the
    index's multilingual vectors (``multilingual.enabled``)."""

    name = "mdense"

    @staticmethod
    def _index(state: QueryState) -> tuple[VectorIndex, np.ndarray]:
        vectors = state.snapshot.mvectors
        if vectors is None:
            raise InvalidQueryError(
                "the mdense retriever needs multilingual vectors: shopsearch refresh DIR "
                "--set multilingual.enabled=true"
            )
        return vectors, state.multilingual_vector()


RETRIEVERS: dict[str, type[BM25Retriever] | type[DenseRetriever]] = {
    "bm25": BM25Retriever,
    "dense": DenseRetriever,
    "mdense": MultilingualRetriever,
}


def top_rows(scores: np.ndarray, mask: np.ndarray, k: int) -> np.ndarray:
    """Rows with a positive score allowed by ``mask``, best ``k`` first (ties: lower row)."""
    allowed = np.flatnonzero(mask & (scores > 0))
    if allowed.size > k:
        part = np.argpartition(-scores[allowed], k - 1)[:k]
        allowed = allowed[part]
    order = np.lexsort((allowed, -scores[allowed]))
    return allowed[order]


def dense_scores(
    snapshot: IndexSnapshot, encoder: Encoder, query: str, product_ids: Sequence[str]
) -> np.ndarray:
    """The dense (zero-shot encoder) similarity of ``query`` to each indexed product.

    Raises :class:`InvalidQueryError` for an id that is not in the index.
    """
    unknown = [p for p in product_ids if p not in snapshot.id_to_row]
    if unknown:
        raise InvalidQueryError(f"{len(unknown)} products are not indexed: {unknown[:5]}")
    rows = np.asarray([snapshot.id_to_row[p] for p in product_ids], dtype=np.int64)
    if rows.size == 0:
        return np.zeros(0, dtype=np.float32)
    vector = encoder.encode_queries([query])[0]
    return np.asarray(snapshot.vectors.scores(vector, rows), dtype=np.float32)
