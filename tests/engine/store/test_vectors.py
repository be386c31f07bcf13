"""Video vectors: the FAISS and HNSW indexes against exact search (moved out of
tests/engine/store/test_postings.py, which holds the audio postings)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nanhu.engine.errors import CatalogCorrupt
from nanhu.engine.store.vectors import (
    BruteForceVectorIndex,
    FaissVectorIndex,
    VectorSegment,
    write_hnsw_graph,
    write_vector_segment,
)


def random_unit_vectors(rng, n: int, dim: int) -> np.ndarray:
    vectors = rng.standard_normal((n, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), sizes=st.lists(st.integers(1, 300), min_size=1, max_size=3),
       k=st.integers(1, 20), dim=st.sampled_from([8, 64]))
def test_faiss_vectors_agree_with_exact_search(seed, sizes, k, dim):
    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory() as folder:
        segments, parts = [], []
        for n, size in enumerate(sizes):
            part = (random_unit_vectors(rng, size, dim), rng.integers(0, 99, size).astype(np.uint32),
                    rng.uniform(0, 600, size).astype(np.float32))
            write_vector_segment(Path(folder) / f"v{n}.vec", *part)
            segments.append(VectorSegment(Path(folder) / f"v{n}.vec"))
            parts.append(part)
        fast = FaissVectorIndex(segments)
        exact = BruteForceVectorIndex(*(np.concatenate(p) for p in zip(*parts)))
        queries = random_unit_vectors(rng, 7, dim)
        fast_result, exact_result = fast.search(queries, k), exact.search(queries, k)
        assert len(fast) == len(exact) == sum(sizes)
        np.testing.assert_array_equal(fast_result[0], exact_result[0])
        np.testing.assert_allclose(fast_result[1], exact_result[1])
        np.testing.assert_allclose(fast_result[2], exact_result[2], atol=1e-5)
        if k > sum(sizes):  # missing neighbours are padded
            assert (fast_result[0][:, sum(sizes):] == -1).all()
            assert np.isneginf(fast_result[2][:, sum(sizes):]).all()
        del fast, segments


def test_hnsw_vectors_find_nearly_all_exact_neighbours(tmp_path):
    rng = np.random.default_rng(9)
    vectors = random_unit_vectors(rng, 3000, 32)
    write_vector_segment(tmp_path / "v.vec", vectors, np.arange(3000, dtype=np.uint32),
                         np.zeros(3000, np.float32))
    fast = FaissVectorIndex([VectorSegment(tmp_path / "v.vec")], hnsw_threshold=1000)
    assert [type(p.index).__name__ for p in fast.parts] == ["IndexHNSWFlat"]
    queries = vectors[:200] + 0.05 * random_unit_vectors(rng, 200, 32)
    found, _, _ = fast.search(queries, 1)
    assert (found[:, 0] == np.arange(200)).mean() >= 0.95


def test_a_persisted_graph_is_mapped_and_merged_with_small_segments(tmp_path, caplog):
    rng = np.random.default_rng(10)
    big, small = random_unit_vectors(rng, 2000, 32), random_unit_vectors(rng, 50, 32)
    write_vector_segment(tmp_path / "big.vec", big, np.zeros(2000, np.uint32),
                         np.arange(2000, dtype=np.float32))
    write_vector_segment(tmp_path / "small.vec", small, np.ones(50, np.uint32),
                         np.arange(50, dtype=np.float32))
    assert write_hnsw_graph(tmp_path / "big.hnsw", big) > 0
    segments = [VectorSegment(tmp_path / "big.vec"), VectorSegment(tmp_path / "small.vec")]
    fast = FaissVectorIndex(segments, graphs=[tmp_path / "big.hnsw", None])
    assert sorted(type(p.index).__name__ for p in fast.parts) == ["IndexFlatIP", "IndexHNSWFlat"]
    queries = np.concatenate([big[:100], small[:20]]) + 0.02 * random_unit_vectors(rng, 120, 32)
    ordinals, times, _ = fast.search(queries, 1)
    # Each query finds its own vector, whichever part holds it: the merge keeps the best.
    assert (ordinals[:100, 0] == 0).all() and (ordinals[100:, 0] == 1).all()
    assert np.mean(times[:, 0] == np.r_[np.arange(100), np.arange(20)]) >= 0.95
    # A damaged graph is derived data: rebuilt in memory, with a warning naming the file.
    (tmp_path / "big.hnsw").write_bytes(b"not a faiss index")
    rebuilt = FaissVectorIndex(segments, graphs=[tmp_path / "big.hnsw", None], hnsw_threshold=1000)
    assert "big.hnsw" in caplog.text
    np.testing.assert_array_equal(rebuilt.search(queries, 1)[0], ordinals)


def test_empty_vector_index_pads_every_row():
    for index in (FaissVectorIndex([]), BruteForceVectorIndex(np.zeros((0, 8)), [], [])):
        ordinals, times, sims = index.search(np.ones((3, 8), np.float32), 4)
        assert ordinals.shape == (3, 4) and (ordinals == -1).all() and np.isneginf(sims).all()


def test_damaged_vector_segment_is_refused(tmp_path):
    path = tmp_path / "v.vec"
    write_vector_segment(path, np.ones((4, 8), np.float32), np.arange(4, dtype=np.uint32),
                         np.arange(4, dtype=np.float32))
    loaded = VectorSegment(path)
    assert loaded.dim == 8 and loaded.times_s.tolist() == [0, 1, 2, 3]
    path.write_bytes(path.read_bytes()[:-4])
    with pytest.raises(CatalogCorrupt, match="truncated"):
        VectorSegment(path)
