"""VectorIndex: exact search against a brute-force reference, ANN recall against exact top-k."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shopsearch.errors import IndexNotFoundError, ShopSearchWarning
from shopsearch.index.vector import (
    CONFIG_FILE,
    GRAPH_FILE,
    LIVE_FILE,
    VECTORS_FILE,
    VectorIndex,
    VectorIndexConfig,
)

DIM = 64
N_ANN = 20_000
N_QUERIES = 100
ANN_CONFIG = VectorIndexConfig(exact_below=1_000, selective_filter_below=1_000)


# ---------------------------------------------------------------------- helpers


def normalise(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def clustered(rng: np.random.Generator, n: int, centers: np.ndarray, noise: float = 0.5):
    """Unit vectors scattered around cluster centres, like embeddings of product categories."""
    picks = rng.integers(0, centers.shape[0], n)
    points = centers[picks] + noise * rng.standard_normal((n, centers.shape[1]))
    return normalise(points)


def random_unit(rng: np.random.Generator, n: int, dim: int = DIM) -> np.ndarray:
    return normalise(rng.standard_normal((n, dim)))


def reference_search(
    vectors: np.ndarray,
    live: np.ndarray,
    query: np.ndarray,
    k: int,
    mask: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Brute force: score every row, keep allowed live rows, stable sort (ties: lower row)."""
    scores = vectors @ query
    allowed = live.copy() if mask is None else live & mask
    rows = np.flatnonzero(allowed)
    order = np.argsort(-scores[rows], kind="stable")[:k]
    return rows[order], scores[rows][order]


def recall_at_k(found: list[np.ndarray], truth: list[np.ndarray]) -> float:
    hits = [
        len(set(f.tolist()) & set(t.tolist())) / len(t) for f, t in zip(found, truth, strict=True)
    ]
    return float(np.mean(hits))


def assert_same_results(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]):
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_allclose(a[1], b[1], rtol=1e-5, atol=1e-6)


#: Float32 rounding of an inner product of unit vectors (|error| <~ dim * 6e-8): what two BLAS
#: kernels may disagree by (gemv over a gathered subset vs over all rows, AVX2 vs AVX-512).
#: The seeded random data below has neighbouring reference scores as close as 8e-8.
FLOAT32_DOT = 1e-6


def assert_matches_reference(
    found: tuple[np.ndarray, np.ndarray],
    vectors: np.ndarray,
    live: np.ndarray,
    query: np.ndarray,
    k: int,
    mask: np.ndarray | None = None,
):
    """``found`` is the brute-force top ``k`` (:func:`reference_search`): the same rows in the
    same order, except that rows whose exact scores differ by less than float32 rounding
    (:data:`FLOAT32_DOT`) may come in either order or swap at the cut; scores position by
    position up to rounding. A wrong, deleted, masked or repeated row still fails."""
    rows, scores = found
    expected_rows, expected_scores = reference_search(vectors, live, query, k, mask)
    assert rows.dtype == np.int64 and rows.shape == expected_rows.shape
    np.testing.assert_allclose(scores, expected_scores, rtol=1e-5, atol=FLOAT32_DOT)
    if np.array_equal(rows, expected_rows):
        return
    allowed = live if mask is None else live & mask
    assert allowed[rows].all() and np.unique(rows).size == rows.size
    exact = vectors.astype(np.float64) @ query.astype(np.float64)
    np.testing.assert_allclose(exact[rows], exact[expected_rows], rtol=0, atol=FLOAT32_DOT)


@pytest.fixture(scope="module")
def ann_data() -> tuple[np.ndarray, np.ndarray]:
    """20,000 product-like vectors in 100 clusters, and fresh queries from the same clusters."""
    rng = np.random.default_rng(7)
    centers = rng.standard_normal((100, DIM))
    return clustered(rng, N_ANN, centers), clustered(rng, N_QUERIES, centers)


@pytest.fixture(scope="module")
def ann_index(ann_data) -> VectorIndex:
    """Shared, never mutated: tests that write build their own index."""
    vectors, _ = ann_data
    index = VectorIndex(DIM, ANN_CONFIG)
    index.add(vectors)
    index.build_ann()
    return index


