"""Evaluation: graded judgments, ranking metrics, protocols and reports.

>>> from shopsearch.datasets import esci_us_judgments
>>> from shopsearch.evaluation import compare, load_judgments, print_table
>>> judgments = load_judgments(esci_us_judgments())
>>> results = compare([my_pipeline], judgments, protocol="rerank")  # doctest: +SKIP
>>> print_table(results)                                            # doctest: +SKIP

``metrics`` holds pure functions (DCG, nDCG, MRR, recall); ``judgments`` reads JSONL
judgments; ``protocols`` runs a pipeline under the ``rerank`` or ``retrieve`` protocol;
``reports`` renders a table, a JSON document and a PNG chart.
"""

from __future__ import annotations

from shopsearch.evaluation.judgments import (
    ESCI_GAINS,
    ContextKey,
    Judgment,
    group_by_context,
    group_by_query,
    load_judgments,
    split_queries,
)
from shopsearch.evaluation.metrics import (
    best_grade_ids,
    dcg,
    ndcg,
    percentile_ms,
    recall,
    reciprocal_rank,
)
from shopsearch.evaluation.protocols import (
    PROTOCOLS,
    EvaluablePipeline,
    PipelineResult,
    QueryResult,
    RandomPipeline,
    compare,
    evaluate,
)
from shopsearch.evaluation.reports import format_table, plot_comparison, print_table, to_json

__all__ = [
    "ESCI_GAINS",
    "PROTOCOLS",
    "ContextKey",
    "EvaluablePipeline",
    "Judgment",
    "PipelineResult",
    "QueryResult",
    "RandomPipeline",
    "best_grade_ids",
    "compare",
    "dcg",
    "evaluate",
    "format_table",
    "group_by_context",
    "group_by_query",
    "load_judgments",
    "ndcg",
    "percentile_ms",
    "plot_comparison",
    "print_table",
    "recall",
    "reciprocal_rank",
    "split_queries",
    "to_json",
]
