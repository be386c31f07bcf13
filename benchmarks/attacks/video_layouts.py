"""Re-uploaders' framing and layout edits: composites with other footage, frames inside frames,
rotations and zooms (the issue 11 attacks). Same contract as :mod:`benchmarks.attacks.video`:
each function takes a :class:`Clip` (and ``other`` footage for composites) and an ``rng``, and
returns the attacked clip; the soundtrack is kept.
"""

from __future__ import annotations

from dataclasses import replace
from fractions import Fraction

import av
import numpy as np

from nanhu.benchmarks.attacks.video_clips import Clip


def _even(x: float) -> int:
    return max(2, int(round(x / 2)) * 2)


def resize_frames(frames: np.ndarray, width: int, height: int) -> np.ndarray:
    """Scale every frame to ``width x height`` (swscale: area when shrinking, bicubic growing)."""
    if frames.shape[1:3] == (height, width):
        return frames
    shrink = width * height < frames.shape[1] * frames.shape[2]
    method = "AREA" if shrink else "BICUBIC"
    out = np.empty((frames.shape[0], height, width, 3), np.uint8)
    for i, frame in enumerate(frames):
        out[i] = av.VideoFrame.from_ndarray(frame, format="rgb24").reformat(
            width=width, height=height, interpolation=method).to_ndarray()
    return out


def filter_frames(frames: np.ndarray, chain: list[tuple[str, str]]) -> np.ndarray:
    """Every frame through an FFmpeg filter chain (PyAV filter graph), e.g.
    ``[("gblur", "sigma=3")]``; all output frames must have one size."""
    n, height, width, _ = frames.shape
    graph = av.filter.Graph()
    node = graph.add_buffer(width=width, height=height, format="rgb24",
                            time_base=Fraction(1, 1000))
    for name, args in chain:
        step = graph.add(name, args)
        node.link_to(step)
        node = step
    sink = graph.add("buffersink")
    node.link_to(sink)
    graph.configure()
    out = None
    for i, frame in enumerate(frames):
        video_frame = av.VideoFrame.from_ndarray(frame, format="rgb24")
        video_frame.pts = i
        graph.push(video_frame)
        result = graph.pull().to_ndarray(format="rgb24")
        if out is None:
            out = np.empty((n, *result.shape), np.uint8)
        out[i] = result
    return out


def _fit_other(other: Clip, n: int, fps: float, width: int, height: int) -> np.ndarray:
    """``n`` frames of ``other`` at ``fps`` and ``width x height`` (looped if too short)."""
    index = np.floor(np.arange(n) / fps * other.fps + 1e-6).astype(np.int64) % other.frames.shape[0]
    return resize_frames(other.frames[index], width, height)


def picture_in_picture(clip: Clip, rng: np.random.Generator, *, other: Clip, scale: float = 0.5,
                       **_) -> Clip:
    """The reference at ``scale`` of its size over ``other`` footage (same frame size), at a
    random corner with a 4 % margin; the reference's soundtrack is kept."""
    width, height = clip.size
    n = clip.frames.shape[0]
    frames = _fit_other(other, n, clip.fps, width, height).copy()
    small = resize_frames(clip.frames, _even(width * scale), _even(height * scale))
    sw, sh = small.shape[2], small.shape[1]
    mx, my = int(0.04 * width), int(0.04 * height)
    x0 = mx if rng.uniform() < 0.5 else width - sw - mx
    y0 = my if rng.uniform() < 0.5 else height - sh - my
    frames[:, y0:y0 + sh, x0:x0 + sw] = small
    return replace(clip, frames=frames)


def side_by_side(clip: Clip, rng: np.random.Generator, *, other: Clip, **_) -> Clip:
    """The reference next to ``other`` footage of the same size (640x360 -> 1280x360), on a
    random side; the reference's soundtrack is kept."""
    width, height = clip.size
    n = clip.frames.shape[0]
    beside = _fit_other(other, n, clip.fps, width, height)
    pair = (clip.frames, beside) if rng.uniform() < 0.5 else (beside, clip.frames)
    return replace(clip, frames=np.concatenate(pair, axis=2))