# ---------------------------------------------------------------------- config


def test_config_roundtrip_and_validation():
    config = VectorIndexConfig(exact_below=5, oversample=8)
    assert VectorIndexConfig.from_dict(config.to_dict()) == config
    assert VectorIndexConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    with pytest.raises(ValueError, match="unknown"):
        VectorIndexConfig.from_dict({"exact_bellow": 3})
    with pytest.raises(ValueError, match="oversample"):
        VectorIndexConfig(oversample=0)
    with pytest.raises(ValueError, match="connectivity"):
        VectorIndexConfig(connectivity=1)


# ---------------------------------------------------------------------- add / validation


def test_add_returns_consecutive_rows_and_read_only_views():
    rng = np.random.default_rng(0)
    index = VectorIndex(8)
    first = index.add(random_unit(rng, 3, 8))
    second = index.add(random_unit(rng, 2, 8).astype(np.float64))  # float64 is cast
    assert first.tolist() == [0, 1, 2] and second.tolist() == [3, 4]
    assert first.dtype == np.int64
    assert index.add(np.empty((0, 8), dtype=np.float32)).tolist() == []
    assert (index.dim, index.n_rows, index.n_live, len(index)) == (8, 5, 5, 5)
    assert index.vectors.dtype == np.float32 and index.vectors.shape == (5, 8)
    assert index.live_mask.tolist() == [True] * 5
    with pytest.raises(ValueError):
        index.vectors[0, 0] = 1.0
    with pytest.raises(ValueError):
        index.live_mask[0] = False


def test_add_grows_past_initial_capacity():
    rng = np.random.default_rng(1)
    index = VectorIndex(4)
    chunks = [random_unit(rng, 700, 4) for _ in range(4)]
    for chunk in chunks:
        index.add(chunk)
    np.testing.assert_array_equal(index.vectors, np.concatenate(chunks))


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((2, 7), dtype=np.float32),  # wrong dim
        np.zeros(8, dtype=np.float32),  # one vector not wrapped
        np.zeros((2, 8), dtype=np.int64),  # not floating point
        np.array([[np.nan] * 8], dtype=np.float32),
        np.array([[0.5] * 7 + [np.inf]], dtype=np.float32),
        np.full((1, 8), 1e300),  # overflows float32
    ],
    ids=["wrong-dim", "1d", "int", "nan", "inf", "overflow"],
)
def test_invalid_vectors_raise_value_error_and_add_nothing(bad):
    index = VectorIndex(8)
    index.add(np.ones((1, 8), dtype=np.float32))
    with pytest.raises(ValueError, match="vectors"):
        index.add(bad)
    assert index.n_rows == 1


def test_invalid_arguments():
    rng = np.random.default_rng(2)
    index = VectorIndex(8)
    index.add(random_unit(rng, 10, 8))
    q = random_unit(rng, 1, 8)[0]
    with pytest.raises(ValueError, match="query"):
        index.search(np.ones(7, dtype=np.float32), 3)
    with pytest.raises(ValueError, match="query"):
        index.search(np.full(8, np.nan, dtype=np.float32), 3)
    with pytest.raises(ValueError, match="mask"):
        index.search(q, 3, mask=np.ones(9, dtype=bool))
    with pytest.raises(ValueError, match="mask"):
        index.search(q, 3, mask=np.ones(10, dtype=np.int8))
    with pytest.raises(ValueError, match="k"):
        index.search(q, -1)
    with pytest.raises(IndexError):
        index.delete([10])
    with pytest.raises(IndexError):
        index.scores(q, np.array([-1]))
    with pytest.raises(ValueError):
        VectorIndex(0)


# ---------------------------------------------------------------------- exact search


def test_empty_index_and_k_zero():
    index = VectorIndex(4)
    rows, scores = index.search(np.ones(4, dtype=np.float32), 5)
    assert rows.shape == (0,) and scores.shape == (0,)
    assert rows.dtype == np.int64 and scores.dtype == np.float32
    index.add(np.eye(4, dtype=np.float32))
    assert index.search(np.ones(4, dtype=np.float32), 0)[0].shape == (0,)
    index.delete([0, 1, 2, 3])
    assert index.search(np.ones(4, dtype=np.float32), 3)[0].shape == (0,)


