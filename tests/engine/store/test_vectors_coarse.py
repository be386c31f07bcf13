"""The HNSW graph over a large compact index's coarse centroids (engine/store/vectors_coarse.py)
against the flat table it stands in for: the rows' lists, the codes, the search's answers, and
the same graph (so the same codes) on every build."""

from __future__ import annotations

import numpy as np
import pytest

from nanhu.benchmarks.synth import noisy, structured_vectors
from nanhu.engine.store import vectors_coarse
from nanhu.engine.store.vectors_compact import Quantiser
from nanhu.engine.store.vectors_compact_search import CompactPart
from nanhu.engine.store.vectors_compact_segment import CompactSegment, write_compact_segment

NLIST = 128


@pytest.fixture(scope="module")
def corpus():
    vectors = structured_vectors(16_000, seed=21)
    return vectors, Quantiser.train(vectors[::2], seed=0, nlist=NLIST)


@pytest.fixture
def graph_from_64(monkeypatch):
    monkeypatch.setattr(vectors_coarse, "MIN_LISTS", 64)


def fresh(quantiser: Quantiser) -> Quantiser:
    """The same training read back (no graph built yet)."""
    return Quantiser.from_bytes(quantiser.to_bytes())


def test_below_the_threshold_the_flat_table_codes_every_row(corpus):
    vectors, quantiser = corpus
    q = fresh(quantiser)
    assert NLIST < vectors_coarse.MIN_LISTS and q.coarse is None
    np.testing.assert_array_equal(q.shortlist_encode(vectors[:500]),
                                  q.shortlist.sa_encode(vectors[:500]))


def test_the_graph_puts_rows_in_the_flat_tables_nearest_list(corpus, graph_from_64):
    vectors, quantiser = corpus
    q = fresh(quantiser)
    assert q.coarse is not None and q.coarse.nlist == NLIST
    got, want = q.shortlist_encode(vectors), q.shortlist.sa_encode(vectors)
    same_list = got[:, 0] == want[:, 0]  # one byte of list number at 128 lists
    assert same_list.mean() >= 0.97, same_list.mean()
    # where the list agrees, the residual code is FAISS's own, byte for byte
    np.testing.assert_array_equal(got[same_list], want[same_list])
    # a row put elsewhere is put in a list nearly as near as its nearest
    centroids = q.shortlist.quantizer.reconstruct_n(0, NLIST)
    moved = ~same_list
    if moved.any():
        sims = vectors[moved] @ centroids.T
        got_sim = sims[np.arange(moved.sum()), got[moved, 0]]
        assert np.all(sims.max(1) - got_sim < 0.05)
    # a second graph from the same centroids is the same graph: the same codes
    np.testing.assert_array_equal(fresh(quantiser).shortlist_encode(vectors), got)


def test_search_through_the_graph_finds_what_the_flat_probe_finds(tmp_path, corpus,
                                                                  graph_from_64):
    vectors, quantiser = corpus
    ordinals = (np.arange(len(vectors)) // 400).astype(np.uint32)
    times = ((np.arange(len(vectors)) % 400) * 0.5).astype(np.float32)
    q = fresh(quantiser)
    path = tmp_path / "g.vcx"
    write_compact_segment(path, q, [(vectors, None, ordinals, times)])
    part = CompactPart([CompactSegment(path, q)], nprobe=8)
    assert q.coarse is not None
    picks = np.random.default_rng(5).choice(len(vectors), 300, replace=False)
    queries = noisy(vectors[picks], seed=6)
    _, rows = part.search(queries, 10)
    exact = np.argsort(-(queries @ vectors.T), axis=1)[:, :10]
    recall = np.mean([np.isin(e, g).mean() for e, g in zip(exact, rows)])
    # the same segment searched through the flat table
    flat_q = fresh(quantiser)
    flat_q.coarse = None  # no graph: the flat table probes
    flat = CompactPart([CompactSegment(path, flat_q)], nprobe=8)
    _, flat_rows = flat.search(queries, 10)
    flat_recall = np.mean([np.isin(e, g).mean() for e, g in zip(exact, flat_rows)])
    assert recall >= flat_recall - 0.02, (recall, flat_recall)
    assert np.mean(rows[:, 0] == picks) >= 0.9
    # more lists asked for than there are: every list, as FAISS's own probe does
    near, lists = q.coarse.probe(queries[:3], NLIST + 50)
    assert lists.shape == (3, NLIST) and np.all(np.sort(lists, 1) == np.arange(NLIST))
