"""Dense vector index: exact inner-product search, with a lazily built HNSW graph for scale.

Vectors are L2-normalised float32 embeddings, so the inner product is the cosine
similarity. Row ``i`` is the ``i``-th vector ever added; rows are shared with the lexical
index, so deleting a row only tombstones it and :meth:`VectorIndex.compact` renumbers.

Small catalogs (fewer than ``exact_below`` live rows) are searched exactly with one numpy
matrix-vector product and never pay for a graph. Above that, the first search builds a
usearch HNSW graph (keys = row numbers); its candidates are re-scored exactly against the
stored float32 vectors, so both paths return the same kind of score.

::

    index = VectorIndex(dim=384)
    rows = index.add(embeddings)                # float32, shape (n, 384)
    rows, scores = index.search(query_vec, k=10, mask=filter_mask)
    index.save(Path("artifacts/vector"))
    index = VectorIndex.load(Path("artifacts/vector"))
"""

from __future__ import annotations

import math
import threading
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from shopsearch.index import vector_files
from shopsearch.index.hnsw import HnswGraph
from shopsearch.index.vector_files import CONFIG_FILE as CONFIG_FILE  # re-exported names
from shopsearch.index.vector_files import FORMAT as FORMAT
from shopsearch.index.vector_files import FORMAT_VERSION as FORMAT_VERSION
from shopsearch.index.vector_files import GRAPH_FILE as GRAPH_FILE
from shopsearch.index.vector_files import LIVE_FILE as LIVE_FILE
from shopsearch.index.vector_files import VECTORS_FILE as VECTORS_FILE

__all__ = ["MAX_ANN_FETCH", "VectorIndex", "VectorIndexConfig"]

#: Most candidates one ANN search fetches before filtering; beyond it, exact search is used.
MAX_ANN_FETCH = 10_000

_EMPTY_ROWS = np.empty(0, dtype=np.int64)
_EMPTY_SCORES = np.empty(0, dtype=np.float32)


@dataclass(frozen=True)
class VectorIndexConfig:
    """How :class:`VectorIndex` chooses between exact and ANN search, and the HNSW settings.

    >>> VectorIndexConfig(exact_below=50_000).to_dict()["exact_below"]
    50000
    """

    exact_below: int = 20_000
    """Fewer live rows than this: default searches are exact (numpy), no graph is built."""
    selective_filter_below: int = 20_000
    """A mask allowing fewer rows than this: exact search over just the allowed rows."""
    connectivity: int = 16
    """HNSW ``M``: graph edges per node."""
    expansion_add: int = 128
    """HNSW ``efConstruction``."""
    expansion_search: int = 128
    """HNSW ``ef`` at query time."""
    oversample: int = 4
    """ANN fetches ``k * oversample`` candidates (divided by the mask's selectivity)."""

    def __post_init__(self) -> None:
        minimums = {
            "exact_below": 0,
            "selective_filter_below": 0,
            "connectivity": 2,
            "expansion_add": 1,
            "expansion_search": 1,
            "oversample": 1,
        }
        for name, minimum in minimums.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ValueError(
                    f"VectorIndexConfig.{name} must be an integer >= {minimum}, got {value!r}"
                )

    def to_dict(self) -> dict[str, int]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VectorIndexConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown VectorIndexConfig fields: {', '.join(unknown)}")
        return cls(**data)


