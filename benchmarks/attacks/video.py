"""Attacks pirates use on video, as functions over decoded frames, and the H.264 round trip.

A :class:`Clip` holds decoded frames (``uint8 [n, h, w, 3]`` RGB), their frame rate and a mono
soundtrack. Every attack takes a clip (plus, for composites and soundtrack swaps, an unrelated
``other`` clip) and returns the attacked clip; :func:`encode_clip` then writes it as an H.264 +
AAC mp4, which is what the benchmark hands to the fingerprinter. Randomness comes from the
``rng`` passed in, so a run repeats exactly.

Clips, their decoding and their encoding: :mod:`benchmarks.attacks.video_clips`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from fractions import Fraction

import numpy as np
from scipy import signal

from nanhu.benchmarks.attacks.video_clips import Clip, encode_clip
from nanhu.benchmarks.attacks.video_layouts import (
    blurred_background,
    crop_off_centre,
    filter_frames,
    letterbox_square,
    picture_in_picture,
    resize_frames,
    rotate90,
    rotate_zoom,
    side_by_side,
    top_bottom,
    zoom,
)

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------- helpers
def _map_frames(frames: np.ndarray, function: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Apply ``function`` frame by frame (no float copy of the whole clip)."""
    first = function(frames[0])
    out = np.empty((frames.shape[0], *first.shape), np.uint8)
    out[0] = first
    for index in range(1, frames.shape[0]):
        out[index] = function(frames[index])
    return out


def _even(x: float) -> int:
    return max(2, int(round(x / 2)) * 2)


def _lut(frames: np.ndarray, table: np.ndarray) -> np.ndarray:
    table = np.clip(np.round(table), 0, 255).astype(np.uint8)
    return _map_frames(frames, lambda f: table[f])


def _retime_indices(n_source: int, source_fps: float, out_fps: float, speed: float) -> np.ndarray:
    """Source frame shown at each output frame when playing ``speed`` times faster at
    ``out_fps`` (nearest earlier frame, as a constant-rate re-encode of retimed PTS does)."""
    n_out = int(np.floor(n_source / speed * out_fps / source_fps + 1e-6))
    source_times = np.arange(n_out) / out_fps * speed
    return np.minimum(np.floor(source_times * source_fps + 1e-6).astype(np.int64), n_source - 1)


def _fit_audio(audio: np.ndarray | None, n: int) -> np.ndarray | None:
    if audio is None:
        return None
    return np.resize(audio, n).astype(np.float32) if audio.size else np.zeros(n, np.float32)


# ---------------------------------------------------------------------------- attacks
def reencode(clip: Clip, rng: np.random.Generator, **_) -> Clip:
    """Nothing but the re-encode (the encode options carry the attack)."""
    return clip


def scale_to_height(clip: Clip, rng: np.random.Generator, *, height: int, **_) -> Clip:
    """Downscale to ``height`` lines, keeping the aspect ratio (240p: 426x240)."""
    width, old_height = clip.size
    return replace(clip, frames=resize_frames(clip.frames, _even(width * height / old_height),
                                              height))


def letterbox(clip: Clip, rng: np.random.Generator, **_) -> Clip:
    """Black bars above and below: the picture centred in a 4:3 frame (640x360 -> 640x480)."""
    width, height = clip.size
    canvas = _even(width * 3 / 4)
    top = (canvas - height) // 2
    frames = np.zeros((clip.frames.shape[0], canvas, width, 3), np.uint8)
    frames[:, top:top + height] = clip.frames
    return replace(clip, frames=frames)


def pillarbox(clip: Clip, rng: np.random.Generator, **_) -> Clip:
    """Black bars left and right: the picture centred in a frame 4/3 as wide (640 -> 854)."""
    width, height = clip.size
    canvas = _even(width * 4 / 3)
    left = (canvas - width) // 2
    frames = np.zeros((clip.frames.shape[0], height, canvas, 3), np.uint8)
    frames[:, :, left:left + width] = clip.frames
    return replace(clip, frames=frames)


