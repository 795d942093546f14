"""The HNSW graph (usearch) that :class:`~shopsearch.index.vector.VectorIndex` searches above
its exact-search threshold.

Keys are row numbers of the vector index; the metric is the inner product over float32.
A graph opened with ``mmap=True`` is a read-only view of its file until the first write
copies it into memory.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from shopsearch.index.vector import VectorIndexConfig

__all__ = ["HnswGraph"]

#: Bulk inserts at least this large show a progress bar when asked to.
_PROGRESS_MIN_ROWS = 50_000


class HnswGraph:
    """A usearch HNSW graph over row numbers, built with a :class:`VectorIndexConfig`'s
    ``connectivity``, ``expansion_add`` and ``expansion_search``.

    >>> graph = HnswGraph.build(2, VectorIndexConfig(), np.arange(2),  # doctest: +SKIP
    ...                         np.eye(2, dtype=np.float32))
    >>> graph.search(np.array([1, 0], dtype=np.float32), 1).tolist()   # doctest: +SKIP
    [0]
    """

    def __init__(self, dim: int, config: VectorIndexConfig) -> None:
        """An empty graph for vectors of ``dim`` floats."""
        from shopsearch.native import usearch_index

        self._index: Any = usearch_index().Index(
            ndim=dim,
            metric="ip",
            dtype="f32",
            connectivity=config.connectivity,
            expansion_add=config.expansion_add,
            expansion_search=config.expansion_search,
        )
        self._is_view = False

    @classmethod
    def build(
        cls,
        dim: int,
        config: VectorIndexConfig,
        rows: np.ndarray,
        vectors: np.ndarray,
        *,
        progress: bool = False,
    ) -> HnswGraph:
        """A new graph holding ``vectors`` under keys ``rows``."""
        graph = cls(dim, config)
        if rows.size:
            graph._insert(rows, vectors, progress=progress)
        return graph

    @classmethod
    def open(cls, path: Path, dim: int, config: VectorIndexConfig, *, mmap: bool) -> HnswGraph:
        """The graph saved at ``path``: memory-mapped read-only (``mmap``) or read into memory."""
        graph = cls(dim, config)
        if mmap:
            graph._index.view(os.fspath(path))
        else:
            graph._index.load(os.fspath(path))
        graph._is_view = mmap
        return graph

    def __len__(self) -> int:
        return len(self._index)

    @property
    def ndim(self) -> int:
        return int(self._index.ndim)

    def add(self, rows: np.ndarray, vectors: np.ndarray) -> None:
        """Insert ``vectors`` (float32, C-contiguous) under keys ``rows``."""
        self._make_writable()
        self._insert(rows, vectors)

    def remove(self, rows: np.ndarray) -> None:
        """Remove the keys ``rows`` (int64)."""
        self._make_writable()
        self._index.remove(rows.astype(np.uint64))

    def search(self, query: np.ndarray, count: int) -> np.ndarray:
        """The keys (int64) of about the ``count`` nearest vectors, nearest first."""
        return np.asarray(self._index.search(query, count).keys, dtype=np.int64)

    def save(self, path: Path) -> None:
        self._index.save(os.fspath(path))

    def _make_writable(self) -> None:
        """A memory-mapped graph is read-only; copy it into memory before writes."""
        if self._is_view:
            self._index = self._index.copy()
            self._is_view = False

    def _insert(self, rows: np.ndarray, array: np.ndarray, *, progress: bool = False) -> None:
        """Insert ``array`` under keys ``rows`` using all cores (``threads=0``)."""
        keys = rows.astype(np.uint64)
        if not progress or rows.shape[0] < _PROGRESS_MIN_ROWS:
            self._index.add(keys, array, threads=0)
            return
        from rich.progress import Progress

        with Progress(transient=True) as bar:
            task = bar.add_task("Building HNSW graph", total=int(rows.shape[0]))

            def report(done: int, total: int) -> bool:
                bar.update(task, completed=done)
                return True

            # usearch checks the callback's annotations by identity, not as postponed strings.
            report.__annotations__ = {"done": int, "total": int, "return": bool}
            self._index.add(keys, array, threads=0, progress=report)
