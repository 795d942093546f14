"""Train learned fusion: LightGBM lambdarank over every candidate's fusion features, from
judgments of the index's own catalog, split by query.

For each judged query, the pipeline's retrievers (``hybrid``: BM25 + dense, 100 each)
return their candidates exactly as a search does, and :func:`fusion_features` describes
each; unjudged candidates count as irrelevant. The model trains on the training queries,
stops early on the validation queries, and is **installed only when it clearly beats, on
those validation queries, both retrievers alone and RRF** (nDCG@10 after the result rules,
against each query's judgments: the retrieve protocol; a paired t of at least
:data:`MIN_PAIRED_T` over the best of them). Otherwise the index keeps RRF, and the report says why.
Test queries are never read.

>>> report = train_fusion(search, judgments, split)             # doctest: +SKIP
>>> report.installed, report.validation["learned"]               # doctest: +SKIP
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from shopsearch.context.ltr import DEFAULT_PARAMS, load_lightgbm
from shopsearch.errors import InvalidQueryError
from shopsearch.evaluation.judgments import Judgment, group_by_query
from shopsearch.evaluation.metrics import ndcg
from shopsearch.progress import NULL_PROGRESS, Progress
from shopsearch.search.fusion_features import FUSION_FEATURES
from shopsearch.search.fusion_model import FUSION_DIR, FusionModel
from shopsearch.training.data import ESCI_LABELS, QuerySplit

__all__ = [
    "FUSION_PARAMS",
    "FusionGroups",
    "FusionReport",
    "collect",
    "fusion_grade",
    "train_fusion",
]

#: The context ranker's lambdarank settings (15 leaves: of 15 / 31 / 63, also the best on
#: Home Depot validation queries), with larger leaves and bagging for ~1M candidate rows.
FUSION_PARAMS: dict[str, Any] = {
    **DEFAULT_PARAMS,
    "min_data_in_leaf": 50,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
}
#: The install gate: the learned model must beat the best of RRF and the single retrievers
#: on the validation queries by a paired t statistic of at least this (one-sided p ~ 0.05):
#: a win on a dozen queries is noise (on ESCI's 5 CV folds, 12 validation queries each, the
#: models that won there lost on the test folds).
MIN_PAIRED_T = 1.645
MAX_ROUNDS = 1000
EARLY_STOPPING = 50
#: Integer grades LightGBM ranks by: ESCI letters E/S/C/I as 3/2/1/0; a numeric gain g as
#: round(3 g) (Home Depot's 0..2 mean ratings: 0..6).
ESCI_GRADES = {"E": 3, "S": 2, "C": 1, "I": 0}


def fusion_grade(judgment: Judgment) -> int:
    if judgment.label in ESCI_LABELS:
        return ESCI_GRADES[judgment.label]
    return max(0, round(3 * judgment.gain))


@dataclass
class FusionGroups:
    """One group of candidate rows per query: features, grades, product ids."""

    queries: list[str] = field(default_factory=list)
    features: list[np.ndarray] = field(default_factory=list)
    grades: list[np.ndarray] = field(default_factory=list)
    product_ids: list[list[str]] = field(default_factory=list)
    states: list[Any] = field(default_factory=list)  # each query's QueryState (for the rules)

    def stacked(self, useful_only: bool) -> tuple[np.ndarray, np.ndarray, list[int]]:
        """Rows of every group (with ``useful_only``: only groups with a relevant
        candidate, the only ones a ranking loss learns from), labels, group sizes."""
        keep = [i for i, g in enumerate(self.grades) if not useful_only or g.max(initial=0) > 0]
        if not keep:
            return np.zeros((0, len(FUSION_FEATURES)), np.float32), np.zeros(0, np.int32), []
        features = np.vstack([self.features[i] for i in keep])
        grades = np.concatenate([self.grades[i] for i in keep])
        return features, grades, [len(self.grades[i]) for i in keep]


def collect(
    search: Any,
    judgments: Sequence[Judgment],
    queries: Sequence[str],
    *,
    pipeline: str = "hybrid",
    progress: Progress = NULL_PROGRESS,
    label: str = "Collecting candidates",
) -> FusionGroups:
    """The fusion features of every candidate of ``queries`` (a ``SearchPipeline``)."""
    from shopsearch.search.fusion_features import fusion_features

    grades: dict[str, dict[str, int]] = {}
    for j in judgments:
        by_product = grades.setdefault(j.query, {})
        by_product[j.product_id] = max(fusion_grade(j), by_product.get(j.product_id, 0))
    groups = FusionGroups()
    with progress.stage(label, len(queries)) as advance:
        for query in queries:
            state, ids, components = search.fusion_inputs(query, pipeline)
            rows = [state.snapshot.id_to_row[i] for i in ids]
            judged = grades.get(query, {})
            groups.queries.append(query)
            groups.features.append(fusion_features(state, rows, components, search.documents))
            groups.grades.append(np.array([judged.get(i, 0) for i in ids], dtype=np.int32))
            groups.product_ids.append(ids)
            groups.states.append(state)
            advance(1)
    return groups


def _ndcgs(
    groups: FusionGroups,
    scores: Sequence[np.ndarray],
    qrels: Mapping[str, Mapping[str, float]],
    rules: Any,
) -> np.ndarray:
    """nDCG@10 of each query's candidates ordered by ``scores`` (ties: candidate order) and
    then by the pipeline's result ``rules`` (negation, category: as a search applies them
    after fusion), against all of its judgments (relevant products never retrieved count in
    the ideal), per query."""
    from shopsearch.search.types import Hit

    values = []
    for query, ids, state, s in zip(
        groups.queries, groups.product_ids, groups.states, scores, strict=True
    ):
        values_of = np.nan_to_num(np.asarray(s, dtype=np.float64), nan=-1e9, neginf=-1e9)
        order = np.argsort(-values_of, kind="stable")
        hits = rules.apply(state, [Hit(ids[i], float(values_of[i])) for i in order])
        values.append(ndcg([h.product_id for h in hits[:10]], qrels.get(query, {}), k=10))
    return np.asarray(values, dtype=np.float64)


def paired_t(a: np.ndarray, b: np.ndarray) -> float:
    """The paired t statistic of ``a - b`` (per-query differences); 0 when they never differ.

    >>> round(paired_t(np.array([0.5, 0.6, 0.7, 0.8]), np.array([0.4, 0.6, 0.5, 0.7])), 2)
    2.45
    """
    diff = a - b
    if diff.size < 2 or not np.any(diff):
        return 0.0
    spread = float(diff.std(ddof=1))
    if spread == 0.0:
        return math.inf if diff.mean() > 0 else -math.inf
    return float(diff.mean() / (spread / math.sqrt(diff.size)))


def _column(groups: FusionGroups, name: str) -> list[np.ndarray]:
    column = FUSION_FEATURES.index(name)
    return [f[:, column] for f in groups.features]


@dataclass
class FusionReport:
    """What a training run measured on the validation queries, and whether it installed."""

    installed: bool
    reason: str
    validation: dict[str, float]  # nDCG@10: learned, rrf, bm25, dense (mdense)
    counts: dict[str, int]
    rounds: int
    seconds: float
    importance: dict[str, float] = field(default_factory=dict)
    model: FusionModel | None = field(default=None, repr=False)  # (also when not installed)

    def to_dict(self) -> dict[str, Any]:
        return {
            "installed": self.installed,
            "reason": self.reason,
            "validation_ndcg@10": self.validation,
            "counts": self.counts,
            "rounds": self.rounds,
            "seconds": round(self.seconds, 1),
            "importance": self.importance,
        }


def train_fusion(
    search: Any,
    judgments: Sequence[Judgment],
    split: QuerySplit,
    *,
    pipeline: str = "hybrid",
    params: Mapping[str, Any] | None = None,
    install: bool = True,
    progress: Progress = NULL_PROGRESS,
    extra_meta: Mapping[str, Any] | None = None,
) -> FusionReport:
    """Train on ``split.train``, validate on ``split.validation``; install into
    ``DIR/fusion`` only when the model beats RRF and every single retriever there."""
    started = time.perf_counter()
    if not split.train or not split.validation:
        raise InvalidQueryError(
            "learned fusion needs training and validation queries "
            f"(got {len(split.train)} and {len(split.validation)})"
        )
    qrels = group_by_query(judgments)
    train = collect(
        search,
        judgments,
        split.train,
        pipeline=pipeline,
        progress=progress,
        label="Candidates of training queries",
    )
    valid = collect(
        search,
        judgments,
        split.validation,
        pipeline=pipeline,
        progress=progress,
        label="Candidates of validation queries",
    )
    x, y, g = train.stacked(useful_only=True)
    vx, vy, vg = valid.stacked(useful_only=True)
    if not g or not vg:
        raise InvalidQueryError(
            "no training or validation query has a relevant product among its candidates"
        )
    lgb = load_lightgbm()
    settings = {**FUSION_PARAMS, **dict(params or {})}
    train_set = lgb.Dataset(x, label=y, group=g, feature_name=list(FUSION_FEATURES))
    valid_set = lgb.Dataset(vx, label=vy, group=vg, reference=train_set)
    booster = lgb.train(
        settings,
        train_set,
        num_boost_round=MAX_ROUNDS,
        valid_sets=[valid_set],
        callbacks=[lgb.early_stopping(EARLY_STOPPING, verbose=False)],
    )
    model = FusionModel(booster)
    rules = search.pipeline(pipeline).rules
    per_query = {"learned": _ndcgs(valid, [model.predict(f) for f in valid.features], qrels, rules)}
    per_query["rrf"] = _ndcgs(valid, _column(valid, "rrf"), qrels, rules)
    for name in ("bm25", "dense", "mdense"):
        column = _column(valid, name)
        if any(np.isfinite(c).any() for c in column if c.size):
            per_query[name] = _ndcgs(valid, column, qrels, rules)
    validation = {name: float(values.mean()) for name, values in per_query.items()}
    rivals = {k: v for k, v in validation.items() if k != "learned"}
    best_rival = max(rivals, key=lambda k: rivals[k])
    t = paired_t(per_query["learned"], per_query[best_rival])
    better = validation["learned"] > rivals[best_rival] and t >= MIN_PAIRED_T
    versus = (
        f"learned {validation['learned']:.4f} vs {best_rival} {rivals[best_rival]:.4f} "
        f"on {len(valid.queries)} validation queries (paired t {t:.2f})"
    )
    reason = (
        versus
        if better
        else f"{versus}: not a clear win (needs t >= {MIN_PAIRED_T}), keeping the index's "
        "fusion settings"
    )
    gains = booster.feature_importance(importance_type="gain")
    total = float(gains.sum()) or 1.0
    report = FusionReport(
        installed=bool(better and install),
        reason=reason,
        validation=validation,
        counts={
            "train_queries": len(split.train),
            "train_queries_used": len(g),
            "validation_queries": len(split.validation),
            "train_rows": int(x.shape[0]),
        },
        rounds=int(booster.best_iteration or booster.current_iteration()),
        seconds=time.perf_counter() - started,
        importance={
            name: round(float(v) / total, 4)
            for name, v in sorted(
                zip(FUSION_FEATURES, gains, strict=True), key=lambda item: -item[1]
            )
        },
        model=model,
    )
    if report.installed:
        model.meta = {"pipeline": pipeline, **report.to_dict(), **dict(extra_meta or {})}
        model.save(Path(search.directory.path) / FUSION_DIR)
    return report
