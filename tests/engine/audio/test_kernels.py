"""The audio alignment's compiled loops against their numpy twins."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from nanhu.engine.audio.kernels import member_of, merge_votes, merge_votes_numpy, picked_order

refs_st = st.lists(st.integers(0, 2**40), max_size=80, unique=True).map(sorted)


@settings(max_examples=200, deadline=None)
@given(a=refs_st, b=refs_st, seed=st.integers(0, 2**16))
def test_merged_votes_equal_a_sort_of_the_concatenation(a, b, seed):
    """Disjoint, overlapping, equal and empty lists; every reference once, ascending, with the
    votes of both sides added."""
    rng = np.random.default_rng(seed)
    if a and b and seed % 3 == 0:  # many shared references
        b = sorted(set(b) | set(a[::2]))
    refs_a, refs_b = np.array(a, np.int64), np.array(b, np.int64)
    votes_a = rng.integers(1, 50, refs_a.size)
    votes_b = rng.integers(1, 50, refs_b.size)
    refs, votes = merge_votes(refs_a, votes_a, refs_b, votes_b)
    twin_refs, twin_votes = merge_votes_numpy(refs_a, votes_a, refs_b, votes_b)
    assert refs.tolist() == twin_refs.tolist() and votes.tolist() == twin_votes.tolist()
    assert refs.tolist() == sorted(set(a) | set(b))
    assert int(votes.sum()) == int(votes_a.sum() + votes_b.sum())


@settings(max_examples=300, deadline=None)
@given(n=st.integers(0, 3000), chosen=st.lists(st.integers(0, 2**32 - 1), max_size=120,
       unique=True), base=st.sampled_from([None, 0, 10_000_000, 2**32 - 200_000]),
       seed=st.integers(0, 2**16))
def test_membership_in_the_chosen_equals_isin(n, chosen, base, seed):
    """Chosen ordinals anywhere in the uint32 range (the probed table) or close together from
    any base (the bit table), values below, inside and above their range."""
    rng = np.random.default_rng(seed)
    chosen = np.array(chosen, np.int64)
    if base is not None:
        chosen = np.unique(base + chosen % 150_000)
    pool = np.concatenate([chosen, rng.integers(0, 2**32, 50)]).astype(np.uint32)
    values = rng.choice(pool, n) if n and pool.size else np.zeros(0, np.uint32)
    assert member_of(values, chosen).tolist() == np.isin(values, chosen).tolist()


@settings(max_examples=200, deadline=None)
@given(n=st.integers(0, 400), seed=st.integers(0, 2**16))
def test_the_picked_order_is_the_windows_order_restricted(n, seed):
    rng = np.random.default_rng(seed)
    keys = rng.integers(0, 20, n)
    by_key = np.argsort(keys, kind="stable")
    picked = rng.random(n) < 0.4
    indices, order = picked_order(picked, by_key)
    assert indices.tolist() == np.flatnonzero(picked).tolist()
    # the picked landmarks' own stable order by key
    assert order.tolist() == np.argsort(keys[picked], kind="stable").tolist()
    assert order.tolist() == ((np.cumsum(picked) - 1)[by_key[picked[by_key]]]).tolist()
