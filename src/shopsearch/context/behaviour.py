"""What shoppers did after a query: action-weighted interactions per (query, product).

The strongest behavioural signal for a query seen before is what other shoppers clicked,
added to cart and bought among its results (like "click-through rate per query-product").
It is exactly 0 for a query nobody has logged, which is how the personalized stage knows
to fall back on the first stage. ``exclude_client`` leaves one shopper's own actions out,
so training rows never see their own labels as a feature.

>>> from shopsearch.context.profiles import SimpleEvent
>>> b = QueryBehaviour.from_events([
...     ("Red Shoes", "u1", SimpleEvent("purchase", "p1")),
...     ("red  shoes", "u2", SimpleEvent("click", "p1")),
... ])
>>> b.weights("RED SHOES", ["p1", "p2"]).tolist()
[6.0, 0.0]
>>> b.weights("red shoes", ["p1"], exclude_client="u1").tolist()
[1.0]
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from shopsearch.context.profiles import ACTION_WEIGHTS

__all__ = ["QueryBehaviour", "normalise_query"]


def normalise_query(query: str) -> str:
    return " ".join(query.casefold().split())


class QueryBehaviour:
    """Weighted interactions per normalised query and product, with a per-shopper split."""

    def __init__(self) -> None:
        self._total: dict[str, dict[str, float]] = {}
        self._by_client: dict[tuple[str, str], dict[str, float]] = {}

    @classmethod
    def from_events(
        cls,
        rows: Iterable[tuple[str, str, Any]],
        action_weights: Mapping[str, float] = ACTION_WEIGHTS,
    ) -> QueryBehaviour:
        """``rows``: ``(query text, client id, event)`` for every logged event."""
        out = cls()
        for query, client, event in rows:
            weight = action_weights.get(event.action_name, 0.0)
            if weight <= 0.0:
                continue
            q = normalise_query(query)
            products = out._total.setdefault(q, {})
            products[event.object_id] = products.get(event.object_id, 0.0) + weight
            split = out._by_client.setdefault((q, event.object_id), {})
            split[client] = split.get(client, 0.0) + weight
        return out

    @classmethod
    def from_store(
        cls, store: Any, action_weights: Mapping[str, float] = ACTION_WEIGHTS
    ) -> QueryBehaviour:
        """From an event store: every non-impression event joined with its query's text."""
        texts: dict[str, str | None] = {}

        def rows() -> Iterable[tuple[str, str, Any]]:
            actions = [a for a, w in action_weights.items() if w > 0]
            for event in store.iter_events(actions=actions):
                if event.query_id not in texts:
                    record = store.query(event.query_id)
                    texts[event.query_id] = record.user_query if record is not None else None
                text = texts[event.query_id]
                if text is not None:
                    yield text, event.client_id, event

        return cls.from_events(rows(), action_weights)

    def knows(self, query: str) -> bool:
        """Whether anyone interacted with a result of this query."""
        return normalise_query(query) in self._total

    def weights(
        self, query: str, product_ids: Sequence[str], *, exclude_client: str | None = None
    ) -> np.ndarray:
        q = normalise_query(query)
        products = self._total.get(q, {})
        out = np.array([products.get(p, 0.0) for p in product_ids], dtype=np.float64)
        if exclude_client is not None and products:
            for i, p in enumerate(product_ids):
                own = self._by_client.get((q, p), {}).get(exclude_client, 0.0)
                out[i] -= own
        return np.maximum(out, 0.0)
