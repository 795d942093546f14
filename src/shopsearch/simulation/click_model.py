"""A position-based click model for SIMULATED users (no real behaviour is modelled here).

The model (Craswell et al., 2008; Chuklin, Markov & de Rijke, "Click Models for Web
Search", 2015) treats a click as two independent events: the user *examines* the result at
its rank, and the result *attracts* the user.

* **Examination** at 1-based rank ``r``: ``exam(r) = 1 / r ** eta`` (``eta`` = 1 by
  default; 0 examines every rank, larger values concentrate attention at the top).
* **Attraction** of a product for a query comes from its ESCI judgment for that query:
  E 0.8, S 0.3, C 0.15, I 0.02, unjudged 0.02 (all configurable). For *relevant* products
  (E, S, C) it is multiplied by the user's preference multiplier ``1 + match`` (``match`` =
  :func:`~shopsearch.simulation.users.preference_match`, in ``[0, 1]``, so at most x2) and
  capped at 0.95. Irrelevant and unjudged products keep the floor whatever the user likes:
  taste re-orders relevant products, it never makes an irrelevant one attractive.
* **Click** = examined and attracted (two independent Bernoulli draws per shown product).
* After a click: **add to cart** with ``p_cart`` (0.3; times ``1 + match`` for relevant
  products, capped at 0.95), then **purchase** given the cart with ``p_buy`` (0.4).
* An **impression** is logged for every shown product (the top 10 by default).

Every function is pure given an explicit ``numpy.random.Generator``: the same seed gives the
same clicks.

>>> config = ClickModelConfig()
>>> round(examination_probability(2, config.eta), 2), attraction_probability("E", 1.0, config)
(0.5, 0.95)
>>> attraction_probability("I", 1.0, config), attraction_probability(None, 1.0, config)
(0.02, 0.02)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from shopsearch.evaluation.judgments import ESCI_GAINS, Judgment

__all__ = [
    "ACTIONS",
    "DEFAULT_ATTRACTION",
    "RELEVANT_LABELS",
    "ClickModelConfig",
    "PageAction",
    "attraction_probability",
    "cart_probability",
    "esci_letter",
    "examination_probability",
    "preference_multiplier",
    "simulate_page",
]

#: The UBI action names the simulator logs, in the order they can happen to one product.
ACTIONS = ("impression", "click", "add_to_cart", "purchase")

#: ESCI labels whose attraction (and ideal order) the user's taste may change.
RELEVANT_LABELS = frozenset({"E", "S", "C"})

#: Default attraction probability per ESCI label.
DEFAULT_ATTRACTION: dict[str, float] = {"E": 0.8, "S": 0.3, "C": 0.15, "I": 0.02}


def _check_probability(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value}")


@dataclass(frozen=True)
class ClickModelConfig:
    """Parameters of the position-based click model (see the module docstring)."""

    eta: float = 1.0
    attraction: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_ATTRACTION))
    unjudged_attraction: float = 0.02
    max_attraction: float = 0.95
    p_cart: float = 0.3
    max_cart: float = 0.95
    p_buy: float = 0.4

    def __post_init__(self) -> None:
        if self.eta < 0:
            raise ValueError(f"eta must be >= 0, got {self.eta}")
        missing = set(DEFAULT_ATTRACTION) - set(self.attraction)
        if missing:
            raise ValueError(f"attraction lacks labels {sorted(missing)}")
        for label, value in self.attraction.items():
            _check_probability(f"attraction[{label!r}]", value)
        for name in ("unjudged_attraction", "max_attraction", "p_cart", "max_cart", "p_buy"):
            _check_probability(name, getattr(self, name))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of the parameters."""
        return {
            "model": "position-based (examination x attraction)",
            "eta": self.eta,
            "examination": "1 / rank ** eta",
            "attraction": dict(self.attraction),
            "unjudged_attraction": self.unjudged_attraction,
            "max_attraction": self.max_attraction,
            "preference_multiplier": "1 + preference_match, relevant (E/S/C) products only",
            "p_cart": self.p_cart,
            "max_cart": self.max_cart,
            "p_buy": self.p_buy,
        }


@dataclass(frozen=True, slots=True)
class PageAction:
    """One simulated action on a result page: ``position`` is the 1-based rank."""

    action: str
    product_id: str
    position: int


def esci_letter(judgment: Judgment | None) -> str | None:
    """The ESCI letter of a judgment (a numeric gain maps to the nearest ESCI gain, ties to
    the more relevant label); ``None`` for an unjudged product."""
    if judgment is None:
        return None
    if judgment.label in ESCI_GAINS:
        return judgment.label
    letters = ("E", "S", "C", "I")
    distances = [abs(judgment.gain - ESCI_GAINS[letter]) for letter in letters]
    return letters[distances.index(min(distances))]


def examination_probability(rank: int, eta: float = 1.0) -> float:
    """``1 / rank ** eta``: the chance a user looks at the result at 1-based ``rank``."""
    if rank < 1:
        raise ValueError(f"rank is 1-based, got {rank}")
    return 1.0 / float(rank) ** eta


def preference_multiplier(label: str | None, match: float) -> float:
    """``1 + match`` (match clipped to ``[0, 1]``) for relevant labels, else exactly 1."""
    if label not in RELEVANT_LABELS:
        return 1.0
    return 1.0 + min(1.0, max(0.0, match))


def attraction_probability(label: str | None, match: float, config: ClickModelConfig) -> float:
    """Attraction of a product judged ``label`` (``None``: unjudged) for a user with ``match``.

    Relevant products: ``min(max_attraction, base * (1 + match))``; irrelevant and unjudged
    products: their base attraction, unchanged by ``match``.
    """
    if label is None:
        return config.unjudged_attraction
    base = config.attraction[label]
    if label not in RELEVANT_LABELS:
        return base
    return min(config.max_attraction, base * preference_multiplier(label, match))


def cart_probability(label: str | None, match: float, config: ClickModelConfig) -> float:
    """Chance of adding a clicked product to the cart: ``p_cart``, times ``1 + match`` for a
    relevant product, capped at ``max_cart``."""
    return min(config.max_cart, config.p_cart * preference_multiplier(label, match))


def simulate_page(
    product_ids: Sequence[str],
    labels: Mapping[str, str | None],
    matches: Mapping[str, float],
    rng: np.random.Generator,
    config: ClickModelConfig,
) -> list[PageAction]:
    """Simulate one user on one result page (``product_ids`` best first).

    ``labels`` gives each shown product's ESCI letter for the query (missing: unjudged) and
    ``matches`` its :func:`~shopsearch.simulation.users.preference_match` for the user
    (missing: 0). Returns every impression (in rank order), then, for each clicked product in
    rank order, its click, add_to_cart and purchase. Two uniform draws are taken per shown
    product (examination, attraction), then one per click (cart) and one per cart (purchase).
    """
    actions = [PageAction("impression", pid, rank) for rank, pid in enumerate(product_ids, 1)]
    for rank, pid in enumerate(product_ids, 1):
        label = labels.get(pid)
        match = matches.get(pid, 0.0)
        examined = rng.random() < examination_probability(rank, config.eta)
        attracted = rng.random() < attraction_probability(label, match, config)
        if not (examined and attracted):
            continue
        actions.append(PageAction("click", pid, rank))
        if rng.random() < cart_probability(label, match, config):
            actions.append(PageAction("add_to_cart", pid, rank))
            if rng.random() < config.p_buy:
                actions.append(PageAction("purchase", pid, rank))
    return actions
