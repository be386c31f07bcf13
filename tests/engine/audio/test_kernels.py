"""The audio alignment's compiled loops against their numpy twins."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from nanhu.engine.audio.kernels import merge_votes, merge_votes_numpy

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
