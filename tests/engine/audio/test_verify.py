"""The peak check (engine.audio.verify): its hit count against a brute-force count, its chance
model against chance itself, the hypothesis's warp, and the matcher that uses it."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from nanhu.engine.audio.align import AudioMatchParams
from nanhu.engine.audio.params import AudioParams
from nanhu.engine.audio.peaks import Peaks
from nanhu.engine.audio.verify import (
    Hypothesis,
    check,
    fft_bins,
    peak_agreement,
    verified_segments,
)
from nanhu.engine.catalog import Catalog
from nanhu.engine.fingerprint import fingerprint_media
from nanhu.engine.matcher import Matcher
from nanhu.engine.segments import Segment
from nanhu.engine.store.audio_peaks import ReferencePeaksTwin

PARAMS = AudioParams()
COMB = np.array([20.0, 37.5, 52.0, 71.0, 90.0, 110.0, 128.5, 150.0, 171.0, 199.0])


def comb_peaks(rng: np.random.Generator, n: int, frames: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` peaks at random frames on a few fixed pitches (log-frequency steps), as music keeps
    to its key; sorted by frame."""
    f = np.sort(rng.integers(0, frames, n)).astype(np.float64)
    return f, COMB[rng.integers(0, COMB.size, n)] + rng.normal(0, 0.3, n)


def test_hits_are_the_brute_force_count():
    rng = np.random.default_rng(0)
    ref_f, ref_lf = comb_peaks(rng, 400, 3_000)
    q_f, q_lf = rng.uniform(0, 3_000, 120), rng.uniform(0, 240, 120)
    q_bins, ref_bins = fft_bins(q_lf, PARAMS), fft_bins(ref_lf, PARAMS)
    hit, _ = peak_agreement(q_f, q_bins, ref_f, ref_bins, dt=2.0, dbin=1.0,
                            density_frames=(0.0, 3_000.0))
    want = [any(abs(a - b) <= 2 and abs(c - d) <= 1 for b, d in zip(ref_f, ref_bins))
            for a, c in zip(q_f, q_bins)]
    assert hit.tolist() == want


def test_expected_hits_are_what_chance_gives_on_a_comb_spectrum():
    """Unrelated peaks on the same pitches: the mean hits over many draws is the mean expected
    figure (a model blind to the comb would expect several times fewer)."""
    rng = np.random.default_rng(1)
    hits, expected, band = [], [], []
    for _ in range(300):
        ref_f, ref_lf = comb_peaks(rng, 640, 5_000)  # 16 peaks a second, 40 s
        q_f, q_lf = comb_peaks(rng, 80, 5_000)
        h, e = peak_agreement(q_f, fft_bins(q_lf, PARAMS), ref_f, fft_bins(ref_lf, PARAMS),
                              dt=2.0, dbin=1.0, density_frames=(0.0, 5_000.0))
        hits.append(h.sum())
        expected.append(e)
        # the spectrum's mean density (peaks per frame per bin over the picker's range)
        span_bins = fft_bins(np.array([251.0]), PARAMS)[0] - fft_bins(np.array([0.0]), PARAMS)[0]
        band.append(80 * 640 / 5_000 / span_bins * 5 * 2)
    assert np.mean(hits) == pytest.approx(np.mean(expected), rel=0.1)
    assert np.mean(band) < 0.5 * np.mean(expected)


