"""Training data for the learning-to-rank stage, from judgments and from logged behaviour.

Two kinds of query groups, one feature matrix layout (:data:`~.features.FEATURES`):

- **judgments** (no user): each judged query's hybrid top ``depth`` candidates, labelled by
  their ESCI grade (E 3, S 2, C 1, I or unjudged 0); personal features are 0, so the model
  learns general relevance and what to do for anonymous or cold-start shoppers.
- **clicks**: each logged query with impressions: the products shown, labelled by the
  strongest action on them (purchase 3, add to cart 2, click 1, none 0), with the shopper's
  profiles as they were *before* that query (no peeking at later events), and the position
  at which each product was shown, so that LightGBM's unbiased lambdarank can discount
  clicks that only reflect position.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from shopsearch.context.behaviour import QueryBehaviour
from shopsearch.context.features import feature_matrix
from shopsearch.progress import NULL_PROGRESS, Progress

__all__ = [
    "ACTION_GRADES",
    "GRADE_OF_GAIN",
    "LTRData",
    "click_groups",
    "judgment_groups",
]

ACTION_GRADES = {"impression": 0, "click": 1, "add_to_cart": 2, "purchase": 3}
#: ESCI gains (1, 0.1, 0.01, 0) as grades; other gains map by thresholds.
GRADE_OF_GAIN = ((0.5, 3), (0.05, 2), (0.005, 1))
#: Position id of judged (unbiased) groups; logged positions are 1-based ranks.
JUDGED_POSITION = 0


def grade(gain: float) -> int:
    for threshold, value in GRADE_OF_GAIN:
        if gain >= threshold:
            return value
    return 0


@dataclass
class LTRData:
    """Rows of all groups stacked, with group sizes, labels, positions and group names."""

    features: list[np.ndarray] = field(default_factory=list)
    labels: list[np.ndarray] = field(default_factory=list)
    positions: list[np.ndarray] = field(default_factory=list)
    names: list[str] = field(default_factory=list)  # the query of each group
    kinds: list[str] = field(default_factory=list)  # "judgments" | "clicks"

    def add(
        self, name: str, kind: str, x: np.ndarray, y: np.ndarray, positions: np.ndarray
    ) -> None:
        if len(x) == 0 or y.max(initial=0) == 0:
            return  # a group without any positive teaches lambdarank nothing
        self.features.append(x)
        self.labels.append(y)
        self.positions.append(positions)
        self.names.append(name)
        self.kinds.append(kind)

    def __len__(self) -> int:
        return len(self.names)

    def subset(self, keep: Sequence[bool]) -> LTRData:
        out = LTRData()
        for i, k in enumerate(keep):
            if k:
                out.add(
                    self.names[i],
                    self.kinds[i],
                    self.features[i],
                    self.labels[i],
                    self.positions[i],
                )
        return out

    def of_kind(self, kind: str) -> LTRData:
        return self.subset([k == kind for k in self.kinds])

    def without(self, columns: Sequence[int]) -> LTRData:
        """A copy whose ``columns`` are 0 in every row (e.g. the shopper's own context)."""
        out = LTRData()
        for name, kind, x, y, pos in zip(
            self.names, self.kinds, self.features, self.labels, self.positions, strict=True
        ):
            x = x.copy()
            x[:, columns] = 0.0
            out.add(name, kind, x, y, pos)
        return out

    def split(self, validation_share: float = 0.2, seed: int = 13) -> tuple[LTRData, LTRData]:
        """By query text (hashed with the seed), so a query's groups stay on one side."""

        def is_validation(name: str) -> bool:
            digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
            return int.from_bytes(digest[:4], "big") / 2**32 < validation_share

        flags = [is_validation(n) for n in self.names]
        return self.subset([not f for f in flags]), self.subset(flags)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, list[int], np.ndarray]:
        """``(features, labels, group sizes, positions)`` for :meth:`LTRModel.fit`."""
        if not self.names:
            raise ValueError("no training groups with a positive label")
        return (
            np.vstack(self.features),
            np.concatenate(self.labels),
            [len(y) for y in self.labels],
            np.concatenate(self.positions),
        )

    def counts(self) -> dict[str, int]:
        return {
            "groups": len(self),
            "rows": int(sum(len(y) for y in self.labels)),
            "judgment_groups": self.kinds.count("judgments"),
            "click_groups": self.kinds.count("clicks"),
        }


def judgment_groups(
    pipeline: Any,
    qrels: Mapping[str, Mapping[str, float]],
    *,
    depth: int = 50,
    behaviour: QueryBehaviour | None = None,
    data: LTRData | None = None,
    progress: Progress = NULL_PROGRESS,
) -> LTRData:
    """One group per judged query: its hybrid top ``depth``, labelled by ESCI grade."""
    data = LTRData() if data is None else data
    with progress.stage("Judged queries", len(qrels)) as advance:
        for query, judged in qrels.items():
            hits = pipeline.search(query, depth, pipeline="hybrid", facets=False).hits
            candidates = pipeline.candidates(hits)
            weights = None
            if behaviour is not None:
                weights = behaviour.weights(query, [c.product_id for c in candidates])
            x = feature_matrix(candidates, behaviour=weights)
            y = np.array([grade(judged.get(c.product_id, 0.0)) for c in candidates])
            data.add(query, "judgments", x, y, np.full(len(y), JUDGED_POSITION))
            if weights is not None and weights.any():
                # The same query as if never logged: teaches the no-behaviour regime too.
                x = feature_matrix(candidates)
                data.add(query, "judgments", x, y, np.full(len(y), JUDGED_POSITION))
            advance(1)
    return data


def click_groups(
    pipeline: Any,
    ranker: Any,
    events: Iterable[Any],
    queries: Mapping[str, str],
    *,
    data: LTRData | None = None,
    progress: Progress = NULL_PROGRESS,
) -> LTRData:
    """One group per logged query with impressions (``queries``: query id -> query text).

    ``ranker`` is a :class:`~.ranker.ContextRanker` (profiles and popularity); ``events``
    are the logged events to learn from (all actions, any order).
    """
    data = LTRData() if data is None else data
    by_query: dict[str, list[Any]] = {}
    for event in events:
        by_query.setdefault(event.query_id, []).append(event)
    with progress.stage("Logged queries", len(by_query)) as advance:
        for query_id, logged in by_query.items():
            advance(1)
            text = queries.get(query_id)
            shown = sorted(
                (e for e in logged if e.action_name == "impression" and e.position is not None),
                key=lambda e: e.position,
            )
            if text is None or not shown:
                continue
            ids = list(dict.fromkeys(e.object_id for e in shown))
            position = {e.object_id: int(e.position) for e in shown}
            best: dict[str, int] = {}
            for e in logged:
                g = ACTION_GRADES.get(e.action_name, 0)
                best[e.object_id] = max(best.get(e.object_id, 0), g)
            hits = pipeline.with_documents(pipeline.rank(text, ids, pipeline="hybrid"))
            candidates = pipeline.candidates(hits)
            asked = min(e.timestamp for e in shown)
            first = logged[0]
            user = ranker.user_profile(first.client_id, before=asked)
            session = ranker.session_profile(first.session_id, before=asked)
            x = ranker.features(
                text, candidates, user=user, session=session, exclude_client=first.client_id
            )
            y = np.array([best.get(c.product_id, 0) for c in candidates])
            pos = np.array([position[c.product_id] for c in candidates])
            data.add(text, "clicks", x, y, pos)
    return data