def _top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Positions of the ``k`` largest scores, best first; equal scores: lower position first."""
    n = scores.shape[0]
    if k <= 0 or n == 0:
        return _EMPTY_ROWS
    if k >= n:
        return np.lexsort((np.arange(n), -scores))
    part = np.argpartition(-scores, k - 1)[:k]
    kth = scores[part].min()
    # argpartition breaks ties at the k-th score arbitrarily; take the lowest positions.
    above = np.flatnonzero(scores > kth)
    ties = np.flatnonzero(scores == kth)[: k - above.shape[0]]
    chosen = np.concatenate([above, ties])
    return chosen[np.lexsort((chosen, -scores[chosen]))]


def _check_vectors(vectors: np.ndarray, dim: int) -> np.ndarray:
    array = np.asarray(vectors)
    if array.ndim != 2 or array.shape[1] != dim:
        raise ValueError(
            f"vectors must have shape (n, {dim}), got {array.shape}"
            + (" (wrap one vector as vectors[None, :])" if array.ndim == 1 else "")
        )
    if array.dtype.kind != "f":
        raise ValueError(f"vectors must be floating point (float32), got dtype {array.dtype}")
    with np.errstate(over="ignore"):  # float64 beyond float32 range -> inf, reported below
        array = np.ascontiguousarray(array, dtype=np.float32)
    if not np.isfinite(array).all():
        bad = np.flatnonzero(~np.isfinite(array).all(axis=1))
        raise ValueError(
            f"vectors contain NaN or infinite values (float32) in {bad.shape[0]} row(s), "
            f"first at input position {int(bad[0])}"
        )
    return array


def _check_query(query: np.ndarray, dim: int) -> np.ndarray:
    array = np.asarray(query)
    if array.ndim == 2 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 1 or array.shape[0] != dim:
        raise ValueError(f"query must have shape ({dim},), got {np.shape(query)}")
    if array.dtype.kind != "f":
        raise ValueError(f"query must be floating point (float32), got dtype {array.dtype}")
    with np.errstate(over="ignore"):
        array = np.ascontiguousarray(array, dtype=np.float32)
    if not np.isfinite(array).all():
        raise ValueError("query contains NaN or infinite values")
    return array


def _check_rows(rows: Any, n_rows: int) -> np.ndarray:
    array = np.atleast_1d(np.asarray(rows))
    if array.ndim != 1:
        raise ValueError(f"rows must be one-dimensional, got shape {array.shape}")
    if array.size == 0:
        return _EMPTY_ROWS
    if array.dtype.kind not in "iu":
        raise ValueError(f"rows must be integers, got dtype {array.dtype}")
    array = array.astype(np.int64, copy=False)
    low, high = int(array.min()), int(array.max())
    if low < 0 or high >= n_rows:
        bad = low if low < 0 else high
        raise IndexError(f"row {bad} out of range for an index of {n_rows} rows")
    return array


def _check_mask(mask: np.ndarray, n_rows: int) -> np.ndarray:
    array = np.asarray(mask)
    if array.dtype != np.bool_ or array.shape != (n_rows,):
        raise ValueError(
            f"mask must be a boolean array of shape ({n_rows},) (one per row), "
            f"got {array.dtype} {array.shape}"
        )
    return array


def _search_exact(
    store: np.ndarray, n_rows: int, q: np.ndarray, k: int, allowed: np.ndarray, n_allowed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-``k`` of the ``allowed`` rows among ``store``'s first ``n_rows``."""
    if n_allowed <= n_rows // 8:
        # Few rows allowed: score only those. Gathering rows costs more per row than the
        # full product, so it only pays below roughly 1/8 of the rows (measured).
        candidates = np.flatnonzero(allowed)
        scores = np.asarray(store)[candidates] @ q
    else:
        candidates = None
        scores = np.asarray(store)[:n_rows] @ q  # not np.memmap: 4x faster
        scores[~allowed] = -np.inf
    order = _top_k(scores, min(k, n_allowed))
    rows = order if candidates is None else candidates[order]
    return rows.astype(np.int64, copy=False), scores[order].astype(np.float32, copy=False)


