"""A postings segment's on-disk layout and its compiled readers against their numpy twins:
the timeline, key ranges in both layouts, the keyed layout's count-class order, run reads
(lookups against the brute-force store: tests/engine/store/test_postings.py)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nanhu.engine.audio.keys import KEY_BITS
from nanhu.engine.store import postings_write
from nanhu.engine.store.postings import Segment, expand_ranges, write_segment
from nanhu.engine.store.timeline import Timeline


@settings(max_examples=80, deadline=None)
@given(lengths=st.lists(st.integers(0, 3000), min_size=1, max_size=40),
       block_bits=st.integers(0, 12), seed=st.integers(0, 2**16))
def test_timeline_finds_the_reference_of_a_position_as_a_bisection_does(lengths, block_bits,
                                                                          seed):
    """References of any length, empty ones and ones shorter than a block included."""
    starts = np.concatenate([[0], np.cumsum(lengths)]).astype(np.uint64)
    total = int(starts[-1])
    if total == 0:
        return
    rng = np.random.default_rng(seed)
    positions = np.concatenate([rng.integers(0, total, 200), starts[:-1][np.diff(starts) > 0],
                                [total - 1]]).astype(np.int64)
    expected = np.searchsorted(starts, positions.astype(np.uint64), side="right") - 1
    found = Timeline(starts, block_bits=block_bits).locate(positions)
    assert found.tolist() == expected.tolist()


@pytest.mark.parametrize("layout", ["flat", "keyed"])
@pytest.mark.parametrize("n, key_bits", [(3_000, KEY_BITS), (200_000, KEY_BITS), (5_000, 14)])
def test_compiled_key_ranges_equal_the_vectorised_bisection(tmp_path, n, key_bits, layout):
    """1-, 2- and 4-byte remainders; crowded buckets (a key holding many postings), absent
    keys, and keys wider than the segment's (a malformed query); both layouts."""
    rng = np.random.default_rng(n)
    common = rng.integers(0, 1 << key_bits, 5)
    keys = np.concatenate([rng.integers(0, 1 << key_bits, n), np.repeat(common, 300)])
    write_segment(tmp_path / "a.pst", keys.astype(np.uint32), np.zeros(keys.size, np.uint32),
                  np.arange(keys.size), key_bits=key_bits, layout=layout)
    segment = Segment(tmp_path / "a.pst")
    assert segment.keyed == (layout == "keyed")
    query = np.concatenate([keys[:2000], rng.integers(0, 1 << key_bits, 2000), common,
                            [1 << key_bits, (1 << 32) - 1]]).astype(np.uint32)
    first, count = segment.ranges(query)
    twin_first, twin_count = segment.ranges_numpy(query)
    assert count.tolist() == twin_count.tolist() and first.tolist() == twin_first.tolist()
    assert count[:2000].min() >= 1 and count[-2:].tolist() == [0, 0]
    assert count[-7:-2].min() >= 300
    if layout == "keyed":  # the crowded keys' postings lie after every hot key's
        assert (first[-7:-2] >= segment.hot_count).all()
        assert (first[:2000][count[:2000] <= 64] < segment.hot_count).all()


def test_keyed_positions_are_ordered_by_count_class(tmp_path):
    """After the hot tier, the keys of 65-128 postings, then 129-256, ... each class in key
    order: a key's run starts where the class's keys before it end, and a budgeted lookup's
    commonest reads (the rarest keys) are the file's first pages."""
    assert postings_write.count_classes(np.array([1, 64, 65, 128, 129, 256, 257, 1 << 20])
                                        ).tolist() == [0, 0, 1, 1, 2, 2, 3, 14]
    rng = np.random.default_rng(5)
    sizes = rng.choice([1, 5, 64, 65, 100, 128, 129, 300, 700, 2000], 400)
    keys = np.repeat(rng.permutation(1 << 20)[:sizes.size], sizes).astype(np.uint32)
    frames = rng.integers(0, 10**5, keys.size)
    path = tmp_path / "classes.pst"
    write_segment(path, keys, np.zeros(keys.size, np.uint32), frames, key_bits=KEY_BITS,
                  layout="keyed")
    segment = Segment(path)
    counts = segment.key_counts.astype(np.int64)
    firsts = segment.key_firsts.astype(np.int64)
    classes = postings_write.count_classes(counts)
    order = np.lexsort((np.arange(counts.size), classes))  # class, then stored key order
    assert firsts[order].tolist() == np.concatenate([[0], np.cumsum(counts[order])[:-1]]).tolist()
    assert segment.hot_count == int(counts[classes == 0].sum())
    assert np.unique(classes).tolist() == [0, 1, 2, 3, 4, 5]
    del segment


@settings(max_examples=25, deadline=None)
@given(n_refs=st.integers(1, 60), seed=st.integers(0, 2**16))
def test_compiled_run_reads_equal_expanding_and_resolving(n_refs, seed):
    """:meth:`Segment.read_runs` (one compiled pass) against :func:`expand_ranges` and
    :meth:`Segment.resolve`: references of any length (empty ones included, which share a
    timeline start with the next), runs of any length, keys with no postings."""
    rng = np.random.default_rng(seed)
    ordinals = np.repeat(rng.permutation(1 << 20)[:n_refs], rng.integers(0, 400, n_refs))
    frames = rng.integers(0, 5_000, ordinals.size)
    keys = rng.integers(0, 1 << KEY_BITS, ordinals.size) % np.uint64(997)  # shared keys
    with tempfile.TemporaryDirectory() as tmp:
        write_segment(Path(tmp) / "a.pst", keys.astype(np.uint32), ordinals.astype(np.uint32),
                      frames, key_bits=KEY_BITS)
        segment = Segment(Path(tmp) / "a.pst")
        first, count = segment.ranges(np.arange(1000, dtype=np.uint32))
        count = np.where(rng.random(count.size) < 0.8, count, 0)  # keys a budget left out
        key_index, found_ordinals, found_frames = segment.read_runs(first, count)
        posting = expand_ranges(first, count)
        twin_ordinals, twin_frames = segment.resolve(posting)
        assert key_index.tolist() == np.repeat(np.arange(count.size), count).tolist()
        assert found_ordinals.tolist() == twin_ordinals.tolist()
        assert found_frames.tolist() == twin_frames.tolist()
        assert found_ordinals.dtype == np.uint32 and found_frames.dtype == np.uint32
        del segment
