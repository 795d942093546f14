"""SIMULATED shoppers for the ESCI catalog: users, a click model and a session simulator.

Everything in this package produces SIMULATED data. The bundled ESCI-US sample has
queries, products and graded judgments but no behaviour data, so personalized ranking is
trained and evaluated on invented users whose clicks follow a documented position-based click
model. Every file the simulator writes says so (``"simulated": true`` and a ``README.txt``).

* :mod:`.users`: latent user preferences sampled from the catalog, :func:`preference_match`;
* :mod:`.click_model`: examination x attraction clicks, carts and purchases;
* :mod:`.simulator`: sessions, UBI event logs, per-user held-out judgments.

>>> from shopsearch.simulation import SimulationConfig, simulate, write_outputs
>>> result = simulate(SimulationConfig(users=50), products, judgments, rank)  # doctest: +SKIP
>>> write_outputs(result, "runs/simulated")                                 # doctest: +SKIP
"""

from __future__ import annotations

from shopsearch.simulation.click_model import (
    ClickModelConfig,
    PageAction,
    attraction_probability,
    cart_probability,
    esci_letter,
    examination_probability,
    preference_multiplier,
    simulate_page,
)
from shopsearch.simulation.simulator import (
    RankFn,
    SimulatedQuery,
    SimulatedUser,
    SimulationConfig,
    SimulationResult,
    click_through_by_rank,
    pipeline_ranker,
    simulate,
    summarize,
    write_outputs,
)
from shopsearch.simulation.users import (
    UserPreferences,
    preference_match,
    query_categories,
    sample_users,
)

__all__ = [
    "ClickModelConfig",
    "PageAction",
    "RankFn",
    "SimulatedQuery",
    "SimulatedUser",
    "SimulationConfig",
    "SimulationResult",
    "UserPreferences",
    "attraction_probability",
    "cart_probability",
    "click_through_by_rank",
    "esci_letter",
    "examination_probability",
    "pipeline_ranker",
    "preference_match",
    "preference_multiplier",
    "query_categories",
    "sample_users",
    "simulate",
    "simulate_page",
    "summarize",
    "write_outputs",
]
