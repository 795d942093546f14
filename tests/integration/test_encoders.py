"""The default int8 ONNX encoder against the PyTorch sentence-transformers reference."""

from __future__ import annotations

import json

import numpy as np
import pytest

from shopsearch.catalog.schema import Product
from shopsearch.errors import InvalidQueryError, ModelLoadError
from shopsearch.models.encoders import EncoderConfig, load_encoder, product_text
from shopsearch.models.onnx import META_FILE, OnnxEncoder, cached_export, export_fingerprint

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
    assert cosine.min() > 0.97 and cosine.mean() > 0.98, cosine


def test_batching_and_order_do_not_change_vectors(encoder):
    one_by_one = np.stack([encoder.encode_queries([t])[0] for t in TEXTS])
    seen: list[int] = []
    batched = encoder.encode_products(TEXTS, progress=seen.append)
    np.testing.assert_allclose(one_by_one, batched, atol=2e-3)
    assert sum(seen) == len(TEXTS)


def test_the_export_is_cached_and_records_its_parity(encoder):
    from shopsearch.models.encoders import resolve_encoder_path

    model_dir = resolve_encoder_path("minilm")
    path = cached_export(model_dir)
    assert path.name.endswith(export_fingerprint(model_dir, "int8"))
    meta = json.loads((path / META_FILE).read_text())
    assert meta["precision"] == "int8" and meta["parity_min_cosine"] >= 0.97


def test_missing_export_and_bad_config_raise(tmp_path):
    with pytest.raises(ModelLoadError):
        OnnxEncoder(tmp_path, name="nothing")
    with pytest.raises(ModelLoadError, match="unknown encoder"):
        load_encoder(EncoderConfig(name=str(tmp_path / "missing")))
    with pytest.raises(InvalidQueryError):
        EncoderConfig(backend="tpu")
    with pytest.raises(InvalidQueryError):
        EncoderConfig(product_fields=("title", "weight"))


def test_product_text_joins_the_chosen_fields():
    p = Product("1", "Slipper", brand="UGG", color="", category=("Shoes", "Women"))
    assert product_text(p) == "Slipper"
    assert product_text(p, ("title", "brand", "color", "category")) == (
        "Slipper | UGG | Shoes > Women"
    )
