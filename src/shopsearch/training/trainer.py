"""Fine-tune the multi-task cross-encoder (ESCI relevance + category) on training pairs.

:func:`train_cross_encoder` builds the model (new heads on a pretrained backbone, or a warm
start from a saved cross-encoder; layer freezing or LoRA) and trains it in the shared loop
(:class:`~shopsearch.training.loop.Trainer`) as a task that brings length-bucketed batches
tokenized with dynamic padding (:mod:`shopsearch.training.pair_batches`), separate learning
rates for backbone and heads, the multi-task loss with the pairwise rank loss, and its
validation metrics. The loop does the rest: AdamW/SGD with linear warmup and decay, gradient
accumulation, bf16 autocast on CUDA, periodic validation with early stopping, resumable
checkpoints. A run directory holds::

    config.json        the TrainConfig
    history.json       per-step losses (total, match, cls, rank) and learning rates,
                       per-epoch means, validation metrics
    best/              the best model so far (CrossEncoderReranker.save; LoRA merged)
    checkpoint/        model, optimizer, scheduler, RNG states, loop state (for resume=True)

>>> result = train_cross_encoder(TrainConfig(), data, Path("runs/ce"))  # doctest: +SKIP
>>> reranker = CrossEncoderReranker.load(result.best_dir)              # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from shopsearch.errors import InvalidQueryError
from shopsearch.models.cross_encoder import (
    IGNORE_INDEX,
    CrossEncoderConfig,
    CrossEncoderReranker,
    MultiTaskCrossEncoder,
    expected_gain,
    multitask_loss,
    pairwise_rank_loss,
)
from shopsearch.progress import NULL_PROGRESS, Progress
from shopsearch.training.config import TrainConfig
from shopsearch.training.data import PairExample
from shopsearch.training.loop import BEST_DIR, Plan, RunResult, Trainer, TrainingTask, start_run
from shopsearch.training.metrics import ranking_ndcg
from shopsearch.training.pair_batches import (
    PairCollate,
    epoch_loader,
    example_length,
    label_tensor,
    plan_batches,
)
from shopsearch.training.runtime import bf16_autocast
from shopsearch.training.trainable import freeze_backbone, keep_lowest_layers, with_lora

__all__ = ["TrainResult", "base_model_dir", "train_cross_encoder"]

Evaluate = Callable[[CrossEncoderReranker], Mapping[str, float]]
Autocast = Callable[[], contextlib.AbstractContextManager[Any]]


@dataclass
class TrainResult(RunResult):
    """What a cross-encoder run produced; ``reranker`` is the best model, loaded."""

    reranker: CrossEncoderReranker | None = field(default=None, repr=False)


def base_model_dir(spec: str | Path) -> Path:
    """ "minilm", a transformers model directory, or a run directory (its ``best`` or ``model``)."""
    from shopsearch.models.encoders import resolve_encoder_path

    path = resolve_encoder_path(str(spec))
    for candidate in (path / BEST_DIR, path):
        if (candidate / "reranker.json").is_file():
            return candidate
    if (path / "model" / "config.json").is_file():
        return path / "model"
    return path


def _build_reranker(
    config: TrainConfig, labels: Sequence[str], base: Path, device: torch.device
) -> CrossEncoderReranker:
    """New heads on a pretrained backbone, or a warm start from a saved cross-encoder."""
    if not (base / "reranker.json").is_file():
        return CrossEncoderReranker.from_pretrained(
            base,
            num_categories=len(labels),
            category_labels=labels,
            config=config.model,
            max_length=config.data.max_length,
            seed=config.seed,
            device=str(device),
        )
    reranker = CrossEncoderReranker.load(base, device=str(device))
    model = reranker.model
    model.dropout.p = config.model.dropout
    if reranker.config.num_categories != len(labels):
        hidden = model.category_head.in_features
        model.category_head = nn.Linear(hidden, max(1, len(labels))).to(device)
        model.init_heads(config.seed, heads=("category_head",))
    reranker.config = CrossEncoderConfig(
        num_categories=len(labels),
        category_labels=tuple(labels),
        dropout=config.model.dropout,
        max_length=config.data.max_length,
        score=config.model.score,
        prior_weight=config.model.prior_weight,
        base_model=str(base),
    )
    return reranker


def _to_device(batch: Mapping[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def _forward(model: MultiTaskCrossEncoder, batch: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    return model(
        input_ids=batch["input_ids"],
        attention_mask=batch["attention_mask"],
        token_type_ids=batch.get("token_type_ids"),
    )


@torch.inference_mode()
def _validation_outputs(
    reranker: CrossEncoderReranker,
    examples: Sequence[PairExample],
    batch_size: int,
    autocast: Autocast,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Relevance and category logits of every validation example, in input order (CPU)."""
    model = reranker.model
    was_training = model.training
    model.eval()
    collate = PairCollate(reranker.tokenizer, reranker.config.max_length)
    order = sorted(range(len(examples)), key=lambda i: example_length(examples[i]))
    relevance, category = [], []
    for start in range(0, len(order), batch_size):
        batch = collate([examples[i] for i in order[start : start + batch_size]])
        with autocast():
            outputs = _forward(model, _to_device(batch, reranker.device))
        relevance.append(outputs["relevance_logits"].float().cpu())
        category.append(outputs["category_logits"].float().cpu())
    model.train(was_training)
    index = torch.tensor(order, dtype=torch.long)
    return _unsort(torch.cat(relevance), index), _unsort(torch.cat(category), index)


