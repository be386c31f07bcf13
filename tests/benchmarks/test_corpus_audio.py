"""Fast tests of the pure parts of the audio corpus builder (no network, no Debian packages)."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from benchmarks import corpus_audio as ca

RATE = ca.ANALYSIS_RATE


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
    pairs = ca.find_duplicates([ca.chroma_blocks(x) for x in signals], signals.__getitem__)
    assert [(p.first, p.second) for p in pairs] == [(0, 1)]
    assert pairs[0].lag_s == pytest.approx(-10.0, abs=2 * ca.PEAK_S)
    assert pairs[0].shared_s >= 24.0
    assert pairs[0].peak_share >= ca.SHARED_PEAKS


def test_shared_peaks_finds_a_copy_at_its_lag_and_not_other_music():
    music = synthetic_music(40, seed=9)
    copy = np.concatenate([np.zeros(5 * RATE, np.float32), remaster(music, seed=10)])
    peaks = ca.spectral_peaks(music)
    starts = np.array([0, 1000, 2000])
    lag = 5 / ca.PEAK_S  # 312.5 frames
    shares, offsets = ca.shared_peaks(peaks, ca.near_peaks(ca.spectral_peaks(copy)), starts,
                                      round(lag) + 20)
    assert shares.min() >= 0.5
    assert np.abs(offsets - lag).max() <= 1
    other = ca.near_peaks(ca.spectral_peaks(synthetic_music(40, seed=11)))
    others, _ = ca.shared_peaks(peaks, other, starts, 0)
    assert others.max() < ca.SHARED_PEAKS


def test_silence_and_drones_are_never_duplicates():
    t = np.arange(40 * RATE) / RATE
    drone = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    silence = np.zeros(40 * RATE, np.float32)
    signals = [drone, drone.copy(), silence]
    assert ca.duplicate_candidates([ca.chroma_blocks(x) for x in signals]) == {}


def test_loop_period_is_sample_exact_and_absent_without_loop():
    phrase = synthetic_music(25.0, seed=4)
    looped = np.concatenate([phrase, phrase, phrase[: 12 * RATE]])
    repeats = ca.find_repeats(looped)
    assert repeats and repeats[0].lag_s == pytest.approx(25.0, abs=1e-3)
    assert repeats[0].coverage >= ca.LOOP_COVERAGE
    assert ca.loop_period(repeats) == repeats[0].lag_s
    assert ca.find_repeats(synthetic_music(60, seed=5)) == []


def test_a_repeated_phrase_is_a_repeat_but_not_a_loop():
    chorus = synthetic_music(20.0, seed=6)
    verse, outro = synthetic_music(60, seed=7), synthetic_music(60, seed=8)
    song = np.concatenate([verse, chorus, chorus, outro])
    repeats = ca.find_repeats(song)
    assert [r.lag_s for r in repeats] == [pytest.approx(20.0, abs=1e-3)]
    assert repeats[0].coverage < ca.LOOP_COVERAGE
    assert ca.loop_period(repeats) is None


def test_duplicate_groups_are_transitive():
    pairs = [ca.DuplicatePair(0, 2, 16.0, 0.9, 0.0), ca.DuplicatePair(2, 3, 16.0, 0.9, 0.0)]
    assert ca.duplicate_groups(5, pairs) == [[0, 2, 3]]


def fake_tracks() -> list[dict]:
    sizes = {"alpha": 40, "beta": 25, "gamma": 3}
    return [{"id": f"{name}-t{n:02d}", "package": name, "duration_s": 60.0 + n}
            for name, size in sizes.items() for n in range(size)]


def test_split_is_deterministic_stratified_and_complete():
    tracks = fake_tracks()
    refs, negs = ca.split_tracks(tracks, seed=7, min_negatives=10)
    again = ca.split_tracks(list(reversed(tracks)), seed=7, min_negatives=10)
    assert (refs, negs) == again
    assert ca.split_tracks(tracks, seed=8, min_negatives=10)[1] != negs
    assert len(negs) == 10
    assert {t["id"] for t in refs} | {t["id"] for t in negs} == {t["id"] for t in tracks}
    assert not {t["id"] for t in refs} & {t["id"] for t in negs}
    per_package = {name: sum(t["package"] == name for t in negs) for name in ("alpha", "beta")}
    assert per_package == {"alpha": 6, "beta": 4}
    assert all(any(t["package"] == name for t in refs) for name in ("alpha", "beta", "gamma"))


def test_split_never_takes_a_package_whole():
    tracks = fake_tracks()
    refs, negs = ca.split_tracks(tracks, seed=0, min_negatives=70)
    assert len(negs) == len(tracks) - 3
    assert {t["package"] for t in refs} == {"alpha", "beta", "gamma"}


@given(st.lists(st.lists(st.text(min_size=1, max_size=6), min_size=1, max_size=3),
                min_size=1, max_size=12))
def test_unique_ids_are_unique_and_filesystem_safe(paths):
    keys = ["/".join(parts) + ".ogg" for parts in paths]
    ids = ca.unique_ids("pkg", keys)
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"pkg-[a-z0-9-]+", i) for i in ids)


def test_unique_ids_add_parent_folders_only_on_collision():
    keys = ["music/a/track1.opus", "music/b/track1.opus", "music/a/menu.opus"]
    assert ca.unique_ids("wz2100", keys) == ["wz2100-a-track1", "wz2100-b-track1", "wz2100-menu"]
    assert ca.unique_ids("ufoai", ["base/0music.pk3!music/dawn.ogg"]) == ["ufoai-dawn"]


def test_manifest_round_trip_and_version_check(tmp_path):
    entry = {"id": "wz2100-menu", "path": str(tmp_path / "menu.opus"), "package": "wz",
             "member": "usr/share/menu.opus", "sha256": "0" * 64, "duration_s": 180.0,
             "loop_period_s": 60.0, "repeat_lags_s": [60.0, 120.0]}
    manifest = {"version": ca.MANIFEST_VERSION, "seed": 0,
                "packages": [{"name": "wz", "version": "1", "sha256": "1" * 64}],
                "references": [entry], "negatives": [], "speech": [], "dropped": []}
    path = tmp_path / ca.MANIFEST_NAME
    ca.write_manifest(manifest, path)
    assert ca.read_manifest(path) == manifest
    assert ca.load_audio_corpus(tmp_path) == manifest
    ca.write_manifest({**manifest, "version": 99}, path)
    with pytest.raises(ca.CorpusError, match="version 99"):
        ca.read_manifest(path)


def test_cache_dir_follows_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("NANHU_CACHE", str(tmp_path))
    assert ca.cache_dir() == tmp_path
    monkeypatch.delenv("NANHU_CACHE")
    assert ca.cache_dir().parts[-2:] == (".cache", "nanhu")
