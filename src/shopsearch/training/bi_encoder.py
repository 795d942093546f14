"""Fine-tune the sentence-transformers bi-encoder (dense retrieval) on ESCI judgments.

:func:`train_bi_encoder` trains with MultipleNegativesRankingLoss over triples
``(query, Exact product, hard negative of the same query)``: each query must score its own
positive above every other product in the batch (the other rows' positives and all hard
negatives). It trains in the shared loop, :class:`shopsearch.training.loop.Trainer`
(seeding, AdamW with linear warmup and decay, gradient accumulation, validation with early
stopping, a progress bar; layer freezing or LoRA from :mod:`shopsearch.training.trainable`),
over the model's own forward, so it needs neither ``datasets`` nor the sentence-transformers
trainer. A run directory holds::

    config.json        the TrainConfig
    history.json       per-step losses and learning rates, per-epoch means, evaluations
    best/              the best model (a sentence-transformers directory; LoRA merged)

``best/`` works wherever an encoder directory does: ``shopsearch index --encoder RUN/best``,
``load_encoder(EncoderConfig(name="RUN/best"))`` (exported to ONNX on first use).

>>> config = TrainConfig.load("configs/bi_encoder_esci.toml")        # doctest: +SKIP
>>> result = train_bi_encoder(config, data, Path("runs/bi"))         # doctest: +SKIP
>>> encoder = load_encoder(EncoderConfig(name=str(result.best_dir)))  # doctest: +SKIP

Evaluation runs once before training too (step 0): when fine-tuning never beats the
pretrained model on validation, ``best/`` is the pretrained model, unchanged.
"""

from __future__ import annotations

import contextlib
import copy
import os
import random
import shutil
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch
from torch.nn import functional as F

from shopsearch.errors import InvalidQueryError, ModelLoadError
from shopsearch.progress import NULL_PROGRESS, Progress
from shopsearch.training.config import TrainConfig
from shopsearch.training.data import IRRELEVANT, PairExample
from shopsearch.training.loop import BEST_DIR, Plan, RunResult, Trainer, TrainingTask, start_run
from shopsearch.training.metrics import ranking_ndcg
from shopsearch.training.runtime import bf16_autocast
from shopsearch.training.trainable import freeze_backbone, with_lora

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

__all__ = [
    "DEFAULT_SCALE",
    "BiEncoderResult",
    "DistinctQueryBatchSampler",
    "Triple",
    "build_triples",
    "multiple_negatives_ranking_loss",
    "train_bi_encoder",
]

#: Evaluates a saved model directory: ``{"val_...": value}``.
Evaluate = Callable[[Path], Mapping[str, float]]

_CANDIDATE_DIR = "candidate"  # the model under evaluation when an ``evaluate`` callback runs
#: sentence-transformers' MultipleNegativesRankingLoss default: cosine * 20 (temperature 0.05).
DEFAULT_SCALE = 20.0
EXACT = 0


# --------------------------------------------------------------------------- triples


@dataclass(frozen=True)
class Triple:
    """One training row: a query, an Exact product, and one hard negative (or none)."""

    query: str
    positive: str  # product text
    positive_id: str
    negative: str | None = None  # product text of an I-labelled or mined product
    negative_id: str | None = None
    weight: float = 1.0  # the positive's example weight (its source's, in a mixture)


def _by_query(examples: Sequence[PairExample]) -> dict[str, tuple[list[PairExample], ...]]:
    """``query -> (positives, negatives, judged-not-negative ids as examples)`` in input order."""
    groups: dict[str, tuple[list[PairExample], ...]] = {}
    seen: set[tuple[str, str]] = set()
    for ex in examples:
        if not ex.query or ex.relevance is None or (ex.query, ex.product_id) in seen:
            continue
        seen.add((ex.query, ex.product_id))
        positives, negatives, others = groups.setdefault(ex.query, ([], [], []))
        if ex.relevance == EXACT:
            positives.append(ex)
        elif ex.relevance == IRRELEVANT:
            negatives.append(ex)
        else:
            others.append(ex)
    return groups


