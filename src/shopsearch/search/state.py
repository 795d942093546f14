"""What one search knows while its stages run.

A :class:`QueryState` holds the request, the one snapshot the search reads from start to
end (a write meanwhile swaps in a new snapshot for later searches, never for this one), the
parsed query, the filter mask, and per-query values that several stages need and that cost
something to compute (the BM25 scores of every row, the query's dense vector): each is
computed once, by whichever stage asks first.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from shopsearch.index.filters import Filters
from shopsearch.index.snapshot import IndexSnapshot
from shopsearch.models.encoders import Encoder
from shopsearch.query import ParsedQuery
from shopsearch.search.types import SearchRequest

__all__ = ["QueryState"]


@dataclass
class QueryState:
    request: SearchRequest
    parsed: ParsedQuery
    snapshot: IndexSnapshot
    encoder: Encoder
    #: "search" (retrieve from the whole catalog) or "rank" (order given candidates)
    mode: str = "search"
    _filter_mask: np.ndarray | None = None
    _mask: np.ndarray | None = None
    _bm25_all: np.ndarray | None = None
    _query_vector: np.ndarray | None = field(default=None, repr=False)
    _multilingual_vector: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.mode == "search":
            mask = self.snapshot.columns.mask(self.filters)
            bm25 = self.snapshot.bm25
            for word in self.parsed.excluded:  # "-word": rows that contain it are out
                has = bm25.rows_with_all(word)
                mask = ~has if mask is None else mask & ~has
            for phrase in self.parsed.phrases:  # '"a phrase"': rows with all its words
                has = bm25.rows_with_all(phrase)
                mask = has if mask is None else mask & has
            self._filter_mask = mask
            live = self.snapshot.live_mask
            self._mask = live if mask is None else live & mask

    @property
    def filters(self) -> Filters:
        """The request's filters, with the price constraint of the query text where the
        request sets no price itself (an explicit filter wins)."""
        filters, price = self.request.filters, self.parsed.price
        if price is None or filters.price_min is not None or filters.price_max is not None:
            return filters
        return replace(filters, price_min=price.min, price_max=price.max)

    @property
    def text(self) -> str:
        """The text retrievers and rerankers match."""
        return self.parsed.text

    @property
    def filter_mask(self) -> np.ndarray | None:
        """Rows the filters and the query's operators allow (``None``: no filters)."""
        return self._filter_mask

    @property
    def mask(self) -> np.ndarray:
        """Rows a search may return: live and allowed by the filters."""
        assert self._mask is not None, "only searches have a mask"
        return self._mask

    def bm25_all(self) -> np.ndarray:
        """The BM25 score of every row (computed once)."""
        if self._bm25_all is None:
            self._bm25_all = self.snapshot.bm25.scores(self.parsed.lexical_text)
        return self._bm25_all

    @property
    def has_bm25_all(self) -> bool:
        return self._bm25_all is not None

    def multilingual_vector(self) -> np.ndarray:
        """The query as typed, embedded by the multilingual encoder (once)."""
        if self._multilingual_vector is None:
            from shopsearch.models.multilingual import load_multilingual

            raw = " ".join(self.parsed.raw.split())
            self._multilingual_vector = load_multilingual().encode_queries([raw])[0]
        return self._multilingual_vector

    @property
    def has_query_vector(self) -> bool:
        return self._query_vector is not None

    def query_vector(self) -> np.ndarray:
        """The query's dense vector (encoded once)."""
        if self._query_vector is None:
            self._query_vector = self.encoder.encode_queries([self.text])[0]
        return self._query_vector