def crop(clip: Clip, rng: np.random.Generator, *, fraction: float, **_) -> Clip:
    """Cut ``fraction`` of the width and of the height (half from each side; 10 % keeps the
    central 90 % x 90 % = 81 % of the picture), then scale back to the original size."""
    width, height = clip.size
    dx, dy = int(round(width * fraction / 2)), int(round(height * fraction / 2))
    return replace(clip, frames=resize_frames(
        np.ascontiguousarray(clip.frames[:, dy:height - dy, dx:width - dx]), width, height))


def hflip(clip: Clip, rng: np.random.Generator, **_) -> Clip:
    """Mirror left-right."""
    return replace(clip, frames=np.ascontiguousarray(clip.frames[:, :, ::-1]))


def brightness(clip: Clip, rng: np.random.Generator, *, delta: float, **_) -> Clip:
    """Add ``delta`` of full scale (0.2: +51 levels) to every channel, clipped."""
    return replace(clip, frames=_lut(clip.frames, np.arange(256) + 255 * delta))


def contrast(clip: Clip, rng: np.random.Generator, *, factor: float, **_) -> Clip:
    """Scale the distance from mid-grey (128) by ``factor``."""
    return replace(clip, frames=_lut(clip.frames, 128 + (np.arange(256) - 128) * factor))


def gamma(clip: Clip, rng: np.random.Generator, *, gamma: float, **_) -> Clip:
    """``out = 255 * (in / 255) ** gamma`` (gamma > 1 darkens the mid-tones)."""
    return replace(clip, frames=_lut(clip.frames, 255 * (np.arange(256) / 255) ** gamma))


