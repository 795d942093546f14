"""Incremental, exact, weighted-field BM25.

Libraries such as bm25s precompute every score with corpus-wide IDF, so an upsert or a
delete means a full rebuild. :class:`BM25Index` stores raw term frequencies instead and
scores at query time, so adds and deletes are cheap and scores always equal a fresh build
over the live rows.

Layout: one shared vocabulary (term -> column id, only grows until :meth:`BM25Index.compact`)
and, per field, a term-frequency matrix in CSC form (rows = documents, columns = terms), so
a term's postings in a field are one contiguous slice; plus per-field document lengths and
a live mask (deletes are tombstones). Rows added since the last query are kept as small
blocks and merged into the big matrices, once, by the next read.
"""

from __future__ import annotations

import json
import math
import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple

import numpy as np
import scipy.sparse as sp

from shopsearch.errors import IndexNotFoundError
from shopsearch.text.tokenize import Tokenizer, TokenizerConfig

__all__ = ["DEFAULT_FIELD_WEIGHTS", "BM25Config", "BM25Index"]

DEFAULT_FIELD_WEIGHTS: Mapping[str, float] = MappingProxyType(
    {
        "title": 3.0,
        "brand": 2.0,
        "color": 1.5,
        "category": 1.5,
        "bullet_points": 1.0,
        "description": 0.5,
    }
)

FORMAT_VERSION = 1
_CONFIG_FILE = "config.json"
_VOCAB_FILE = "vocab.json"
_ARRAYS_FILE = "arrays.npz"