def top_bottom(clip: Clip, rng: np.random.Generator, *, other: Clip, **_) -> Clip:
    """The reference above or below ``other`` footage of the same size (640x360 -> 640x720),
    as reaction and "gameplay under the clip" uploads stack them."""
    width, height = clip.size
    n = clip.frames.shape[0]
    beside = _fit_other(other, n, clip.fps, width, height)
    pair = (clip.frames, beside) if rng.uniform() < 0.5 else (beside, clip.frames)
    return replace(clip, frames=np.concatenate(pair, axis=1))


def rotate90(clip: Clip, rng: np.random.Generator, **_) -> Clip:
    """A quarter turn counter-clockwise (640x360 -> 360x640)."""
    return replace(clip, frames=np.ascontiguousarray(np.rot90(clip.frames, k=1, axes=(1, 2))))


def zoom(clip: Clip, rng: np.random.Generator, *, factor: float, **_) -> Clip:
    """Zoom in ``factor`` times about the centre (the central ``1 / factor`` of each side,
    scaled back to the frame size)."""
    width, height = clip.size
    cw, ch = _even(width / factor), _even(height / factor)
    x0, y0 = (width - cw) // 2, (height - ch) // 2
    return replace(clip, frames=resize_frames(
        np.ascontiguousarray(clip.frames[:, y0:y0 + ch, x0:x0 + cw]), width, height))


def crop_off_centre(clip: Clip, rng: np.random.Generator, *, fraction: float, **_) -> Clip:
    """Cut ``fraction`` of the width and of the height, the kept window placed at random (not
    centred: most of the cut may come from one side), scaled back to the frame size."""
    width, height = clip.size
    cw, ch = _even(width * (1 - fraction)), _even(height * (1 - fraction))
    x0 = int(rng.integers(0, width - cw + 1))
    y0 = int(rng.integers(0, height - ch + 1))
    return replace(clip, frames=resize_frames(
        np.ascontiguousarray(clip.frames[:, y0:y0 + ch, x0:x0 + cw]), width, height))


def rotate_zoom(clip: Clip, rng: np.random.Generator, *, degrees: float, factor: float,
                **_) -> Clip:
    """Rotate by ``degrees`` (sign drawn at random) and zoom in ``factor`` times so that no
    corner of the canvas shows (FFmpeg ``rotate`` then a centre crop, scaled back)."""
    width, height = clip.size
    angle = np.deg2rad(degrees) * (1 if rng.uniform() < 0.5 else -1)
    cw, ch = _even(width / factor), _even(height / factor)
    frames = filter_frames(clip.frames, [
        ("rotate", f"a={angle:.6f}:fillcolor=black"),
        ("crop", f"{cw}:{ch}"), ("scale", f"{width}:{height}")])
    return replace(clip, frames=frames)


def blurred_background(clip: Clip, rng: np.random.Generator, *, scale: float = 0.7,
                       enlarge: float = 1.4, sigma: float = 20.0, **_) -> Clip:
    """The reference shrunk to ``scale`` and centred over a blurred (``sigma`` px) copy of
    itself enlarged ``enlarge`` times: the frame re-uploaders wrap a clip in to dodge matching."""
    width, height = clip.size
    cw, ch = _even(width / enlarge), _even(height / enlarge)
    x0, y0 = (width - cw) // 2, (height - ch) // 2
    background = filter_frames(np.ascontiguousarray(clip.frames[:, y0:y0 + ch, x0:x0 + cw]), [
        ("scale", f"{width}:{height}"), ("gblur", f"sigma={sigma}")]).copy()
    small = resize_frames(clip.frames, _even(width * scale), _even(height * scale))
    sw, sh = small.shape[2], small.shape[1]
    sx, sy = (width - sw) // 2, (height - sh) // 2
    background[:, sy:sy + sh, sx:sx + sw] = small
    return replace(clip, frames=background)


def letterbox_square(clip: Clip, rng: np.random.Generator, **_) -> Clip:
    """The picture centred in a 1:1 square frame with black bars (640x360 -> 640x640)."""
    width, height = clip.size
    side = max(width, height)
    frames = np.zeros((clip.frames.shape[0], side, side, 3), np.uint8)
    top, left = (side - height) // 2, (side - width) // 2
    frames[:, top:top + height, left:left + width] = clip.frames
    return replace(clip, frames=frames)