def build_triples(examples: Sequence[PairExample], seed: int, epoch: int = 0) -> list[Triple]:
    """One triple per (query, Exact product); hard negatives cycle through the query's I ones.

    Negatives are the query's I-labelled and mined examples, shuffled per ``(seed, epoch)``
    and dealt round-robin, so each is used before any repeats and every epoch pairs them
    differently. A query without negatives gets triples without one (in-batch negatives only);
    a query without Exact products gets none. Duplicate (query, product) pairs count once.
    """
    rng = random.Random(seed * 1_000_003 + epoch)
    triples: list[Triple] = []
    for query, (positives, negatives, _) in _by_query(examples).items():
        pool = list(negatives)
        rng.shuffle(pool)
        for i, pos in enumerate(positives):
            neg = pool[i % len(pool)] if pool else None
            triples.append(
                Triple(
                    query=query,
                    positive=pos.text,
                    positive_id=pos.product_id,
                    negative=neg.text if neg else None,
                    negative_id=neg.product_id if neg else None,
                    weight=pos.weight,
                )
            )
    return triples


class DistinctQueryBatchSampler(torch.utils.data.Sampler[list[int]]):
    """Batches of indices in which no query appears twice.

    Two rows of the same query would make each other's positive an in-batch "negative".
    Each batch takes one pending row from each of the ``batch_size`` queries with the most
    rows left (ties broken at random), which gives the fewest batches possible:
    ``max(most rows of one query, ceil(rows / batch_size))``; batches are smaller than
    ``batch_size`` only when fewer queries have rows left. Rows within a query and the order
    of batches are shuffled per ``(seed, epoch)``; call :meth:`set_epoch` between epochs.

    >>> sampler = DistinctQueryBatchSampler(["a", "a", "b", "c"], batch_size=2, seed=0)
    >>> sorted(len(b) for b in sampler)
    [2, 2]
    """

    def __init__(self, keys: Sequence[str], batch_size: int, *, seed: int = 0) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.keys = list(keys)
        self.batch_size = batch_size
        self.seed = seed
        self.epoch = 0
        self._groups: dict[str, list[int]] = {}
        for index, key in enumerate(self.keys):
            self._groups.setdefault(key, []).append(index)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def batches(self, epoch: int | None = None) -> list[list[int]]:
        """The batches of ``epoch`` (default: the current one)."""
        rng = random.Random(self.seed * 1_000_003 + (self.epoch if epoch is None else epoch))
        pending: dict[str, list[int]] = {}
        for key in sorted(self._groups):
            rows = list(self._groups[key])
            rng.shuffle(rows)
            pending[key] = rows
        ties = {key: rng.random() for key in pending}
        batches: list[list[int]] = []
        while pending:
            chosen = sorted(pending, key=lambda k: (-len(pending[k]), ties[k]))[: self.batch_size]
            batch = [pending[key].pop() for key in chosen]
            for key in chosen:
                if not pending[key]:
                    del pending[key]
                ties[key] = rng.random()
            rng.shuffle(batch)
            batches.append(batch)
        rng.shuffle(batches)
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches())

    def __len__(self) -> int:
        # The greedy choice depends only on the rows left per query, not on the ties.
        counts = sorted((len(rows) for rows in self._groups.values()), reverse=True)
        n = 0
        while counts:
            counts = [c - 1 if i < self.batch_size else c for i, c in enumerate(counts)]
            counts = sorted((c for c in counts if c > 0), reverse=True)
            n += 1
        return n


# --------------------------------------------------------------------------- loss


