"""Video keyframes: sampling by presentation time, borders, robust embeddings, bad input.

Footage is generated (``benchmarks.video_probe.Footage``: textured panning shots with moving
shapes and hard cuts, defined in continuous time) and encoded with libx264 into temporary files.
It is rendered at 10 frames/s where the rate does not matter: keyframes are taken at 2/s.
"""

from __future__ import annotations

import numpy as np
import pytest

from nanhu.benchmarks.video_probe import ATTACKS, Footage, encode
from nanhu.engine.errors import EmptyMediaError, LimitExceeded, MediaError, NanhuError
from nanhu.engine.video import (
    VideoParams,
    detect_borders,
    fingerprint_video,
    frame_embeddings,
    remove_borders,
    sample_frames,
)
from nanhu.engine.video.align import align_video, default_params

FPS = 10.0
SECONDS = 8.0


@pytest.fixture(scope="module")
def footage() -> Footage:
    return Footage(1, duration_s=SECONDS)


@pytest.fixture(scope="module")
def frames(footage) -> np.ndarray:
    return footage.at_fps(FPS)[0]


@pytest.fixture(scope="module")
def original(frames, tmp_path_factory):
    path = encode(tmp_path_factory.mktemp("video") / "original.mp4", frames, fps=FPS)
    return fingerprint_video(path)


@pytest.fixture(scope="module")
def unrelated_prints(tmp_path_factory) -> list:
    """Fingerprints (VideoPrint) of three other generated videos."""
    folder = tmp_path_factory.mktemp("unrelated")
    return [fingerprint_video(encode(folder / f"{seed}.mp4", Footage(
        seed, duration_s=SECONDS).at_fps(FPS)[0], fps=FPS)) for seed in (11, 12, 13)]


@pytest.fixture(scope="module")
def unrelated(unrelated_prints) -> np.ndarray:
    """Keyframe vectors of the unrelated videos, float32[n, d]."""
    return np.concatenate([p.vectors for p in unrelated_prints])


def nearest_in_time(query, reference, window_s: float = 0.3) -> np.ndarray:
    """Similarity of each query keyframe to the best reference keyframe within ``window_s``."""
    sims = query.vectors @ reference.vectors.T
    sims[np.abs(query.times_s[:, None] - reference.times_s[None, :]) > window_s] = -1.0
    return sims.max(1)


def search(query_vectors: np.ndarray, catalog: list, k: int = 16):
    """Exact k-NN over the keyframes of ``catalog`` (list of VideoPrint; ordinal = position)."""
    vectors = np.concatenate([p.vectors for p in catalog])
    ordinals = np.concatenate([np.full(len(p), o, np.int64) for o, p in enumerate(catalog)])
    times = np.concatenate([p.times_s for p in catalog])
    sims = query_vectors @ vectors.T
    top = np.argsort(-sims, axis=1)[:, :k]
    return ordinals[top], times[top], np.take_along_axis(sims, top, 1)


# --- sampling --------------------------------------------------------------------------------


def test_keyframes_follow_presentation_time_whatever_the_frame_rate(tmp_path):
    """25, 30, 60 fps and an irregular (variable-rate) encode sample the same instants."""
    footage = Footage(5, width=160, height=96, duration_s=4.0)
    rng = np.random.default_rng(0)
    irregular = np.cumsum(rng.uniform(0.02, 0.07, 120))
    irregular = irregular[irregular < 4.0] - irregular[0]
    prints = {}
    for label, fps, times in (("25", 25.0, None), ("30", 30.0, None), ("60", 60.0, None),
                              ("vfr", 30.0, irregular)):
        if times is None:
            images, times = footage.at_fps(fps, end_s=4.0)
        else:
            images = footage.frames(times)
        prints[label] = fingerprint_video(encode(tmp_path / f"{label}.mkv", images, times,
                                                 fps=fps))
    base = prints["25"]
    assert np.allclose(base.times_s, np.arange(8) * 0.5)
    for label in ("30", "60", "vfr"):
        other = prints[label]
        # The irregular encode's last frame may still be on screen at 4.0 s.
        assert np.array_equal(other.times_s[:8], base.times_s), label
        # The frame on screen at each instant differs by under a frame period between rates.
        assert np.median(np.sum(other.vectors[:8] * base.vectors, 1)) > 0.9, label


def test_sample_frames_are_small_luma_frames(frames, tmp_path):
    path = encode(tmp_path / "clip.mp4", frames, fps=FPS)
    small, times = sample_frames(path)
    params = VideoParams()
    assert small.dtype == np.uint8 and small.shape == (16, params.frame_size, params.frame_size)
    assert np.allclose(times, np.arange(16) * 0.5)
    with open(path, "rb") as handle:
        from_bytes, times_b = sample_frames(handle.read())
    assert np.array_equal(from_bytes, small) and np.array_equal(times_b, times)


