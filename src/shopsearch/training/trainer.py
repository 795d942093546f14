"""Fine-tune the multi-task cross-encoder (ESCI relevance + category) on training pairs.

:func:`train_cross_encoder` runs the whole loop: seeding, length-bucketed batches tokenized
with dynamic padding, AdamW/SGD with separate learning rates for backbone and heads, linear
warmup and decay, gradient accumulation, layer freezing or LoRA, bf16 autocast on CUDA,
periodic validation with early stopping, and resumable checkpoints. A run directory holds::

    config.json        the TrainConfig
    history.json       per-step losses (total, match, cls) and learning rates, per-epoch
                       means, validation metrics
    best/              the best model so far (CrossEncoderReranker.save; LoRA merged)
    checkpoint/        model, optimizer, scheduler, RNG states, loop state (for resume=True)

>>> result = train_cross_encoder(TrainConfig(), data, Path("runs/ce"))  # doctest: +SKIP
>>> reranker = CrossEncoderReranker.load(result.best_dir)              # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import json
import math
import random
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from shopsearch.errors import InvalidQueryError, MissingDependencyError
from shopsearch.evaluation.metrics import ndcg
from shopsearch.models.cross_encoder import (
    IGNORE_INDEX,
    CrossEncoderConfig,
    CrossEncoderReranker,
    MultiTaskCrossEncoder,
    encode_inputs,
    expected_gain,
    multitask_loss,
    pairwise_rank_loss,
)
from shopsearch.progress import NULL_PROGRESS, Progress
from shopsearch.training.config import (
    LoraConfig,
    ModelConfig,
    OptimConfig,
    TrainConfig,
    parse_freeze,
)
from shopsearch.training.data import PairExample

__all__ = [
    "TrainResult",
    "apply_freeze",
    "apply_lora",
    "count_parameters",
    "train_cross_encoder",
]

Evaluate = Callable[[CrossEncoderReranker], Mapping[str, float]]

BEST_DIR = "best"
CHECKPOINT_DIR = "checkpoint"
_CHECKPOINT_FILE = "state.pt"
#: Batches are formed from pools of this many batches' worth of examples sorted by length.
_BUCKET_POOL = 50
_LAYER = re.compile(r"(?:^|\.)layer\.(\d+)\.")
_NO_DECAY = ("bias", "layernorm", "layer_norm", "norm.weight")


@dataclass
class TrainResult:
    """What a run produced; the model itself is in ``run_dir / "best"``."""

    run_dir: Path
    best_metric: float | None
    best_step: int
    history: dict[str, Any]
    trainable_params: int
    total_params: int
    seconds: float
    stopped_early: bool
    reranker: CrossEncoderReranker | None = field(default=None, repr=False)

    @property
    def best_dir(self) -> Path:
        return self.run_dir / BEST_DIR


@dataclass
class _LoopState:
    """Everything about the loop that a checkpoint must restore."""

    step: int = 0
    best_metric: float | None = None
    best_step: int = 0
    bad_evals: int = 0
    stopped_early: bool = False
    steps: list[dict[str, Any]] = field(default_factory=list)
    evals: list[dict[str, Any]] = field(default_factory=list)


# --------------------------------------------------------------------------- setup


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device


def _resolve_device(spec: str) -> torch.device:
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(spec)


def _autocast(device: torch.device, mode: str) -> contextlib.AbstractContextManager[Any]:
    """bf16 autocast: on CUDA unless ``"off"``; elsewhere only when ``"on"``."""
    enabled = mode == "on" or (mode == "auto" and device.type == "cuda")
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


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


def apply_lora(model: MultiTaskCrossEncoder, lora: LoraConfig) -> None:
    """Wrap the backbone in peft LoRA adapters: only adapters (and the heads) stay trainable."""
    try:
        import peft
    except ImportError as exc:
        raise MissingDependencyError("peft", "train") from exc
    settings = peft.LoraConfig(
        r=lora.rank,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=list(lora.target_modules),
    )
    model.backbone = peft.get_peft_model(model.backbone, settings)


def _num_layers(model: MultiTaskCrossEncoder) -> int:
    backbone: Any = model.backbone
    config = getattr(backbone, "config", None) or backbone.get_base_model().config
    return int(config.num_hidden_layers)


def _is_frozen(name: str, kind: str, n: int, num_layers: int) -> bool:
    """Whether backbone parameter ``name`` is frozen under freeze spec ``(kind, n)``."""
    if ".pooler." in f".{name}":
        return True  # unused: the heads read the mean of the token states
    match = _LAYER.search(name)
    layer = int(match.group(1)) if match else None
    in_embeddings = "embeddings." in name
    if kind == "embeddings":
        return in_embeddings
    if kind == "bottom":
        return in_embeddings or (layer is not None and layer < n)
    if kind == "all_but_top":
        return layer is None or layer < num_layers - n
    return kind == "all"


def apply_freeze(model: MultiTaskCrossEncoder, spec: str) -> None:
    """Freeze backbone parameters per ``train.freeze``; the heads are never frozen.

    Only ever turns ``requires_grad`` off, so it composes with LoRA (``bottom:2`` then also
    freezes the adapters of the two lowest layers). The unused pooler is always frozen.
    """
    kind, n = parse_freeze(spec)
    layers = _num_layers(model)
    if n > layers:
        raise InvalidQueryError(f"train.freeze {spec!r}: the backbone has only {layers} layers")
    for name, param in model.backbone.named_parameters():
        if _is_frozen(name, kind, n, layers):
            param.requires_grad_(False)


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """``(trainable, total)`` parameter counts."""
    params = list(model.parameters())
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)


def _param_groups(model: MultiTaskCrossEncoder, optim: OptimConfig) -> list[dict[str, Any]]:
    """Backbone at ``lr``, heads at ``head_lr``; no weight decay on biases and LayerNorms."""
    groups: dict[tuple[str, bool], list[nn.Parameter]] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        part = "backbone" if name.startswith("backbone.") else "heads"
        decay = not any(marker in name.lower() for marker in _NO_DECAY)
        groups.setdefault((part, decay), []).append(param)
    return [
        {
            "name": f"{part}{'' if decay else '_no_decay'}",
            "params": params,
            "lr": optim.lr if part == "backbone" else optim.head_lr,
            "weight_decay": optim.weight_decay if decay else 0.0,
        }
        for (part, decay), params in sorted(groups.items())
    ]


def _build_optimizer(model: MultiTaskCrossEncoder, optim: OptimConfig) -> torch.optim.Optimizer:
    groups = _param_groups(model, optim)
    if optim.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=optim.lr, momentum=optim.momentum)
    # The fused kernel: on 2 CPU cores a MiniLM step's update takes ~0.08 s instead of ~0.35-1.5 s.
    device = next(p for g in groups for p in g["params"]).device
    return torch.optim.AdamW(groups, lr=optim.lr, fused=device.type in ("cpu", "cuda") or None)


def _build_scheduler(
    optimizer: torch.optim.Optimizer, total_steps: int, warmup_ratio: float
) -> torch.optim.lr_scheduler.LambdaLR:
    from transformers import get_linear_schedule_with_warmup

    warmup = int(round(warmup_ratio * total_steps))
    return get_linear_schedule_with_warmup(optimizer, warmup, total_steps)


# --------------------------------------------------------------------------- batches


class _Collate:
    """Tokenizes a list of examples into a padded batch with label tensors (picklable)."""

    def __init__(self, tokenizer: Any, max_length: int) -> None:
        self.tokenizer = tokenizer
        self.max_length = max_length

    def __call__(self, examples: Sequence[PairExample]) -> dict[str, torch.Tensor]:
        batch = encode_inputs(
            self.tokenizer,
            [ex.query for ex in examples],
            [ex.text for ex in examples],
            self.max_length,
        )
        batch["relevance"] = _labels([ex.relevance for ex in examples])
        batch["category"] = _labels([ex.category for ex in examples])
        batch["gain"] = torch.tensor([ex.gain for ex in examples], dtype=torch.float32)
        batch["prior"] = torch.tensor([ex.prior for ex in examples], dtype=torch.float32)
        groups: dict[str, int] = {}
        batch["group"] = torch.tensor(
            [groups.setdefault(ex.query, len(groups)) if ex.query else -1 for ex in examples],
            dtype=torch.long,
        )
        return batch


def _labels(values: Sequence[int | None]) -> torch.Tensor:
    return torch.tensor([IGNORE_INDEX if v is None else v for v in values], dtype=torch.long)


def _example_length(ex: PairExample) -> int:
    return len(ex.query) + len(ex.text)


def plan_batches(
    examples: Sequence[PairExample],
    batch_size: int,
    seed: int,
    epoch: int,
    *,
    by_query: bool = False,
) -> list[list[int]]:
    """One epoch's batches of example indices: shuffled, bucketed by length, reproducible.

    Examples are shuffled, cut into pools of ``50 * batch_size``, sorted by length within a
    pool (less padding), cut into batches, and the batches shuffled. With ``by_query`` each
    batch holds the pairs of one query instead (a query with more than ``batch_size`` pairs
    is dealt into near-equal batches; examples without a query are batched by length). The
    order depends only on ``(seed, epoch)``, so a resumed run sees the same batches.
    """
    rng = random.Random(seed * 1_000_003 + epoch)
    if by_query:
        return _query_batches(examples, batch_size, rng)
    order = list(range(len(examples)))
    rng.shuffle(order)
    pool = batch_size * _BUCKET_POOL
    batches: list[list[int]] = []
    for start in range(0, len(order), pool):
        chunk = sorted(order[start : start + pool], key=lambda i: _example_length(examples[i]))
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    rng.shuffle(batches)
    return batches


def _query_batches(
    examples: Sequence[PairExample], batch_size: int, rng: random.Random
) -> list[list[int]]:
    groups: dict[str, list[int]] = {}
    for i, ex in enumerate(examples):
        groups.setdefault(ex.query, []).append(i)
    batches: list[list[int]] = []
    for query in sorted(groups):
        rows = groups[query]
        rng.shuffle(rows)
        if not query:
            rows.sort(key=lambda i: _example_length(examples[i]))
            batches.extend(rows[i : i + batch_size] for i in range(0, len(rows), batch_size))
            continue
        n = math.ceil(len(rows) / batch_size)
        batches.extend(rows[k::n] for k in range(n))
    rng.shuffle(batches)
    return batches


def _epoch_loader(
    examples: Sequence[PairExample],
    batches: Sequence[list[int]],
    collate: _Collate,
    workers: int,
    seed: int,
) -> Iterator[dict[str, torch.Tensor]]:
    loader: torch.utils.data.DataLoader[Any] = torch.utils.data.DataLoader(
        examples,  # type: ignore[arg-type]
        batch_sampler=batches,
        collate_fn=collate,
        num_workers=workers,
        # Its own generator: drawing the workers' base seed from the global one would shift
        # the dropout masks of a resumed run.
        generator=torch.Generator().manual_seed(seed),
    )
    return iter(loader)


# --------------------------------------------------------------------------- steps


def _to_device(batch: Mapping[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def _forward(model: MultiTaskCrossEncoder, batch: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    return model(
        input_ids=batch["input_ids"],
        attention_mask=batch["attention_mask"],
        token_type_ids=batch.get("token_type_ids"),
    )


def _train_step(
    model: MultiTaskCrossEncoder,
    micro_batches: Sequence[Mapping[str, torch.Tensor]],
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LambdaLR,
    *,
    model_config: ModelConfig,
    gains: Sequence[float],
    device: torch.device,
    autocast: Callable[[], contextlib.AbstractContextManager[Any]],
) -> dict[str, float]:
    """One optimizer step over ``micro_batches`` (gradient accumulation); mean losses.

    ``loss = alpha * cls + (1 - alpha) * (match + rank_loss_weight * rank)``, where ``rank``
    is the pairwise loss within each query on ``expected gain + prior_weight * prior``.
    """
    model.train()
    alpha = model_config.alpha
    sums = {"loss": 0.0, "match": 0.0, "cls": 0.0, "rank": 0.0}
    for batch in micro_batches:
        batch = _to_device(batch, device)
        with autocast():
            outputs = _forward(model, batch)
        loss, parts = multitask_loss(outputs, batch["relevance"], batch["category"], alpha)
        if model_config.rank_loss_weight > 0.0 and alpha < 1.0:
            scores = expected_gain(outputs["relevance_logits"], gains)
            scores = scores + model_config.prior_weight * batch["prior"]
            rank = pairwise_rank_loss(
                scores, batch["gain"], batch["group"], model_config.rank_temperature
            )
            if rank is not None:
                loss = loss + (1.0 - alpha) * model_config.rank_loss_weight * rank
                sums["rank"] += float(rank.detach())
        (loss / len(micro_batches)).backward()
        sums["loss"] += float(loss.detach())
        sums["match"] += float(parts["match"])
        sums["cls"] += float(parts["cls"])
    lrs = _group_lrs(optimizer)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return {**{k: v / len(micro_batches) for k, v in sums.items()}, **lrs}


def _group_lrs(optimizer: torch.optim.Optimizer) -> dict[str, float]:
    """The learning rates used by this step: ``lr`` (backbone) and ``head_lr``."""
    lrs: dict[str, float] = {}
    for group in optimizer.param_groups:
        key = "lr" if group["name"].startswith("backbone") else "head_lr"
        lrs.setdefault(key, float(group["lr"]))
    return lrs


# --------------------------------------------------------------------------- validation


@torch.inference_mode()
def _validation_outputs(
    reranker: CrossEncoderReranker,
    examples: Sequence[PairExample],
    batch_size: int,
    autocast: Callable[[], contextlib.AbstractContextManager[Any]],
) -> tuple[torch.Tensor, torch.Tensor]:
    """Relevance and category logits of every validation example, in input order (CPU)."""
    model = reranker.model
    was_training = model.training
    model.eval()
    collate = _Collate(reranker.tokenizer, reranker.config.max_length)
    order = sorted(range(len(examples)), key=lambda i: _example_length(examples[i]))
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
    target = _labels(labels)
    if not bool((target != IGNORE_INDEX).any()):
        return None
    return float(F.cross_entropy(logits, target, ignore_index=IGNORE_INDEX))


def _accuracy(logits: torch.Tensor, labels: Sequence[int | None]) -> float | None:
    target = _labels(labels)
    mask = target != IGNORE_INDEX
    if not bool(mask.any()):
        return None
    return float((logits.argmax(dim=-1)[mask] == target[mask]).float().mean())


def ranking_ndcg(examples: Sequence[PairExample], scores: Sequence[float]) -> float | None:
    """Mean over queries of nDCG (whole list) of the examples ranked by ``scores``."""
    by_query: dict[str, list[tuple[float, str]]] = {}
    qrels: dict[str, dict[str, float]] = {}
    for ex, score in zip(examples, scores, strict=True):
        if not ex.query or ex.relevance is None:
            continue
        by_query.setdefault(ex.query, []).append((float(score), ex.product_id))
        qrels.setdefault(ex.query, {})[ex.product_id] = ex.gain
    if not by_query:
        return None
    values = [
        ndcg([pid for _, pid in sorted(pairs, key=lambda p: -p[0])], qrels[query])
        for query, pairs in by_query.items()
    ]
    return float(np.mean(values))


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
    autocast: Callable[[], contextlib.AbstractContextManager[Any]],
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


def _stopping_value(metrics: Mapping[str, float], name: str) -> float:
    """The early-stopping metric among this evaluation's ``metrics``; an error names the rest."""
    if name not in metrics:
        raise InvalidQueryError(
            f"early stopping metric {name!r} was not computed "
            f"(validation gave: {', '.join(sorted(metrics)) or 'nothing'})"
        )
    return metrics[name]


