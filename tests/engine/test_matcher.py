"""Matching: the right reference at the right offset and speed, nothing for unrelated audio."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nanhu.benchmarks.synth import music_like
from nanhu.engine.audio.keys import Landmarks
from nanhu.engine.audio.params import AudioParams
from nanhu.engine.catalog import Catalog
from nanhu.engine.fingerprint import fingerprint_media
from nanhu.engine.matcher import Matcher


@pytest.fixture(scope="module")
def matcher(registered_catalog) -> Matcher:
    return Matcher(Catalog(registered_catalog))


def query(matcher: Matcher, path: Path):
    return matcher.match(fingerprint_media(path, query=True, video=False))


def assert_copy(match, *, reference_id: str, reference_start_s: float, speed: float = 1.0,
                query_length_s: float) -> None:
    """The match maps query time 0 to reference_start_s and spans the query."""
    assert match.reference_id == reference_id
    assert match.modality == "audio"
    assert match.score >= 0.9  # E <= 1e-10 expected chance matches (engine.segments)
    assert match.speed == pytest.approx(speed, abs=0.03)
    # Segment ends are the first and last aligned anchors: within 1 s of the copy's ends at the
    # default peak density (16 peaks/s, fanout 4).
    assert 0.0 <= match.query_start_s < 1.0
    assert match.query_end_s == pytest.approx(query_length_s, abs=1.0)
    # Where query time 0 falls in the reference, from the reported ranges.
    implied_start = match.reference_start_s - match.query_start_s * match.speed
    assert implied_start == pytest.approx(reference_start_s, abs=0.1)
    reference_span = match.reference_end_s - match.reference_start_s
    assert reference_span == pytest.approx((match.query_end_s - match.query_start_s) * match.speed,
                                           abs=0.3)


@pytest.mark.parametrize(("ref_id", "start_s", "length_s", "suffix"), [
    ("song-1", 20.3, 8.0, ".wav"),
    ("song-0", 3.7, 5.0, ".wav"),
    ("song-2", 31.0, 7.0, ".mp3"),
    ("song-3", 12.25, 10.0, ".opus"),
    ("song-1", 5.0, 8.0, ".amr"),  # a phone codec: 8 kHz, 12.2 kbit/s
])
def test_excerpt_matches_its_reference_at_the_right_offset(matcher, songs, kit, tmp_path, ref_id,
                                                           start_s, length_s, suffix):
    clip = kit.excerpt(songs[ref_id], start_s, start_s + length_s)
    matches = query(matcher, kit.write_clip(tmp_path / f"excerpt{suffix}", clip))
    assert len(matches) == 1, [m.to_dict() for m in matches]
    assert_copy(matches[0], reference_id=ref_id, reference_start_s=start_s,
                query_length_s=length_s)
    assert matches[0].title == f"Title of {ref_id}"
    assert matches[0].evidence["aligned_hashes"] >= 10


@pytest.mark.parametrize("seed", [999, 1234])
def test_unrelated_music_matches_nothing(matcher, kit, tmp_path, seed):
    path = kit.write_clip(tmp_path / "unrelated.wav", music_like(15.0, seed=seed,
                                                                   sample_rate=kit.rate))
    assert query(matcher, path) == []


@pytest.mark.parametrize("speed", [0.9, 1.1])
def test_resampled_speed_change_still_matches(matcher, songs, kit, tmp_path, speed):
    start_s = 14.0
    clip = kit.speed_change(kit.excerpt(songs["song-2"], start_s, start_s + 10.0), speed)
    matches = query(matcher, kit.write_clip(tmp_path / "fast.wav", clip))
    assert len(matches) == 1, [m.to_dict() for m in matches]
    assert_copy(matches[0], reference_id="song-2", reference_start_s=start_s, speed=speed,
                query_length_s=clip.size / kit.rate)


def aligned_votes(anchor_frames: np.ndarray, anchor_log_freqs: np.ndarray) -> list:
    """Segments align_audio finds when each given query landmark hits reference 7 at one offset."""
    from nanhu.engine.audio.align import AudioMatchParams, align_audio
    from nanhu.engine.audio.keys import D1_SHIFT

    n = anchor_frames.size
    targets = np.arange(n) % 7  # landmarks of one anchor differ in their target (dlf, dt)
    # audio-v3 layout: the anchor's coarse frequency is the low F field; targets vary D1
    hashes = (((63 + targets) << D1_SHIFT) | (anchor_log_freqs // 4)).astype(np.uint32)
    landmarks = Landmarks(hashes, anchor_frames.astype(np.int32), np.zeros(n, np.uint8),
                          np.ones(1, np.float32), np.ones(1, np.float32))
    params = AudioParams()
    return align_audio(landmarks, np.arange(n), np.full(n, 7, np.uint32),
                       anchor_frames.astype(np.int64) + 500, params=params,
                       match=AudioMatchParams(), reference_frames={7: 20_000},
                       catalog_frames=20_000)


def test_landmarks_of_one_anchor_vote_once():
    # 12 hits at one offset from 12 anchors spread over 6 s: a copy.
    spread = aligned_votes(np.arange(12) * 30, np.full(12, 100))
    assert len(spread) == 1 and spread[0].evidence["aligned_hashes"] == 12
    # 12 hits at one offset from 3 anchor peaks (4 landmarks each): one chance coincidence of
    # a few notes, which must not pass for 12 independent votes.
    assert aligned_votes(np.repeat([0, 40, 90], 4), np.repeat([100, 120, 80], 4)) == []


# --- a long upload holding several copies among unregistered material ----------------------
def speech_like(seconds: float, *, seed: int, rate: int) -> np.ndarray:
    """Voiced syllables (a pulse train with a gliding pitch through two formants) and noisy
    consonants, about four syllables a second: speech's rhythm and spectrum, no words."""
    from scipy import signal

    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    f0 = 130 + 40 * np.sin(2 * np.pi * 0.7 * t + rng.uniform(0, 6))
    voiced = np.sign(np.sin(2 * np.pi * np.cumsum(f0) / rate))
    syllable = np.sin(2 * np.pi * 4.1 * t + rng.uniform(0, 6)) > -0.2
    out = np.where(syllable, voiced, 0.3 * rng.standard_normal(t.size))
    for formant in (rng.uniform(500, 800), rng.uniform(1200, 2200)):
        b, a = signal.iirpeak(formant, 5, rate)
        out = signal.lfilter(b, a, out)
    return (0.4 * out / np.abs(out).max()).astype(np.float32)


