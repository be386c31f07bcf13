"""Near-duplicates and loops of the audio corpus builder, on synthetic music."""

from __future__ import annotations

import numpy as np
import pytest

from nanhu.benchmarks.corpus import audio_similarity as sim

RATE = sim.ANALYSIS_RATE


def synthetic_music(seconds: float, *, seed: int) -> np.ndarray:
    """Random melody with chords: notes of 0.2-0.6 s, three harmonics each, float32 at 8 kHz."""
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    out = np.zeros(n, np.float32)
    start = 0
    while start < n:
        length = min(int(rng.uniform(0.2, 0.6) * RATE), n - start)
        t = np.arange(length) / RATE
        envelope = np.exp(-3.0 * t) * np.minimum(1.0, t * 200)
        for pitch in rng.integers(48, 84, size=2):
            freq = 440.0 * 2 ** ((pitch - 69) / 12)
            for harmonic, gain in ((1, 1.0), (2, 0.5), (3, 0.25)):
                phase = 2 * np.pi * freq * harmonic * t
                out[start: start + length] += gain * envelope * np.sin(phase)
        start += length
    return out / np.abs(out).max() * 0.5


def remaster(samples: np.ndarray, *, seed: int) -> np.ndarray:
    """Quieter, darker (one-pole low-pass) and noisier copy (about 30 dB SNR)."""
    rng = np.random.default_rng(seed)
    darker = np.empty_like(samples)
    darker[0] = samples[0]
    darker[1:] = 0.6 * samples[1:] + 0.4 * samples[:-1]
    noise = rng.normal(0.0, 0.03 * darker.std(), size=len(darker))
    return (0.5 * darker + noise).astype(np.float32)


def test_near_duplicate_found_at_its_offset_and_unrelated_music_is_not():
    original = synthetic_music(60, seed=1)
    excerpt = remaster(original[10 * RATE: 50 * RATE], seed=2)
    unrelated = synthetic_music(60, seed=3)
    signals = [original, excerpt, unrelated]
    pairs = sim.find_duplicates([sim.chroma_blocks(x) for x in signals], signals.__getitem__)
    assert [(p.first, p.second) for p in pairs] == [(0, 1)]
    assert pairs[0].lag_s == pytest.approx(-10.0, abs=2 * sim.PEAK_S)
    assert pairs[0].shared_s >= 24.0
    assert pairs[0].peak_share >= sim.SHARED_PEAKS


def test_shared_peaks_finds_a_copy_at_its_lag_and_not_other_music():
    music = synthetic_music(40, seed=9)
    copy = np.concatenate([np.zeros(5 * RATE, np.float32), remaster(music, seed=10)])
    peaks = sim.spectral_peaks(music)
    starts = np.array([0, 1000, 2000])
    lag = 5 / sim.PEAK_S  # 312.5 frames
    shares, offsets = sim.shared_peaks(peaks, sim.near_peaks(sim.spectral_peaks(copy)), starts,
                                      round(lag) + 20)
    assert shares.min() >= 0.5
    assert np.abs(offsets - lag).max() <= 1
    other = sim.near_peaks(sim.spectral_peaks(synthetic_music(40, seed=11)))
    others, _ = sim.shared_peaks(peaks, other, starts, 0)
    assert others.max() < sim.SHARED_PEAKS


def test_silence_and_drones_are_never_duplicates():
    t = np.arange(40 * RATE) / RATE
    drone = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    silence = np.zeros(40 * RATE, np.float32)
    signals = [drone, drone.copy(), silence]
    assert sim.duplicate_candidates([sim.chroma_blocks(x) for x in signals]) == {}


def test_loop_period_is_sample_exact_and_absent_without_loop():
    phrase = synthetic_music(25.0, seed=4)
    looped = np.concatenate([phrase, phrase, phrase[: 12 * RATE]])
    repeats = sim.find_repeats(looped)
    assert repeats and repeats[0].lag_s == pytest.approx(25.0, abs=1e-3)
    assert repeats[0].coverage >= sim.LOOP_COVERAGE
    assert sim.loop_period(repeats) == repeats[0].lag_s
    assert sim.find_repeats(synthetic_music(60, seed=5)) == []


def test_a_repeated_phrase_is_a_repeat_but_not_a_loop():
    chorus = synthetic_music(20.0, seed=6)
    verse, outro = synthetic_music(60, seed=7), synthetic_music(60, seed=8)
    song = np.concatenate([verse, chorus, chorus, outro])
    repeats = sim.find_repeats(song)
    assert [r.lag_s for r in repeats] == [pytest.approx(20.0, abs=1e-3)]
    assert repeats[0].coverage < sim.LOOP_COVERAGE
    assert sim.loop_period(repeats) is None


def test_duplicate_groups_are_transitive():
    pairs = [sim.DuplicatePair(0, 2, 16.0, 0.9, 0.0), sim.DuplicatePair(2, 3, 16.0, 0.9, 0.0)]
    assert sim.duplicate_groups(5, pairs) == [[0, 2, 3]]
