"""Rendering the video corpus: Ken Burns camera paths over photograph tiles, real footage
fitted to the frame, music excerpts with fades, and the H.264 + AAC mp4 they are encoded to.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import av
import numpy as np

SAMPLE_RATE = 48_000
RENDER_VERSION = 1  # bump when rendering changes pixels or sound: outputs are then rebuilt

Box = tuple[int, int, int, int]  # x, y, width, height in source pixels


def read_image(path: Path) -> np.ndarray:
    """Decode a still image with PyAV. Returns uint8 [shape=(height, width, 3)] RGB."""
    with av.open(str(path)) as container:
        return next(container.decode(video=0)).to_ndarray(format="rgb24")


def _resize(image: np.ndarray, width: int, height: int, *, interpolation: str = "AREA",
            fmt: str = "rgb24") -> np.ndarray:
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format=fmt)
    return frame.reformat(width=width, height=height, interpolation=interpolation).to_ndarray()


def camera_path(box: Box, n_frames: int, *, aspect: float, motion: str,
                rng: np.random.Generator) -> np.ndarray:
    """Ken Burns crop windows inside ``box`` for one shot.

    box : (x, y, width, height) of the tile, source px.
    motion : "zoom_in", "zoom_out", "pan" or "drift".
    Returns float64 [shape=(n_frames, 4)]: x, y, width, height per frame, source px, every
    window of the given aspect (width / height) and inside the box; eased start and stop.
    """
    x, y, w, h = box
    fit_w = min(w, h * aspect)
    if motion == "zoom_in":
        scales = (1.0, rng.uniform(0.72, 0.85))
    elif motion == "zoom_out":
        scales = (rng.uniform(0.72, 0.85), 1.0)
    elif motion == "pan":
        scales = (rng.uniform(0.7, 0.82),) * 2
    elif motion == "drift":
        scales = (rng.uniform(0.86, 0.94),) * 2
    else:
        raise ValueError(f"unknown camera motion {motion!r}")
    across = rng.uniform(0.0, 1.0)
    where = rng.uniform(0.0, 1.0, size=2)  # window position within the slack, per axis
    ends = []
    for k, scale in enumerate(scales):
        win_w = fit_w * scale
        win_h = win_w / aspect
        slack = np.array([w - win_w, h - win_h])
        if k == 1:  # a drift slides a little from where it starts; zooms go anywhere
            where = np.clip(where + rng.uniform(-0.2, 0.2, size=2), 0.0, 1.0) \
                if motion == "drift" else rng.uniform(0.0, 1.0, size=2)
        if motion == "pan":  # sweep along the axis with more room, from one side to the other
            axis = int(slack[1] > slack[0])
            where[axis], where[1 - axis] = (0.03, 0.97)[k], across
        ends.append([x + slack[0] * where[0], y + slack[1] * where[1], win_w, win_h])
    if motion == "pan" and rng.uniform() < 0.5:
        ends.reverse()
    start, stop = np.array(ends[0]), np.array(ends[1])
    t = np.linspace(0.0, 1.0, n_frames) if n_frames > 1 else np.zeros(1)
    eased = 0.5 * t + 0.5 * t * t * (3.0 - 2.0 * t)  # half linear, half smoothstep
    return start + (stop - start) * eased[:, None]


def render_photo_shot(image: np.ndarray, boxes: np.ndarray, *, width: int,
                      height: int) -> Iterator[av.VideoFrame]:
    """Frames of one shot: each crop window of ``image`` scaled to width x height.

    image : uint8 [shape=(h, w, 3)] RGB.  boxes : float [shape=(n, 4)] from camera_path.
    Yields n yuv420p frames. The region the shot sweeps is first reduced once (area filter)
    to about the output scale, so the per-frame work is a small crop and a bilinear scale.
    """
    x0, y0 = np.floor(boxes[:, :2].min(axis=0)).astype(int)
    x1 = int(np.ceil((boxes[:, 0] + boxes[:, 2]).max()))
    y1 = int(np.ceil((boxes[:, 1] + boxes[:, 3]).max()))
    region = image[max(y0, 0):min(y1, image.shape[0]), max(x0, 0):min(x1, image.shape[1])]
    scale = min(1.0, 1.1 * width / float(boxes[:, 2].max()))
    if scale < 1.0:
        region = _resize(region, max(2, round(region.shape[1] * scale)),
                         max(2, round(region.shape[0] * scale)))
    scaled = (boxes - np.array([max(x0, 0), max(y0, 0), 0.0, 0.0])) * scale
    whole = np.rint(scaled).astype(int)
    whole[:, 2] = np.clip(whole[:, 2], 2, region.shape[1])
    whole[:, 3] = np.clip(whole[:, 3], 2, region.shape[0])
    whole[:, 0] = np.clip(whole[:, 0], 0, region.shape[1] - whole[:, 2])
    whole[:, 1] = np.clip(whole[:, 1], 0, region.shape[0] - whole[:, 3])
    for cx, cy, cw, ch in whole:
        crop = np.ascontiguousarray(region[cy:cy + ch, cx:cx + cw])
        frame = av.VideoFrame.from_ndarray(crop, format="rgb24")
        yield frame.reformat(width=width, height=height, format="yuv420p",
                             interpolation="BILINEAR")


def render_footage_shot(path: Path, *, n_frames: int, fps: int, width: int,
                        height: int) -> Iterator[av.VideoFrame]:
    """Exactly n_frames of a real clip at ``fps`` (nearest earlier source frame; the last
    frame holds if the clip is shorter), fitted into width x height with black bars.
    Yields yuv420p frames."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        scale = min(width / stream.width, height / stream.height)
        fit_w, fit_h = 2 * round(stream.width * scale / 2), 2 * round(stream.height * scale / 2)
        left, top = (width - fit_w) // 2, (height - fit_h) // 2
        canvas = np.zeros((height, width, 3), np.uint8)
        decoded = container.decode(video=0)
        current = next(decoded)
        origin = current.time or 0.0
        upcoming = next(decoded, None)
        for k in range(n_frames):
            while upcoming is not None and (upcoming.time or 0.0) - origin <= k / fps + 1e-6:
                current, upcoming = upcoming, next(decoded, None)
            canvas[top:top + fit_h, left:left + fit_w] = current.to_ndarray(
                width=fit_w, height=fit_h, format="rgb24", interpolation="BILINEAR")
            yield av.VideoFrame.from_ndarray(canvas, format="rgb24").reformat(format="yuv420p")


