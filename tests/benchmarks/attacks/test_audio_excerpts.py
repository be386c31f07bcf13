"""Audio bench excerpts: a pick that lands in a track's silence is drawn again, anywhere
audible; an audible pick is kept as it is."""

from __future__ import annotations

import numpy as np

from nanhu.benchmarks.audio_attacks import audible_offset


def test_a_silent_excerpt_is_drawn_again_and_an_audible_one_kept():
    rate = 1000
    samples = np.zeros(60 * rate, np.float32)  # music for 20 s, then digital silence
    samples[:20 * rate] = 0.1 * np.sin(np.arange(20 * rate) * 0.3)
    rng = np.random.default_rng(0)
    assert audible_offset(samples, rate, 3.0, 10.0, 48.0, rng) == 3.0
    moved = audible_offset(samples, rate, 30.0, 10.0, 48.0, np.random.default_rng(1))
    assert moved != 30.0
    start = int(moved * rate)
    assert np.sqrt(np.mean(samples[start:start + 10 * rate] ** 2)) >= 1e-3
    # a quiet passage (-50 dBFS) is music, not silence
    quiet = samples.copy()
    quiet[20 * rate:] = 10 ** (-50 / 20) * np.sqrt(2) * np.sin(np.arange(40 * rate) * 0.3)
    assert audible_offset(quiet, rate, 30.0, 10.0, 48.0, np.random.default_rng(1)) == 30.0
    # nothing audible anywhere: the last offset tried comes back, no endless loop
    assert 0.0 <= audible_offset(np.zeros(60 * rate), rate, 30.0, 10.0, 48.0, rng) <= 48.0
