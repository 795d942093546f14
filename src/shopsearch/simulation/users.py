"""SIMULATED users: latent shopping preferences sampled from the catalog.

Nothing here describes real people. The bundled ESCI-US sample has no behaviour data, so the
simulator invents users whose tastes are drawn from the products that the judged queries
touch. Each :class:`UserPreferences` holds weights in ``(0, 1]`` for

* 1-2 "home" categories: level-2 category prefixes ("Home & Kitchen > Kitchen & Dining"),
  sampled in proportion to how many judged products they hold. Only categories that are the
  dominant category of at least one judged query (see :func:`query_categories`) are
  candidates, so that every user has "related" queries to issue;
* 1-3 brands and 1-2 colors that occur among the judged products of those categories (in
  proportion to how often they occur);
* a price band around the median price of those products, or ``None`` when none of them has
  a price (most ESCI prices are null).

:func:`preference_match` scores how well a product fits a user, in ``[0, 1]``.

>>> from shopsearch.catalog.schema import Product
>>> user = UserPreferences("sim-u-0001", {"UGG": 1.0}, {"Clothing > Women": 0.5}, {}, None)
>>> preference_match(user, Product(id="p", title="t", brand="ugg", category=("Clothing",)))
0.4
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from shopsearch.catalog.schema import CATEGORY_SEPARATOR, Product
from shopsearch.evaluation.judgments import ESCI_GAINS, Judgment

__all__ = [
    "CATEGORY_DEPTH",
    "MATCH_WEIGHTS",
    "UserPreferences",
    "category_prefix",
    "preference_match",
    "query_categories",
    "sample_users",
]

#: Category paths are cut to this many levels for preferences and query topics.
CATEGORY_DEPTH = 2

#: How much each kind of match contributes to :func:`preference_match` (they sum to 1).
MATCH_WEIGHTS: dict[str, float] = {"brand": 0.4, "category": 0.3, "color": 0.2, "price": 0.1}

#: A query's dominant category must hold more than this share of its Exact products.
DOMINANT_SHARE = 0.5

_WEIGHT_RANGE = (0.5, 1.0)  # latent preference weights are drawn uniformly from this range
_PRICE_BAND_LOW = (0.4, 0.8)  # band = median * U(low range) .. median * U(high range)
_PRICE_BAND_HIGH = (1.25, 2.0)


@dataclass(frozen=True)
class UserPreferences:
    """The latent tastes of one SIMULATED user; every weight is in ``(0, 1]``.

    ``categories`` keys are level-2 category prefixes joined by " > "; ``colors`` keys are
    lower-case; ``price_band`` is ``(low, high)`` inclusive, or ``None``.
    """

    user_id: str
    brands: dict[str, float]
    categories: dict[str, float]
    colors: dict[str, float]
    price_band: tuple[float, float] | None

    def __post_init__(self) -> None:
        for kind in ("brands", "categories", "colors"):
            for key, weight in getattr(self, kind).items():
                if not 0.0 < weight <= 1.0:
                    raise ValueError(f"{kind} weight of {key!r} must be in (0, 1], got {weight}")
        if self.price_band is not None and self.price_band[0] > self.price_band[1]:
            raise ValueError(f"price band {self.price_band} has low > high")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the price band as a list or ``None``)."""
        return {
            "user_id": self.user_id,
            "brands": dict(self.brands),
            "categories": dict(self.categories),
            "colors": dict(self.colors),
            "price_band": list(self.price_band) if self.price_band is not None else None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> UserPreferences:
        """Inverse of :meth:`to_dict`."""
        band = data.get("price_band")
        return cls(
            user_id=str(data["user_id"]),
            brands={str(k): float(v) for k, v in data.get("brands", {}).items()},
            categories={str(k): float(v) for k, v in data.get("categories", {}).items()},
            colors={str(k): float(v) for k, v in data.get("colors", {}).items()},
            price_band=(float(band[0]), float(band[1])) if band is not None else None,
        )


def category_prefix(category: Sequence[str], depth: int = CATEGORY_DEPTH) -> str:
    """The first ``depth`` levels of a category path joined by " > " ("" without one).

    Same as :func:`shopsearch.training.data.category_key` (not imported, to keep this
    package free of model dependencies).
    """
    return CATEGORY_SEPARATOR.join(category[:depth])


def _home_key(product: Product) -> str:
    """The product's level-2 category prefix, or "" when its path is shorter."""
    if len(product.category) < CATEGORY_DEPTH:
        return ""
    return category_prefix(product.category)


def _category_matches(path: str, prefix: str) -> bool:
    """Whether category ``path`` lies under ``prefix`` (whole levels only)."""
    return bool(prefix) and (path == prefix or path.startswith(prefix + CATEGORY_SEPARATOR))


def _color_matches(product_color: str, user_color: str) -> bool:
    """Case-insensitive substring match either way; empty colors never match."""
    a, b = product_color.strip().casefold(), user_color.strip().casefold()
    return bool(a) and bool(b) and (a in b or b in a)


def preference_match(user: UserPreferences, product: Product) -> float:
    """How well ``product`` fits ``user``, in ``[0, 1]``; 0 when nothing matches.

    The :data:`MATCH_WEIGHTS`-weighted sum of: the user's weight for the product's brand
    (case-insensitive), the largest weight of a user category that prefixes the product's
    category path, the largest weight of a user color that matches the product's color
    (case-insensitive substring either way), and 1 when the price lies inside the band.
    """
    brand = product.brand.strip().casefold()
    brand_score = 0.0
    if brand:
        brand_score = max(
            (w for b, w in user.brands.items() if b.strip().casefold() == brand), default=0.0
        )
    path = product.category_path
    category_score = max(
        (w for c, w in user.categories.items() if _category_matches(path, c)), default=0.0
    )
    color_score = max(
        (w for c, w in user.colors.items() if _color_matches(product.color, c)), default=0.0
    )
    price_score = 0.0
    if user.price_band is not None and product.price is not None:
        low, high = user.price_band
        price_score = 1.0 if low <= product.price <= high else 0.0
    total = (
        MATCH_WEIGHTS["brand"] * brand_score
        + MATCH_WEIGHTS["category"] * category_score
        + MATCH_WEIGHTS["color"] * color_score
        + MATCH_WEIGHTS["price"] * price_score
    )
    return round(min(1.0, max(0.0, total)), 12)


def _exact(judgment: Judgment) -> bool:
    """Whether a judgment is Exact (by letter, or a numeric gain at least E's gain)."""
    if judgment.label is not None:
        return judgment.label == "E"
    return judgment.gain >= ESCI_GAINS["E"]


def query_categories(
    judgments: Iterable[Judgment], products_by_id: Mapping[str, Product]
) -> dict[str, str]:
    """``query -> level-2 category`` for queries whose Exact products mostly share one.

    A query gets a category when more than half of its Exact products (those in the
    catalog with at least two category levels) fall in it; other queries are left out
    (they are related to no user).
    """
    exact: dict[str, list[str]] = {}
    for j in judgments:
        exact.setdefault(j.query, [])
        if _exact(j) and j.product_id in products_by_id:
            key = _home_key(products_by_id[j.product_id])
            if key:
                exact[j.query].append(key)
    topics: dict[str, str] = {}
    for query, keys in exact.items():
        if not keys:
            continue
        top, count = Counter(keys).most_common(1)[0]
        if count / len(keys) > DOMINANT_SHARE:
            topics[query] = top
    return topics


def _weighted_pick(rng: np.random.Generator, counts: Counter[str], n: int) -> list[str]:
    """Up to ``n`` distinct keys, drawn without replacement in proportion to their counts."""
    keys = sorted(counts)  # a fixed order, so the draw depends only on the seed
    if not keys or n <= 0:
        return []
    weights = np.asarray([counts[k] for k in keys], dtype=np.float64)
    n = min(n, len(keys))
    picked = rng.choice(len(keys), size=n, replace=False, p=weights / weights.sum())
    return [keys[i] for i in picked]


def _weights(rng: np.random.Generator, keys: list[str]) -> dict[str, float]:
    return {k: round(float(rng.uniform(*_WEIGHT_RANGE)), 3) for k in keys}


def sample_users(
    n: int,
    products: Sequence[Product],
    judgments: Sequence[Judgment],
    seed: int | Sequence[int],
    *,
    id_prefix: str = "sim-u-",
) -> list[UserPreferences]:
    """Sample ``n`` SIMULATED users (ids ``{id_prefix}0001`` ...) from the judged products.

    Deterministic given ``seed`` (a fresh ``numpy.random.default_rng(seed)``; a sequence of
    ints seeds an independent stream, e.g. ``[seed, 2]``). See the module
    docstring for how each preference is drawn.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    rng = np.random.default_rng(seed)
    by_id = {p.id: p for p in products}
    judged = [by_id[pid] for pid in dict.fromkeys(j.product_id for j in judgments) if pid in by_id]
    by_home: dict[str, list[Product]] = {}
    for p in judged:
        if key := _home_key(p):
            by_home.setdefault(key, []).append(p)
    category_counts = Counter({k: len(v) for k, v in by_home.items()})
    topical = set(query_categories(judgments, by_id).values())
    if topical & set(category_counts):
        category_counts = Counter({k: c for k, c in category_counts.items() if k in topical})
    users: list[UserPreferences] = []
    for i in range(1, n + 1):
        homes = _weighted_pick(rng, category_counts, int(rng.integers(1, 3)))
        home_products = [p for h in homes for p in by_home[h]]
        brand_counts = Counter(p.brand.strip() for p in home_products if p.brand.strip())
        color_counts = Counter(p.color.strip().casefold() for p in home_products if p.color.strip())
        brands = _weighted_pick(rng, brand_counts, int(rng.integers(1, 4)))
        colors = _weighted_pick(rng, color_counts, int(rng.integers(1, 3)))
        prices = [p.price for p in home_products if p.price is not None and p.price > 0]
        band: tuple[float, float] | None = None
        if prices:
            median = statistics.median(prices)
            band = (
                round(median * float(rng.uniform(*_PRICE_BAND_LOW)), 2),
                round(median * float(rng.uniform(*_PRICE_BAND_HIGH)), 2),
            )
        users.append(
            UserPreferences(
                user_id=f"{id_prefix}{i:04d}",
                brands=_weights(rng, brands),
                categories=_weights(rng, homes),
                colors=_weights(rng, colors),
                price_band=band,
            )
        )
    return users
