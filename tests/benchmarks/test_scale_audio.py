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
