"""The personalized ranking stage: hybrid candidates re-ordered by a learning-to-rank model.

For a search with a user (and optionally a session), :class:`ContextRanker` reads the
shopper's events from the index's event store, builds the long-term profile (as of the
user's latest event) and the session profile (events of the session, plus any inline
events sent with the search), computes the context features of the first stage's top
``depth`` candidates and orders them by the model's score. Without a user it still runs
(all personal features 0), so the same model serves anonymous traffic.

>>> ranker = ContextRanker(model, events=store, products=lookup)     # doctest: +SKIP
>>> ranked = ranker.rank(candidates, user="u1", session="s9")        # doctest: +SKIP

Every search checks the store for changes (``EventStore.version()``, about 6 us); when it
changed, only the events added since are read (:meth:`QueryBehaviour.refresh`), and only
the cached long-term profiles of the shoppers those events belong to are dropped. A store
without ``version()`` is re-read at most every ``behaviour_ttl_s`` seconds and its
profiles are not cached; one without ``position()`` / ``events_after()`` is re-read whole.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from shopsearch.catalog.schema import Product
from shopsearch.context.behaviour import BehaviourUpdate, QueryBehaviour
from shopsearch.context.features import Candidate, feature_matrix
from shopsearch.context.ltr import LTRModel
from shopsearch.context.profiles import Profile, ProfileConfig, build_profile

__all__ = ["ContextRanker", "EventSource", "Ranked"]

#: Long-term profiles kept in memory (each invalidated when its shopper gets new events).
PROFILE_CACHE_SIZE = 50_000


class EventSource(Protocol):
    """What the ranker reads from an event store (``shopsearch.events.EventStore``)."""

    def events_of_client(self, client_id: str, since: float | None = None) -> list[Any]: ...

    def events_of_session(self, session_id: str) -> list[Any]: ...

    def object_counts(self, since: float | None = None) -> dict[str, dict[str, int]]: ...


@dataclass
class Ranked:
    """One re-ranked candidate: its LTR score, features and (optionally) explanation."""

    candidate: Candidate
    score: float
    features: np.ndarray
    explanation: dict[str, float] | None = None


class ContextRanker:
    """Re-ranks first-stage candidates with an :class:`LTRModel` and shopper profiles.

    ``model=None`` gives a ranker that only builds profiles and behaviour (for training).
    """

    def __init__(
        self,
        model: LTRModel | None,
        *,
        events: EventSource | None,
        products: Callable[[Sequence[str]], Mapping[str, Product]],
        vectors: Callable[[Sequence[str]], np.ndarray | None] | None = None,
        config: ProfileConfig | None = None,
        behaviour_ttl_s: float = 60.0,
    ) -> None:
        self.model = model
        self.events = events
        self.products = products
        self.vectors = vectors
        self.config = config or ProfileConfig()
        self.behaviour_ttl_s = behaviour_ttl_s
        self._behaviour: tuple[float, Any, QueryBehaviour] | None = None
        self._behaviour_lock = threading.Lock()
        # Long-term profiles: user -> (generation read at, profile). A refresh of the
        # behaviour that reads new events of a shopper marks that shopper changed as of the
        # next generation; a profile is valid while its shopper has not changed since it was
        # read (and no refresh re-read everything since).
        self._profiles: dict[str, tuple[int, Profile | None]] = {}
        self._generation = 0
        self._changed: dict[str, int] = {}  # shopper -> generation of their latest new events
        self._reset = 0  # generation of the latest refresh that re-read everything

    # ------------------------------------------------------------------ context

    def behaviour(self) -> QueryBehaviour:
        """Interactions per (query, product), brought up to date when the event store has
        changed (its ``version()``), else at most every ``behaviour_ttl_s`` seconds: only the
        events added since are read (:meth:`QueryBehaviour.refresh`), and the cached profiles
        of the shoppers they belong to are dropped.

        Thread-safe: one thread refreshes at a time; meanwhile other threads keep using the
        previous one (when there is one) instead of waiting or refreshing it too.
        """
        return self._sync()[0]

    def _sync(self) -> tuple[QueryBehaviour, bool]:
        """:meth:`behaviour`, and whether it (and the profile cache's change marks) is up to
        date with the store (false while another thread refreshes it)."""
        if self.events is None:
            return QueryBehaviour(), True
        version = self._events_version()
        cached = self._behaviour
        if cached is not None and self._fresh(cached, version):
            return cached[2], True
        if not self._behaviour_lock.acquire(blocking=cached is None):
            assert cached is not None
            return cached[2], False  # another thread is refreshing it
        try:
            cached = self._behaviour
            if cached is not None and self._fresh(cached, version):
                return cached[2], True
            now = time.monotonic()
            if cached is None:
                weights = self.config.action_weights
                update = BehaviourUpdate(QueryBehaviour.from_store(self.events, weights), True)
            else:
                update = cached[2].refresh(self.events)
            self._invalidate(update)
            self._behaviour = (now, version, update.behaviour)
            return update.behaviour, True
        finally:
            self._behaviour_lock.release()

    def _invalidate(self, update: BehaviourUpdate) -> None:
        """Drop the cached profiles ``update`` makes stale (under the behaviour lock)."""
        if not update.rebuilt and not update.clients:
            return
        generation = self._generation + 1
        # Marks first, then the generation: a profile read while this runs is tagged with the
        # old generation, so it counts as stale if its shopper is marked here.
        if update.rebuilt or len(self._changed) > 4 * PROFILE_CACHE_SIZE:
            self._reset = generation
            self._changed = {}
            self._profiles = {}
        if not update.rebuilt:
            changed, profiles = self._changed, self._profiles
            for client in update.clients:
                changed[client] = generation
                profiles.pop(client, None)
        self._generation = generation

    def _fresh(self, cached: tuple[float, Any, QueryBehaviour], version: Any) -> bool:
        if version is not None:
            return bool(cached[1] == version)
        return time.monotonic() - cached[0] < self.behaviour_ttl_s

    def _events_version(self) -> Any:
        version = getattr(self.events, "version", None)
        return version() if callable(version) else None

    def user_profile(self, user: str | None, *, before: float | None = None) -> Profile | None:
        """The long-term profile, as of the user's latest event (or ``before``).

        Cached per user until that user gets new events: the event store is checked for
        changes (its ``version()``) on every call, and what changed is read incrementally
        (:meth:`behaviour`). Not cached for a store without ``version()``; read afresh while
        another thread is bringing the change marks up to date.
        """
        if not user or self.events is None:
            return None
        if before is None:
            _, synced = self._sync()  # brings the change marks up to date
            if not synced or not callable(getattr(self.events, "version", None)):
                return self._user_profile(user, None)
            generation = self._generation  # before reading: see _invalidate
            cached = self._profiles.get(user)
            if cached is not None and self._valid(user, cached[0]):
                return cached[1]
            profile = self._user_profile(user, None)
            profiles = self._profiles
            if len(profiles) > PROFILE_CACHE_SIZE:
                profiles.clear()
            profiles[user] = (generation, profile)
            return profile
        return self._user_profile(user, before)

    def _valid(self, user: str, generation: int) -> bool:
        return generation >= self._reset and self._changed.get(user, 0) <= generation

    def _interactions(self, *, client_id: str | None = None, session_id: str | None = None):  # noqa: ANN202
        """Light (action, product, time) rows when the store offers them, else full events."""
        assert self.events is not None
        light = getattr(self.events, "interactions", None)
        if callable(light):
            return light(client_id=client_id, session_id=session_id)
        if client_id is not None:
            return self.events.events_of_client(client_id)
        return self.events.events_of_session(session_id or "")

    def _user_profile(self, user: str, before: float | None) -> Profile | None:
        events = self._interactions(client_id=user)
        if before is not None:
            events = [e for e in events if e.timestamp < before]
        if not events:
            return None
        now = before if before is not None else max(e.timestamp for e in events)
        return self._profile(events, now, self.config.user_half_life_s)

    def session_profile(
        self,
        session: str | None,
        inline: Sequence[Any] = (),
        *,
        before: float | None = None,
    ) -> Profile | None:
        """The session's profile from its stored events plus ``inline`` events."""
        events = list(inline)
        if session and self.events is not None:
            events += self._interactions(session_id=session)
        if before is not None:
            events = [e for e in events if e.timestamp < before]
        if not events:
            return None
        now = before if before is not None else max(e.timestamp for e in events)
        return self._profile(events, now, self.config.session_half_life_s)

    def _profile(self, events: Sequence[Any], now: float, half_life_s: float) -> Profile:
        ids = list(dict.fromkeys(e.object_id for e in events))
        return build_profile(
            events,
            self.products(ids),
            now=now,
            half_life_s=half_life_s,
            action_weights=self.config.action_weights,
            vectors=self.vectors,
        )

    # ------------------------------------------------------------------ ranking

    def features(
        self,
        query: str,
        candidates: Sequence[Candidate],
        *,
        user: Profile | None,
        session: Profile | None,
        exclude_client: str | None = None,
        behaviour: QueryBehaviour | None = None,
    ) -> np.ndarray:
        """``behaviour``: the one to read (by default :meth:`behaviour`)."""
        behaviour = behaviour if behaviour is not None else self.behaviour()
        weights = behaviour.weights(
            query, [c.product_id for c in candidates], exclude_client=exclude_client
        )
        return feature_matrix(candidates, user=user, session=session, behaviour=weights)

    def has_context(
        self,
        query: str,
        user: Profile | None,
        session: Profile | None,
        behaviour: QueryBehaviour | None = None,
    ) -> bool:
        """Whether anything personal or behavioural is known for this search."""
        if (user is not None and not user.empty) or (session is not None and not session.empty):
            return True
        return (behaviour if behaviour is not None else self.behaviour()).knows(query)

    def rank(
        self,
        query: str,
        candidates: Sequence[Candidate],
        *,
        user: Profile | None = None,
        session: Profile | None = None,
        explain: bool = False,
    ) -> list[Ranked]:
        """Candidates ordered by the model's score (ties keep the first stage's order).

        Without any context (no profile, and nobody has interacted with this query's
        results) the first stage's order and fused scores are kept: a model learned from
        logged queries has nothing to add there and measurably less to trust.
        """
        if not candidates:
            return []
        if self.model is None:
            raise ValueError("this ContextRanker has no model (it only builds profiles)")
        behaviour = self.behaviour()  # one look at the event store per search
        matrix = self.features(query, candidates, user=user, session=session, behaviour=behaviour)
        if not self.has_context(query, user, session, behaviour):
            return [
                Ranked(c, c.fused, matrix[i], {"retrieval": c.fused} if explain else None)
                for i, c in enumerate(candidates)
            ]
        scores = self.model.predict(matrix)
        explanations = self.model.explain(matrix) if explain else [None] * len(candidates)
        order = sorted(range(len(candidates)), key=lambda i: (-scores[i], i))
        return [Ranked(candidates[i], float(scores[i]), matrix[i], explanations[i]) for i in order]
