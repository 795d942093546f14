"""Reports of evaluation results: a terminal table, a JSON document and a PNG chart.

>>> from shopsearch.evaluation import compare, print_table, plot_comparison, to_json
>>> results = compare([my_pipeline], judgments, protocol="rerank")   # doctest: +SKIP
>>> print_table(results)                                             # doctest: +SKIP
>>> json.dump(to_json(results, extra={"dataset": "esci_us"}), f)     # doctest: +SKIP
>>> plot_comparison(results, "reports/rerank.png")                   # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from shopsearch.evaluation.protocols import PipelineResult, RandomPipeline

__all__ = ["format_table", "plot_comparison", "print_table", "to_json"]

# (summary key, column header, display format, higher is better)
_COLUMNS: tuple[tuple[str, str, str, bool], ...] = (
    ("ndcg", "nDCG", "{:.4f}", True),
    ("ndcg@10", "nDCG@10", "{:.4f}", True),
    ("mrr@10", "MRR@10", "{:.4f}", True),
    ("recall@100", "R@100", "{:.4f}", True),
    ("p50_ms", "p50 ms", "{:.2f}", False),
    ("p95_ms", "p95 ms", "{:.2f}", False),
)
_QUALITY = _COLUMNS[:4]


def _protocol(results: Sequence[PipelineResult]) -> str | None:
    protocols = {r.protocol for r in results}
    if len(protocols) > 1:
        raise ValueError(f"results mix protocols {sorted(protocols)}; report one at a time")
    return next(iter(protocols), None)


def format_table(results: Sequence[PipelineResult]) -> Table:
    """A rich table, one row per pipeline; the best value of each metric column is bold.

    Best is the highest score, or the lowest latency. Values are compared as displayed, so
    ties are all bold; nothing is bold when there is a single row.
    """
    protocol = _protocol(results)
    summaries = [r.summary() for r in results]
    table = Table(title=f"{protocol} protocol" if protocol else None)
    table.add_column("pipeline")
    table.add_column("queries", justify="right")
    for _, header, _, _ in _COLUMNS:
        table.add_column(header, justify="right")

    best: dict[str, float] = {}
    for key, _, fmt, higher in _COLUMNS:
        shown = [float(fmt.format(s[key])) for s in summaries]
        if shown:
            best[key] = max(shown) if higher else min(shown)
    for s in summaries:
        cells = [str(s["pipeline"]), str(s["queries"])]
        for key, _, fmt, _ in _COLUMNS:
            text = fmt.format(s[key])
            bold = len(summaries) > 1 and float(text) == best[key]
            cells.append(f"[bold]{text}[/bold]" if bold else text)
        table.add_row(*cells)
    return table


def print_table(results: Sequence[PipelineResult], console: Console | None = None) -> None:
    """Print :func:`format_table` of ``results`` to ``console`` (default: stdout)."""
    (console or Console()).print(format_table(results))


def to_json(
    results: Sequence[PipelineResult], *, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A JSON-ready dict of ``results``.

    ``{"protocol", "pipelines": {name: summary}, "missing_candidates": {name: n},
    "per_query": {name: [QueryResult as dict, ...]}}``, plus the summary keys of the main
    pipeline (the first one not named ``"random"``, else the first) copied at the top level,
    so ``ndcg``, ``ndcg@10``, ``mrr@10``, ... name the main pipeline's scores. ``extra`` is
    merged last, so its keys win.
    """
    protocol = _protocol(results)
    summaries = {r.pipeline: r.summary() for r in results}
    main = next((r for r in results if r.pipeline != RandomPipeline.name), None)
    if main is None and results:
        main = results[0]
    doc: dict[str, Any] = {}
    if main is not None:
        doc.update(summaries[main.pipeline])
    doc.update(
        {
            "protocol": protocol,
            "pipelines": summaries,
            "missing_candidates": {r.pipeline: r.missing_candidates for r in results},
            "per_query": {r.pipeline: [asdict(q) for q in r.per_query] for r in results},
        }
    )
    doc.update(extra or {})
    return doc


def _ms_label(ms: float) -> str:
    if ms >= 100:
        return f"{ms:.0f}"
    return f"{ms:.1f}" if ms >= 1 else f"{ms:.2f}"


def plot_comparison(results: Sequence[PipelineResult], path: str | Path) -> Path:
    """Write a PNG comparing ``results``: quality bars (left) and latency bars (right).

    Rendered with matplotlib's Agg canvas directly (no pyplot, no display, no change to the
    process-wide backend). Parent directories are created. Returns the path written.
    """
    # Imported here: matplotlib takes a noticeable time to import and only plots need it.
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    protocol = _protocol(results)
    summaries = [r.summary() for r in results]
    names = [s["pipeline"] for s in summaries]
    n_queries = max((s["queries"] for s in summaries), default=0)

    fig = Figure(figsize=(10, 4.5), dpi=120, layout="constrained")
    FigureCanvasAgg(fig)
    quality_ax, latency_ax = fig.subplots(1, 2, width_ratios=[3, 1])
    fig.suptitle(f"{protocol or 'no'} protocol, {n_queries} queries", fontweight="bold")
    colors = [f"C{i % 10}" for i in range(len(names))]

    # Quality: one group per metric, one bar per pipeline.
    x = np.arange(len(_QUALITY))
    width = 0.8 / max(1, len(names))
    for i, (s, color) in enumerate(zip(summaries, colors, strict=True)):
        offsets = x - 0.4 + width * (i + 0.5)
        bars = quality_ax.bar(
            offsets, [s[key] for key, *_ in _QUALITY], width, label=s["pipeline"], color=color
        )
        quality_ax.bar_label(bars, fmt="%.3f", fontsize=7, padding=2)
    quality_ax.set_xticks(x, [header for _, header, _, _ in _QUALITY])
    quality_ax.set_ylim(0, 1.3)  # headroom for the value labels and the legend
    quality_ax.set_yticks(np.linspace(0, 1, 6))
    quality_ax.set_ylabel("score (mean over queries)")
    quality_ax.set_title("Quality", fontsize=10)
    quality_ax.grid(axis="y", alpha=0.3)
    quality_ax.set_axisbelow(True)
    if names:
        quality_ax.legend(loc="upper center", ncols=min(len(names), 5), fontsize=8, frameon=False)

    # Latency: p50 and p95 side by side per pipeline.
    px = np.arange(len(names))
    for j, (key, label, alpha) in enumerate((("p50_ms", "p50", 1.0), ("p95_ms", "p95", 0.55))):
        bars = latency_ax.bar(
            px - 0.2 + 0.4 * j,
            [s[key] for s in summaries],
            0.4,
            color=colors,
            alpha=alpha,
            label=label,
            edgecolor="black",
            linewidth=0.5,
        )
        latency_ax.bar_label(bars, fmt=_ms_label, fontsize=7, padding=2)
    rotate = len(names) > 2
    latency_ax.set_xticks(
        px, names, rotation=30 if rotate else 0, ha="right" if rotate else "center"
    )
    latency_ax.set_ylabel("ms per query")
    latency_ax.set_title("Latency (p50 solid, p95 light)", fontsize=10)
    latency_ax.margins(y=0.15)
    latency_ax.grid(axis="y", alpha=0.3)
    latency_ax.set_axisbelow(True)

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path
