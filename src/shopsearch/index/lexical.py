"""Incremental, exact, weighted-field BM25.

Libraries such as bm25s precompute every score with corpus-wide IDF, so an upsert or a
delete means a full rebuild. :class:`BM25Index` stores raw term frequencies instead and
scores at query time, so adds and deletes are cheap and scores always equal a fresh build
over the live rows.

The term frequencies live in :class:`~shopsearch.index.postings.Postings` (per-field CSC
matrices over one shared vocabulary, lengths, a live mask); the on-disk format is
:mod:`shopsearch.index.lexical_files`. This module holds the config and the scoring.
"""

from __future__ import annotations

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

from shopsearch.index import lexical_files
from shopsearch.index.postings import Postings
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

FORMAT_VERSION = lexical_files.FORMAT_VERSION


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


class _Snapshot(NamedTuple):
    """An immutable view of the index that readers use without holding the lock."""

    n_rows: int
    n_live: int
    live: np.ndarray  # bool[n_rows]
    matrices: tuple[sp.csc_array, ...]  # per field, n_rows x n_cols
    norms: tuple[np.ndarray | None, ...]  # per field k1 * (1 - b + b * len / avglen); None: empty
    lengths: tuple[np.ndarray, ...]  # per field, tokens of each row
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
        self._postings = Postings(self._fields)
        self._snapshot: _Snapshot | None = None

    def __repr__(self) -> str:
        return (
            f"BM25Index(n_rows={self.n_rows}, n_live={self.n_live}, "
            f"n_terms={self.n_terms}, fields={list(self._fields)})"
        )

    # -- size and liveness ------------------------------------------------------------------

    @property
    def fields(self) -> tuple[str, ...]:
        return self._fields

    @property
    def n_rows(self) -> int:
        """All rows ever added (or kept by the last :meth:`compact`), deleted ones included."""
        return self._postings.n_rows

    @property
    def n_live(self) -> int:
        return self._postings.n_live

    @property
    def n_terms(self) -> int:
        return len(self._postings.vocab.terms)

    @property
    def live_mask(self) -> np.ndarray:
        """Read-only bool mask over all rows, true for live rows (a snapshot: later deletes
        do not change it)."""
        view = self._postings.live.view()
        view.flags.writeable = False
        return view

    def is_live(self, rows: np.ndarray | Sequence[int]) -> np.ndarray:
        live = self._postings.live
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
        with self._lock:
            rows = self._postings.append(docs)
            self._snapshot = None
            return rows

    def delete(self, rows: np.ndarray | Sequence[int]) -> None:
        """Tombstone ``rows``; deleting a deleted row does nothing."""
        with self._lock:
            idx = self._check_rows(rows, self.n_rows)
            if self._postings.delete(idx):
                self._snapshot = None

    def compact(self) -> np.ndarray:
        """Drop tombstoned rows and terms no live row uses; live rows keep their order.

        Returns the mapping ``old_row -> new_row`` (int64, ``-1`` for dropped rows).
        """
        with self._lock:
            mapping = self._postings.compact()
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

    def rows_with_all(self, text: str) -> np.ndarray:
        """bool per row: the row contains every term of ``text`` (in any field); all true
        when ``text`` has no term (deleted rows are included: combine with a live mask)."""
        snap = self._read()
        terms = self.query_terms(text)
        out = np.ones(snap.n_rows, dtype=bool)
        for term in terms:
            has = np.zeros(snap.n_rows, dtype=bool)
            col = snap.vocab.get(term)
            for m in snap.matrices:
                if col is not None and col < m.shape[1]:
                    has[m.indices[m.indptr[col] : m.indptr[col + 1]]] = True
            out &= has
        return out

    def term_coverage(
        self, query: str, rows: np.ndarray | Sequence[int]
    ) -> tuple[np.ndarray, np.ndarray]:
        """For each of ``rows``: the share of the query's distinct terms it contains (in any
        field), and that share weighted by each term's idf (rare words count more). Both 0
        when the query has no term.

        >>> index = BM25Index()
        >>> index.add([{"title": "red mug"}, {"title": "blue mug"}, {"title": "red hat"}])
        array([0, 1, 2])
        >>> share, weighted = index.term_coverage("red mug", [0, 1, 2])
        >>> share.tolist()
        [1.0, 0.5, 0.5]
        """
        snap = self._read()
        idx = self._check_rows(rows, snap.n_rows)
        terms = self.query_terms(query)
        share = np.zeros(idx.shape[0], dtype=np.float32)
        weighted = np.zeros(idx.shape[0], dtype=np.float32)
        if not terms:
            return share, weighted
        n = max(snap.n_live, 1)
        total_idf = 0.0
        for term in terms:
            col = snap.vocab.get(term)
            has = np.zeros(idx.shape[0], dtype=bool)
            df = 0
            anywhere = None
            for m in snap.matrices:
                if col is None or col >= m.shape[1]:
                    continue
                posting = m.indices[m.indptr[col] : m.indptr[col + 1]]
                df = max(df, posting.shape[0])
                if posting.shape[0]:
                    if anywhere is None:
                        anywhere = np.zeros(snap.n_rows, dtype=bool)
                    anywhere[posting] = True
            if anywhere is not None:
                has = anywhere[idx]
            idf = math.log(1.0 + (n - df + 0.5) / (df + 0.5))
            total_idf += idf
            share += has
            weighted += idf * has
        share /= len(terms)
        weighted /= total_idf if total_idf > 0 else 1.0
        return share, weighted

    def field_lengths(self, field: str, rows: np.ndarray | Sequence[int]) -> np.ndarray:
        """How many tokens each of ``rows`` has in ``field`` (0 for an unknown field)."""
        snap = self._read()
        idx = self._check_rows(rows, snap.n_rows)
        if field not in self._fields:
            return np.zeros(idx.shape[0], dtype=np.float32)
        return snap.lengths[self._fields.index(field)][idx].astype(np.float32)

    def field_score(self, field: str, query: str, rows: np.ndarray | Sequence[int]) -> np.ndarray:
        """One field's weighted contribution to ``scores(query, rows)`` (0 for an unknown
        field)."""
        snap = self._read()
        idx = self._check_rows(rows, snap.n_rows)
        if field not in self._fields:
            return np.zeros(idx.shape[0], dtype=np.float32)
        vec = np.zeros(snap.n_rows, dtype=np.float32)
        self._accumulate(snap, self._fields.index(field), self.query_terms(query), vec)
        return vec[idx]

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
        """Write ``config.json``, ``vocab.json`` and ``arrays.npz`` into ``directory``
        (see :mod:`shopsearch.index.lexical_files`).

        Each file is written to a temporary name and renamed, so a reader never sees half a
        file (the three files are not replaced as one unit).
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        with self._lock:
            self._postings.flush()
            lexical_files.write_index(
                directory, self._postings, self.config.to_dict(), self.tokenizer.config.to_dict()
            )

    @classmethod
    def load(
        cls, directory: str | os.PathLike[str], tokenizer: Tokenizer | None = None
    ) -> BM25Index:
        """Load an index written by :meth:`save`; the tokenizer is rebuilt from its saved
        config unless one is given."""
        directory = Path(directory)
        meta = lexical_files.read_meta(directory)
        if tokenizer is None:
            tokenizer = Tokenizer(TokenizerConfig.from_dict(meta["tokenizer"]))
        index = cls(BM25Config.from_dict(meta["bm25"]), tokenizer)
        index._postings = lexical_files.read_postings(directory, index._fields)
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

    def _read(self) -> _Snapshot:
        snap = self._snapshot
        if snap is not None:
            return snap
        with self._lock:
            if self._snapshot is None:
                postings = self._postings
                postings.flush()
                k1, b = self.config.k1, self.config.b
                n_live = postings.n_live
                norms: list[np.ndarray | None] = []
                for f, lengths in enumerate(postings.lengths):
                    total = postings.live_length_sums[f]
                    if n_live == 0 or total <= 0:
                        norms.append(None)  # no live row has text in this field
                        continue
                    avg = total / n_live
                    norms.append(k1 * (1.0 - b + b * lengths.astype(np.float64) / avg))
                self._snapshot = _Snapshot(
                    n_rows=postings.n_rows,
                    n_live=n_live,
                    live=postings.live,
                    matrices=tuple(postings.matrices),
                    norms=tuple(norms),
                    lengths=tuple(postings.lengths),
                    vocab=postings.vocab,
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
