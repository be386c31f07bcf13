"""The shortlist's pieces (engine.audio.shortlist) against their obvious twins: the most-voted
references and the mask of their postings."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from nanhu.engine.audio.shortlist import _most_voted, reference_votes, shortlist_mask


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, 9), max_size=300), st.integers(1, 60), st.integers(0, 2**20))
def test_the_most_voted_are_a_stable_sort_by_votes(votes, limit, seed):
    """Ties go to the lower ordinal, as a stable sort of the references in ordinal order."""
    rng = np.random.default_rng(seed)
    refs = np.sort(rng.choice(1 << 30, len(votes), replace=False)).astype(np.int64)
    votes = np.array(votes, np.int64)
    twin = np.sort(refs[np.argsort(-votes, kind="stable")[:limit]])
    assert _most_voted(refs, votes, limit).tolist() == twin.tolist()


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 5000), st.sampled_from([0, 10_000_000, 4_000_000_000]),
       st.sampled_from([50, 5_000, 300_000, 290_000_000]), st.integers(1, 60),
       st.integers(0, 2**20))
def test_the_shortlist_mask_is_membership_in_the_chosen(n, base, spread, limit, seed):
    """Ordinals close together (the table path) and spread over the whole uint32 range (no
    table fits without collisions, or the chosen span more than the table allows)."""
    rng = np.random.default_rng(seed)
    ordinals = (base + rng.integers(0, spread, n)).astype(np.uint32)
    key_index = rng.integers(0, 50, n).astype(np.int64)
    refs, votes = reference_votes(key_index, ordinals)
    mask = shortlist_mask(ordinals, refs, votes, limit=limit, min_votes=2)
    ok = votes >= 2
    chosen = np.sort(refs[ok][np.argsort(-votes[ok], kind="stable")[:limit]])
    assert mask.tolist() == np.isin(ordinals, chosen).tolist()


@settings(max_examples=20, deadline=None)
@given(st.sampled_from([0, 1, 500, 16_383, 16_384, 60_000]), st.sampled_from([3, 40, 2**16]),
       st.sampled_from([0, 10_000_000]), st.integers(0, 2**20))
def test_reference_votes_count_distinct_keys_per_reference(n, n_keys, base, seed):
    # both sides of the radix sort's threshold, ordinals as large as the scale bench's decoys
    rng = np.random.default_rng(seed)
    key_index = rng.integers(0, n_keys, n).astype(np.int64)
    ordinals = (base + rng.integers(0, 300, n)).astype(np.uint32)
    refs, votes = reference_votes(key_index, ordinals)
    pairs = np.unique(np.stack([ordinals.astype(np.int64), key_index]), axis=1)
    twin_refs, twin_votes = np.unique(pairs[0], return_counts=True)
    assert np.array_equal(refs, twin_refs) and np.array_equal(votes, twin_votes)
    assert refs.dtype == np.int64
