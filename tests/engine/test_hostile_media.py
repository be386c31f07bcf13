"""Hostile media (issue 15): damaged files give a fingerprint or a NanhuError, never a crash,
and timestamps cannot make tiny files cost unbounded work."""

from __future__ import annotations

import re

import numpy as np
import pytest

from nanhu.benchmarks.synth import music_like
from nanhu.benchmarks.video_probe import Footage, encode
from nanhu.engine.errors import LimitExceeded, MediaError, NanhuError
from nanhu.engine.fingerprint import Fingerprint, fingerprint_media
from nanhu.engine.video import MAX_HOLD_S, VideoParams, fingerprint_video

CLIP_S = 2.0
#: every container the suite makes: file name -> (video codec, audio codec) or None for audio
CONTAINERS = {
    "m.mp3": None, "m.m4a": None, "m.aac": None, "m.ogg": None, "m.opus": None, "m.flac": None,
    "m.wav": None, "m.amr": None, "m.mka": None,
    "v.mp4": ("libx264", "aac"), "v.mkv": ("libx264", "libopus"), "v.webm": ("libvpx", "libopus"),
    "v.3gp": ("h263", "aac"),
}
FLIPS, TRUNCATIONS, TAGS = 24, 8, 4
#: four-character codes of boxes, sample entries and chunks, as they appear in the files
_FOURCC = re.compile(rb"(?:avc1|avcC|mp4a|esds|stsd|stsz|stco|moov|trak|mdat|ftyp|s263|Opus|"
                     rb"OggS|fLaC|RIFF|WAVE|fmt |data|#!AMR|V_MPEG4|A_OPUS|V_VP8|ID3|Xing)")


@pytest.fixture(scope="module")
def originals(kit, tmp_path_factory) -> dict[str, bytes]:
    folder = tmp_path_factory.mktemp("hostile")
    audio = music_like(CLIP_S, seed=21, sample_rate=kit.rate)
    files = {}
    for name, video in CONTAINERS.items():
        if video is None:
            path = kit.write_clip(folder / name, audio)
        else:
            size = (144, 176) if video[0] == "h263" else (64, 64)
            path = kit.write_video(folder / name, CLIP_S, audio=audio, codec=video[0],
                                   audio_codec=video[1], size=size)
        files[name] = path.read_bytes()
    return files


def mutations(data: bytes, seed: int):
    """(label, bytes): bit flips (half of them in the first and last 4 KB, where headers and
    indexes live), truncations, and one changed letter in each of a few four-character codes."""
    rng = np.random.default_rng(seed)
    for i in range(FLIPS):
        mutated = bytearray(data)
        for _ in range(int(rng.integers(1, 9))):
            if i % 2:
                pos = int(rng.integers(0, len(data)))
            else:
                edge = min(4096, len(data))
                pos = int(rng.integers(0, edge))
                pos = pos if rng.random() < 0.5 else len(data) - 1 - pos
            mutated[pos] ^= 1 << int(rng.integers(0, 8))
        yield f"flip-{i}", bytes(mutated)
    for i in range(TRUNCATIONS):
        yield f"cut-{i}", data[: int(rng.integers(1, len(data)))]
    for match in list(_FOURCC.finditer(data))[:TAGS]:
        mutated = bytearray(data)
        mutated[match.start()] = (mutated[match.start()] + 1) % 256  # avc1 -> bvc1, ...
        yield f"tag-{match.group().decode(errors='replace')}", bytes(mutated)


@pytest.mark.parametrize("name", sorted(CONTAINERS))
def test_mutated_files_give_a_fingerprint_or_a_clean_error(originals, name):
    tried = 0
    for label, data in mutations(originals[name], seed=sum(name.encode())):
        tried += 1
        try:
            result = fingerprint_media(data, query=True, max_duration_s=60.0)
        except NanhuError as exc:
            assert str(exc), f"{name} {label}: an error without a message"
            continue
        except Exception as exc:  # noqa: BLE001 - the point of the test
            pytest.fail(f"{name} {label}: {type(exc).__name__}: {exc}")
        assert isinstance(result, Fingerprint)
    assert tried >= FLIPS + TRUNCATIONS


def test_an_undecodable_video_codec_leaves_the_audio(originals):
    """The probe's case: the sample entry's fourcc avc1 -> evc1 crashed with
    ``'NoneType' object has no attribute 'width'``."""
    data = originals["v.mp4"].replace(b"avc1", b"evc1")
    fp = fingerprint_media(data, query=True)
    assert fp.video is None and fp.audio is not None and len(fp.audio)
    with pytest.raises(MediaError, match="no video stream"):
        fingerprint_video(data)


def test_the_cli_answers_every_file_after_a_hostile_one(run_cli, registered_catalog, originals,
                                                        song_files, tmp_path):
    hostile = tmp_path / "evc1.mp4"
    hostile.write_bytes(originals["v.mp4"].replace(b"avc1", b"evc1").replace(b"mp4a", b"mp4b"))
    junk = tmp_path / "cut.mkv"
    junk.write_bytes(originals["v.mkv"][:300])
    files = [hostile, junk, song_files["song-1"]]
    result = run_cli("query", "--json", "--catalog", registered_catalog, *files)
    answers = result.json_lines
    assert [a["query"] for a in answers] == [str(f) for f in files]
    assert answers[-1]["matches"][0]["reference_id"] == "song-1"
    assert result.code in (0, 3)


# --- bounded work -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def frames() -> np.ndarray:
    return Footage(3, duration_s=2.0).at_fps(2.0)[0][:4]


@pytest.mark.parametrize("times", [(0.0, 0.5, 1e6, 1e6 + 0.5), (0.0, 0.5, 1e6)],
                         ids=["gap-in-the-middle", "gap-before-the-last-frame"])
def test_a_far_timestamp_costs_keyframes_per_decoded_frame_not_per_second(frames, tmp_path,
                                                                          times):
    """A tiny mkv whose third frame is stamped at 1e6 s: before, 2 keyframes per second of the
    gap (it ran for minutes, past 1 GB); now each decoded frame fills at most MAX_HOLD_S."""
    path = encode(tmp_path / "gap.mkv", frames[: len(times)], np.array(times), fps=2.0)
    assert path.stat().st_size < 50_000
    video = fingerprint_video(path)
    bound = len(times) * (MAX_HOLD_S * VideoParams().sample_fps + 1)
    assert video is not None and len(video) <= bound
    assert video.times_s.max() >= 1e6 - 1  # the far frame is still sampled, at its own time
    with pytest.raises(LimitExceeded, match="longer than the limit"):
        fingerprint_media(path, max_duration_s=3 * 3600.0)


def test_ordinary_holds_are_still_sampled(frames, tmp_path):
    """A frame shown for 10 s (a slide) still yields a keyframe every half second."""
    path = encode(tmp_path / "slide.mkv", frames[:3], np.array([0.0, 10.0, 10.5]), fps=2.0)
    video = fingerprint_video(path)
    assert video is not None
    assert np.allclose(np.diff(video.times_s[video.times_s < 10]), 0.5)