@pytest.mark.parametrize("k", [1, 10, 299, 5_000])
@pytest.mark.parametrize("mask_kind", ["none", "half", "sparse"])
def test_exact_search_matches_brute_force(k, mask_kind):
    rng = np.random.default_rng(k)
    vectors = random_unit(rng, 2_000, 32)
    index = VectorIndex(32)
    index.add(vectors)
    index.delete(rng.choice(2_000, 300, replace=False))
    mask = {
        "none": None,
        "half": rng.random(2_000) < 0.5,
        "sparse": rng.random(2_000) < 0.01,
    }[mask_kind]
    for query in random_unit(rng, 5, 32):
        live = index.live_mask
        assert_matches_reference(index.search(query, k, mask), vectors, live, query, k, mask)
        found = index.search(query, k, mask, exact=True)
        assert_matches_reference(found, vectors, live, query, k, mask)
    assert not index.ann_built  # small catalog: the graph is never built


@settings(max_examples=60, deadline=None)
@given(
    data=st.data(),
    n=st.integers(1, 60),
    k=st.integers(1, 70),
)
def test_exact_search_property_with_many_ties(data, n, k):
    """Small-integer vectors make scores exact and ties frequent: ties go to the lower row."""
    seed = data.draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    vectors = rng.integers(-2, 3, size=(n, 4)).astype(np.float32)
    query = rng.integers(-2, 3, size=4).astype(np.float32)
    index = VectorIndex(4)
    index.add(vectors)
    index.delete(np.flatnonzero(rng.random(n) < data.draw(st.floats(0, 1))))
    mask = rng.random(n) < data.draw(st.floats(0, 1)) if data.draw(st.booleans()) else None
    expected = reference_search(vectors, index.live_mask, query, k, mask)
    found = index.search(query, k, mask)
    np.testing.assert_array_equal(found[0], expected[0])
    np.testing.assert_array_equal(found[1], expected[1])


def test_ties_at_the_cut_go_to_lower_rows():
    # 50 identical vectors: any 3 of them score the same; the lowest rows must win.
    vectors = np.tile(np.array([[0.6, 0.8]], dtype=np.float32), (50, 1))
    vectors[[7, 30]] = [1.0, 0.0]
    index = VectorIndex(2)
    index.add(vectors)
    rows, scores = index.search(np.array([1.0, 0.0], dtype=np.float32), 4)
    assert rows.tolist() == [7, 30, 0, 1]
    np.testing.assert_allclose(scores, [1.0, 1.0, 0.6, 0.6])


def test_scores_are_exact_inner_products():
    rng = np.random.default_rng(3)
    vectors = random_unit(rng, 100, 16)
    index = VectorIndex(16)
    index.add(vectors)
    index.delete([4, 9])
    query = random_unit(rng, 1, 16)[0]
    all_scores = index.scores(query)
    assert all_scores.dtype == np.float32 and all_scores.shape == (100,)
    expected = vectors @ query
    expected[[4, 9]] = -np.inf
    np.testing.assert_allclose(all_scores, expected, rtol=1e-6, atol=FLOAT32_DOT)
    some = index.scores(query, np.array([9, 0, 50]))  # a 3-row product: maybe another kernel
    np.testing.assert_allclose(some, [-np.inf, expected[0], expected[50]], atol=FLOAT32_DOT)
    assert index.scores(query, np.array([], dtype=np.int64)).shape == (0,)
    rows, scores = index.search(query, 5)
    np.testing.assert_allclose(scores, all_scores[rows], rtol=1e-6)


def test_delete_is_idempotent_and_never_returned_exact():
    rng = np.random.default_rng(4)
    vectors = random_unit(rng, 200, 16)
    index = VectorIndex(16)
    index.add(vectors)
    index.delete(5)
    index.delete([5, 6, 6])
    index.delete(np.array([], dtype=np.int64))
    assert index.n_live == 198 and index.n_rows == 200
    assert not index.live_mask[5] and not index.live_mask[6]
    for row in (5, 6):
        rows, _ = index.search(vectors[row], 200)
        assert row not in rows.tolist() and rows.shape == (198,)


