"""Second stages: re-order the head of the first stage's ranking.

- :class:`CrossEncoderStage`: a fine-tuned cross-encoder re-scores the top ``top`` hits;
  the final score adds ``reranker.first_stage_weight`` times the z-scores of the first
  stage's scores (``hit.scores["rerank"]`` is the cross-encoder's own score).
- :class:`PersonalStage`: the learning-to-rank model re-orders the top ``top`` hits with
  the shopper's context (``hit.scores["ltr"]`` and, with ``explain``, ``["ltr.<group>"]``).

Each declares what it needs: the products' documents, the shopper. In a search a stage
re-orders ``head(k, n)`` hits and leaves the rest in order; in the rerank protocol
(``rank``) it re-orders every candidate it is given.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from shopsearch.catalog.schema import Product
from shopsearch.models.encoders import product_text
from shopsearch.models.scoring import with_prior
from shopsearch.search.models import StageModels
from shopsearch.search.state import QueryState
from shopsearch.search.types import Hit

__all__ = ["CrossEncoderStage", "PersonalStage", "SecondStage", "context_candidates"]


class SecondStage(Protocol):
    name: str
    needs_documents: bool
    needs_shopper: bool

    def depth(self, k: int) -> int:
        """How many first-stage hits this stage wants to see in a search for ``k``."""
        ...

    def head(self, k: int, available: int) -> int:
        """How many of the ``available`` hits it re-orders in a search for ``k``."""
        ...

    def rerank(self, state: QueryState, hits: list[Hit]) -> list[Hit]:
        """``hits`` re-scored and re-ordered, best first."""
        ...

    def describe(self) -> str: ...


class CrossEncoderStage:
    name = "cross_encoder"
    needs_documents = True
    needs_shopper = False

    def __init__(self, models: StageModels, top: int) -> None:
        self.models = models
        self.top = top

    def depth(self, k: int) -> int:
        return self.top

    def head(self, k: int, available: int) -> int:
        return min(self.top, available)

    def describe(self) -> str:
        return f"cross_encoder(top={self.top})"

    def rerank(self, state: QueryState, hits: list[Hit]) -> list[Hit]:
        if not hits:
            return []
        reranker, fields = self.models.reranker()
        docs = {h.product_id: h.product for h in hits if h.product is not None}
        missing = [h.product_id for h in hits if h.product_id not in docs]
        if missing:
            docs.update(self.models.documents(missing))
        texts = [product_text(docs[h.product_id], fields) for h in hits]
        priors = None
        if getattr(reranker, "prior_weight", 0.0):
            rows = np.asarray([state.snapshot.id_to_row[h.product_id] for h in hits])
            vectors = state.snapshot.vectors
            priors = np.asarray(vectors.scores(state.query_vector(), rows), dtype=np.float32)
        scores = reranker.rank_scores(state.text, texts, priors)
        final = with_prior(
            np.asarray(scores, dtype=np.float32),
            [h.score for h in hits],
            state.snapshot.config.reranker.first_stage_weight,
        )
        rescored = [
            Hit(h.product_id, float(f), {**h.scores, "rerank": float(s)}, docs.get(h.product_id))
            for h, s, f in zip(hits, scores.tolist(), final.tolist(), strict=True)
        ]
        order = sorted(
            range(len(rescored)),
            key=lambda i: (-rescored[i].score, -hits[i].score),  # ties: the first stage's order
        )
        return [rescored[i] for i in order]


class PersonalStage:
    """``at_least_k``: re-order at least the ``k`` hits a search returns (the built-in
    ``personal`` pipeline: 50, or ``k`` when larger)."""

    name = "personal"
    needs_documents = True
    needs_shopper = True

    def __init__(self, models: StageModels, top: int, *, at_least_k: bool = False) -> None:
        self.models = models
        self.top = top
        self.at_least_k = at_least_k

    def depth(self, k: int) -> int:
        return max(self.top, k) if self.at_least_k else self.top

    def head(self, k: int, available: int) -> int:
        return min(self.depth(k), available)

    def describe(self) -> str:
        extra = ", at_least_k=true" if self.at_least_k else ""
        return f"personal(top={self.top}{extra})"

    def rerank(self, state: QueryState, hits: list[Hit]) -> list[Hit]:
        ranker = self.models.context_ranker()
        shopper = state.request.shopper
        ranked = ranker.rank(
            state.text,
            context_candidates(state.snapshot, hits),
            user=ranker.user_profile(shopper.user),
            session=ranker.session_profile(shopper.session, shopper.events),
            explain=state.request.explain,
        )
        by_id = {h.product_id: h for h in hits}
        out = []
        for r in ranked:
            h = by_id[r.candidate.product_id]
            scores = {**h.scores, "ltr": r.score}
            if r.explanation is not None:
                scores.update({f"ltr.{group}": v for group, v in r.explanation.items()})
            out.append(Hit(h.product_id, r.score, scores, h.product))
        return out


def context_candidates(snapshot: Any, hits: Sequence[Hit]) -> list[Any]:
    """Context-feature inputs of first-stage hits (their component scores, product and
    indexed vector): :class:`shopsearch.context.features.Candidate`."""
    from shopsearch.context.features import Candidate

    if not hits:
        return []
    # zeros for a product deleted by a write since the hits were retrieved
    vectors = product_vectors(snapshot, [h.product_id for h in hits])
    assert vectors is not None
    return [
        Candidate(
            h.product_id,
            float(h.scores.get("bm25", 0.0)),
            float(h.scores.get("dense", 0.0)),
            float(h.scores.get("fused", h.score)),
            h.product if h.product is not None else Product(id=h.product_id, title=""),
            vectors[i],
        )
        for i, h in enumerate(hits)
    ]


def product_vectors(snapshot: Any, product_ids: Sequence[str]) -> np.ndarray | None:
    """The indexed dense vector of each product (zeros for one that is not indexed)."""
    if not product_ids:
        return None
    matrix = snapshot.vectors.vectors
    out = np.zeros((len(product_ids), matrix.shape[1]), dtype=np.float32)
    for i, product_id in enumerate(product_ids):
        row = snapshot.id_to_row.get(product_id)
        if row is not None:
            out[i] = matrix[row]
    return out
