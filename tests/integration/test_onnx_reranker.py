"""The ONNX cross-encoder reranker (fp32 and int8) against the PyTorch reference, its parity
records, and the fallback from int8 to fp32 ONNX to PyTorch where parity does not hold.

The reranker has a planted relevance head (tests/reranker_support.py), so the checks hold on
any CPU: fp32 ONNX must reproduce PyTorch, int8 must rank like it, and parity is whatever
this CPU's kernels give, recorded and acted on.
"""

from __future__ import annotations

import json
import shutil
import warnings

import numpy as np
import pytest
from reranker_support import judged_pairs, planted_reranker

from shopsearch.errors import ModelLoadError, ShopSearchWarning
from shopsearch.models import onnx_reranker
from shopsearch.models.onnx_reranker import (
    META_FILE,
    PARITY_PAIRS,
    OnnxReranker,
    export_reranker,
    load_run_reranker_backend,
    reranker_parity,
)
from shopsearch.models.quantization import REFERENCE_FILE, pearson
from shopsearch.system import int8_kernel_family


@pytest.fixture(scope="module")
def reranker():
    return planted_reranker()


@pytest.fixture(scope="module")
def run_dir(reranker, tmp_path_factory):
    run = tmp_path_factory.mktemp("run")
    reranker.save(run / "best")
    return run


@pytest.fixture(scope="module")
def exported(reranker, run_dir):
    """Both exports, made where the pipeline makes them: RUN_DIR/onnx-int8, RUN_DIR/onnx-fp32."""
    paths = {}
    for precision in ("fp32", "int8"):
        paths[precision] = export_reranker(
            reranker, run_dir / f"onnx-{precision}", precision=precision
        )
    return paths


def _scores(model, pairs) -> np.ndarray:
    return np.concatenate([model.rank_scores(q, [t]) for q, t in pairs])


def test_the_planted_head_gives_scores_that_vary(reranker):
    scores = _scores(reranker, judged_pairs(20, step=2))
    assert scores.std() > 0.1  # a signal well above int8 noise, unlike a random head (~0.02)


def test_fp32_onnx_reproduces_pytorch(reranker, exported):
    onnx = OnnxReranker(exported["fp32"])
    pairs = judged_pairs(20, step=2)
    ref, got = _scores(reranker, pairs), _scores(onnx, pairs)
    assert got.dtype == np.float32 and got.shape == ref.shape
    np.testing.assert_allclose(got, ref, atol=2e-3)
    assert pearson(ref, got) > 0.9999


def test_int8_onnx_ranks_like_pytorch(reranker, exported):
    meta = json.loads((exported["int8"] / META_FILE).read_text())
    assert meta["precision"] == "int8" and meta["recipe"] == "dynamic-s8-7bit"
    assert meta["max_length"] == 64
    pairs = judged_pairs(20, step=2)  # not the parity pairs
    ref, got = _scores(reranker, pairs), _scores(OnnxReranker(exported["int8"]), pairs)
    assert pearson(ref, got) > 0.98, pearson(ref, got)


def test_each_export_records_its_parity_for_this_kind_of_cpu(reranker, exported):
    reference = _scores(reranker, PARITY_PAIRS)
    for path in exported.values():
        meta = json.loads((path / META_FILE).read_text())
        recorded = meta["parity"][int8_kernel_family()]
        assert recorded["metric"] == "pearson"
        measured = pearson(reference, _scores(OnnxReranker(path), PARITY_PAIRS))
        assert recorded["value"] == pytest.approx(measured, abs=1e-3)
        np.testing.assert_allclose(np.load(path / REFERENCE_FILE), reference, atol=1e-4)
    fp32 = json.loads((exported["fp32"] / META_FILE).read_text())
    assert fp32["parity"][int8_kernel_family()]["value"] > 0.9999


