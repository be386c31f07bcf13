"""A query keyed on demand travels as its peaks (fingerprint format 2, the proto's
``audio_peaks``): the bytes and the message restore the very peaks and warps, so the matcher
keys them as it would have in process and the peak check runs on what an edge client sent;
keyed fingerprints stay version 1, and bad peaks are refused naming the field."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from nanhu.engine.audio.align import AudioMatchParams
from nanhu.engine.audio.keys import QueryPeaks
from nanhu.engine.catalog import Catalog
from nanhu.engine.errors import InvalidArgument, VersionMismatch
from nanhu.engine.fingerprint import Fingerprint, fingerprint_media
from nanhu.engine.matcher import Matcher
from nanhu.engine.validate import validate_fingerprint


@pytest.fixture(scope="module")
def lazy(songs, kit, tmp_path_factory) -> Fingerprint:
    clip = kit.excerpt(kit.speed_change(songs["song-2"], 1.03), 12.0, 17.0)
    path = kit.write_clip(tmp_path_factory.mktemp("q") / "q.mp3", clip)
    return fingerprint_media(path, query=True, video=False, keys_on_demand=True)


def same_peaks(a: QueryPeaks, b: QueryPeaks) -> bool:
    return (np.array_equal(a.peaks.frame, b.peaks.frame)
            and np.array_equal(a.peaks.log_freq, b.peaks.log_freq)
            and np.array_equal(a.peaks.prominence, b.peaks.prominence)
            and a.warps == b.warps and a.params == b.params)


def test_the_bytes_carry_a_querys_peaks_and_the_matcher_answers_the_same(
        lazy, registered_catalog):
    data = lazy.to_bytes()
    back = Fingerprint.from_bytes(data)
    assert lazy.format_version == back.format_version == 2 and back.audio is None
    assert same_peaks(back.audio_peaks, lazy.audio_peaks)
    keys_a, keys_b = lazy.audio_peaks.landmarks(), back.audio_peaks.landmarks()
    assert np.array_equal(keys_a.hashes, keys_b.hashes)
    assert np.array_equal(keys_a.frames, keys_b.frames)
    # the peaks are far smaller than the keys they make
    assert len(data) * 5 < len(lazy.keyed().to_bytes())
    votes_off = dataclasses.replace(AudioMatchParams(), min_votes=100_000)
    with Catalog(registered_catalog) as catalog:
        for match in (AudioMatchParams(), votes_off):
            matcher = Matcher(catalog, audio_match=match)
            assert matcher.match(back) == matcher.match(lazy)
        found = Matcher(catalog, audio_match=votes_off).match(back)
        assert [m.reference_id for m in found] == ["song-2"]
        assert found[0].evidence["verified"] == "peaks"  # the check ran on the sent peaks


def test_a_keyed_fingerprint_stays_version_1(lazy):
    keyed = lazy.keyed()
    assert keyed.format_version == 1
    back = Fingerprint.from_bytes(keyed.to_bytes())
    assert back.audio_peaks is None and np.array_equal(back.audio.hashes, keyed.audio.hashes)


def test_the_proto_carries_a_querys_peaks(lazy):
    from nanhu.server import convert

    msg = convert.fingerprint_to_proto(lazy)
    assert msg.format_version == 2 and not msg.HasField("audio")
    back = convert.fingerprint_from_proto(msg)
    assert same_peaks(back.audio_peaks, lazy.audio_peaks)
    assert back.audio_params_tag == lazy.audio_params_tag
    keyed = convert.fingerprint_from_proto(convert.fingerprint_to_proto(lazy.keyed()))
    assert keyed.audio_peaks is None and len(keyed.audio) == len(lazy.keyed().audio)
    # both kinds at once, mismatched warps, an unknown tag and an unknown version are refused
    both = convert.fingerprint_to_proto(lazy)
    both.audio.CopyFrom(convert.fingerprint_to_proto(lazy.keyed()).audio)
    with pytest.raises(InvalidArgument, match="audio and audio_peaks"):
        convert.fingerprint_from_proto(both)
    odd = convert.fingerprint_to_proto(lazy)
    odd.audio_peaks.warp_pitches.append(1.0)
    with pytest.raises(InvalidArgument, match="warp_speeds and warp_pitches"):
        convert.fingerprint_from_proto(odd)
    other = convert.fingerprint_to_proto(lazy)
    other.audio_peaks.params_tag = "audio-v99"
    with pytest.raises(VersionMismatch, match="audio-v99"):
        convert.fingerprint_from_proto(other)
    newer = convert.fingerprint_to_proto(lazy)
    newer.format_version = 3
    with pytest.raises(VersionMismatch, match="versions 1, 2"):
        convert.fingerprint_from_proto(newer)


def _peaks(lazy: Fingerprint, **changes) -> Fingerprint:
    query = lazy.audio_peaks
    peaks = dataclasses.replace(query.peaks, **{k: v for k, v in changes.items()
                                                if k != "warps"})
    return dataclasses.replace(lazy, audio_peaks=dataclasses.replace(
        query, peaks=peaks, warps=changes.get("warps", query.warps)))


POISONS = {  # name: (change, field named in the message)
    "negative frame": (lambda fp: _peaks(fp, frame=fp.audio_peaks.peaks.frame - 10_000),
                       "audio_peaks.frames"),
    "frame past the duration": (lambda fp: _peaks(fp, frame=fp.audio_peaks.peaks.frame + 10**6),
                                "audio_peaks.frames"),
    "unsorted frames": (lambda fp: _peaks(fp, frame=fp.audio_peaks.peaks.frame[::-1].copy()),
                        "audio_peaks.frames"),
    "NaN log-frequency": (lambda fp: _peaks(fp, log_freq=np.full(
        len(fp.audio_peaks), np.nan, np.float32)), "audio_peaks.log_freq"),
    "log-frequency off the grid": (lambda fp: _peaks(fp, log_freq=np.full(
        len(fp.audio_peaks), 1e4, np.float32)), "audio_peaks.log_freq"),
    "infinite prominence": (lambda fp: _peaks(fp, prominence=np.full(
        len(fp.audio_peaks), np.inf, np.float32)), "audio_peaks.prominence"),
    "too many peaks": (lambda fp: _peaks(
        fp, frame=np.repeat(fp.audio_peaks.peaks.frame, 20),
        log_freq=np.repeat(fp.audio_peaks.peaks.log_freq, 20),
        prominence=np.repeat(fp.audio_peaks.peaks.prominence, 20)), "audio_peaks.frames"),
    "no warps": (lambda fp: _peaks(fp, warps=()), "audio_peaks.warps"),
    "warp speed 100": (lambda fp: _peaks(fp, warps=((100.0, 1.0),)), "audio_peaks.warps"),
    "NaN warp": (lambda fp: _peaks(fp, warps=((float("nan"), 1.0),)), "audio_peaks.warps"),
    "no params tag": (lambda fp: dataclasses.replace(fp, audio_params_tag=""),
                      "audio_peaks.params_tag"),
}


def test_a_real_querys_peaks_pass(lazy):
    assert validate_fingerprint(lazy, for_reference=False) is lazy
    with pytest.raises(InvalidArgument, match="a reference is registered with its keys"):
        validate_fingerprint(lazy, for_reference=True)


@pytest.mark.parametrize("name", sorted(POISONS))
def test_bad_query_peaks_are_refused_naming_the_field(lazy, name):
    change, field = POISONS[name]
    with pytest.raises(InvalidArgument) as caught:
        validate_fingerprint(change(lazy), what="upload x", for_reference=False)
    assert str(caught.value).startswith(f"upload x: {field}"), str(caught.value)


def test_peaks_that_do_not_fit_together_are_not_a_fingerprint(lazy):
    from nanhu.engine.errors import MediaError
    from nanhu.engine.fingerprint import query_peak_arrays, query_peaks_from_arrays

    arrays = query_peak_arrays(lazy.audio_peaks)
    tag = lazy.audio_params_tag
    with pytest.raises(MediaError, match="unequal lengths"):
        query_peaks_from_arrays(arrays["query_peak_frames"][:-1], arrays["query_peak_log_freq"],
                                arrays["query_peak_prominence"], arrays["query_warps"], tag)
    with pytest.raises(MediaError, match="not integers"):
        query_peaks_from_arrays(arrays["query_peak_frames"].astype(np.float32),
                                arrays["query_peak_log_freq"], arrays["query_peak_prominence"],
                                arrays["query_warps"], tag)
    with pytest.raises(MediaError, match="warps"):
        query_peaks_from_arrays(arrays["query_peak_frames"], arrays["query_peak_log_freq"],
                                arrays["query_peak_prominence"], np.zeros(3), tag)
