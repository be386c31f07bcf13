"""Seams between pictures: where a split layout or a picture-in-picture window meets the rest.

Two cues, each a map of strength 0..1 at every pixel boundary of a clip's frames
(:func:`engine.video.framing.find_views` tests each on its own):

- *Disagreement* (:func:`seam_maps`): 1 minus the correlation, over the frames and a few
  pixels along the boundary, of the pixels a few apart across it. It needs motion or texture
  on both sides, and on few frames of squeezed, still or barred footage (a side by side of
  two 16:9 pictures decoded square) its level inside one picture is 0.3-0.7, so a seam hardly
  stands out.
- *Persistent straight edges* (:func:`line_maps`): the share of frames in which the step
  across the boundary is a clear ridge (larger than the steps two pixels to either side and
  than a floor). Two unrelated pictures side by side differ at nearly every row of the seam,
  in every frame, so a seam reaches ~0.9-1 while content stays ~0.1 (an edge of an object is
  neither straight over the whole axis nor in the same place frame after frame). It works
  on a single frame, as the persistent edge maps of the VSC22 winners' preprocessing do.

A split seam must be strong in both halves of its length (:func:`split_at`): a
picture-in-picture window's side is a seam over only part of the frame.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def seam_maps(frames: np.ndarray, *, gap: int = 3, window: int = 9
              ) -> tuple[np.ndarray, np.ndarray]:
    """Disagreement across every pixel boundary: (vertical float32[h, w], horizontal
    float32[h, w]); ``vertical[y, x]`` is 1 minus the local correlation, over the frames and
    ``window`` rows around ``y``, of columns ``x - 1 - gap // 2`` and ``x + gap - 1 - gap // 2``:
    near 0 inside a picture, near 1 across a seam. Where both sides are flat nothing can be
    told (0); where one is, 0.5. Boundaries too near the edge get 0.

    frames : ndarray [shape=(n, h, w)], float32 luma 0..255
    """
    return (_seam_map(frames, gap, window),
            _seam_map(frames.transpose(0, 2, 1), gap, window).T)


def _seam_map(frames: np.ndarray, g: int, size: int) -> np.ndarray:
    n, h, w = frames.shape
    a, b = frames[:, :, :-g], frames[:, :, g:]

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


def line_maps(frames: np.ndarray, *, floor: float = 6.0, ratio: float = 2.0, reach: int = 2,
              window: int = 9) -> tuple[np.ndarray, np.ndarray]:
    """Persistent straight edges at every pixel boundary: (vertical float32[h, w], horizontal
    float32[h, w]); ``vertical[y, x]`` is the share of frames, over ``window`` rows around
    ``y``, in which the step between columns ``x - 1`` and ``x`` is at least ``floor`` levels
    and ``ratio`` times the larger of the steps ``reach`` columns to either side. Column 0
    (row 0) has no boundary and gets 0. Works from one frame.

    frames : ndarray [shape=(n, h, w)], float32 luma 0..255
    """
    kw = {"floor": floor, "ratio": ratio, "reach": reach, "window": window}
    return (_line_map(frames, **kw), _line_map(frames.transpose(0, 2, 1), **kw).T)


def _line_map(frames: np.ndarray, *, floor: float, ratio: float, reach: int,
              window: int) -> np.ndarray:
    n, h, w = frames.shape
    step = np.abs(np.diff(frames, axis=2))  # [n, h, w - 1]; index j: between columns j, j + 1
    padded = np.pad(step, ((0, 0), (0, 0), (reach, reach)), mode="edge")
    neighbours = np.maximum(padded[:, :, : -2 * reach], padded[:, :, 2 * reach:])
    ridge = (step >= floor) & (step >= ratio * neighbours)
    out = np.zeros((h, w), np.float32)
    out[:, 1:] = ridge.mean(0)
    return ndimage.uniform_filter1d(out, window, axis=0, mode="nearest")


def split_at(vertical: np.ndarray, *, strength: float, contrast: float,
             band: tuple[float, float]) -> float | None:
    """Share of the width where a full-height seam splits the frame, or None: the boundary in
    the middle ``band`` (shares of the width) whose weaker half (top or bottom half of its
    length, mean strength) is strongest, when that reaches ``strength`` and ``contrast`` times
    the median strength of the frame's columns (the outer 10 % left out).

    vertical : ndarray [shape=(h, w)], a map of :func:`seam_maps` or :func:`line_maps`
    """
    h, w = vertical.shape
    profile = vertical.mean(0)
    halves = np.minimum(vertical[: h // 2].mean(0), vertical[h // 2:].mean(0))
    lo, hi = int(w * band[0]), int(np.ceil(w * band[1]))
    x = lo + int(np.argmax(halves[lo:hi]))
    typical = float(np.median(profile[w // 10: w - w // 10]))
    if halves[x] < strength or halves[x] < contrast * typical:
        return None
    return x / w


def pip_window(vertical: np.ndarray, horizontal: np.ndarray, *, strength: float,
               contrast: float, side: tuple[float, float], step: int
               ) -> tuple[float, float, float, float] | None:
    """The best picture-in-picture window as shares (top, bottom, left, right): the rectangle
    (corners on a ``step``-pixel grid, sides between ``side`` shares of the frame's, at most
    one on the frame's edge, which counts as a seam) whose weakest side (mean strength) is
    strongest; None when that side is below ``strength`` or ``contrast`` times the median.

    vertical, horizontal : ndarray [shape=(h, w)], maps of one cue (:func:`seam_maps` or
    :func:`line_maps`)
    """
    h, w = vertical.shape
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
    lo_w, hi_w = side[0] * w, side[1] * w
    lo_h, hi_h = side[0] * h, side[1] * h
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
    if weakest[best] < strength:
        return None
    typical = float(np.median(vertical[:, w // 10: w - w // 10]))
    if weakest[best] < contrast * typical:
        return None
    i, j = best
    return (ys[y0s[j]] / h, ys[y1s[j]] / h, xs[x0s[i]] / w, xs[x1s[i]] / w)