def _improved(value: float, best: float | None, mode: str) -> bool:
    if best is None or math.isnan(best):
        return not math.isnan(value)
    return value > best if mode == "max" else value < best


# --------------------------------------------------------------------------- checkpoints


def _rng_states() -> dict[str, Any]:
    states: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _set_rng_states(states: Mapping[str, Any]) -> None:
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def _save_checkpoint(
    path: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LambdaLR,
    state: _LoopState,
    epoch: int,
) -> None:
    path.mkdir(parents=True, exist_ok=True)
    payload = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "loop": state.__dict__,
        "epoch": epoch,
        "rng": _rng_states(),
    }
    tmp = path / (_CHECKPOINT_FILE + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path / _CHECKPOINT_FILE)  # a crash mid-write keeps the previous checkpoint


def _load_checkpoint(
    path: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LambdaLR,
) -> _LoopState:
    payload = torch.load(path / _CHECKPOINT_FILE, map_location="cpu", weights_only=False)
    model.load_state_dict(payload["model"])
    optimizer.load_state_dict(payload["optimizer"])
    scheduler.load_state_dict(payload["scheduler"])
    _set_rng_states(payload["rng"])
    return _LoopState(**payload["loop"])


def _epoch_means(steps: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    by_epoch: dict[int, list[Mapping[str, Any]]] = {}
    for record in steps:
        by_epoch.setdefault(int(record["epoch"]), []).append(record)
    return [
        {
            "epoch": epoch,
            **{k: float(np.mean([r[k] for r in rs])) for k in ("loss", "match", "cls")},
        }
        for epoch, rs in sorted(by_epoch.items())
    ]


def _history(state: _LoopState, trainable: int, total: int, extra: Mapping[str, Any]) -> dict:
    return {
        "trainable_params": trainable,
        "total_params": total,
        **extra,
        "best_metric": state.best_metric,
        "best_step": state.best_step,
        "stopped_early": state.stopped_early,
        "steps": state.steps,
        "epochs": _epoch_means(state.steps),
        "evals": state.evals,
    }


# --------------------------------------------------------------------------- the loop


@dataclass
class _Plan:
    """How many batches and optimizer steps the run has."""

    batches_per_epoch: int
    accumulation: int
    steps_per_epoch: int
    total_steps: int

    @classmethod
    def of(cls, config: TrainConfig, batches: int) -> _Plan:
        """``batches``: how many batches one epoch has (see :func:`plan_batches`)."""
        loop = config.train
        steps_per_epoch = math.ceil(batches / loop.grad_accumulation)
        total = steps_per_epoch * loop.epochs
        if loop.max_steps > 0:
            total = min(total, loop.max_steps)
        return cls(batches, loop.grad_accumulation, steps_per_epoch, total)

    def step_groups(self, batches: list[list[int]]) -> list[list[list[int]]]:
        """One epoch's batches grouped into optimizer steps."""
        a = self.accumulation
        return [batches[i : i + a] for i in range(0, len(batches), a)]


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
    run_dir.mkdir(parents=True, exist_ok=True)
    config.save(run_dir / "config.json")
    train_examples: list[PairExample] = list(data.train)
    if not train_examples:
        raise InvalidQueryError("no training examples")
    validation: list[PairExample] = list(data.validation)
    loop = config.train

    _seed_everything(config.seed)
    device = _resolve_device(loop.device)
    base = base_model_dir(model_dir or config.base_model)
    reranker = _build_reranker(config, tuple(data.vocab.labels), base, device)
    model = reranker.model
    if config.lora.enabled:
        apply_lora(model, config.lora)
    apply_freeze(model, loop.freeze)
    model.to(device)
    trainable, total = count_parameters(model)

    by_query = config.model.rank_loss_weight > 0.0
    first_epoch = plan_batches(train_examples, loop.batch_size, config.seed, 0, by_query=by_query)
    plan = _Plan.of(config, len(first_epoch))
    optimizer = _build_optimizer(model, config.optim)
    scheduler = _build_scheduler(optimizer, plan.total_steps, config.optim.warmup_ratio)
    checkpoint = run_dir / CHECKPOINT_DIR
    state = _LoopState()
    if resume and (checkpoint / _CHECKPOINT_FILE).is_file():
        state = _load_checkpoint(checkpoint, model, optimizer, scheduler)

    def autocast() -> contextlib.AbstractContextManager[Any]:
        return _autocast(device, loop.bf16)

    mode = loop.early_stopping_mode
    extra = {"plan": plan.__dict__, "device": str(device), "base_model": str(base)}
    collate = _Collate(reranker.tokenizer, config.data.max_length)
    query_categories = getattr(data, "query_categories", None)

    def run_evaluation(epoch: int) -> None:
        metrics = _validate(
            reranker,
            validation,
            alpha=config.model.alpha,
            batch_size=loop.batch_size * 2,
            autocast=autocast,
            query_categories=query_categories,
        )
        if evaluate is not None:
            metrics.update({k: float(v) for k, v in evaluate(reranker).items()})
        value = _stopping_value(metrics, loop.early_stopping_metric)
        state.evals.append({"step": state.step, "epoch": epoch, **metrics})
        if _improved(value, state.best_metric, mode):
            state.best_metric, state.best_step, state.bad_evals = value, state.step, 0
            reranker.save(run_dir / BEST_DIR)
        else:
            state.bad_evals += 1
            state.stopped_early = state.bad_evals >= loop.patience
        _save_checkpoint(checkpoint, model, optimizer, scheduler, state, epoch)
        _write_json(run_dir / "history.json", _history(state, trainable, total, extra))

    with progress.stage("Training", plan.total_steps) as advance:
        advance(state.step)
        while state.step < plan.total_steps and not state.stopped_early:
            epoch, done = divmod(state.step, plan.steps_per_epoch)
            batches = plan_batches(
                train_examples,
                loop.batch_size,
                config.seed,
                epoch,
                by_query=by_query,
            )
            groups = plan.step_groups(batches)[done:]
            loader = _epoch_loader(
                train_examples,
                [b for g in groups for b in g],
                collate,
                loop.num_workers,
                seed=config.seed * 1_000_003 + epoch,
            )
            for position, group in enumerate(groups, start=done + 1):
                micro = [next(loader) for _ in group]
                record = _train_step(
                    model,
                    micro,
                    optimizer,
                    scheduler,
                    model_config=config.model,
                    gains=reranker.config.gains,
                    device=device,
                    autocast=autocast,
                )
                state.step += 1
                state.steps.append({"step": state.step, "epoch": epoch, **record})
                advance(1)
                last = state.step >= plan.total_steps
                epoch_end = position == plan.steps_per_epoch
                due = state.step % loop.eval_every == 0 if loop.eval_every else epoch_end
                if due or last:
                    run_evaluation(epoch)
                if last or state.stopped_early:
                    break

    history = _history(state, trainable, total, extra)
    _write_json(run_dir / "history.json", history)
    best = CrossEncoderReranker.load(run_dir / BEST_DIR, device=str(device))
    return TrainResult(
        run_dir=run_dir,
        best_metric=state.best_metric,
        best_step=state.best_step,
        history=history,
        trainable_params=trainable,
        total_params=total,
        seconds=time.perf_counter() - started,
        stopped_early=state.stopped_early,
        reranker=best,
    )


def _write_json(path: Path, payload: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2) + "\n")
    tmp.replace(path)