def multiple_negatives_ranking_loss(
    queries: torch.Tensor,
    positives: torch.Tensor,
    negatives: torch.Tensor | None = None,
    *,
    scale: float = DEFAULT_SCALE,
    exclude: torch.Tensor | None = None,
    weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Cross-entropy of each query over all candidates, its own positive being the target.

    Row ``i`` scores ``scale * cos(queries[i], c)`` for every candidate ``c`` in
    ``positives`` (``B`` rows, target ``i``) then ``negatives`` (``M`` rows, any ``M``), as
    sentence-transformers' MultipleNegativesRankingLoss does. ``exclude`` (``B x (B + M)``
    bool) drops candidates that are not negatives of a row (e.g. another row's product that
    this row's query also judged relevant); it must leave each row's target in.
    ``weights`` (``B``): each row's share of the mean (its source's weight in a mixture).
    """
    q = F.normalize(queries, dim=-1)
    candidates = positives if negatives is None else torch.cat([positives, negatives])
    scores = scale * q @ F.normalize(candidates, dim=-1).T
    if exclude is not None:
        scores = scores.masked_fill(exclude, float("-inf"))
    target = torch.arange(q.size(0), device=q.device)
    if weights is None:
        return F.cross_entropy(scores, target)
    losses = F.cross_entropy(scores, target, reduction="none")
    weights = weights.to(losses.device, losses.dtype)
    return (losses * weights).sum() / weights.sum()


def _exclusions(
    batch: Sequence[Triple], negatives: Sequence[Triple], not_negative: Mapping[str, set[str]]
) -> torch.Tensor | None:
    """Candidates a row's query judged E, S or C (not negatives), other than its target."""
    ids = [t.positive_id for t in batch] + [t.negative_id or "" for t in negatives]
    mask = torch.zeros(len(batch), len(ids), dtype=torch.bool)
    for i, row in enumerate(batch):
        judged = not_negative.get(row.query, set())
        for j, pid in enumerate(ids):
            if j != i and pid in judged:
                mask[i, j] = True
    return mask if bool(mask.any()) else None


# --------------------------------------------------------------------------- model


def _load_model(base: str | Path, device: torch.device) -> SentenceTransformer:
    """A sentence-transformers model: "minilm", a model directory or a bi-encoder run."""
    import transformers
    from sentence_transformers import SentenceTransformer

    from shopsearch.models.encoders import resolve_encoder_path

    path = resolve_encoder_path(str(base))
    if (path / BEST_DIR / "modules.json").is_file():
        path = path / BEST_DIR  # a bi-encoder run directory: continue from its best model
    transformers.utils.logging.disable_progress_bar()
    try:
        return SentenceTransformer(str(path), device=str(device))
    except Exception as exc:  # noqa: BLE001 - any load failure is a ModelLoadError
        raise ModelLoadError(
            f"cannot load a sentence-transformers model from {path}: {exc}"
        ) from exc


def _backbone(model: SentenceTransformer) -> Any:
    """The underlying transformers model of the first (Transformer) module."""
    first = model[0]
    if not hasattr(first, "auto_model"):
        raise ModelLoadError(
            f"fine-tuning needs a transformer as the first module, got {type(first).__name__}"
        )
    return first.auto_model


def _adapt(model: SentenceTransformer, config: TrainConfig) -> None:
    """LoRA adapters and layer freezing on the backbone, as for the cross-encoder."""
    if config.lora.enabled:
        # ``auto_model`` is a read-only alias of ``model``
        model[0].model = with_lora(_backbone(model), config.lora)
    freeze_backbone(_backbone(model), config.train.freeze)


def _merged(model: SentenceTransformer) -> SentenceTransformer:
    """``model`` with its LoRA adapters merged into the weights (a copy), or ``model``."""
    if not hasattr(_backbone(model), "merge_and_unload"):
        return model
    merged = copy.deepcopy(model)
    merged[0].model = _backbone(merged).merge_and_unload()
    return merged


def _save(model: SentenceTransformer, path: Path, max_seq_length: int | None) -> None:
    """Save a plain sentence-transformers directory at ``path`` (replacing it)."""
    tmp = path.with_name(path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    plain = _merged(model)
    trained_length = plain.max_seq_length
    plain.max_seq_length = max_seq_length  # the base model's, not the training truncation
    try:
        plain.save(str(tmp), create_model_card=False)
    finally:
        plain.max_seq_length = trained_length
    shutil.rmtree(path, ignore_errors=True)
    os.replace(tmp, path)


# --------------------------------------------------------------------------- embeddings


def _features(model: SentenceTransformer, texts: Sequence[str], device: torch.device) -> dict:
    features = model.preprocess(list(texts))
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in features.items()}


def _embed(model: SentenceTransformer, texts: Sequence[str], device: torch.device) -> torch.Tensor:
    return model(_features(model, texts, device))["sentence_embedding"]


