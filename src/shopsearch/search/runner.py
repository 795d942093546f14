"""Runs a named pipeline: analysis, retrieval, fusion, second stages, shaping.

:class:`StagedPipeline` is one pipeline built from its :class:`PipelineSpec`;
:class:`PipelineSet` is every pipeline of an index (the built-ins and those its
configuration defines), which of them can run, and the default. ``search`` (the whole
catalog) and ``rank`` (given candidates: the rerank protocol) run the same stages.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from shopsearch.errors import InvalidQueryError
from shopsearch.index.config import IndexConfig
from shopsearch.search.fusion import (
    Fusion,
    IndexFusion,
    LearnedFusion,
    RRFFusion,
    SingleRun,
    WeightedFusion,
)
from shopsearch.search.models import StageModels
from shopsearch.search.rerankers import CrossEncoderStage, PersonalStage, SecondStage
from shopsearch.search.retrievers import RETRIEVERS
from shopsearch.search.rules import ResultRules
from shopsearch.search.shaping import attach_documents
from shopsearch.search.spec import BUILTIN, PipelineSpec, Step, parse
from shopsearch.search.state import QueryState
from shopsearch.search.types import Hit

__all__ = ["PipelineSet", "StagedPipeline"]

#: What each second stage needs before it can run, and how to get it.
REQUIREMENTS = {
    "cross_encoder": "a cross-encoder: shopsearch refresh DIR --reranker RUN_DIR "
    "(a `shopsearch train` run)",
    "personal": "a learning-to-rank model: shopsearch context train DIR",
    "mdense": "multilingual vectors: shopsearch refresh DIR --set multilingual.enabled=true",
    "learned": "a learned fusion model: shopsearch fusion train DIR --judgments FILE",
}
PERSONAL_TOP = 50


def _fusion(step: Step | None, models: StageModels) -> Fusion:
    if step is None:
        return SingleRun()
    weights = {k: float(v) for k, v in step.args.items() if k != "k"}
    if step.name == "rrf":
        return RRFFusion(int(step.args.get("k", 60)), weights)
    if step.name == "weighted":
        return WeightedFusion(weights)
    if step.name == "learned":
        return LearnedFusion(models.fusion_model, models.documents)
    return IndexFusion(models)


def _stage(step: Step, models: StageModels, config: IndexConfig) -> SecondStage:
    if step.name == "cross_encoder":
        return CrossEncoderStage(models, int(step.args.get("top", config.reranker.k)))
    return PersonalStage(
        models,
        int(step.args.get("top", PERSONAL_TOP)),
        at_least_k=bool(step.args.get("at_least_k", False)),
    )


class StagedPipeline:
    """One pipeline's stages, ready to run."""

    def __init__(self, spec: PipelineSpec, models: StageModels, config: IndexConfig) -> None:
        self.spec = spec
        self.models = models
        self.config = config
        self.retrievers = [RETRIEVERS[name]() for name in spec.retrievers]
        self.fusion = _fusion(spec.fusion, models)
        self.stages = [_stage(step, models, config) for step in spec.stages]
        self.rules = ResultRules(config.analysis, models.documents)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def needs_shopper(self) -> bool:
        """Whether a stage reads the shopper's context (user, session, recent events)."""
        return any(stage.needs_shopper for stage in self.stages)

    def missing(self) -> str | None:
        """What this index lacks to run the pipeline (``None``: nothing)."""
        if "mdense" in self.spec.retrievers and not self.config.multilingual.enabled:
            return REQUIREMENTS["mdense"]
        fusion = self.spec.fusion
        if fusion is not None and fusion.name == "learned" and not self.models.has_fusion_model:
            return REQUIREMENTS["learned"]
        for stage in self.stages:
            if stage.name == "cross_encoder" and not self.models.has_reranker:
                return REQUIREMENTS["cross_encoder"]
            if stage.name == "personal" and not self.models.has_personal_model:
                return REQUIREMENTS["personal"]
        return None

    def describe(self) -> str:
        """E.g. ``analyze -> bm25 + dense (100 each) -> rrf(k=60) -> cross_encoder(top=50)
        -> shape``."""
        retrievers = " + ".join(self.spec.retrievers)
        steps = ["analyze", retrievers]
        fusion = self.spec.fusion
        if fusion is not None:
            steps[-1] += f" ({self.config.fusion.candidates} each)"
            if (
                fusion.name == "fuse"
                and self.config.fusion.learned
                and self.models.has_fusion_model
            ):
                steps.append("learned")
            elif fusion.name == "fuse":  # the index's fusion settings
                settings = self.config.fusion
                args = f"k={settings.rrf_k}" if settings.method == "rrf" else ""
                weights = ", ".join(f"{k}={v:g}" for k, v in settings.weights.items())
                steps.append(f"{settings.method}({', '.join(a for a in (args, weights) if a)})")
            else:
                steps.append(fusion.describe())
        steps += [stage.describe() for stage in self.stages]
        return " -> ".join([*steps, "shape"])

    def search(self, state: QueryState) -> tuple[list[Hit], list[int]]:
        """The top ``k`` hits over the catalog, and every candidate row (for facets)."""
        k = state.request.k
        depth = max([k, *(stage.depth(k) for stage in self.stages)])
        pool = state.snapshot.config.fusion.candidates
        n = max(pool, depth) if len(self.retrievers) == 1 else pool
        runs = {r.name: r.retrieve(state, n) for r in self.retrievers}
        rows = sorted(set().union(*runs.values()))
        hits = self.fusion.fuse(state, self.retrievers, rows, runs)
        hits = self.rules.apply(state, hits)[:depth]
        for stage in self.stages:
            if stage.needs_documents:
                hits = attach_documents(hits, self.models.documents)
            head = stage.head(k, len(hits))
            hits = stage.rerank(state, hits[:head]) + hits[head:]
        return hits[:k], rows

    def fusion_inputs(self, state: QueryState) -> tuple[list[int], dict[str, list[float]]]:
        """Every candidate row the retrievers find (as :meth:`search` takes them) and each
        retriever's score of each: what learned fusion reads (training data)."""
        pool = state.snapshot.config.fusion.candidates
        runs = {r.name: r.retrieve(state, pool) for r in self.retrievers}
        rows = sorted(set().union(*runs.values()))
        row_array = np.asarray(rows, dtype=np.int64)
        return rows, {r.name: r.score(state, row_array).tolist() for r in self.retrievers}

    def rank(self, state: QueryState, product_ids: Sequence[str]) -> list[Hit]:
        """The given products (unknown ids left out) in this pipeline's order."""
        id_to_row = state.snapshot.id_to_row
        rows = [id_to_row[p] for p in product_ids if p in id_to_row]
        row_array = np.asarray(rows, dtype=np.int64)
        runs = {
            r.name: dict(zip(rows, r.score(state, row_array).tolist(), strict=True))
            for r in self.retrievers
        }
        hits = self.rules.apply(state, self.fusion.fuse(state, self.retrievers, rows, runs))
        for stage in self.stages:
            if stage.needs_documents:
                hits = attach_documents(hits, self.models.documents)
            hits = stage.rerank(state, hits)
        return hits


