"""Evaluation protocols: run a pipeline over judged queries and score every query.

Two protocols:

``rerank``
    The pipeline reorders each query's judged products (``pipeline.rank``). Measures ordering
    alone, independent of retrieval; the KDD Cup 2022 (ESCI) task 1 setting.
``retrieve``
    The pipeline searches the whole catalog (``pipeline.search``) for the top ``depth`` ids.
    Measures the full system: a relevant product it never returns costs nDCG.

>>> from shopsearch.evaluation import RandomPipeline, evaluate, load_judgments
>>> from shopsearch.datasets import esci_us_judgments
>>> judgments = load_judgments(esci_us_judgments())
>>> result = evaluate(RandomPipeline([]), judgments, protocol="rerank")
>>> result.summary()["queries"]
100
"""

from __future__ import annotations

import random
import time
import zlib
from collections.abc import Callable, Container, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from shopsearch.errors import InvalidQueryError
from shopsearch.evaluation.judgments import ContextKey, Judgment, group_by_context
from shopsearch.evaluation.metrics import (
    best_grade_ids,
    ndcg,
    percentile_ms,
    recall,
    reciprocal_rank,
)

__all__ = [
    "PROTOCOLS",
    "EvaluablePipeline",
    "PipelineResult",
    "QueryResult",
    "RandomPipeline",
    "compare",
    "evaluate",
]

#: The protocols :func:`evaluate` knows.
PROTOCOLS: tuple[str, ...] = ("rerank", "retrieve")

Progress = Callable[[int, int], None]


@runtime_checkable
class EvaluablePipeline(Protocol):
    """What :func:`evaluate` needs from a pipeline.

    ``rank`` serves the ``rerank`` protocol, ``search`` the ``retrieve`` protocol; a pipeline
    evaluated under one protocol only needs that method.
    """

    name: str

    def rank(self, query: str, candidates: Sequence[str]) -> list[str]:
        """``candidates`` reordered, best first."""
        ...

    def search(self, query: str, k: int) -> list[str]:
        """The ``k`` best product ids of the whole catalog, best first."""
        ...


class RandomPipeline:
    """The baseline every comparison includes: random order, reproducibly.

    Each query gets its own generator seeded from ``seed`` and a CRC-32 of the query text, so
    a query's ranking is the same in every run and does not depend on which other queries are
    evaluated, nor on their order.

    >>> pipeline = RandomPipeline(["a", "b", "c", "d"], seed=1)
    >>> pipeline.rank("socks", ["x", "y", "z"]) == pipeline.rank("socks", ["x", "y", "z"])
    True
    >>> len(pipeline.search("socks", k=2))
    2
    """

    name = "random"

    def __init__(self, catalog_ids: Iterable[str], seed: int = 0) -> None:
        # Sorted so that a set (whose order varies with PYTHONHASHSEED) samples reproducibly.
        self.catalog_ids: list[str] = sorted(set(catalog_ids))
        self.seed = seed

    def _rng(self, query: str) -> random.Random:
        return random.Random(self.seed * 2**32 + zlib.crc32(query.encode("utf-8")))

    def rank(self, query: str, candidates: Sequence[str]) -> list[str]:
        ranked = list(candidates)
        self._rng(query).shuffle(ranked)
        return ranked

    def search(self, query: str, k: int) -> list[str]:
        return self._rng(query).sample(self.catalog_ids, max(0, min(k, len(self.catalog_ids))))


@dataclass
class QueryResult:
    """Scores of one evaluated query (one ``(query, user_id, session_id)`` group)."""

    query: str
    ndcg: float
    ndcg_at_10: float
    mrr_at_10: float
    recall_at_100: float
    latency_s: float
    user_id: str | None = None
    session_id: str | None = None


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


