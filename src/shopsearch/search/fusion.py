"""Fusion: one ranked list of hits from the retrievers' runs.

Every candidate gets every retriever's score (``hit.scores["bm25"]``, ``["dense"]``), then
a fused score (``["fused"]``): reciprocal-rank fusion, a min-max weighted sum
(:mod:`shopsearch.index.fusion`), or a learned model over the candidates' features
(:class:`LearnedFusion`). With a single retriever there is nothing to fuse
(:class:`SingleRun`): hits carry that retriever's score. Ties keep the lower row first.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Protocol

import numpy as np

from shopsearch.catalog.schema import Product
from shopsearch.index.fusion import DEFAULT_RRF_K, reciprocal_rank_fusion, weighted_sum
from shopsearch.search.fusion_features import fusion_features
from shopsearch.search.retrievers import Retriever, Run
from shopsearch.search.state import QueryState
from shopsearch.search.types import Hit

if TYPE_CHECKING:
    from shopsearch.search.fusion_model import FusionModel
    from shopsearch.search.models import StageModels

__all__ = ["Fusion", "IndexFusion", "LearnedFusion", "RRFFusion", "SingleRun", "WeightedFusion"]


class Fusion(Protocol):
    name: str

    def fuse(
        self,
        state: QueryState,
        retrievers: Sequence[Retriever],
        rows: Sequence[int],
        runs: Mapping[str, Run],
    ) -> list[Hit]:
        """Hits for ``rows`` (every candidate of every run), best first."""
        ...


def _sorted(hits: list[Hit], rows: Sequence[int]) -> list[Hit]:
    order = sorted(range(len(hits)), key=lambda i: (-hits[i].score, rows[i]))
    return [hits[i] for i in order]


class SingleRun:
    """One retriever: its scores are the hits' scores."""

    name = "single"

    def fuse(self, state, retrievers, rows, runs) -> list[Hit]:  # noqa: ANN001
        (retriever,) = retrievers
        run = runs[retriever.name]
        row_ids = state.snapshot.row_ids
        hits = [Hit(row_ids[r], run[r], {retriever.name: run[r]}) for r in rows]
        return _sorted(hits, rows)


class _ScoreFusion:
    """Fills every retriever's score for every row, then fuses with :meth:`combine`."""

    name = "fusion"

    def combine(
        self, state: QueryState, retrievers: Sequence[Retriever], components: Mapping[str, Run]
    ) -> dict[int, float]:
        raise NotImplementedError

    def fuse(self, state, retrievers, rows, runs) -> list[Hit]:  # noqa: ANN001
        components: dict[str, Run] = {}
        columns: list[list[float]] = []  # each retriever's scores, aligned with rows
        row_array = np.asarray(rows, dtype=np.int64)
        for retriever in retrievers:
            if state.mode == "rank":  # the runs already score every given row
                run = runs[retriever.name]
                values = [run[r] for r in rows]
            else:
                values = retriever.score(state, row_array).tolist()
            components[retriever.name] = dict(zip(rows, values, strict=True))
            columns.append(values)
        fused = self.combine(state, retrievers, components)
        fused_values = [fused.get(r, 0.0) for r in rows]
        keys = (*components, "fused")
        row_ids = state.snapshot.row_ids
        hits = [
            Hit(row_ids[r], f, dict(zip(keys, scores, strict=True)))
            for r, f, scores in zip(
                rows, fused_values, zip(*columns, fused_values, strict=True), strict=True
            )
        ]
        return _sorted(hits, rows)


class RRFFusion(_ScoreFusion):
    """Reciprocal-rank fusion; a retriever that needs a positive score to match (BM25)
    ranks only its matches."""

    name = "rrf"

    def __init__(self, k: int = DEFAULT_RRF_K, weights: Mapping[str, float] | None = None):
        self.k = k
        self.weights = dict(weights or {})

    def combine(self, state, retrievers, components) -> dict[int, float]:  # noqa: ANN001
        runs = {
            r.name: (
                {row: s for row, s in components[r.name].items() if s > 0}
                if r.positive_only
                else components[r.name]
            )
            for r in retrievers
        }
        return reciprocal_rank_fusion(runs, self.weights, self.k)


class WeightedFusion(_ScoreFusion):
    """Min-max normalised weighted sum over the candidates."""

    name = "weighted"

    def __init__(self, weights: Mapping[str, float] | None = None):
        self.weights = dict(weights or {})

    def combine(self, state, retrievers, components) -> dict[int, float]:  # noqa: ANN001
        return weighted_sum(components, self.weights)


class LearnedFusion(_ScoreFusion):
    """A learned model over every candidate's :func:`~.fusion_features.fusion_features`
    (``shopsearch fusion train``); ``model()`` returns it (loaded once, by the caller)."""

    name = "learned"

    def __init__(
        self,
        model: Callable[[], FusionModel],
        documents: Callable[[Sequence[str]], Mapping[str, Product]],
    ) -> None:
        self.model = model
        self.documents = documents

    def combine(self, state, retrievers, components) -> dict[int, float]:  # noqa: ANN001
        names = [r.name for r in retrievers]
        rows = list(components[names[0]])
        aligned = {name: list(components[name].values()) for name in names}
        features = fusion_features(state, rows, aligned, self.documents)
        scores = self.model().predict(features)
        return dict(zip(rows, scores.tolist(), strict=True))


class IndexFusion:
    """The fusion the index's configuration names (``fusion.method``, weights, RRF k),
    read from the snapshot the search runs on; the learned model instead where one is
    installed (``DIR/fusion``) and ``fusion.learned`` is on."""

    name = "fuse"

    def __init__(self, models: StageModels | None = None) -> None:
        self.models = models

    def fuse(self, state, retrievers, rows, runs) -> list[Hit]:  # noqa: ANN001
        config = state.snapshot.config.fusion
        fusion: _ScoreFusion
        if config.learned and self.models is not None and self.models.has_fusion_model:
            fusion = LearnedFusion(self.models.fusion_model, self.models.documents)
        elif config.method == "rrf":
            fusion = RRFFusion(config.rrf_k, config.weights)
        else:
            fusion = WeightedFusion(config.weights)
        return fusion.fuse(state, retrievers, rows, runs)
