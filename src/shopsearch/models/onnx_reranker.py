"""ONNX export of the cross-encoder reranker, int8 quantization, and an ONNX Runtime reranker
that needs neither torch nor transformers at run time.

Follows :mod:`shopsearch.models.onnx` (the bi-encoder export): ``torch.onnx.export(...,
dynamo=True)`` (the legacy exporter is silently wrong with transformers 5), dynamic int8
quantization with the portable recipe of :mod:`shopsearch.models.quantization`, parity
against PyTorch measured on each kind of CPU it runs on, and one (query, text) pair per
``session.run`` on a thread pool: dynamic int8 quantization scales activations per call, so
in a batch a pair's score would depend on its batch-mates and on padding.

:func:`load_run_reranker_backend` is what the search pipeline uses: int8 ONNX where its
parity holds on this CPU, else fp32 ONNX, else PyTorch, with a warning that says why.
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
from shopsearch.models.quantization import (
    DEFAULT_RECIPE,
    BackendChoice,
    Parity,
    choose_backend,
    export_parity,
    fallback_chain,
    save_reference,
)
from shopsearch.models.scoring import with_prior
from shopsearch.native import onnxruntime

__all__ = [
    "DEFAULT_INT8_MIN_PEARSON",
    "META_FILE",
    "OnnxReranker",
    "export_reranker",
    "load_run_reranker_backend",
    "reranker_parity",
]

ONNX_FORMAT = 2  # 2: quantization recipe recorded, parity reference saved, parity per CPU kind
META_FILE = "export.json"
PRECISIONS = ("fp32", "int8")
#: Default for ``reranker.int8_min_pearson``: the int8 export's scores of PARITY_PAIRS must
#: correlate at least this well with PyTorch's on the CPU at hand.
DEFAULT_INT8_MIN_PEARSON = 0.99
#: fp32 ONNX must reproduce PyTorch.
FP32_MIN_PEARSON = 0.9999
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
    ("usb c charger", "Lightning to USB Cable, 6 ft, MFi Certified | Amazon Basics"),
    ("usb c charger", "Women's Cotton Crew Socks, 6 Pairs | Hanes | White"),
    ("running shoes men", "Men's Revel 5 Running Shoe, Black/White, 10.5 | Brooks"),
    ("running shoes men", "Women's Ghost 14 Running Shoe | Brooks | Pink"),
    ("running shoes men", "Cast Iron Skillet, 12 inch, Pre-Seasoned | Lodge"),
    ("iphone 13 case clear", "Clear Case for iPhone 13, Shockproof, Slim Fit | Spigen"),
    ("iphone 13 case clear", "Tempered Glass Screen Protector for iPhone 13, 3 Pack"),
    ("iphone 13 case clear", "Dog Chew Toy, Durable Rubber Bone | Nylabone"),
    ("queen size sheets", "Queen Sheet Set, 4 Piece, Brushed Microfiber | Grey"),
    ("queen size sheets", "King Size Comforter Set, 7 Piece | Navy"),
    ("queen size sheets", "Wireless Gaming Mouse, RGB, 16000 DPI | Logitech"),
    ("coffee maker", "12-Cup Programmable Coffee Maker, Black | Mr. Coffee"),
    ("coffee maker", "Coffee Filters, Basket, 200 Count"),
    ("coffee maker", "Yoga Mat, Non Slip, 6mm | Gaiam | Purple"),
    ("lego star wars", "LEGO Star Wars Millennium Falcon Building Kit 75257"),
    ("lego star wars", "Star Wars The Mandalorian Poster, 24x36"),
    ("lego star wars", "Garden Hose, 50 ft, Expandable | Green"),
    ("保温杯 儿童", "Kids Insulated Water Bottle 儿童保温杯, 12 oz | Thermos"),
    ("dog food grain free", "Grain Free Dry Dog Food, Salmon & Sweet Potato, 24 lb"),
    ("dog food grain free", "Cat Litter, Clumping, Unscented, 40 lb"),
)


def export_reranker(
    reranker: Any, out_dir: Path, *, precision: str = "int8", recipe: str = DEFAULT_RECIPE
) -> Path:
    """Export ``reranker`` (a :class:`CrossEncoderReranker`) to ``out_dir``, measure parity.

    The graph takes ``input_ids``, ``attention_mask`` and ``token_type_ids`` (dynamic batch
    and sequence axes) and returns ``relevance_logits`` (float32). ``out_dir`` also gets the
    tokenizer (``tokenizer.json``), PyTorch's scores of :data:`PARITY_PAIRS`
    (``parity_reference.npy``) and ``export.json`` (precision, recipe, max_length, gains,
    score, and the Pearson correlation with PyTorch per kind of CPU). Whether that parity
    is good enough is decided when loading (:func:`load_run_reranker_backend`).
    """
    if precision not in PRECISIONS:
        raise ModelLoadError(f"precision must be one of {', '.join(PRECISIONS)}")
    onnxruntime()
    try:
        import torch
    except ImportError as exc:
        raise MissingDependencyError(exc.name or "torch", "train") from exc
    out_dir = Path(out_dir)
    with _quiet():
        _export(reranker, out_dir, precision, recipe, torch)
    reranker_parity(out_dir, threshold=0.0)  # measured and recorded for this kind of CPU
    return out_dir


def reranker_parity(export_dir: Path, *, threshold: float) -> Parity:
    """Pearson correlation of the export's scores of :data:`PARITY_PAIRS` with PyTorch's on
    this kind of CPU (measured once per kind and recorded in ``export.json``)."""
    export_dir = Path(export_dir)
    meta = json.loads((export_dir / META_FILE).read_text(encoding="utf-8"))

    def outputs() -> np.ndarray:
        onnx = OnnxReranker(export_dir, workers=1)
        try:
            return np.concatenate([onnx.rank_scores(q, [t]) for q, t in PARITY_PAIRS])
        finally:
            onnx.close()

    return export_parity(
        export_dir,
        meta_file=META_FILE,
        metric="pearson",
        backend=f"onnx-{meta['precision']}",
        threshold=threshold,
        outputs=outputs,
    )


def _export(reranker: Any, out_dir: Path, precision: str, recipe: str, torch: Any) -> None:
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
            recipe=recipe,
        )
        _save_tokenizer(tokenizer, out_dir)
        meta: dict[str, Any] = {
            "format": ONNX_FORMAT,
            "source": str(getattr(config, "base_model", "")),
            "precision": precision,
            "recipe": recipe if precision == "int8" else None,
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
    finally:
        model.train(was_training)
    save_reference(out_dir, reference)


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
        onnxruntime()  # fail early, and in the safe import order
        from tokenizers import Tokenizer

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
        self.backend = f"onnx-{self.precision}"
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


def load_run_reranker_backend(
    run_dir: Path,
    backend: str = "onnx-int8",
    *,
    int8_min_pearson: float = DEFAULT_INT8_MIN_PEARSON,
) -> tuple[Any, tuple[str, ...], BackendChoice]:
    """A cross-encoder run on the first backend, from ``backend`` on, whose parity holds here.

    ONNX forms are exported once into ``RUN_DIR/onnx-int8`` and ``RUN_DIR/onnx-fp32``.
    ``onnx-int8`` falls back to ``onnx-fp32``, then to PyTorch, with a warning, where its
    scores correlate below ``int8_min_pearson`` with PyTorch's on this CPU. Returns the
    reranker, the product fields the run was trained on, and the :class:`BackendChoice`.
    """
    from shopsearch.models.cross_encoder import load_run_reranker

    run_dir = Path(run_dir)
    torch_reranker, fields = load_run_reranker(run_dir)  # also validates the run

    def try_backend(name: str) -> tuple[Any, Parity | None]:
        if name == "torch":
            return torch_reranker, None
        precision = name.removeprefix("onnx-")
        export = _run_export(run_dir, torch_reranker, precision)
        threshold = int8_min_pearson if precision == "int8" else FP32_MIN_PEARSON
        parity = reranker_parity(export, threshold=threshold)
        return (OnnxReranker(export) if parity.passed else None), parity

    reranker, choice = choose_backend(
        backend, fallback_chain(backend), try_backend, what=f"reranker {run_dir}"
    )
    return reranker, fields, choice


def _run_export(run_dir: Path, torch_reranker: Any, precision: str) -> Path:
    """``RUN_DIR/onnx-<precision>``, exported once (again if an older format is there)."""
    import shutil
    import uuid

    target = run_dir / f"onnx-{precision}"
    meta_path = target / META_FILE
    if meta_path.is_file():
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if meta.get("format") == ONNX_FORMAT:
            return target
    tmp = run_dir / f".onnx-{precision}-{uuid.uuid4().hex}"
    try:
        export_reranker(torch_reranker, tmp, precision=precision)
        old = run_dir / f".onnx-{precision}-old-{uuid.uuid4().hex}"
        if target.exists():
            os.replace(target, old)
        os.replace(tmp, target)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target
