"""fingerprint_media: a file with audio and video is opened and demuxed once, and its
fingerprint equals the one the audio-alone and video-alone passes give."""

from __future__ import annotations

import av
import numpy as np
import pytest

from nanhu.benchmarks.synth import music_like, write_video
from nanhu.benchmarks.video_probe import Footage
from nanhu.engine import media
from nanhu.engine.audio.keys import audio_landmarks
from nanhu.engine.audio.params import AudioParams
from nanhu.engine.errors import EmptyMediaError
from nanhu.engine.fingerprint import fingerprint_media
from nanhu.engine.video import fingerprint_video

CLIP_S = 12.0
#: file name -> (video codec, audio codec)
AV_FILES = {"clip.mp4": ("libx264", "aac"), "clip.mkv": ("libx264", "libopus"),
            "clip.webm": ("libvpx", "libopus")}


@pytest.fixture(scope="module")
def av_files(kit, tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("one-pass")
    audio = music_like(CLIP_S, seed=31, sample_rate=kit.rate)
    frames, _ = Footage(4, width=160, height=96, duration_s=CLIP_S).at_fps(10.0)
    return {name: write_video(folder / name, frames, 10, audio=audio, sample_rate=kit.rate,
                              codec=codec, audio_codec=audio_codec)
            for name, (codec, audio_codec) in AV_FILES.items()}


@pytest.fixture
def opens(monkeypatch) -> list[int]:
    """Counts the containers PyAV opens."""
    count = [0]
    real_open = av.open

    def counting_open(*args, **kwargs):
        count[0] += 1
        return real_open(*args, **kwargs)

    monkeypatch.setattr(av, "open", counting_open)
    return count


@pytest.mark.parametrize("query", [False, True], ids=["reference", "query"])
@pytest.mark.parametrize("name", sorted(AV_FILES))
def test_one_pass_equals_the_audio_and_video_passes(av_files, name, query, opens):
    path = av_files[name]
    params = AudioParams()
    warps = params.query_warps if query else ((1.0, 1.0),)
    audio, audio_s = audio_landmarks(media.decode_audio(path, sample_rate=params.sample_rate),
                                     params=params, warps=warps)
    video = fingerprint_video(path)
    assert opens[0] == 2 and len(audio) > 100 and video is not None and len(video) > 10

    fp = fingerprint_media(path, query=query)
    assert opens[0] == 3  # one open, one demux pass, for the probe, the audio and the video
    for field in ("hashes", "frames", "speed_index", "speeds", "pitches"):
        np.testing.assert_array_equal(getattr(fp.audio, field), getattr(audio, field))
    if query:
        # Queries decode at 128x128 for their framing views (engine.video.framing); the whole
        # frame is its 2x2 mean, which describes each keyframe as the 64x64 decode does.
        assert fp.video.views is not None
        whole = fp.video.primary()
        np.testing.assert_array_equal(whole.times_s, video.times_s)
        assert np.min(np.sum(whole.vectors * video.vectors, 1)) > 0.97
    else:
        assert fp.video.views is None
        np.testing.assert_array_equal(fp.video.vectors, video.vectors)
        np.testing.assert_array_equal(fp.video.times_s, video.times_s)
    assert fp.video.params_tag == video.params_tag
    assert fp.duration_s == max(audio_s, float(video.times_s.max()) + 0.5)


def test_one_modality_alone_is_fingerprinted_as_before(av_files, kit, tmp_path):
    path = av_files["clip.mkv"]
    audio_only = fingerprint_media(path, video=False)
    assert audio_only.video is None
    np.testing.assert_array_equal(audio_only.audio.hashes, fingerprint_media(path).audio.hashes)
    mute = kit.write_video(tmp_path / "mute.mp4", 4.0, audio=None)
    np.testing.assert_array_equal(fingerprint_media(mute).video.vectors,
                                  fingerprint_video(mute).vectors)


def test_silence_with_video_keeps_the_video_and_with_black_frames_is_refused(kit, tmp_path):
    silent = kit.write_video(tmp_path / "silent.mp4", 6.0, audio=np.zeros(6 * kit.rate, np.float32))
    fp = fingerprint_media(silent)
    assert fp.video is not None and len(fp.video)
    blank = write_video(tmp_path / "blank.mp4", np.zeros((24, 64, 64, 3), np.uint8), 4,
                        audio=np.zeros(6 * kit.rate, np.float32), sample_rate=kit.rate)
    with pytest.raises(EmptyMediaError, match="nothing to fingerprint"):
        fingerprint_media(blank)
