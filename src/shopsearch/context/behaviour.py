"""What shoppers did after a query: action-weighted interactions per (query, product).

The strongest behavioural signal for a query seen before is what other shoppers clicked,
added to cart and bought among its results (like "click-through rate per query-product").
It is exactly 0 for a query nobody has logged, which is how the personalized stage knows
to fall back on the first stage. ``exclude_client`` leaves one shopper's own actions out,
so training rows never see their own labels as a feature. Queries are grouped by
:func:`normalise_query` (case, width, accents and spacing do not matter).

>>> from shopsearch.context.profiles import SimpleEvent
>>> b = QueryBehaviour.from_events([
...     ("Red Shoes", "u1", SimpleEvent("purchase", "p1")),
...     ("red  shoes", "u2", SimpleEvent("click", "p1")),
... ])
>>> b.weights("RED SHOES", ["p1", "p2"]).tolist()
[6.0, 0.0]
>>> b.weights("red shoes", ["p1"], exclude_client="u1").tolist()
[1.0]

**Incremental.** Built from an event store (:meth:`QueryBehaviour.from_store`), it remembers
how far it has read (the store's rowids, :meth:`~shopsearch.events.EventStore.position`);
:meth:`QueryBehaviour.refresh` then reads only the events added since, in one statement that
joins each with its query's text, and folds them into a new object, which shares everything
unchanged with the old one (that stays valid: threads still using it are not disturbed). It
gives exactly the weights a full rebuild gives: interactions are counted as integers (one
count per action when the action weights are not whole numbers), so the order in which
events are folded in does not matter. Events whose query record is not stored yet are kept
aside and counted once it arrives, as a full rebuild would. When rows were deleted
(retention pruning, or a rolled-back transaction of the reading connection), the store's
deletion epoch changes and :meth:`~QueryBehaviour.refresh` reads everything again.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from shopsearch.context.profiles import ACTION_WEIGHTS
from shopsearch.events.schema import ACTIONS
from shopsearch.text.normalize import key as _key

__all__ = ["BehaviourUpdate", "QueryBehaviour", "normalise_query"]

#: Changes folded into the small, copied-on-write layer before it is merged into the large
#: one: at least this many (query, product, shopper) entries, and at least 1/16 of the large
#: layer, so that merging (which copies the large layer's tables) costs O(1) per event.
MIN_DELTA_ENTRIES = 4_096
DELTA_FRACTION = 16
#: Events read per statement when reading a whole store.
READ_PAGE_ROWS = 50_000

_COUNT_BITS = 32
_COUNT_MASK = (1 << _COUNT_BITS) - 1


def normalise_query(query: str) -> str:
    """The behaviour key of a query: :func:`shopsearch.text.normalize.key`, the key that
    autocomplete and the suggestion store use too (``"Ugg Slippers"``, ``"ugg  slippers"``
    and ``"ＵＧＧ slippers"`` are one query). Keys are never stored: they are computed from
    the logged query text whenever a behaviour is built from an event store.

    >>> normalise_query("  Crème  BRÛLÉE ")
    'creme brulee'
    """
    return _key(query)


class _Weights:
    """Action weights as exact integer increments.

    Whole-number weights (the default 1 / 3 / 5) are added as integers; other weights are
    counted per action (32 bits per action in one Python int) and weighted when read. Either
    way sums are exact, so they do not depend on the order events are added in.
    """

    def __init__(self, action_weights: Mapping[str, float]) -> None:
        self.action_weights = dict(action_weights)
        weighted = [(a, float(w)) for a, w in action_weights.items() if w > 0]
        self.integral = all(w.is_integer() for _, w in weighted)
        if self.integral:
            self.step = {a: int(w) for a, w in weighted}
            self.slots: tuple[float, ...] = ()
        else:
            self.step = {a: 1 << (_COUNT_BITS * i) for i, (a, _) in enumerate(weighted)}
            self.slots = tuple(w for _, w in weighted)

    def value(self, packed: int) -> float:
        if self.integral:
            return float(packed)
        total = 0.0
        for i, w in enumerate(self.slots):
            total += ((packed >> (_COUNT_BITS * i)) & _COUNT_MASK) * w
        return total


@dataclass(frozen=True)
class _Layer:
    """Counts of one set of events; never changed once published."""

    pairs: dict[tuple[str, str], int] = field(default_factory=dict)  # (query, product)
    own: dict[tuple[str, str, str], int] = field(default_factory=dict)  # (.., shopper)
    queries: frozenset[str] | set[str] = frozenset()

    def plus(self, rows: Sequence[tuple[str, str, str, str]], step: Mapping[str, int]) -> _Layer:
        """A new layer: these counts plus ``rows`` (``(query text, shopper, action,
        product)``). Copies this layer's tables (use on the small layer)."""
        out = _Layer(dict(self.pairs), dict(self.own), set(self.queries))
        _fold(out, rows, step)
        return out

    def merged(self, other: _Layer) -> _Layer:
        """A new layer with both layers' counts."""
        pairs, own = dict(self.pairs), dict(self.own)
        get = pairs.get
        for key, n in other.pairs.items():
            pairs[key] = get(key, 0) + n
        get_own = own.get
        for key3, n in other.own.items():
            own[key3] = get_own(key3, 0) + n
        return _Layer(pairs, own, set(self.queries) | set(other.queries))