def grayscale(clip: Clip, rng: np.random.Generator, **_) -> Clip:
    """BT.601 luma in all three channels."""
    weights = np.array([0.299, 0.587, 0.114], np.float32)

    def one(frame: np.ndarray) -> np.ndarray:
        luma = np.clip(frame @ weights + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(luma[:, :, None], 3, axis=2)

    return replace(clip, frames=_map_frames(clip.frames, one))


def blur(clip: Clip, rng: np.random.Generator, *, sigma: float, **_) -> Clip:
    """Gaussian blur of ``sigma`` pixels (FFmpeg's ``gblur`` through a PyAV filter graph)."""
    return replace(clip, frames=filter_frames(clip.frames, [("gblur", f"sigma={sigma}")]))


def noise(clip: Clip, rng: np.random.Generator, *, sigma: float, **_) -> Clip:
    """Additive Gaussian noise of ``sigma`` levels, fresh in every frame (drawn from a bank of
    8 noise fields, each shifted by a random offset, which keeps the attack cheap)."""
    width, height = clip.size
    bank = (rng.standard_normal((8, height, width, 3), dtype=np.float32) * sigma).astype(np.int16)

    def one(frame: np.ndarray) -> np.ndarray:
        field = np.roll(bank[int(rng.integers(8))], int(rng.integers(width)), axis=1)
        return np.clip(frame.astype(np.int16) + field, 0, 255).astype(np.uint8)

    return replace(clip, frames=_map_frames(clip.frames, one))


def _caption_overlay(rng: np.random.Generator, box_w: int, box_h: int) -> np.ndarray:
    """A caption: glyph-like white strokes on a dark box. Returns uint8 [box_h, box_w, 3]."""
    box = np.full((box_h, box_w, 3), 16, np.uint8)
    cell_h = max(6, int(box_h * 0.55))
    cell_w = max(4, int(cell_h * 0.6))
    stroke = max(1, cell_h // 8)
    top = (box_h - cell_h) // 2
    x = cell_w // 2
    while x + cell_w < box_w - cell_w // 2:
        if rng.uniform() < 0.15:  # a space between words
            x += cell_w
            continue
        for _ in range(int(rng.integers(2, 5))):
            if rng.uniform() < 0.5:  # horizontal stroke
                y0 = top + int(rng.integers(0, cell_h - stroke + 1))
                x0 = x + int(rng.integers(0, cell_w // 2))
                box[y0:y0 + stroke, x0:x0 + int(rng.integers(cell_w // 2, cell_w + 1))] = 235
            else:  # vertical stroke
                x0 = x + int(rng.integers(0, cell_w - stroke + 1))
                y0 = top + int(rng.integers(0, cell_h // 3))
                box[y0:y0 + int(rng.integers(cell_h // 2, cell_h + 1)), x0:x0 + stroke] = 235
        x += cell_w + max(1, stroke)
    return box


def caption(clip: Clip, rng: np.random.Generator, *, area: float = 0.10,
            every_s: float = 2.5, **_) -> Clip:
    """A subtitle: a filled dark box (80 % of the width, ``area`` of the frame) low in the frame
    with glyph-like strokes, its text changing every ``every_s`` seconds."""
    width, height = clip.size
    box_w = _even(width * 0.8)
    box_h = _even(area * width * height / box_w)
    x0, y0 = (width - box_w) // 2, height - box_h - _even(height * 0.05)
    frames = clip.frames.copy()
    per_caption = max(1, int(round(every_s * clip.fps)))
    for start in range(0, frames.shape[0], per_caption):
        frames[start:start + per_caption, y0:y0 + box_h, x0:x0 + box_w] = _caption_overlay(
            rng, box_w, box_h)
    return replace(clip, frames=frames)


def logo(clip: Clip, rng: np.random.Generator, *, area: float = 0.12, opacity: float = 0.6,
         **_) -> Clip:
    """A semi-opaque (``opacity``) badge in the top-right corner: a light disc with a dark
    bar inside, in a square of ``area`` of the frame."""
    width, height = clip.size
    side = int(round(np.sqrt(area * width * height)))
    margin = int(0.03 * min(width, height))
    x0, y0 = width - side - margin, margin
    yy, xx = np.mgrid[0:side, 0:side]
    r = side / 2
    disc = (xx - r + 0.5) ** 2 + (yy - r + 0.5) ** 2 <= r * r
    bar = (np.abs(yy - r) < side * 0.12) & (np.abs(xx - r) < side * 0.32)
    colour = np.zeros((side, side, 3), np.float32)
    colour[disc] = (240, 200, 40)
    colour[bar] = (30, 30, 120)
    alpha = (disc * opacity).astype(np.float32)[:, :, None]
    frames = clip.frames.copy()
    region = frames[:, y0:y0 + side, x0:x0 + side].astype(np.float32)
    frames[:, y0:y0 + side, x0:x0 + side] = np.clip(
        region * (1 - alpha) + colour * alpha + 0.5, 0, 255).astype(np.uint8)
    return replace(clip, frames=frames)


def frame_rate(clip: Clip, rng: np.random.Generator, *, fps: float, **_) -> Clip:
    """Convert to ``fps`` by dropping or repeating frames (same duration, same soundtrack)."""
    index = _retime_indices(clip.frames.shape[0], clip.fps, fps, 1.0)
    return replace(clip, frames=clip.frames[index], fps=float(fps))


def change_speed(clip: Clip, rng: np.random.Generator, *, speed: float, **_) -> Clip:
    """Play ``speed`` times faster: presentation times divided by ``speed``, re-sampled to the
    original frame rate; the soundtrack is resampled with it (pitch follows, as on tape)."""
    index = _retime_indices(clip.frames.shape[0], clip.fps, clip.fps, speed)
    audio = clip.audio
    if audio is not None:
        ratio = Fraction(1 / speed).limit_denominator(100)
        audio = signal.resample_poly(audio, ratio.numerator, ratio.denominator).astype(np.float32)
    return replace(clip, frames=clip.frames[index], audio=audio)


def replace_soundtrack(clip: Clip, rng: np.random.Generator, *, other: Clip, **_) -> Clip:
    """Keep the picture, swap the soundtrack for ``other``'s (unrelated, never registered)."""
    n = int(round(clip.duration_s * clip.sample_rate))
    return replace(clip, audio=_fit_audio(other.audio, n))


def chain(*steps: tuple[Callable, dict]) -> Callable:
    """Several attacks, applied in order."""
    def apply(clip: Clip, rng: np.random.Generator, **context) -> Clip:
        for function, kwargs in steps:
            clip = function(clip, rng, **context, **kwargs)
        return clip

    apply.__doc__ = " then ".join(function.__name__ for function, _ in steps)
    return apply


@dataclass(frozen=True)
class Attack:
    """One benchmark condition: the frame attack, its true speed and the final encode."""

    name: str
    function: Callable[..., Clip]
    kwargs: dict
    #: the query plays this many times faster than the reference
    speed: float = 1.0
    #: average video bit rate of the final encode in b/s (None: CRF 23)
    bit_rate: int | None = None
    #: needs ``other`` footage (composites, soundtrack swap)
    needs_other: bool = False

    def apply(self, clip: Clip, rng: np.random.Generator, *, other: Clip | None = None) -> Clip:
        if self.needs_other and other is None:
            raise ValueError(f"attack {self.name} needs other footage")
        return self.function(clip, rng, other=other, **self.kwargs)

    def encode(self, clip: Clip) -> bytes:
        return encode_clip(clip, bit_rate=self.bit_rate)


ATTACKS: dict[str, Attack] = {a.name: a for a in [
    Attack("360p", reencode, {}),
    Attack("low-bitrate-150k", reencode, {}, bit_rate=150_000),
    Attack("240p", scale_to_height, {"height": 240}),
    Attack("letterbox", letterbox, {}),
    Attack("pillarbox", pillarbox, {}),
    Attack("crop-10%", crop, {"fraction": 0.10}),
    Attack("crop-20%", crop, {"fraction": 0.20}),
    Attack("hflip", hflip, {}),
    Attack("brightness+20%", brightness, {"delta": 0.20}),
    Attack("contrast-0.6", contrast, {"factor": 0.6}),
    Attack("gamma-1.6", gamma, {"gamma": 1.6}),
    Attack("grayscale", grayscale, {}),
    Attack("blur-3px", blur, {"sigma": 3.0}),
    Attack("noise-20", noise, {"sigma": 20.0}),
    Attack("caption", caption, {}),
    Attack("logo", logo, {}),
    Attack("fps-15", frame_rate, {"fps": 15}),
    Attack("fps-60", frame_rate, {"fps": 60}),
    Attack("speed-0.8", change_speed, {"speed": 0.8}, speed=0.8),
    Attack("speed-1.25", change_speed, {"speed": 1.25}, speed=1.25),
    Attack("pip-50%", picture_in_picture, {}, needs_other=True),
    Attack("side-by-side", side_by_side, {}, needs_other=True),
    Attack("rotate-90", rotate90, {}),
    Attack("crop10+flip+bright", chain((crop, {"fraction": 0.10}), (hflip, {}),
                                       (brightness, {"delta": 0.20})), {}),
    Attack("letterbox+logo+360p", chain((letterbox, {}), (logo, {}),
                                        (scale_to_height, {"height": 360})), {}),
    Attack("soundtrack-replaced", replace_soundtrack, {}, needs_other=True),
    # issue 11: re-uploaders' framing and layout edits (benchmarks.attacks.video_layouts)
    Attack("crop-30%-off-centre", crop_off_centre, {"fraction": 0.30}),
    Attack("blurred-background", blurred_background, {}),
    Attack("letterbox-1:1", letterbox_square, {}),
    Attack("pip-40%", picture_in_picture, {"scale": 0.4}, needs_other=True),
    Attack("top-bottom", top_bottom, {}, needs_other=True),
    Attack("rotate-5+zoom", rotate_zoom, {"degrees": 5.0, "factor": 1.2}),
    Attack("zoom-1.3x", zoom, {"factor": 1.3}),
]}

#: the widest speed any attack applies: clips are cut this much longer than their length
MAX_SPEED = max(a.speed for a in ATTACKS.values())