class VectorIndex:
    """Inner-product (cosine) search over L2-normalised float32 embeddings.

    Exact below ``config.exact_below`` live rows or under a selective filter; HNSW
    (usearch, :class:`~shopsearch.index.hnsw.HnswGraph`) otherwise, with candidates
    re-scored exactly and filtered by the mask. Saved as :mod:`shopsearch.index.vector_files`
    describes.

    >>> index = VectorIndex(dim=2)
    >>> index.add(np.array([[1, 0], [0, 1], [0.6, 0.8]], dtype=np.float32)).tolist()
    [0, 1, 2]
    >>> rows, scores = index.search(np.array([1, 0], dtype=np.float32), k=2)
    >>> rows.tolist(), [round(float(s), 2) for s in scores]
    ([0, 2], [1.0, 0.6])
    >>> index.delete([0])
    >>> index.search(np.array([1, 0], dtype=np.float32), k=2)[0].tolist()
    [2, 1]

    Not safe for a write (``add``, ``delete``, ``compact``) concurrent with anything else;
    concurrent searches are fine.
    """

    def __init__(self, dim: int, config: VectorIndexConfig | None = None) -> None:
        if isinstance(dim, bool) or not isinstance(dim, int | np.integer) or dim < 1:
            raise ValueError(f"dim must be a positive integer, got {dim!r}")
        self._dim = int(dim)
        self.config = config if config is not None else VectorIndexConfig()
        # Storage grows geometrically; rows [0, _n_rows) are in use. After load(mmap=True)
        # _store is a read-only memmap until the first add() copies it into memory.
        self._store = np.empty((0, self._dim), dtype=np.float32)
        self._live_store = np.empty(0, dtype=bool)
        self._n_rows = 0
        self._n_live = 0
        self._graph: HnswGraph | None = None
        self._graph_lock = threading.Lock()

    # ------------------------------------------------------------------ properties

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def n_rows(self) -> int:
        """Rows ever added (since the last compact), deleted ones included."""
        return self._n_rows

    @property
    def n_live(self) -> int:
        return self._n_live

    @property
    def live_mask(self) -> np.ndarray:
        """Read-only boolean array over ``n_rows``: ``True`` where the row is not deleted."""
        view = self._live_store[: self._n_rows]
        view.flags.writeable = False
        return view

    @property
    def vectors(self) -> np.ndarray:
        """Read-only float32 view, shape ``(n_rows, dim)``, deleted rows included."""
        view = self._store[: self._n_rows]
        view.flags.writeable = False
        return view

    @property
    def uses_ann(self) -> bool:
        """Whether a default (unfiltered) search would use the HNSW graph."""
        return self._n_live >= self.config.exact_below

    @property
    def ann_built(self) -> bool:
        """Whether the HNSW graph currently exists (built, or loaded from disk)."""
        return self._graph is not None

    def __len__(self) -> int:
        return self._n_live

    def __repr__(self) -> str:
        return (
            f"VectorIndex(dim={self._dim}, n_rows={self._n_rows}, n_live={self._n_live}, "
            f"ann_built={self.ann_built})"
        )

    # ------------------------------------------------------------------ writes

    def _reserve(self, extra: int) -> None:
        """Make room for ``extra`` more rows, copying a memmap into writable memory."""
        needed = self._n_rows + extra
        if needed <= self._store.shape[0] and self._store.flags.writeable:
            return
        capacity = max(needed, 2 * self._n_rows, 1024)
        store = np.empty((capacity, self._dim), dtype=np.float32)
        store[: self._n_rows] = self._store[: self._n_rows]
        live = np.zeros(capacity, dtype=bool)
        live[: self._n_rows] = self._live_store[: self._n_rows]
        self._store, self._live_store = store, live

    def add(self, vectors: np.ndarray) -> np.ndarray:
        """Append vectors (shape ``(n, dim)``); return their row numbers (int64).

        Raises ``ValueError`` for a wrong shape, a non-float dtype or NaN/inf values.
        The HNSW graph, if built, is updated too.
        """
        array = _check_vectors(vectors, self._dim)
        count = array.shape[0]
        if count == 0:
            return _EMPTY_ROWS.copy()
        self._reserve(count)
        start = self._n_rows
        rows = np.arange(start, start + count, dtype=np.int64)
        self._store[start : start + count] = array
        self._live_store[start : start + count] = True
        self._n_rows += count
        self._n_live += count
        if self._graph is not None:
            self._graph.add(rows, array)
        return rows

    def delete(self, rows: Any) -> None:
        """Tombstone ``rows`` (int or array of ints); already deleted rows are ignored."""
        array = _check_rows(rows, self._n_rows)
        if array.size == 0:
            return
        array = np.unique(array)
        newly = array[self._live_store[array]]
        if newly.size == 0:
            return
        if not self._live_store.flags.writeable:
            self._live_store = self._live_store.copy()
        self._live_store[newly] = False
        self._n_live -= int(newly.size)
        if self._graph is not None:
            self._graph.remove(newly)

    def compact(self) -> np.ndarray:
        """Drop deleted rows and renumber the rest in order.

        Returns the old -> new mapping (int64, length = old ``n_rows``, ``-1`` for dropped
        rows); apply the same mapping to the lexical index. Rebuilds the graph if built.
        """
        live = self._live_store[: self._n_rows]
        mapping = np.full(self._n_rows, -1, dtype=np.int64)
        mapping[live] = np.arange(self._n_live, dtype=np.int64)
        self._store = np.ascontiguousarray(self._store[: self._n_rows][live], dtype=np.float32)
        self._live_store = np.ones(self._n_live, dtype=bool)
        self._n_rows = self._n_live
        if self._graph is not None:
            self._graph = None
            self.build_ann()
        return mapping

    def build_ann(self, *, progress: bool = False) -> None:
        """Build the HNSW graph over the live rows now (a no-op if it exists).

        Searches build it on demand; call this to pay the cost up front (``save`` does
        when ``n_live >= exact_below``). ``progress`` shows a bar for large builds.
        """
        with self._graph_lock:
            if self._graph is not None:
                return
            rows = np.flatnonzero(self._live_store[: self._n_rows]).astype(np.int64)
            vectors = np.ascontiguousarray(self._store[rows])
            self._graph = HnswGraph.build(self._dim, self.config, rows, vectors, progress=progress)

    # ------------------------------------------------------------------ search

    def scores(self, query: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """Exact inner products (float32) with every row, or just ``rows``; deleted: ``-inf``."""
        q = _check_query(query, self._dim)
        if rows is None:
            out = self._store[: self._n_rows] @ q
            out[~self._live_store[: self._n_rows]] = -np.inf
            return out.astype(np.float32, copy=False)
        picked = _check_rows(rows, self._n_rows)
        if picked.size == 0:
            return _EMPTY_SCORES.copy()
        out = self._store[picked] @ q
        out[~self._live_store[picked]] = -np.inf
        return out.astype(np.float32, copy=False)

    def search(
        self,
        query: np.ndarray,
        k: int,
        mask: np.ndarray | None = None,
        *,
        exact: bool | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` live rows allowed by ``mask``: ``(rows int64, scores float32)``, best first.

        ``exact=None`` picks exact search when ``n_live < exact_below`` or the mask allows
        fewer than ``selective_filter_below`` rows, ANN otherwise; ``True``/``False`` force
        it. ANN re-scores its candidates exactly and falls back to exact search when fewer
        than ``k`` of them pass the mask. Equal scores: lower row first.
        """
        q = _check_query(query, self._dim)
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 0:
            raise ValueError(f"k must be a non-negative integer, got {k!r}")
        k = int(k)
        live = self._live_store[: self._n_rows]
        if mask is None:
            allowed = live
            n_allowed = self._n_live
        else:
            allowed = live & _check_mask(mask, self._n_rows)
            n_allowed = int(np.count_nonzero(allowed))
        if k == 0 or n_allowed == 0:
            return _EMPTY_ROWS.copy(), _EMPTY_SCORES.copy()
        if exact is None:
            exact = self._n_live < self.config.exact_below or (
                mask is not None and n_allowed < self.config.selective_filter_below
            )
        if not exact:
            found = self._search_ann(q, k, allowed, n_allowed)
            if found is not None:
                return found
        return _search_exact(self._store, self._n_rows, q, k, allowed, n_allowed)

    def _search_ann(
        self, q: np.ndarray, k: int, allowed: np.ndarray, n_allowed: int
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """ANN top-k, or ``None`` when the caller should fall back to exact search."""
        if self._n_live == 0:
            return None
        fetch = k * self.config.oversample
        if n_allowed < self._n_live:
            fetch = math.ceil(fetch * self._n_live / n_allowed)
        if fetch > max(MAX_ANN_FETCH, k * self.config.oversample):
            return None  # the filter is too selective for post-filtering to find k rows
        fetch = min(fetch, self._n_live)
        self.build_ann()
        assert self._graph is not None
        keys = self._graph.search(q, fetch)
        keys = keys[allowed[keys]]
        if keys.shape[0] < min(k, n_allowed):
            return None  # too few candidates passed the mask
        scores = self._store[keys] @ q
        order = np.lexsort((keys, -scores))[:k]
        return keys[order], scores[order].astype(np.float32, copy=False)

    # ------------------------------------------------------------------ persistence

    def save(self, directory: Path | str) -> None:
        """Write ``config.json``, ``vectors.npy``, ``live.npy`` and, if built, ``graph.usearch``.

        Builds the graph first when ``n_live >= exact_below`` so that a loaded large index
        searches without rebuilding it. Files are replaced atomically one by one;
        ``config.json`` is written last.
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        if self.uses_ann:
            self.build_ann()
        vector_files.write_index(
            directory,
            dim=self._dim,
            config=self.config.to_dict(),
            vectors=np.ascontiguousarray(self._store[: self._n_rows]),
            live=np.ascontiguousarray(self._live_store[: self._n_rows]),
            n_live=self._n_live,
            graph=self._graph,
        )

    @classmethod
    def load(cls, directory: Path | str, *, mmap: bool = True) -> VectorIndex:
        """Load an index written by :meth:`save`.

        With ``mmap=True`` the vectors and the graph are memory-mapped read-only and copied
        into memory only by the first write (``add``/``delete``/``compact``).
        """
        directory = Path(directory)
        meta = vector_files.read_meta(directory)
        index = cls(int(meta["dim"]), VectorIndexConfig.from_dict(meta["config"]))
        vectors, live = vector_files.read_arrays(directory, meta, index.dim, mmap=mmap)
        index._store = vectors
        index._live_store = live
        index._n_rows = int(meta["n_rows"])
        index._n_live = int(np.count_nonzero(live))
        index._graph = vector_files.read_graph(
            directory, meta, index.dim, index.config, index._n_live, mmap=mmap
        )
        return index