# ---------------------------------------------------------------------- ANN


def test_default_search_chooses_by_size():
    assert not VectorIndex(4).uses_ann
    index = VectorIndex(4, VectorIndexConfig(exact_below=3))
    index.add(np.eye(4, dtype=np.float32)[:2])
    assert not index.uses_ann
    index.search(np.ones(4, dtype=np.float32), 1)
    assert not index.ann_built
    index.add(np.eye(4, dtype=np.float32)[2:])
    assert index.uses_ann
    index.search(np.ones(4, dtype=np.float32), 1)
    assert index.ann_built  # built lazily by the first search that needs it


def test_ann_recall_at_10(ann_index, ann_data):
    vectors, queries = ann_data
    assert ann_index.uses_ann
    truth = [reference_search(vectors, ann_index.live_mask, q, 10)[0] for q in queries]
    found = [ann_index.search(q, 10) for q in queries]
    assert recall_at_k([rows for rows, _ in found], truth) >= 0.95
    for (rows, scores), query in zip(found, queries, strict=True):
        assert rows.dtype == np.int64 and scores.dtype == np.float32
        assert np.all(np.diff(scores) <= 0)
        # ANN candidates are re-scored exactly.
        np.testing.assert_allclose(scores, vectors[rows] @ query, rtol=1e-5, atol=1e-6)


def test_ann_with_half_selective_mask(ann_index, ann_data):
    vectors, queries = ann_data
    mask = np.random.default_rng(5).random(N_ANN) < 0.5
    truth = [reference_search(vectors, ann_index.live_mask, q, 10, mask)[0] for q in queries]
    found = [ann_index.search(q, 10, mask)[0] for q in queries]
    assert all(mask[rows].all() and rows.shape == (10,) for rows in found)
    assert recall_at_k(found, truth) >= 0.9


def test_very_selective_mask_uses_exact_search(ann_data):
    vectors, queries = ann_data
    index = VectorIndex(DIM, ANN_CONFIG)
    index.add(vectors)
    assert index.uses_ann
    mask = np.zeros(N_ANN, dtype=bool)
    mask[np.random.default_rng(6).choice(N_ANN, 30, replace=False)] = True
    for q in queries[:10]:
        assert_matches_reference(index.search(q, 10, mask), vectors, index.live_mask, q, 10, mask)
        assert_matches_reference(index.search(q, 50, mask), vectors, index.live_mask, q, 50, mask)
    assert not index.ann_built  # exact over the 30 allowed rows; no graph needed
    # Even forced ANN gives up before searching: post-filtering would need too many candidates.
    q = queries[0]
    found = index.search(q, 10, mask, exact=False)
    assert_matches_reference(found, vectors, index.live_mask, q, 10, mask)
    assert not index.ann_built


def test_ann_falls_back_to_exact_when_the_filter_removes_every_candidate():
    rng = np.random.default_rng(8)
    vectors = random_unit(rng, 2_000, 16)
    index = VectorIndex(
        16, VectorIndexConfig(exact_below=10, selective_filter_below=10, oversample=1)
    )
    index.add(vectors)
    query = vectors[0]
    # Allow only the 200 rows least similar to the query: no ANN candidate passes.
    mask = np.zeros(2_000, dtype=bool)
    mask[np.argsort(vectors @ query)[:200]] = True
    found = index.search(query, 10, mask, exact=False)
    assert_matches_reference(found, vectors, index.live_mask, query, 10, mask)
    assert index.ann_built
    # Fewer allowed rows than k: every allowed row comes back, best first.
    few = np.zeros(2_000, dtype=bool)
    few[[3, 1_500, 1_999]] = True
    found = index.search(query, 10, few, exact=False)
    assert_matches_reference(found, vectors, index.live_mask, query, 10, few)