@torch.inference_mode()
def _encode(
    model: SentenceTransformer,
    texts: Sequence[str],
    device: torch.device,
    batch_size: int,
    autocast: Callable[[], contextlib.AbstractContextManager[Any]],
) -> np.ndarray:
    """L2-normalised embeddings in eval mode, batched by length (float32, input order)."""
    was_training = model.training
    model.eval()
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    parts = []
    for start in range(0, len(order), batch_size):
        with autocast():
            vectors = _embed(model, [texts[i] for i in order[start : start + batch_size]], device)
        parts.append(F.normalize(vectors.float(), dim=-1).cpu().numpy())
    model.train(was_training)
    if not parts:
        return np.empty((0, 0), dtype=np.float32)
    stacked = np.concatenate(parts)
    out = np.empty_like(stacked)
    out[np.asarray(order)] = stacked
    return out


def _validation_ndcg(
    model: SentenceTransformer,
    examples: Sequence[PairExample],
    device: torch.device,
    batch_size: int,
    autocast: Callable[[], contextlib.AbstractContextManager[Any]],
) -> float | None:
    """Mean nDCG of each validation query's judged products ranked by cosine."""
    judged = [ex for ex in examples if ex.query and ex.relevance is not None]
    if not judged:
        return None
    queries = sorted({ex.query for ex in judged})
    texts = sorted({ex.text for ex in judged})
    q = dict(zip(queries, _encode(model, queries, device, batch_size, autocast), strict=True))
    p = dict(zip(texts, _encode(model, texts, device, batch_size, autocast), strict=True))
    scores = [float(q[ex.query] @ p[ex.text]) for ex in judged]
    return ranking_ndcg(judged, scores)


# --------------------------------------------------------------------------- training


@dataclass
class BiEncoderResult(RunResult):
    """What a run produced; the best model is saved in ``best_dir``.

    ``model`` is that best model in memory (LoRA merged), for immediate use.
    """

    model: SentenceTransformer | None = field(default=None, repr=False)


