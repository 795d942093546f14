"""The training loop every fine-tuned model shares; a :class:`TrainingTask` says what differs.

:class:`Trainer` owns the run: the plan (batches per epoch, gradient accumulation, epochs or
max steps), the optimizer and the warmup-then-decay schedule, the optimizer steps, periodic
validation with early stopping and the best model, resumable checkpoints, ``history.json``
and the progress bar. A task brings the model and everything about it: its batches, its
loss, its validation metrics and how its best model is saved. The cross-encoder
(:mod:`shopsearch.training.trainer`) and the bi-encoder (:mod:`shopsearch.training.bi_encoder`)
are the two tasks. A run directory holds::

    config.json        the TrainConfig
    history.json       per-step losses and learning rates, per-epoch means, evaluations
    best/              the best model so far (saved by the task)
    checkpoint/        model, optimizer, scheduler, RNG states, loop state (tasks with
                       ``checkpoints = True``; ``resume=True`` continues from it)

>>> device = start_run(config, run_dir)                       # doctest: +SKIP
>>> result = Trainer(MyTask(config, data, device), config, run_dir).fit()   # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from shopsearch.errors import InvalidQueryError
from shopsearch.progress import NULL_PROGRESS, Progress
from shopsearch.training.checkpoint import has_checkpoint, load_checkpoint, save_checkpoint
from shopsearch.training.config import LoopConfig, TrainConfig
from shopsearch.training.optim import build_optimizer, build_scheduler, group_lrs
from shopsearch.training.runtime import resolve_device, seed_everything
from shopsearch.training.trainable import count_parameters

__all__ = [
    "BEST_DIR",
    "CHECKPOINT_DIR",
    "LoopState",
    "Plan",
    "RunResult",
    "Trainer",
    "TrainingTask",
    "start_run",
    "write_json",
]

BEST_DIR = "best"
CHECKPOINT_DIR = "checkpoint"


@dataclass
class RunResult:
    """What a run produced; the best model is in ``run_dir / "best"``."""

    run_dir: Path
    best_metric: float | None
    best_step: int
    history: dict[str, Any]
    trainable_params: int
    total_params: int
    seconds: float
    stopped_early: bool

    @property
    def best_dir(self) -> Path:
        return self.run_dir / BEST_DIR


@dataclass
class LoopState:
    """Everything about the loop that a checkpoint must restore."""

    step: int = 0
    best_metric: float | None = None
    best_step: int = 0
    bad_evals: int = 0
    stopped_early: bool = False
    steps: list[dict[str, Any]] = field(default_factory=list)
    evals: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Plan:
    """How many batches and optimizer steps the run has."""

    batches_per_epoch: int
    accumulation: int
    steps_per_epoch: int
    total_steps: int

    @classmethod
    def of(cls, loop: LoopConfig, batches: int) -> Plan:
        """``batches``: how many batches one epoch has (the same every epoch)."""
        steps_per_epoch = math.ceil(batches / loop.grad_accumulation)
        total = steps_per_epoch * loop.epochs
        if loop.max_steps > 0:
            total = min(total, loop.max_steps)
        return cls(batches, loop.grad_accumulation, steps_per_epoch, total)

    def step_groups(self, batches: list[list[int]]) -> list[list[list[int]]]:
        """One epoch's batches grouped into optimizer steps."""
        a = self.accumulation
        return [batches[i : i + a] for i in range(0, len(batches), a)]


