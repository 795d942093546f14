"""A query-embedding cache for serving: the dense query vector of a text is computed once.

Encoding the query is the single largest cost of a hybrid search (about half of its CPU
time with the int8 MiniLM), and shoppers repeat queries a lot, so the server wraps the
index's encoder in :class:`CachedQueryEncoder` (``query_cache_size`` setting; 0 turns it
off). Vectors are identical with and without the cache: the encoders embed one query per
call either way.

>>> encoder = CachedQueryEncoder(load_encoder(), size=10_000)      # doctest: +SKIP
>>> encoder.encode_queries(["ugg slippers"]).shape                  # doctest: +SKIP
(1, 384)
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["CachedQueryEncoder"]


class CachedQueryEncoder:
    """Wraps an :class:`~shopsearch.models.encoders.Encoder`; ``encode_queries`` is served
    from an LRU cache of ``size`` texts (thread-safe); everything else is delegated."""

    def __init__(self, encoder: Any, size: int) -> None:
        self.inner = encoder
        self.size = size
        self.hits = 0
        self.misses = 0
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:  # name, dim, encode_products, ...
        return getattr(self.inner, name)

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        out = np.empty((len(texts), self.inner.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            with self._lock:
                vector = self._cache.get(text)
                if vector is not None:
                    self._cache.move_to_end(text)
                    self.hits += 1
            if vector is None:
                vector = np.asarray(self.inner.encode_queries([text])[0], dtype=np.float32)
                vector.setflags(write=False)
                with self._lock:
                    self.misses += 1
                    self._cache[text] = vector
                    if len(self._cache) > self.size:
                        self._cache.popitem(last=False)
            out[i] = vector
        return out