def _fold(
    layer: _Layer, rows: Iterable[tuple[str, str, str, str]], step: Mapping[str, int]
) -> None:
    """Add ``(query text, shopper, action, product)`` rows to a layer being built."""
    pairs, own, queries = layer.pairs, layer.own, layer.queries
    assert isinstance(queries, set)
    normalised: dict[str, str] = {}
    get_pair, get_own = pairs.get, own.get
    for text, client, action, product in rows:
        inc = step.get(action)
        if inc is None:
            continue
        q = normalised.get(text)
        if q is None:
            q = normalised[text] = normalise_query(text)
            queries.add(q)
        key = (q, product)
        pairs[key] = get_pair(key, 0) + inc
        key3 = (q, product, client)
        own[key3] = get_own(key3, 0) + inc


@dataclass(frozen=True)
class _ReadState:
    """How far a behaviour built from a store has read it."""

    epoch: Any
    events: int  # every event up to this rowid is counted (or waits in ``orphans``)
    queries: int  # queries up to this rowid were looked at for ``orphans``
    # query id -> (shopper, action, product) of counted-later events without a stored query
    orphans: Mapping[str, tuple[tuple[str, str, str], ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class BehaviourUpdate:
    """What :meth:`QueryBehaviour.refresh` found."""

    behaviour: QueryBehaviour
    """The up-to-date behaviour (the same object when nothing changed)."""
    rebuilt: bool
    """Everything was read again (after a prune, or from a store that cannot be read
    incrementally): anybody's events may have changed."""
    clients: frozenset[str] = frozenset()
    """Shoppers (``client_id``) with new non-impression events (empty when ``rebuilt``)."""
    sessions: frozenset[str] = frozenset()
    """Sessions with new non-impression events (empty when ``rebuilt``)."""
    events: int = 0
    """Events read (non-impression, plus impressions when they weigh something)."""


class QueryBehaviour:
    """Weighted interactions per normalised query and product, with a per-shopper split.

    Immutable once built: :meth:`refresh` returns a new object.
    """

    def __init__(self, action_weights: Mapping[str, float] = ACTION_WEIGHTS) -> None:
        self._weights = _Weights(action_weights)
        self._base = _Layer()
        self._delta = _Layer()
        self._read: _ReadState | None = None

    @property
    def action_weights(self) -> dict[str, float]:
        return dict(self._weights.action_weights)

    # ------------------------------------------------------------------ building

    @classmethod
    def from_events(
        cls,
        rows: Iterable[tuple[str, str, Any]],
        action_weights: Mapping[str, float] = ACTION_WEIGHTS,
    ) -> QueryBehaviour:
        """``rows``: ``(query text, client id, event)`` for every logged event."""
        out = cls(action_weights)
        layer = _Layer(queries=set())
        _fold(layer, ((q, c, e.action_name, e.object_id) for q, c, e in rows), out._weights.step)
        out._base = layer
        return out

    @classmethod
    def from_store(
        cls, store: Any, action_weights: Mapping[str, float] = ACTION_WEIGHTS
    ) -> QueryBehaviour:
        """From an event store: every non-impression event joined with its query's text.

        From a :class:`~shopsearch.events.EventStore` (anything with ``position()`` and
        ``events_after()``) the result can be :meth:`refresh`-ed incrementally."""
        if not _incremental(store):
            return cls._from_event_iter(store, action_weights)
        out = cls(action_weights)
        position = store.position()
        actions = out._read_actions()
        base = _Layer(queries=set())
        orphans: Mapping[str, tuple[tuple[str, str, str], ...]] = {}
        mark = 0
        while True:  # in pages: the whole log's rows at once would take a lot of memory
            rows = store.events_after(mark, actions, limit=READ_PAGE_ROWS)
            folded, orphans, _, _ = out._split(rows, orphans)
            _fold(base, folded, out._weights.step)
            if len(rows) < READ_PAGE_ROWS:
                break
            mark = rows[-1][0]
        out._base = base
        last = rows[-1][0] if rows else mark
        out._read = _ReadState(
            position.epoch, max(position.events, last), position.queries, orphans
        )
        return out

    @classmethod
    def _from_event_iter(
        cls, store: Any, action_weights: Mapping[str, float] = ACTION_WEIGHTS
    ) -> QueryBehaviour:
        """From a store offering only ``iter_events()`` and ``query()`` (not refreshable)."""
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

    def refresh(self, store: Any) -> BehaviourUpdate:
        """Fold in what was added to ``store`` since this behaviour read it.

        Reads only the events beyond the last rowid read (and, while some counted events
        wait for their query record, the queries beyond the last one looked at). Reads
        everything again (``rebuilt``) when this behaviour was not read from ``store``
        incrementally or rows were deleted since. ``self`` is left unchanged.
        """
        read = self._read
        weights = self._weights.action_weights
        if read is None or not _incremental(store):
            return BehaviourUpdate(type(self).from_store(store, weights), rebuilt=True)
        position = store.position()
        if (
            position.epoch != read.epoch
            or position.events < read.events
            or position.queries < read.queries
        ):
            return BehaviourUpdate(type(self).from_store(store, weights), rebuilt=True)
        new_queries = bool(read.orphans) and position.queries > read.queries
        if position.events == read.events and not new_queries:
            return BehaviourUpdate(self, rebuilt=False)
        rows = []
        if position.events > read.events:
            rows = store.events_after(read.events, self._read_actions())
        folded, orphans, clients, sessions = self._split(rows, read.orphans)
        query_mark = position.queries
        if read.orphans:
            query_mark = read.queries
            if new_queries:
                orphans = dict(orphans)
                for rowid, query_id, text in store.queries_after(read.queries):
                    query_mark = max(query_mark, rowid)
                    waiting = orphans.pop(query_id, None)
                    if waiting:
                        folded += [(text, c, a, p) for c, a, p in waiting]
        out = QueryBehaviour.__new__(QueryBehaviour)
        out._weights = self._weights
        out._base, out._delta = self._base, self._delta
        if folded:
            delta = self._delta.plus(folded, self._weights.step)
            if len(delta.own) > max(MIN_DELTA_ENTRIES, len(self._base.own) // DELTA_FRACTION):
                out._base, out._delta = self._base.merged(delta), _Layer()
            else:
                out._delta = delta
        last = rows[-1][0] if rows else 0
        events_mark = max(position.events, last, read.events)
        out._read = _ReadState(read.epoch, events_mark, query_mark, orphans)
        return BehaviourUpdate(
            out, rebuilt=False, clients=clients, sessions=sessions, events=len(rows)
        )

    def _read_actions(self) -> list[str]:
        """Actions to read: every non-impression one (they change profiles), and any other
        one that weighs something here."""
        step = self._weights.step
        return [a for a in ACTIONS if a != "impression" or a in step] + [
            a for a in step if a not in ACTIONS
        ]

    def _split(
        self,
        rows: Sequence[tuple[Any, ...]],
        orphans: Mapping[str, tuple[tuple[str, str, str], ...]],
    ) -> tuple[
        list[tuple[str, str, str, str]],
        Mapping[str, tuple[tuple[str, str, str], ...]],
        frozenset[str],
        frozenset[str],
    ]:
        """``events_after`` rows -> (rows to fold in, orphans, shoppers, sessions)."""
        step = self._weights.step
        folded: list[tuple[str, str, str, str]] = []
        waiting: dict[str, list[tuple[str, str, str]]] = {}
        clients: set[str] = set()
        sessions: set[str] = set()
        for _rowid, action, product, client, session, query_id, text in rows:
            if action != "impression":
                clients.add(client)
                if session is not None:
                    sessions.add(session)
            if action not in step:
                continue
            if text is None:
                waiting.setdefault(query_id, []).append((client, action, product))
            else:
                folded.append((text, client, action, product))
        if waiting:
            merged = dict(orphans)
            for query_id, events in waiting.items():
                merged[query_id] = (*merged.get(query_id, ()), *events)
            orphans = merged
        return folded, orphans, frozenset(clients), frozenset(sessions)

    # ------------------------------------------------------------------ reading

    def knows(self, query: str) -> bool:
        """Whether anyone interacted with a result of this query."""
        q = normalise_query(query)
        return q in self._base.queries or q in self._delta.queries

    def weights(
        self, query: str, product_ids: Sequence[str], *, exclude_client: str | None = None
    ) -> np.ndarray:
        q = normalise_query(query)
        out = np.zeros(len(product_ids), dtype=np.float64)
        layers = [
            layer for layer in (self._base, self._delta) if q in layer.queries and layer.pairs
        ]
        if not layers:
            return out
        value = self._weights.value
        for i, p in enumerate(product_ids):
            key = (q, p)
            n = 0
            for layer in layers:
                n += layer.pairs.get(key, 0)
            if n and exclude_client is not None:
                key3 = (q, p, exclude_client)
                for layer in layers:
                    n -= layer.own.get(key3, 0)
            if n > 0:
                out[i] = value(n)
        return out


def _incremental(store: Any) -> bool:
    return callable(getattr(store, "position", None)) and callable(
        getattr(store, "events_after", None)
    )
