"""Postings (the BM25 term-frequency storage): its running totals equal a recount."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from shopsearch.index.postings import Postings, Vocab

FIELDS = ("title", "body")
WORDS = [f"w{i}" for i in range(15)]


def _docs(rng: np.random.Generator, n: int) -> list[dict[str, list[str]]]:
    return [
        {name: list(rng.choice(WORDS, size=rng.integers(0, 6))) for name in FIELDS}
        for _ in range(n)
    ]


def _recount(postings: Postings) -> Postings:
    """The same arrays, with the running totals derived afresh (as a load does)."""
    postings.flush()
    return Postings.from_arrays(
        FIELDS, postings.vocab.terms, postings.matrices, postings.lengths, postings.live
    )


def _dense(postings: Postings) -> list[np.ndarray]:
    postings.flush()
    return [m.toarray() for m in postings.matrices]


def test_vocab_adds_unseen_terms_only_through_getitem():
    vocab = Vocab(["a"])
    assert vocab.get("b") is None and vocab.terms == ["a"]
    assert vocab["b"] == 1 and vocab["a"] == 0
    assert vocab.terms == ["a", "b"]


@pytest.mark.parametrize("seed", range(5))
def test_running_totals_equal_a_recount(seed):
    rng = np.random.default_rng(seed)
    postings = Postings(FIELDS)
    expected_rows: list[dict[str, list[str]]] = []
    for _ in range(6):
        docs = _docs(rng, int(rng.integers(1, 20)))
        rows = postings.append(docs)
        assert rows.tolist() == list(range(len(expected_rows), len(expected_rows) + len(docs)))
        expected_rows += docs
        if rng.random() < 0.5:
            postings.flush()  # some appends are merged one by one, some together
        doomed = rng.choice(postings.n_rows, size=postings.n_rows // 4, replace=False)
        postings.delete(doomed)
        fresh = _recount(postings)
        assert postings.n_live == fresh.n_live == int(postings.live.sum())
        np.testing.assert_allclose(postings.live_length_sums, fresh.live_length_sums)
    # term frequencies: row i, column of term t = count of t in field
    for f, matrix in enumerate(_dense(postings)):
        for i, doc in enumerate(expected_rows):
            for term, col in postings.vocab.items():
                assert matrix[i, col] == doc[FIELDS[f]].count(term)


def test_compact_keeps_live_rows_in_order_and_drops_unused_terms():
    postings = Postings(FIELDS)
    postings.append([{"title": ["red", "mug"]}, {"title": ["blue"], "body": ["only", "here"]}, {}])
    assert postings.delete(np.array([1]))
    assert not postings.delete(np.array([1]))  # already deleted
    mapping = postings.compact()
    assert mapping.tolist() == [0, -1, 1]
    assert postings.vocab.terms == ["red", "mug"]
    assert postings.n_rows == postings.n_live == 2
    assert [m.shape for m in postings.matrices] == [(2, 2), (2, 2)]
    assert postings.live_length_sums.tolist() == [2.0, 0.0]
    assert all(isinstance(m, sp.csc_array) for m in postings.matrices)


def test_deleting_every_row_leaves_no_float_residue():
    postings = Postings(FIELDS)
    postings.append([{"title": ["a"] * 3}, {"body": ["b"] * 7}])
    postings.delete(np.array([0, 1]))
    assert postings.n_live == 0
    assert postings.live_length_sums.tolist() == [0.0, 0.0]


def test_a_str_field_is_rejected():
    with pytest.raises(TypeError, match="list of tokens"):
        Postings(FIELDS).append([{"title": "red mug"}])  # type: ignore[dict-item]