class TrainingTask(ABC):
    """What one kind of model brings to the :class:`Trainer`.

    ``model`` is the module the optimizer trains (and a checkpoint saves). Batches are lists
    of example indices planned per epoch (:meth:`epoch_batches`, the same count every epoch,
    reproducible from the seed and the epoch so that a resumed run sees the same ones);
    :meth:`loader` turns them into what :meth:`loss` takes.
    """

    model: nn.Module
    #: The progress bar's label.
    label: str = "Training"
    #: Step-record keys averaged per epoch in ``history.json``.
    epoch_keys: tuple[str, ...] = ("loss",)
    #: Evaluate the starting model before the first step: ``best/`` is never worse than it.
    evaluate_first: bool = False
    #: Save ``checkpoint/`` at each evaluation, so that ``fit(resume=True)`` can continue.
    checkpoints: bool = False

    def is_head(self, name: str) -> bool:
        """Whether parameter ``name`` trains at ``optim.head_lr`` (else at ``optim.lr``)."""
        return False

    @abstractmethod
    def describe(self, plan: Plan) -> dict[str, Any]:
        """What ``history.json`` says about the run besides the parameter counts."""

    @abstractmethod
    def epoch_batches(self, epoch: int) -> list[list[int]]:
        """The batches of ``epoch``, in training order."""

    @abstractmethod
    def loader(self, epoch: int, batches: Sequence[list[int]]) -> Iterator[Any]:
        """One training batch per entry of ``batches`` (part of ``epoch``'s), in order."""

    @abstractmethod
    def loss(self, batch: Any) -> tuple[torch.Tensor, dict[str, float]]:
        """The loss to minimise on ``batch`` and its parts to log (the same keys every time)."""

    @abstractmethod
    def validate(self) -> dict[str, float]:
        """Validation metrics of the current model (``val_...``)."""

    @abstractmethod
    def save_best(self, path: Path) -> None:
        """Save the current model, the best so far, at ``path``."""

    def end_evaluation(self) -> None:  # noqa: B027 - a hook that most tasks leave empty
        """Called after each evaluation, whether it raised or not (e.g. to remove files)."""


def start_run(config: TrainConfig, run_dir: Path) -> torch.device:
    """Create ``run_dir``, save the config in it, seed every RNG; the device to train on."""
    run_dir.mkdir(parents=True, exist_ok=True)
    config.save(run_dir / "config.json")
    seed_everything(config.seed)
    return resolve_device(config.train.device)


