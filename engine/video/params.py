"""Video keyframe parameters: one frozen dataclass, versioned (as :mod:`engine.audio.params`)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass(frozen=True)
class VideoParams:
    """Video keyframe parameters; ``version`` changes whenever an embedding would change."""

    version: int = 1
    #: keyframes per second of presentation time
    sample_fps: float = 2.0
    #: decoded frames are scaled by FFmpeg to frame_size x frame_size luma (aspect is ignored:
    #: the content box is found and resampled to a square anyway)
    frame_size: int = 64
    #: content thumbnail side after border removal (pixels)
    thumb_size: int = 32
    #: orientation histogram grid (cells per side) and orientation bins over 0..pi
    hog_cells: int = 5
    hog_bins: int = 8
    #: gradient magnitudes are capped at this percentile of the frame's magnitudes
    gradient_clip_percentile: float = 90.0
    #: weight of the mirror-antisymmetric histogram part (the symmetric part has weight 1)
    antisymmetric_weight: float = 0.7
    #: DCT coefficients kept per axis, weight of the DCT part, centre weighting (Gaussian sigma
    #: as a fraction of the thumbnail side)
    dct_size: int = 7
    dct_weight: float = 0.7
    dct_sigma: float = 0.4
    #: border detection: a bar row's block means may spread this much (luma levels, or this
    #: share of the frame's standard deviation if larger), bars cover at most this share per side
    border_flat_levels: float = 3.0
    border_flat_share: float = 0.06
    max_border_share: float = 0.4
    #: quality: full marks at this thumbnail contrast (std, luma levels) and share of pixels
    #: further than ``busy_levels`` from the median; keyframes below ``min_quality`` are dropped
    full_contrast: float = 32.0
    busy_levels: float = 6.0
    full_busy_share: float = 0.5
    min_quality: float = 0.25
    #: let the decoder skip non-reference frames (faster; keyframe times jitter by a frame)
    skip_nonref: bool = False

    @property
    def dim(self) -> int:
        """Embedding dimension."""
        half = (self.hog_cells + 1) // 2
        hog = self.hog_cells * (half + self.hog_cells // 2) * self.hog_bins
        k = self.dct_size
        return hog + k * k - 1

    def tag(self) -> str:
        return f"video-v{self.version}"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