class PipelineSet:
    """Every pipeline an index defines: the built-ins, then its configuration's."""

    def __init__(self, config: IndexConfig, models: StageModels) -> None:
        self.config = config
        definitions = {**BUILTIN, **config.pipelines.defined}
        self._all = {
            name: StagedPipeline(parse(name, text), models, config)
            for name, text in definitions.items()
        }

    @property
    def names(self) -> tuple[str, ...]:
        """The pipelines this index can run now, built-ins first."""
        return tuple(name for name, p in self._all.items() if p.missing() is None)

    @property
    def default(self) -> str:
        """The configured default; else the best available built-in: personalized ranking
        when trained, then the cross-encoder when configured, else hybrid retrieval."""
        if self.config.pipelines.default:
            return self.config.pipelines.default
        names = self.names
        return next(n for n in ("personal", "rerank", "hybrid") if n in names)

    def get(self, name: str | None) -> StagedPipeline:
        name = name or self.default
        pipeline = self._all.get(name)
        if pipeline is None:
            raise InvalidQueryError(
                f"unknown pipeline {name!r}: choose one of {', '.join(self.names)}"
            )
        missing = pipeline.missing()
        if missing is not None:
            raise InvalidQueryError(f"the {name} pipeline needs {missing}")
        return pipeline

    def describe(self) -> dict[str, Any]:
        """``{name: {"stages": "analyze -> ...", "available": bool, "needs": reason}}``."""
        out = {}
        for name, pipeline in self._all.items():
            missing = pipeline.missing()
            entry: dict[str, Any] = {"stages": pipeline.describe(), "available": missing is None}
            if missing is not None:
                entry["needs"] = missing
            if name in self.config.pipelines.defined:
                entry["definition"] = self.config.pipelines.defined[name]
            out[name] = entry
        return out
