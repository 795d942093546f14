"""int8 quantization of exported models, their parity with PyTorch on *this* CPU, and the
choice of backend with a safe fallback.

Why this exists: dynamic int8 models multiply uint8 activations by int8 weights. CPUs with
VNNI (AVX-512 VNNI, AVX-VNNI, AMX) sum those products in 32 bits; AVX2 alone goes through
``vpmaddubsw``, which saturates each pair of products at 16 bits. The same int8 model
therefore scores differently on different CPUs: the cross-encoder that agreed with PyTorch
at Pearson 0.999 on a Xeon agreed at 0.9888 on an AMD EPYC without VNNI, and a hard parity
error made ``shopsearch refresh`` fail there. Hence:

- the default recipe, ``dynamic-s8-7bit``, quantizes weights per channel to 7 bits
  (``reduce_range``): a pair of products then fits in 16 bits, so AVX2 computes exactly what
  VNNI does; measured in ``benchmarks/bench_quantization.py`` (same speed as 8 bits);
- parity is measured per *kernel family* (:func:`shopsearch.system.int8_kernel_family`) and
  recorded in the export's ``export.json``; an export moved to another kind of CPU is
  re-checked there against the reference outputs saved beside it (``parity_reference.npy``,
  PyTorch's outputs on fixed inputs), without needing PyTorch;
- :func:`choose_backend` walks ``onnx-int8 -> onnx-fp32 -> torch`` and takes the first
  backend whose parity holds, with a :class:`~shopsearch.errors.ShopSearchWarning` that says
  why when it is not the one asked for. A user command never fails because of the CPU model.
"""

from __future__ import annotations

import json
import os
import uuid
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from shopsearch.errors import ModelLoadError, ShopSearchWarning
from shopsearch.system import cpu_model, int8_kernel_family

__all__ = [
    "DEFAULT_RECIPE",
    "RECIPES",
    "BackendChoice",
    "Parity",
    "choose_backend",
    "min_cosine",
    "pearson",
    "quantize",
]

#: Dynamic quantization recipes (``onnxruntime.quantization.quantize_dynamic`` arguments).
RECIPES: dict[str, dict[str, Any]] = {
    # int8 weights per output channel, 7 bits: no 16-bit saturation on AVX2 (the default)
    "dynamic-s8-7bit": {"weight_type": "QInt8", "per_channel": True, "reduce_range": True},
    # int8 weights per output channel, 8 bits (the recipe of shopsearch 0.1.0)
    "dynamic-s8": {"weight_type": "QInt8", "per_channel": True, "reduce_range": False},
    # uint8 weights per channel (U8U8 kernels: no saturation, slower on x86)
    "dynamic-u8": {"weight_type": "QUInt8", "per_channel": True, "reduce_range": False},
    # int8 weights, one scale per tensor
    "dynamic-s8-tensor": {"weight_type": "QInt8", "per_channel": False, "reduce_range": False},
}
DEFAULT_RECIPE = "dynamic-s8-7bit"
FALLBACK_ORDER = ("onnx-int8", "onnx-fp32", "torch")
REFERENCE_FILE = "parity_reference.npy"


def quantize(fp32_path: Path, out_path: Path, recipe: str = DEFAULT_RECIPE) -> Path:
    """Write the int8 form of ``fp32_path`` to ``out_path`` with a recipe of :data:`RECIPES`."""
    if recipe not in RECIPES:
        raise ModelLoadError(f"unknown quantization recipe {recipe!r}: {', '.join(RECIPES)}")
    from shopsearch.native import onnxruntime

    onnxruntime()  # the safe import order; quantization itself is pure Python + onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    args = dict(RECIPES[recipe])
    args["weight_type"] = getattr(QuantType, args["weight_type"])
    quantize_dynamic(str(fp32_path), str(out_path), **args)
    return out_path


def min_cosine(reference: np.ndarray, got: np.ndarray) -> float:
    """Smallest row-wise cosine between two sets of vectors."""
    a = np.asarray(reference, dtype=np.float64)
    b = np.asarray(got, dtype=np.float64)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return float(np.min((a * b).sum(axis=1) / np.maximum(norms, 1e-12)))


def pearson(reference: np.ndarray, got: np.ndarray) -> float:
    """Pearson correlation of two score vectors (1.0 for two equal constants)."""
    a = np.asarray(reference, dtype=np.float64).ravel()
    b = np.asarray(got, dtype=np.float64).ravel()
    if a.std() == 0.0 or b.std() == 0.0:
        return 1.0 if np.allclose(a, b, atol=1e-4) else 0.0
    return float(np.corrcoef(a, b)[0, 1])


@dataclass(frozen=True)
class Parity:
    """How closely a backend reproduces PyTorch's outputs, measured on one kind of CPU."""

    backend: str  # "onnx-int8", "onnx-fp32" or "torch"
    metric: str  # "min_cosine" (encoders) or "pearson" (rerankers)
    value: float
    threshold: float
    kernels: str  # shopsearch.system.int8_kernel_family() where it was measured

    @property
    def passed(self) -> bool:
        return self.value >= self.threshold

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}