def read_music(path: Path, *, start_s: float, duration_s: float,
               sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Decode ``duration_s`` of a track from ``start_s``, with a 0.5 s fade-in and 1.5 s
    fade-out. Returns float32 [shape=(2, round(duration_s * sample_rate))], stereo, [-1, 1]."""
    total = round(duration_s * sample_rate)
    first = round(start_s * sample_rate)
    out = np.zeros((2, total), np.float32)
    resampler = av.AudioResampler(format="fltp", layout="stereo", rate=sample_rate)
    position = 0
    with av.open(str(path)) as container:
        for frame in container.decode(audio=0):
            for chunk in resampler.resample(frame):
                samples = chunk.to_ndarray()
                lo, hi = max(first - position, 0), min(first + total - position, samples.shape[1])
                if hi > lo:
                    out[:, position + lo - first:position + hi - first] = samples[:, lo:hi]
                position += samples.shape[1]
            if position >= first + total:
                break
    ramp_in, ramp_out = int(0.5 * sample_rate), int(1.5 * sample_rate)
    out[:, :ramp_in] *= np.linspace(0.0, 1.0, ramp_in, dtype=np.float32)
    out[:, -ramp_out:] *= np.linspace(1.0, 0.0, ramp_out, dtype=np.float32)
    return out


def encode_mp4(path: Path, frames: Iterable[av.VideoFrame], audio: np.ndarray, *, fps: int,
               width: int, height: int, crf: int = 23, preset: str = "ultrafast",
               comment: str = "") -> int:
    """Write H.264 (yuv420p) + AAC (128 kb/s, 48 kHz stereo) to ``path``.

    audio : float32 [shape=(2, n_samples)] at SAMPLE_RATE; interleaved with the video as it
    goes. comment : stored as the container's "comment" tag. Returns the video frame count.
    """
    n_frames, sent = 0, 0
    with av.open(str(path), "w", format="mp4") as out:
        if comment:
            out.metadata["comment"] = comment
        video = out.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.options = {"preset": preset, "crf": str(crf)}
        video.codec_context.thread_count = 1  # one worker per core; also keeps output stable
        sound = out.add_stream("aac", rate=SAMPLE_RATE, layout="stereo")
        sound.bit_rate = 128_000

        def push_audio(until: int) -> None:
            nonlocal sent
            while sent < until:
                size = min(1024, until - sent)
                frame = av.AudioFrame.from_ndarray(
                    np.ascontiguousarray(audio[:, sent:sent + size]), format="fltp",
                    layout="stereo")
                frame.sample_rate, frame.pts = SAMPLE_RATE, sent
                out.mux(sound.encode(frame))
                sent += size

        for frame in frames:
            frame.pts = n_frames
            out.mux(video.encode(frame))
            n_frames += 1
            push_audio(min(audio.shape[1], (n_frames * SAMPLE_RATE // fps) // 1024 * 1024))
        push_audio(min(audio.shape[1], n_frames * SAMPLE_RATE // fps))
        out.mux(video.encode())
        out.mux(sound.encode())
    return n_frames


# ---------------------------------------------------------------------------- planning