@dataclass(frozen=True)
class BM25Config:
    """BM25 parameters and the indexed fields with their weights (field order is kept).

    >>> BM25Config(k1=0.9, field_weights={"title": 2.0, "description": 1.0}).to_dict()["k1"]
    0.9
    """

    k1: float = 1.2
    b: float = 0.75
    field_weights: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_FIELD_WEIGHTS))

    def __post_init__(self) -> None:
        if not (math.isfinite(self.k1) and self.k1 >= 0):
            raise ValueError(f"k1 must be a finite number >= 0, got {self.k1!r}")
        if not 0.0 <= self.b <= 1.0:
            raise ValueError(f"b must be in [0, 1], got {self.b!r}")
        if not self.field_weights:
            raise ValueError("field_weights must name at least one field")
        for name, weight in self.field_weights.items():
            if not isinstance(name, str) or not name:
                raise ValueError(f"field names must be non-empty strings, got {name!r}")
            if not (math.isfinite(weight) and weight >= 0):
                raise ValueError(f"field weight of {name!r} must be finite and >= 0")
        # a private copy, so that the caller's dict cannot change a frozen config
        object.__setattr__(
            self, "field_weights", {k: float(v) for k, v in self.field_weights.items()}
        )

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(self.field_weights)

    def to_dict(self) -> dict[str, Any]:
        return {"k1": self.k1, "b": self.b, "field_weights": dict(self.field_weights)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BM25Config:
        """Inverse of :meth:`to_dict`; missing keys take their defaults."""
        unknown = sorted(set(data) - {"k1", "b", "field_weights"})
        if unknown:
            raise ValueError(f"unknown BM25Config fields: {', '.join(unknown)}")
        kwargs: dict[str, Any] = {k: float(data[k]) for k in ("k1", "b") if k in data}
        if "field_weights" in data:
            kwargs["field_weights"] = dict(data["field_weights"])
        return cls(**kwargs)


class _Vocab(dict[str, int]):
    """term -> column id; looking up an unseen term with ``[]`` appends it (use ``get`` to
    read without adding)."""

    def __init__(self, terms: Sequence[str] = ()) -> None:
        super().__init__((t, i) for i, t in enumerate(terms))
        self.terms: list[str] = list(terms)

    def __missing__(self, term: str) -> int:
        col = self[term] = len(self.terms)
        self.terms.append(term)
        return col


class _Snapshot(NamedTuple):
    """An immutable view of the index that readers use without holding the lock."""

    n_rows: int
    n_live: int
    live: np.ndarray  # bool[n_rows]
    matrices: tuple[sp.csc_array, ...]  # per field, n_rows x n_cols
    norms: tuple[np.ndarray | None, ...]  # per field k1 * (1 - b + b * len / avglen); None: empty
    vocab: Mapping[str, int]


class BM25Index:
    """Per-field BM25 (Lucene variant) summed with field weights.

    ``score(q, d) = sum_f w_f * sum_{t in q} idf_f(t) * tf_f(t,d) / (tf_f(t,d) + k1 * (1 - b
    + b * len_f(d) / avglen_f))`` with ``idf_f(t) = ln(1 + (N - df_f(t) + 0.5) / (df_f(t) +
    0.5))``; ``N``, ``df`` and ``avglen`` count live rows only. Query tokens are de-duplicated
    (each distinct query term counts once).

    Rows are numbered in insertion order; deleting one leaves a tombstone until
    :meth:`compact`. Reads may run in parallel with each other and with writes (they work on
    a snapshot); writes are serialized by an internal lock.

    >>> index = BM25Index()
    >>> index.add([{"title": "Steel water bottle", "brand": "Acme"},
    ...            {"title": "Running shoes", "color": "blue"}])
    array([0, 1])
    >>> rows, scores = index.search("water bottles", k=5)
    >>> rows.tolist()
    [0]
    """

    def __init__(
        self, config: BM25Config | None = None, tokenizer: Tokenizer | None = None
    ) -> None:
        self.config = config if config is not None else BM25Config()
        self.tokenizer = tokenizer if tokenizer is not None else Tokenizer()
        self._fields = self.config.fields
        self._weights = np.array([self.config.field_weights[f] for f in self._fields])
        self._lock = threading.RLock()
        self._vocab = _Vocab()
        n_fields = len(self._fields)
        self._matrices: list[sp.csc_array] = [
            sp.csc_array((0, 0), dtype=np.float32) for _ in range(n_fields)
        ]
        self._lengths: list[np.ndarray] = [np.zeros(0, np.float32) for _ in range(n_fields)]
        self._live = np.zeros(0, dtype=bool)
        self._live_length_sums = np.zeros(n_fields, dtype=np.float64)
        self._n_live = 0
        # rows added since the last read: per field, a list of small CSC blocks
        self._pending: list[list[sp.csc_array]] = [[] for _ in range(n_fields)]
        self._snapshot: _Snapshot | None = None

    def __repr__(self) -> str:
        return (
            f"BM25Index(n_rows={self.n_rows}, n_live={self.n_live}, "
            f"n_terms={len(self._vocab.terms)}, fields={list(self._fields)})"
        )

    # -- size and liveness ------------------------------------------------------------------

    @property
    def fields(self) -> tuple[str, ...]:
        return self._fields

    @property
    def n_rows(self) -> int:
        """All rows ever added (or kept by the last :meth:`compact`), deleted ones included."""
        return int(self._live.shape[0])

    @property
    def n_live(self) -> int:
        return self._n_live

    @property
    def n_terms(self) -> int:
        return len(self._vocab.terms)

    @property
    def live_mask(self) -> np.ndarray:
        """Read-only bool mask over all rows, true for live rows (a snapshot: later deletes
        do not change it)."""
        view = self._live.view()
        view.flags.writeable = False
        return view

    def is_live(self, rows: np.ndarray | Sequence[int]) -> np.ndarray:
        live = self._live
        return live[self._check_rows(rows, live.shape[0])]

    # -- writes -----------------------------------------------------------------------------

    def add(self, docs: Sequence[Mapping[str, str | None]]) -> np.ndarray:
        """Append documents (field -> text; missing or ``None`` fields are empty; fields not in
        the config are ignored) and return their row numbers, contiguous from :attr:`n_rows`."""
        tokenize = self.tokenizer.tokenize
        tokenized = [
            {name: tokenize(text) for name in self._fields if (text := doc.get(name))}
            for doc in docs
        ]
        return self.add_tokenized(tokenized)

    def add_tokenized(self, docs: Sequence[Mapping[str, Sequence[str]]]) -> np.ndarray:
        """:meth:`add` with fields already tokenized (by the same tokenizer as queries)."""
        n_fields = len(self._fields)
        n_new = len(docs)
        with self._lock:
            lookup = self._vocab.__getitem__  # adds unseen terms (_Vocab.__missing__)
            lengths = np.zeros((n_fields, n_new), dtype=np.float32)
            blocks = []
            for f, name in enumerate(self._fields):
                flat: list[str] = []
                field_lengths = lengths[f]
                for i, doc in enumerate(docs):
                    tokens = doc.get(name)
                    if tokens:
                        if isinstance(tokens, str):
                            raise TypeError(f"field {name!r} must be a list of tokens, not a str")
                        field_lengths[i] = len(tokens)
                        flat.extend(tokens)
                cols = np.fromiter(map(lookup, flat), dtype=np.int64, count=len(flat))
                rows = np.repeat(np.arange(n_new, dtype=np.int64), lengths[f].astype(np.int64))
                blocks.append((rows, cols))
            n_cols = len(self._vocab.terms)
            for f, (rows, cols) in enumerate(blocks):
                # COO -> CSC sums the duplicate (row, term) pairs into term frequencies
                block = sp.csc_array(
                    (np.ones(rows.shape[0], dtype=np.float32), (rows, cols)),
                    shape=(n_new, n_cols),
                )
                block.sum_duplicates()
                self._pending[f].append(block)
                self._lengths[f] = np.concatenate([self._lengths[f], lengths[f]])
            start = self.n_rows
            self._live = np.concatenate([self._live, np.ones(n_new, dtype=bool)])
            self._live_length_sums += lengths.sum(axis=1, dtype=np.float64)
            self._n_live += n_new
            self._snapshot = None
            return np.arange(start, start + n_new, dtype=np.int64)

    def delete(self, rows: np.ndarray | Sequence[int]) -> None:
        """Tombstone ``rows``; deleting a deleted row does nothing."""
        with self._lock:
            idx = self._check_rows(rows, self.n_rows)
            idx = np.unique(idx)
            idx = idx[self._live[idx]]
            if idx.size == 0:
                return
            live = self._live.copy()  # copy-on-write: snapshots keep their own mask
            live[idx] = False
            for f in range(len(self._fields)):
                self._live_length_sums[f] -= float(self._lengths[f][idx].sum(dtype=np.float64))
            self._live = live
            self._n_live -= int(idx.size)
            if self._n_live == 0:
                self._live_length_sums[:] = 0.0  # no float residue
            self._snapshot = None

    def compact(self) -> np.ndarray:
        """Drop tombstoned rows and terms no live row uses; live rows keep their order.

        Returns the mapping ``old_row -> new_row`` (int64, ``-1`` for dropped rows).
        """
        with self._lock:
            self._flush()
            live = self._live
            mapping = np.full(live.shape[0], -1, dtype=np.int64)
            mapping[live] = np.arange(int(live.sum()), dtype=np.int64)
            n_new = int(live.sum())
            kept: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
            used = np.zeros(len(self._vocab.terms), dtype=bool)
            for m in self._matrices:
                keep = live[m.indices]
                cols = np.repeat(np.arange(m.shape[1]), np.diff(m.indptr))[keep]
                kept.append((mapping[m.indices[keep]], cols, m.data[keep]))
                used[cols] = True
            col_map = np.cumsum(used) - 1
            n_cols = int(used.sum())
            self._matrices = [
                sp.csc_array((data, (rows, col_map[cols])), shape=(n_new, n_cols))
                for rows, cols, data in kept
            ]
            old_terms = self._vocab.terms
            self._vocab = _Vocab([t for t, u in zip(old_terms, used.tolist(), strict=True) if u])
            self._lengths = [lengths[live] for lengths in self._lengths]
            self._live = np.ones(n_new, dtype=bool)
            self._n_live = n_new
            self._live_length_sums = np.array(
                [lengths.sum(dtype=np.float64) for lengths in self._lengths]
            )
            self._snapshot = None
            return mapping

    # -- reads ------------------------------------------------------------------------------

    def query_terms(self, query: str) -> list[str]:
        """The distinct query tokens, in order of first appearance."""
        return list(dict.fromkeys(self.tokenizer.tokenize(query)))

    def scores(self, query: str, rows: np.ndarray | Sequence[int] | None = None) -> np.ndarray:
        """float32 scores of all rows (deleted rows score 0), or of ``rows`` only."""
        snap = self._read()
        terms = self.query_terms(query)
        total = np.zeros(snap.n_rows, dtype=np.float32)
        for f in range(len(self._fields)):
            self._accumulate(snap, f, terms, total)
        if rows is None:
            return total
        return total[self._check_rows(rows, snap.n_rows)]

    def field_scores(self, query: str, rows: np.ndarray | Sequence[int]) -> dict[str, np.ndarray]:
        """Per-field weighted contributions for ``rows``; they sum to ``scores(query, rows)``."""
        snap = self._read()
        idx = self._check_rows(rows, snap.n_rows)
        terms = self.query_terms(query)
        out = {}
        for f, name in enumerate(self._fields):
            vec = np.zeros(snap.n_rows, dtype=np.float32)
            self._accumulate(snap, f, terms, vec)
            out[name] = vec[idx]
        return out

    def search(
        self, query: str, k: int, mask: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` rows with a score > 0, best first (ties: lower row first).

        ``mask`` is a bool array over all rows: only rows where it is true may be returned.
        Returns ``(rows int64, scores float32)``, both possibly shorter than ``k``.
        """
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 0:
            raise ValueError(f"k must be a non-negative integer, got {k!r}")
        snap = self._read()
        if mask is not None:
            mask = np.asarray(mask)
            if mask.dtype != bool or mask.shape != (snap.n_rows,):
                raise ValueError(
                    f"mask must be a bool array of shape ({snap.n_rows},), "
                    f"got {mask.dtype} {mask.shape}"
                )
        empty = (np.zeros(0, np.int64), np.zeros(0, np.float32))
        terms = self.query_terms(query)
        if k == 0 or not terms or snap.n_live == 0:
            return empty
        total = np.zeros(snap.n_rows, dtype=np.float32)
        for f in range(len(self._fields)):
            self._accumulate(snap, f, terms, total)
        if mask is not None:
            total[~mask] = 0.0
        cand = np.flatnonzero(total > 0)
        if cand.size == 0:
            return empty
        cand_scores = total[cand]
        if cand.size > k:
            # keep every candidate tied with the k-th best, then sort exactly
            kth = np.partition(cand_scores, cand.size - k)[cand.size - k]
            keep = cand_scores >= kth
            cand, cand_scores = cand[keep], cand_scores[keep]
        order = np.lexsort((cand, -cand_scores))[:k]
        return cand[order].astype(np.int64), cand_scores[order]

    # -- persistence ------------------------------------------------------------------------

    def save(self, directory: str | os.PathLike[str]) -> None:
        """Write ``config.json``, ``vocab.json`` and ``arrays.npz`` into ``directory``.

        Each file is written to a temporary name and renamed, so a reader never sees half a
        file (the three files are not replaced as one unit).
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        with self._lock:
            self._flush()
            arrays: dict[str, Any] = {"live": self._live}
            for f, m in enumerate(self._matrices):
                arrays[f"f{f}_indptr"] = m.indptr
                arrays[f"f{f}_indices"] = m.indices
                arrays[f"f{f}_data"] = m.data
                arrays[f"f{f}_lengths"] = self._lengths[f]
            config = {
                "format_version": FORMAT_VERSION,
                "kind": "bm25",
                "bm25": self.config.to_dict(),
                "tokenizer": self.tokenizer.config.to_dict(),
                "n_rows": self.n_rows,
                "n_live": self.n_live,
                "n_terms": len(self._vocab.terms),
            }
            _write_atomic(directory / _ARRAYS_FILE, lambda fh: np.savez(fh, **arrays))
            _write_atomic(
                directory / _VOCAB_FILE,
                lambda fh: fh.write(json.dumps(self._vocab.terms, ensure_ascii=False).encode()),
            )
            _write_atomic(
                directory / _CONFIG_FILE,
                lambda fh: fh.write(json.dumps(config, indent=2).encode()),
            )

    @classmethod
    def load(
        cls, directory: str | os.PathLike[str], tokenizer: Tokenizer | None = None
    ) -> BM25Index:
        """Load an index written by :meth:`save`; the tokenizer is rebuilt from its saved
        config unless one is given."""
        directory = Path(directory)
        config_path = directory / _CONFIG_FILE
        if not config_path.is_file():
            raise IndexNotFoundError(f"no BM25 index at {directory} (missing {_CONFIG_FILE})")
        meta = json.loads(config_path.read_text())
        if meta.get("kind") != "bm25" or meta.get("format_version") != FORMAT_VERSION:
            raise IndexNotFoundError(f"{directory} holds no BM25 index of format {FORMAT_VERSION}")
        if tokenizer is None:
            tokenizer = Tokenizer(TokenizerConfig.from_dict(meta["tokenizer"]))
        index = cls(BM25Config.from_dict(meta["bm25"]), tokenizer)
        terms = json.loads((directory / _VOCAB_FILE).read_text())
        n_terms = len(terms)
        with np.load(directory / _ARRAYS_FILE) as arrays:
            live = arrays["live"].astype(bool)
            n_rows = live.shape[0]
            matrices, lengths = [], []
            for f in range(len(index._fields)):
                matrices.append(
                    sp.csc_array(
                        (arrays[f"f{f}_data"], arrays[f"f{f}_indices"], arrays[f"f{f}_indptr"]),
                        shape=(n_rows, n_terms),
                    )
                )
                lengths.append(arrays[f"f{f}_lengths"].astype(np.float32))
        index._vocab = _Vocab(terms)
        index._matrices = matrices
        index._lengths = lengths
        index._live = live
        index._n_live = int(live.sum())
        index._live_length_sums = np.array(
            [ln[live].sum(dtype=np.float64) for ln in lengths], dtype=np.float64
        )
        return index

    # -- internals --------------------------------------------------------------------------

    @staticmethod
    def _check_rows(rows: np.ndarray | Sequence[int], n_rows: int) -> np.ndarray:
        idx = np.asarray(rows)
        if idx.size == 0:
            return np.zeros(0, dtype=np.int64)
        if idx.dtype.kind not in "iu":
            raise TypeError(f"rows must be integers, got dtype {idx.dtype}")
        idx = idx.astype(np.int64, copy=False).reshape(-1)
        if idx.min() < 0 or idx.max() >= n_rows:
            raise IndexError(f"row out of range [0, {n_rows})")
        return idx

    def _flush(self) -> None:
        """Merge pending row blocks into the field matrices (caller holds the lock).

        Builds new arrays (never resizes in place), so snapshots held by readers stay valid.
        """
        if not self._pending[0]:
            return
        n_cols = len(self._vocab.terms)
        for f, blocks in enumerate(self._pending):
            new = blocks[0] if len(blocks) == 1 else _stack_rows(blocks, n_cols)
            self._matrices[f] = _insert_rows(self._matrices[f], new, n_cols)
            blocks.clear()

    def _read(self) -> _Snapshot:
        snap = self._snapshot
        if snap is not None:
            return snap
        with self._lock:
            if self._snapshot is None:
                self._flush()
                k1, b = self.config.k1, self.config.b
                n_live = self._n_live
                norms: list[np.ndarray | None] = []
                for f, lengths in enumerate(self._lengths):
                    total = self._live_length_sums[f]
                    if n_live == 0 or total <= 0:
                        norms.append(None)  # no live row has text in this field
                        continue
                    avg = total / n_live
                    norms.append(k1 * (1.0 - b + b * lengths.astype(np.float64) / avg))
                self._snapshot = _Snapshot(
                    n_rows=self.n_rows,
                    n_live=n_live,
                    live=self._live,
                    matrices=tuple(self._matrices),
                    norms=tuple(norms),
                    vocab=self._vocab,
                )
            return self._snapshot

    def _accumulate(self, snap: _Snapshot, f: int, terms: list[str], out: np.ndarray) -> None:
        """Add field ``f``'s weighted BM25 contribution of ``terms`` into ``out``."""
        norm = snap.norms[f]
        weight = float(self._weights[f])
        if norm is None or weight == 0.0 or not terms:
            return
        m = snap.matrices[f]
        n_cols = m.shape[1]
        indptr, indices, data = m.indptr, m.indices, m.data
        n = snap.n_live
        all_live = n == snap.n_rows
        for term in terms:
            col = snap.vocab.get(term)
            if col is None or col >= n_cols:  # unknown, or added after this snapshot
                continue
            lo, hi = indptr[col], indptr[col + 1]
            if lo == hi:
                continue
            rows = indices[lo:hi]
            tf = data[lo:hi]
            if not all_live:
                keep = snap.live[rows]
                rows, tf = rows[keep], tf[keep]
            df = rows.shape[0]
            if df == 0:
                continue
            idf = math.log(1.0 + (n - df + 0.5) / (df + 0.5))
            out[rows] += (weight * idf) * tf / (tf + norm[rows])


def _stack_rows(blocks: Sequence[sp.csc_array], n_cols: int) -> sp.csc_array:
    """Stack CSC blocks vertically, padding each with empty columns up to ``n_cols``.

    O(nnz) with a few vectorized passes (no sort); used for the (small) pending blocks.
    """
    counts = np.zeros((len(blocks), n_cols), dtype=np.int64)
    for i, blk in enumerate(blocks):
        counts[i, : blk.shape[1]] = np.diff(blk.indptr)
    indptr = np.zeros(n_cols + 1, dtype=np.int64)
    np.cumsum(counts.sum(axis=0), out=indptr[1:])
    nnz = int(indptr[-1])
    n_rows = sum(blk.shape[0] for blk in blocks)
    indices = np.empty(nnz, dtype=np.int64)
    data = np.empty(nnz, dtype=np.float32)
    # where each block's entries start inside each merged column
    offsets = indptr[:-1] + np.cumsum(counts, axis=0) - counts
    row_offset = 0
    for i, blk in enumerate(blocks):
        if blk.nnz:
            cols = np.repeat(np.arange(blk.shape[1]), np.diff(blk.indptr))
            dest = offsets[i, cols] + (np.arange(blk.nnz) - blk.indptr[cols])
            indices[dest] = blk.indices + row_offset
            data[dest] = blk.data
        row_offset += blk.shape[0]
    return sp.csc_array((data, indices, indptr), shape=(n_rows, n_cols))


def _insert_rows(main: sp.csc_array, new: sp.csc_array, n_cols: int) -> sp.csc_array:
    """``vstack([main, new])`` as CSC with ``n_cols`` columns, via ``np.insert``.

    Each of ``new``'s entries goes at the end of its column's segment in ``main``, so main's
    arrays are copied in bulk (memcpy speed) rather than scattered. Returns new arrays; the
    inputs are not modified (snapshots held by readers stay valid).
    """
    n_main = main.shape[0]
    main_indptr = np.empty(n_cols + 1, dtype=np.int64)
    main_indptr[: main.shape[1] + 1] = main.indptr
    main_indptr[main.shape[1] + 1 :] = main.indptr[-1]
    new_indptr = np.empty(n_cols + 1, dtype=np.int64)
    new_indptr[: new.shape[1] + 1] = new.indptr
    new_indptr[new.shape[1] + 1 :] = new.indptr[-1]
    n_rows = n_main + new.shape[0]
    nnz = int(main_indptr[-1] + new_indptr[-1])
    index_dtype = np.int32 if max(n_rows, nnz) < 2**31 else np.int64
    cols = np.repeat(np.arange(n_cols), np.diff(new_indptr))
    pos = main_indptr[cols + 1]
    indices = np.insert(
        main.indices.astype(index_dtype, copy=False),
        pos,
        (new.indices + n_main).astype(index_dtype, copy=False),
    )
    data = np.insert(main.data.astype(np.float32, copy=False), pos, new.data)
    indptr = (main_indptr + new_indptr).astype(index_dtype, copy=False)
    return sp.csc_array((data, indices, indptr), shape=(n_rows, n_cols))


def _write_atomic(path: Path, write: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{threading.get_ident()}")
    try:
        with open(tmp, "wb") as fh:
            write(fh)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
