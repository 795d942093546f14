"""Multi-task cross-encoder: ESCI relevance of (query, product) pairs and product categories.

A BERT-family backbone reads ``[CLS] query [SEP] product text [SEP]``; the masked mean of its
token states feeds two linear heads: ``relevance`` (ESCI classes E, S, C, I) and ``category``.
The category head also reads a single sequence (a query alone, or a product text alone), which
is how queries are classified. A pair is ranked by its expected gain
``sum_c p(c) * gain(c)`` with the ESCI gains (1, 0.1, 0.01, 0).

Training lives in :mod:`shopsearch.training.trainer`; this module only defines the network,
the loss and the inference wrapper.

>>> reranker = CrossEncoderReranker.load("runs/ce/best")                # doctest: +SKIP
>>> reranker.rank_scores("ugg slippers women", ["UGG Scuffette II", "Phone case"])  # doctest: +SKIP
array([0.83, 0.01], dtype=float32)
"""

from __future__ import annotations

import contextlib
import copy
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from shopsearch.errors import InvalidQueryError, ModelLoadError
from shopsearch.models.scoring import standardize, with_prior

__all__ = [
    "ESCI_CLASS_GAINS",
    "IGNORE_INDEX",
    "CrossEncoderConfig",
    "CrossEncoderReranker",
    "MultiTaskCrossEncoder",
    "encode_inputs",
    "expected_gain",
    "multitask_loss",
    "pairwise_rank_loss",
    "standardize",
    "with_prior",
]

#: Gains of the relevance classes 0..3 (E, S, C, I), as in ``evaluation.judgments.ESCI_GAINS``.
ESCI_CLASS_GAINS: tuple[float, ...] = (1.0, 0.1, 0.01, 0.0)
#: Label value of an example that carries no label for a task (cross-entropy ignores it).
IGNORE_INDEX = -100
SCORES = ("expected_gain", "p_exact")

_CONFIG_FILE = "reranker.json"
_HEADS_FILE = "heads.pt"
_MODEL_DIR = "model"