def noise(seconds: float, *, seed: int, rate: int) -> np.ndarray:
    return (0.1 * np.random.default_rng(seed).standard_normal(int(seconds * rate))).astype(
        np.float32)


#: (reference, reference start, end, speed, then this filler (kind, seconds))
COPIES = [
    ("song-0", 30.0, 40.0, 1.0, ("speech", 25.0)),
    ("song-2", 5.0, 17.0, 1.1, ("music", 30.0)),
    ("song-3", 20.0, 30.0, 0.9, ("noise", 20.0)),
    ("song-1", 10.0, 20.0, 1.0, ("speech", 30.0)),
    ("song-0", 2.0, 9.0, 0.95, ("music", 20.0)),
]


@pytest.fixture(scope="module")
def long_upload(songs, kit, tmp_path_factory):
    """(path, truth): 3 minutes of filler (speech-like, noise, unregistered music) with copied
    excerpts of several references, some sped up; truth lists each copy's place in both."""
    rate = kit.rate
    pieces = [noise(15.0, seed=1, rate=rate)]
    truth = []
    for n, (ref_id, start_s, end_s, speed, (kind, filler_s)) in enumerate(COPIES):
        copy = kit.speed_change(kit.excerpt(songs[ref_id], start_s, end_s), speed)
        query_start_s = sum(p.size for p in pieces) / rate
        pieces.append(copy)
        truth.append((ref_id, query_start_s, query_start_s + copy.size / rate, start_s, end_s,
                      speed))
        if kind == "speech":
            pieces.append(speech_like(filler_s, seed=10 + n, rate=rate))
        elif kind == "noise":
            pieces.append(noise(filler_s, seed=10 + n, rate=rate))
        else:  # music nobody registered
            pieces.append(music_like(filler_s, seed=500 + n, sample_rate=rate))
    upload = np.concatenate(pieces)
    assert upload.size / rate > 180
    path = kit.write_clip(tmp_path_factory.mktemp("upload") / "upload.flac", upload)
    return path, truth


def test_long_upload_reports_one_match_per_copied_excerpt(matcher, long_upload):
    path, truth = long_upload
    matches = sorted(query(matcher, path), key=lambda m: m.query_start_s)
    found = [(m.reference_id, round(m.query_start_s, 1), round(m.query_end_s, 1),
              round(m.reference_start_s, 1), round(m.reference_end_s, 1), round(m.speed, 3))
             for m in matches]
    assert len(matches) == len(truth), found
    for match, (ref_id, q_start, q_end, r_start, r_end, speed) in zip(matches, truth):
        assert match.reference_id == ref_id, found
        assert match.query_start_s == pytest.approx(q_start, abs=1.0), found
        assert match.query_end_s == pytest.approx(q_end, abs=1.0), found
        assert match.reference_start_s == pytest.approx(r_start, abs=1.0), found
        assert match.reference_end_s == pytest.approx(r_end, abs=1.0), found
        assert match.speed == pytest.approx(speed, abs=0.03), found


