"""The store's compiled sort against numpy's: the radix sort of words and the stable key order
built on it."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from nanhu.engine.store.kernels import RADIX_MIN, sort_words
from nanhu.engine.store.postings import sort_keys


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 5_000), st.integers(1, 64), st.integers(0, 2**20))
def test_the_radix_sort_equals_numpys_sort(n, bits, seed):
    words = np.random.default_rng(seed).integers(0, 2**63, n, dtype=np.uint64)
    words = words if bits == 64 else words & np.uint64((1 << bits) - 1)
    if bits == 64:
        words[::3] |= np.uint64(1 << 63)  # the top bit too
    assert np.array_equal(sort_words(words, bits), np.sort(words))


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 3), st.integers(1, 30), st.integers(0, 2**20))
def test_sorted_keys_are_a_stable_argsort_at_every_length(extra, key_bits, seed):
    # above RADIX_MIN the words are radix-sorted, below numpy sorts them: both orders must be
    # the stable argsort, duplicates in index order
    rng = np.random.default_rng(seed)
    n = RADIX_MIN - 2 + extra * RADIX_MIN
    keys = rng.integers(0, 1 << key_bits, n).astype(np.uint32)
    ordered, order = sort_keys(keys)
    expected = np.argsort(keys, kind="stable")
    assert np.array_equal(order, expected) and np.array_equal(ordered, keys[expected])
