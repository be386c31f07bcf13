"""A shard's lookup answers travel compact (engine/cluster/wire.py) and come back exactly: the
same values, order and dtypes the view's merge used to see."""

from __future__ import annotations

import pickle

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from nanhu.engine.cluster.wire import narrow, pack_counts, pack_postings, unpack_counts, unpack_postings

values = st.lists(st.integers(0, 2**32 - 1), max_size=200)


@settings(max_examples=200, deadline=None)
@given(counts=st.lists(st.integers(0, 2**32 - 1), max_size=300), zeros=st.integers(0, 300))
def test_counts_come_back_exactly(counts, zeros):
    dense = np.array(counts + [0] * zeros, np.int64)
    np.random.default_rng(len(counts)).shuffle(dense)
    back = unpack_counts(pack_counts(dense))
    assert back.dtype == np.int64 and np.array_equal(back, dense)


@settings(max_examples=200, deadline=None)
@given(key_index=values, ordinals=values, frames=values)
def test_postings_come_back_exactly(key_index, ordinals, frames):
    arrays = [np.array(a, np.uint32) for a in (key_index, ordinals, frames)]
    back = unpack_postings(pack_postings(*arrays))
    for got, want in zip(back, arrays):
        assert got.dtype == np.uint32 and np.array_equal(got, want)


def test_a_look_whose_keys_mostly_hold_nothing_travels_small():
    rng = np.random.default_rng(1)
    counts = np.zeros(20_000, np.int64)  # 80 kB as uint32
    counts[rng.choice(counts.size, 300, replace=False)] = rng.integers(1, 40, 300)
    packed = pack_counts(counts)
    assert len(pickle.dumps(packed, protocol=5)) < 2_000
    assert narrow(np.array([255])).dtype == np.uint8
    assert narrow(np.array([256])).dtype == np.uint16
    assert narrow(np.array([], np.int64)).size == 0
