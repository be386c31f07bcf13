"""The scale benchmark's decoys: real key statistics, but never reachable by a query's warps."""

from __future__ import annotations

import numpy as np

from nanhu.benchmarks.scale_audio import decoy
from nanhu.benchmarks.synth import music_like
from nanhu.engine.audio.keys import audio_landmarks
from nanhu.engine.audio.params import AudioParams
from nanhu.engine.audio.peaks import stream_peaks
from nanhu.engine.catalog import Catalog
from nanhu.engine.fingerprint import Fingerprint
from nanhu.engine.matcher import Matcher

RATE = 8000


def _fingerprint(landmarks, duration_s: float, digest: str) -> Fingerprint:
    return Fingerprint(duration_s=duration_s, digest=digest, audio=landmarks,
                       audio_params_tag=AudioParams().tag())


def test_a_decoy_is_not_matched_by_its_source_at_any_warp(tmp_path):
    params = AudioParams()
    song = music_like(40.0, seed=7, sample_rate=RATE)
    peaks, _ = stream_peaks([song], params=params)
    rng = np.random.default_rng(0)
    query_landmarks, _ = audio_landmarks([song[8 * RATE: 18 * RATE]], params=params,
                                         warps=params.query_warps)
    query = _fingerprint(query_landmarks, 10.0, "query")
    # the control: the song's own keys are found
    own, _ = audio_landmarks([song], params=params)
    with Catalog(tmp_path / "own", writable=True, create=True) as catalog:
        catalog.add("song", _fingerprint(own, 40.0, "own"))
        catalog.commit()
        assert [m.reference_id for m in Matcher(catalog).match(query)] == ["song"]
    # eight decoys of the same song (several transpositions and tempi): none is found
    with Catalog(tmp_path / "decoys", writable=True, create=True) as catalog:
        for n in range(8):
            made = decoy(peaks, rng, params)
            duration = float(made.frames.max() + 1) / params.frames_per_second
            catalog.add(f"decoy-{n}", _fingerprint(made, duration, f"d{n}"))
        catalog.commit()
        assert Matcher(catalog).match(query) == []


def test_decoys_keep_the_key_statistics():
    params = AudioParams()
    song = music_like(40.0, seed=8, sample_rate=RATE)
    peaks, _ = stream_peaks([song], params=params)
    own, _ = audio_landmarks([song], params=params)
    made = decoy(peaks, np.random.default_rng(1), params)
    # as many keys as a registration of the music (reversal keeps the peak density) ...
    assert 0.8 < len(made) / len(own) < 1.25
    # ... and the frames run forward from 0 like a registration's
    assert made.frames.min() >= 0 and np.all(np.diff(np.sort(made.frames)) >= 0)


def test_a_scale_catalog_keeps_the_real_peaks_and_stores_its_decoys(registered_catalog,
                                                                   reference_fps, tmp_path):
    """Built beside a catalog that stores peaks, a scale catalog stores its decoys' peaks too
    (the peak check sees what a catalog of that size would hold), and reopens."""
    from nanhu.benchmarks.scale_audio import FIRST_SYNTHETIC_ORDINAL, build_scale_catalog

    params = AudioParams()
    peaks = [fp.reference_peaks for fp in reference_fps.values()]
    info = build_scale_catalog(registered_catalog, tmp_path / "scale", 0.1, 3, peaks, params)
    catalog = Catalog(tmp_path / "scale")
    store = catalog.reference_peaks()
    assert info["synthetic_references"] >= 2
    for o in range(FIRST_SYNTHETIC_ORDINAL, FIRST_SYNTHETIC_ORDINAL + info["synthetic_references"]):
        assert o in store
    real = Catalog(registered_catalog)
    for ordinal in real.by_ordinals(np.arange(0, 64, dtype=np.int64)):
        np.testing.assert_array_equal(store.window(ordinal, 0, 1e9)[0],
                                      real.reference_peaks().window(ordinal, 0, 1e9)[0])
    n_decoy_peaks = sum(len(store.window(o, 0, 1e9)[0]) for o in range(
        FIRST_SYNTHETIC_ORDINAL, FIRST_SYNTHETIC_ORDINAL + info["synthetic_references"]))
    assert n_decoy_peaks > 0
