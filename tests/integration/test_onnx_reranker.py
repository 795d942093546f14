"""The int8 ONNX cross-encoder reranker against the PyTorch reference."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from shopsearch.errors import ModelLoadError
from shopsearch.models.onnx_reranker import META_FILE, OnnxReranker, export_reranker

os.environ.setdefault("HF_HUB_OFFLINE", "1")

DATA = Path(__file__).resolve().parents[1] / "data"


def _pairs(limit: int = 20) -> list[tuple[str, str]]:
    titles = {}
    for line in (DATA / "tiny_catalog.jsonl").read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            titles[row["asin"]] = row["title"]
    pairs = []
    for line in (DATA / "tiny_judgments.jsonl").read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            if row["product_id"] in titles:
                pairs.append((row["query"], titles[row["product_id"]]))
    # Spread over the queries: every other judgment, so several queries are covered.
    picked = pairs[::2][:limit]
    assert len(picked) >= 10
    return picked


@pytest.fixture(scope="module")
def reranker():
    from shopsearch.models.cross_encoder import CrossEncoderReranker
    from shopsearch.models.encoders import resolve_encoder_path

    return CrossEncoderReranker.from_pretrained(
        resolve_encoder_path("minilm"), 3, ("other", "a", "b"), max_length=64, device="cpu"
    )


@pytest.fixture(scope="module")
def exported(reranker, tmp_path_factory):
    out = tmp_path_factory.mktemp("onnx-reranker")
    return export_reranker(reranker, out, precision="int8")


def test_int8_scores_correlate_with_pytorch(reranker, exported):
    meta = json.loads((exported / META_FILE).read_text())
    assert meta["precision"] == "int8" and meta["max_length"] == 64
    assert meta["parity_pearson"] >= 0.99
    onnx = OnnxReranker(exported)
    pairs = _pairs()
    ref = np.concatenate([reranker.rank_scores(q, [t]) for q, t in pairs])
    got = np.concatenate([onnx.rank_scores(q, [t]) for q, t in pairs])
    assert got.dtype == np.float32 and got.shape == ref.shape
    pearson = float(np.corrcoef(ref, got)[0, 1])
    assert pearson >= 0.99, pearson


def test_order_and_batching_do_not_change_scores(exported):
    onnx = OnnxReranker(exported, workers=2)
    pairs = _pairs()
    query = pairs[0][0]
    texts = [t for _, t in pairs] + ["a" * 2_000]  # longer than max_length: truncated
    scores = onnx.rank_scores(query, texts)
    perm = np.random.default_rng(0).permutation(len(texts))
    permuted = onnx.rank_scores(query, [texts[i] for i in perm])
    np.testing.assert_allclose(permuted, scores[perm], atol=1e-6)
    one_by_one = np.concatenate([onnx.rank_scores(query, [t]) for t in texts])
    np.testing.assert_allclose(one_by_one, scores, atol=1e-6)
    assert onnx.rank_scores(query, []).shape == (0,)


def test_missing_export_dir_raises(tmp_path):
    with pytest.raises(ModelLoadError):
        OnnxReranker(tmp_path / "nowhere")
