"""Fingerprints are checked field by field before they are stored or matched (issue 15)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from nanhu.engine.audio.keys import Landmarks
from nanhu.engine.audio.params import AudioParams
from nanhu.engine.catalog import Catalog
from nanhu.engine.errors import InvalidArgument, VersionMismatch
from nanhu.engine.fingerprint import Fingerprint, VideoPrint
from nanhu.engine.validate import MIN_REFERENCE_S, validate_fingerprint
from nanhu.engine.video import VideoParams

DIM = VideoParams().dim


def video_print(n: int = 20, *, seed: int = 0, dim: int = DIM) -> VideoPrint:
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((n, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return VideoPrint(vectors, np.arange(n, dtype=np.float32) * 0.5, VideoParams().tag())


def audio_print(n: int = 200, *, seed: int = 0, duration_s: float = 30.0) -> Landmarks:
    rng = np.random.default_rng(seed)
    fps = AudioParams().frames_per_second
    frames = np.sort(rng.integers(0, int(duration_s * fps), n)).astype(np.int32)
    return Landmarks(rng.integers(0, 1 << 22, n).astype(np.uint32), frames,
                     np.zeros(n, np.uint8), np.ones(1, np.float32), np.ones(1, np.float32))


def fingerprint(*, audio: bool = True, video: bool = True, duration_s: float = 30.0,
                seed: int = 0) -> Fingerprint:
    return Fingerprint(duration_s=duration_s, digest=f"d{seed}",
                       audio=audio_print(seed=seed) if audio else None,
                       audio_params_tag=AudioParams().tag() if audio else "",
                       video=video_print(seed=seed) if video else None)


def with_video(fp: Fingerprint, **changes) -> Fingerprint:
    return dataclasses.replace(fp, video=dataclasses.replace(fp.video, **changes))


def with_audio(fp: Fingerprint, **changes) -> Fingerprint:
    return dataclasses.replace(fp, audio=dataclasses.replace(fp.audio, **changes))


def _vectors(fn):
    def change(fp):
        vectors = fp.video.vectors.copy()
        fn(vectors)
        return with_video(fp, vectors=vectors)
    return change


def _times(fn):
    def change(fp):
        times = fp.video.times_s.copy()
        fn(times)
        return with_video(fp, times_s=times)
    return change


def _set(index, value):
    def fn(a):
        a[index] = value
    return fn


POISONS = {  # name: (change, field named in the message)
    "video dimension 3": (lambda fp: with_video(fp, vectors=video_print(dim=3).vectors), "video.dim"),
    "vector norm 1e6": (_vectors(lambda v: v.__imul__(1e6)), "video.vectors"),
    "zero vector": (_vectors(_set(3, 0.0)), "video.vectors"),
    "NaN in a vector": (_vectors(_set((2, 5), np.nan)), "video.vectors"),
    "NaN time": (_times(_set(4, np.nan)), "video.times_s"),
    "infinite time": (_times(_set(4, np.inf)), "video.times_s"),
    "very negative time": (_times(_set(0, -1e9)), "video.times_s"),
    "unsorted times": (_times(lambda t: t.__setitem__(slice(None), t[::-1].copy())),
                       "video.times_s"),
    "time past duration": (_times(_set(-1, 1e6)), "video.times_s"),
    "times and vectors differ": (lambda fp: with_video(fp, times_s=fp.video.times_s[:-1]),
                                 "video.times_s"),
    "unknown video tag": (lambda fp: with_video(fp, params_tag="garbage"), "video.params_tag"),
    "NaN duration": (lambda fp: dataclasses.replace(fp, duration_s=float("nan")), "duration_s"),
    "negative duration": (lambda fp: dataclasses.replace(fp, duration_s=-1.0), "duration_s"),
    "frames and hashes differ": (lambda fp: with_audio(fp, frames=fp.audio.frames[:-1]),
                                 "audio.frames"),
    "negative frame": (lambda fp: with_audio(fp, frames=fp.audio.frames - 10_000),
                       "audio.frames"),
    "frame past duration": (lambda fp: with_audio(fp, frames=fp.audio.frames + 10**7),
                            "audio.frames"),
    "speed_index past speeds": (lambda fp: with_audio(
        fp, speed_index=np.full(len(fp.audio), 3, np.uint8)), "audio.speed_index"),
    "NaN speed": (lambda fp: with_audio(fp, speeds=np.array([np.nan], np.float32)),
                  "audio.speeds"),
    "negative pitch": (lambda fp: with_audio(fp, pitches=np.array([-1.0], np.float32)),
                       "audio.pitches"),
    "hash out of range": (lambda fp: with_audio(
        fp, hashes=np.full(len(fp.audio), 1 << 31, np.uint32)), "audio.hashes"),
    "missing audio tag": (lambda fp: dataclasses.replace(fp, audio_params_tag=""),
                          "audio.params_tag"),
    "digest with a newline": (lambda fp: dataclasses.replace(fp, digest="ab\ncd"), "digest"),
}


def test_a_real_shaped_fingerprint_passes_unchanged():
    fp = fingerprint()
    assert validate_fingerprint(fp, for_reference=True) is fp
    assert validate_fingerprint(fp, for_reference=False) is fp


@pytest.mark.parametrize("name", sorted(POISONS))
@pytest.mark.parametrize("for_reference", [True, False])
def test_poisoned_fingerprints_are_refused_naming_the_field(name, for_reference):
    change, field = POISONS[name]
    with pytest.raises(InvalidArgument) as caught:
        validate_fingerprint(change(fingerprint()), what="print of x", for_reference=for_reference)
    assert str(caught.value).startswith(f"print of x: {field}"), str(caught.value)


def test_another_video_version_is_a_version_mismatch():
    with pytest.raises(VersionMismatch, match="video-v99"):
        validate_fingerprint(with_video(fingerprint(), params_tag="video-v99"),
                             for_reference=False)


def test_norms_close_to_one_are_renormalised_not_refused():
    fp = fingerprint()
    nudged = with_video(fp, vectors=fp.video.vectors * np.float32(1.004))
    out = validate_fingerprint(nudged, for_reference=True)
    assert out is not nudged
    np.testing.assert_allclose(np.linalg.norm(out.video.vectors, axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(out.video.vectors, fp.video.vectors, atol=1e-6)


def test_references_must_be_at_speed_one_but_queries_need_not():
    fast = with_audio(fingerprint(), speeds=np.array([1.05], np.float32),
                      pitches=np.array([1.05], np.float32))
    with pytest.raises(InvalidArgument, match="audio.speeds.*speed 1.0"):
        validate_fingerprint(fast, for_reference=True)
    assert validate_fingerprint(fast, for_reference=False) is fast


def test_references_too_short_to_ever_match_are_refused():
    short = fingerprint(duration_s=MIN_REFERENCE_S - 0.5, audio=False)
    short = with_video(short, times_s=np.linspace(0, 1.0, len(short.video)).astype(np.float32))
    with pytest.raises(InvalidArgument, match="duration_s .* shorter than the shortest"):
        validate_fingerprint(short, for_reference=True)
    assert validate_fingerprint(short, for_reference=False) is short  # a short query is fine
    one_frame = dataclasses.replace(fingerprint(audio=False), video=video_print(1))
    with pytest.raises(InvalidArgument, match="video has 1 keyframe.*at least 4"):
        validate_fingerprint(one_frame, for_reference=True)


@pytest.mark.parametrize("name", ["video dimension 3", "vector norm 1e6", "NaN time"])
def test_catalog_add_refuses_poison_and_screening_still_works(catalog_dir, name):
    from nanhu.engine.matcher import Matcher

    good = fingerprint(seed=1)
    with Catalog(catalog_dir, writable=True, create=True) as writer:
        writer.add("good", good)
        writer.commit()
        with pytest.raises(InvalidArgument):
            writer.add("poison", POISONS[name][0](fingerprint(seed=2)))
        writer.commit()
        assert writer.stats()["references"] == 1
    with Catalog(catalog_dir) as reader:
        query = dataclasses.replace(good, audio=None, audio_params_tag="")
        matches = Matcher(reader).match(query)
    assert [m.reference_id for m in matches][:1] == ["good"]


# --- defence in depth: bad rows that got into a catalog anyway fail alone -------------------
STORED_POISONS = {
    "dimension 3": lambda fp: with_video(fp, vectors=video_print(5, dim=3).vectors,
                                         times_s=fp.video.times_s[:5]),
    "norm 1e6": _vectors(lambda v: v.__imul__(1e6)),
    "NaN times": _times(lambda t: t.__setitem__(slice(None), np.nan)),
    "very negative times": _times(lambda t: t.__setitem__(slice(None), -1e9)),
}


@pytest.mark.parametrize("name", sorted(STORED_POISONS))
def test_a_bad_stored_reference_fails_alone_in_matching_and_compaction(catalog_dir, monkeypatch,
                                                                       name):
    from nanhu.engine import catalog as catalog_module
    from nanhu.engine.matcher import Matcher

    goods = {f"good-{seed}": fingerprint(seed=seed, audio=False) for seed in (1, 2)}
    poison = STORED_POISONS[name](fingerprint(seed=9, audio=False))
    with Catalog(catalog_dir, writable=True, create=True) as writer:
        with monkeypatch.context() as patched:  # as if it had been written before validation
            patched.setattr(catalog_module, "validate_fingerprint", lambda fp, **_: fp)
            writer.add("poison", poison)
            writer.commit()
        for ref_id, fp in goods.items():
            writer.add(ref_id, fp)
            writer.commit()

    def best_matches() -> list[str]:
        with Catalog(catalog_dir) as reader:
            matcher = Matcher(reader)
            return [matcher.match(fp)[0].reference_id for fp in goods.values()]

    assert best_matches() == list(goods)
    with Catalog(catalog_dir, writable=True) as writer:
        writer.compact()
    assert best_matches() == list(goods)
    with Catalog(catalog_dir) as reader:  # compaction dropped the unusable rows
        assert len(reader.vectors()) == sum(len(fp.video) for fp in goods.values())


def test_a_query_of_the_wrong_dimension_is_invalid_not_a_crash(catalog_dir):
    from nanhu.engine.matcher import Matcher

    with Catalog(catalog_dir, writable=True, create=True) as writer:
        writer.add("good", fingerprint(seed=1, audio=False))
        writer.commit()
    bad = with_video(fingerprint(seed=2, audio=False), vectors=video_print(dim=3).vectors)
    with Catalog(catalog_dir) as reader, pytest.raises(InvalidArgument, match="video.dim is 3"):
        Matcher(reader).match(bad)
