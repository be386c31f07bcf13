"""What a query reads: the lookup budget and the shortlist grow with the query, and the looks
(the unwarped keys first, then the resampling warps, then the rest) stop as soon as one covers
the window."""

from __future__ import annotations

import numpy as np
import pytest

from nanhu.engine.audio.keys import Landmarks
from nanhu.engine.audio.params import AudioParams
from nanhu.engine.catalog import Catalog
from nanhu.engine.fingerprint import Fingerprint, fingerprint_media
from nanhu.engine.matcher import Matcher


def record_lookups(matcher: Matcher, what) -> list:
    """Patch the matcher's postings so that every lookup appends ``what(keys, budget)`` to the
    list returned (and then looks up as before)."""
    matcher._ensure_state()
    lookup = matcher._postings.lookup
    seen: list = []

    def spy(keys, *, max_postings=None, budget=None):
        seen.append(what(keys, budget))
        return lookup(keys, max_postings=max_postings, budget=budget)

    matcher._postings.lookup = spy
    return seen


def test_the_lookup_budget_grows_with_the_query_not_per_window(registered_catalog, songs, kit):
    """A 20 s query may read four times the postings of a 5 s one: the budget is per second of
    query audio, so a short copy inside a long upload keeps the keys a short query would."""
    import dataclasses

    from nanhu.engine.audio.align import AudioMatchParams

    with Catalog(registered_catalog) as catalog:  # the full look's budget (no first look)
        matcher = Matcher(catalog, audio_match=dataclasses.replace(AudioMatchParams(),
                                                                   first_look=False))
        budgets = record_lookups(matcher, lambda keys, budget: budget)
        for seconds in (5.0, 20.0):
            clip = kit.write_clip(f"budget-{seconds:g}.wav",
                                  kit.excerpt(songs["song-1"], 10.0, 10.0 + seconds))
            matches = matcher.match(fingerprint_media(clip, query=True, video=False))
            assert matches and matches[0].reference_id == "song-1"
    per_s = matcher.audio_match.lookup_budget_per_s
    assert 4.5 * per_s <= budgets[0] <= 5.0 * per_s
    assert 19.5 * per_s <= budgets[1] <= 20.0 * per_s


def test_the_shortlist_grows_with_the_query(registered_catalog, songs, kit, monkeypatch):
    """Raw votes grow with the window for every reference: a 20 s window keeps 200 references
    where a 5 s query keeps 48, so a short copy inside a long upload is still aligned."""
    import nanhu.engine.matcher as matcher_module

    limits = []
    real, real_mask = matcher_module.shortlist, matcher_module.shortlist_mask

    def spy(key_index, ordinals, *, limit, min_votes):  # a single look's shortlist
        limits.append(limit)
        return real(key_index, ordinals, limit=limit, min_votes=min_votes)

    def spy_mask(ordinals, refs, votes, *, limit, min_votes):  # staged looks' shortlist
        limits.append(limit)
        return real_mask(ordinals, refs, votes, limit=limit, min_votes=min_votes)

    monkeypatch.setattr(matcher_module, "shortlist", spy)
    monkeypatch.setattr(matcher_module, "shortlist_mask", spy_mask)
    with Catalog(registered_catalog) as catalog:
        matcher = Matcher(catalog)
        for seconds in (5.0, 20.0):
            clip = kit.write_clip(f"shortlist-{seconds:g}.wav",
                                  kit.excerpt(songs["song-2"], 5.0, 5.0 + seconds))
            assert matcher.match(fingerprint_media(clip, query=True, video=False))
    assert limits[0] == matcher.audio_match.shortlist
    assert 190 <= limits[1] <= 200  # the keys span the clip less its last analysis window


