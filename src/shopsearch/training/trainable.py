"""Which parameters a fine-tuning run trains: layer freezing, LoRA adapters, counts.

Both trainers adapt a transformers backbone the same way: the cross-encoder's
``MultiTaskCrossEncoder.backbone`` and the bi-encoder's first sentence-transformers module.

>>> model.backbone = with_lora(model.backbone, config.lora)  # doctest: +SKIP
>>> freeze_backbone(model.backbone, "bottom:2")              # doctest: +SKIP
"""

from __future__ import annotations

import re
from typing import Any

from torch import nn

from shopsearch.errors import InvalidQueryError, MissingDependencyError
from shopsearch.training.config import LoraConfig, parse_freeze

__all__ = ["count_parameters", "freeze_backbone", "keep_lowest_layers", "with_lora"]

_LAYER = re.compile(r"(?:^|\.)layer\.(\d+)\.")


def with_lora(backbone: nn.Module, lora: LoraConfig) -> nn.Module:
    """``backbone`` wrapped in peft LoRA adapters: only the adapters stay trainable in it."""
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
    return peft.get_peft_model(backbone, settings)


def _num_layers(backbone: Any) -> int:
    config = getattr(backbone, "config", None) or backbone.get_base_model().config
    return int(config.num_hidden_layers)


def _is_frozen(name: str, kind: str, n: int, num_layers: int) -> bool:
    """Whether backbone parameter ``name`` is frozen under freeze spec ``(kind, n)``."""
    if ".pooler." in f".{name}":
        return True  # unused: the heads and sentence-transformers pool the token states
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


def freeze_backbone(backbone: nn.Module, spec: str) -> None:
    """Freeze ``backbone`` parameters per ``train.freeze`` (heads live outside it).

    Only ever turns ``requires_grad`` off, so it composes with LoRA (``bottom:2`` then also
    freezes the adapters of the two lowest layers). The unused pooler is always frozen.
    """
    kind, n = parse_freeze(spec)
    layers = _num_layers(backbone)
    if n > layers:
        raise InvalidQueryError(f"train.freeze {spec!r}: the backbone has only {layers} layers")
    for name, param in backbone.named_parameters():
        if _is_frozen(name, kind, n, layers):
            param.requires_grad_(False)


def keep_lowest_layers(backbone: nn.Module, n: int) -> None:
    """Drop all but the lowest ``n`` transformer layers of a BERT-family ``backbone`` (in
    place; ``n`` = 0 keeps them all): a smaller, faster model that starts from the pretrained
    (or fine-tuned) lower layers, e.g. a student to distil a 6-layer teacher into. The saved
    model's config records the new depth, so it loads and exports like any other."""
    if n == 0:
        return
    layers = _num_layers(backbone)
    if n > layers:
        raise InvalidQueryError(f"model.layers = {n}: the backbone has only {layers} layers")
    encoder = getattr(backbone, "encoder", None)
    if encoder is None or not isinstance(getattr(encoder, "layer", None), nn.ModuleList):
        raise InvalidQueryError(
            f"model.layers: cannot cut {type(backbone).__name__} (not a BERT-family encoder)"
        )
    encoder.layer = nn.ModuleList(list(encoder.layer)[:n])
    backbone.config.num_hidden_layers = n  # type: ignore[union-attr]


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """``(trainable, total)`` parameter counts."""
    params = list(model.parameters())
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)
