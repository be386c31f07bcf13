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

from nanhu.engine import media
from nanhu.engine.errors import EmptyMediaError, LimitExceeded, MediaError
from nanhu.engine.media import Source, source_name
from nanhu.engine.video.params import VideoParams

#: Largest frame side accepted (pixels); beyond it a header is lying or the file is hostile.
MAX_SIDE = 16384
#: Longest a decoded frame is taken to stay on screen (s). Past it, the gap between two frames'
#: timestamps is skipped (no keyframes sampled in it): a 6 KB file whose third frame claims to
#: be shown at 1e6 s would otherwise make 2 million keyframes out of three frames.
MAX_HOLD_S = 30.0
#: Container formats that hold still images: a photo is not a video (see fingerprint_video).
_IMAGE_FORMATS = ("image2", "image2pipe")


def keyframe_sampler(
    container: av.container.InputContainer, name: str, *, stream=None,
    params: VideoParams | None = None, max_duration_s: float | None = None, chunk: int = 256,
    frame_size: int | None = None, local=None,
) -> KeyframeSampler:
    """A :class:`KeyframeSampler` for ``stream`` (default: the container's first real video
    stream), its decoder set up (threaded; ``params.skip_nonref``). ``frame_size`` overrides
    ``params.frame_size`` (queries decode larger to describe regions, engine.video.framing).
    ``local`` (an :class:`engine.video.local_sampling.LocalCollector`) is offered every
    sampled frame, to describe some with local features.

    Raises :class:`MediaError` when there is no video stream or its header's frame size is
    not plausible.
    """
    if stream is None:
        stream = media._first_real_video(container)
        if stream is None:
            raise MediaError(f"{name}: has no video stream")
    params = params or VideoParams()
    _check_size(name, stream.codec_context.width, stream.codec_context.height, header=True)
    stream.thread_type = "AUTO"
    if params.skip_nonref:
        stream.codec_context.skip_frame = "NONREF"
    is_image = container.format.name in _IMAGE_FORMATS or container.format.name.endswith("_pipe")
    return KeyframeSampler(stream, name, params=params, max_duration_s=max_duration_s,
                           chunk=chunk, is_image=is_image, frame_size=frame_size, local=local)