def test_the_hypothesis_warp_puts_every_peak_back():
    rng = np.random.default_rng(2)
    ref_f, ref_lf = comb_peaks(rng, 500, 4_000)
    ref_lf = ref_lf + rng.uniform(-3, 3, ref_lf.size)  # off the comb: any pitch
    speed, pitch, offset = 1.1, 2 ** (1 / 12), 700.0
    inside = (ref_f > offset + 10) & (ref_f < offset + 1_000)
    # the query plays `speed` times faster and sounds `pitch` higher
    q_frames = np.rint((ref_f[inside] - offset) / speed).astype(np.int64)
    q_lf = ref_lf[inside] + PARAMS.bins_per_octave * np.log2(pitch)
    order = np.argsort(q_frames, kind="stable")
    peaks = Peaks(q_frames[order], q_lf[order].astype(np.float32),
                  np.zeros(order.size, np.float32))
    right = Hypothesis(ordinal=1, speed=speed, pitch=pitch, offset=offset, query_lo=0,
                       query_hi=float(q_frames.max()), votes=3)
    ref = (ref_f, fft_bins(ref_lf, PARAMS))
    got = check(peaks, right, ref, params=PARAMS, lo=0, hi=1e9, dt=2, dbin=1,
                density_frames=(0.0, 4_000.0))
    assert got["hits"] == got["query_peaks"] == inside.sum()
    assert got["log10_tail"] < -20
    wrong = dataclasses.replace(right, pitch=1.0)
    missed = check(peaks, wrong, ref, params=PARAMS, lo=0, hi=1e9, dt=2, dbin=1,
                   density_frames=(0.0, 4_000.0))
    assert missed["hits"] < 0.3 * got["hits"]


def test_checks_skip_what_is_found_keep_one_a_reference_and_count_every_check():
    rng = np.random.default_rng(3)
    ref_f, ref_lf = comb_peaks(rng, 800, 6_000)
    store = ReferencePeaksTwin([(o, ref_f, ref_lf) for o in range(12)])
    start = 1_000
    inside = (ref_f >= start) & (ref_f < start + 600)
    peaks = Peaks((ref_f[inside] - start).astype(np.int64), ref_lf[inside].astype(np.float32),
                  np.zeros(inside.sum(), np.float32))
    hyp = [Hypothesis(ordinal=o, speed=1.0, pitch=1.0, offset=float(start), query_lo=0.0,
                      query_hi=500.0, votes=10 - o % 5) for o in range(12)]
    hyp.append(dataclasses.replace(hyp[0], votes=3, offset=0.0))  # reference 0 again, weaker
    match = dataclasses.replace(AudioMatchParams(), verify_hypotheses=4)
    fps = PARAMS.frames_per_second
    found = [Segment(reference=0, modality="audio", query_start_s=0.0, query_end_s=3.0,
                     reference_start_s=0.0, reference_end_s=3.0, speed=1.0, score=0.9)]
    out = verified_segments(peaks, hyp, store, params=PARAMS, match=match, catalog_hours=1.0,
                            window=(-np.inf, np.inf), found=found)
    # reference 0 is found over that stretch; of the rest the four with most votes
    assert sorted(s.reference for s in out) == [1, 5, 6, 10]
    alone = verified_segments(peaks, [hyp[1]], store, params=PARAMS, match=match,
                              catalog_hours=1.0, window=(-np.inf, np.inf), found=[])
    four = {s.reference: s.evidence["log10_chance_poisson"] for s in out}
    assert four[1] == pytest.approx(alone[0].evidence["log10_chance_poisson"] + np.log10(4),
                                    abs=0.011)
    seg = alone[0]
    assert seg.evidence["verified"] == "peaks"
    assert seg.reference_start_s - seg.query_start_s == pytest.approx(start / fps, abs=0.02)


@pytest.fixture(scope="module")
def votes_off() -> AudioMatchParams:
    """Thresholds no vote count reaches: whatever matches was found by the peak check."""
    return dataclasses.replace(AudioMatchParams(), min_votes=100_000)


def test_the_matcher_finds_by_peaks_what_the_votes_leave(registered_catalog, songs, kit,
                                                         tmp_path, votes_off):
    clip = kit.excerpt(songs["song-2"], 12.0, 17.0)
    path = kit.write_clip(tmp_path / "q.wav", clip)
    lazy = fingerprint_media(path, query=True, video=False, keys_on_demand=True)
    catalog = Catalog(registered_catalog)
    assert catalog.manifest.get("audio_peaks")
    matches = Matcher(catalog, audio_match=votes_off).match(lazy)
    assert [m.reference_id for m in matches] == ["song-2"]
    m = matches[0]
    assert m.evidence["verified"] == "peaks"
    assert m.reference_start_s - m.query_start_s == pytest.approx(12.0, abs=0.05)
    # no check without it, nor for a query keyed whole (no peaks to check)
    off = dataclasses.replace(votes_off, verify=False)
    assert Matcher(catalog, audio_match=off).match(lazy) == []
    keyed = fingerprint_media(path, query=True, video=False)
    assert Matcher(catalog, audio_match=votes_off).match(keyed) == []