def test_a_clip_cut_between_sampling_instants_still_matches(
    footage, original, unrelated_prints, tmp_path
):
    """Cut 0.25 s (half a keyframe period) off the start: no query keyframe coincides with a
    reference keyframe, yet the 5 s clip aligns at the right place."""
    images, times = footage.at_fps(FPS, start_s=2.25, end_s=7.25)
    clip = fingerprint_video(encode(tmp_path / "clip.mp4", images, times, fps=FPS))
    segments = align_video(clip.times_s, *search(clip.vectors, [original, *unrelated_prints]),
                           params=default_params())
    assert [s.reference for s in segments] == [0]
    seg = segments[0]
    assert seg.reference_start_s == pytest.approx(2.25, abs=0.5)
    assert seg.query_end_s - seg.query_start_s > 4.0
    assert seg.speed == pytest.approx(1.0, abs=0.05)


def test_a_sped_up_copy_aligns_at_its_speed(footage, original, tmp_path):
    images, times = footage.at_fps(FPS, start_s=0.5, end_s=8.0, speed=1.25)
    clip = fingerprint_video(encode(tmp_path / "fast.mp4", images, times, fps=FPS))
    segments = align_video(clip.times_s, *search(clip.vectors, [original]))
    # 12 keyframes over 6 s, their times quantised to 0.5 s: the speed is known to a few %.
    assert segments and segments[0].speed == pytest.approx(1.25, abs=0.07)
    assert segments[0].reference_start_s == pytest.approx(0.5, abs=0.6)
    assert segments[0].reference_end_s == pytest.approx(8.0, abs=0.8)


# --- robustness ------------------------------------------------------------------------------

#: attack -> (least gap between the medians of true and best unrelated similarity, least share
#: of keyframes closer to their original than to any unrelated keyframe). Measured on this
#: footage: photometric, scaling, bars, blur, noise and re-encoding keep >= 0.94 similarity
#: (gap ~0.5); crops, logos and captions keep 0.67-0.79 (gap 0.19-0.4); a one-sided 20 % crop
#: keeps only ~0.5 (gap ~0.08), the weakest case (real footage ~0.6, photographs ~0.88; see
#: benchmarks/video_probe.py).
ATTACK_BOUNDS = {name: (0.4, 1.0) for name in ATTACKS}
ATTACK_BOUNDS.update({
    "crop 10% each side": (0.15, 1.0), "crop 20% left": (0.04, 0.6),
    "logo 15% corner": (0.2, 1.0), "logo 15% centre": (0.2, 1.0),
    "caption band 15%": (0.2, 1.0), "flip+crop 10%+logo": (0.2, 1.0),
})


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_attacked_keyframes_stay_closer_to_their_original_than_unrelated_video(
    attack, frames, original, unrelated, tmp_path
):
    transform, bit_rate = ATTACKS[attack]
    attacked = transform(frames)
    attacked = attacked[:, : attacked.shape[1] // 2 * 2, : attacked.shape[2] // 2 * 2]
    query = fingerprint_video(encode(tmp_path / "attacked.mp4", attacked, fps=FPS,
                                     bit_rate=bit_rate))
    assert query is not None and len(query) >= 12
    true = nearest_in_time(query, original)
    best_unrelated = (query.vectors @ unrelated.T).max(1)
    least_gap, least_share = ATTACK_BOUNDS[attack]
    assert np.median(true) - np.median(best_unrelated) > least_gap
    assert np.mean(true > best_unrelated) >= least_share


@pytest.mark.parametrize("attack", ["crop 10% each side", "logo 15% corner", "caption band 15%",
                                    "flip+crop 10%+logo", "letterbox+gamma+noise+300kbit/s"])
def test_an_attacked_five_second_clip_aligns_with_its_reference(
    attack, footage, original, unrelated_prints, tmp_path
):
    transform, bit_rate = ATTACKS[attack]
    images, times = footage.at_fps(FPS, start_s=1.0, end_s=6.0)
    attacked = transform(images)
    attacked = attacked[:, : attacked.shape[1] // 2 * 2, : attacked.shape[2] // 2 * 2]
    clip = fingerprint_video(encode(tmp_path / "clip.mp4", attacked, times, fps=FPS,
                                    bit_rate=bit_rate))
    segments = align_video(clip.times_s, *search(clip.vectors, [original, *unrelated_prints]))
    assert [s.reference for s in segments] == [0]
    assert segments[0].reference_start_s == pytest.approx(1.0, abs=0.6)


def test_mirror_and_monotone_tone_changes_leave_the_embedding_unchanged(frames):
    keyframes = frames[::5]
    base, _ = frame_embeddings(keyframes)
    mirrored, _ = frame_embeddings(keyframes[:, :, ::-1])
    assert np.allclose(mirrored, base, atol=1e-5)
    luma = keyframes.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    # Strictly increasing: the same ranks, but only after the thumbnail's area averaging.
    toned = 30.0 + 0.7 * 255.0 * (luma / 255.0) ** 1.6
    similarity = np.sum(frame_embeddings(toned)[0] * frame_embeddings(luma)[0], 1)
    assert similarity.min() > 0.97


def test_letterbox_and_pillarbox_bars_are_found_and_removed(frames):
    luma = frames[::10].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    small = luma[:, ::2, ::2][:, :64, :128]  # any size that is a multiple of 8
    boxed = np.zeros((len(small), 96, 160), np.float32)
    boxed[:, 16:80, 16:144] = small
    boxes = detect_borders(boxed)
    assert np.all(np.abs(boxes - [16, 80, 16, 144]) <= 1)
    clean, bordered = remove_borders(small), remove_borders(boxed)
    assert np.mean(np.abs(clean - bordered)) < 6.0  # luma levels, out of 255


def test_blank_flat_and_faded_frames_are_left_out(footage, tmp_path):
    content, _ = footage.at_fps(FPS, end_s=4.0)
    n = len(content)
    black = np.zeros_like(content[:20])
    grey = np.full_like(content[:20], 128)
    fade = (content[:20] * np.linspace(0.0, 0.15, 20)[:, None, None, None]).astype(np.uint8)
    title = np.zeros_like(content[:20])
    title[:, 80:100, 120:200] = 255  # a few words on black
    images = np.concatenate([black, fade, content, grey, title])
    fp = fingerprint_video(encode(tmp_path / "blank.mp4", images, fps=FPS))
    content_start, content_end = 4.0, 4.0 + n / FPS
    assert fp is not None and len(fp) >= 6
    assert np.all((fp.times_s >= content_start - 0.01) & (fp.times_s < content_end))
    _, quality = frame_embeddings(np.concatenate([black[:1], grey[:1], fade[-1:], title[:1],
                                                  content[:1]]))
    assert np.all(quality[:4] < VideoParams().min_quality) and quality[4] > 0.8


def test_an_all_black_video_has_no_keyframes(tmp_path):
    path = encode(tmp_path / "black.mp4", np.zeros((30, 64, 64, 3), np.uint8), fps=FPS)
    assert fingerprint_video(path) is None


# --- bad input -------------------------------------------------------------------------------


def test_audio_only_media_is_refused(tmp_path):
    import av

    path = tmp_path / "tone.wav"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=8000)
        stream.layout = "mono"
        samples = (np.sin(np.arange(8000) * 0.2) * 8000).astype(np.int16)[None]
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.sample_rate = 8000
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    with pytest.raises(MediaError, match=r"tone\.wav.*no video"):
        fingerprint_video(path)


def test_absurd_frame_size_is_refused(tmp_path):
    import av

    path = tmp_path / "wide.nut"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("rawvideo", rate=1)
        stream.width, stream.height, stream.pix_fmt = 20000, 2, "gray"
        frame = av.VideoFrame.from_ndarray(np.zeros((2, 20000), np.uint8), format="gray")
        for packet in stream.encode(frame):
            container.mux(packet)
    with pytest.raises(MediaError, match=r"wide\.nut.*20000x2"):
        fingerprint_video(path)


def test_a_video_stream_without_frames_is_empty(tmp_path):
    import av

    path = tmp_path / "empty.mkv"  # a soundtrack, and a video stream that never gets a frame
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=10)
        video.width, video.height, video.pix_fmt = 64, 64, "yuv420p"
        audio = container.add_stream("pcm_s16le", rate=8000)
        audio.layout = "mono"
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 8000), np.int16), format="s16",
                                           layout="mono")
        frame.sample_rate = 8000
        for packet in [*audio.encode(frame), *audio.encode(None)]:
            container.mux(packet)
    with pytest.raises(EmptyMediaError, match=r"empty\.mkv"):
        fingerprint_video(path)