@dataclass(frozen=True)
class CrossEncoderConfig:
    """What a saved cross-encoder needs besides its weights (written as ``reranker.json``)."""

    num_categories: int
    category_labels: tuple[str, ...] = ()
    relevance_classes: int = 4
    gains: tuple[float, ...] = ESCI_CLASS_GAINS
    dropout: float = 0.1
    max_length: int = 128
    batch_size: int = 32
    score: str = "expected_gain"  # or "p_exact": probability of class 0 (E)
    base_model: str = ""  # where the backbone came from, for the record
    # Rank score = relevance score + prior_weight * standardize(prior), where the prior is
    # the zero-shot dense similarity of the query and the product (0 = relevance alone).
    prior_weight: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "category_labels", tuple(self.category_labels))
        object.__setattr__(self, "gains", tuple(float(g) for g in self.gains))
        if len(self.gains) != self.relevance_classes:
            raise InvalidQueryError(
                f"{self.relevance_classes} relevance classes need as many gains, "
                f"got {len(self.gains)}"
            )
        if self.category_labels and len(self.category_labels) != self.num_categories:
            raise InvalidQueryError(
                f"{self.num_categories} categories but {len(self.category_labels)} labels"
            )
        if self.score not in SCORES:
            raise InvalidQueryError(f"score {self.score!r} is not one of {', '.join(SCORES)}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CrossEncoderConfig:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


# --------------------------------------------------------------------------- network


class MultiTaskCrossEncoder(nn.Module):
    """Backbone + masked mean pooling + dropout + relevance and category heads.

    ``forward`` returns ``{"relevance_logits": (B, R), "category_logits": (B, C)}``. Parameter
    names of the heads start with ``relevance_head.`` / ``category_head.``; everything else is
    under ``backbone.``.
    """

    def __init__(
        self,
        backbone: nn.Module,
        *,
        relevance_classes: int = 4,
        num_categories: int = 1,
        dropout: float = 0.1,
        hidden_size: int | None = None,
    ) -> None:
        super().__init__()
        backbone_config: Any = getattr(backbone, "config", None)
        hidden = hidden_size or int(backbone_config.hidden_size)
        self.backbone = backbone
        self.dropout = nn.Dropout(dropout)
        self.relevance_head = nn.Linear(hidden, relevance_classes)
        self.category_head = nn.Linear(hidden, max(1, num_categories))

    def init_heads(
        self,
        seed: int,
        std: float = 0.02,
        heads: Sequence[str] = ("relevance_head", "category_head"),
    ) -> None:
        """Reset ``heads`` to N(0, std) weights and zero biases, reproducibly from ``seed``."""
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for head in (getattr(self, name) for name in heads):
                weight = torch.empty(head.weight.shape).normal_(0.0, std, generator=generator)
                head.weight.copy_(weight)
                head.bias.zero_()

    def pool(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Masked mean of the backbone's last hidden states: one vector per sequence."""
        kwargs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            kwargs["token_type_ids"] = token_type_ids
        hidden = self.backbone(**kwargs).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        pooled = self.dropout(self.pool(input_ids, attention_mask, token_type_ids))
        return {
            "relevance_logits": self.relevance_head(pooled),
            "category_logits": self.category_head(pooled),
        }


def expected_gain(relevance_logits: torch.Tensor, gains: Sequence[float]) -> torch.Tensor:
    """``sum_c softmax(logits)_c * gains[c]`` per row (float32)."""
    probs = torch.softmax(relevance_logits.float(), dim=-1)
    return probs @ torch.tensor(gains, dtype=probs.dtype, device=probs.device)


def pairwise_rank_loss(
    scores: torch.Tensor,
    gains: torch.Tensor,
    groups: torch.Tensor,
    temperature: float,
    weights: torch.Tensor | None = None,
) -> torch.Tensor | None:
    """RankNet-style loss over the pairs of one group (query) whose gains differ.

    For rows i, j of the same group (``groups >= 0``) with ``gains[i] > gains[j]``, the loss
    is ``softplus(-(s_i - s_j) / temperature)`` weighted by ``gains[i] - gains[j]``
    (a miss of E vs I costs more than S vs C) and by the rows' ``weights`` (a query is
    one source's: its rows share the weight); the weighted mean over such pairs.
    ``None`` when the batch holds no such pair.
    """
    scores = scores.float()
    gains = gains.to(scores.device).float()
    groups = groups.to(scores.device)
    same = (groups[:, None] == groups[None, :]) & (groups[:, None] >= 0)
    weight = (gains[:, None] - gains[None, :]).clamp(min=0.0) * same
    if weights is not None:
        weight = weight * weights.to(scores.device).float()[:, None]
    if not bool((weight > 0).any()):
        return None
    margin = (scores[:, None] - scores[None, :]) / temperature
    return (F.softplus(-margin) * weight).sum() / weight.sum()


def _masked_cross_entropy(
    logits: torch.Tensor, labels: torch.Tensor | None, weights: torch.Tensor | None = None
) -> torch.Tensor | None:
    """Mean cross-entropy over labelled rows (weighted by ``weights``); ``None`` when no
    row carries a label."""
    if labels is None:
        return None
    labels = labels.to(logits.device)
    labelled = labels != IGNORE_INDEX
    if not bool(labelled.any()):
        return None
    if weights is None:
        return F.cross_entropy(logits.float(), labels, ignore_index=IGNORE_INDEX)
    losses = F.cross_entropy(logits.float(), labels, ignore_index=IGNORE_INDEX, reduction="none")
    w = weights.to(logits.device).float() * labelled
    return (losses * w).sum() / w.sum()


def multitask_loss(
    outputs: Mapping[str, torch.Tensor],
    relevance: torch.Tensor | None,
    category: torch.Tensor | None,
    alpha: float,
    weights: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """``alpha * L_cls + (1 - alpha) * L_match`` and its parts ``{"match", "cls"}``.

    Each part is the cross-entropy over the rows that carry that label (``IGNORE_INDEX`` or a
    ``None`` tensor marks none); a task with no label in the batch contributes 0. A task whose
    weight is 0 is not computed, so ``alpha=0`` needs no category labels and ``alpha=1`` no
    relevance labels. ``weights`` weighs the rows (a mixture's source weights). The parts
    are detached (for logging).
    """
    if not 0.0 <= alpha <= 1.0:
        raise InvalidQueryError(f"alpha must be in [0, 1], got {alpha}")
    # A zero that stays in the graph, so backward() works even when no task has a label.
    total = outputs["relevance_logits"].sum() * 0.0
    parts: dict[str, torch.Tensor] = {}
    weighted = (
        ("match", 1.0 - alpha, outputs["relevance_logits"], relevance),
        ("cls", alpha, outputs["category_logits"], category),
    )
    for name, weight, logits, labels in weighted:
        loss = _masked_cross_entropy(logits, labels, weights) if weight > 0.0 else None
        if loss is None:
            parts[name] = torch.zeros((), device=logits.device)
            continue
        total = total + weight * loss
        parts[name] = loss.detach()
    return total, parts


# --------------------------------------------------------------------------- inputs


def encode_inputs(
    tokenizer: Any,
    queries: Sequence[str] | None,
    texts: Sequence[str],
    max_length: int,
) -> dict[str, torch.Tensor]:
    """Tokenize a batch, padded to its longest row (dynamic padding).

    Rows whose query is empty (or all rows when ``queries`` is None) are single sequences
    ``[CLS] text [SEP]``; the others are pairs ``[CLS] query [SEP] text [SEP]``, truncated
    to ``max_length`` tokens.
    """
    if queries is None:
        queries = [""] * len(texts)
    if len(queries) != len(texts):
        raise InvalidQueryError(f"{len(queries)} queries for {len(texts)} texts")
    pair_rows = [i for i, q in enumerate(queries) if q]
    single_rows = [i for i, q in enumerate(queries) if not q]
    rows: list[dict[str, list[int]] | None] = [None] * len(texts)
    if pair_rows:
        enc = tokenizer(
            [queries[i] for i in pair_rows],
            [texts[i] for i in pair_rows],
            truncation=True,
            max_length=max_length,
        )
        for j, i in enumerate(pair_rows):
            rows[i] = {key: enc[key][j] for key in enc.keys()}
    if single_rows:
        enc = tokenizer([texts[i] for i in single_rows], truncation=True, max_length=max_length)
        for j, i in enumerate(single_rows):
            rows[i] = {key: enc[key][j] for key in enc.keys()}
    return _pad([r for r in rows if r is not None], int(tokenizer.pad_token_id or 0))


def _pad(rows: Sequence[Mapping[str, list[int]]], pad_id: int) -> dict[str, torch.Tensor]:
    width = max((len(r["input_ids"]) for r in rows), default=0)
    batch: dict[str, torch.Tensor] = {}
    for key in ("input_ids", "attention_mask", "token_type_ids"):
        if rows and key not in rows[0]:
            continue
        fill = pad_id if key == "input_ids" else 0
        tensor = torch.full((len(rows), width), fill, dtype=torch.long)
        for i, row in enumerate(rows):
            tensor[i, : len(row[key])] = torch.tensor(row[key], dtype=torch.long)
        batch[key] = tensor
    return batch


def _length_order(queries: Sequence[str] | None, texts: Sequence[str]) -> list[int]:
    """Row order by character length, so that batches hold rows of similar length."""
    q = queries or [""] * len(texts)
    return sorted(range(len(texts)), key=lambda i: len(q[i]) + len(texts[i]))


# --------------------------------------------------------------------------- wrapper


@contextlib.contextmanager
def _no_transformers_bars() -> Iterator[None]:
    """Hide transformers' own load/save bars (they would cut through the caller's bars)."""
    from transformers.utils import logging as hf_logging

    enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            hf_logging.enable_progress_bar()


def _load_backbone(path: Path) -> tuple[nn.Module, Any]:
    from transformers import AutoModel, AutoTokenizer

    try:
        with _no_transformers_bars():
            tokenizer = AutoTokenizer.from_pretrained(str(path))
            backbone = AutoModel.from_pretrained(str(path))
    except Exception as exc:  # noqa: BLE001 - any load failure is a ModelLoadError
        raise ModelLoadError(f"cannot load a transformer backbone from {path}: {exc}") from exc
    return backbone, tokenizer


def _base_backbone(backbone: Any) -> Any:
    """The plain transformers model: LoRA adapters (peft) merged into a copy, if any."""
    if hasattr(backbone, "merge_and_unload"):
        return copy.deepcopy(backbone).merge_and_unload()
    return backbone


class CrossEncoderReranker:
    """Inference wrapper: a :class:`MultiTaskCrossEncoder`, its tokenizer and its config.

    >>> reranker = CrossEncoderReranker.from_pretrained(                       # doctest: +SKIP
    ...     "path/to/minilm", num_categories=3, category_labels=("a", "b", "c"))
    >>> reranker.rank_scores("red shoes", ["red running shoe", "blue mug"])  # doctest: +SKIP
    >>> reranker.save("runs/ce/best"); CrossEncoderReranker.load("runs/ce/best")  # doctest: +SKIP
    """

    def __init__(
        self,
        model: MultiTaskCrossEncoder,
        tokenizer: Any,
        config: CrossEncoderConfig,
        *,
        device: str | torch.device | None = None,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.config = config
        self.device = torch.device(device) if device is not None else _model_device(model)
        self.model.to(self.device)

    # ---------------------------------------------------------------- construction

    @classmethod
    def from_pretrained(
        cls,
        base_model_dir: str | Path,
        num_categories: int,
        category_labels: Sequence[str] = (),
        config: Any = None,
        *,
        max_length: int = 128,
        seed: int = 13,
        device: str | None = None,
    ) -> CrossEncoderReranker:
        """A new cross-encoder on a pretrained backbone, with freshly (seeded) initialised heads.

        ``config`` is a ``training.config.ModelConfig`` (or anything with ``dropout``,
        ``relevance_classes`` and ``score``); ``None`` takes the defaults.
        """
        backbone, tokenizer = _load_backbone(Path(base_model_dir))
        settings = CrossEncoderConfig(
            num_categories=num_categories,
            category_labels=tuple(category_labels),
            relevance_classes=int(getattr(config, "relevance_classes", 4)),
            dropout=float(getattr(config, "dropout", 0.1)),
            score=str(getattr(config, "score", "expected_gain")),
            prior_weight=float(getattr(config, "prior_weight", 0.0)),
            max_length=max_length,
            base_model=str(base_model_dir),
        )
        model = MultiTaskCrossEncoder(
            backbone,
            relevance_classes=settings.relevance_classes,
            num_categories=num_categories,
            dropout=settings.dropout,
        )
        std = float(getattr(backbone.config, "initializer_range", 0.02))
        model.init_heads(seed, std=std)
        return cls(model, tokenizer, settings, device=device or _default_device())

    @classmethod
    def load(cls, run_dir: str | Path, device: str | None = None) -> CrossEncoderReranker:
        """Restore what :meth:`save` wrote; needs neither peft nor the base model."""
        root = Path(run_dir)
        config_path = root / _CONFIG_FILE
        if not config_path.is_file():
            raise ModelLoadError(f"no cross-encoder at {root} ({_CONFIG_FILE} is missing)")
        config = CrossEncoderConfig.from_dict(json.loads(config_path.read_text()))
        backbone, tokenizer = _load_backbone(root / _MODEL_DIR)
        model = MultiTaskCrossEncoder(
            backbone,
            relevance_classes=config.relevance_classes,
            num_categories=config.num_categories,
            dropout=config.dropout,
        )
        heads = torch.load(root / _HEADS_FILE, map_location="cpu", weights_only=True)
        model.relevance_head.load_state_dict(heads["relevance_head"])
        model.category_head.load_state_dict(heads["category_head"])
        return cls(model, tokenizer, config, device=device or _default_device())

    def save(self, run_dir: str | Path) -> Path:
        """Write ``model/`` (backbone + tokenizer; LoRA merged), ``heads.pt``, ``reranker.json``."""
        root = Path(run_dir)
        root.mkdir(parents=True, exist_ok=True)
        with _no_transformers_bars():
            _base_backbone(self.model.backbone).save_pretrained(str(root / _MODEL_DIR))
        self.tokenizer.save_pretrained(str(root / _MODEL_DIR))
        heads = {
            "relevance_head": _cpu_state(self.model.relevance_head),
            "category_head": _cpu_state(self.model.category_head),
        }
        torch.save(heads, root / _HEADS_FILE)
        (root / _CONFIG_FILE).write_text(json.dumps(self.config.to_dict(), indent=2) + "\n")
        return root

    # ---------------------------------------------------------------- inference

    @property
    def category_labels(self) -> tuple[str, ...]:
        return self.config.category_labels

    @property
    def prior_weight(self) -> float:
        return self.config.prior_weight

    def rank_scores(
        self, query: str, texts: Sequence[str], priors: Sequence[float] | None = None
    ) -> np.ndarray:
        """One score per text for ``query`` (higher is more relevant), float32.

        ``priors`` (the zero-shot dense similarity of each text, e.g. the index's dense
        scores) are added with the configured ``prior_weight``; ignored when that is 0.
        """
        if not texts:
            return np.zeros(0, dtype=np.float32)
        logits = self._logits("relevance_logits", [query] * len(texts), texts)
        if self.config.score == "p_exact":
            scores = torch.softmax(logits.float(), dim=-1)[:, 0]
        else:
            scores = expected_gain(logits, self.config.gains)
        return with_prior(scores.numpy().astype(np.float32), priors, self.config.prior_weight)

    def relevance_probabilities(self, query: str, texts: Sequence[str]) -> np.ndarray:
        """``(len(texts), relevance_classes)`` ESCI class probabilities."""
        logits = self._logits("relevance_logits", [query] * len(texts), texts)
        return torch.softmax(logits.float(), dim=-1).numpy()

    def classify_queries(self, queries: Sequence[str]) -> np.ndarray:
        """``(len(queries), num_categories)`` category probabilities of queries read alone."""
        return self._category_probabilities(queries)

    def classify_products(self, texts: Sequence[str]) -> np.ndarray:
        """``(len(texts), num_categories)`` category probabilities of product texts."""
        return self._category_probabilities(texts)

    def _category_probabilities(self, texts: Sequence[str]) -> np.ndarray:
        logits = self._logits("category_logits", None, texts)
        return torch.softmax(logits.float(), dim=-1).numpy()

    @torch.inference_mode()
    def _logits(
        self, key: str, queries: Sequence[str] | None, texts: Sequence[str]
    ) -> torch.Tensor:
        """Logits of head ``key`` for every row, batched by length, in input order (CPU)."""
        was_training = self.model.training
        self.model.eval()
        order = _length_order(queries, texts)
        out: list[torch.Tensor] = []
        size = self.config.batch_size
        for start in range(0, len(order), size):
            rows = order[start : start + size]
            batch = encode_inputs(
                self.tokenizer,
                None if queries is None else [queries[i] for i in rows],
                [texts[i] for i in rows],
                self.config.max_length,
            )
            batch = {k: v.to(self.device) for k, v in batch.items()}
            out.append(self.model(**batch)[key].float().cpu())
        self.model.train(was_training)
        logits = torch.cat(out) if out else torch.zeros(0, 1)
        result = torch.empty_like(logits)
        result[torch.tensor(order, dtype=torch.long)] = logits
        return result


def _cpu_state(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}


def _model_device(model: nn.Module) -> torch.device:
    return next(iter(model.parameters())).device


def _default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


DEFAULT_RERANK_FIELDS = ("title", "brand", "color", "category")


def load_run_reranker(
    path: Path, device: str | None = None
) -> tuple[CrossEncoderReranker, tuple[str, ...]]:
    """Load a `shopsearch train` cross-encoder run (its ``best/``) or a saved reranker dir.

    Returns the reranker and the product fields it was trained on (from the run's
    ``config.json``), so that search builds the same product text.
    """
    from shopsearch.errors import ModelLoadError

    path = Path(path)
    model_dir = path / "best" if (path / "best" / _CONFIG_FILE).is_file() else path
    if not (model_dir / _CONFIG_FILE).is_file():
        raise ModelLoadError(
            f"{path} is not a cross-encoder run: no {_CONFIG_FILE} in it or in {path / 'best'}"
        )
    fields = DEFAULT_RERANK_FIELDS
    for candidate in (model_dir / "config.json", model_dir.parent / "config.json"):
        if candidate.is_file():
            data = json.loads(candidate.read_text(encoding="utf-8"))
            fields = tuple(data.get("data", {}).get("product_fields", fields))
            break
    return CrossEncoderReranker.load(model_dir, device=device), fields
