"""Query views: undo re-uploaders' framing and split layouts before describing a frame.

A re-uploaded copy often shows the reference inside something else: a frame of static borders
or of a blurred, enlarged copy of itself, a half of a side-by-side or top/bottom composite, a
picture-in-picture window, or the whole picture turned a quarter. The global descriptor of the
whole frame then describes mostly the wrapping. This module finds, from the frames of a query
clip (not frame by frame: what persists over time is what tells a layout from content), the
regions worth describing on their own. Each becomes a *view*: the keyframes' region, resampled
to the sampler's frame size and embedded like a reference keyframe. References keep one view
(the whole frame), so the reference format does not change.

Cues (training-free, as the Meta VSC22 winners' preprocessing: persistent edges and per-pixel
change over time; the code here is this project's own):

- *Content box* (static borders, blurred-background frames): rows and columns at the edges
  that are much less sharp than the centre over the whole clip (a blurred copy, bars) or that
  do not change while the centre does (static graphics).
- *Seams*: where two unrelated pictures meet, neighbouring pixels stop agreeing. For every
  pixel boundary the local correlation, over the clip's frames and a few pixels along the
  boundary, of the pixels three apart across it is high inside one picture (~0.8-1) and low
  across a seam. A full-height (full-width) seam in the middle band splits the frame into two
  views (side by side, top/bottom); a rectangle whose every side is a seam or the frame's edge
  is a picture-in-picture window.
- *Rotation*: a portrait frame may hold a landscape picture turned a quarter: the quarter turns
  (90 and 270 degrees; 180 is a mirror of a flip the descriptor ignores) are tried.

Every extra view is one more chance for an unrelated query to match; the alignment charges
for it (:func:`engine.video.align.align_video`, ``views``) and plain full-frame video gets no
extra view.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

#: view kinds, by the id stored with each query vector (0: the whole frame, as references)
VIEW_NAMES = ("full", "box", "left", "right", "top", "bottom", "pip", "rot90", "rot270")
VIEW_IDS = {name: i for i, name in enumerate(VIEW_NAMES)}


@dataclass(frozen=True)
class ViewParams:
    """Query-side view search (it does not change reference fingerprints)."""

    #: queries are decoded at this size (luma, square), so that a region keeps detail; the
    #: whole-frame view is its 2x2 mean, the reference's 64x64
    decode_size: int = 128
    #: content box: an edge row/column is outside the content when its sharpness is below this
    #: share of the centre's, or (when the centre moves) its change below this share
    box_sharpness_share: float = 0.45
    box_change_share: float = 0.25
    #: a content box must cut at least this share of a side, and keep this share of the area
    box_min_cut: float = 0.06
    box_min_area: float = 0.25
    #: seams: pixels this far apart across a boundary are compared, over a window this many
    #: pixels long along it; a seam's mean strength (1 - correlation) must reach this
    seam_gap: int = 3
    seam_window: int = 9
    seam_strength: float = 0.35
    #: and be this many times the boundary's typical (median) strength on its axis
    seam_contrast: float = 2.5
    #: split seams lie in this middle band of the axis
    split_band: tuple[float, float] = (0.3, 0.7)
    #: picture-in-picture windows: side between these shares of the frame's, grid step (pixels)
    pip_side: tuple[float, float] = (0.25, 0.75)
    pip_step: int = 4
    #: fewest frames for temporal cues (fewer: only rotations are tried)
    min_frames: int = 3
    #: a frame this much taller than wide may be a quarter-turned landscape picture
    portrait_ratio: float = 1.1


@dataclass(frozen=True)
class View:
    """One region of a query's frames: ``box`` = (top, bottom, left, right) as shares of the
    frame (0..1), then ``turns`` counter-clockwise quarter turns."""

    name: str
    box: tuple[float, float, float, float] = (0.0, 1.0, 0.0, 1.0)
    turns: int = 0

    @property
    def id(self) -> int:
        return VIEW_IDS[self.name]


FULL = View("full")


def find_views(frames: np.ndarray, *, source_size: tuple[int, int] | None = None,
               params: ViewParams | None = None) -> list[View]:
    """The views worth describing for a query clip, the whole frame first.

    frames : ndarray [shape=(n, s, s)], luma 0..255, a clip's sampled frames in time order
    source_size : (width, height) of the decoded video, pixels (aspect: rotations), or None
    Returns views; ``[FULL]`` alone for plain full-frame video.
    """
    params = params or ViewParams()
    x = np.asarray(frames, np.float32)
    views = [FULL]
    if source_size is not None and source_size[1] > params.portrait_ratio * source_size[0]:
        views += [View("rot90", turns=1), View("rot270", turns=3)]
    if x.ndim != 3 or x.shape[0] < params.min_frames:
        return views
    box = content_box(x, params=params)
    if box is not None and not _bars_only(x, box):
        views.append(View("box", box))
    vertical, horizontal = seam_maps(x, params=params)
    split = _split(vertical, params)
    if split is not None:
        views += [View("left", (0.0, 1.0, 0.0, split)), View("right", (0.0, 1.0, split, 1.0))]
    split = _split(horizontal.T, params)
    if split is not None:
        views += [View("top", (0.0, split, 0.0, 1.0)), View("bottom", (split, 1.0, 0.0, 1.0))]
    pip = _pip_window(vertical, horizontal, params)
    if pip is not None:
        views.append(View("pip", pip))
    return views


def content_box(frames: np.ndarray, *, params: ViewParams | None = None
                ) -> tuple[float, float, float, float] | None:
    """The clip's content box inside static or blurred framing, as shares (top, bottom, left,
    right), or None when the content fills the frame (bars alone are cut per frame already,
    :func:`engine.video.embed.detect_borders`, but they are found here too).

    frames : ndarray [shape=(n, h, w)], float32 luma
    """
    params = params or ViewParams()
    n, h, w = frames.shape
    # Laplacian, not gradient: a blurred copy keeps some gradient, hardly any curvature.
    sharp = np.abs(np.stack([ndimage.laplace(f, mode="nearest") for f in frames])).mean(0)
    change = np.abs(np.diff(frames, axis=0)).mean(0)
    cuts = []
    for axis, size in ((1, h), (0, w)):  # rows (mean over columns), then columns
        s_prof, c_prof = sharp.mean(axis), change.mean(axis)
        middle = slice(int(size * 0.3), int(size * 0.7))
        s_ref, c_ref = float(np.median(s_prof[middle])), float(np.median(c_prof[middle]))
        if s_ref <= 1e-3:
            return None
        outside = s_prof < params.box_sharpness_share * s_ref
        if c_ref > 0.5:
            outside |= c_prof < params.box_change_share * c_ref
        for prof in (outside, outside[::-1]):
            run = int(np.argmin(prof)) if not prof.all() else size
            cuts.append(min(run, size // 2 - 1))
    top, bottom, left, right = cuts
    box = (top / h, 1 - bottom / h, left / w, 1 - right / w)
    cut = max(top / h, bottom / h, left / w, right / w)
    area = (box[1] - box[0]) * (box[3] - box[2])
    if cut < params.box_min_cut or area < params.box_min_area:
        return None
    return box


def _bars_only(frames: np.ndarray, box: tuple[float, float, float, float]) -> bool:
    """True when ``box`` is what per-frame bar removal finds anyway (then it adds nothing)."""
    from nanhu.engine.video.embed import detect_borders

    n, h, w = frames.shape
    small = frames[:, : h - h % 16, : w - w % 16]
    small = small.reshape(n, small.shape[1] // 2, 2, small.shape[2] // 2, 2).mean((2, 4))
    bars = np.median(detect_borders(small), 0) / np.array([small.shape[1]] * 2
                                                          + [small.shape[2]] * 2)
    return bool(np.all(np.abs(bars - np.asarray(box)) <= 0.05))


def seam_maps(frames: np.ndarray, *, params: ViewParams | None = None
              ) -> tuple[np.ndarray, np.ndarray]:
    """Seam strength at every pixel boundary: (vertical float32[h, w], horizontal
    float32[h, w]); ``vertical[y, x]`` is 1 minus the local correlation, over the frames and
    ``seam_window`` rows around ``y``, of columns ``x - 1 - g // 2`` and ``x + g - 1 - g // 2``
    (``g = seam_gap``): near 0 inside a picture, near 1 across a seam. Where both sides are flat
    nothing can be told (0); where one is, 0.5. Boundaries too near the edge get 0.
    """
    params = params or ViewParams()
    return (_seam_map(frames, params),
            _seam_map(frames.transpose(0, 2, 1), params).T)


def _seam_map(frames: np.ndarray, params: ViewParams) -> np.ndarray:
    n, h, w = frames.shape
    g = params.seam_gap
    a, b = frames[:, :, :-g], frames[:, :, g:]
    size = params.seam_window

    def local(v: np.ndarray) -> np.ndarray:
        return ndimage.uniform_filter1d(v.mean(0), size, axis=0, mode="nearest")

    ma, mb = local(a), local(b)
    va = np.maximum(local(a * a) - ma * ma, 0.0)
    vb = np.maximum(local(b * b) - mb * mb, 0.0)
    cov = local(a * b) - ma * mb
    flat_a, flat_b = va < 4.0, vb < 4.0
    corr = cov / np.sqrt(np.maximum(va * vb, 1e-6))
    strength = np.clip(1.0 - corr, 0.0, 1.0)
    strength = np.where(flat_a & flat_b, 0.0, np.where(flat_a | flat_b, 0.5, strength))
    out = np.zeros((h, w), np.float32)
    # boundary between columns x - 1 and x lies between a's column and b's
    start = g // 2 + 1
    out[:, start:start + strength.shape[1]] = strength
    return out


def _split(vertical: np.ndarray, params: ViewParams) -> float | None:
    """Share of the width where a full-height seam splits the frame, or None."""
    h, w = vertical.shape
    profile = vertical.mean(0)
    lo, hi = int(w * params.split_band[0]), int(np.ceil(w * params.split_band[1]))
    x = lo + int(np.argmax(profile[lo:hi]))
    typical = float(np.median(profile[w // 10: w - w // 10]))
    if profile[x] < params.seam_strength or profile[x] < params.seam_contrast * typical:
        return None
    return x / w


def _pip_window(vertical: np.ndarray, horizontal: np.ndarray, params: ViewParams
                ) -> tuple[float, float, float, float] | None:
    """The best picture-in-picture window: the rectangle whose weakest side (a seam, or the
    frame's edge, which counts as one) is strongest; None when it is not a seam."""
    h, w = vertical.shape
    step = params.pip_step
    xs, ys = np.arange(0, w + 1, step), np.arange(0, h + 1, step)
    # Mean strength of each vertical side (column x, rows y0..y1) from cumulative sums.
    # A seam found within a pixel of a grid line counts on it.
    vertical = ndimage.maximum_filter1d(vertical, 3, axis=1)
    horizontal = ndimage.maximum_filter1d(horizontal, 3, axis=0)
    cv = np.concatenate([np.zeros((1, w)), np.cumsum(vertical, 0)], 0)  # [h + 1, w]
    col = np.clip(xs, 0, w - 1)
    row = np.clip(ys, 0, h - 1)
    span_y = np.maximum(ys[None, :] - ys[:, None], 1)
    span_x = np.maximum(xs[None, :] - xs[:, None], 1)
    # side_v[x, y0, y1], side_h[y, x0, x1]
    side_v = cv[ys][None, :, :] - cv[ys][:, None, :]  # [y0, y1, w]
    side_v = side_v[:, :, col].transpose(2, 0, 1) / span_y[None]
    hv = np.concatenate([np.zeros((h, 1)), np.cumsum(horizontal, 1)], 1)[row][:, xs]
    side_h = (hv[:, None, :] - hv[:, :, None]) / span_x[None]  # [y, x0, x1]
    edge_x = (xs == 0) | (xs == w)
    edge_y = (ys == 0) | (ys == h)
    side_v = np.where(edge_x[:, None, None], 1.0, side_v)
    side_h = np.where(edge_y[:, None, None], 1.0, side_h)
    lo_w, hi_w = params.pip_side[0] * w, params.pip_side[1] * w
    lo_h, hi_h = params.pip_side[0] * h, params.pip_side[1] * h
    ok_x = (span_x >= lo_w) & (span_x <= hi_w) & (xs[None, :] > xs[:, None])
    ok_y = (span_y >= lo_h) & (span_y <= hi_h) & (ys[None, :] > ys[:, None])
    x0s, x1s = np.nonzero(ok_x)
    y0s, y1s = np.nonzero(ok_y)
    if x0s.size == 0 or y0s.size == 0:
        return None
    # weakest side of every (x-pair, y-pair) rectangle
    left = side_v[x0s][:, y0s, y1s]  # [px, py]
    right = side_v[x1s][:, y0s, y1s]
    top = side_h[y0s][:, x0s, x1s].T  # [px, py]
    bottom = side_h[y1s][:, x0s, x1s].T
    # A rectangle with two or more sides on the frame's edge is a split, the frame, or a
    # corner of content (one straight edge each way, horizons and walls, makes an "L").
    on_edge = (edge_x[x0s].astype(int) + edge_x[x1s])[:, None] + (
        edge_y[y0s].astype(int) + edge_y[y1s])[None, :]
    weakest = np.minimum(np.minimum(left, right), np.minimum(top, bottom))
    weakest = np.where(on_edge >= 2, 0.0, weakest)
    best = np.unravel_index(int(np.argmax(weakest)), weakest.shape)
    if weakest[best] < params.seam_strength:
        return None
    typical = float(np.median(vertical[:, w // 10: w - w // 10]))
    if weakest[best] < params.seam_contrast * typical:
        return None
    i, j = best
    return (ys[y0s[j]] / h, ys[y1s[j]] / h, xs[x0s[i]] / w, xs[x1s[i]] / w)


def view_frames(frames: np.ndarray, view: View, *, size: int) -> np.ndarray:
    """The view's region of every frame, area-resampled to ``size x size``, then turned.

    frames : ndarray [shape=(n, s, s)], luma
    Returns float32[n, size, size].
    """
    from nanhu.engine.video.embed import _area_matrices

    x = np.asarray(frames, np.float32)
    n, h, w = x.shape
    top, bottom, left, right = view.box
    rows = _area_matrices(np.array([top * h]), np.array([bottom * h]), h, size)[0]
    cols = _area_matrices(np.array([left * w]), np.array([right * w]), w, size)[0]
    out = np.einsum("ij,njk,lk->nil", rows, x, cols, optimize=True)
    if view.turns:
        out = np.rot90(out, k=-view.turns, axes=(1, 2))
    return np.ascontiguousarray(out, np.float32)
