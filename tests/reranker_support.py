"""A cross-encoder with a planted relevance signal, for tests of its exports and backends.

A freshly initialised relevance head reads a random direction of the pooled embedding, so
its scores barely vary across pairs (std ~0.02): int8 quantization noise is then a large
share of them, and how large depends on the CPU's int8 kernels (Pearson 0.9888 with PyTorch
on the parity pairs on an AVX2-only AMD EPYC, against a 0.99 check that passed on the Xeons
the tests were written on). Tests of export parity must not hinge on that. The planted head reads
the direction along which the pooled embeddings of real (query, product) pairs vary most,
with logits spread over several units, so any correct export reproduces its ranking on any
CPU, while a broken export (wrong inputs, wrong pooling, a wrong graph) still cannot.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tests_support import TINY_CATALOG, TINY_JUDGMENTS

CATEGORIES = ("other", "Shoes", "Kitchen")


def judged_pairs(limit: int | None = None, *, step: int = 1) -> list[tuple[str, str]]:
    """(query, title) pairs of the tiny judgments, every ``step``-th one."""
    titles = {}
    for line in TINY_CATALOG.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            titles[row["asin"]] = row["title"]
    pairs = []
    for line in TINY_JUDGMENTS.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            if row["product_id"] in titles:
                pairs.append((row["query"], titles[row["product_id"]]))
    return pairs[::step][:limit]


def planted_reranker(pairs: Sequence[tuple[str, str]] | None = None, *, max_length: int = 64):
    """A MiniLM cross-encoder whose relevance head reads the main direction of variation of
    the pooled embeddings of ``pairs`` (default: all tiny judgments)."""
    import torch

    from shopsearch.models.cross_encoder import CrossEncoderReranker, encode_inputs
    from shopsearch.models.encoders import resolve_encoder_path

    reranker = CrossEncoderReranker.from_pretrained(
        resolve_encoder_path("minilm"), len(CATEGORIES), CATEGORIES, max_length=max_length
    )
    pairs = list(pairs or judged_pairs())
    model = reranker.model.eval()
    with torch.inference_mode():
        inputs = encode_inputs(
            reranker.tokenizer, [q for q, _ in pairs], [t for _, t in pairs], max_length
        )
        pooled = model.pool(**inputs).float().numpy()
    centred = pooled - pooled.mean(axis=0)
    direction = np.linalg.svd(centred, full_matrices=False)[2][0]
    spread = float((centred @ direction).std())
    head = model.relevance_head
    with torch.no_grad():
        head.weight.zero_()
        head.bias.zero_()
        weight = torch.as_tensor(direction / spread * 2.0, dtype=head.weight.dtype)
        head.weight[0] = weight  # class E rises along the direction, class I falls
        head.weight[-1] = -weight
        head.bias[0] = -float(pooled.mean(axis=0) @ direction) / spread * 2.0
        head.bias[-1] = -head.bias[0]
    return reranker


def save_planted_run(run: Path) -> Path:
    """A `shopsearch train`-like run directory (``best/``) holding :func:`planted_reranker`."""
    planted_reranker().save(Path(run) / "best")
    return Path(run)
