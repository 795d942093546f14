"""What this machine is: CPU model and instruction sets, library versions, ONNX Runtime
providers. Used by ``shopsearch doctor`` and to label int8 parity measurements, which differ
between CPUs with and without VNNI (see :mod:`shopsearch.models.quantization`).

>>> sorted(cpu_features())  # doctest: +SKIP
['avx2', 'avx512_vnni', 'avx512f', 'fma']
"""

from __future__ import annotations

import functools
import os
import platform
import sys
from importlib import metadata
from pathlib import Path

__all__ = [
    "LIBRARIES",
    "cpu_features",
    "cpu_model",
    "int8_kernel_family",
    "library_versions",
    "machine_summary",
]

#: Instruction sets that decide which int8 / float kernels native libraries pick.
RELEVANT_FLAGS = (
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "f16c",
    "avx512f",
    "avx512bw",
    "avx512vl",
    "avx512_vnni",
    "avx512_bf16",
    "avx_vnni",
    "amx_int8",
    "amx_bf16",
    "asimd",  # arm64 NEON
    "asimddp",  # arm64 dot product
    "sve",
)

#: Packages whose versions matter for a bug report (native code first).
LIBRARIES = (
    "onnxruntime",
    "usearch",
    "numkong",
    "numpy",
    "torch",
    "transformers",
    "sentence-transformers",
    "tokenizers",
    "onnx",
    "onnxscript",
    "lightgbm",
    "scipy",
    "jieba",
    "PyStemmer",
    "fastapi",
    "uvicorn",
    "starlette",
    "pydantic",
)


@functools.cache
def _cpuinfo() -> dict[str, str]:
    """The first processor block of /proc/cpuinfo (Linux), else empty."""
    path = Path("/proc/cpuinfo")
    if not path.is_file():
        return {}
    info: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.strip():
            if info:
                break
            continue
        key, _, value = line.partition(":")
        info.setdefault(key.strip(), value.strip())
    return info


def cpu_model() -> str:
    """E.g. ``"AMD EPYC"`` or ``"Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz"``."""
    info = _cpuinfo()
    return info.get("model name") or platform.processor() or platform.machine() or "unknown"


def cpu_features() -> frozenset[str]:
    """The instruction sets in :data:`RELEVANT_FLAGS` that this CPU reports."""
    info = _cpuinfo()
    flags = set((info.get("flags") or info.get("Features") or "").split())
    return frozenset(f for f in RELEVANT_FLAGS if f in flags)


def int8_kernel_family() -> str:
    """Which family of int8 matrix kernels ONNX Runtime (MLAS) uses on this CPU.

    Dynamic int8 models multiply uint8 activations by int8 weights. With VNNI (or AMX)
    the products are summed in 32 bits; on AVX2 alone they go through ``vpmaddubsw``,
    which saturates pairs of products at 16 bits, so the same model gives other scores.
    Parity measurements are labelled with this family.
    """
    features = cpu_features()
    machine = platform.machine().lower()
    if machine in ("aarch64", "arm64"):
        return "arm64-dot" if "asimddp" in features else "arm64"
    if "amx_int8" in features:
        return "x86-amx"
    if "avx512_vnni" in features:
        return "x86-avx512-vnni"
    if "avx_vnni" in features:
        return "x86-avx-vnni"
    if "avx512bw" in features:
        return "x86-avx512"
    if "avx2" in features:
        return "x86-avx2"
    return f"{machine or 'unknown'}-baseline"


def library_versions() -> dict[str, str]:
    """Installed versions of :data:`LIBRARIES` ("-" when missing)."""
    versions = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "-"
    return versions


def onnxruntime_providers() -> list[str]:
    from shopsearch.native import onnxruntime

    try:
        return list(onnxruntime().get_available_providers())
    except Exception as exc:  # noqa: BLE001 - a report, not a failure
        return [f"unavailable: {exc}"]


def machine_summary() -> dict[str, object]:
    """Everything above in one dict (what ``shopsearch doctor --json`` prints)."""
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_features": sorted(cpu_features()),
        "int8_kernels": int8_kernel_family(),
        "python_executable": sys.executable,
        "libraries": library_versions(),
        "onnxruntime_providers": onnxruntime_providers(),
    }
