"""Run SIMULATED users over a real catalog and write UBI logs and per-user judgments.

Everything this module produces is SIMULATED: invented users (:mod:`.users`) searching the
judged ESCI queries and clicking according to a position-based click model
(:mod:`.click_model`). It exists because the bundled ESCI-US sample has no behaviour data,
and personalized ranking needs some to be trained and evaluated on. Never present its
output as real user behaviour.

How a simulation runs (:func:`simulate`):

1. ``users`` users are sampled (:func:`~.users.sample_users`), and a seeded
   ``test_user_share`` of them become *test users*; ``cold_start_users`` more users
   (``sim-cold-0001`` ...) are sampled separately.
2. Each user has ``sessions_per_user`` sessions, spread over ``period_days`` days before
   ``start_epoch`` (session ``i`` starts in the first half of the ``i``-th equal slice of
   the period, so sessions are chronological and never overlap). The last
   ``holdout_sessions`` sessions are *held out*. Cold-start users have only held-out
   sessions.
3. Each session issues ``queries_per_session`` (inclusive range) judged queries. A query is
   *related* to a user when its dominant category (:func:`~.users.query_categories`) is one
   of the user's home categories. Exactly ``ceil(unrelated_query_share * n)`` of a user's
   ``n`` queries (at seeded random positions) are drawn uniformly from the judged queries
   that are NOT related to the user; the others uniformly from the related ones. So every
   user's unrelated share is at least ``unrelated_query_share`` and every user with a
   query has an unrelated one (if the user has no related queries, all are unrelated; if
   every judged query is related, all are related).
4. Each query is ranked by the ``rank`` callback (the top ``k_shown`` products are shown)
   and the click model draws impressions, clicks, carts and purchases. The query is logged
   at its timestamp, impressions one second later, and each click, cart and purchase a few
   seeded seconds after the previous action; the next query of the session follows 10-90 s
   after the last action.

What is written (:func:`write_outputs`), every record marked simulated:

* ``events.jsonl``: UBI query and event records of the *training* sessions of *train*
  users, sorted by timestamp;
* ``events_test_users.jsonl``: the same for test users (users never seen in training:
  build their profiles from this file);
* ``holdout_judgments.jsonl``: per-user graded judgments of every held-out query (all users,
  cold-start included), readable by :func:`shopsearch.evaluation.judgments.load_judgments`.
  A user's repeated held-out query is judged once (its first occurrence), because that
  loader keys judgments by ``(query, user_id, product_id)``;
* ``holdout_context.jsonl``: one line per judged held-out query, with the UBI records of
  the earlier queries of the same session (empty for a session's first query and for
  cold-start users, who have no events at all);
* ``users.json``: the latent preferences, the config, the click model and a summary;
* ``README.txt``: all of the above in words.

>>> products, judgments = ..., ...                                         # doctest: +SKIP
>>> result = simulate(SimulationConfig(users=50), products, judgments, my_rank)  # doctest: +SKIP
>>> write_outputs(result, "runs/simulated")                                # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
import textwrap
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from shopsearch.catalog.schema import Product
from shopsearch.evaluation.judgments import Judgment
from shopsearch.progress import NULL_PROGRESS, Progress
from shopsearch.simulation.click_model import (
    ACTIONS,
    DEFAULT_ATTRACTION,
    ClickModelConfig,
    esci_letter,
    preference_multiplier,
    simulate_page,
)
from shopsearch.simulation.users import (
    UserPreferences,
    preference_match,
    query_categories,
    sample_users,
)

if TYPE_CHECKING:
    from shopsearch.pipeline import SearchPipeline

__all__ = [
    "APPLICATION",
    "OUTPUT_FILES",
    "RankFn",
    "SimulatedQuery",
    "SimulatedUser",
    "SimulationConfig",
    "SimulationResult",
    "click_through_by_rank",
    "pipeline_ranker",
    "simulate",
    "summarize",
    "write_outputs",
]

#: ``rank(query, user_id, session_id, k) -> product ids, best first``.
RankFn = Callable[[str, str, str, int], list[str]]

#: The UBI ``application`` of every simulated query record.
APPLICATION = "shopsearch-simulator"

#: The files :func:`write_outputs` writes.
OUTPUT_FILES = (
    "README.txt",
    "users.json",
    "events.jsonl",
    "events_test_users.jsonl",
    "holdout_judgments.jsonl",
    "holdout_context.jsonl",
)

GROUPS = ("train", "test", "cold_start")
_DAY = 86_400
_GAIN_DIGITS = 6


@dataclass(frozen=True)
class SimulationConfig:
    """Everything that determines a simulation; the same config gives the same output."""

    users: int = 200
    sessions_per_user: int = 6
    queries_per_session: tuple[int, int] = (1, 3)
    holdout_sessions: int = 2
    unrelated_query_share: float = 0.3
    k_shown: int = 10
    seed: int = 13
    eta: float = 1.0
    attraction: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_ATTRACTION))
    unjudged_attraction: float = 0.02
    max_attraction: float = 0.95
    p_cart: float = 0.3
    p_buy: float = 0.4
    period_days: float = 30.0
    start_epoch: int = 1_790_000_000
    test_user_share: float = 0.3
    cold_start_users: int = 20

    def __post_init__(self) -> None:
        object.__setattr__(self, "queries_per_session", tuple(self.queries_per_session))
        low, high = self.queries_per_session
        checks = [
            (self.users >= 0, f"users must be >= 0, got {self.users}"),
            (
                self.sessions_per_user >= 1,
                f"sessions_per_user must be >= 1, got {self.sessions_per_user}",
            ),
            (
                0 <= self.holdout_sessions <= self.sessions_per_user,
                f"holdout_sessions must be in [0, sessions_per_user={self.sessions_per_user}], "
                f"got {self.holdout_sessions}",
            ),
            (
                1 <= low <= high,
                f"queries_per_session must be (low, high) with 1 <= low <= high, "
                f"got {self.queries_per_session}",
            ),
            (
                0.0 <= self.unrelated_query_share <= 1.0,
                f"unrelated_query_share must be in [0, 1], got {self.unrelated_query_share}",
            ),
            (self.k_shown >= 1, f"k_shown must be >= 1, got {self.k_shown}"),
            (self.seed >= 0, f"seed must be >= 0, got {self.seed}"),
            (self.period_days > 0, f"period_days must be > 0, got {self.period_days}"),
            (
                0.0 <= self.test_user_share <= 1.0,
                f"test_user_share must be in [0, 1], got {self.test_user_share}",
            ),
            (
                self.cold_start_users >= 0,
                f"cold_start_users must be >= 0, got {self.cold_start_users}",
            ),
            (
                self.cold_start_users == 0 or self.holdout_sessions >= 1,
                "cold-start users need holdout_sessions >= 1 (they have only held-out sessions)",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
        self.click_model()  # validates the click-model parameters

    def click_model(self) -> ClickModelConfig:
        """The click-model parameters of this config."""
        return ClickModelConfig(
            eta=self.eta,
            attraction=dict(self.attraction),
            unjudged_attraction=self.unjudged_attraction,
            max_attraction=self.max_attraction,
            p_cart=self.p_cart,
            p_buy=self.p_buy,
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        data = asdict(self)
        data["queries_per_session"] = list(self.queries_per_session)
        return data


@dataclass(frozen=True)
class SimulatedUser:
    """One SIMULATED user: latent preferences, group (train/test/cold_start) and query pool."""

    preferences: UserPreferences
    group: str
    related_queries: int  # how many judged queries are related to the user's categories

    @property
    def user_id(self) -> str:
        return self.preferences.user_id


@dataclass(frozen=True)
class SimulatedQuery:
    """One SIMULATED query a user issued; ``related`` to the user's home categories or not."""

    query_id: str
    user_id: str
    session_id: str
    query: str
    related: bool
    holdout: bool
    timestamp: int  # Unix seconds


