"""Audio landmarks: spectra, peaks, streaming in blocks, query warps, fingerprints."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nanhu.benchmarks.synth import music_like
from nanhu.engine.audio.keys import audio_landmarks
from nanhu.engine.audio.params import AudioParams
from nanhu.engine.audio.peaks import Peaks, spectral_peaks, stft_db, stream_peaks
from nanhu.engine.errors import EmptyMediaError, MediaError, VersionMismatch
from nanhu.engine.fingerprint import Fingerprint, fingerprint_media

PARAMS = AudioParams()
RATE = PARAMS.sample_rate


@pytest.fixture(scope="module")
def signal_8k() -> np.ndarray:
    """20 s of generated music at the fingerprint rate."""
    return music_like(20.0, seed=21, sample_rate=RATE)


@pytest.fixture(scope="module")
def whole_peaks(signal_8k) -> Peaks:
    return spectral_peaks(stft_db(signal_8k, n_fft=PARAMS.n_fft, hop_length=PARAMS.hop_length),
                          params=PARAMS)


def sine(freq_hz: float, seconds: float, amplitude: float = 1.0) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (amplitude * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32)


def test_stft_is_in_db_relative_to_a_full_scale_sine():
    spec = stft_db(sine(1000.0, 1.0), n_fft=PARAMS.n_fft, hop_length=PARAMS.hop_length)
    assert spec.shape == ((RATE - PARAMS.n_fft) // PARAMS.hop_length + 1, PARAMS.n_fft // 2 + 1)
    assert spec.dtype == np.float32
    peak_bin = int(np.argmax(spec.mean(axis=0)))
    assert peak_bin == round(1000.0 * PARAMS.n_fft / RATE)
    assert spec[:, peak_bin].max() == pytest.approx(0.0, abs=0.1)  # bin-centred: no scalloping
    quieter = stft_db(sine(1000.0, 1.0, 0.1), n_fft=PARAMS.n_fft, hop_length=PARAMS.hop_length)
    assert quieter[:, peak_bin].max() == pytest.approx(-20.0, abs=0.1)
    assert stft_db(np.zeros(PARAMS.n_fft - 1, np.float32), n_fft=PARAMS.n_fft,
                   hop_length=PARAMS.hop_length).shape == (0, PARAMS.n_fft // 2 + 1)


@pytest.mark.parametrize("freq_hz", [440.0, 1000.0, 2500.0])
def test_a_tone_peaks_at_its_log_frequency(freq_hz):
    signal = sine(freq_hz, 2.0, 0.5) + sine(freq_hz * 1.37, 2.0, 0.3)
    spec = stft_db(signal, n_fft=PARAMS.n_fft, hop_length=PARAMS.hop_length)
    peaks = spectral_peaks(spec, params=PARAMS)
    expected = PARAMS.bins_per_octave * np.log2(freq_hz / PARAMS.fmin_hz)
    # Parabolic interpolation puts the tone within a fraction of a log-frequency step.
    assert np.min(np.abs(peaks.log_freq - expected)) < 1.0
    assert np.all(np.diff(peaks.frame) >= 0)


def test_peaks_are_thinned_to_the_rate_per_second(whole_peaks):
    fps_block = round(PARAMS.frames_per_second)
    per_block = np.bincount(whole_peaks.frame // fps_block)
    assert per_block.max() <= PARAMS.peaks_per_second
    assert per_block[:-1].mean() > PARAMS.peaks_per_second / 2  # music is dense in peaks


def test_silence_and_very_quiet_signals_have_no_peaks():
    assert len(spectral_peaks(stft_db(np.zeros(RATE * 2, np.float32), n_fft=PARAMS.n_fft,
                                      hop_length=PARAMS.hop_length), params=PARAMS)) == 0
    peaks, n = stream_peaks([np.zeros(RATE, np.float32)] * 3, params=PARAMS)
    assert len(peaks) == 0 and n == 3 * RATE


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cuts=st.lists(st.integers(0, 20 * RATE), max_size=40),
       block_frames=st.sampled_from([1, 62, 125, 300, 1000, 4096]))
def test_stream_peaks_over_any_chunking_equal_the_whole_signal(signal_8k, whole_peaks, cuts,
                                                                block_frames):
    chunks = np.split(signal_8k, sorted(cuts))  # includes empty chunks
    peaks, n_samples = stream_peaks(chunks, params=PARAMS, block_frames=block_frames)
    assert n_samples == signal_8k.size
    np.testing.assert_array_equal(peaks.frame, whole_peaks.frame)
    np.testing.assert_array_equal(peaks.log_freq, whole_peaks.log_freq)
    np.testing.assert_array_equal(peaks.prominence, whole_peaks.prominence)


def test_landmarks_are_deterministic(song_files):
    path = song_files["song-2"]
    first = fingerprint_media(path, video=False)
    second = fingerprint_media(path.read_bytes(), video=False)
    assert len(first.audio) > 1000
    np.testing.assert_array_equal(first.audio.hashes, second.audio.hashes)
    np.testing.assert_array_equal(first.audio.frames, second.audio.frames)
    assert first.digest == second.digest and first.duration_s == second.duration_s


def test_audio_landmarks_report_duration(signal_8k):
    landmarks, duration = audio_landmarks([signal_8k[:RATE * 7], signal_8k[RATE * 7:]],
                                          params=PARAMS)
    assert duration == pytest.approx(20.0)
    assert len(landmarks) > 0


def test_query_fingerprints_hash_at_every_candidate_warp(song_files):
    fp = fingerprint_media(song_files["song-1"], video=False, query=True)
    warps = np.stack([fp.audio.speeds, fp.audio.pitches], axis=1)
    np.testing.assert_allclose(warps, np.array(PARAMS.query_warps), rtol=1e-6)
    assert set(np.unique(fp.audio.speed_index).tolist()) == set(range(len(warps)))
    reference = fingerprint_media(song_files["song-1"], video=False)
    assert reference.audio.speeds.tolist() == reference.audio.pitches.tolist() == [1.0]
    one = int(np.flatnonzero((warps == 1.0).all(axis=1))[0])
    at_one = fp.audio.speed_index == one
    # the query's wider fanout (6 targets an anchor, the reference's 4) holds every reference
    # key at the identity warp, at the same frames, and more
    query_pairs = set(zip(fp.audio.hashes[at_one].tolist(), fp.audio.frames[at_one].tolist()))
    reference_pairs = set(zip(reference.audio.hashes.tolist(), reference.audio.frames.tolist()))
    assert reference_pairs <= query_pairs and len(query_pairs) > 2 * len(reference_pairs)


def test_fingerprint_round_trips_through_bytes(reference_fps):
    fp = dataclasses.replace(reference_fps["song-3"], meta={"source": "song-3.m4a"})
    back = Fingerprint.from_bytes(fp.to_bytes())
    np.testing.assert_array_equal(back.audio.hashes, fp.audio.hashes)
    np.testing.assert_array_equal(back.audio.frames, fp.audio.frames)
    np.testing.assert_array_equal(back.audio.speeds, fp.audio.speeds)
    np.testing.assert_array_equal(back.audio.pitches, fp.audio.pitches)
    assert (back.duration_s, back.digest, back.audio_params_tag, back.meta) == (
        fp.duration_s, fp.digest, fp.audio_params_tag, fp.meta)
    assert back.video is None


def test_fingerprint_bytes_of_another_version_or_format_are_refused(reference_fps):
    data = reference_fps["song-3"].to_bytes()
    with pytest.raises(MediaError, match="not a Nanhu fingerprint"):
        Fingerprint.from_bytes(b"garbage" + data)
    import io
    import json

    with np.load(io.BytesIO(data)) as archive:
        arrays = {name: archive[name] for name in archive.files}
    header = json.loads(arrays["header"].tobytes())
    for change, error in (({"version": 99}, VersionMismatch), ({"format": "other"}, MediaError)):
        buffer = io.BytesIO()
        arrays["header"] = np.frombuffer(json.dumps({**header, **change}).encode(), np.uint8)
        np.savez(buffer, **arrays)
        with pytest.raises(error):
            Fingerprint.from_bytes(buffer.getvalue())


def test_silence_has_nothing_to_fingerprint(kit, tmp_path):
    path = kit.write_clip(tmp_path / "silence.flac", np.zeros(5 * kit.rate, np.float32))
    with pytest.raises(EmptyMediaError, match=f"{path}: nothing to fingerprint"):
        fingerprint_media(path, video=False)
    # A hiss 90 dB down is silence too: below the peak floor.
    hiss = 3e-5 * np.random.default_rng(3).standard_normal(5 * kit.rate)
    with pytest.raises(EmptyMediaError):
        fingerprint_media(kit.write_clip(tmp_path / "hiss.wav", hiss), video=False)


def test_parameters_carry_a_version_tag():
    assert PARAMS.tag() == f"audio-v{PARAMS.version}"
    assert AudioParams(version=PARAMS.version + 1).tag() != PARAMS.tag()
    with pytest.raises(dataclasses.FrozenInstanceError):
        PARAMS.fanout = 3  # type: ignore[misc]
