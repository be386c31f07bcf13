"""Decoding and sampling: the frame on screen every ``1 / sample_fps`` s, as 64x64 luma.

The decoder is threaded; FFmpeg's area-averaging scaler shrinks each sampled frame straight to
``frame_size`` luma. Work is bounded by the frames decoded, never by the timestamps a file
declares (:data:`MAX_HOLD_S`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from engine import media
from engine.errors import EmptyMediaError, LimitExceeded, MediaError
from engine.media import Source, source_name
from engine.video.params import VideoParams

#: Largest frame side accepted (pixels); beyond it a header is lying or the file is hostile.
MAX_SIDE = 16384
#: Longest a decoded frame is taken to stay on screen (s). Past it, the gap between two frames'
#: timestamps is skipped (no keyframes sampled in it): a 6 KB file whose third frame claims to
#: be shown at 1e6 s would otherwise make 2 million keyframes out of three frames.
MAX_HOLD_S = 30.0
#: Container formats that hold still images: a photo is not a video (see fingerprint_video).
_IMAGE_FORMATS = ("image2", "image2pipe")



def iter_sampled_frames(
    source: Source, *, params: VideoParams | None = None, max_duration_s: float | None = None,
    chunk: int = 256,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Stream the frames on screen at every ``1 / sample_fps`` s of presentation time.

    Yields (frames uint8[m, s, s] luma, times_s float32[m]) chunks of up to ``chunk`` frames,
    ``s = params.frame_size``; times count from the first frame's presentation time, so 25, 30,
    60 fps and variable-rate encodes of one video sample the same instants.

    Raises :class:`MediaError` (unreadable, no video stream, absurd frame size, a still image,
    broken while decoding), :class:`EmptyMediaError` (no frame decodes) and
    :class:`LimitExceeded` past ``max_duration_s``.
    """
    params = params or VideoParams()
    name = source_name(source)
    period = 1.0 / params.sample_fps
    size = params.frame_size
    with media.open_container(source) as container:
        stream = media._first_real_video(container)
        if stream is None:
            raise MediaError(f"{name}: has no video stream")
        _check_size(name, stream.codec_context.width, stream.codec_context.height, header=True)
        stream.thread_type = "AUTO"
        if params.skip_nonref:
            stream.codec_context.skip_frame = "NONREF"
        is_image = container.format.name in _IMAGE_FORMATS or container.format.name.endswith(
            "_pipe")
        frames: list[np.ndarray] = []
        times: list[float] = []
        decoded = 0
        first_time: float | None = None
        next_instant = 0.0
        # One scaler for the whole stream: FFmpeg keeps its filter set-up between frames.
        scaler = VideoReformatter()
        held = None  # (time, VideoFrame) of the frame on screen, not yet scaled
        last_step = _frame_duration(stream)
        held_array: np.ndarray | None = None
        try:
            for frame in media._decoded(container, stream, name):
                t = _frame_time(frame, decoded, stream)
                decoded += 1
                if first_time is None:
                    _check_size(name, frame.width, frame.height, header=False)
                    first_time = t
                t -= first_time
                if max_duration_s is not None and t > max_duration_s:
                    raise LimitExceeded(
                        f"{name}: video is longer than the limit of {max_duration_s:g} s")
                # The previous frame was on screen at every instant before this frame's time,
                # but for at most MAX_HOLD_S: a longer gap is skipped, so the work is bounded by
                # the frames decoded, not by the timestamps a (hostile) file declares.
                if held is not None and t - held[0] > MAX_HOLD_S:
                    next_instant = _skip_gap(next_instant, held[0] + MAX_HOLD_S, t, period,
                                             frames, times, held_array, scaler, held[1], size)
                    held_array = None
                    if len(frames) >= chunk:
                        yield np.stack(frames), np.asarray(times, np.float32)
                        frames, times = [], []
                while held is not None and next_instant < t - 1e-6:
                    if held_array is None:
                        held_array = _scaled(scaler, held[1], size)
                    frames.append(held_array)
                    times.append(next_instant)
                    next_instant += period
                    if len(frames) >= chunk:
                        yield np.stack(frames), np.asarray(times, np.float32)
                        frames, times = [], []
                if held is None or t > held[0]:
                    if held is not None:
                        last_step = t - held[0]
                    held, held_array = (t, frame), None
        except (av.FFmpegError, ValueError, IndexError, EOFError) as exc:
            raise MediaError(f"{name}: video breaks while decoding ({media._reason(exc)})") from exc
        if held is None:
            raise EmptyMediaError(f"{name}: video stream decodes to no frames")
        if is_image and decoded == 1:
            raise MediaError(f"{name}: is a still image, not a video")
        # The last frame stays on screen as long as the frame before it did (headers' frame
        # rates are unreliable, mkv's especially).
        end = held[0] + min(last_step, MAX_HOLD_S)
        while next_instant < end - 1e-3:  # an instant at the very end is past the video
            if held_array is None:
                held_array = _scaled(scaler, held[1], size)
            frames.append(held_array)
            times.append(next_instant)
            next_instant += period
        if frames:
            yield np.stack(frames), np.asarray(times, np.float32)


def _skip_gap(next_instant: float, hold_end: float, t: float, period: float, frames: list,
              times: list, held_array, scaler, held_frame, size: int) -> float:
    """Sample the held frame up to ``hold_end``, then jump to the first instant at or after
    ``t`` (instants stay on the ``period`` grid). Returns the next instant."""
    while next_instant < hold_end - 1e-6:
        if held_array is None:
            held_array = _scaled(scaler, held_frame, size)
        frames.append(held_array)
        times.append(next_instant)
        next_instant += period
    if next_instant < t - 1e-6:
        next_instant += period * (math.floor((t - 1e-6 - next_instant) / period) + 1)
    return next_instant


def sample_frames(
    source: Source, *, params: VideoParams | None = None, max_duration_s: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """All frames of :func:`iter_sampled_frames` at once (for short media and tests).

    Returns (frames uint8[n, s, s] luma, times_s float32[n] seconds from the first frame).
    """
    parts = list(iter_sampled_frames(source, params=params, max_duration_s=max_duration_s))
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _check_size(name: str, width: int, height: int, *, header: bool) -> None:
    if header and width == 0 and height == 0:
        return  # some containers leave the size to the first decoded frame
    if not (0 < width <= MAX_SIDE and 0 < height <= MAX_SIDE):
        raise MediaError(f"{name}: video frame size {width}x{height} is not plausible")


def _frame_time(frame, index: int, stream) -> float:
    """Presentation time (s); when a frame carries none, the nominal frame rate decides."""
    if frame.time is not None:
        return float(frame.time)
    rate = stream.average_rate or stream.guessed_rate or 25
    return index / float(rate)


def _frame_duration(stream) -> float:
    rate = stream.average_rate or stream.guessed_rate
    return 1.0 / float(rate) if rate else 0.04


def _scaled(scaler: VideoReformatter, frame, size: int) -> np.ndarray:
    """FFmpeg's area-averaging scaler straight to size x size luma: the cheapest shrink."""
    small = scaler.reformat(frame, width=size, height=size, format="gray", interpolation="AREA")
    return small.to_ndarray().reshape(size, size)

