"""Batches of (query, product) pairs for the cross-encoder: planned, tokenized, loaded.

:func:`plan_batches` decides which examples go together (length-bucketed, or one query per
batch for the pairwise rank loss), reproducibly per ``(seed, epoch)``; :class:`PairCollate`
tokenizes a batch with dynamic padding and label tensors; :func:`epoch_loader` runs both
through a ``DataLoader`` (optionally with worker processes).
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Sequence
from typing import Any

import torch

from shopsearch.models.cross_encoder import IGNORE_INDEX, encode_inputs
from shopsearch.training.data import PairExample

__all__ = ["PairCollate", "epoch_loader", "example_length", "label_tensor", "plan_batches"]

#: Batches are formed from pools of this many batches' worth of examples sorted by length.
_BUCKET_POOL = 50


class PairCollate:
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
        batch["relevance"] = label_tensor([ex.relevance for ex in examples])
        batch["category"] = label_tensor([ex.category for ex in examples])
        batch["gain"] = torch.tensor([ex.gain for ex in examples], dtype=torch.float32)
        batch["prior"] = torch.tensor([ex.prior for ex in examples], dtype=torch.float32)
        batch["weight"] = torch.tensor([ex.weight for ex in examples], dtype=torch.float32)
        groups: dict[str, int] = {}
        batch["group"] = torch.tensor(
            [groups.setdefault(ex.query, len(groups)) if ex.query else -1 for ex in examples],
            dtype=torch.long,
        )
        return batch


def label_tensor(values: Sequence[int | None]) -> torch.Tensor:
    """Class ids, ``None`` (no label) as ``IGNORE_INDEX``."""
    return torch.tensor([IGNORE_INDEX if v is None else v for v in values], dtype=torch.long)


def example_length(ex: PairExample) -> int:
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
        chunk = sorted(order[start : start + pool], key=lambda i: example_length(examples[i]))
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
            rows.sort(key=lambda i: example_length(examples[i]))
            batches.extend(rows[i : i + batch_size] for i in range(0, len(rows), batch_size))
            continue
        n = math.ceil(len(rows) / batch_size)
        batches.extend(rows[k::n] for k in range(n))
    rng.shuffle(batches)
    return batches


def epoch_loader(
    examples: Sequence[PairExample],
    batches: Sequence[list[int]],
    collate: PairCollate,
    workers: int,
    seed: int,
) -> Iterator[dict[str, torch.Tensor]]:
    """The collated ``batches`` of ``examples``, in order (``workers`` processes, or none)."""
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
