"""Decoding with PyAV: every codec we promise, from paths and bytes, streamed in chunks."""

from __future__ import annotations

import hashlib
import io
import logging
import wave

import av
import numpy as np
import pytest
from PIL import Image
from scipy import signal

from nanhu.benchmarks.synth import music_like
from nanhu.engine import media
from nanhu.engine.errors import EmptyMediaError, LimitExceeded, MediaError

FP_RATE = 8000  # the fingerprint rate the engine decodes to
CLIP_S = 6.0

#: file name -> (codec names probe must report: audio, video or None)
AUDIO_FILES = {
    "clip.mp3": ("mp3", None),
    "clip.m4a": ("aac", None),
    "clip.aac": ("aac", None),
    "clip.ogg": ("vorbis", None),
    "clip.opus": ("opus", None),
    "clip.flac": ("flac", None),
    "clip.wav": ("pcm_s16le", None),
    "clip.amr": ("amrnb", None),
    "clip.mka": ("opus", None),
}
#: file name -> (video codec, audio codec, frame size) for the containers with a soundtrack
VIDEO_FILES = {
    "clip.mp4": ("libx264", "aac", (64, 64)),
    "clip.mkv": ("libx264", "libopus", (64, 64)),
    "clip.webm": ("libvpx", "libopus", (64, 64)),
    "clip.3gp": ("h263", "aac", (144, 176)),
}
ALL_FILES = [*AUDIO_FILES, *VIDEO_FILES]


@pytest.fixture(scope="module")
def clip(kit) -> np.ndarray:
    return music_like(CLIP_S, seed=11, sample_rate=kit.rate)