class KeyframeSampler:
    """The frame on screen at every ``1 / sample_fps`` s of presentation time, from decoded
    frames pushed one at a time (an :class:`engine.media.FramePipeline`, label ``"video"``).

    Items are (frames uint8[m, s, s] luma, times_s float32[m]) chunks of ``chunk`` frames (the
    last one may be longer), ``s = frame_size or params.frame_size``; times count from the first frame's
    presentation time, so 25, 30, 60 fps and variable-rate encodes sample the same instants.
    A frame is scaled once, when it is first sampled; at most one chunk waits here.
    """

    label = "video"

    def __init__(self, stream, name: str, *, params: VideoParams,
                 max_duration_s: float | None = None, chunk: int = 256,
                 is_image: bool = False, frame_size: int | None = None, local=None) -> None:
        self.stream, self.name, self.params = stream, name, params
        #: an engine.video.local_sampling.LocalCollector offered every sampled frame, or None
        self.local = local
        self.frame_size = frame_size or params.frame_size
        #: (width, height) of the first decoded frame, pixels
        self.source_size: tuple[int, int] | None = None
        self.max_duration_s, self.chunk, self.is_image = max_duration_s, chunk, is_image
        self._period = 1.0 / params.sample_fps
        self._frames: list[np.ndarray] = []
        self._times: list[float] = []
        #: frames decoded so far
        self.decoded = 0
        self._first_time: float | None = None
        self._next_instant = 0.0
        # One scaler for the whole stream: FFmpeg keeps its filter set-up between frames.
        self._scaler = VideoReformatter()
        self._held = None  # (time, VideoFrame) of the frame on screen, not yet scaled
        self._held_array: np.ndarray | None = None
        self._last_step = _frame_duration(stream)

    def push(self, frame: av.VideoFrame) -> list[tuple[np.ndarray, np.ndarray]]:
        """Take one decoded frame; returns the chunks it completes (usually none).

        Raises :class:`MediaError` for an absurd frame size and :class:`LimitExceeded` past
        ``max_duration_s``.
        """
        out: list[tuple[np.ndarray, np.ndarray]] = []
        t = _frame_time(frame, self.decoded, self.stream)
        self.decoded += 1
        if self._first_time is None:
            _check_size(self.name, frame.width, frame.height, header=False)
            self._first_time = t
            self.source_size = (frame.width, frame.height)
        t -= self._first_time
        if self.max_duration_s is not None and t > self.max_duration_s:
            raise LimitExceeded(
                f"{self.name}: video is longer than the limit of {self.max_duration_s:g} s")
        held = self._held
        # The previous frame was on screen at every instant before this frame's time, but for
        # at most MAX_HOLD_S: a longer gap is skipped, so the work is bounded by the frames
        # decoded, not by the timestamps a (hostile) file declares.
        if held is not None and t - held[0] > MAX_HOLD_S:
            while self._next_instant < held[0] + MAX_HOLD_S - 1e-6:
                self._sample_held()
            if self._next_instant < t - 1e-6:  # jump the gap, staying on the sampling grid
                self._next_instant += self._period * (
                    math.floor((t - 1e-6 - self._next_instant) / self._period) + 1)
            self._held_array = None
            self._emit_if_full(out)
        while held is not None and self._next_instant < t - 1e-6:
            self._sample_held()
            self._emit_if_full(out)
        if held is None or t > held[0]:
            if held is not None:
                self._last_step = t - held[0]
            self._held, self._held_array = (t, frame), None
        return out

    def finish(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """The last chunk. The last frame stays on screen as long as the frame before it did
        (headers' frame rates are unreliable, mkv's especially).

        Raises :class:`EmptyMediaError` when no frame decoded, :class:`MediaError` for a still
        image.
        """
        if self._held is None:
            raise EmptyMediaError(f"{self.name}: video stream decodes to no frames")
        if self.is_image and self.decoded == 1:
            raise MediaError(f"{self.name}: is a still image, not a video")
        end = self._held[0] + min(self._last_step, MAX_HOLD_S)
        while self._next_instant < end - 1e-3:  # an instant at the very end is past the video
            self._sample_held()
        if not self._frames:
            return []
        return [(np.stack(self._frames), np.asarray(self._times, np.float32))]

    def _sample_held(self) -> None:
        """The held frame is the keyframe of the next instant."""
        if self._held_array is None:
            self._held_array = _scaled(self._scaler, self._held[1], self.frame_size)
        if self.local is not None:
            self.local.offer(self._next_instant, self._held_array, self._held[1])
        self._frames.append(self._held_array)
        self._times.append(self._next_instant)
        self._next_instant += self._period

    def _emit_if_full(self, out: list) -> None:
        if len(self._frames) >= self.chunk:
            out.append((np.stack(self._frames), np.asarray(self._times, np.float32)))
            self._frames, self._times = [], []


def iter_sampled_frames(
    source: Source, *, params: VideoParams | None = None, max_duration_s: float | None = None,
    chunk: int = 256,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Stream the frames on screen at every ``1 / sample_fps`` s of presentation time: the
    items of a :class:`KeyframeSampler` over the source's first video stream, demuxed alone.

    Yields (frames uint8[m, s, s] luma, times_s float32[m]) chunks of up to ``chunk`` frames.
    Raises :class:`MediaError` (unreadable, no video stream, absurd frame size, a still image,
    broken while decoding), :class:`EmptyMediaError` (no frame decodes) and
    :class:`LimitExceeded` past ``max_duration_s``.
    """
    name = source_name(source)
    with media.open_container(source) as container:
        sampler = keyframe_sampler(container, name, params=params,
                                   max_duration_s=max_duration_s, chunk=chunk)
        for _, item in media.demux(container, name, [sampler]):
            yield item


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