class _BiEncoderTask(TrainingTask):
    """The bi-encoder in the shared loop: distinct-query batches of triples, MNRL, cosine nDCG."""

    model: SentenceTransformer
    label = "Training bi-encoder"
    evaluate_first = True

    def __init__(
        self,
        config: TrainConfig,
        data: Any,
        model: SentenceTransformer,
        device: torch.device,
        *,
        candidate: Path,
        evaluate: Evaluate | None,
        max_seq_length: int | None,
    ) -> None:
        self.config = config
        self.model = model
        self.device = device
        self.candidate = candidate  # the model under evaluation when ``evaluate`` is given
        self.evaluate = evaluate
        self.max_seq_length = max_seq_length  # the base model's, saved with the model
        self.train_examples: list[PairExample] = list(data.train)
        self.validation: list[PairExample] = list(data.validation)
        self.triples = build_triples(self.train_examples, config.seed, 0)
        if not self.triples:
            raise InvalidQueryError("no training triples: no training query has an Exact product")
        self.not_negative = {
            query: {ex.product_id for ex in others + positives}
            for query, (positives, _, others) in _by_query(self.train_examples).items()
        }
        queries = [t.query for t in self.triples]
        self.sampler = DistinctQueryBatchSampler(queries, config.train.batch_size, seed=config.seed)
        self.best_state: dict[str, torch.Tensor] | None = None

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        return bf16_autocast(self.device, self.config.train.bf16)

    def describe(self, plan: Plan) -> dict[str, Any]:
        return {
            "task": "bi-encoder",
            "base_model": self.config.base_model,
            "device": str(self.device),
            "plan": {
                "triples_per_epoch": len(self.triples),
                "with_hard_negative": sum(t.negative is not None for t in self.triples),
                "batches_per_epoch": plan.batches_per_epoch,
                "steps_per_epoch": plan.steps_per_epoch,
                "total_steps": plan.total_steps,
            },
        }

    def epoch_batches(self, epoch: int) -> list[list[int]]:
        return self.sampler.batches(epoch)

    def loader(self, epoch: int, batches: Sequence[list[int]]) -> Iterator[list[Triple]]:
        triples = build_triples(self.train_examples, self.config.seed, epoch)
        return ([triples[i] for i in batch] for batch in batches)

    def loss(self, batch: Sequence[Triple]) -> tuple[torch.Tensor, dict[str, float]]:
        """MultipleNegativesRankingLoss over the batch's positives and hard negatives."""
        with_negative = [t for t in batch if t.negative is not None]
        docs = [t.positive for t in batch] + [cast(str, t.negative) for t in with_negative]
        with self.autocast():
            queries = _embed(self.model, [t.query for t in batch], self.device)
            candidates = _embed(self.model, docs, self.device)
        exclude = _exclusions(batch, with_negative, self.not_negative)
        loss = multiple_negatives_ranking_loss(
            queries.float(),
            candidates[: len(batch)].float(),
            candidates[len(batch) :].float() if with_negative else None,
            exclude=None if exclude is None else exclude.to(self.device),
            weights=(
                torch.tensor([t.weight for t in batch])
                if any(t.weight != 1.0 for t in batch)
                else None
            ),
        )
        return loss, {}

    def validate(self) -> dict[str, float]:
        metrics: dict[str, float] = {}
        batch_size = self.config.train.batch_size * 2
        value = _validation_ndcg(
            self.model, self.validation, self.device, batch_size, self.autocast
        )
        if value is not None:
            metrics["val_ndcg"] = value
        if self.evaluate is not None:
            _save(self.model, self.candidate, self.max_seq_length)
            metrics.update({k: float(v) for k, v in self.evaluate(self.candidate).items()})
        return metrics

    def save_best(self, path: Path) -> None:
        self.best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        if self.evaluate is not None:  # the candidate evaluated is the model: keep it
            shutil.rmtree(path, ignore_errors=True)
            os.replace(self.candidate, path)
        else:
            _save(self.model, path, self.max_seq_length)

    def end_evaluation(self) -> None:
        shutil.rmtree(self.candidate, ignore_errors=True)

    def best_model(self) -> SentenceTransformer:
        """The best model in memory, LoRA merged, in eval mode with its own max length."""
        if self.best_state is not None:
            self.model.load_state_dict(self.best_state)
        model = _merged(self.model)
        model.max_seq_length = self.max_seq_length
        model.eval()
        return model


def train_bi_encoder(
    config: TrainConfig,
    data: Any,
    run_dir: Path,
    *,
    progress: Progress = NULL_PROGRESS,
    evaluate: Evaluate | None = None,
) -> BiEncoderResult:
    """Fine-tune ``config.base_model`` with MultipleNegativesRankingLoss; keep the best model.

    ``data`` has ``train`` and ``validation`` lists of :class:`PairExample` (a
    :class:`~shopsearch.training.data.TrainingData`). Training rows are
    :func:`build_triples` of ``data.train``, batched so that no query appears twice
    (:class:`DistinctQueryBatchSampler`); candidates a row's query judged E, S or C are
    left out of its in-batch negatives. Validation (step 0, every ``train.eval_every``
    steps or each epoch, and the last step) computes ``val_ndcg``: each validation query's
    judged products ranked by cosine, nDCG over the whole list, mean over queries.
    ``evaluate(model_dir) -> {"val_...": value}`` adds metrics (or overrides it); it gets
    the current model saved as a sentence-transformers directory. Early stopping follows
    ``train.early_stopping_metric`` and ``train.patience``.
    """
    started = time.perf_counter()
    run_dir = Path(run_dir)
    device = start_run(config, run_dir)
    model = _load_model(config.base_model, device)
    saved_length = model.max_seq_length
    model.max_seq_length = config.data.max_length
    _adapt(model, config)
    model.to(device)
    task = _BiEncoderTask(
        config,
        data,
        model,
        device,
        candidate=run_dir / _CANDIDATE_DIR,
        evaluate=evaluate,
        max_seq_length=saved_length,
    )
    result = Trainer(task, config, run_dir, started=started).fit(progress=progress)
    return BiEncoderResult(**vars(result), model=task.best_model())
