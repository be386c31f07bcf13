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
- *Seams* (:mod:`engine.video.seams`): where two unrelated pictures meet, neighbouring
  pixels stop agreeing (over the clip's frames, the pixels a few apart across a boundary
  stop correlating), and the step across the boundary is a straight edge that persists in
  every frame (this works from a single frame). A full-height (full-width) seam in the middle
  band splits the frame into two views (side by side, top/bottom); a rectangle whose every
  side is a seam or the frame's edge is a picture-in-picture window. A frame whose halves
  have a common aspect (1280x360: two 640x360s; 640x720 stacked) gets its halves as views
  even when no seam shows (two bars meeting at it, or two pictures alike there).
- *Rotation*: a portrait frame may hold a landscape picture turned a quarter: the quarter turns
  (90 and 270 degrees; 180 is a mirror of a flip the descriptor ignores) are tried, unless it
  is split top/bottom (a stacked composite is taller than wide without being turned).

Every extra view is one more chance for an unrelated query to match; the alignment charges
for it (:func:`engine.video.align.align_video`, ``views``) and plain full-frame video gets no
extra view.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from nanhu.engine.video import seams

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
    #: seams, disagreement cue: pixels this far apart across a boundary are compared, over a
    #: window this many pixels long along it; a seam's mean strength (1 - correlation) must
    #: reach this (in both halves of its length for a split)
    seam_gap: int = 3
    seam_window: int = 9
    seam_strength: float = 0.35
    #: and be this many times the boundary's typical (median) strength on its axis (both cues)
    seam_contrast: float = 2.5
    #: seams, persistent-edge cue: a step of ``line_floor`` levels or more, ``line_ratio`` times
    #: the steps ``line_reach`` pixels to either side, in this share of frames and rows
    line_floor: float = 6.0
    line_ratio: float = 2.0
    line_reach: int = 2
    line_strength: float = 0.5
    #: split seams lie in this middle band of the axis
    split_band: tuple[float, float] = (0.3, 0.7)
    #: a frame whose halves have one of these aspects (width / height, within the tolerance)
    #: is a two-picture composite: its halves are views even where no seam shows
    stacked_aspects: tuple[float, ...] = (16 / 9, 4 / 3)
    stacked_tolerance: float = 0.04
    #: picture-in-picture windows: side between these shares of the frame's, grid step (pixels)
    pip_side: tuple[float, float] = (0.25, 0.75)
    pip_step: int = 4
    #: fewest frames for temporal cues (content box, disagreement); fewer: edges and aspect
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
    layout = stacked_layout(source_size, params=params)
    portrait = source_size is not None and source_size[1] > params.portrait_ratio * source_size[0]
    split = split_h = pip = None
    if x.ndim == 3 and x.shape[0] >= 1:
        temporal = x.shape[0] >= params.min_frames
        if temporal:
            box = content_box(x, params=params)
            if box is not None and not _bars_only(x, box):
                views.append(View("box", box))
        split, split_h, pip = _seams(x, params, temporal)
    # The aspect of a two-picture composite says where to look when its seam does not show
    # (the seam between two bars, or two pictures alike at it).
    if split is None and layout == "side":
        split = 0.5
    if split_h is None and layout == "stacked":
        split_h = 0.5
    if split is not None:
        views += [View("left", (0.0, 1.0, 0.0, split)), View("right", (0.0, 1.0, split, 1.0))]
    if split_h is not None:
        views += [View("top", (0.0, split_h, 0.0, 1.0)), View("bottom", (split_h, 1.0, 0.0, 1.0))]
    if pip is not None:
        views.append(View("pip", pip))
    # A stacked frame is taller than wide without being turned: no quarter turns for it.
    if portrait and split_h is None:
        views[1:1] = [View("rot90", turns=1), View("rot270", turns=3)]
    return views


def _seams(frames: np.ndarray, params: ViewParams, temporal: bool
           ) -> tuple[float | None, float | None, tuple[float, float, float, float] | None]:
    """(vertical split share, horizontal split share, picture-in-picture box) from the seam
    cues of :mod:`engine.video.seams`, each tested on its own: splits by the disagreement
    across a boundary (needs ``temporal``: ``min_frames`` frames), then by persistent
    straight edges; windows the other way round (a window's sides beside bars or flat
    background are edges with no texture to disagree on: measured, the edges put the box
    within 0.9-0.96 IoU of the true window where disagreement put it at 0-0.5)."""
    cues = []
    if temporal:
        cues.append((seams.seam_maps(frames, gap=params.seam_gap, window=params.seam_window),
                     params.seam_strength))
    cues.append((seams.line_maps(frames, floor=params.line_floor, ratio=params.line_ratio,
                                 reach=params.line_reach, window=params.seam_window),
                 params.line_strength))
    split = split_h = pip = None
    for (vertical, horizontal), strength in cues:
        test = {"strength": strength, "contrast": params.seam_contrast}
        if split is None:
            split = seams.split_at(vertical, band=params.split_band, **test)
        if split_h is None:
            split_h = seams.split_at(horizontal.T, band=params.split_band, **test)
    for (vertical, horizontal), strength in cues[::-1]:
        if pip is None:
            pip = seams.pip_window(vertical, horizontal, side=params.pip_side,
                                   step=params.pip_step, strength=strength,
                                   contrast=params.seam_contrast)
    return split, split_h, pip


def stacked_layout(source_size: tuple[int, int] | None, *, params: ViewParams | None = None
                   ) -> str | None:
    """"side" when a frame of ``source_size`` (width, height, pixels) is two pictures of a
    common aspect (``params.stacked_aspects``) side by side, "stacked" when it is two stacked
    one above the other, else None (a 1280x360 frame is two 640x360s side by side; 640x720,
    two stacked)."""
    params = params or ViewParams()
    if source_size is None or min(source_size) <= 0:
        return None
    width, height = source_size
    for aspect in params.stacked_aspects:
        if abs(width / 2 / height / aspect - 1) <= params.stacked_tolerance:
            return "side"
        if abs(width / (height / 2) / aspect - 1) <= params.stacked_tolerance:
            return "stacked"
    return None


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
