"""Decoded video for the attacks: a :class:`Clip` of frames and soundtrack, read from a window
of a file (:func:`read_window`), and the H.264 + AAC round trip (:func:`encode_clip`) that
turns an attacked clip into the bytes the benchmark screens.

Working size: references are decoded at 640x360 (:data:`WORK_SIZE`) before attacking, so the
plain re-encode ("360p") is already a 360p copy of a 720p/1080p reference; attacks about
resolution go further down (240p, letterbox+logo+360p).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

#: (width, height) references are decoded to before attacking
WORK_SIZE = (640, 360)
#: sample rate (Hz) of clip soundtracks
AUDIO_RATE = 16_000


@dataclass
class Clip:
    """Decoded media.

    frames : ndarray [shape=(n, h, w, 3)], uint8 RGB; h and w even
    fps : frames per second (constant frame rate)
    audio : ndarray [shape=(m,)], float32 mono at ``sample_rate`` Hz, or None
    """

    frames: np.ndarray
    fps: float
    audio: np.ndarray | None = None
    sample_rate: int = AUDIO_RATE

    @property
    def duration_s(self) -> float:
        return self.frames.shape[0] / self.fps

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return int(self.frames.shape[2]), int(self.frames.shape[1])


# ---------------------------------------------------------------------------- decoding
def read_window(path: str | Path, start_s: float, duration_s: float, *,
                size: tuple[int, int] | None = WORK_SIZE, sample_rate: int = AUDIO_RATE,
                audio: bool = True) -> Clip:
    """Decode ``duration_s`` seconds of ``path`` from ``start_s``: frames scaled to ``size``
    (None keeps the file's size) and the soundtrack mixed to mono at ``sample_rate``.

    Seeks to the keyframe before ``start_s``; frames are those whose presentation time lies in
    ``[start_s, start_s + duration_s)``.
    """
    end_s = start_s + duration_s
    frames = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        fps = float(stream.average_rate or stream.guessed_rate or 25)
        if start_s > 0:
            container.seek(int(start_s / stream.time_base), stream=stream, backward=True)
        for frame in container.decode(stream):
            t = float(frame.time)
            if t < start_s - 0.5 / fps:
                continue
            if t >= end_s - 0.5 / fps:
                break
            width, height = size or (frame.width, frame.height)
            frames.append(frame.to_ndarray(width=width, height=height, format="rgb24",
                                           interpolation="AREA"))
    if not frames:
        raise ValueError(f"{path}: no frames in [{start_s:.2f}, {end_s:.2f}) s")
    sound = _read_audio(path, start_s, duration_s, sample_rate) if audio else None
    return Clip(np.stack(frames), fps, sound, sample_rate)


def _read_audio(path: str | Path, start_s: float, duration_s: float,
                sample_rate: int) -> np.ndarray | None:
    """Mono float32 samples of ``[start_s, start_s + duration_s)``; None without a soundtrack."""
    with av.open(str(path)) as container:
        if not container.streams.audio:
            return None
        stream = container.streams.audio[0]
        if start_s > 0:
            container.seek(int(start_s / stream.time_base), stream=stream, backward=True)
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
        chunks, first_time = [], None
        want = int(round(duration_s * sample_rate))
        for frame in container.decode(stream):
            if first_time is None:
                first_time = float(frame.time or 0.0)
            for out in resampler.resample(frame):
                chunks.append(out.to_ndarray().reshape(-1))
            if sum(c.size for c in chunks) >= (start_s - first_time) * sample_rate + want:
                break
    if not chunks:
        return None
    samples = np.concatenate(chunks)
    skip = max(0, int(round((start_s - (first_time or 0.0)) * sample_rate)))
    out = samples[skip:skip + want]
    return np.pad(out, (0, want - out.size)).astype(np.float32)


# ---------------------------------------------------------------------------- encoding
def encode_clip(clip: Clip, *, crf: int = 23, bit_rate: int | None = None,
                preset: str = "ultrafast") -> bytes:
    """H.264 (yuv420p; CRF ``crf``, or average ``bit_rate`` b/s when given) + AAC mono mp4 bytes."""
    n, height, width, _ = clip.frames.shape
    if width % 2 or height % 2:
        raise ValueError(f"H.264 yuv420p needs even dimensions, got {width}x{height}")
    buffer = io.BytesIO()
    rate = Fraction(clip.fps).limit_denominator(1001)
    with av.open(buffer, "w", format="mp4") as out:
        video = out.add_stream("libx264", rate=rate)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        options = {"preset": preset}
        if bit_rate:
            video.bit_rate = bit_rate
        else:
            options["crf"] = str(crf)
        video.options = options
        video.codec_context.thread_count = 1  # deterministic output, one core
        sound = None
        if clip.audio is not None and clip.audio.size:
            sound = out.add_stream("aac", rate=clip.sample_rate, layout="mono")
            sound.bit_rate = 64_000
        sent = 0

        def push_audio(until: int) -> None:
            nonlocal sent
            while sound is not None and sent < until:
                block = np.ascontiguousarray(clip.audio[sent:min(until, sent + 1024)], np.float32)
                frame = av.AudioFrame.from_ndarray(block.reshape(1, -1), format="fltp",
                                                   layout="mono")
                frame.sample_rate, frame.pts = clip.sample_rate, sent
                out.mux(sound.encode(frame))
                sent += block.size

        total = clip.audio.size if sound is not None else 0
        for index in range(n):
            frame = av.VideoFrame.from_ndarray(clip.frames[index], format="rgb24")
            frame.pts = index
            out.mux(video.encode(frame))
            push_audio(min(total, int((index + 1) / clip.fps * clip.sample_rate) // 1024 * 1024))
        out.mux(video.encode(None))
        push_audio(total)
        if sound is not None:
            out.mux(sound.encode(None))
    return buffer.getvalue()
