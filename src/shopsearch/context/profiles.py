"""Shopper profiles built from behaviour events: what a user (or a session) leans towards.

A profile holds, for each facet (brand, first and second category level, colour), the share
of the shopper's decayed, action-weighted interactions that went to each value; a price band
(weighted mean and spread of log prices); and a history embedding: the decayed, weighted
mean of the dense vectors of the products interacted with (unit length).

Weights: each event counts ``action_weights[action] * 0.5 ** (age / half_life)``, where the
age is measured from ``now`` (the time of the query being answered). Impressions weigh 0 by
default: being shown a product says nothing about taste.

>>> from shopsearch.catalog.schema import Product
>>> p = Product(id="a", title="Run shoe", brand="Nike", category=("Shoes", "Running"))
>>> e = SimpleEvent("click", "a", timestamp=0.0)
>>> profile = build_profile([e], {"a": p}, now=0.0)
>>> profile.affinity("brand", "nike"), profile.affinity("category2", "Shoes > Running")
(1.0, 1.0)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from shopsearch.catalog.schema import Product
from shopsearch.text.normalize import key

__all__ = [
    "ACTION_WEIGHTS",
    "FACETS",
    "Profile",
    "ProfileConfig",
    "SimpleEvent",
    "build_profile",
    "build_profiles",
    "facet_values",
]

#: How much one event of each action says about taste.
ACTION_WEIGHTS: dict[str, float] = {
    "impression": 0.0,
    "click": 1.0,
    "add_to_cart": 3.0,
    "purchase": 5.0,
}
FACETS = ("brand", "category1", "category2", "color")

#: ``vectors(product_ids) -> (n, dim)`` unit vectors, or ``None`` rows for unknown ids.
VectorLookup = Callable[[Sequence[str]], np.ndarray | None]


class Event(Protocol):
    """What a profile reads from an event (``shopsearch.events.EventRecord`` has it)."""

    @property
    def action_name(self) -> str: ...

    @property
    def object_id(self) -> str: ...

    @property
    def timestamp(self) -> float: ...


@dataclass(frozen=True)
class SimpleEvent:
    """A minimal event, for tests and for inline session events sent with a search."""

    action_name: str
    object_id: str
    timestamp: float = 0.0


@dataclass(frozen=True)
class ProfileConfig:
    """Time decay and action weights (long-term: days; session: minutes)."""

    half_life_days: float = 30.0
    session_half_life_minutes: float = 30.0
    action_weights: Mapping[str, float] = field(default_factory=lambda: dict(ACTION_WEIGHTS))

    @property
    def user_half_life_s(self) -> float:
        return self.half_life_days * 86_400.0

    @property
    def session_half_life_s(self) -> float:
        return self.session_half_life_minutes * 60.0


@dataclass
class Profile:
    """Affinities per facet (shares summing to 1 over a facet's values), price band, vector."""

    weight: float = 0.0
    events: int = 0
    affinities: dict[str, dict[str, float]] = field(default_factory=dict)
    log_price: tuple[float, float] | None = None  # weighted mean and std of log(price)
    embedding: np.ndarray | None = None

    @property
    def empty(self) -> bool:
        return self.weight <= 0.0

    def affinity(self, facet: str, value: str) -> float:
        """Share of the interactions that went to ``value`` (normalised like the profile)."""
        if not value:
            return 0.0
        return self.affinities.get(facet, {}).get(_normalise(facet, value), 0.0)

    def price_fit(self, price: float | None) -> float:
        """exp(-z^2 / 2) of the price's z-score in the profile's log-price band; 0 if unknown."""
        if price is None or price <= 0 or self.log_price is None:
            return 0.0
        mean, std = self.log_price
        z = (math.log(price) - mean) / max(std, 0.25)
        return math.exp(-0.5 * z * z)

    def similarity(self, vector: np.ndarray | None) -> float:
        """Cosine of the history embedding and a unit product vector (0 without either)."""
        if self.embedding is None or vector is None:
            return 0.0
        return float(self.embedding @ vector)


def _normalise(facet: str, value: str) -> str:
    """Brand and colour by their key (as facets and filters group them); categories as-is."""
    return value if facet.startswith("category") else key(value)


def facet_values(product: Product) -> dict[str, str]:
    """The product's value for each facet ('' when it has none)."""
    category = product.category
    return {
        "brand": _normalise("brand", product.brand),
        "category1": category[0] if category else "",
        "category2": " > ".join(category[:2]) if len(category) >= 2 else "",
        "color": _normalise("color", product.color),
    }


def build_profile(
    events: Iterable[Event],
    products: Mapping[str, Product],
    *,
    now: float,
    half_life_s: float = 30 * 86_400.0,
    action_weights: Mapping[str, float] = ACTION_WEIGHTS,
    vectors: VectorLookup | None = None,
) -> Profile:
    """One profile from ``events`` (those after ``now`` are ignored: no peeking ahead).

    Events of unknown products or actions with weight 0 add nothing.
    """
    weights: dict[str, float] = {}
    count = 0
    for event in events:
        if event.timestamp > now or event.object_id not in products:
            continue
        base = action_weights.get(event.action_name, 0.0)
        if base <= 0.0:
            continue
        age = now - event.timestamp
        w = base * 0.5 ** (age / half_life_s) if half_life_s > 0 else base
        weights[event.object_id] = weights.get(event.object_id, 0.0) + w
        count += 1
    profile = Profile(events=count)
    total = sum(weights.values())
    if total <= 0.0:
        return profile
    profile.weight = total
    affinities: dict[str, dict[str, float]] = {facet: {} for facet in FACETS}
    prices: list[tuple[float, float]] = []
    for product_id, w in weights.items():
        product = products[product_id]
        for facet, value in facet_values(product).items():
            if value:
                bucket = affinities[facet]
                bucket[value] = bucket.get(value, 0.0) + w / total
        if product.price is not None and product.price > 0:
            prices.append((math.log(product.price), w))
    profile.affinities = {facet: values for facet, values in affinities.items() if values}
    if prices:
        logs = np.array([p for p, _ in prices])
        ws = np.array([w for _, w in prices])
        mean = float(np.average(logs, weights=ws))
        std = float(np.sqrt(np.average((logs - mean) ** 2, weights=ws)))
        profile.log_price = (mean, std)
    if vectors is not None:
        ids = list(weights)
        matrix = vectors(ids)
        if matrix is not None and len(matrix):
            w = np.array([weights[i] for i in ids], dtype=np.float32)
            mean_vector = (matrix * w[:, None]).sum(axis=0)
            norm = float(np.linalg.norm(mean_vector))
            if norm > 0:
                profile.embedding = (mean_vector / norm).astype(np.float32)
    return profile


def build_profiles(
    events: Iterable[Event],
    products: Mapping[str, Product],
    *,
    key: Callable[[Event], str | None],
    now: float,
    half_life_s: float = 30 * 86_400.0,
    action_weights: Mapping[str, float] = ACTION_WEIGHTS,
    vectors: VectorLookup | None = None,
) -> dict[str, Profile]:
    """Profiles of many shoppers at once: ``key(event)`` names whose profile an event feeds."""
    grouped: dict[str, list[Event]] = {}
    for event in events:
        owner = key(event)
        if owner:
            grouped.setdefault(owner, []).append(event)
    return {
        owner: build_profile(
            evs,
            products,
            now=now,
            half_life_s=half_life_s,
            action_weights=action_weights,
            vectors=vectors,
        )
        for owner, evs in grouped.items()
    }