@dataclass
class PipelineResult:
    """Per-query scores of one pipeline under one protocol; :meth:`summary` averages them.

    ``missing_candidates`` counts judged products absent from the ``catalog_ids`` given to
    :func:`evaluate` (0 when none was given). Under ``rerank`` they were dropped from the
    candidates; under ``retrieve`` they stay in the ideal ranking (they cannot be found).
    """

    pipeline: str
    protocol: str
    per_query: list[QueryResult] = field(default_factory=list)
    missing_candidates: int = 0

    def summary(self) -> dict[str, Any]:
        """Means over queries, latency percentiles and throughput.

        Keys: ``pipeline``, ``protocol``, ``queries``, ``ndcg``, ``ndcg@10``, ``mrr@10``,
        ``recall@100``, ``p50_ms``, ``p95_ms``, ``qps`` (queries / total seconds spent in
        the pipeline's calls; 0.0 when nothing was timed). Means are 0.0 with no queries.
        """
        rows = self.per_query
        latencies = [r.latency_s for r in rows]
        total_s = sum(latencies)
        return {
            "pipeline": self.pipeline,
            "protocol": self.protocol,
            "queries": len(rows),
            "ndcg": _mean([r.ndcg for r in rows]),
            "ndcg@10": _mean([r.ndcg_at_10 for r in rows]),
            "mrr@10": _mean([r.mrr_at_10 for r in rows]),
            "recall@100": _mean([r.recall_at_100 for r in rows]),
            "p50_ms": percentile_ms(latencies, 50),
            "p95_ms": percentile_ms(latencies, 95),
            "qps": len(rows) / total_s if total_s > 0 else 0.0,
        }


def _check_options(protocol: str, depth: int) -> None:
    if protocol not in PROTOCOLS:
        allowed = ", ".join(repr(p) for p in PROTOCOLS)
        raise InvalidQueryError(f"unknown protocol {protocol!r}; expected one of {allowed}")
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
        raise InvalidQueryError(f"depth must be a positive integer, got {depth!r}")


# The two calls into the pipeline. ``key`` carries the user and session of the group; a
# pipeline with ``takes_context = True`` gets them as ``user_id`` / ``session_id``.
def _context(pipeline: EvaluablePipeline, key: ContextKey) -> dict[str, str | None]:
    if getattr(pipeline, "takes_context", False):
        return {"user_id": key[1], "session_id": key[2]}
    return {}


def _call_rank(
    pipeline: EvaluablePipeline, key: ContextKey, candidates: list[str]
) -> tuple[list[str], float]:
    start = time.perf_counter()
    ranked = pipeline.rank(key[0], candidates, **_context(pipeline, key))
    elapsed = time.perf_counter() - start
    return list(ranked), elapsed


def _call_search(pipeline: EvaluablePipeline, key: ContextKey, k: int) -> tuple[list[str], float]:
    start = time.perf_counter()
    hits = pipeline.search(key[0], k, **_context(pipeline, key))
    elapsed = time.perf_counter() - start
    return list(hits)[:k], elapsed


def _score(
    key: ContextKey,
    ranking: list[str],
    qrels: dict[str, float],
    latency_s: float,
    ndcg_k: int | None,
) -> QueryResult:
    relevant = best_grade_ids(qrels)
    return QueryResult(
        query=key[0],
        ndcg=ndcg(ranking, qrels, ndcg_k),
        ndcg_at_10=ndcg(ranking, qrels, 10),
        mrr_at_10=reciprocal_rank(ranking, relevant, 10),
        recall_at_100=recall(ranking, relevant, 100),
        latency_s=latency_s,
        user_id=key[1],
        session_id=key[2],
    )