@dataclass(frozen=True)
class BackendChoice:
    """The backend a model runs on, what was asked for, and the parity that decided it."""

    requested: str
    backend: str
    parity: tuple[Parity, ...] = field(default_factory=tuple)
    reason: str = ""

    @property
    def fell_back(self) -> bool:
        return self.backend != self.requested

    def to_dict(self) -> dict[str, Any]:
        return {
            "requested": self.requested,
            "backend": self.backend,
            "reason": self.reason,
            "parity": [p.to_dict() for p in self.parity],
        }

    def summary(self) -> str:
        """One line, e.g. ``onnx-int8 (min_cosine 0.9921 >= 0.97 on x86-avx2)``."""
        measured = next((p for p in self.parity if p.backend == self.backend), None)
        text = self.backend
        if measured is not None:
            text += (
                f" ({measured.metric} {measured.value:.4f} >= {measured.threshold} "
                f"on {measured.kernels})"
            )
        if self.fell_back:
            text += f"; asked for {self.requested}: {self.reason}"
        return text


# ---------------------------------------------------------------- parity of one export


def save_reference(export_dir: Path, reference: np.ndarray) -> None:
    """Save PyTorch's outputs on the parity inputs beside an export."""
    np.save(Path(export_dir) / REFERENCE_FILE, np.asarray(reference, dtype=np.float32))


def export_parity(
    export_dir: Path,
    *,
    meta_file: str,
    metric: str,
    backend: str,
    threshold: float,
    outputs: Callable[[], np.ndarray],
) -> Parity:
    """The parity of the export in ``export_dir`` on this kind of CPU.

    Read from ``meta_file`` (``parity`` by kernel family) when it was measured on this kind of
    CPU before; otherwise ``outputs()`` (the export's outputs on the parity inputs) are
    compared with the saved reference and the result is recorded (best effort: a read-only
    directory is measured again next time).
    """
    export_dir = Path(export_dir)
    kernels = int8_kernel_family()
    meta_path = export_dir / meta_file
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    recorded = meta.get("parity", {}).get(kernels)
    if recorded is not None and recorded.get("metric") == metric:
        value = float(recorded["value"])
    else:
        reference_path = export_dir / REFERENCE_FILE
        if not reference_path.is_file():
            raise ModelLoadError(f"{export_dir} has no {REFERENCE_FILE}: export it again")
        reference = np.load(reference_path)
        compare = min_cosine if metric == "min_cosine" else pearson
        value = compare(reference, outputs())
        meta.setdefault("parity", {})[kernels] = {
            "metric": metric,
            "value": value,
            "cpu": cpu_model(),
        }
        _write_json_atomic(meta_path, meta)
    return Parity(backend, metric, value, threshold, kernels)


def _write_json_atomic(path: Path, data: Mapping[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    try:
        tmp.write_text(json.dumps(data, indent=2), encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)


# ---------------------------------------------------------------- choosing the backend


def fallback_chain(requested: str) -> tuple[str, ...]:
    """``requested`` and the safer backends after it: int8 -> fp32 -> torch."""
    if requested not in FALLBACK_ORDER:
        raise ModelLoadError(f"unknown backend {requested!r}: {', '.join(FALLBACK_ORDER)}")
    return FALLBACK_ORDER[FALLBACK_ORDER.index(requested) :]


def choose_backend(
    requested: str,
    candidates: Iterable[str],
    try_backend: Callable[[str], tuple[Any, Parity | None]],
    *,
    what: str,
) -> tuple[Any, BackendChoice]:
    """Load the first backend of ``candidates`` whose parity passes.

    ``try_backend(name)`` returns the loaded model and its :class:`Parity` (``None`` for the
    reference backend, which passes by definition). A failed parity, or a backend that fails
    to load, moves on to the next one with a warning saying why; only when every candidate
    fails is :class:`ModelLoadError` raised.
    """
    tried: list[Parity] = []
    reasons: list[str] = []
    for backend in candidates:
        try:
            model, parity = try_backend(backend)
        except ModelLoadError as exc:
            reasons.append(f"{backend} could not be loaded ({exc})")
            continue
        if parity is not None:
            tried.append(parity)
            if not parity.passed:
                reasons.append(
                    f"{backend} agrees with PyTorch only at {parity.metric} "
                    f"{parity.value:.4f} < {parity.threshold} on this CPU "
                    f"({cpu_model()}, {parity.kernels} kernels)"
                )
                continue
        reason = "; ".join(reasons)
        choice = BackendChoice(requested, backend, tuple(tried), reason)
        if choice.fell_back:
            warnings.warn(
                f"{what}: using the {backend} backend instead of {requested}: {reason}",
                ShopSearchWarning,
                stacklevel=3,
            )
        return model, choice
    raise ModelLoadError(f"{what}: no backend could be used: {'; '.join(reasons)}")
