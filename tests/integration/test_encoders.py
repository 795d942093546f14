"""The default int8 ONNX encoder against the PyTorch sentence-transformers reference."""

from __future__ import annotations

import json

import numpy as np
import pytest

from shopsearch.catalog.schema import Product
from shopsearch.errors import InvalidQueryError, ModelLoadError, ShopSearchWarning
from shopsearch.models.encoders import EncoderConfig, load_encoder, product_text
from shopsearch.models.onnx import (
    META_FILE,
    PARITY_TEXTS,
    OnnxEncoder,
    cached_export,
    export_fingerprint,
)
from shopsearch.models.quantization import DEFAULT_RECIPE, min_cosine
from shopsearch.system import int8_kernel_family

TEXTS = [
    "ugg slippers women",
    "Kitchen towels, 100% cotton, set of 6",
    "tennis lacoste hombre",
    "保温杯 儿童",
    "a" * 2_000,  # longer than max_seq_length: truncated, not an error
]


@pytest.fixture(scope="module")
def torch_encoder():
    return load_encoder(EncoderConfig(backend="torch"))


def test_onnx_int8_agrees_with_pytorch(encoder, torch_encoder):
    a = encoder.encode_queries(TEXTS)
    b = torch_encoder.encode_queries(TEXTS)
    assert a.shape == b.shape == (len(TEXTS), 384) and a.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, rtol=1e-4)
    cosine = (a * b).sum(axis=1)
    # int8 noise depends on the CPU's kernels (0.971 for the 2,000-character text on AVX2
    # alone); a broken export (wrong pooling, the legacy exporter) gives ~0.75.
    assert cosine.min() > 0.95 and cosine.mean() > 0.98, cosine


def test_batching_and_order_do_not_change_vectors(encoder):
    one_by_one = np.stack([encoder.encode_queries([t])[0] for t in TEXTS])
    seen: list[int] = []
    batched = encoder.encode_products(TEXTS, progress=seen.append)
    np.testing.assert_allclose(one_by_one, batched, atol=2e-3)
    assert sum(seen) == len(TEXTS)


def test_the_export_is_cached_and_records_its_parity(encoder, torch_encoder):
    from shopsearch.models.encoders import resolve_encoder_path

    model_dir = resolve_encoder_path("minilm")
    path = cached_export(model_dir)
    assert path.name.endswith(export_fingerprint(model_dir, "int8"))
    meta = json.loads((path / META_FILE).read_text())
    assert meta["precision"] == "int8" and meta["recipe"] == DEFAULT_RECIPE
    recorded = meta["parity"][int8_kernel_family()]
    # the recorded value is what this CPU gives: recompute it from both encoders
    onnx = OnnxEncoder(path, name="check").encode_queries(list(PARITY_TEXTS))
    reference = torch_encoder.encode_queries(list(PARITY_TEXTS))
    assert recorded["value"] == pytest.approx(min_cosine(reference, onnx), abs=2e-3)
    assert encoder.backend_choice.requested == "onnx-int8"
    if encoder.backend == "onnx-int8":
        assert recorded["value"] >= EncoderConfig().int8_min_cosine


def test_a_failed_int8_parity_falls_back_to_fp32_with_a_warning(torch_encoder):
    with pytest.warns(ShopSearchWarning, match="onnx-fp32 backend instead of onnx-int8"):
        fp32 = load_encoder(EncoderConfig(int8_min_cosine=1.0))
    assert fp32.backend == "onnx-fp32" and fp32.backend_choice.fell_back
    assert [p.backend for p in fp32.backend_choice.parity] == ["onnx-int8", "onnx-fp32"]
    assert [p.passed for p in fp32.backend_choice.parity] == [False, True]
    cosine = (fp32.encode_queries(TEXTS) * torch_encoder.encode_queries(TEXTS)).sum(axis=1)
    assert cosine.min() > 0.9999  # fp32 ONNX is PyTorch


def test_pytorch_is_the_last_resort(monkeypatch):
    from shopsearch.models import onnx

    monkeypatch.setattr(onnx, "FP32_MIN_COSINE", 1.01)  # fp32 cannot pass either
    with pytest.warns(ShopSearchWarning, match="torch backend instead of onnx-int8"):
        encoder = load_encoder(EncoderConfig(int8_min_cosine=1.0))
    assert encoder.backend == "torch" and "onnx-fp32 agrees" in encoder.backend_choice.reason


def test_missing_export_and_bad_config_raise(tmp_path):
    with pytest.raises(ModelLoadError):
        OnnxEncoder(tmp_path, name="nothing")
    with pytest.raises(ModelLoadError, match="unknown encoder"):
        load_encoder(EncoderConfig(name=str(tmp_path / "missing")))
    with pytest.raises(InvalidQueryError):
        EncoderConfig(backend="tpu")
    with pytest.raises(InvalidQueryError):
        EncoderConfig(product_fields=("title", "weight"))
    with pytest.raises(InvalidQueryError, match="int8_min_cosine"):
        EncoderConfig(int8_min_cosine=1.5)


def test_product_text_joins_the_chosen_fields():
    p = Product("1", "Slipper", brand="UGG", color="", category=("Shoes", "Women"))
    assert product_text(p) == "Slipper"
    assert product_text(p, ("title", "brand", "color", "category")) == (
        "Slipper | UGG | Shoes > Women"
    )
