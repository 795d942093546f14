"""ONNX export of the cross-encoder reranker, int8 quantization, and an ONNX Runtime reranker
that needs neither torch nor transformers at run time.

Follows :mod:`shopsearch.models.onnx` (the bi-encoder export): ``torch.onnx.export(...,
dynamo=True)`` (the legacy exporter is silently wrong with transformers 5), per-channel
dynamic int8 quantization with ``onnxruntime.quantization.quantize_dynamic``, a parity check
against PyTorch, and one (query, text) pair per ``session.run`` on a thread pool: dynamic
int8 quantization scales activations per call, so in a batch a pair's score would depend on
its batch-mates and on padding.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from shopsearch.errors import MissingDependencyError, ModelLoadError
from shopsearch.models.onnx import (
    MODEL_FILE,
    TOKENIZER_FILE,
    _quiet,
    export_module,
    single_thread_session,
)
from shopsearch.models.scoring import with_prior

__all__ = ["META_FILE", "MIN_PARITY_PEARSON", "OnnxReranker", "export_reranker"]

ONNX_FORMAT = 1
META_FILE = "export.json"
PRECISIONS = ("fp32", "int8")
MIN_PARITY_PEARSON = 0.99
PARITY_PAIRS = (
    ("ugg slippers women", "UGG Women's Fluff Yeah Slide Slipper, Magnolia, 11"),
    ("ugg slippers women", "Stainless Steel Insulated Water Bottle, 32 oz, Black"),
    ("toddler water bottle without straw", "Kids Water Bottle with Straw Lid, 12 oz, Blue"),
    ("toddler water bottle without straw", "Toddler Sippy Cup, Spill Proof, No Straw, 2 Pack"),
    ("tan strappy heels for women size 8", "Women's Strappy Block Heel Sandal, Tan, Size 8"),
    ("tan strappy heels for women size 8", "Men's Leather Oxford Dress Shoe, Black, 10"),
    ("kitchen towels cotton", "Kitchen towels, 100% cotton, set of 6 | Utopia | Grey"),
    ("kitchen towels cotton", "Bluetooth Wireless Earbuds with Charging Case | Electronics"),
    ("保温杯 儿童", "Thermos Funtainer Insulated Food Jar, 10 oz, Blue"),
    ("usb c charger", "Anker 65W USB C Charger, Foldable PD Wall Charger | Anker | White"),
)


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.std() == 0.0 or b.std() == 0.0:
        return 1.0 if np.allclose(a, b, atol=1e-4) else 0.0
    return float(np.corrcoef(a, b)[0, 1])


def export_reranker(reranker: Any, out_dir: Path, *, precision: str = "int8") -> Path:
    """Export ``reranker`` (a :class:`CrossEncoderReranker`) to ``out_dir``, check parity.

    The graph takes ``input_ids``, ``attention_mask`` and ``token_type_ids`` (dynamic batch
    and sequence axes) and returns ``relevance_logits`` (float32). ``out_dir`` also gets the
    tokenizer (``tokenizer.json``) and ``export.json`` (precision, max_length, gains, score).
    Raises :class:`ModelLoadError` when the scores correlate below
    :data:`MIN_PARITY_PEARSON` with PyTorch's.
    """
    if precision not in PRECISIONS:
        raise ModelLoadError(f"precision must be one of {', '.join(PRECISIONS)}")
    try:
        import onnxruntime  # noqa: F401
        import torch
    except ImportError as exc:
        raise MissingDependencyError(exc.name or "onnxruntime", "onnx") from exc
    out_dir = Path(out_dir)
    with _quiet():
        _export(reranker, out_dir, precision, torch)
    return out_dir


def _export(reranker: Any, out_dir: Path, precision: str, torch: Any) -> None:
    from shopsearch.models.cross_encoder import encode_inputs

    model = reranker.model
    if next(iter(model.parameters())).device.type != "cpu":
        model = copy.deepcopy(model).cpu()

    class Relevance(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask, token_type_ids):  # noqa: ANN001, ANN201
            out = self.inner(input_ids, attention_mask, token_type_ids)
            return out["relevance_logits"].float()

    wrapped = Relevance(model).eval()
    was_training = model.training
    model.eval()
    config = reranker.config
    tokenizer = reranker.tokenizer
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        example = encode_inputs(
            tokenizer, ["a query", "q"], ["a first example text", "x"], config.max_length
        )
        if "token_type_ids" not in example:
            example["token_type_ids"] = torch.zeros_like(example["input_ids"])
        names = ["input_ids", "attention_mask", "token_type_ids"]
        export_module(
            wrapped,
            {n: example[n] for n in names},
            "relevance_logits",
            out_dir / MODEL_FILE,
            precision=precision,
        )
        _save_tokenizer(tokenizer, out_dir)
        meta: dict[str, Any] = {
            "format": ONNX_FORMAT,
            "source": str(getattr(config, "base_model", "")),
            "precision": precision,
            "max_length": int(config.max_length),
            "gains": [float(g) for g in config.gains],
            "score": str(config.score),
            "prior_weight": float(config.prior_weight),
        }
        (out_dir / META_FILE).write_text(json.dumps(meta, indent=2))

        queries = [q for q, _ in PARITY_PAIRS]
        texts = [t for _, t in PARITY_PAIRS]
        with torch.inference_mode():
            inputs = encode_inputs(tokenizer, queries, texts, config.max_length)
            logits = model(**inputs)["relevance_logits"].float().numpy()
        reference = _scores(logits, meta["gains"], meta["score"])
        onnx = OnnxReranker(out_dir, workers=2)
        exported = np.concatenate([onnx.rank_scores(q, [t]) for q, t in PARITY_PAIRS])
    finally:
        model.train(was_training)
    pearson = _pearson(reference, exported)
    meta["parity_pearson"] = pearson
    (out_dir / META_FILE).write_text(json.dumps(meta, indent=2))
    if not pearson >= MIN_PARITY_PEARSON:
        raise ModelLoadError(
            f"ONNX reranker export ({precision}) disagrees with PyTorch: Pearson {pearson:.4f} "
            f"< {MIN_PARITY_PEARSON}"
        )


def _save_tokenizer(tokenizer: Any, out_dir: Path) -> None:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        backend.save(str(out_dir / TOKENIZER_FILE))
    else:
        tokenizer.save_pretrained(str(out_dir))
    if not (out_dir / TOKENIZER_FILE).is_file():
        raise ModelLoadError(
            f"the reranker's tokenizer wrote no {TOKENIZER_FILE} (not a fast one?)"
        )


def _scores(logits: np.ndarray, gains: Sequence[float], score: str) -> np.ndarray:
    """Expected gain (or probability of class 0, ``p_exact``) of softmax(logits), per row."""
    logits = np.asarray(logits, dtype=np.float64)
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    probs = shifted / shifted.sum(axis=-1, keepdims=True)
    if score == "p_exact":
        return probs[:, 0].astype(np.float32)
    return (probs @ np.asarray(gains, dtype=np.float64)).astype(np.float32)


class OnnxReranker:
    """A cross-encoder exported by :func:`export_reranker`, run with ONNX Runtime.

    Same ``rank_scores(query, texts)`` as :class:`CrossEncoderReranker`. Each pair runs alone
    through a single-threaded session (so its score depends on the pair only, not on its
    neighbours), and pairs are spread over ``workers`` threads (default ``os.cpu_count()``).
    """

    def __init__(self, model_dir: str | Path, *, workers: int | None = None) -> None:
        try:
            import onnxruntime  # noqa: F401 - fail early with the extra to install
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise MissingDependencyError(exc.name or "onnxruntime", "onnx") from exc
        model_dir = Path(model_dir)
        meta_path = model_dir / META_FILE
        if not meta_path.is_file() or not (model_dir / MODEL_FILE).is_file():
            raise ModelLoadError(f"{model_dir} holds no ONNX reranker export ({META_FILE})")
        meta = json.loads(meta_path.read_text())
        try:
            self._session = single_thread_session(model_dir / MODEL_FILE)
            self._tokenizer = Tokenizer.from_file(str(model_dir / TOKENIZER_FILE))
        except Exception as exc:  # noqa: BLE001 - any load failure is a ModelLoadError
            raise ModelLoadError(f"cannot load the ONNX reranker in {model_dir}: {exc}") from exc
        self.max_length = int(meta["max_length"])
        self._tokenizer.enable_truncation(self.max_length, strategy="longest_first")
        self._tokenizer.no_padding()
        self._input_names = {i.name for i in self._session.get_inputs()}
        self.gains = tuple(float(g) for g in meta["gains"])
        self.score = str(meta.get("score", "expected_gain"))
        self.prior_weight = float(meta.get("prior_weight", 0.0))
        self.precision = str(meta["precision"])
        self.workers = workers or os.cpu_count() or 1
        self._pool = ThreadPoolExecutor(max_workers=self.workers)

    def _logits_one(self, query: str, text: str) -> np.ndarray:
        encoding = self._tokenizer.encode(query, text) if query else self._tokenizer.encode(text)
        feeds = {
            "input_ids": np.asarray([encoding.ids], dtype=np.int64),
            "attention_mask": np.asarray([encoding.attention_mask], dtype=np.int64),
            "token_type_ids": np.asarray([encoding.type_ids], dtype=np.int64),
        }
        feeds = {k: v for k, v in feeds.items() if k in self._input_names}
        (logits,) = self._session.run(None, feeds)
        return np.asarray(logits[0], dtype=np.float32)

    def relevance_logits(self, query: str, texts: Sequence[str]) -> np.ndarray:
        """``(len(texts), relevance_classes)`` logits, one pair per session run."""
        if not texts:
            return np.zeros((0, len(self.gains)), dtype=np.float32)
        rows = list(self._pool.map(lambda t: self._logits_one(query, t), texts))
        return np.stack(rows)

    def rank_scores(
        self, query: str, texts: Sequence[str], priors: Sequence[float] | None = None
    ) -> np.ndarray:
        """One score per text for ``query`` (higher is more relevant), float32."""
        if not texts:
            return np.zeros(0, dtype=np.float32)
        scores = _scores(self.relevance_logits(query, texts), self.gains, self.score)
        return with_prior(scores, priors, self.prior_weight)

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    def __del__(self) -> None:
        pool = getattr(self, "_pool", None)
        if pool is not None:
            pool.shutdown(wait=False)


ONNX_RUN_SUBDIR = "onnx-int8"


def load_run_onnx_reranker(run_dir: Path) -> tuple[OnnxReranker, tuple[str, ...]]:
    """The int8 ONNX form of a cross-encoder run, exported into ``RUN_DIR/onnx-int8`` once.

    Returns the reranker and the product fields the run was trained on.
    """
    import os
    import shutil
    import uuid

    from shopsearch.models.cross_encoder import load_run_reranker

    run_dir = Path(run_dir)
    target = run_dir / ONNX_RUN_SUBDIR
    torch_reranker, fields = load_run_reranker(run_dir)  # also validates the run
    if not (target / "export.json").is_file():
        tmp = run_dir / f".{ONNX_RUN_SUBDIR}-{uuid.uuid4().hex}"
        try:
            export_reranker(torch_reranker, tmp)
            os.replace(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return OnnxReranker(target), fields
