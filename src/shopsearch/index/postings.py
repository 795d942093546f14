"""The term-frequency storage behind :class:`~shopsearch.index.lexical.BM25Index`.

One shared vocabulary (term -> column id, only grows until :meth:`Postings.compact`) and,
per field, a term-frequency matrix in CSC form (rows = documents, columns = terms), so a
term's postings in a field are one contiguous slice; plus per-field document lengths and a
live mask (deletes are tombstones). Rows appended since the last :meth:`Postings.flush` are
kept as small blocks and merged into the big matrices, once, by the next flush.

Every change builds new arrays or replaces attributes (never resizes an array in place), so
arrays that a reader took earlier stay valid. Callers serialize writes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import scipy.sparse as sp

__all__ = ["Postings", "Vocab"]


class Vocab(dict[str, int]):
    """term -> column id; looking up an unseen term with ``[]`` appends it (use ``get`` to
    read without adding)."""

    def __init__(self, terms: Sequence[str] = ()) -> None:
        super().__init__((t, i) for i, t in enumerate(terms))
        self.terms: list[str] = list(terms)

    def __missing__(self, term: str) -> int:
        col = self[term] = len(self.terms)
        self.terms.append(term)
        return col


class Postings:
    """Per-field term frequencies and lengths of every row, and which rows are live.

    >>> postings = Postings(["title"])
    >>> postings.append([{"title": ["red", "mug", "red"]}]).tolist()
    [0]
    >>> postings.flush()
    >>> postings.matrices[0].toarray().tolist()
    [[2.0, 1.0]]
    """

    def __init__(self, fields: Sequence[str]) -> None:
        self.fields = tuple(fields)
        n_fields = len(self.fields)
        self.vocab = Vocab()
        self.matrices: list[sp.csc_array] = [
            sp.csc_array((0, 0), dtype=np.float32) for _ in range(n_fields)
        ]
        self.lengths: list[np.ndarray] = [np.zeros(0, np.float32) for _ in range(n_fields)]
        self.live = np.zeros(0, dtype=bool)
        self.live_length_sums = np.zeros(n_fields, dtype=np.float64)
        self.n_live = 0
        # rows added since the last flush: per field, a list of small CSC blocks
        self.pending: list[list[sp.csc_array]] = [[] for _ in range(n_fields)]

    @classmethod
    def from_arrays(
        cls,
        fields: Sequence[str],
        terms: Sequence[str],
        matrices: list[sp.csc_array],
        lengths: list[np.ndarray],
        live: np.ndarray,
    ) -> Postings:
        """Postings over stored arrays (as :func:`~shopsearch.index.lexical_files` reads
        them); the live counts are derived from ``live`` and ``lengths``."""
        postings = cls(fields)
        postings.vocab = Vocab(terms)
        postings.matrices = matrices
        postings.lengths = lengths
        postings.live = live
        postings.n_live = int(live.sum())
        postings.live_length_sums = np.array(
            [ln[live].sum(dtype=np.float64) for ln in lengths], dtype=np.float64
        )
        return postings

    @property
    def n_rows(self) -> int:
        return int(self.live.shape[0])

    def append(self, docs: Sequence[Mapping[str, Sequence[str]]]) -> np.ndarray:
        """Append tokenized documents as pending blocks; return their row numbers."""
        fields = self.fields
        n_fields = len(fields)
        n_new = len(docs)
        lookup = self.vocab.__getitem__  # adds unseen terms (Vocab.__missing__)
        lengths = np.zeros((n_fields, n_new), dtype=np.float32)
        blocks = []
        for f, name in enumerate(fields):
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
        n_cols = len(self.vocab.terms)
        for f, (rows, cols) in enumerate(blocks):
            # COO -> CSC sums the duplicate (row, term) pairs into term frequencies
            block = sp.csc_array(
                (np.ones(rows.shape[0], dtype=np.float32), (rows, cols)),
                shape=(n_new, n_cols),
            )
            block.sum_duplicates()
            self.pending[f].append(block)
            self.lengths[f] = np.concatenate([self.lengths[f], lengths[f]])
        start = self.n_rows
        self.live = np.concatenate([self.live, np.ones(n_new, dtype=bool)])
        self.live_length_sums += lengths.sum(axis=1, dtype=np.float64)
        self.n_live += n_new
        return np.arange(start, start + n_new, dtype=np.int64)

    def delete(self, rows: np.ndarray) -> bool:
        """Tombstone ``rows`` (valid row numbers); return whether any live row was deleted."""
        idx = np.unique(rows)
        idx = idx[self.live[idx]]
        if idx.size == 0:
            return False
        live = self.live.copy()  # copy-on-write: readers keep their own mask
        live[idx] = False
        for f in range(len(self.fields)):
            self.live_length_sums[f] -= float(self.lengths[f][idx].sum(dtype=np.float64))
        self.live = live
        self.n_live -= int(idx.size)
        if self.n_live == 0:
            self.live_length_sums[:] = 0.0  # no float residue
        return True

    def compact(self) -> np.ndarray:
        """Drop tombstoned rows and terms no live row uses; live rows keep their order.

        Returns the mapping ``old_row -> new_row`` (int64, ``-1`` for dropped rows).
        """
        self.flush()
        live = self.live
        mapping = np.full(live.shape[0], -1, dtype=np.int64)
        mapping[live] = np.arange(int(live.sum()), dtype=np.int64)
        n_new = int(live.sum())
        kept: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        used = np.zeros(len(self.vocab.terms), dtype=bool)
        for m in self.matrices:
            keep = live[m.indices]
            cols = np.repeat(np.arange(m.shape[1]), np.diff(m.indptr))[keep]
            kept.append((mapping[m.indices[keep]], cols, m.data[keep]))
            used[cols] = True
        col_map = np.cumsum(used) - 1
        n_cols = int(used.sum())
        self.matrices = [
            sp.csc_array((data, (rows, col_map[cols])), shape=(n_new, n_cols))
            for rows, cols, data in kept
        ]
        old_terms = self.vocab.terms
        self.vocab = Vocab([t for t, u in zip(old_terms, used.tolist(), strict=True) if u])
        self.lengths = [lengths[live] for lengths in self.lengths]
        self.live = np.ones(n_new, dtype=bool)
        self.n_live = n_new
        self.live_length_sums = np.array(
            [lengths.sum(dtype=np.float64) for lengths in self.lengths]
        )
        return mapping

    def flush(self) -> None:
        """Merge pending row blocks into the field matrices.

        Builds new arrays (never resizes in place), so matrices held by readers stay valid.
        """
        if not self.pending[0]:
            return
        n_cols = len(self.vocab.terms)
        for f, blocks in enumerate(self.pending):
            new = blocks[0] if len(blocks) == 1 else _stack_rows(blocks, n_cols)
            self.matrices[f] = _insert_rows(self.matrices[f], new, n_cols)
            blocks.clear()


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
