"""Triplet keys (audio-v3): layout, determinism, and what a speed or pitch change moves."""

from __future__ import annotations

import dataclasses
from fractions import Fraction

import numpy as np
import pytest

from nanhu.benchmarks.synth import music_like
from nanhu.engine.audio.keys import KEY_BITS, key_fields, triplet_hashes
from nanhu.engine.audio.params import AudioParams
from nanhu.engine.audio.peaks import Peaks, spectral_peaks, stft_db

PARAMS = AudioParams()


@pytest.fixture(scope="module")
def peaks() -> Peaks:
    signal = music_like(20.0, seed=21, sample_rate=PARAMS.sample_rate)
    return spectral_peaks(stft_db(signal, n_fft=PARAMS.n_fft, hop_length=PARAMS.hop_length),
                          params=PARAMS)


def test_key_fields_stay_in_their_bits(peaks):
    landmarks = triplet_hashes(peaks, params=PARAMS, warps=PARAMS.query_warps)
    assert KEY_BITS == 30 and landmarks.hashes.dtype == np.uint32 and len(landmarks) > 5000
    assert int(landmarks.hashes.max()) < 1 << KEY_BITS
    fields = key_fields(landmarks.hashes)
    assert np.abs(fields["d1"] - 63).max() <= PARAMS.max_dlf_steps
    assert np.abs(fields["d2"] - 63).max() <= PARAMS.max_dlf_steps
    assert fields["r"].max() < PARAMS.key_r_levels
    # T is the log2 time span (>= key_min_span_frames), F the anchor's coarse frequency
    assert fields["t"].min() >= np.floor(PARAMS.key_t_per_octave * np.log2(
        PARAMS.key_min_span_frames * min(PARAMS.query_speeds)))
    assert fields["f"].max() < 64