class Trainer:
    """Runs the optimizer steps, evaluations and checkpoints of ``task`` under ``config``.

    ``loss = task.loss(batch)`` is averaged over ``train.grad_accumulation`` batches per
    optimizer step. Validation runs every ``train.eval_every`` steps (0: at each epoch's
    end) and at the last step; the best ``train.early_stopping_metric`` so far is saved to
    ``best/``, and training stops after ``train.patience`` evaluations without improvement.
    ``started`` (a ``time.perf_counter()``) is when the run began, for its ``seconds``.
    """

    def __init__(
        self,
        task: TrainingTask,
        config: TrainConfig,
        run_dir: Path,
        *,
        started: float | None = None,
    ) -> None:
        self.task = task
        self.loop = config.train
        self.run_dir = Path(run_dir)
        self.started = time.perf_counter() if started is None else started
        self.trainable, self.total = count_parameters(task.model)
        self.plan = Plan.of(config.train, len(task.epoch_batches(0)))
        self.optimizer = build_optimizer(task.model, config.optim, task.is_head)
        self.scheduler = build_scheduler(
            self.optimizer, self.plan.total_steps, config.optim.warmup_ratio
        )
        self.header = {
            "trainable_params": self.trainable,
            "total_params": self.total,
            **task.describe(self.plan),
        }
        self.state = LoopState()

    def fit(self, *, progress: Progress = NULL_PROGRESS, resume: bool = False) -> RunResult:
        """Train to the end of the plan or an early stop; ``resume``: from ``checkpoint/``."""
        checkpoint = self.run_dir / CHECKPOINT_DIR
        if resume and self.task.checkpoints and has_checkpoint(checkpoint):
            loop = load_checkpoint(checkpoint, self.task.model, self.optimizer, self.scheduler)
            self.state = LoopState(**loop)
        state, plan = self.state, self.plan
        if self.task.evaluate_first and state.step == 0:
            self._evaluate(epoch=0)
        with progress.stage(self.task.label, plan.total_steps) as advance:
            advance(state.step)
            while state.step < plan.total_steps and not state.stopped_early:
                epoch, done = divmod(state.step, plan.steps_per_epoch)
                groups = plan.step_groups(self.task.epoch_batches(epoch))[done:]
                loader = self.task.loader(epoch, [b for g in groups for b in g])
                for position, group in enumerate(groups, start=done + 1):
                    record = self._step([next(loader) for _ in group])
                    state.step += 1
                    state.steps.append({"step": state.step, "epoch": epoch, **record})
                    advance(1)
                    last = state.step >= plan.total_steps
                    epoch_end = position == plan.steps_per_epoch
                    every = self.loop.eval_every
                    if (state.step % every == 0 if every else epoch_end) or last:
                        self._evaluate(epoch)
                    if last or state.stopped_early:
                        break
        history = self._history()
        write_json(self.run_dir / "history.json", history)
        return RunResult(
            run_dir=self.run_dir,
            best_metric=state.best_metric,
            best_step=state.best_step,
            history=history,
            trainable_params=self.trainable,
            total_params=self.total,
            seconds=time.perf_counter() - self.started,
            stopped_early=state.stopped_early,
        )

    def _step(self, micro_batches: Sequence[Any]) -> dict[str, float]:
        """One optimizer step over ``micro_batches`` (gradient accumulation); mean losses."""
        self.task.model.train()
        sums: dict[str, float] = {}
        for batch in micro_batches:
            loss, parts = self.task.loss(batch)
            (loss / len(micro_batches)).backward()
            for key, value in {"loss": float(loss.detach()), **parts}.items():
                sums[key] = sums.get(key, 0.0) + value
        lrs = group_lrs(self.optimizer)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return {**{k: v / len(micro_batches) for k, v in sums.items()}, **lrs}

    def _evaluate(self, epoch: int) -> None:
        """Validate, keep the best model, count evaluations without improvement, save."""
        state = self.state
        try:
            metrics = self.task.validate()
            value = _stopping_value(metrics, self.loop.early_stopping_metric)
            state.evals.append({"step": state.step, "epoch": epoch, **metrics})
            if _improved(value, state.best_metric, self.loop.early_stopping_mode):
                state.best_metric, state.best_step, state.bad_evals = value, state.step, 0
                self.task.save_best(self.run_dir / BEST_DIR)
            elif state.step > 0:  # the starting model's evaluation is the one to beat
                state.bad_evals += 1
                state.stopped_early = state.bad_evals >= self.loop.patience
        finally:
            self.task.end_evaluation()
        if self.task.checkpoints:
            save_checkpoint(
                self.run_dir / CHECKPOINT_DIR,
                self.task.model,
                self.optimizer,
                self.scheduler,
                asdict(state),
                epoch,
            )
        write_json(self.run_dir / "history.json", self._history())

    def _history(self) -> dict[str, Any]:
        state = self.state
        return {
            **self.header,
            "best_metric": state.best_metric,
            "best_step": state.best_step,
            "stopped_early": state.stopped_early,
            "steps": state.steps,
            "epochs": _epoch_means(state.steps, self.task.epoch_keys),
            "evals": state.evals,
        }


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


def _epoch_means(steps: Sequence[Mapping[str, Any]], keys: Sequence[str]) -> list[dict[str, Any]]:
    by_epoch: dict[int, list[Mapping[str, Any]]] = {}
    for record in steps:
        by_epoch.setdefault(int(record["epoch"]), []).append(record)
    return [
        {"epoch": epoch, **{k: float(np.mean([r[k] for r in rs])) for k in keys}}
        for epoch, rs in sorted(by_epoch.items())
    ]


def write_json(path: Path, payload: Any) -> None:
    """Write ``payload`` as indented JSON, atomically."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2) + "\n")
    tmp.replace(path)
