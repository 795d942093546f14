"""The last stage: shape the results the caller asked for. Documents (the products) on the
hits, per-field BM25 contributions with ``explain``, and facet counts over every candidate
the query retrieved."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from shopsearch.catalog.schema import Product
from shopsearch.search.state import QueryState
from shopsearch.search.types import Hit

__all__ = ["attach_documents", "explain", "facets", "shape"]

Documents = Callable[[Sequence[str]], Mapping[str, Product]]


def attach_documents(hits: list[Hit], documents: Documents) -> list[Hit]:
    """The hits with their products (fetched only for those that lack one)."""
    missing = [h.product_id for h in hits if h.product is None]
    if not missing:
        return hits
    docs = documents(missing)
    return [
        h if h.product is not None else Hit(h.product_id, h.score, h.scores, docs.get(h.product_id))
        for h in hits
    ]


def explain(state: QueryState, hits: list[Hit]) -> list[Hit]:
    """Add per-field BM25 contributions (``bm25.title`` ...) to each hit's scores."""
    snapshot = state.snapshot
    rows = np.asarray([snapshot.id_to_row[h.product_id] for h in hits], dtype=np.int64)
    if rows.size == 0:
        return hits
    per_field = snapshot.bm25.field_scores(state.parsed.lexical_text, rows)
    return [
        Hit(
            h.product_id,
            h.score,
            {**h.scores, **{f"bm25.{f}": float(v[i]) for f, v in per_field.items()}},
            h.product,
        )
        for i, h in enumerate(hits)
    ]


def facets(state: QueryState, rows: Sequence[int]) -> dict[str, list[tuple[str, int]]]:
    """Facet counts over the candidate rows, under the request's filters."""
    return state.snapshot.columns.facets(np.asarray(rows, dtype=np.int64), state.filters)


def shape(state: QueryState, hits: list[Hit], documents: Documents) -> list[Hit]:
    """Documents when asked for (else none), explanations with ``explain``."""
    request = state.request
    if request.products:
        hits = attach_documents(hits, documents)
    else:
        hits = [h if h.product is None else Hit(h.product_id, h.score, h.scores) for h in hits]
    if request.explain:
        hits = explain(state, hits)
    return hits