def test_a_copy_across_a_query_window_boundary_is_one_match(registered_catalog, songs, kit,
                                                             tmp_path):
    """A long upload is matched in windows of query time (bounded memory); a copy that spans a
    window boundary comes back whole, as from a single pass over the query."""
    import dataclasses

    from nanhu.engine.audio.align import AudioMatchParams

    rate = kit.rate
    upload = np.concatenate([noise(45.0, seed=3, rate=rate), kit.excerpt(songs["song-2"], 2, 38),
                             noise(60.0, seed=4, rate=rate)])
    fp = fingerprint_media(kit.write_clip(tmp_path / "long.flac", upload), query=True,
                           video=False)
    windowed = Matcher(Catalog(registered_catalog),
                       audio_match=dataclasses.replace(AudioMatchParams(), window_s=30.0))
    single = Matcher(Catalog(registered_catalog),
                     audio_match=dataclasses.replace(AudioMatchParams(), window_s=1e6))
    found = windowed.match(fp), single.match(fp)
    (a,), (b,) = found  # one match each
    for m in (a, b):
        assert m.reference_id == "song-2"
        assert m.query_start_s == pytest.approx(45.0, abs=1.0)
        assert m.query_end_s == pytest.approx(81.0, abs=1.0)
        assert m.reference_start_s == pytest.approx(2.0, abs=1.0)
    assert a.score <= b.score  # more windows, more looks at the catalog: a little less sure


# --- policies and deletions -----------------------------------------------------------------
@pytest.fixture
def one_song_catalog(catalog_dir, reference_fps) -> Path:
    with Catalog(catalog_dir, writable=True, create=True) as catalog:
        catalog.add("song-1", reference_fps["song-1"], title="One", owner="label")
        catalog.add("song-2", reference_fps["song-2"], title="Two")
        catalog.commit()
    return catalog_dir