def test_ann_never_returns_deleted_and_sees_added_rows():
    rng = np.random.default_rng(9)
    centers = rng.standard_normal((20, 32))
    vectors = clustered(rng, 5_000, centers)
    index = VectorIndex(32, VectorIndexConfig(exact_below=100, selective_filter_below=100))
    index.add(vectors[:4_000])
    index.delete(np.arange(0, 200))  # before the graph exists
    index.build_ann()
    index.delete(np.arange(200, 400))  # after: removed from the graph too
    deleted = set(range(400))
    for row in range(0, 400, 7):  # each deleted row would be its own best match
        found, _ = index.search(vectors[row], 20)
        assert deleted.isdisjoint(found.tolist())
        found, _ = index.search(vectors[row], 20, exact=True)
        assert deleted.isdisjoint(found.tolist())
    half = rng.random(4_000) < 0.5
    for row in range(1, 400, 37):
        found, _ = index.search(vectors[row], 20, half)
        assert deleted.isdisjoint(found.tolist()) and half[found].all()
    new_rows = index.add(vectors[4_000:])
    assert new_rows[0] == 4_000 and index.ann_built
    for row in new_rows[::97]:
        found, scores = index.search(vectors[row], 5, exact=False)
        assert found[0] == row and scores[0] == pytest.approx(1.0, abs=1e-5)


# ---------------------------------------------------------------------- compact


@pytest.mark.parametrize("with_graph", [False, True])
def test_compact_renumbers_and_preserves_scores(with_graph):
    rng = np.random.default_rng(10)
    vectors = random_unit(rng, 1_000, 16)
    index = VectorIndex(16, VectorIndexConfig(exact_below=100, selective_filter_below=100))
    index.add(vectors)
    if with_graph:
        index.build_ann()
    deleted = rng.choice(1_000, 250, replace=False)
    index.delete(deleted)
    query = random_unit(rng, 1, 16)[0]
    before_scores = index.scores(query)
    before = index.search(query, 10, exact=True)
    mapping = index.compact()
    assert mapping.dtype == np.int64 and mapping.shape == (1_000,)
    assert (mapping[deleted] == -1).all()
    kept = np.setdiff1d(np.arange(1_000), deleted)
    np.testing.assert_array_equal(mapping[kept], np.arange(750))
    assert (index.n_rows, index.n_live) == (750, 750) and index.live_mask.all()
    np.testing.assert_array_equal(index.vectors, vectors[kept])
    np.testing.assert_allclose(
        index.scores(query), before_scores[kept], rtol=1e-6, atol=FLOAT32_DOT
    )  # rows at other positions: a kernel may sum them in another order (scores near 0 here)
    assert_same_results(index.search(query, 10, exact=True), (mapping[before[0]], before[1]))
    assert index.ann_built == with_graph
    if with_graph:
        found, _ = index.search(query, 10, exact=False)
        assert len(set(found.tolist()) & set(mapping[before[0]].tolist())) >= 9
    assert index.add(vectors[:1]).tolist() == [750]


# ---------------------------------------------------------------------- save / load


@pytest.mark.parametrize("mmap", [True, False])
def test_save_load_roundtrip_without_graph(tmp_path: Path, mmap: bool):
    rng = np.random.default_rng(11)
    vectors = random_unit(rng, 500, 16)
    config = VectorIndexConfig(oversample=6)
    index = VectorIndex(16, config)
    index.add(vectors)
    index.delete([1, 2, 3])
    index.save(tmp_path)
    assert {p.name for p in tmp_path.iterdir()} == {CONFIG_FILE, VECTORS_FILE, LIVE_FILE}
    loaded = VectorIndex.load(tmp_path, mmap=mmap)
    assert loaded.config == config and loaded.dim == 16
    assert (loaded.n_rows, loaded.n_live) == (500, 497) and not loaded.ann_built
    np.testing.assert_array_equal(loaded.vectors, vectors)
    np.testing.assert_array_equal(loaded.live_mask, index.live_mask)
    mask = rng.random(500) < 0.3
    for q in random_unit(rng, 5, 16):
        assert_same_results(loaded.search(q, 10), index.search(q, 10))
        assert_same_results(loaded.search(q, 10, mask), index.search(q, 10, mask))