def test_a_first_look_with_the_unwarped_keys_answers_a_plain_copy(registered_catalog, songs,
                                                                   kit):
    """Most uploads copy a work at its own speed: the first look, with the unwarped keys alone
    and a quarter of the budget, answers them; a sped-up copy is not covered by it, and the
    next look (the resampling warps' keys) finds it at its speed, as without a first look."""
    import dataclasses

    from nanhu.engine.audio.align import AudioMatchParams

    with Catalog(registered_catalog) as catalog:
        matcher = Matcher(catalog)
        looks = record_lookups(matcher, lambda keys, budget: (keys.size, budget))
        plain = kit.write_clip("plain.wav", kit.excerpt(songs["song-2"], 12.0, 17.0))
        fast = kit.write_clip("fast.wav", kit.speed_change(kit.excerpt(songs["song-3"], 20.0,
                                                                       26.0), 1.1))
        (found,) = matcher.match(fingerprint_media(plain, query=True, video=False))
        assert found.reference_id == "song-2" and found.speed == pytest.approx(1.0)
        assert len(looks) == 1  # the first look alone
        sped = matcher.match(fingerprint_media(fast, query=True, video=False))
        assert len(looks) == 3 and looks[2][0] > 8 * looks[1][0]  # then the resampling warps' keys
        per_s = matcher.audio_match.lookup_budget_per_s
        assert looks[0][1] <= 0.25 * 5.0 * per_s < looks[2][1]
        without = Matcher(catalog, audio_match=dataclasses.replace(AudioMatchParams(),
                                                                   first_look=False))
        expected = without.match(fingerprint_media(fast, query=True, video=False))
    assert sped[0].reference_id == "song-3" and sped[0].speed == pytest.approx(1.1, abs=0.03)
    assert [(m.reference_id, round(m.score, 6)) for m in sped] == [
        (m.reference_id, round(m.score, 6)) for m in expected]


def test_after_the_first_look_the_resampling_warps_come_before_the_rest(registered_catalog,
                                                                        reference_fps):
    """The looks after the first: the resampling warps' keys (speed and pitch together), kept
    when they cover the window, else the remaining warps' keys added, each look aligning over
    every hit so far and no key read twice. A copy planted under a resampling warp is answered
    by the second look; one under a pitch-shift warp needs the third, and is found as the full
    look finds it."""
    import dataclasses

    from nanhu.engine.audio.align import AudioMatchParams

    ref = reference_fps["song-1"].audio
    fps = 8000 / 128
    inside = (ref.frames >= 10 * fps) & (ref.frames < 16 * fps)
    true_hashes, true_frames = ref.hashes[inside], ref.frames[inside] - int(10 * fps)
    rng = np.random.default_rng(4)
    speeds = np.array([1.0, 1.05, 1.0], np.float32)
    pitches = np.array([1.0, 1.05, 1.0595], np.float32)

    def planted(warp: int) -> Fingerprint:
        noise = [rng.integers(0, 1 << 30, true_hashes.size).astype(np.uint32)
                 for _ in range(2)]
        hashes = np.concatenate([true_hashes, *noise])
        frames = np.concatenate([true_frames] * 3).astype(np.int32)
        index = np.concatenate([np.full(true_hashes.size, w, np.uint8)
                                for w in [warp] + [w for w in range(3) if w != warp]])
        return Fingerprint(duration_s=6.0, audio=Landmarks(hashes, frames, index, speeds,
                                                           pitches),
                           audio_params_tag=AudioParams().tag())

    with Catalog(registered_catalog) as catalog:
        matcher = Matcher(catalog)
        looks = record_lookups(matcher, lambda keys, budget: set(keys.tolist()))
        (resampled,) = matcher.match(planted(1))
        assert resampled.reference_id == "song-1" and len(looks) == 2
        looks.clear()
        (shifted,) = matcher.match(planted(2))
        assert shifted.reference_id == "song-1" and len(looks) == 3
        assert not (looks[0] & looks[1] or looks[0] & looks[2] or looks[1] & looks[2])
        full = Matcher(catalog, audio_match=dataclasses.replace(AudioMatchParams(),
                                                                staged_looks=False))
        (whole,) = full.match(planted(2))
    assert (shifted.query_start_s, shifted.query_end_s, shifted.reference_start_s) == (
        whole.query_start_s, whole.query_end_s, whole.reference_start_s)
    assert shifted.score == pytest.approx(whole.score, abs=1e-3)