def test_parity_is_measured_again_on_another_kind_of_cpu(exported, tmp_path):
    """An export moved to a machine with other int8 kernels is re-checked there, from the
    reference saved beside it (no PyTorch needed), and the new measurement is recorded."""
    moved = tmp_path / "moved"
    shutil.copytree(exported["int8"], moved)
    meta = json.loads((moved / META_FILE).read_text())
    here = meta["parity"].pop(int8_kernel_family())
    meta["parity"]["x86-some-other-cpu"] = {"metric": "pearson", "value": 0.5, "cpu": "?"}
    (moved / META_FILE).write_text(json.dumps(meta))
    parity = reranker_parity(moved, threshold=0.99)
    assert parity.value == pytest.approx(here["value"], abs=1e-6)
    again = json.loads((moved / META_FILE).read_text())["parity"]
    assert set(again) == {"x86-some-other-cpu", int8_kernel_family()}
    (moved / REFERENCE_FILE).unlink()
    del again[int8_kernel_family()]
    (moved / META_FILE).write_text(json.dumps({**meta, "parity": again}))
    with pytest.raises(ModelLoadError, match=REFERENCE_FILE):
        reranker_parity(moved, threshold=0.99)


def test_order_and_batching_do_not_change_scores(exported):
    onnx = OnnxReranker(exported["int8"], workers=2)
    pairs = judged_pairs(20, step=2)
    query = pairs[0][0]
    texts = [t for _, t in pairs] + ["a" * 2_000]  # longer than max_length: truncated
    scores = onnx.rank_scores(query, texts)
    perm = np.random.default_rng(0).permutation(len(texts))
    permuted = onnx.rank_scores(query, [texts[i] for i in perm])
    np.testing.assert_allclose(permuted, scores[perm], atol=1e-6)
    one_by_one = np.concatenate([onnx.rank_scores(query, [t]) for t in texts])
    np.testing.assert_allclose(one_by_one, scores, atol=1e-6)
    assert onnx.rank_scores(query, []).shape == (0,)


def test_int8_is_used_where_its_parity_holds(run_dir):
    with warnings.catch_warnings():
        warnings.simplefilter("error", ShopSearchWarning)
        model, fields, choice = load_run_reranker_backend(run_dir, int8_min_pearson=0.0)
    assert choice.backend == choice.requested == "onnx-int8" and not choice.fell_back
    assert isinstance(model, OnnxReranker) and model.precision == "int8"
    assert (run_dir / "onnx-int8" / META_FILE).is_file()
    assert fields  # the product fields the run was trained on


def test_a_failed_int8_parity_falls_back_to_fp32_with_a_warning(run_dir):
    with pytest.warns(ShopSearchWarning, match=r"onnx-fp32 backend instead of onnx-int8"):
        model, _, choice = load_run_reranker_backend(run_dir, int8_min_pearson=1.0)
    assert choice.backend == "onnx-fp32" and choice.fell_back
    assert isinstance(model, OnnxReranker) and model.precision == "fp32"
    int8, fp32 = choice.parity
    assert (int8.backend, int8.passed) == ("onnx-int8", False)
    assert (fp32.backend, fp32.passed) == ("onnx-fp32", True)
    assert "pearson" in choice.reason and "< 1.0" in choice.reason
    exported_at = (run_dir / "onnx-fp32" / "model.onnx").stat().st_mtime_ns
    with pytest.warns(ShopSearchWarning):
        load_run_reranker_backend(run_dir, int8_min_pearson=1.0)
    assert (run_dir / "onnx-fp32" / "model.onnx").stat().st_mtime_ns == exported_at  # reused


def test_pytorch_is_the_last_resort(run_dir, monkeypatch):
    monkeypatch.setattr(onnx_reranker, "FP32_MIN_PEARSON", 1.01)  # fp32 cannot pass either
    with pytest.warns(ShopSearchWarning, match=r"torch backend instead of onnx-int8"):
        model, _, choice = load_run_reranker_backend(run_dir, int8_min_pearson=1.0)
    assert choice.backend == "torch" and len(choice.parity) == 2
    assert not isinstance(model, OnnxReranker)
    assert model.rank_scores("ugg slippers", ["UGG slipper"]).shape == (1,)