@pytest.fixture(scope="module")
def excerpts(songs, kit, tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("excerpts")
    return {
        "song-1@20": kit.write_clip(folder / "s1-20.wav", kit.excerpt(songs["song-1"], 20, 28)),
        "song-1@2": kit.write_clip(folder / "s1-2.wav", kit.excerpt(songs["song-1"], 2, 10)),
        "song-2@5": kit.write_clip(folder / "s2-5.wav", kit.excerpt(songs["song-2"], 5, 13)),
    }


def test_excluded_ranges_drop_a_match_inside_them_and_trim_one_across_them(one_song_catalog,
                                                                          excerpts):
    with Catalog(one_song_catalog, writable=True) as writer:
        writer.set_policy("song-1", {"action": "track", "excluded_ranges": [[15, 30]]})
        writer.commit()
    matcher = Matcher(Catalog(one_song_catalog))
    assert query(matcher, excerpts["song-1@20"]) == []  # the work's 20-28 s: all excluded
    outside = query(matcher, excerpts["song-1@2"])
    assert [m.reference_id for m in outside] == ["song-1"]
    assert (outside[0].action, outside[0].policy, outside[0].owner) == ("track", "track", "label")
    assert outside[0].to_dict()["policy"] == "track" and not outside[0].trimmed
    with Catalog(one_song_catalog, writable=True) as writer:
        writer.set_policy("song-1", {"action": "block", "excluded_ranges": [[4, 6]]})
        writer.commit()
    assert matcher.refresh()
    first, second = sorted(query(matcher, excerpts["song-1@2"]), key=lambda m: m.query_start_s)
    # the copy of the work's 2-10 s, less 4-6 s: two pieces, each saying what was cut
    assert first.reference_end_s == pytest.approx(4.0, abs=0.05)
    assert second.reference_start_s == pytest.approx(6.0, abs=0.05)
    assert first.query_end_s == pytest.approx(2.0, abs=0.3)
    assert second.query_start_s == pytest.approx(4.0, abs=0.3)
    for piece in (first, second):
        assert piece.action == "block"
        assert [(t.reference_start_s, t.reference_end_s) for t in piece.trimmed] == [(4.0, 6.0)]
        assert "trimmed 4-6 s of the work (excluded ranges)" in piece.reason


def test_deleted_reference_stops_matching_before_and_after_compaction(one_song_catalog,
                                                                      excerpts):
    matcher = Matcher(Catalog(one_song_catalog))
    assert [m.reference_id for m in query(matcher, excerpts["song-1@20"])] == ["song-1"]
    with Catalog(one_song_catalog, writable=True) as writer:
        writer.delete("song-1")
        writer.commit()
        assert matcher.refresh()
        assert query(matcher, excerpts["song-1@20"]) == []  # tombstoned, postings still there
        assert [m.reference_id for m in query(matcher, excerpts["song-2@5"])] == ["song-2"]
        writer.compact()
    assert matcher.refresh()
    assert query(matcher, excerpts["song-1@20"]) == []
    assert [m.reference_id for m in query(matcher, excerpts["song-2@5"])] == ["song-2"]


def test_an_empty_catalog_matches_nothing(catalog_dir, excerpts):
    Catalog(catalog_dir, writable=True, create=True).close()
    assert query(Matcher(Catalog(catalog_dir)), excerpts["song-1@20"]) == []



def test_query_keyed_on_demand_matches_as_keyed_whole(registered_catalog, long_upload):
    """A screening keys a long upload one window of anchors at a time (``keys_on_demand``):
    its windows, keys and so its matches are those of the same query keyed whole."""
    import dataclasses

    from nanhu.engine.audio.align import AudioMatchParams

    path, truth = long_upload
    whole = fingerprint_media(path, query=True, video=False)
    lazy = fingerprint_media(path, query=True, video=False, keys_on_demand=True)
    assert lazy.audio is None and lazy.audio_peaks is not None
    keyed = lazy.keyed().audio
    assert np.array_equal(np.sort(keyed.hashes), np.sort(whole.audio.hashes))
    # windows of 20 s: the 3-minute upload takes ten of them
    short = Matcher(Catalog(registered_catalog),
                    audio_match=dataclasses.replace(AudioMatchParams(), window_s=20.0))
    # keys of a run of anchors alone: exactly the whole query's keys of those anchors
    part = lazy.audio_peaks.landmarks(100, 400)
    in_run = np.isin(whole.audio.frames, np.unique(part.frames))
    assert set(part.hashes.tolist()) <= set(whole.audio.hashes[in_run].tolist())

    def summary(matches):
        return [(m.reference_id, round(m.query_start_s, 3), round(m.query_end_s, 3),
                 round(m.reference_start_s, 3), round(m.speed, 4), round(m.score, 9))
                for m in matches]

    got, want = summary(short.match(lazy)), summary(short.match(whole))
    assert got == want
    assert len(got) == len(truth)


def test_a_long_screening_holds_one_window_of_keys_at_a_time(registered_catalog, long_upload,
                                                             monkeypatch):
    """Issue 15: a 2-hour self-match peaked at 6.8 GB, then 2.59 GB, because a query's keys
    (every warp, multi-probe: ~17,000 a second) were made whole. Keyed on demand, no step of a
    screening makes more than one window's keys (here 20 s windows plus their 8 s overlap,
    of a 3-minute upload)."""
    import dataclasses

    from nanhu.engine.audio.align import AudioMatchParams
    from nanhu.engine.audio.keys import QueryPeaks

    path, _ = long_upload
    lazy = fingerprint_media(path, query=True, video=False, keys_on_demand=True)
    total = len(lazy.keyed().audio)
    made = []
    keyed = QueryPeaks.landmarks

    def recording(self, lo=0, hi=None):
        landmarks = keyed(self, lo, hi)
        made.append(len(landmarks))
        return landmarks

    monkeypatch.setattr(QueryPeaks, "landmarks", recording)
    matcher = Matcher(Catalog(registered_catalog),
                      audio_match=dataclasses.replace(AudioMatchParams(), window_s=20.0))
    assert matcher.match(lazy)
    assert len(made) >= 9
    assert max(made) < 0.25 * total  # (20 + 8) s of 180 s is 0.16


@pytest.mark.parametrize("n, high", [(0, 10), (1, 10), (5_000, 40), (85_000, 1 << 30),
                                     (3_000, 1 << 32)])
def test_a_windows_distinct_keys_are_those_of_unique_and_a_stable_argsort(n, high):
    """One sort gives ``np.unique``'s keys and inverse and the inverse's stable argsort, for
    few keys repeated many times, a query's spread and hashes wider than a key."""
    from nanhu.engine.audio.windows import distinct_keys as _distinct

    hashes = np.random.default_rng(n).integers(0, high, n, dtype=np.uint64).astype(np.uint32)
    keys, inverse, order = _distinct(hashes)
    twin_keys, twin_inverse = np.unique(hashes, return_inverse=True)
    assert keys.tolist() == twin_keys.tolist()
    assert inverse.tolist() == twin_inverse.reshape(-1).tolist()
    assert order.tolist() == np.argsort(twin_inverse.reshape(-1), kind="stable").tolist()