def test_a_still_image_is_not_a_video(tmp_path):
    from PIL import Image

    path = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (48, 64, 3), np.uint8)).save(path)
    with pytest.raises(MediaError, match=r"photo\.png.*still image"):
        fingerprint_video(path)


def test_garbage_and_truncated_files_raise_media_errors(frames, tmp_path):
    good = encode(tmp_path / "good.mp4", frames, fps=FPS).read_bytes()
    with pytest.raises(MediaError, match="bytes"):
        fingerprint_video(np.random.default_rng(1).bytes(5000))
    with pytest.raises(MediaError):  # moov atom at the end: the first half cannot be opened
        fingerprint_video(good[: len(good) // 2])
    # Damage in the middle of a stream: decode what can be decoded, or refuse; never crash.
    damaged = bytearray(encode(tmp_path / "good.mkv", frames, fps=FPS).read_bytes())
    damaged[len(damaged) // 3: len(damaged) // 3 + 4000] = np.random.default_rng(2).bytes(4000)
    try:
        fp = fingerprint_video(bytes(damaged))
    except NanhuError:
        return
    assert fp is None or len(fp) > 0


def test_missing_file_and_duration_limit(frames, tmp_path):
    with pytest.raises(MediaError, match="no such file"):
        fingerprint_video(tmp_path / "nope.mp4")
    path = encode(tmp_path / "long.mp4", frames, fps=FPS)
    with pytest.raises(LimitExceeded, match=r"long\.mp4"):
        fingerprint_video(path, max_duration_s=3.0)
