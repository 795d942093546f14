"""Reports of a fine-tuning run: per-class metrics, learning curves, before/after tables.

:func:`evaluate_reranker` measures a cross-encoder on held-out pairs (reranking nDCG, ESCI
class F1, category accuracies); :func:`write_run_report` puts a zero-shot and a fine-tuned
evaluation side by side in the run directory as ``report.json``, ``report.md`` and
``learning_curves.png`` (drawn from ``history.json``).

>>> before = evaluate_reranker(baseline, data.test, name="zero-shot")     # doctest: +SKIP
>>> after = evaluate_reranker(result.reranker, data.test, name="fine-tuned")  # doctest: +SKIP
>>> write_run_report(result.run_dir, history=result.history, before=before, after=after)
... # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from shopsearch.evaluation.metrics import ndcg
from shopsearch.training.data import ESCI_LABELS, PairExample

__all__ = [
    "ModelEvaluation",
    "before_after_table",
    "classification_report",
    "evaluate_reranker",
    "plot_learning_curves",
    "write_run_report",
]

REPORT_JSON = "report.json"
REPORT_MD = "report.md"
CURVES_PNG = "learning_curves.png"
AVERAGES = ("micro", "macro", "weighted")
#: Categories listed in ``report.md`` (the most frequent ones in the evaluated products).
TOP_CATEGORIES = 10
#: Training-loss components of a ``history.json`` step record: (key, legend label, colour).
_LOSSES = (
    ("loss", "total", "C0"),
    ("match", "match (ESCI)", "C1"),
    ("cls", "cls (category)", "C2"),
    ("rank", "rank (pairwise, within query)", "C3"),
)
_VAL_METRICS = (
    ("val_ndcg", "nDCG (val pairs)", "C0"),
    ("val_cls_acc", "category acc (pairs)", "C2"),
    ("val_query_acc", "category acc (queries)", "C4"),
)
_VAL_LOSSES = (
    ("val_loss", "total", "C0"),
    ("val_match_loss", "match (ESCI)", "C1"),
    ("val_cls_loss", "cls (category)", "C2"),
)


# --------------------------------------------------------------------------- per-class metrics


def _scores(tp: np.ndarray, predicted: np.ndarray, support: np.ndarray) -> dict[str, np.ndarray]:
    """Precision, recall and F1 (0 where a denominator is 0, as sklearn's ``zero_division=0``)."""
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    total = precision + recall
    f1 = np.divide(2 * precision * recall, total, out=np.zeros_like(tp), where=total > 0)
    return {"precision": precision, "recall": recall, "f1": f1}


def classification_report(
    y_true: Sequence[int], y_pred: Sequence[int], labels: Sequence[str]
) -> dict[str, Any]:
    """Per-class precision, recall, F1 and support of single-label predictions, and averages.

    ``y_true`` and ``y_pred`` are class ids, indices into ``labels``. Returns::

        {"classes": {label: {"precision", "recall", "f1", "support"}, ...},
         "micro": {...}, "macro": {...}, "weighted": {...}}

    Classes with support 0 and no prediction are left out, of ``classes`` and of the
    averages. ``micro`` pools all decisions (for single-label data its P = R = F1 =
    accuracy), ``macro`` is the unweighted mean over the listed classes, ``weighted`` the
    mean weighted by support. A ratio with a zero denominator is 0.

    >>> report = classification_report([0, 0, 1], [0, 1, 1], ["a", "b", "c"])
    >>> sorted(report["classes"]), round(report["micro"]["f1"], 4)
    (['a', 'b'], 0.6667)
    """
    true = np.asarray(y_true, dtype=np.int64).reshape(-1)
    pred = np.asarray(y_pred, dtype=np.int64).reshape(-1)
    if true.shape != pred.shape:
        raise ValueError(f"{true.size} true labels but {pred.size} predictions")
    n = len(labels)
    for name, values in (("y_true", true), ("y_pred", pred)):
        if values.size and (values.min() < 0 or values.max() >= n):
            raise ValueError(f"{name} holds class ids outside [0, {n - 1}]")
    support = np.bincount(true, minlength=n).astype(np.float64)
    predicted = np.bincount(pred, minlength=n).astype(np.float64)
    tp = np.bincount(true[true == pred], minlength=n).astype(np.float64)
    per_class = _scores(tp, predicted, support)
    kept = np.flatnonzero((support > 0) | (predicted > 0))

    classes = {
        str(labels[i]): {
            **{metric: float(values[i]) for metric, values in per_class.items()},
            "support": int(support[i]),
        }
        for i in kept.tolist()
    }
    total = int(support.sum())
    micro = _scores(
        tp[kept].sum(keepdims=True), predicted[kept].sum(keepdims=True), np.array([total])
    )
    weights = support[kept] / total if total else np.zeros(kept.size)
    report: dict[str, Any] = {"classes": classes}
    report["micro"] = {m: float(v[0]) for m, v in micro.items()} | {"support": total}
    report["macro"] = {
        m: float(v[kept].mean()) if kept.size else 0.0 for m, v in per_class.items()
    } | {"support": total}
    report["weighted"] = {m: float(v[kept] @ weights) for m, v in per_class.items()} | {
        "support": total
    }
    return report


# --------------------------------------------------------------------------- evaluation


class _Reranker(Protocol):
    """What :func:`evaluate_reranker` needs (``CrossEncoderReranker`` has it)."""

    @property
    def category_labels(self) -> Sequence[str]: ...

    def rank_scores(
        self, query: str, texts: Sequence[str], priors: Sequence[float] | None = None
    ) -> np.ndarray: ...

    def relevance_probabilities(self, query: str, texts: Sequence[str]) -> np.ndarray: ...

    def classify_queries(self, queries: Sequence[str]) -> np.ndarray: ...

    def classify_products(self, texts: Sequence[str]) -> np.ndarray: ...


@dataclass
class ModelEvaluation:
    """One model measured on held-out pairs; ``None`` where the input to measure was not given.

    ``rerank_ndcg``: mean over queries of the nDCG of each query's judged pairs ranked by the
    model. ``esci_micro_f1``: ESCI class accuracy over pairs. ``category_accuracy``: products
    classified from text without their category path. ``query_category_accuracy``: queries
    classified alone. ``esci_report`` / ``category_report``: :func:`classification_report`.
    ``queries``: how many queries were ranked.
    """

    name: str
    rerank_ndcg: float
    esci_micro_f1: float
    category_accuracy: float | None
    query_category_accuracy: float | None
    esci_report: dict[str, Any]
    category_report: dict[str, Any] | None
    queries: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _class_labels(names: Sequence[str], width: int) -> list[str]:
    """``names`` when they match the model's output width, else the class ids as text."""
    return list(names) if len(names) == width else [str(i) for i in range(width)]


def evaluate_reranker(
    reranker: _Reranker,
    examples: Sequence[PairExample],
    *,
    name: str,
    query_categories: Mapping[str, int] | None = None,
    product_categories: Mapping[str, int] | None = None,
    product_texts_for_category: Mapping[str, str] | None = None,
) -> ModelEvaluation:
    """Measure ``reranker`` on ``examples`` (typically ``TrainingData.test``).

    Pairs with a query and a relevance label count; product-only examples are skipped.
    Per query, the pairs are ranked by ``reranker.rank_scores`` and scored by nDCG over the
    whole list with the judged gains (as the trainer's ``val_ndcg``); the ESCI prediction of
    a pair is the argmax of ``relevance_probabilities``. Product categories are predicted
    with ``classify_products`` from ``product_texts_for_category`` (id -> text, which should
    not contain the category path) for the ids in ``product_categories`` (id -> category id).
    Query categories are predicted with ``classify_queries`` for the queries of
    ``query_categories`` that occur in ``examples``, so passing the mapping of every judged
    query does not measure training queries.
    """
    by_query: dict[str, list[PairExample]] = {}
    for ex in examples:
        if ex.query and ex.relevance is not None:
            by_query.setdefault(ex.query, []).append(ex)

    ndcgs: list[float] = []
    y_true: list[int] = []
    y_pred: list[int] = []
    width = len(ESCI_LABELS)
    for query, pairs in by_query.items():
        texts = [ex.text for ex in pairs]
        priors = [ex.prior for ex in pairs]
        scores = np.asarray(reranker.rank_scores(query, texts, priors), dtype=np.float64)
        order = np.argsort(-scores, kind="stable")  # ties keep the input order
        qrels = {ex.product_id: ex.gain for ex in pairs}
        ndcgs.append(ndcg([pairs[i].product_id for i in order], qrels))
        probabilities = np.asarray(reranker.relevance_probabilities(query, texts))
        width = probabilities.shape[1]
        y_pred.extend(int(p) for p in probabilities.argmax(axis=1))
        y_true.extend(int(ex.relevance) for ex in pairs if ex.relevance is not None)
    esci_report = classification_report(y_true, y_pred, _class_labels(ESCI_LABELS, width))

    category_accuracy: float | None = None
    category_report: dict[str, Any] | None = None
    if product_categories is not None and product_texts_for_category is not None:
        ids = [pid for pid in product_categories if pid in product_texts_for_category]
        if ids:
            probabilities = np.asarray(
                reranker.classify_products([product_texts_for_category[pid] for pid in ids])
            )
            predicted = probabilities.argmax(axis=1).tolist()
            truth = [int(product_categories[pid]) for pid in ids]
            labels = _class_labels(tuple(reranker.category_labels), probabilities.shape[1])
            category_report = classification_report(truth, predicted, labels)
            category_accuracy = category_report["micro"]["f1"]

    query_accuracy: float | None = None
    if query_categories is not None:
        queries = [q for q in by_query if q in query_categories]
        if queries:
            predicted = np.asarray(reranker.classify_queries(queries)).argmax(axis=1)
            hits = [
                int(p) == int(query_categories[q]) for p, q in zip(predicted, queries, strict=True)
            ]
            query_accuracy = float(np.mean(hits))

    return ModelEvaluation(
        name=name,
        rerank_ndcg=float(np.mean(ndcgs)) if ndcgs else 0.0,
        esci_micro_f1=esci_report["micro"]["f1"],
        category_accuracy=category_accuracy,
        query_category_accuracy=query_accuracy,
        esci_report=esci_report,
        category_report=category_report,
        queries=len(by_query),
    )


# --------------------------------------------------------------------------- learning curves


def _moving_average(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing mean over up to ``window`` values (shorter at the start), same length."""
    sums = np.cumsum(np.insert(values, 0, 0.0))
    idx = np.arange(1, values.size + 1)
    lo = np.maximum(0, idx - window)
    return (sums[idx] - sums[lo]) / (idx - lo)


def _series(records: Sequence[Mapping[str, Any]], key: str) -> tuple[np.ndarray, np.ndarray]:
    """``(steps, values)`` of the records that hold a finite ``key``."""
    pairs = [
        (float(r["step"]), float(r[key]))
        for r in records
        if isinstance(r.get(key), int | float) and math.isfinite(float(r[key]))
    ]
    if not pairs:
        return np.zeros(0), np.zeros(0)
    steps, values = zip(*pairs, strict=True)
    return np.asarray(steps), np.asarray(values)


def _best_metric_key(history: Mapping[str, Any]) -> str | None:
    """The validation metric that early stopping followed: the one equal to ``best_metric``."""
    best, step = history.get("best_metric"), history.get("best_step")
    if best is None:
        return None
    for record in history.get("evals") or []:
        if record.get("step") != step:
            continue
        for key, value in record.items():
            if key.startswith("val_") and isinstance(value, int | float):
                if math.isclose(float(value), float(best), rel_tol=1e-9, abs_tol=1e-12):
                    return key
    return None


def plot_learning_curves(history: Mapping[str, Any], path: str | Path) -> Path:
    """Write a PNG of a run's ``history.json``: training losses, validation metrics and losses.

    Left: loss per optimizer step (total, match, cls; the raw values light, a trailing
    moving average solid; dotted lines at epoch starts). Middle: validation metrics in
    [0, 1] per evaluation. Right: validation losses. The best evaluation (``best_step``) is
    a dashed line, with a star on the metric early stopping followed. Components that are
    0 throughout (a task with weight 0) are not drawn. Agg canvas, no pyplot.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    steps: list[Mapping[str, Any]] = list(history.get("steps") or [])
    evals: list[Mapping[str, Any]] = list(history.get("evals") or [])
    best_step = history.get("best_step") if evals else None
    best_key = _best_metric_key(history)

    fig = Figure(figsize=(15, 4.6), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    loss_ax, metric_ax, val_loss_ax = fig.subplots(1, 3, width_ratios=[1.4, 1, 1])
    epochs = sorted({int(r["epoch"]) for r in steps if "epoch" in r})
    title = f"Learning curves: {len(steps)} steps, {len(epochs)} epoch(s), {len(evals)} evaluations"
    if best_step is not None and best_key:
        title += f"; best {best_key} = {float(history['best_metric']):.4f} at step {best_step}"
    if history.get("stopped_early"):
        title += " (stopped early)"
    fig.suptitle(title, fontweight="bold")

    # Training losses per step.
    window = max(1, min(50, len(steps) // 15))
    for key, label, color in _LOSSES:
        x, y = _series(steps, key)
        if y.size == 0 or (key != "loss" and not np.any(y)):
            continue
        loss_ax.plot(x, y, color=color, alpha=0.25, linewidth=0.8)
        loss_ax.plot(x, _moving_average(y, window), color=color, linewidth=1.8, label=label)
    for epoch in epochs[1:]:
        start = min(float(r["step"]) for r in steps if int(r.get("epoch", -1)) == epoch)
        loss_ax.axvline(start - 0.5, color="grey", linestyle=":", linewidth=0.8)
    loss_ax.set_title(
        "Training loss per step"
        + (f" (light: raw, solid: mean of {window})" if window > 1 else ""),
        fontsize=10,
    )
    loss_ax.set_xlabel("optimizer step")
    loss_ax.set_ylabel("cross-entropy")
    _finish(loss_ax, empty=not steps, text="no training steps recorded")

    # Validation metrics and losses per evaluation.
    for ax, series, ylabel in (
        (metric_ax, _VAL_METRICS, "score"),
        (val_loss_ax, _VAL_LOSSES, "cross-entropy"),
    ):
        drawn = False
        for key, label, color in series:
            x, y = _series(evals, key)
            if y.size == 0:
                continue
            ax.plot(x, y, color=color, marker="o", markersize=3.5, linewidth=1.5, label=label)
            drawn = True
            if key == best_key and best_step in x:
                ax.plot(
                    [best_step],
                    [y[list(x).index(best_step)]],
                    marker="*",
                    markersize=15,
                    color="gold",
                    markeredgecolor="black",
                    zorder=5,
                    label=f"best {key}",
                )
        if drawn and best_step is not None:
            ax.axvline(best_step, color="black", linestyle="--", linewidth=0.9, alpha=0.6)
        ax.set_xlabel("optimizer step")
        ax.set_ylabel(ylabel)
        _finish(ax, empty=not drawn, text="no validation recorded")
    metric_ax.set_title("Validation metrics (dashed: best evaluation)", fontsize=10)
    metric_ax.set_ylim(-0.02, 1.02)
    val_loss_ax.set_title("Validation losses", fontsize=10)
    if steps:
        right = max(float(r["step"]) for r in steps)
        for ax in (metric_ax, val_loss_ax):
            ax.set_xlim(0, right * 1.03 + 0.5)

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path


def _finish(ax: Any, *, empty: bool, text: str) -> None:
    ax.grid(alpha=0.3)
    ax.set_axisbelow(True)
    if empty:
        ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="grey")
    else:
        ax.legend(fontsize=8, frameon=False)


# --------------------------------------------------------------------------- tables


def _macro_f1(report: Mapping[str, Any] | None) -> float | None:
    return None if report is None else float(report["macro"]["f1"])


#: Rows of :func:`before_after_table`: (key, metric label, value of an evaluation).
_TABLE_ROWS: tuple[tuple[str, str, Any], ...] = (
    ("rerank_ndcg", "nDCG (rerank, whole list)", lambda e: e.rerank_ndcg),
    ("esci_micro_f1", "ESCI micro-F1 (= accuracy)", lambda e: e.esci_micro_f1),
    ("esci_macro_f1", "ESCI macro-F1", lambda e: _macro_f1(e.esci_report)),
    ("category_accuracy", "product category accuracy", lambda e: e.category_accuracy),
    ("category_macro_f1", "product category macro-F1", lambda e: _macro_f1(e.category_report)),
    (
        "query_category_accuracy",
        "query category accuracy",
        lambda e: e.query_category_accuracy,
    ),
)


def before_after_table(before: ModelEvaluation, after: ModelEvaluation) -> list[dict[str, Any]]:
    """One row per metric: ``{"key", "metric", "zero-shot", "fine-tuned", "delta"}``.

    ``zero-shot`` holds ``before``'s value and ``fine-tuned`` ``after``'s (the fixed keys keep
    the rows machine-readable; the model names are ``before.name`` / ``after.name``).
    ``delta`` is after - before, ``None`` when either is missing.
    """
    rows = []
    for key, label, value_of in _TABLE_ROWS:
        a, b = value_of(before), value_of(after)
        rows.append(
            {
                "key": key,
                "metric": label,
                "zero-shot": a,
                "fine-tuned": b,
                "delta": None if a is None or b is None else b - a,
            }
        )
    return rows


# --------------------------------------------------------------------------- run report


def _jsonable(value: Any) -> Any:
    """Plain JSON: numpy scalars to Python, NaN and infinities to ``None``, tuples to lists."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _fmt(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "–"
    return f"{value:+.4f}" if signed else f"{value:.4f}"


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|")


def _training_summary(history: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    steps = history.get("steps") or []
    seconds = history.get("seconds", extra.get("seconds"))
    return {
        "trainable_params": history.get("trainable_params"),
        "total_params": history.get("total_params"),
        "seconds": seconds,
        "steps": len(steps),
        "epochs": len({r.get("epoch") for r in steps}),
        "evaluations": len(history.get("evals") or []),
        "best_metric": history.get("best_metric"),
        "best_metric_name": _best_metric_key(history),
        "best_step": history.get("best_step"),
        "stopped_early": history.get("stopped_early"),
        "device": history.get("device"),
        "base_model": history.get("base_model"),
    }


_OPTIMIZER_NAMES = {"adamw": "AdamW", "sgd": "SGD"}


def _what_was_trained(config: Mapping[str, Any] | None, training: Mapping[str, Any]) -> str:
    if not config:
        base = training.get("base_model")
        return f"Fine-tuned from `{base}`." if base else "Fine-tuned (no config.json found)."
    model, optim = config.get("model", {}), config.get("optim", {})
    loop, lora = config.get("train", {}), config.get("lora", {})
    data = config.get("data", {})
    parts = [
        f"**{config.get('task', 'cross-encoder')}** from `{config.get('base_model', '?')}`"
        f" (seed {config.get('seed', '?')})",
        f"alpha {model.get('alpha', '?')} (category share of the loss)",
        f"{_OPTIMIZER_NAMES.get(optim.get('optimizer'), optim.get('optimizer'))}"
        f" lr {optim.get('lr', '?')},"
        f" head lr {optim.get('head_lr', '?')}",
        f"batch {loop.get('batch_size', '?')} x {loop.get('grad_accumulation', 1)} accumulation",
        f"{loop.get('epochs', '?')} epoch(s)"
        + (f", at most {loop['max_steps']} steps" if loop.get("max_steps") else ""),
        f"freeze `{loop.get('freeze', 'none')}`",
        f"LoRA r={lora.get('rank')}" if lora.get("enabled") else "no LoRA",
        f"{data.get('hard_negatives', 0)} hard negatives per query"
        + (f" from {data['negatives_from']}" if data.get("hard_negatives") else ""),
    ]
    return "Fine-tuned " + ", ".join(parts) + "."


def _class_table(rows: Mapping[str, Mapping[str, Any]], header: str) -> list[str]:
    lines = [f"| {header} | precision | recall | F1 | support |", "|---|---:|---:|---:|---:|"]
    for label, r in rows.items():
        lines.append(
            f"| {_cell(label)} | {r['precision']:.3f} | {r['recall']:.3f} | {r['f1']:.3f} "
            f"| {r['support']} |"
        )
    return lines


def _markdown(
    run_dir: Path,
    config: Mapping[str, Any] | None,
    training: Mapping[str, Any],
    before: ModelEvaluation,
    after: ModelEvaluation,
    table: Sequence[Mapping[str, Any]],
) -> str:
    lines = [f"# Training report: {run_dir.name}", "", _what_was_trained(config, training), ""]
    trainable, total = training.get("trainable_params"), training.get("total_params")
    facts = []
    if trainable is not None and total:
        facts.append(f"trainable parameters: {trainable:,} of {total:,} ({trainable / total:.1%})")
    if training.get("seconds") is not None:
        facts.append(f"training time: {float(training['seconds']):.1f} s")
    facts.append(f"{training['steps']} steps over {training['epochs']} epoch(s)")
    if training.get("best_metric_name"):
        facts.append(
            f"best {training['best_metric_name']} {float(training['best_metric']):.4f}"
            f" at step {training['best_step']}"
        )
    if training.get("stopped_early"):
        facts.append("stopped early")
    lines += ["- " + fact for fact in facts] + [""]

    lines += [
        f"## Test split: {before.name} vs {after.name} ({after.queries} queries)",
        "",
        f"| metric | {_cell(before.name)} | {_cell(after.name)} | delta |",
        "|---|---:|---:|---:|",
    ]
    for row in table:
        lines.append(
            f"| {row['metric']} | {_fmt(row['zero-shot'])} | {_fmt(row['fine-tuned'])} "
            f"| {_fmt(row['delta'], signed=True)} |"
        )

    esci = after.esci_report
    lines += ["", f"## ESCI relevance per class ({after.name})", ""]
    lines += _class_table(esci["classes"], "class")
    lines += [
        f"| *{avg}* | {esci[avg]['precision']:.3f} | {esci[avg]['recall']:.3f} "
        f"| {esci[avg]['f1']:.3f} | {esci[avg]['support']} |"
        for avg in AVERAGES
    ]

    if after.category_report is not None:
        classes = after.category_report["classes"]
        top = sorted(classes.items(), key=lambda item: (-item[1]["support"], item[0]))
        lines += [
            "",
            f"## Product categories: top {TOP_CATEGORIES} by support ({after.name})",
            "",
            f"{len(classes)} categories evaluated; accuracy {_fmt(after.category_accuracy)},"
            f" macro-F1 {_fmt(_macro_f1(after.category_report))}.",
            "",
        ]
        lines += _class_table(dict(top[:TOP_CATEGORIES]), "category")

    lines += ["", "## Learning curves", "", f"![learning curves]({CURVES_PNG})", ""]
    return "\n".join(lines)


def write_run_report(
    run_dir: str | Path,
    *,
    history: Mapping[str, Any],
    before: ModelEvaluation,
    after: ModelEvaluation,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Write ``report.json``, ``learning_curves.png`` and ``report.md`` into ``run_dir``.

    The JSON holds the run's config (``config.json``, when present), a training summary
    (parameter counts, seconds, steps, best evaluation; ``seconds`` from ``history`` or
    else ``extra``), the validation evaluations, both evaluations in full (per-class
    reports included) and the before/after table; ``extra`` is merged last, so its keys
    win. Returns that dict.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    extra = dict(extra or {})
    config_path = run_dir / "config.json"
    config = json.loads(config_path.read_text(encoding="utf-8")) if config_path.is_file() else None
    training = _training_summary(history, extra)
    table = before_after_table(before, after)
    plot_learning_curves(history, run_dir / CURVES_PNG)

    report: dict[str, Any] = {
        "run_dir": str(run_dir),
        "config": config,
        "training": training,
        "evals": list(history.get("evals") or []),
        "before": before.to_dict(),
        "after": after.to_dict(),
        "comparison": table,
        "files": {"json": REPORT_JSON, "markdown": REPORT_MD, "learning_curves": CURVES_PNG},
    }
    report.update(extra)
    report = _jsonable(report)
    (run_dir / REPORT_JSON).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    markdown = _markdown(run_dir, config, training, before, after, table)
    (run_dir / REPORT_MD).write_text(markdown, encoding="utf-8")
    return report
