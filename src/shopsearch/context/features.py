"""Context features of (query, shopper, product) triples, in named groups.

Groups (the unit of ``search --explain``):

- ``retrieval``: BM25, dense and fused scores of the first stage and its rank;
- ``product``: rating, number of ratings, popularity from events;
- ``query``: how well the product's category matches the query's (estimated from the
  categories of the first stage's top results, weighted by their fused score);
- ``user``: long-term affinities to the product's brand, categories, colour, its price
  against the user's band, similarity to the user's history embedding, history size;
- ``session``: the same for the current session.

A shopper without events (cold start) has all ``user``/``session`` features at 0, which is
also what the model sees for the judgments that carry no user.

>>> FEATURES[:3]
('bm25', 'dense', 'fused')
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from shopsearch.catalog.schema import Product
from shopsearch.context.profiles import Profile, facet_values

__all__ = ["FEATURES", "FEATURE_GROUPS", "Candidate", "feature_matrix", "group_of"]

FEATURE_GROUPS: dict[str, tuple[str, ...]] = {
    "retrieval": ("bm25", "dense", "fused", "first_stage_rank"),
    "product": ("rating", "log_rating_count", "popularity"),
    "query": ("query_category_match",),
    "user": (
        "user_brand",
        "user_category1",
        "user_category2",
        "user_color",
        "user_price_fit",
        "user_history_sim",
        "user_history_size",
    ),
    "session": (
        "session_brand",
        "session_category2",
        "session_color",
        "session_history_sim",
        "session_history_size",
    ),
}
FEATURES: tuple[str, ...] = tuple(f for names in FEATURE_GROUPS.values() for f in names)
_INDEX = {name: i for i, name in enumerate(FEATURES)}
#: How many first-stage results estimate the query's category distribution.
QUERY_CATEGORY_DEPTH = 20


def group_of(feature: str) -> str:
    for group, names in FEATURE_GROUPS.items():
        if feature in names:
            return group
    raise KeyError(feature)


@dataclass(frozen=True)
class Candidate:
    """A first-stage result: product id, its scores, and its product (with the vector)."""

    product_id: str
    bm25: float
    dense: float
    fused: float
    product: Product
    vector: np.ndarray | None = None


def _query_categories(candidates: Sequence[Candidate]) -> dict[str, float]:
    """Share of each second-level category among the top results, weighted by fused score."""
    top = candidates[:QUERY_CATEGORY_DEPTH]
    if not top:
        return {}
    scores = np.array([c.fused for c in top], dtype=np.float64)
    spread = scores.std() or 1.0
    weights = np.exp((scores - scores.max()) / spread)
    shares: dict[str, float] = {}
    for c, w in zip(top, weights.tolist(), strict=True):
        key = facet_values(c.product)["category2"]
        if key:
            shares[key] = shares.get(key, 0.0) + w
    total = sum(shares.values())
    return {k: v / total for k, v in shares.items()} if total else {}


def feature_matrix(
    candidates: Sequence[Candidate],
    *,
    user: Profile | None = None,
    session: Profile | None = None,
    popularity: Mapping[str, float] | None = None,
) -> np.ndarray:
    """``(len(candidates), len(FEATURES))`` float32, rows in candidate order (first stage's)."""
    out = np.zeros((len(candidates), len(FEATURES)), dtype=np.float32)
    query_categories = _query_categories(candidates)
    popularity = popularity or {}
    user_size = math.log1p(user.weight) if user is not None and not user.empty else 0.0
    session_size = math.log1p(session.weight) if session is not None and not session.empty else 0.0
    for row, c in enumerate(candidates):
        p = c.product
        values = facet_values(p)
        f = out[row]
        f[_INDEX["bm25"]] = c.bm25
        f[_INDEX["dense"]] = c.dense
        f[_INDEX["fused"]] = c.fused
        f[_INDEX["first_stage_rank"]] = 1.0 / (1.0 + row)
        f[_INDEX["rating"]] = p.rating or 0.0
        f[_INDEX["log_rating_count"]] = math.log1p(p.rating_count or 0)
        f[_INDEX["popularity"]] = math.log1p(popularity.get(c.product_id, 0.0))
        f[_INDEX["query_category_match"]] = query_categories.get(values["category2"], 0.0)
        if user is not None and not user.empty:
            f[_INDEX["user_brand"]] = user.affinity("brand", p.brand)
            f[_INDEX["user_category1"]] = user.affinity("category1", values["category1"])
            f[_INDEX["user_category2"]] = user.affinity("category2", values["category2"])
            f[_INDEX["user_color"]] = user.affinity("color", p.color)
            f[_INDEX["user_price_fit"]] = user.price_fit(p.price)
            f[_INDEX["user_history_sim"]] = user.similarity(c.vector)
            f[_INDEX["user_history_size"]] = user_size
        if session is not None and not session.empty:
            f[_INDEX["session_brand"]] = session.affinity("brand", p.brand)
            f[_INDEX["session_category2"]] = session.affinity("category2", values["category2"])
            f[_INDEX["session_color"]] = session.affinity("color", p.color)
            f[_INDEX["session_history_sim"]] = session.similarity(c.vector)
            f[_INDEX["session_history_size"]] = session_size
    return out
