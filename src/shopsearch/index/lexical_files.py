"""The on-disk format of :class:`~shopsearch.index.lexical.BM25Index` (format version 1).

A directory of three files:

* ``config.json``: ``format_version``, ``kind`` (``"bm25"``), the BM25 and tokenizer
  configs, and ``n_rows``, ``n_live``, ``n_terms`` (informative);
* ``vocab.json``: the terms, a JSON list in column order;
* ``arrays.npz``: ``live`` (bool per row) and, per field ``f`` in config order,
  ``f{f}_indptr``, ``f{f}_indices``, ``f{f}_data`` (the CSC term-frequency matrix) and
  ``f{f}_lengths`` (tokens per row).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from shopsearch.errors import IndexNotFoundError
from shopsearch.index.postings import Postings

__all__ = ["FORMAT_VERSION", "read_meta", "read_postings", "write_index"]

FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
VOCAB_FILE = "vocab.json"
ARRAYS_FILE = "arrays.npz"


def write_index(
    directory: Path, postings: Postings, bm25: dict[str, Any], tokenizer: dict[str, Any]
) -> None:
    """Write flushed ``postings`` and the configs (``to_dict()`` forms) into ``directory``.

    Each file is written to a temporary name and renamed, so a reader never sees half a
    file (the three files are not replaced as one unit).
    """
    arrays: dict[str, Any] = {"live": postings.live}
    for f, m in enumerate(postings.matrices):
        arrays[f"f{f}_indptr"] = m.indptr
        arrays[f"f{f}_indices"] = m.indices
        arrays[f"f{f}_data"] = m.data
        arrays[f"f{f}_lengths"] = postings.lengths[f]
    terms = postings.vocab.terms
    config = {
        "format_version": FORMAT_VERSION,
        "kind": "bm25",
        "bm25": bm25,
        "tokenizer": tokenizer,
        "n_rows": postings.n_rows,
        "n_live": postings.n_live,
        "n_terms": len(terms),
    }
    _write_atomic(directory / ARRAYS_FILE, lambda fh: np.savez(fh, **arrays))
    _write_atomic(
        directory / VOCAB_FILE,
        lambda fh: fh.write(json.dumps(terms, ensure_ascii=False).encode()),
    )
    _write_atomic(
        directory / CONFIG_FILE,
        lambda fh: fh.write(json.dumps(config, indent=2).encode()),
    )


def read_meta(directory: Path) -> dict[str, Any]:
    """``config.json`` of the index in ``directory``; :class:`IndexNotFoundError` when there
    is none, or not one of this format."""
    config_path = directory / CONFIG_FILE
    if not config_path.is_file():
        raise IndexNotFoundError(f"no BM25 index at {directory} (missing {CONFIG_FILE})")
    meta = json.loads(config_path.read_text())
    if meta.get("kind") != "bm25" or meta.get("format_version") != FORMAT_VERSION:
        raise IndexNotFoundError(f"{directory} holds no BM25 index of format {FORMAT_VERSION}")
    return meta


def read_postings(directory: Path, fields: Sequence[str]) -> Postings:
    """The postings stored in ``directory`` (``fields``: the config's, in its order)."""
    terms = json.loads((directory / VOCAB_FILE).read_text())
    n_terms = len(terms)
    with np.load(directory / ARRAYS_FILE) as arrays:
        live = arrays["live"].astype(bool)
        n_rows = live.shape[0]
        matrices, lengths = [], []
        for f in range(len(fields)):
            matrices.append(
                sp.csc_array(
                    (arrays[f"f{f}_data"], arrays[f"f{f}_indices"], arrays[f"f{f}_indptr"]),
                    shape=(n_rows, n_terms),
                )
            )
            lengths.append(arrays[f"f{f}_lengths"].astype(np.float32))
    return Postings.from_arrays(fields, terms, matrices, lengths, live)


def _write_atomic(path: Path, write: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{threading.get_ident()}")
    try:
        with open(tmp, "wb") as fh:
            write(fh)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