@dataclass
class SimulationResult:
    """The output of :func:`simulate` (all of it SIMULATED)."""

    config: SimulationConfig
    users: list[SimulatedUser]
    queries: list[SimulatedQuery]
    train_events: list[dict[str, Any]]  # events.jsonl
    test_user_events: list[dict[str, Any]]  # events_test_users.jsonl
    holdout_judgments: list[dict[str, Any]]
    holdout_context: list[dict[str, Any]]


def _iso(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class _Ids:
    """Deterministic query and event ids, in generation order."""

    def __init__(self) -> None:
        self.queries = 0
        self.events = 0

    def query(self) -> str:
        self.queries += 1
        return f"sim-q-{self.queries:06d}"

    def event(self) -> str:
        self.events += 1
        return f"sim-e-{self.events:07d}"


@dataclass
class _Catalog:
    """The judged queries and the products, indexed for the simulation."""

    by_id: dict[str, Product]
    judged: dict[str, dict[str, Judgment]]  # query -> product id -> judgment (first seen)
    labels: dict[str, dict[str, str | None]]  # query -> product id -> ESCI letter
    topics: dict[str, str]  # query -> dominant level-2 category
    queries: list[str]  # every judged query, first-seen order

    @classmethod
    def build(cls, products: Sequence[Product], judgments: Sequence[Judgment]) -> _Catalog:
        by_id = {p.id: p for p in products}
        judged: dict[str, dict[str, Judgment]] = {}
        for j in judgments:
            judged.setdefault(j.query, {}).setdefault(j.product_id, j)
        if not judged:
            raise ValueError("no judged queries: the simulator draws its queries from them")
        labels = {q: {pid: esci_letter(j) for pid, j in js.items()} for q, js in judged.items()}
        return cls(by_id, judged, labels, query_categories(judgments, by_id), list(judged))

    def related(self, user: UserPreferences) -> list[str]:
        return [q for q in self.queries if self.topics.get(q) in user.categories]


class _UserRun:
    """Simulates the sessions of one user with its own seeded generator."""

    def __init__(
        self,
        user: SimulatedUser,
        rng: np.random.Generator,
        catalog: _Catalog,
        config: SimulationConfig,
        click_model: ClickModelConfig,
        rank: RankFn,
        ids: _Ids,
    ) -> None:
        self.user = user
        self.rng = rng
        self.catalog = catalog
        self.config = config
        self.click_model = click_model
        self.rank = rank
        self.ids = ids
        self.match_cache: dict[str, float] = {}

    def match(self, product_id: str) -> float:
        if product_id not in self.match_cache:
            product = self.catalog.by_id.get(product_id)
            self.match_cache[product_id] = (
                0.0 if product is None else preference_match(self.user.preferences, product)
            )
        return self.match_cache[product_id]

    def plan_queries(self, total: int, related: list[str]) -> list[tuple[str, bool]]:
        """``total`` (query, related) draws with the enforced unrelated share."""
        related_set = set(related)
        unrelated = [q for q in self.catalog.queries if q not in related_set]
        if not related:
            n_unrelated = total
        elif not unrelated:
            n_unrelated = 0
        else:
            n_unrelated = min(total, math.ceil(self.config.unrelated_query_share * total - 1e-9))
        slots = set(self.rng.choice(total, size=n_unrelated, replace=False).tolist())
        plan = []
        for slot in range(total):
            pool, is_related = (unrelated, False) if slot in slots else (related, True)
            plan.append((pool[int(self.rng.integers(len(pool)))], is_related))
        return plan

    def run(
        self, n_sessions: int, n_holdout: int
    ) -> tuple[list[SimulatedQuery], list[tuple[int, dict[str, Any]]], list[list[Any]]]:
        """Simulate; returns the queries, the timed training records, and per held-out
        session a list of ``(query, timed records of that query)``."""
        config, user_id = self.config, self.user.user_id
        low, high = config.queries_per_session
        counts = self.rng.integers(low, high + 1, size=n_sessions).tolist()
        plan = iter(self.plan_queries(sum(counts), self.catalog.related(self.user.preferences)))
        period = config.period_days * _DAY
        window_start = config.start_epoch - period
        slot = period / n_sessions
        queries: list[SimulatedQuery] = []
        training: list[tuple[int, dict[str, Any]]] = []
        holdout: list[list[Any]] = []
        for s, n_queries in enumerate(counts):
            session_id = f"{user_id}-s{s + 1:02d}"
            is_holdout = s >= n_sessions - n_holdout
            t = int(window_start + s * slot + float(self.rng.uniform(0.0, slot / 2)))
            session: list[Any] = []
            for _ in range(n_queries):
                query, related = next(plan)
                query_id = self.ids.query()
                queries.append(
                    SimulatedQuery(query_id, user_id, session_id, query, related, is_holdout, t)
                )
                records, t = self._query_records(query, query_id, session_id, t)
                if is_holdout:
                    session.append((query, query_id, records))
                else:
                    training.extend(records)
                t += int(self.rng.integers(10, 91))
            if is_holdout:
                holdout.append(session)
        return queries, training, holdout

    def _query_records(
        self, query: str, query_id: str, session_id: str, t: int
    ) -> tuple[list[tuple[int, dict[str, Any]]], int]:
        """The UBI records of one query (with their Unix times) and the last action's time."""
        user_id, k = self.user.user_id, self.config.k_shown
        shown = list(dict.fromkeys(self.rank(query, user_id, session_id, k)))[:k]
        labels = self.catalog.labels.get(query, {})
        matches = {pid: self.match(pid) for pid in shown if labels.get(pid) is not None}
        actions = simulate_page(shown, labels, matches, self.rng, self.click_model)
        records: list[tuple[int, dict[str, Any]]] = [
            (
                t,
                {
                    "query_id": query_id,
                    "client_id": user_id,
                    "session_id": session_id,
                    "user_query": query,
                    "timestamp": _iso(t),
                    "query_attributes": {"simulated": True},
                    "application": APPLICATION,
                },
            )
        ]
        last = t
        for action in actions:
            if action.action == "impression":
                when = t + 1
            elif action.action == "click":
                when = last + int(self.rng.integers(3, 31))
            elif action.action == "add_to_cart":
                when = last + int(self.rng.integers(5, 61))
            else:
                when = last + int(self.rng.integers(10, 121))
            last = max(last, when)
            records.append(
                (
                    when,
                    {
                        "event_id": self.ids.event(),
                        "action_name": action.action,
                        "query_id": query_id,
                        "client_id": user_id,
                        "session_id": session_id,
                        "timestamp": _iso(when),
                        "event_attributes": {
                            "object": {
                                "object_id": action.product_id,
                                "object_id_field": "product_id",
                            },
                            "position": {"ordinal": action.position},
                            "simulated": True,
                        },
                    },
                )
            )
        return records, last

    def holdout_judgments(self, query: str, session_id: str) -> list[dict[str, Any]]:
        """Per-user graded judgments of one held-out query: ESCI gain x preference
        multiplier (relevant products only)."""
        rows = []
        for pid, judgment in self.catalog.judged[query].items():
            letter = self.catalog.labels[query][pid]
            gain = judgment.gain * preference_multiplier(letter, self.match(pid))
            rows.append(
                {
                    "query": query,
                    "product_id": pid,
                    "label": round(gain, _GAIN_DIGITS),
                    "user_id": self.user.user_id,
                    "session_id": session_id,
                    "simulated": True,
                }
            )
        return rows


def _split_test_users(config: SimulationConfig) -> set[int]:
    rng = np.random.default_rng([config.seed, 3])
    n_test = round(config.test_user_share * config.users)
    return set(rng.choice(config.users, size=n_test, replace=False).tolist())


def simulate(
    config: SimulationConfig,
    products: Sequence[Product],
    judgments: Sequence[Judgment],
    rank: RankFn,
    *,
    progress: Progress = NULL_PROGRESS,
) -> SimulationResult:
    """Run a SIMULATION (see the module docstring); deterministic given ``config`` and a
    deterministic ``rank``."""
    catalog = _Catalog.build(products, judgments)
    click_model = config.click_model()
    test_users = _split_test_users(config)
    users = [
        SimulatedUser(p, "test" if i in test_users else "train", len(catalog.related(p)))
        for i, p in enumerate(sample_users(config.users, products, judgments, config.seed))
    ]
    cold = sample_users(
        config.cold_start_users, products, judgments, [config.seed, 2], id_prefix="sim-cold-"
    )
    users += [SimulatedUser(p, "cold_start", len(catalog.related(p))) for p in cold]

    ids = _Ids()
    queries: list[SimulatedQuery] = []
    timed: dict[str, list[tuple[int, dict[str, Any]]]] = {"train": [], "test": []}
    holdout_judgments: list[dict[str, Any]] = []
    holdout_context: list[dict[str, Any]] = []
    with progress.stage("Simulating users", len(users)) as advance:
        for i, user in enumerate(users):
            cold_start = user.group == "cold_start"
            stream = 2 if cold_start else 1
            index = i - config.users if cold_start else i
            rng = np.random.default_rng([config.seed, stream, index])
            run = _UserRun(user, rng, catalog, config, click_model, rank, ids)
            n_sessions = config.holdout_sessions if cold_start else config.sessions_per_user
            user_queries, training, holdout = run.run(n_sessions, config.holdout_sessions)
            queries += user_queries
            if not cold_start:
                timed[user.group] += training
            judged_queries: set[str] = set()
            for session in holdout:
                context: list[dict[str, Any]] = []
                for query, query_id, records in session:
                    session_id = records[0][1]["session_id"]
                    if query not in judged_queries:
                        judged_queries.add(query)
                        holdout_judgments += run.holdout_judgments(query, session_id)
                        holdout_context.append(
                            {
                                "simulated": True,
                                "user_id": user.user_id,
                                "session_id": session_id,
                                "query": query,
                                "query_id": query_id,
                                "timestamp": records[0][1]["timestamp"],
                                "context": [] if cold_start else list(context),
                            }
                        )
                    context += [record for _, record in records]
            advance(1)
    return SimulationResult(
        config=config,
        users=users,
        queries=queries,
        train_events=_by_time(timed["train"]),
        test_user_events=_by_time(timed["test"]),
        holdout_judgments=holdout_judgments,
        holdout_context=holdout_context,
    )


def _by_time(timed: list[tuple[int, dict[str, Any]]]) -> list[dict[str, Any]]:
    """Records sorted by time; ties keep generation order (a query before its events)."""
    return [record for _, record in sorted(timed, key=lambda item: item[0])]


def click_through_by_rank(events: Iterable[Mapping[str, Any]], k: int = 10) -> list[float]:
    """Clicks / impressions at each 1-based rank ``1..k`` (0.0 where nothing was shown).

    Query records (without ``action_name``) are ignored.
    """
    shown = [0] * k
    clicked = [0] * k
    for event in events:
        action = event.get("action_name")
        if action not in ("impression", "click"):
            continue
        ordinal = int(event["event_attributes"]["position"]["ordinal"])
        if 1 <= ordinal <= k:
            (shown if action == "impression" else clicked)[ordinal - 1] += 1
    return [c / s if s else 0.0 for c, s in zip(clicked, shown, strict=True)]


def summarize(result: SimulationResult) -> dict[str, Any]:
    """Counts of the SIMULATION: users by group, sessions, queries, logged events by action
    and the click-through rate by rank (over the logged events of both events files)."""
    logged = result.train_events + result.test_user_events
    actions = Counter(e["action_name"] for e in logged if "action_name" in e)
    sessions = {(q.user_id, q.session_id, q.holdout) for q in result.queries}
    n_queries = len(result.queries)
    unrelated = sum(not q.related for q in result.queries)
    return {
        "simulated": True,
        "users": {g: sum(u.group == g for u in result.users) for g in GROUPS},
        "sessions": {
            "training": sum(not h for *_, h in sessions),
            "holdout": sum(h for *_, h in sessions),
        },
        "queries": {
            "total": n_queries,
            "holdout": sum(q.holdout for q in result.queries),
            "unrelated_share": round(unrelated / n_queries, 4) if n_queries else 0.0,
        },
        "events": {action: actions.get(action, 0) for action in ACTIONS},
        "click_through_by_rank": [
            round(x, 4) for x in click_through_by_rank(logged, result.config.k_shown)
        ],
        "holdout_judgments": len(result.holdout_judgments),
    }


def pipeline_ranker(pipeline: SearchPipeline, *, name: str = "hybrid") -> RankFn:
    """A ``rank`` callback showing ``pipeline``'s non-personalized ``name`` results.

    Results are cached per ``(query, k)``: the pipeline ignores the user and session.
    """
    cache: dict[tuple[str, int], list[str]] = {}

    def rank(query: str, user_id: str, session_id: str, k: int) -> list[str]:
        key = (query, k)
        if key not in cache:
            result = pipeline.search(query, k, pipeline=name, facets=False, products=False)
            cache[key] = [hit.product_id for hit in result.hits]
        return list(cache[key])

    return rank


def _readme(result: SimulationResult, summary: Mapping[str, Any]) -> str:
    config = result.config
    click = config.click_model()
    attraction = ", ".join(f"{k} {v}" for k, v in click.attraction.items())
    low, high = config.queries_per_session
    how = f"How it was simulated (seed {config.seed})"
    paragraphs = [
        "Every file in this directory was generated by the shopsearch user simulator "
        "(shopsearch.simulation, `shopsearch simulate`). The users, their preferences, "
        "sessions, queries, clicks, carts and purchases are all SIMULATED. The catalog and the "
        "queries are real (the ESCI judged queries); nothing else is. Use this data only to "
        "develop and test personalized ranking, and never report results on it as results on "
        "real users.",
        f"{how}\n{'-' * len(how)}",
        f"Users: {config.users} users (sim-u-*), {summary['users']['test']} of them test users, "
        f"plus {config.cold_start_users} cold-start users (sim-cold-*). Each has 1-2 home "
        "categories (level-2 category prefixes, in proportion to their share of the judged "
        "products), 1-3 brands and 1-2 colors occurring among the judged products of those "
        "categories, and a price band around their median price when prices exist (else "
        "none). Weights are in (0, 1]; see users.json.",
        f"Sessions: {config.sessions_per_user} per user over the {config.period_days:g} days "
        f"before {_iso(config.start_epoch)}, {low}-{high} queries each. The last "
        f"{config.holdout_sessions} sessions of each user are held out. Cold-start users have "
        "only held-out sessions.",
        f"Queries: drawn from the judged queries. ceil({config.unrelated_query_share} x n) of a "
        "user's n queries are unrelated to the user's home categories (drawn uniformly from "
        "the judged queries whose dominant category is not one of them); the rest are related "
        "(their Exact products mostly lie in a home category).",
        f"Rankings shown: the top {config.k_shown} results of the ranker given to the simulator "
        "(the CLI uses the index's non-personalized hybrid pipeline).",
    ]
    intro = "\n\n".join(p if p.startswith(how) else textwrap.fill(p, width=92) for p in paragraphs)
    return f"""\
SIMULATED DATA: NOT REAL USER BEHAVIOUR
=======================================

{intro}

Click model (position-based): P(click at rank r) = P(examine r) x P(attracted).
  examination   1 / r ** {click.eta}
  attraction    by the ESCI label of (query, product): {attraction},
                unjudged {click.unjudged_attraction}. For relevant products (E, S, C) times
                (1 + match), match = preference_match(user, product) in [0, 1], capped at
                {click.max_attraction}. Irrelevant and unjudged products keep their floor.
  add_to_cart   {click.p_cart} after a click (times (1 + match) for relevant products,
                capped at {click.max_cart})
  purchase      {click.p_buy} after add_to_cart
  impression    logged for every shown product

Files
-----
events.jsonl             UBI query and event records (impression, click, add_to_cart,
                         purchase) of the training sessions of TRAIN users, by time. Query
                         records carry "application": "{APPLICATION}"; every record
                         carries "simulated": true in its query_attributes/event_attributes.
events_test_users.jsonl  the same for TEST users (never in events.jsonl): build their
                         profiles from here to evaluate on users unseen in training.
holdout_judgments.jsonl  per-user graded judgments for every held-out query (train, test and
                         cold-start users): label = ESCI gain (E 1.0, S 0.1, C 0.01, I 0.0)
                         x (1 + match) for relevant products, with user_id and session_id.
                         Load with shopsearch.evaluation.load_judgments. A query a user
                         repeats in held-out sessions is judged once (first occurrence).
holdout_context.jsonl    one line per judged held-out query: the UBI records of the earlier
                         queries of the same session ("context"), to replay the session.
                         Held-out sessions never appear in the events files. Cold-start users
                         have no events at all (empty context).
users.json               the latent preferences of every user, the config, the click model
                         and a summary.

Summary
-------
{json.dumps(summary, indent=2)}
"""


def _write_jsonl(path: Path, records: Iterable[Mapping[str, Any]]) -> None:
    with open(path, "w", encoding="utf-8", newline="\n") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")


def write_outputs(result: SimulationResult, out_dir: str | Path) -> dict[str, Path]:
    """Write the SIMULATION's files (:data:`OUTPUT_FILES`) into ``out_dir``; returns their
    paths by name. Byte-identical for the same result."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {name: out / name for name in OUTPUT_FILES}
    summary = summarize(result)
    query_counts = Counter(q.user_id for q in result.queries)
    unrelated_counts = Counter(q.user_id for q in result.queries if not q.related)
    users_doc = {
        "simulated": True,
        "description": "SIMULATED users of the shopsearch user simulator: not real people.",
        "config": result.config.to_dict(),
        "click_model": result.config.click_model().to_dict(),
        "summary": summary,
        "users": [
            {
                **user.preferences.to_dict(),
                "group": user.group,
                "related_queries": user.related_queries,
                "queries": query_counts.get(user.user_id, 0),
                "unrelated_queries": unrelated_counts.get(user.user_id, 0),
            }
            for user in result.users
        ],
    }
    paths["users.json"].write_text(
        json.dumps(users_doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    _write_jsonl(paths["events.jsonl"], result.train_events)
    _write_jsonl(paths["events_test_users.jsonl"], result.test_user_events)
    _write_jsonl(paths["holdout_judgments.jsonl"], result.holdout_judgments)
    _write_jsonl(paths["holdout_context.jsonl"], result.holdout_context)
    paths["README.txt"].write_text(_readme(result, summary), encoding="utf-8")
    return paths