def evaluate(
    pipeline: EvaluablePipeline,
    judgments: Iterable[Judgment],
    *,
    protocol: str = "retrieve",
    depth: int = 100,
    progress: Progress | None = None,
    catalog_ids: Container[str] | None = None,
) -> PipelineResult:
    """Score ``pipeline`` on every judged query under ``protocol`` (``rerank``/``retrieve``).

    Judgments are grouped by ``(query, user_id, session_id)``; each group is one evaluated
    query, in first-seen order. Every query counts in the means, including one whose
    judgments are all 0 (it scores 0).

    ``rerank``: the candidates are the group's judged ids, minus those not in
    ``catalog_ids`` (counted in :attr:`PipelineResult.missing_candidates`). Every metric is
    computed on the reranked list against the judgments of the candidates actually given,
    so a perfect reranker scores 1 whatever the catalog lacks; ``ndcg`` covers the whole
    list.

    ``retrieve``: ``pipeline.search(query, depth)``, cut at ``depth``. ``ndcg`` is nDCG@depth
    and ``ndcg@10`` nDCG@10, with unjudged ids at gain 0 and the ideal from all judged gains.

    In both, MRR@10 and recall@100 count the query's best-grade ids
    (:func:`~shopsearch.evaluation.metrics.best_grade_ids`; ESCI: Exact) as relevant, and
    each pipeline call is timed with :func:`time.perf_counter`. ``progress(done, total)`` is
    called after each query.

    Raises :class:`~shopsearch.errors.InvalidQueryError` for an unknown protocol or a depth
    below 1.
    """
    _check_options(protocol, depth)
    groups = group_by_context(judgments)
    result = PipelineResult(pipeline=pipeline.name, protocol=protocol)
    total = len(groups)
    for done, (key, qrels) in enumerate(groups.items(), start=1):
        if catalog_ids is not None:
            in_catalog = {pid: g for pid, g in qrels.items() if pid in catalog_ids}
            result.missing_candidates += len(qrels) - len(in_catalog)
        else:
            in_catalog = qrels
        if protocol == "rerank":
            ranking, latency_s = _call_rank(pipeline, key, list(in_catalog))
            query_result = _score(key, ranking, in_catalog, latency_s, None)
        else:
            ranking, latency_s = _call_search(pipeline, key, depth)
            query_result = _score(key, ranking, qrels, latency_s, depth)
        result.per_query.append(query_result)
        if progress is not None:
            progress(done, total)
    return result


def compare(
    pipelines: Iterable[EvaluablePipeline],
    judgments: Iterable[Judgment],
    *,
    protocol: str,
    depth: int = 100,
    random_seed: int = 0,
    catalog_ids: Iterable[str] | None = None,
    progress: Progress | None = None,
) -> list[PipelineResult]:
    """Evaluate each pipeline under the same protocol, a random baseline first.

    A :class:`RandomPipeline` (seeded with ``random_seed``) is prepended unless a pipeline
    named ``"random"`` is already in the list; under ``retrieve`` it samples from
    ``catalog_ids``, which is then required. ``progress(done, total)`` counts queries over
    all pipelines. Pipeline names must be unique (they key the reports).
    """
    _check_options(protocol, depth)
    pipelines = list(pipelines)
    judgments = list(judgments)
    catalog = None if catalog_ids is None else set(catalog_ids)
    if not any(p.name == RandomPipeline.name for p in pipelines):
        if protocol == "retrieve" and catalog is None:
            raise InvalidQueryError(
                "compare(protocol='retrieve') needs catalog_ids for the random baseline"
            )
        pipelines.insert(0, RandomPipeline(catalog or (), seed=random_seed))
    names = [p.name for p in pipelines]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise InvalidQueryError(f"pipeline names must be unique, repeated: {duplicates}")

    per_pipeline = len(group_by_context(judgments))
    total = per_pipeline * len(pipelines)
    results: list[PipelineResult] = []
    for i, pipeline in enumerate(pipelines):
        offset = i * per_pipeline
        step = None if progress is None else _offset_progress(progress, offset, total)
        results.append(
            evaluate(
                pipeline,
                judgments,
                protocol=protocol,
                depth=depth,
                progress=step,
                catalog_ids=catalog,
            )
        )
    return results


def _offset_progress(progress: Progress, offset: int, total: int) -> Progress:
    def step(done: int, _: int) -> None:
        progress(offset + done, total)

    return step
