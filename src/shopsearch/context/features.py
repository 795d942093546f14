"""Context features of (query, shopper, product) triples, in named groups.

Groups (the unit of ``search --explain``):

- ``retrieval``: BM25, dense and fused scores of the first stage and its rank;
- ``product``: rating and number of ratings;
- ``behaviour``: what shoppers did after this same query (action-weighted interactions with
  the product, and its share of all the query's interactions); 0 for a query never logged.
  A query-independent popularity was tried and dropped: learned on logged queries, it
  ranked unseen queries far below the first stage (nDCG@10 0.662 -> 0.444);
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

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from shopsearch.catalog.schema import Product
from shopsearch.context.profiles import Profile, facet_values

__all__ = ["FEATURES", "FEATURE_GROUPS", "Candidate", "feature_matrix", "group_of"]

FEATURE_GROUPS: dict[str, tuple[str, ...]] = {
    "retrieval": ("bm25", "dense", "fused", "first_stage_rank"),
    "product": ("rating", "log_rating_count"),
    "behaviour": ("query_interactions", "query_interaction_share"),
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
    behaviour: Sequence[float] | np.ndarray | None = None,
) -> np.ndarray:
    """``(len(candidates), len(FEATURES))`` float32, rows in candidate order (first stage's).

    ``behaviour``: the action-weighted interactions of earlier shoppers with each candidate
    after the same query (:class:`~shopsearch.context.behaviour.QueryBehaviour`).
    """
    out = np.zeros((len(candidates), len(FEATURES)), dtype=np.float32)
    query_categories = _query_categories(candidates)
    if behaviour is not None and len(behaviour):
        weights = np.asarray(behaviour, dtype=np.float64)
        out[:, _INDEX["query_interactions"]] = np.log1p(weights)
        total = weights.sum()
        if total > 0:
            out[:, _INDEX["query_interaction_share"]] = weights / total
    user_size = math.log1p(user.weight) if user is not None and not user.empty else 0.0
    session_size = math.log1p(session.weight) if session is not None and not session.empty else 0.0
    facets = [_facets(c.product.brand, c.product.color, c.product.category) for c in candidates]
    for row, c in enumerate(candidates):
        p = c.product
        f = out[row]
        f[_INDEX["bm25"]] = c.bm25
        f[_INDEX["dense"]] = c.dense
        f[_INDEX["fused"]] = c.fused
        f[_INDEX["first_stage_rank"]] = 1.0 / (1.0 + row)
        f[_INDEX["rating"]] = p.rating or 0.0
        f[_INDEX["log_rating_count"]] = math.log1p(p.rating_count or 0)
        f[_INDEX["query_category_match"]] = query_categories.get(facets[row]["category2"], 0.0)
    if user is not None and not user.empty:
        _personal_columns(out, "user", user, candidates, facets, USER_FACETS)
        out[:, _INDEX["user_price_fit"]] = [user.price_fit(c.product.price) for c in candidates]
        out[:, _INDEX["user_history_size"]] = user_size
    if session is not None and not session.empty:
        _personal_columns(out, "session", session, candidates, facets, SESSION_FACETS)
        out[:, _INDEX["session_history_size"]] = session_size
    return out


USER_FACETS = ("brand", "category1", "category2", "color")
SESSION_FACETS = ("brand", "category2", "color")


@functools.lru_cache(maxsize=200_000)
def _facets(brand: str, color: str, category: tuple[str, ...]) -> dict[str, str]:
    return facet_values(Product(id="", title="", brand=brand, color=color, category=category))


def _personal_columns(
    out: np.ndarray,
    prefix: str,
    profile: Profile,
    candidates: Sequence[Candidate],
    facets: Sequence[dict[str, str]],
    names: Sequence[str],
) -> None:
    """Affinity columns (``{prefix}_{facet}``) and the history similarity of one profile."""
    for facet in names:
        shares = profile.affinities.get(facet, {})
        if shares:
            column = _INDEX[f"{prefix}_{facet}"]
            out[:, column] = [shares.get(values[facet], 0.0) for values in facets]
    if profile.embedding is not None:
        rows = [i for i, c in enumerate(candidates) if c.vector is not None]
        if rows:
            matrix = np.stack([candidates[i].vector for i in rows])
            out[rows, _INDEX[f"{prefix}_history_sim"]] = matrix @ profile.embedding
