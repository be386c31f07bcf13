"""Local features of keyframes: ORB keypoints, and their geometric verification with RANSAC.

The global embedding (:mod:`engine.video.embed`) describes a whole frame; a 20-30 % crop, a
caption band, a logo or a zoom change enough of it that an attacked keyframe is no longer
significantly close to its reference. Local features survive these edits: the keypoints of the
part of the picture that is left still match, and they agree on one affine map of the
reference onto the query. Unrelated frames give a few chance matches that agree on no map.

- References keep ORB features (``reference_features`` keypoints a keyframe, 32-byte
  descriptors, coordinates on a 256 grid) of a sparse subset of keyframes: one when the picture
  has changed from the last kept one, within a byte budget per hour
  (:class:`LocalSelector`), stored per catalog segment (:mod:`engine.store.local_features`).
- Queries keep ORB features of a keyframe every ``query_every_s`` (more keypoints, and of the
  mirrored frame too: ORB is not mirror invariant, the global descriptor is).
- :func:`count_inliers` matches one query frame against reference keyframes (Hamming distance,
  ratio test) and counts, per reference keyframe, the matches that agree on one affine map
  (``cv2.estimateAffine2D``, RANSAC). What that count means by chance is measured, not
  assumed (:mod:`engine.video.verify`).

OpenCV is used for ORB and RANSAC only; everything else is numpy.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import cv2
import numpy as np

#: ORB descriptor size (bytes)
DESCRIPTOR_BYTES = 32
#: coordinates are stored on a grid of this many steps per side of the detail frame
GRID = 256


@dataclass(frozen=True)
class LocalParams:
    """Local-feature parameters; ``version`` changes whenever stored features would change."""

    version: int = 1
    #: detail frames: the decoded frame scaled to this longest side (pixels), aspect kept
    detail_size: int = 320
    #: ORB keypoints kept per reference keyframe (the strongest)
    reference_features: int = 48
    #: ORB keypoints per query frame
    query_features: int = 500
    #: most bytes of local features a reference keeps per hour of video
    bytes_per_hour: int = 300_000
    #: a reference keyframe is kept when its 64x64 frame differs from the last kept one by at
    #: least this mean absolute difference (luma levels)
    change_levels: float = 12.0
    #: ... and it differs from the frame sampled before it by at most this (luma levels): not
    #: a dissolve or a fade, whose frames are neither shot
    stable_levels: float = 6.0
    #: ... and its 64x64 frame's standard deviation is at least this (luma levels)
    min_contrast: float = 16.0
    #: the budget's bucket holds this many keyframes (a burst of cuts is covered this far)
    bucket_keyframes: float = 4.0
    #: query frames are described every this many seconds ...
    query_every_s: float = 1.0
    #: ... until this many are held; then every other one is dropped and the step doubles, so
    #: a long upload holds a bounded, evenly spread set (64 x 2 x 500 keypoints: ~2 MB)
    max_query_frames: int = 64
    #: ratio test: best Hamming distance below this share of the second best
    ratio: float = 0.85
    #: a match must be at most this Hamming distance (of 256 bits)
    max_distance: int = 80
    #: RANSAC inlier tolerance in query detail pixels
    ransac_px: float = 4.0
    #: fewest ratio-test matches for a reference keyframe to be tried with RANSAC
    min_matches: int = 5

    @property
    def keyframe_bytes(self) -> int:
        """Stored bytes of one reference keyframe at full count: descriptors, 2-byte
        coordinates, and its time and count (8 bytes)."""
        return self.reference_features * (DESCRIPTOR_BYTES + 2) + 8

    def tag(self) -> str:
        return f"orb-v{self.version}"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class LocalFeatures:
    """ORB features of some keyframes of one track.

    times_s : ndarray [shape=(m,)], float32, keyframe time (s)
    counts : ndarray [shape=(m,)], int32, keypoints of each keyframe
    xy : ndarray [shape=(sum(counts), 2)], uint8, keypoint coordinates on a GRID x GRID grid
        spanning the detail frame (x, y), keyframe after keyframe
    descriptors : ndarray [shape=(sum(counts), 32)], uint8, ORB descriptors, same order
    size : (width, height) of the detail frames in pixels
    flipped : ndarray [shape=(m,)], bool, or None: queries describe each frame twice, as
        shown and mirrored (rows alternate); None for references
    """

    times_s: np.ndarray
    counts: np.ndarray
    xy: np.ndarray
    descriptors: np.ndarray
    size: tuple[int, int]
    flipped: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.times_s.size)

    @property
    def starts(self) -> np.ndarray:
        """First keypoint row of each keyframe: int64[m + 1] (the last is the total)."""
        return np.concatenate([[0], np.cumsum(self.counts, dtype=np.int64)])

    def points(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Keyframe ``i``: (xy float32[c, 2] in detail pixels, descriptors uint8[c, 32])."""
        lo, hi = self.starts[i], self.starts[i + 1]
        return grid_to_pixels(self.xy[lo:hi], self.size), self.descriptors[lo:hi]

    def nbytes(self) -> int:
        """Stored bytes (as :mod:`engine.store.local_features` writes them, less the header)."""
        return int(self.xy.nbytes + self.descriptors.nbytes + 8 * self.times_s.size)

    @staticmethod
    def concat(parts: list[LocalFeatures], size: tuple[int, int]) -> LocalFeatures:
        """One LocalFeatures of several (time order is the caller's)."""
        if not parts:
            return empty_features(size)
        flipped = None if parts[0].flipped is None else np.concatenate(
            [p.flipped for p in parts])
        return LocalFeatures(
            np.concatenate([p.times_s for p in parts]).astype(np.float32),
            np.concatenate([p.counts for p in parts]).astype(np.int32),
            np.concatenate([p.xy for p in parts]).reshape(-1, 2).astype(np.uint8),
            np.concatenate([p.descriptors for p in parts]).reshape(
                -1, DESCRIPTOR_BYTES).astype(np.uint8),
            size, flipped)


