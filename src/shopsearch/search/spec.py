"""Pipelines written as text, like OpenSearch search pipelines or Vespa rank profiles:

    bm25 + dense -> rrf(k=60) -> cross_encoder(top=50) -> personal(top=100)

The first step names the retrievers (``bm25``, ``dense``, ``mdense``: the multilingual
dense retriever of an index with ``multilingual.enabled``; joined by ``+``) or a built-in
pipeline to extend (``hybrid -> personal(top=100)``); with several retrievers a fusion step
follows (``fuse``: the index's ``fusion`` settings; ``rrf(k=60, bm25=1, dense=1)``;
``weighted(bm25=0.3, dense=0.7)``; ``learned``: the model of ``shopsearch fusion train``),
by default ``fuse`` (the learned model where one is installed); then second stages in order
(``cross_encoder(top=N)``: N defaults to ``reranker.k``; ``personal(top=N)``: N defaults to
50). Query analysis runs before and result shaping (documents, explanations, facets) after
every pipeline.

>>> parse("rp", "hybrid -> cross_encoder(top=50) -> personal(top=100)").describe()
'analyze -> bm25 + dense -> fuse -> cross_encoder(top=50) -> personal(top=100) -> shape'
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from shopsearch.errors import InvalidQueryError

__all__ = ["BUILTIN", "FUSIONS", "PipelineSpec", "SECOND_STAGES", "Step", "parse"]

RETRIEVER_NAMES = ("bm25", "dense", "mdense")
FUSIONS = {
    "fuse": (),
    "rrf": ("k", "bm25", "dense", "mdense"),
    "weighted": ("bm25", "dense", "mdense"),
    "learned": (),
}
SECOND_STAGES = {"cross_encoder": ("top",), "personal": ("top", "at_least_k")}

#: The built-in pipelines, in the order `info` lists them.
BUILTIN: dict[str, str] = {
    "bm25": "bm25",
    "dense": "dense",
    # fuse: the learned fusion model where `shopsearch fusion train` installed one, else
    # the index's fusion settings (RRF by default); rrf: always equal-weight RRF
    "hybrid": "bm25 + dense -> fuse",
    "rrf": "bm25 + dense -> rrf",
    "rerank": "hybrid -> cross_encoder",
    # at least the k results returned are re-ordered (50, or k when larger), as always
    "personal": "hybrid -> personal(top=50, at_least_k=true)",
    # an index with multilingual.enabled: the multilingual dense retriever as a third run
    "multilingual": "bm25 + dense + mdense -> fuse",
}
NAME = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")
_CALL = re.compile(r"^([a-z_][a-z0-9_]*)\s*(?:\((.*)\))?$", re.DOTALL)


@dataclass(frozen=True)
class Step:
    name: str
    args: Mapping[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        if not self.args:
            return self.name
        args = ", ".join(f"{k}={_show(v)}" for k, v in self.args.items())
        return f"{self.name}({args})"


@dataclass(frozen=True)
class PipelineSpec:
    """A named composition: retrievers, their fusion (with several), second stages."""

    name: str
    retrievers: tuple[str, ...]
    fusion: Step | None
    stages: tuple[Step, ...]
    definition: str = ""

    def describe(self) -> str:
        steps = ["analyze", " + ".join(self.retrievers)]
        if self.fusion is not None:
            steps.append(self.fusion.describe())
        steps += [s.describe() for s in self.stages]
        return " -> ".join([*steps, "shape"])

    @property
    def stage_names(self) -> tuple[str, ...]:
        """Every stage in order, as :attr:`SearchResult.stages` lists them."""
        fusion = (self.fusion.name,) if self.fusion is not None else ()
        return ("analyze", *self.retrievers, *fusion, *(s.name for s in self.stages), "shape")


def parse(name: str, definition: str) -> PipelineSpec:
    """Parse a pipeline definition (see the module docstring); errors name the step."""
    if not NAME.match(name):
        raise InvalidQueryError(
            f"pipeline name {name!r}: use lowercase letters, digits, '_' or '-' (at most 40)"
        )
    steps = [s.strip() for s in definition.split("->")]
    if not definition.strip() or any(not s for s in steps):
        raise InvalidQueryError(f"pipeline {name!r}: empty step in {definition!r}")
    first, rest = steps[0], steps[1:]
    if first in BUILTIN and first not in RETRIEVER_NAMES:
        base = parse(first, BUILTIN[first])
        retrievers, fusion, stages = base.retrievers, base.fusion, list(base.stages)
    else:
        retrievers = tuple(r.strip() for r in first.split("+"))
        unknown = [r for r in retrievers if r not in RETRIEVER_NAMES]
        if unknown or len(set(retrievers)) != len(retrievers):
            raise InvalidQueryError(
                f"pipeline {name!r}: the first step {first!r} must name retrievers "
                f"({' + '.join(RETRIEVER_NAMES)}) or a built-in pipeline "
                f"({', '.join(n for n in BUILTIN if n not in RETRIEVER_NAMES)})"
            )
        fusion, stages = None, []
        if len(retrievers) > 1:
            fusion = Step("fuse")
            if rest and _call(name, rest[0]).name in FUSIONS:
                fusion = _checked(name, _call(name, rest[0]), FUSIONS)
                rest = rest[1:]
    for text in rest:
        step = _call(name, text)
        if step.name in FUSIONS:
            raise InvalidQueryError(
                f"pipeline {name!r}: {step.name!r} must come right after several retrievers"
            )
        stages.append(_checked(name, step, SECOND_STAGES))
    return PipelineSpec(name, retrievers, fusion, tuple(stages), definition)


def _call(pipeline: str, text: str) -> Step:
    match = _CALL.match(text)
    if match is None:
        raise InvalidQueryError(f"pipeline {pipeline!r}: cannot read step {text!r}")
    name, raw_args = match.group(1), match.group(2)
    args: dict[str, Any] = {}
    for part in (raw_args or "").split(","):
        if not part.strip():
            continue
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise InvalidQueryError(
                f"pipeline {pipeline!r}: step {text!r}: arguments are key=value, got {part!r}"
            )
        args[key.strip()] = _value(value.strip())
    return Step(name, args)


def _checked(pipeline: str, step: Step, known: Mapping[str, tuple[str, ...]]) -> Step:
    if step.name not in known:
        raise InvalidQueryError(
            f"pipeline {pipeline!r}: unknown step {step.name!r}; steps here: {', '.join(known)}"
        )
    unknown = sorted(set(step.args) - set(known[step.name]))
    if unknown:
        allowed = ", ".join(known[step.name]) or "none"
        raise InvalidQueryError(
            f"pipeline {pipeline!r}: {step.name} takes {allowed}, not {', '.join(unknown)}"
        )
    top = step.args.get("top")
    if top is not None and (isinstance(top, bool) or not isinstance(top, int) or top < 1):
        raise InvalidQueryError(f"pipeline {pipeline!r}: {step.name}: top must be >= 1")
    k = step.args.get("k")
    if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
        raise InvalidQueryError(f"pipeline {pipeline!r}: {step.name}: k must be >= 1")
    if "at_least_k" in step.args and not isinstance(step.args["at_least_k"], bool):
        raise InvalidQueryError(f"pipeline {pipeline!r}: at_least_k must be true or false")
    for weight in set(step.args) & set(RETRIEVER_NAMES):
        value = step.args[weight]
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise InvalidQueryError(f"pipeline {pipeline!r}: weight {weight} must be >= 0")
    return step


def _value(text: str) -> Any:
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)
