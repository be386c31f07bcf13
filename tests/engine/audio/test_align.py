"""Offset-histogram alignment: what skipping hopeless candidates may not change."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**20), st.sampled_from([2_000, 200_000, 20_000_000, 2_000_000_000]),
       st.integers(0, 40), st.integers(1, 3), st.sampled_from([600, 2_000, 5_000]))
def test_skipping_candidates_that_cannot_pass_changes_no_segment(seed, catalog_frames, planted,
                                                                 n_speeds, ref_range):
    """align_audio skips candidate bins whose votes could not reach the score even if every hit
    counted (``_may_pass``); with the skip off, every segment is the same, to the last field."""
    from nanhu.engine.audio import align
    from nanhu.engine.audio.keys import Landmarks
    from nanhu.engine.audio.params import AudioParams

    rng = np.random.default_rng(seed)
    n = 600
    frames = np.sort(rng.integers(0, 400, n)).astype(np.int32)
    speeds = np.array([1.0, 1.025, 0.975][:n_speeds], np.float32)
    landmarks = Landmarks(rng.integers(0, 2**30, n).astype(np.uint32), frames,
                          rng.integers(0, n_speeds, n).astype(np.uint8), speeds, speeds.copy())
    # chance hits on 12 references (dense where ``ref_range`` is short: many bins reach
    # min_votes and few can pass), plus ``planted`` landmarks of reference 3 at one offset
    hits = 6_000
    query_landmark = rng.integers(0, n, hits)
    ordinals = rng.integers(0, 12, hits).astype(np.uint32)
    ref_frames = rng.integers(0, ref_range, hits).astype(np.int64)
    chosen = rng.choice(n, planted, replace=False)
    landmarks.speed_index[chosen] = 0  # the copy is seen at one warp
    query_landmark = np.concatenate([query_landmark, chosen])
    ordinals = np.concatenate([ordinals, np.full(planted, 3, np.uint32)])
    ref_frames = np.concatenate([ref_frames, frames[chosen].astype(np.int64) + 1_234])
    kwargs = dict(params=AudioParams(), match=align.AudioMatchParams(),
                  reference_frames={o: ref_range for o in range(12)},
                  catalog_frames=catalog_frames)
    skipping = align.align_audio(landmarks, query_landmark, ordinals, ref_frames, **kwargs)
    original = align._may_pass
    try:
        align._may_pass = lambda votes, *a, **k: np.ones(votes.size, bool)
        every = align.align_audio(landmarks, query_landmark, ordinals, ref_frames, **kwargs)
    finally:
        align._may_pass = original
    assert skipping == every
    if planted >= 30 and catalog_frames <= 200_000 and ref_range >= 2_000:
        assert any(s.reference == 3 for s in every)  # the test reaches passing segments too


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, 60), max_size=80, unique=True), st.integers(0, 4),
       st.integers(0, 2**20))
def test_smoothed_counts_equal_a_search_of_every_neighbouring_bin(keys, tolerance, seed):
    from nanhu.engine.audio.align import smoothed_counts

    keys = np.sort(np.array(keys, np.int64))
    counts = np.random.default_rng(seed).integers(1, 9, keys.size).astype(np.int64)
    twin = counts.copy()
    for shift in range(1, tolerance + 1):
        for sign in (-1, 1):
            pos = np.minimum(np.searchsorted(keys, keys + sign * shift), max(keys.size - 1, 0))
            if keys.size:
                twin += np.where(keys[pos] == keys + sign * shift, counts[pos], 0)
    assert np.array_equal(smoothed_counts(keys, counts, tolerance), twin)
