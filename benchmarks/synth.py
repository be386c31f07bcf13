"""Generated media for tests and attacks: music-like signals and PyAV encoders.

Everything here is deterministic given its seed, so tests and benchmark queries repeat exactly.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

#: (container format, codec, sample rate, extra codec options) per file suffix
AUDIO_FORMATS: dict[str, tuple[str, str, int, dict]] = {
    ".wav": ("wav", "pcm_s16le", 44100, {}),
    ".flac": ("flac", "flac", 44100, {}),
    ".mp3": ("mp3", "libmp3lame", 44100, {}),
    ".m4a": ("ipod", "aac", 44100, {}),
    ".aac": ("adts", "aac", 44100, {}),
    # FFmpeg's native Vorbis encoder is experimental and stereo-only.
    ".ogg": ("ogg", "vorbis", 44100, {"strict": "experimental", "layout": "stereo"}),
    ".opus": ("ogg", "libopus", 48000, {}),
    ".amr": ("amr", "libopencore_amrnb", 8000, {}),
    ".mka": ("matroska", "libopus", 48000, {}),
}


def music_like(seconds: float, *, seed: int, sample_rate: int = 22050) -> np.ndarray:
    """A melody of harmonic notes with percussive onsets and a little noise.

    Returns samples : ndarray [shape=(round(seconds * sample_rate),)], float32, peak ~0.5.
    Different seeds give unrelated melodies (notes drawn from 4 octaves).
    """
    rng = np.random.default_rng(seed)
    n = int(round(seconds * sample_rate))
    t = np.arange(n) / sample_rate
    out = np.zeros(n, np.float64)
    note_starts = np.cumsum(rng.uniform(0.12, 0.45, int(seconds / 0.12) + 2))
    note_starts = note_starts[note_starts < seconds]
    pitches = 110.0 * 2 ** (rng.integers(0, 48, note_starts.size) / 12)
    lengths = rng.uniform(0.15, 0.8, note_starts.size)
    for start, pitch, length in zip(note_starts, pitches, lengths):
        lo, hi = int(start * sample_rate), min(n, int((start + length * 2) * sample_rate))
        tt = t[lo:hi] - start
        envelope = np.exp(-tt * (3.0 / length))
        tone = sum(np.sin(2 * np.pi * pitch * h * tt) / h for h in (1, 2, 3, 4))
        out[lo:hi] += 0.25 * envelope * tone
    out += 0.003 * rng.standard_normal(n)
    return (0.5 * out / max(1e-9, np.abs(out).max())).astype(np.float32)


def write_audio(path: Path, samples: np.ndarray, sample_rate: int, *,
                bit_rate: int | None = None) -> Path:
    """Encode mono float32 samples to ``path``; the suffix picks container and codec."""
    container_format, codec, rate, options = AUDIO_FORMATS[Path(path).suffix]
    with av.open(str(path), "w", format=container_format) as container:
        options = dict(options)
        layout = options.pop("layout", "mono")
        stream = container.add_stream(codec, rate=rate, options=options)
        stream.layout = layout
        if bit_rate:
            stream.bit_rate = bit_rate
        _encode_audio(container, stream, samples, sample_rate)
    return Path(path)


def _encode_audio(container, stream, samples: np.ndarray, sample_rate: int) -> None:
    """Resample with PyAV to the stream's rate/format and mux every packet."""
    rate = stream.codec_context.sample_rate
    resampler = av.AudioResampler(
        format=stream.codec_context.format, layout=stream.codec_context.layout, rate=rate
    )
    frame_size = 1024
    pts = 0
    for start in range(0, samples.size, frame_size * 8):
        block = np.ascontiguousarray(samples[start : start + frame_size * 8], np.float32)
        frame = av.AudioFrame.from_ndarray(block.reshape(1, -1), format="flt", layout="mono")
        frame.sample_rate = sample_rate
        frame.pts = pts
        frame.time_base = Fraction(1, sample_rate)
        pts += block.size
        for out in resampler.resample(frame):
            for packet in stream.encode(out):
                container.mux(packet)
    for out in resampler.resample(None):
        for packet in stream.encode(out):
            container.mux(packet)
    for packet in stream.encode(None):
        container.mux(packet)


def write_video(
    path: Path, frames: np.ndarray, fps: int, *, audio: np.ndarray | None = None,
    sample_rate: int = 22050, codec: str = "libx264", audio_codec: str = "aac",
    crf: int = 23,
) -> Path:
    """Encode frames (and optionally a mono soundtrack) to ``path`` (mp4/mkv/webm/3gp...).

    frames : ndarray [shape=(n, h, w, 3)], uint8 RGB; h and w even.
    """
    options = {"crf": str(crf), "preset": "ultrafast"} if codec == "libx264" else {}
    with av.open(str(path), "w") as container:
        video = container.add_stream(codec, rate=fps, options=options)
        video.width, video.height = frames.shape[2], frames.shape[1]
        video.pix_fmt = "yuv420p"
        audio_stream = None
        if audio is not None:
            audio_stream = container.add_stream(
                audio_codec, rate=48000 if audio_codec in ("libopus", "opus") else 44100
            )
            audio_stream.layout = "mono"
        for image in frames:
            for packet in video.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in video.encode(None):
            container.mux(packet)
        if audio_stream is not None:
            _encode_audio(container, audio_stream, audio, sample_rate)
    return Path(path)


