"""Seam cues on generated frames: a seam between two pictures stands out as a persistent
straight edge (even in one frame), a picture-in-picture side is a window's and not a split,
and ordinary footage has neither."""

import numpy as np
import pytest
from scipy import ndimage

from nanhu.engine.video import seams

S = 128
LINE = {"strength": 0.5, "contrast": 2.5}


def _picture(seed: int, height: int = S, width: int = S, n: int = 1) -> np.ndarray:
    """Smooth random pictures (Gaussian sigma 10 px, about as smooth as real footage decoded
    at 128 px), panned 2 px a frame: float32 [n, height, width], 0..255."""
    rng = np.random.default_rng(seed)
    field = ndimage.gaussian_filter(rng.standard_normal((height + 2 * n, width + 2 * n)), 10.0)
    field = (field - field.min()) / np.ptp(field) * 255
    return np.stack([field[i:i + height, i:i + width] for i in range(n)]).astype(np.float32)


def test_a_seam_is_a_persistent_straight_edge_from_one_frame():
    pair = np.concatenate([_picture(1, width=S // 2), _picture(2, width=S // 2)], 2)
    vertical, horizontal = seams.line_maps(pair)
    profile = vertical.mean(0)
    assert int(np.argmax(profile)) == S // 2
    assert profile[S // 2] > 0.8
    assert np.median(profile) < 0.1
    assert seams.split_at(vertical, band=(0.3, 0.7), **LINE) == pytest.approx(0.5)
    assert seams.split_at(horizontal.T, band=(0.3, 0.7), **LINE) is None


def test_a_seam_next_to_flat_picture_is_found_where_disagreement_sees_nothing():
    """A black bar beside a flat grey picture: no texture to correlate on either side."""
    frames = np.full((10, S, S), 120.0, np.float32)
    frames[:, :, : S // 2] = 0.0
    frames[:, :, 8:56] = _picture(3, width=48, n=10)
    disagreement, _ = seams.seam_maps(frames)
    assert disagreement[:, S // 2].max() == 0.0  # both sides flat: nothing can be told
    vertical, _ = seams.line_maps(frames)
    assert vertical[:, S // 2].mean() > 0.9


def test_a_picture_in_picture_side_is_a_window_not_a_split():
    frames = _picture(4, n=10)
    side, at = int(0.4 * S), int(0.04 * S)
    frames[:, at:at + side, at:at + side] = _picture(5, side, side, n=10)
    vertical, horizontal = seams.line_maps(frames)
    assert seams.split_at(vertical, band=(0.3, 0.7), **LINE) is None
    assert seams.split_at(horizontal.T, band=(0.3, 0.7), **LINE) is None
    box = seams.pip_window(vertical, horizontal, side=(0.25, 0.75), step=4, **LINE)
    assert box == pytest.approx((at / S, (at + side) / S) * 2, abs=0.05)


@pytest.mark.parametrize("seed", range(6))
def test_ordinary_frames_have_no_seam(seed):
    for n in (1, 10):
        frames = _picture(10 + seed, n=n)
        vertical, horizontal = seams.line_maps(frames)
        assert seams.split_at(vertical, band=(0.3, 0.7), **LINE) is None
        assert seams.split_at(horizontal.T, band=(0.3, 0.7), **LINE) is None
        assert seams.pip_window(vertical, horizontal, side=(0.25, 0.75), step=4, **LINE) is None


def test_a_straight_edge_over_half_the_width_is_not_a_split():
    """A wall or a table edge across part of the frame is no top/bottom seam."""
    frames = _picture(20, n=10)
    frames[:, S // 2:, : S // 2] += 60.0
    _, horizontal = seams.line_maps(np.clip(frames, 0, 255))
    assert horizontal[S // 2, : S // 2].mean() > 0.5
    assert seams.split_at(horizontal.T, band=(0.3, 0.7), **LINE) is None
