"""The peak check of the verification study: a warped copy's peaks land on the reference's at
the true hypothesis, and not at a wrong offset or pitch."""

from __future__ import annotations

import numpy as np

from nanhu.benchmarks.runs.audio_verify_study import peak_hits, summarise
from nanhu.engine.audio.params import AudioParams
from nanhu.engine.audio.peaks import Peaks


def test_a_warped_copy_s_peaks_land_on_the_reference_s_at_the_true_hypothesis():
    params = AudioParams()
    rng = np.random.default_rng(0)
    frames = np.sort(rng.integers(0, 5000, 800))
    lf = rng.uniform(10, 240, 800).astype(np.float32)
    reference = Peaks(frames, lf, np.ones(800, np.float32))
    # the copy: 4 s from frame 2000, played 5 % faster and a semitone higher
    speed, pitch = 1.05, 2 ** (1 / 12)
    part = (frames >= 2000) & (frames < 2250)
    query = Peaks(np.round((frames[part] - 2000) / speed).astype(np.int64),
                  (lf[part] + params.bins_per_octave * np.log2(pitch)).astype(np.float32),
                  np.ones(int(part.sum()), np.float32))
    true = peak_hits(query, reference, speed=speed, pitch=pitch, offset=2000, params=params)
    assert true == len(query)
    assert peak_hits(query, reference, speed=speed, pitch=pitch, offset=2600,
                     params=params) < 0.3 * len(query)
    assert peak_hits(query, reference, speed=1.0, pitch=1.0, offset=2000,
                     params=params) < 0.5 * len(query)


def test_the_summary_s_threshold_clears_every_false_hypothesis():
    rows = [
        {"condition": "pitch+1", "negative": False, "hypotheses": [
            {"true": True, "votes": 4, "log10_chance": -1.0, "hits": 30},
            {"true": False, "votes": 3, "log10_chance": 0.0, "hits": 12}]},
        {"condition": "pitch+1", "negative": False, "hypotheses": [
            {"true": True, "votes": 9, "log10_chance": -5.0, "hits": 10}]},
        {"condition": "clean", "negative": True, "hypotheses": [
            {"true": False, "votes": 5, "log10_chance": -2.0, "hits": 17}]},
    ]
    summary = summarise(rows)
    assert summary["hit_threshold"] == 18 and summary["negative_queries"] == 1
    assert summary["conditions"]["pitch+1"] == {"queries": 2, "today": 1, "with_peak_check": 2}