def write_film(path: Path, seconds: float = 120.0, *, seed: int = 5, fps: int = 25,
               scale: int = 4) -> Path:
    """A film-like file: :class:`benchmarks.video_probe.Footage` at 320x180 shown ``scale``
    times larger (1280x720 at the default) in h264 (veryfast, crf 23) with a 48 kHz stereo AAC
    (128k) soundtrack of :func:`music_like`, audio and video encoded in step so that the muxer
    interleaves them as in real files. Rendered 50 frames at a time: memory stays small.
    """
    from nanhu.benchmarks.video_probe import Footage

    rate = 48000
    footage = Footage(seed, width=320, height=180, duration_s=seconds)
    left = music_like(seconds, seed=seed + 2, sample_rate=rate)
    stereo = np.stack([left, 0.8 * np.roll(left, 240)]).astype(np.float32)
    per_frame = rate // fps
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=fps,
                                     options={"crf": "23", "preset": "veryfast"})
        video.width, video.height, video.pix_fmt = 320 * scale, 180 * scale, "yuv420p"
        audio = container.add_stream("aac", rate=rate)
        audio.layout, audio.bit_rate = "stereo", 128000
        resampler = av.AudioResampler(format=audio.codec_context.format, layout="stereo",
                                      rate=rate)
        n_frames = int(seconds * fps)

        def mux_audio(frame) -> None:
            for out in resampler.resample(frame):
                for packet in audio.encode(out):
                    container.mux(packet)

        for start in range(0, n_frames, 50):
            indices = np.arange(start, min(n_frames, start + 50))
            for i, image in zip(indices, footage.frames(indices / fps)):
                big = np.repeat(np.repeat(image, scale, 0), scale, 1)
                frame = av.VideoFrame.from_ndarray(big, format="rgb24")
                frame.pts = int(i)
                for packet in video.encode(frame):
                    container.mux(packet)
                block = np.ascontiguousarray(stereo[:, i * per_frame:(i + 1) * per_frame].T)
                sound = av.AudioFrame.from_ndarray(block.reshape(1, -1), format="flt",
                                                   layout="stereo")
                sound.sample_rate, sound.pts = rate, int(i) * per_frame
                sound.time_base = Fraction(1, rate)
                mux_audio(sound)
        for packet in video.encode(None):
            container.mux(packet)
        mux_audio(None)
        for packet in audio.encode(None):
            container.mux(packet)
    return Path(path)


def still_shots(seconds: float, *, seed: int, fps: float = 5.0, shot_s: float = 6.0,
                start_s: float = 0.0, width: int = 320, height: int = 180) -> np.ndarray:
    """Frames of a slideshow-like film: a still picture rich in corners (a wavy field under 40
    filled polygons) per shot of ``shot_s``, drifting 3 px a second, with hard cuts. Local
    features (ORB) find many keypoints in it and the references' sampler describes its cuts, so
    crops that defeat the global descriptor are still verified (tests of engine.video.verify).

    Returns RGB uint8[n, height, width, 3], the frames at ``start_s + i / fps`` for
    ``0 <= i / fps < seconds``.
    """
    import cv2

    times = start_s + np.arange(0.0, seconds - 1e-9, 1.0 / fps)
    pictures: dict[int, np.ndarray] = {}
    out = np.empty((times.size, height, width, 3), np.uint8)
    yy, xx = np.mgrid[0:height, 0:width]
    for i, t in enumerate(times):
        shot = int(t // shot_s)
        if shot not in pictures:
            rng = np.random.default_rng(seed * 1000 + shot)
            field = 96 + 60 * np.sin(xx / rng.uniform(20, 60)) * np.cos(yy / rng.uniform(20, 60))
            picture = np.repeat(field[..., None], 3, axis=2).astype(np.uint8)
            for _ in range(40):
                centre = rng.integers(0, (width, height))
                corners = (rng.integers(-25, 25, (5, 2)) + centre).astype(np.int32)
                cv2.fillPoly(picture, [corners], [int(v) for v in rng.integers(0, 256, 3)])
            pictures[shot] = picture
        out[i] = np.roll(pictures[shot], int((t % shot_s) * 3), axis=1)
    return out


def structured_vectors(n: int, seed: int, *, shot: int = 8, dim: int = 248) -> np.ndarray:
    """Unit vectors like keyframes: a shared mean direction, energy in a few dozen directions
    (decaying spectrum), and shots of ``shot`` near-identical consecutive rows."""
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(rng.standard_normal((dim, dim)))[0].astype(np.float32)
    scales = (1.0 / (1.0 + np.arange(dim) / 8.0)).astype(np.float32)
    mean = basis[:, -1] * 2.0
    bases = rng.standard_normal((n // shot + 1, dim)).astype(np.float32)
    z = 0.95 * np.repeat(bases, shot, 0)[:n] + 0.3 * rng.standard_normal((n, dim)).astype(np.float32)
    out = mean + (z * scales) @ basis.T
    return (out / np.linalg.norm(out, axis=1, keepdims=True)).astype(np.float32)


def noisy(vectors: np.ndarray, seed: int, amount: float = 0.25) -> np.ndarray:
    """Query-like copies: each row moved off itself (cosine about 0.97)."""
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal(vectors.shape).astype(np.float32)
    out = vectors + amount * noise / np.linalg.norm(noise, axis=1, keepdims=True)
    return (out / np.linalg.norm(out, axis=1, keepdims=True)).astype(np.float32)