def test_a_catalog_without_stored_peaks_is_matched_on_votes(song_files, tmp_path, votes_off):
    fp = fingerprint_media(song_files["song-1"], video=False)
    with Catalog(tmp_path / "c", writable=True, create=True) as catalog:
        catalog.add("song-1", dataclasses.replace(fp, reference_peaks=None))
        catalog.commit()
    catalog = Catalog(tmp_path / "c")
    assert not catalog.manifest.get("audio_peaks")
    lazy = fingerprint_media(song_files["song-1"], query=True, video=False, keys_on_demand=True)
    assert Matcher(catalog, audio_match=votes_off).match(lazy) == []
    assert [m.reference_id for m in Matcher(catalog).match(lazy)] == ["song-1"]


def test_a_reference_that_repeats_itself_is_not_taken_for_a_copy_at_every_offset():
    """A loop that comes back every 200 frames agrees with a query from it at every multiple
    of the loop: tried at such shifts, the chance figure rises to what the loop gives, and
    the tail says so; a reference that does not repeat keeps its small tail."""
    rng = np.random.default_rng(4)
    bar_f, bar_lf = comb_peaks(rng, 50, 200)
    ref_f = np.concatenate([bar_f + 200 * k for k in range(20)])
    ref_lf = np.tile(bar_lf, 20)
    peaks = Peaks(np.concatenate([bar_f, bar_f + 200]).astype(np.int64),
                  np.tile(bar_lf, 2).astype(np.float32), np.zeros(100, np.float32))
    hyp = Hypothesis(ordinal=0, speed=1.0, pitch=1.0, offset=1_000.0, query_lo=0,
                     query_hi=400.0, votes=3)
    kwargs = dict(params=PARAMS, lo=0, hi=1e9, dt=2, dbin=1, density_frames=(0.0, 4_000.0))
    ref = (ref_f, fft_bins(ref_lf, PARAMS))
    looped = check(peaks, hyp, ref, shifts=(-400.0, 400.0, 800.0), **kwargs)
    assert looped["hits"] == 100 and looped["shifted"] >= 90
    assert looped["log10_tail"] > -2
    plain = check(peaks, hyp, ref, **kwargs)
    assert plain["log10_tail"] < -20


def test_a_pitch_shift_seen_at_a_resampling_warp_is_checked_at_its_own():
    """Votes often first meet a pitch-shifted copy at the resampling warp of its pitch; its
    variants include the pitch shift alone, anchored where the votes are."""
    from nanhu.engine.audio.verify import warp_variants

    rng = np.random.default_rng(5)
    ref_f, ref_lf = comb_peaks(rng, 600, 4_000)
    ref_lf = ref_lf + rng.uniform(-3, 3, ref_lf.size)
    pitch, offset = 2 ** (1 / 12), 1_200.0
    inside = (ref_f >= offset) & (ref_f < offset + 640)
    q_frames = (ref_f[inside] - offset).astype(np.int64)  # time untouched
    peaks = Peaks(q_frames, (ref_lf[inside] + PARAMS.bins_per_octave * np.log2(pitch)).astype(
        np.float32), np.zeros(inside.sum(), np.float32))
    centre = 320.0
    seen = Hypothesis(ordinal=0, speed=pitch, pitch=pitch, query_lo=280.0, query_hi=360.0,
                      offset=offset + centre - centre * pitch, votes=4)
    variants = warp_variants(seen)
    assert len(variants) == 3 and variants[0] == seen  # itself, time alone, pitch alone
    kwargs = dict(params=PARAMS, lo=0, hi=1e9, dt=2, dbin=1, density_frames=(0.0, 4_000.0))
    ref = (ref_f, fft_bins(ref_lf, PARAMS))
    hits = {(round(v.speed, 3), round(v.pitch, 3)): check(peaks, v, ref, **kwargs)
            for v in variants}
    own = hits[(1.0, round(pitch, 3))]
    assert own["hits"] == inside.sum()
    assert hits[(round(pitch, 3), round(pitch, 3))]["hits"] < 0.5 * own["hits"]