def test_a_triplet_hashes_to_its_coordinates():
    peaks = Peaks(frame=np.array([10, 14, 22, 400], np.int64),
                  log_freq=np.array([100.2, 110.9, 90.1, 50.0], np.float32),
                  prominence=np.ones(4, np.float32))
    landmarks = triplet_hashes(peaks, params=PARAMS)
    # (10, 100.2) with (14, 110.9) and (22, 90.1); (400, 50) is outside the target zone; the
    # second peak has only one target, so it anchors no triplet.
    assert len(landmarks) == 1
    fields = {k: int(v[0]) for k, v in key_fields(landmarks.hashes).items()}
    assert fields == {"d1": 63 + 11, "d2": 63 - 10, "r": int(16 * 4 / 12),
                      "t": int(np.floor(6 * np.log2(12))), "f": int(100.2 // 4)}
    assert landmarks.frames.tolist() == [10]


def test_keys_are_deterministic_and_c_fanout_2_per_anchor(peaks):
    first = triplet_hashes(peaks, params=PARAMS)
    second = triplet_hashes(peaks, params=PARAMS)
    np.testing.assert_array_equal(first.hashes, second.hashes)
    np.testing.assert_array_equal(first.frames, second.frames)
    anchors_per_frame = np.bincount(peaks.frame)
    keys_per_frame = np.bincount(first.frames, minlength=anchors_per_frame.size)
    assert np.all(keys_per_frame <= 6 * anchors_per_frame)  # C(4, 2) triplets an anchor
    fan5 = triplet_hashes(peaks, params=dataclasses.replace(PARAMS, fanout=5))
    assert len(fan5) > len(first)  # C(5, 2) = 10 triplets an anchor with enough targets


def _warped(speed: float, pitch: float):
    """Reference peaks and the same peaks played ``speed`` times faster and ``pitch`` higher.

    Peaks come in groups of five within 60 frames and +-30 log-frequency steps, groups 400
    frames apart, so every anchor's targets are the rest of its group at any warp in
    0.8..1.25 (no span near the target zone's edge). Reference frames are multiples of the
    speed's numerator (at most 12) so that query frames are whole, and log frequencies sit away from
    rounding ties: the warp then maps every triplet exactly."""
    numerator = Fraction(speed).limit_denominator(100).numerator
    rng = np.random.default_rng(5)
    groups = 80
    within = np.sort([rng.choice(60 // numerator, 5, replace=False) for _ in range(groups)],
                     axis=1)
    frames = ((np.arange(groups)[:, None] * (400 // numerator + 1) + within) * numerator).ravel()
    base = rng.integers(60, 190, groups)[:, None]
    log_freq = (base + rng.integers(-30, 31, (groups, 5)) + 0.25).astype(np.float32).ravel()
    ones = np.ones(frames.size, np.float32)
    reference = Peaks(frames.astype(np.int64), log_freq, ones)
    shift = PARAMS.bins_per_octave * np.log2(pitch)
    query = Peaks(np.rint(frames / speed).astype(np.int64), (log_freq + shift).astype(np.float32),
                  ones)
    return reference, query


@pytest.mark.parametrize(("speed", "pitch"), [(0.9, 0.9), (1.0, 1.0), (1.1, 1.1), (1.125, 1.0),
                                             (1.0, 1.06), (0.8, 0.8), (1.25, 1.25)])
def test_a_warped_query_hashes_back_to_the_reference(speed, pitch):
    reference_peaks, query_peaks = _warped(speed, pitch)
    reference = triplet_hashes(reference_peaks, params=PARAMS)
    query = triplet_hashes(query_peaks, params=PARAMS, warps=((1.0, 1.0), (speed, pitch)))
    at_warp = query.speed_index == 1
    ref_keys = sorted(zip(reference.hashes.tolist(), reference.frames.tolist()))
    assert len(ref_keys) > 300
    assert sorted(zip(query.hashes[at_warp].tolist(), query.frames[at_warp].tolist())) == ref_keys
    if (speed, pitch) != (1.0, 1.0):  # unwarped, the query shares few keys with its reference
        assert np.isin(query.hashes[~at_warp], reference.hashes).mean() < 0.2


@pytest.mark.parametrize(("speed", "pitch", "moved"), [(1.1, 1.0, {"t"}), (1.0, 1.06, {"f"}),
                                                       (1.1, 1.1, {"t", "f"})])
def test_a_speed_change_moves_only_time_span_and_a_pitch_change_only_frequency(speed, pitch,
                                                                               moved):
    """Unwarped, a changed copy keeps its invariant fields (D1, D2, R) exactly; only T moves
    with time scaling and only F with frequency scaling."""
    reference_peaks, query_peaks = _warped(speed, pitch)
    reference = key_fields(triplet_hashes(reference_peaks, params=PARAMS).hashes)
    query = key_fields(triplet_hashes(query_peaks, params=PARAMS).hashes)
    assert reference["d1"].size == query["d1"].size > 300
    for name in ("d1", "d2", "r", "t", "f"):
        same = np.array_equal(np.sort(reference[name]), np.sort(query[name]))
        assert same == (name not in moved), name


def test_a_probed_triplet_is_also_keyed_in_the_neighbouring_cells_of_its_edgy_fields():
    # d1x = 74.45 (0.05 from the 74/75 edge), d2x = 53.2 (0.3 from an edge), r = 16 * 4 / 12
    # = 5.33 (0.33), t = 6 log2(12) = 21.51 (0.49): only D1 is within 0.15 of an edge
    peaks = Peaks(frame=np.array([10, 14, 22], np.int64),
                  log_freq=np.array([100.0, 111.45, 90.2], np.float32),
                  prominence=np.ones(3, np.float32))
    plain = triplet_hashes(peaks, params=PARAMS)
    probed = triplet_hashes(peaks, params=PARAMS, probe=0.15)
    assert len(plain) == 1 and len(probed) == 2
    fields = key_fields(probed.hashes)
    assert fields["d1"].tolist() == [74, 75]
    for name in ("d2", "r", "t", "f"):
        assert len(set(fields[name].tolist())) == 1
    assert probed.frames.tolist() == [10, 10]
    # a wider probe reaches the fields nearer the middle of their cells too
    assert len(triplet_hashes(peaks, params=PARAMS, probe=0.35)) == 4


def test_probes_only_add_neighbours_of_the_plain_keys(peaks):
    plain = triplet_hashes(peaks, params=PARAMS, warps=PARAMS.query_warps)
    probed = triplet_hashes(peaks, params=PARAMS, warps=PARAMS.query_warps,
                            probe=PARAMS.query_probe)
    assert set(plain.hashes.tolist()) <= set(probed.hashes.tolist())
    assert 1.3 < len(probed) / len(plain) < 3.0
    # every extra key is a plain key of the same anchor and warp with one field moved by one
    plain_fields = key_fields(plain.hashes)
    by_anchor: dict[tuple[int, int], list[tuple]] = {}
    for n in range(len(plain)):
        by_anchor.setdefault((int(plain.frames[n]), int(plain.speed_index[n])), []).append(
            tuple(int(plain_fields[k][n]) for k in ("d1", "d2", "r", "t", "f")))
    probed_fields = key_fields(probed.hashes)
    for n in np.random.default_rng(0).choice(len(probed), 300, replace=False):
        key = tuple(int(probed_fields[k][n]) for k in ("d1", "d2", "r", "t", "f"))
        candidates = by_anchor[(int(probed.frames[n]), int(probed.speed_index[n]))]
        assert any(sum(abs(a - b) for a, b in zip(key, c)) <= 1 for c in candidates)


@pytest.mark.parametrize("query", [False, True])
def test_the_compiled_keying_equals_its_numpy_twin(peaks, query):
    """The compiled loops (engine.audio.key_kernels) give the numpy form's keys, anchor frames
    and per-warp counts, in the same order, at every speed of the query warp grid, for a
    reference's fanout and for a query's (wider fanout, multi-probe), whole or anchors cut."""
    from nanhu.engine.audio.keys import _speed_warp_keys

    params = AudioParams()
    frames = peaks.frame.astype(np.float64)
    lf0 = peaks.log_freq.astype(np.float64)
    fanout = params.query_fanout if query else params.fanout
    probe = params.query_probe if query else 0.0
    by_speed: dict[float, list[float]] = {}
    for speed, pitch in params.query_warps:
        by_speed.setdefault(float(speed), []).append(float(pitch))
    assert len(by_speed) > 10
    compared = 0
    for speed, pitches in by_speed.items():
        shifts = params.bins_per_octave * np.log2(np.array(pitches))
        for n_anchors in (frames.size, frames.size // 3, frames.size + 5):
            fast = _speed_warp_keys(frames, lf0, params, speed, shifts, fanout, probe, n_anchors)
            slow = _speed_warp_keys(frames, lf0, params, speed, shifts, fanout, probe, n_anchors,
                                    compiled=False)
            for a, b in zip(fast, slow):
                assert a.dtype == b.dtype
                np.testing.assert_array_equal(a, b)
            assert fast[2].sum() == fast[0].size
            compared += fast[0].size
    assert compared > 10_000