def empty_features(size: tuple[int, int] = (0, 0)) -> LocalFeatures:
    return LocalFeatures(np.zeros(0, np.float32), np.zeros(0, np.int32),
                         np.zeros((0, 2), np.uint8), np.zeros((0, DESCRIPTOR_BYTES), np.uint8),
                         size)


def detail_shape(width: int, height: int, detail_size: int) -> tuple[int, int]:
    """(width, height) of a detail frame: the longest side ``detail_size``, even sides."""
    scale = detail_size / max(width, height, 1)
    return (max(2, int(round(width * scale / 2)) * 2), max(2, int(round(height * scale / 2)) * 2))


def grid_to_pixels(xy: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Grid coordinates uint8[c, 2] -> detail pixels float32[c, 2] (cell centres)."""
    scale = np.asarray(size, np.float32) / GRID
    return (np.asarray(xy, np.float32) + 0.5) * scale


def pixels_to_grid(xy: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Detail pixels float[c, 2] -> grid coordinates uint8[c, 2]."""
    scale = GRID / np.asarray(size, np.float32)
    return np.clip(np.floor(np.asarray(xy, np.float32) * scale), 0, GRID - 1).astype(np.uint8)


_ORB_CACHE: dict[int, cv2.ORB] = {}


def orb_features(frame: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``n`` strongest ORB keypoints of a frame.

    frame : ndarray [shape=(h, w)], uint8 luma (a detail frame)
    Returns (xy float32[c, 2] pixels, descriptors uint8[c, 32]), c <= n, strongest first.
    """
    orb = _ORB_CACHE.get(n)
    if orb is None:
        # 6 levels of 1.2: zooms and crops up to ~2.5x; a 31 px patch on frames of 320 px.
        orb = _ORB_CACHE[n] = cv2.ORB_create(nfeatures=n, scaleFactor=1.2, nlevels=6,
                                             edgeThreshold=19, patchSize=19, fastThreshold=12)
    keypoints, descriptors = orb.detectAndCompute(np.ascontiguousarray(frame, np.uint8), None)
    if descriptors is None or not keypoints:
        return np.zeros((0, 2), np.float32), np.zeros((0, DESCRIPTOR_BYTES), np.uint8)
    response = np.array([k.response for k in keypoints], np.float32)
    order = np.argsort(-response, kind="stable")[:n]
    xy = np.array([k.pt for k in keypoints], np.float32)[order]
    return xy, descriptors[order]


def describe(frame: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`orb_features` with coordinates on the storage grid: (xy uint8[c, 2],
    descriptors uint8[c, 32]) of a detail frame uint8[h, w]."""
    xy, descriptors = orb_features(frame, n)
    height, width = frame.shape
    return pixels_to_grid(xy, (width, height)), descriptors


def count_inliers(query_xy: np.ndarray, query_desc: np.ndarray, reference: LocalFeatures,
                  keyframes: np.ndarray, *, params: LocalParams) -> np.ndarray:
    """RANSAC inliers of one query frame against some reference keyframes.

    query_xy : ndarray [shape=(c, 2)], float32, query keypoints (detail pixels)
    query_desc : ndarray [shape=(c, 32)], uint8, their ORB descriptors
    reference : the reference's local features; ``keyframes`` int[j] which of them to try
    Returns int32[j]: per keyframe, the ratio-test matches (each reference keypoint's nearest
    query keypoint by Hamming distance) that one affine map of reference onto query explains
    within ``ransac_px``; 0 where fewer than ``min_matches`` matches were found.
    """
    keyframes = np.asarray(keyframes, np.int64).reshape(-1)
    out = np.zeros(keyframes.size, np.int32)
    if keyframes.size == 0 or len(query_desc) < 2:
        return out
    starts = reference.starts
    rows = np.concatenate([np.arange(starts[k], starts[k + 1]) for k in keyframes])
    if rows.size == 0:
        return out
    owner = np.repeat(np.arange(keyframes.size), reference.counts[keyframes])
    best, d_best, d_next = two_nearest(reference.descriptors[rows], query_desc)
    good = (d_best <= params.max_distance) & (d_best < params.ratio * d_next)
    ref_xy = grid_to_pixels(reference.xy[rows], reference.size)
    for j in np.unique(owner[good]):
        pick = good & (owner == j)
        if np.count_nonzero(pick) < params.min_matches:
            continue
        src, dst = ref_xy[pick], np.asarray(query_xy, np.float32)[best[pick]]
        # One query keypoint taken by many reference keypoints is one match, not many.
        _, first = np.unique(best[pick], return_index=True)
        if first.size < params.min_matches:
            continue
        src, dst = src[first], dst[first]
        _, mask = cv2.estimateAffine2D(src, dst, method=cv2.RANSAC,
                                       ransacReprojThreshold=params.ransac_px,
                                       maxIters=500, confidence=0.99, refineIters=0)
        out[j] = int(mask.sum()) if mask is not None else 0
    return out


def two_nearest(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each descriptor of ``a``, its nearest of ``b`` by Hamming distance and the two
    smallest distances (OpenCV's batch distance, SIMD popcount).

    a : ndarray [shape=(r, 32)], uint8; b : ndarray [shape=(c, 32)], uint8, c >= 2
    Returns (nearest int64[r], best int32[r], second int32[r]).
    """
    dist, idx = cv2.batchDistance(np.ascontiguousarray(a, np.uint8),
                                  np.ascontiguousarray(b, np.uint8), cv2.CV_32S,
                                  normType=cv2.NORM_HAMMING, K=2)
    dist = dist.reshape(-1, 2)
    return idx.reshape(-1, 2)[:, 0].astype(np.int64), dist[:, 0], dist[:, 1]


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamming distances between binary descriptors (the plain twin of :func:`two_nearest`).

    a : ndarray [shape=(r, 32)], uint8; b : ndarray [shape=(c, 32)], uint8
    Returns int32[r, c].
    """
    a64 = np.ascontiguousarray(a, np.uint8).view(np.uint64)
    b64 = np.ascontiguousarray(b, np.uint8).view(np.uint64)
    return np.bitwise_count(a64[:, None, :] ^ b64[None, :, :]).sum(axis=-1, dtype=np.int32)
