"""The on-disk format of :class:`~shopsearch.index.vector.VectorIndex`
(``shopsearch.vector`` version 1).

A directory of:

* ``config.json``: ``format``, ``format_version``, ``dim``, ``n_rows``, ``n_live``,
  ``ann_graph`` (the graph's file name, or ``null``) and the index ``config``; written last;
* ``vectors.npy``: float32 ``(n_rows, dim)``, deleted rows included;
* ``live.npy``: bool ``(n_rows,)``;
* ``graph.usearch``: the HNSW graph, when one was built.

Files are replaced atomically one by one (write a temporary sibling, then rename), which
keeps any memory map of the old file (a loaded index) valid.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from shopsearch.errors import IndexNotFoundError, ShopSearchWarning
from shopsearch.index.hnsw import HnswGraph

if TYPE_CHECKING:
    from shopsearch.index.vector import VectorIndexConfig

__all__ = [
    "CONFIG_FILE",
    "FORMAT",
    "FORMAT_VERSION",
    "GRAPH_FILE",
    "LIVE_FILE",
    "VECTORS_FILE",
    "read_arrays",
    "read_graph",
    "read_meta",
    "write_index",
]

FORMAT = "shopsearch.vector"
FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
VECTORS_FILE = "vectors.npy"
LIVE_FILE = "live.npy"
GRAPH_FILE = "graph.usearch"


def write_index(
    directory: Path,
    *,
    dim: int,
    config: dict[str, int],
    vectors: np.ndarray,
    live: np.ndarray,
    n_live: int,
    graph: HnswGraph | None,
) -> None:
    """Write an index's files into ``directory`` (which exists); ``config.json`` last.

    A graph file left by an earlier save is removed when there is no ``graph``.
    """
    _write_atomic(directory / VECTORS_FILE, lambda p: _save_npy(p, vectors))
    _write_atomic(directory / LIVE_FILE, lambda p: _save_npy(p, live))
    graph_path = directory / GRAPH_FILE
    if graph is not None:
        _write_atomic(graph_path, graph.save)
    elif graph_path.exists():
        graph_path.unlink()  # stale graph of an earlier save
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "dim": dim,
        "n_rows": int(vectors.shape[0]),
        "n_live": n_live,
        "ann_graph": GRAPH_FILE if graph is not None else None,
        "config": config,
    }
    text = json.dumps(meta, indent=2) + "\n"
    _write_atomic(directory / CONFIG_FILE, lambda p: p.write_text(text, encoding="utf-8"))


def read_meta(directory: Path) -> dict[str, Any]:
    """``config.json``, checked to be of this format."""
    config_path = directory / CONFIG_FILE
    if not config_path.is_file():
        raise IndexNotFoundError(f"no vector index at {directory} (missing {CONFIG_FILE})")
    meta = json.loads(config_path.read_text(encoding="utf-8"))
    if meta.get("format") != FORMAT or meta.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{config_path}: not a {FORMAT} v{FORMAT_VERSION} index "
            f"(format={meta.get('format')!r}, version={meta.get('format_version')!r})"
        )
    return meta


def read_arrays(
    directory: Path, meta: dict[str, Any], dim: int, *, mmap: bool
) -> tuple[np.ndarray, np.ndarray]:
    """``(vectors, live)``: vectors memory-mapped read-only when ``mmap``; ``live`` always
    a writable in-memory copy (it is small)."""
    vectors = np.load(directory / VECTORS_FILE, mmap_mode="r" if mmap else None)
    live = np.load(directory / LIVE_FILE).astype(bool, copy=False)
    n_rows = int(meta["n_rows"])
    if vectors.shape != (n_rows, dim) or vectors.dtype != np.float32:
        raise ValueError(
            f"{directory / VECTORS_FILE}: expected float32 {(n_rows, dim)}, "
            f"got {vectors.dtype} {vectors.shape}"
        )
    if live.shape != (n_rows,):
        raise ValueError(f"{directory / LIVE_FILE}: expected shape ({n_rows},)")
    return vectors, np.array(live, dtype=bool)


def read_graph(
    directory: Path,
    meta: dict[str, Any],
    dim: int,
    config: VectorIndexConfig,
    n_live: int,
    *,
    mmap: bool,
) -> HnswGraph | None:
    """The saved graph, or ``None`` when there is none or it does not match the vectors
    (with a :class:`~shopsearch.errors.ShopSearchWarning`: it will be rebuilt)."""
    graph_path = directory / GRAPH_FILE
    if not (meta.get("ann_graph") and graph_path.is_file()):
        return None
    graph = HnswGraph.open(graph_path, dim, config, mmap=mmap)
    if len(graph) != n_live or graph.ndim != dim:
        warnings.warn(
            f"{graph_path} does not match the vectors ({len(graph)} entries for "
            f"{n_live} live rows); it will be rebuilt when needed",
            ShopSearchWarning,
            stacklevel=3,  # the caller of VectorIndex.load
        )
        return None
    return graph


def _write_atomic(path: Path, write: Callable[[Path], object]) -> None:
    """Write to a temporary sibling, then rename over ``path``.

    Renaming keeps any memory map of the old file (a loaded index) valid.
    """
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _save_npy(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as handle:
        np.save(handle, array)