@pytest.mark.parametrize("mmap", [True, False])
def test_save_load_roundtrip_with_graph(tmp_path: Path, ann_index, ann_data, mmap: bool):
    vectors, queries = ann_data
    ann_index.save(tmp_path)
    assert (tmp_path / GRAPH_FILE).is_file()
    loaded = VectorIndex.load(tmp_path, mmap=mmap)
    assert loaded.ann_built and loaded.uses_ann
    mask = np.random.default_rng(12).random(N_ANN) < 0.5
    for q in queries[:20]:
        assert_same_results(loaded.search(q, 10), ann_index.search(q, 10))
        assert_same_results(loaded.search(q, 10, mask), ann_index.search(q, 10, mask))
        assert_same_results(loaded.search(q, 10, exact=True), ann_index.search(q, 10, exact=True))


def test_save_builds_graph_for_large_index_and_drops_stale_graph(tmp_path: Path):
    rng = np.random.default_rng(13)
    index = VectorIndex(8, VectorIndexConfig(exact_below=50))
    index.add(random_unit(rng, 60, 8))
    index.save(tmp_path)
    assert index.ann_built and (tmp_path / GRAPH_FILE).is_file()
    small = VectorIndex(8, VectorIndexConfig(exact_below=50))
    small.add(random_unit(rng, 10, 8))
    small.save(tmp_path)  # over the same directory
    assert not (tmp_path / GRAPH_FILE).exists()
    assert VectorIndex.load(tmp_path).n_rows == 10


def test_writes_after_mmap_load_leave_the_files_untouched(tmp_path: Path):
    rng = np.random.default_rng(14)
    vectors = random_unit(rng, 300, 16)
    index = VectorIndex(16, VectorIndexConfig(exact_below=100, selective_filter_below=100))
    index.add(vectors)
    index.save(tmp_path)  # with graph: 300 live rows >= exact_below
    loaded = VectorIndex.load(tmp_path, mmap=True)
    extra = random_unit(rng, 5, 16)
    new_rows = loaded.add(extra)
    assert new_rows.tolist() == list(range(300, 305))
    loaded.delete([0, 301])
    np.testing.assert_array_equal(loaded.vectors, np.concatenate([vectors, extra]))
    for row in (300, 302, 304):
        for exact in (True, False):
            found, _ = loaded.search(extra[row - 300], 3, exact=exact)
            assert found[0] == row
    for exact in (True, False):
        assert 0 not in loaded.search(vectors[0], 5, exact=exact)[0].tolist()
        assert 301 not in loaded.search(extra[1], 5, exact=exact)[0].tolist()
    reloaded = VectorIndex.load(tmp_path)
    assert (reloaded.n_rows, reloaded.n_live) == (300, 300)
    # Saving the modified index over the directory it was mapped from.
    loaded.save(tmp_path)
    again = VectorIndex.load(tmp_path)
    assert (again.n_rows, again.n_live) == (305, 303)
    query = extra[2]
    assert_same_results(again.search(query, 10, exact=False), loaded.search(query, 10, exact=False))


def test_load_missing_directory(tmp_path: Path):
    with pytest.raises(IndexNotFoundError):
        VectorIndex.load(tmp_path / "nowhere")


def test_load_discards_a_graph_that_does_not_match_the_rows(tmp_path: Path):
    rng = np.random.default_rng(15)
    vectors = random_unit(rng, 200, 8)
    index = VectorIndex(8, VectorIndexConfig(exact_below=100))
    index.add(vectors)
    index.save(tmp_path)
    live = np.ones(200, dtype=bool)
    live[:10] = False  # as if live.npy came from another save than graph.usearch
    np.save(tmp_path / LIVE_FILE, live)
    with pytest.warns(ShopSearchWarning, match="rebuilt"):
        loaded = VectorIndex.load(tmp_path)
    assert not loaded.ann_built
    found, _ = loaded.search(vectors[3], 5, exact=False)
    assert loaded.ann_built and 3 not in found.tolist()