def _unsort(values: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
    result = torch.empty_like(values)
    result[order] = values
    return result


def _mean_ce(logits: torch.Tensor, labels: Sequence[int | None]) -> float | None:
    target = label_tensor(labels)
    if not bool((target != IGNORE_INDEX).any()):
        return None
    return float(F.cross_entropy(logits, target, ignore_index=IGNORE_INDEX))


def _accuracy(logits: torch.Tensor, labels: Sequence[int | None]) -> float | None:
    target = label_tensor(labels)
    mask = target != IGNORE_INDEX
    if not bool(mask.any()):
        return None
    return float((logits.argmax(dim=-1)[mask] == target[mask]).float().mean())


def _query_accuracy(
    reranker: CrossEncoderReranker,
    examples: Sequence[PairExample],
    query_categories: Mapping[str, int] | None,
) -> float | None:
    """Accuracy of the category head on validation queries read alone."""
    if not query_categories:
        return None
    queries = sorted({ex.query for ex in examples if ex.query in query_categories})
    if not queries:
        return None
    predicted = reranker.classify_queries(queries).argmax(axis=1)
    return float(
        np.mean([p == query_categories[q] for p, q in zip(predicted, queries, strict=True)])
    )


def _validate(
    reranker: CrossEncoderReranker,
    examples: Sequence[PairExample],
    *,
    alpha: float,
    batch_size: int,
    autocast: Autocast,
    query_categories: Mapping[str, int] | None,
) -> dict[str, float]:
    """Built-in validation metrics: losses per task, nDCG by expected gain, accuracies."""
    if not examples:
        return {}
    relevance, category = _validation_outputs(reranker, examples, batch_size, autocast)
    match = _mean_ce(relevance, [ex.relevance for ex in examples])
    cls = _mean_ce(category, [ex.category for ex in examples])
    gains = expected_gain(relevance, reranker.config.gains)
    priors = torch.tensor([ex.prior for ex in examples], dtype=gains.dtype)
    scores = (gains + reranker.config.prior_weight * priors).tolist()
    metrics = {
        "val_loss": alpha * (cls or 0.0) + (1.0 - alpha) * (match or 0.0),
        "val_match_loss": match,
        "val_cls_loss": cls,
        "val_ndcg": ranking_ndcg(examples, scores),
        "val_cls_acc": _accuracy(category, [ex.category for ex in examples]),
        "val_query_acc": _query_accuracy(reranker, examples, query_categories),
    }
    return {k: v for k, v in metrics.items() if v is not None}


def _load_teacher(config: TrainConfig, student: CrossEncoderReranker) -> CrossEncoderReranker:
    """The frozen ``model.teacher`` cross-encoder, on the student's device; it must read the
    student's token ids (the same vocabulary)."""
    path = base_model_dir(config.model.teacher)
    if not (path / "reranker.json").is_file():
        raise InvalidQueryError(
            f"model.teacher {config.model.teacher!r}: not a cross-encoder run (no reranker.json)"
        )
    teacher = CrossEncoderReranker.load(path, device=str(student.device))
    if teacher.tokenizer.get_vocab() != student.tokenizer.get_vocab():
        raise InvalidQueryError(
            f"model.teacher {config.model.teacher!r}: its tokenizer differs from the model's"
        )
    teacher.model.eval()
    for param in teacher.model.parameters():
        param.requires_grad_(False)
    return teacher


class _CrossEncoderTask(TrainingTask):
    """The cross-encoder in the shared loop: pair batches, the multi-task loss, its metrics."""

    model: MultiTaskCrossEncoder
    epoch_keys = ("loss", "match", "cls")
    checkpoints = True

    def __init__(
        self,
        config: TrainConfig,
        data: Any,
        reranker: CrossEncoderReranker,
        base: Path,
        evaluate: Evaluate | None,
    ) -> None:
        self.config = config
        self.reranker = reranker
        self.model = reranker.model
        self.base = base
        self.evaluate = evaluate
        self.train_examples: list[PairExample] = list(data.train)
        self.validation: list[PairExample] = list(data.validation)
        self.query_categories = getattr(data, "query_categories", None)
        self.by_query = config.model.rank_loss_weight > 0.0
        self.collate = PairCollate(reranker.tokenizer, config.data.max_length)
        self.teacher = _load_teacher(config, reranker) if config.model.distill_weight else None

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        return bf16_autocast(self.reranker.device, self.config.train.bf16)

    def is_head(self, name: str) -> bool:
        return not name.startswith("backbone.")

    def describe(self, plan: Plan) -> dict[str, Any]:
        return {
            "plan": asdict(plan),
            "device": str(self.reranker.device),
            "base_model": str(self.base),
        }

    def epoch_batches(self, epoch: int) -> list[list[int]]:
        batch_size, seed = self.config.train.batch_size, self.config.seed
        return plan_batches(self.train_examples, batch_size, seed, epoch, by_query=self.by_query)

    def loader(self, epoch: int, batches: Sequence[list[int]]) -> Iterator[Any]:
        seed = self.config.seed * 1_000_003 + epoch
        workers = self.config.train.num_workers
        return epoch_loader(self.train_examples, batches, self.collate, workers, seed=seed)

    def loss(self, batch: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """``alpha * cls + (1 - alpha) * (match + rank_loss_weight * rank)``.

        ``rank`` is the pairwise loss within each query on ``expected gain + prior_weight *
        prior`` (0 when off or when no query of the batch has two grades).
        """
        settings = self.config.model
        alpha = settings.alpha
        batch = _to_device(batch, self.reranker.device)
        with self.autocast():
            outputs = _forward(self.model, batch)
        weights = batch.get("weight")
        if weights is not None and bool((weights == 1.0).all()):
            weights = None  # (unweighted: the plain mean)
        loss, parts = multitask_loss(outputs, batch["relevance"], batch["category"], alpha, weights)
        rank_value = 0.0
        if settings.rank_loss_weight > 0.0 and alpha < 1.0:
            scores = expected_gain(outputs["relevance_logits"], self.reranker.config.gains)
            scores = scores + settings.prior_weight * batch["prior"]
            rank = pairwise_rank_loss(
                scores, batch["gain"], batch["group"], settings.rank_temperature, weights
            )
            if rank is not None:
                loss = loss + (1.0 - alpha) * settings.rank_loss_weight * rank
                rank_value = float(rank.detach())
        distill_value = 0.0
        if self.teacher is not None and alpha < 1.0:
            distill = self._distill_loss(batch, outputs["relevance_logits"], weights)
            loss = loss + (1.0 - alpha) * settings.distill_weight * distill
            distill_value = float(distill.detach())
        return loss, {
            "match": float(parts["match"]),
            "cls": float(parts["cls"]),
            "rank": rank_value,
            "distill": distill_value,
        }

    def _distill_loss(
        self,
        batch: Mapping[str, torch.Tensor],
        logits: torch.Tensor,
        weights: torch.Tensor | None,
    ) -> torch.Tensor:
        """``T^2 * KL(teacher || model)`` of the relevance classes at temperature T, per pair
        (weighted by the pairs' source weights), averaged over the batch."""
        assert self.teacher is not None
        temperature = self.config.model.distill_temperature
        with torch.no_grad(), self.autocast():
            target = _forward(self.teacher.model, batch)["relevance_logits"].float()
        per_pair = F.kl_div(
            F.log_softmax(logits.float() / temperature, dim=-1),
            F.log_softmax(target / temperature, dim=-1),
            log_target=True,
            reduction="none",
        ).sum(dim=-1) * (temperature**2)
        if weights is None:
            return per_pair.mean()
        return (per_pair * weights).sum() / weights.sum().clamp(min=1e-12)

    def validate(self) -> dict[str, float]:
        metrics = _validate(
            self.reranker,
            self.validation,
            alpha=self.config.model.alpha,
            batch_size=self.config.train.batch_size * 2,
            autocast=self.autocast,
            query_categories=self.query_categories,
        )
        if self.evaluate is not None:
            metrics.update({k: float(v) for k, v in self.evaluate(self.reranker).items()})
        return metrics

    def save_best(self, path: Path) -> None:
        self.reranker.save(path)


def train_cross_encoder(
    config: TrainConfig,
    data: Any,
    run_dir: Path,
    *,
    progress: Progress = NULL_PROGRESS,
    evaluate: Evaluate | None = None,
    model_dir: Path | None = None,
    resume: bool = False,
) -> TrainResult:
    """Fine-tune a :class:`MultiTaskCrossEncoder` on ``data`` and keep the best model.

    ``data`` has ``train`` and ``validation`` lists of ``PairExample``, ``vocab.labels``
    (category labels) and optionally ``query_categories`` (query -> category id).
    ``evaluate(reranker) -> {"val_...": value}`` adds metrics to (or overrides) the built-in
    ones: ``val_loss``, ``val_match_loss``, ``val_cls_loss``, ``val_ndcg`` (expected-gain
    ranking of each validation query's pairs), ``val_cls_acc`` and ``val_query_acc``.
    Validation runs every ``train.eval_every`` steps (0: each epoch) and at the last step.
    ``model_dir`` overrides ``config.base_model``. ``resume=True`` continues from
    ``run_dir/checkpoint`` when there is one.
    """
    started = time.perf_counter()
    run_dir = Path(run_dir)
    device = start_run(config, run_dir)
    if not data.train:
        raise InvalidQueryError("no training examples")
    base = base_model_dir(model_dir or config.base_model)
    reranker = _build_reranker(config, tuple(data.vocab.labels), base, device)
    model = reranker.model
    keep_lowest_layers(model.backbone, config.model.layers)
    if config.lora.enabled:
        model.backbone = with_lora(model.backbone, config.lora)
    freeze_backbone(model.backbone, config.train.freeze)
    model.to(device)
    task = _CrossEncoderTask(config, data, reranker, base, evaluate)
    result = Trainer(task, config, run_dir, started=started).fit(progress=progress, resume=resume)
    best = CrossEncoderReranker.load(run_dir / BEST_DIR, device=str(device))
    return TrainResult(**vars(result), reranker=best)