@pytest.fixture(scope="module")
def clip_files(kit, clip, tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("codecs")
    files = {name: kit.write_clip(folder / name, clip) for name in AUDIO_FILES}
    for name, (codec, audio_codec, size) in VIDEO_FILES.items():
        files[name] = kit.write_video(folder / name, CLIP_S, audio=clip, codec=codec,
                                      audio_codec=audio_codec, size=size)
    return files


def best_alignment(decoded: np.ndarray, original: np.ndarray, max_lag: int) -> tuple[int, float]:
    """(lag in samples, correlation coefficient) of the best alignment within ``max_lag``."""
    n = min(decoded.size, original.size)
    a, b = decoded[:n].astype(np.float64), original[:n].astype(np.float64)
    corr = signal.correlate(a, b, mode="full", method="fft")
    lags = np.arange(-n + 1, n)
    window = np.abs(lags) <= max_lag
    lag = int(lags[window][np.argmax(corr[window])])
    a, b = a[max(0, lag):], b[max(0, -lag):]
    m = min(a.size, b.size)
    return lag, float(np.corrcoef(a[:m], b[:m])[0, 1])


def spectrogram_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Correlation of log power spectrograms (100-3400 Hz) of two aligned signals at 8 kHz."""
    m = min(a.size, b.size)

    def log_power(x: np.ndarray) -> np.ndarray:
        freqs, _, spec = signal.stft(x[:m], FP_RATE, nperseg=512)
        band = (freqs > 100) & (freqs < 3400)
        return np.log10(np.abs(spec[band]) ** 2 + 1e-6).ravel()

    return float(np.corrcoef(log_power(a), log_power(b))[0, 1])


@pytest.mark.parametrize("name", ALL_FILES)
def test_every_codec_decodes_to_the_original_signal(name, clip_files, clip, kit):
    samples = media.load_audio(clip_files[name], sample_rate=FP_RATE)
    assert samples.dtype == np.float32 and samples.ndim == 1
    assert samples.size / FP_RATE == pytest.approx(CLIP_S, abs=0.05)
    original = signal.resample_poly(clip.astype(np.float64), FP_RATE, kit.rate)
    lag, correlation = best_alignment(samples, original, max_lag=int(0.2 * FP_RATE))
    # ADTS keeps the AAC encoder's priming samples (23 ms); AMR-NB adds 5 ms.
    assert abs(lag) <= 0.03 * FP_RATE
    if name.endswith(".amr"):
        # AMR-NB is a speech codec at 12.2 kbit/s: it keeps the spectrum, not the waveform.
        aligned = samples[max(0, lag):]
        assert spectrogram_similarity(aligned, original) >= 0.8
        unrelated = signal.resample_poly(music_like(CLIP_S, seed=12, sample_rate=kit.rate)
                                         .astype(np.float64), FP_RATE, kit.rate)
        assert spectrogram_similarity(aligned, unrelated) < 0.3
    else:
        assert correlation >= 0.95


@pytest.mark.parametrize("name", ALL_FILES)
def test_probe_names_the_streams(name, clip_files):
    info = media.probe(clip_files[name])
    assert info.has_audio
    assert info.duration_s == pytest.approx(CLIP_S, abs=0.1)
    if name in AUDIO_FILES:
        assert AUDIO_FILES[name][0] in info.audio_codec
        assert not info.has_video and info.video_codec is None
    else:
        assert info.has_video and (info.height, info.width) == VIDEO_FILES[name][2]


@pytest.mark.parametrize("name", ALL_FILES)
def test_bytes_decode_exactly_like_the_path(name, clip_files):
    path = clip_files[name]
    from_path = media.load_audio(path, sample_rate=FP_RATE)
    for data in (path.read_bytes(), bytearray(path.read_bytes()), memoryview(path.read_bytes())):
        np.testing.assert_array_equal(media.load_audio(data, sample_rate=FP_RATE), from_path)


@pytest.mark.parametrize("ref_id", ["song-0", "song-1"])  # mp3 and flac, 40 s each
def test_long_input_streams_in_chunks_of_the_requested_size(ref_id, song_files):
    source = song_files[ref_id].read_bytes() if ref_id == "song-0" else song_files[ref_id]
    chunk_len = 3 * FP_RATE
    chunks = list(media.decode_audio(source, sample_rate=FP_RATE, chunk_s=3.0))
    assert len(chunks) >= 13
    assert all(c.size == chunk_len for c in chunks[:-1])
    assert 0 < chunks[-1].size <= chunk_len
    whole = media.load_audio(source, sample_rate=FP_RATE)
    np.testing.assert_array_equal(np.concatenate(chunks), whole)
    assert whole.size / FP_RATE == pytest.approx(40.0, abs=0.05)


def test_decoding_stops_past_the_duration_limit(song_files):
    chunks = media.decode_audio(song_files["song-1"], sample_rate=FP_RATE, chunk_s=2.0,
                                max_duration_s=5.0)
    with pytest.raises(LimitExceeded, match="longer than the limit of 5 s"):
        list(chunks)
    assert media.load_audio(song_files["song-1"], sample_rate=FP_RATE, max_duration_s=60).size


def test_content_digest_is_sha256_of_the_bytes(clip_files):
    path = clip_files["clip.flac"]
    expected = hashlib.sha256(path.read_bytes()).hexdigest()
    assert media.content_digest(path) == media.content_digest(str(path)) == expected
    assert media.content_digest(path.read_bytes()) == expected


def png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((16, 16, 3), 200, np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("empty.mp3", b"", "file is empty"),
        ("random.mp3", np.random.default_rng(1).bytes(40_000), "not a media file"),
        # FFmpeg reads .txt as ANSI art and a PNG as a one-frame video: neither is media.
        ("notes.txt", b"these are not the droids you are looking for\n" * 50, "text"),
        ("picture.png", png_bytes(), "still image"),
    ],
)
def test_non_media_is_refused_with_the_file_and_the_reason(name, content, reason, tmp_path):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(MediaError, match=reason) as caught:
        media.load_audio(path, sample_rate=FP_RATE)
    assert str(caught.value).startswith(f"{path}: ")
    with pytest.raises(MediaError, match=reason):
        media.probe(path)
    # Bytes have no name and no suffix to guess from: refused all the same.
    with pytest.raises(MediaError, match=rf"^<{len(content)} bytes>: "):
        media.load_audio(content, sample_rate=FP_RATE)


def test_unsupported_codec_is_refused_by_name(kit, tmp_path):
    path = kit.unsupported_codec_wav(tmp_path / "odd.wav")
    info = media.probe(path)
    assert info.has_audio and info.audio_codec is None
    with pytest.raises(MediaError, match=f"{path}: its audio codec is not supported"):
        media.load_audio(path, sample_rate=FP_RATE)


def test_missing_file_and_directory_are_refused(tmp_path):
    with pytest.raises(MediaError, match=f"{tmp_path / 'nope.wav'}: no such file"):
        media.load_audio(tmp_path / "nope.wav", sample_rate=FP_RATE)
    with pytest.raises(MediaError, match="is a directory"):
        media.load_audio(tmp_path, sample_rate=FP_RATE)
    with pytest.raises(MediaError, match="no data"):
        media.load_audio(b"", sample_rate=FP_RATE)


def test_video_without_audio_track_has_no_audio_to_decode(kit, tmp_path):
    path = kit.write_video(tmp_path / "mute.mp4", 3.0, audio=None)
    info = media.probe(path)
    assert info.has_video and not info.has_audio
    with pytest.raises(MediaError, match="has no audio track"):
        media.load_audio(path, sample_rate=FP_RATE)


def test_truncated_mp4_is_refused(clip_files, tmp_path):
    data = clip_files["clip.mp4"].read_bytes()
    path = tmp_path / "half.mp4"
    path.write_bytes(data[: len(data) // 2])  # the index (moov) is at the end: gone
    with pytest.raises(MediaError, match=str(path)):
        media.load_audio(path, sample_rate=FP_RATE)


def test_truncated_mp3_decodes_what_is_there_and_warns(song_files, tmp_path, caplog):
    # MP3 is a stream of self-contained frames: the first half of a file is a playable MP3 of
    # the first half of the song. The engine decodes it (an upload cut short still holds what
    # it copied) and warns that the header promised more.
    data = song_files["song-0"].read_bytes()
    path = tmp_path / "half.mp3"
    path.write_bytes(data[: len(data) // 2])
    full = media.load_audio(song_files["song-0"], sample_rate=FP_RATE)
    with caplog.at_level(logging.WARNING, logger="nanhu.engine.media"):
        half = media.load_audio(path, sample_rate=FP_RATE)
    assert half.size / FP_RATE == pytest.approx(20.0, abs=1.0)
    np.testing.assert_allclose(half[: 15 * FP_RATE], full[: 15 * FP_RATE], atol=1e-6)
    assert any(str(path) in r.getMessage() and "truncated" in r.getMessage()
               for r in caplog.records)


def test_complete_files_do_not_warn_about_truncation(clip_files, caplog):
    with caplog.at_level(logging.WARNING, logger="nanhu.engine.media"):
        for path in clip_files.values():
            media.load_audio(path, sample_rate=FP_RATE)
    assert not [r for r in caplog.records if r.name == "nanhu.engine.media"]


def test_silence_decodes_to_zeros_and_an_empty_track_to_an_error(kit, tmp_path):
    silence = media.load_audio(kit.write_clip(tmp_path / "silence.wav", np.zeros(3 * kit.rate)),
                               sample_rate=FP_RATE)
    assert silence.size == 3 * FP_RATE and not silence.any()
    empty = tmp_path / "empty.wav"
    with wave.open(str(empty), "wb") as handle:  # a valid header and no samples
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(8000)
    with pytest.raises(EmptyMediaError, match="decodes to no samples"):
        media.load_audio(empty, sample_rate=FP_RATE)


def test_pyav_errors_never_escape(tmp_path):
    # A valid WAV header followed by garbage: whatever PyAV makes of it, the caller sees either
    # samples or a MediaError, never an av.FFmpegError.
    header = io.BytesIO()
    with av.open(header, "w", format="wav") as container:
        stream = container.add_stream("pcm_s16le", rate=8000)
        stream.layout = "mono"
    data = header.getvalue() + np.random.default_rng(2).bytes(20_000)
    try:
        samples = media.load_audio(data, sample_rate=FP_RATE)
    except MediaError:
        return
    assert samples.dtype == np.float32
