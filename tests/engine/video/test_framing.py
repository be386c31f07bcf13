"""Query views on generated video: framing kinds and split layouts found where they are, none on
plain full-frame video, quarter turns undone, and the whole-frame view still a reference's."""

import numpy as np
import pytest
from scipy import ndimage

from nanhu.engine.video import frame_embeddings
from nanhu.engine.video.framing import (
    FULL,
    View,
    ViewParams,
    content_box,
    find_views,
    stacked_layout,
    view_frames,
)
from nanhu.engine.video.keyframes import KeyframePrints

N, S = 12, 128


def _footage(seed: int, n: int = N, height: int = S, width: int = S,
             smooth: float = 10.0) -> np.ndarray:
    """Moving natural-looking frames: a smooth random field (``smooth``: Gaussian sigma, px;
    real footage decoded at 128 px is about this smooth) panned diagonally, 3 px a frame.
    float32 [n, height, width], 0..255."""
    rng = np.random.default_rng(seed)
    field = ndimage.gaussian_filter(rng.standard_normal((height + 3 * n + 8, width + 3 * n + 8)),
                                    smooth)
    field = (field - field.min()) / np.ptp(field) * 255
    frames = np.stack([field[3 * i:3 * i + height, 2 * i:2 * i + width] for i in range(n)])
    return np.stack([ndimage.gaussian_filter(f, 1.0) for f in frames]).astype(np.float32)


def _resize(frames: np.ndarray, height: int, width: int) -> np.ndarray:
    return np.stack([ndimage.zoom(f, (height / f.shape[0], width / f.shape[1]), order=1)
                     for f in frames]).astype(np.float32)


def _names(views: list[View]) -> list[str]:
    return [v.name for v in views]


def test_plain_full_frame_video_gets_no_extra_view():
    for seed in range(3):
        assert find_views(_footage(seed), source_size=(640, 360)) == [FULL]


def test_side_by_side_is_split_at_the_seam():
    pair = np.concatenate([_resize(_footage(1), S, S // 2), _resize(_footage(2), S, S // 2)], 2)
    views = {v.name: v for v in find_views(pair, source_size=(1280, 360))}
    assert {"left", "right"} <= set(views)
    assert views["left"].box[3] == pytest.approx(0.5, abs=0.03)
    assert "rot90" not in views


def test_top_bottom_is_split_at_the_seam():
    pair = np.concatenate([_resize(_footage(3), S // 2, S), _resize(_footage(4), S // 2, S)], 1)
    views = {v.name: v for v in find_views(pair, source_size=(640, 720))}
    assert {"top", "bottom"} <= set(views)
    assert views["top"].box[1] == pytest.approx(0.5, abs=0.03)
    # 640x720 is taller than wide, but stacked, not turned: no quarter turns
    assert not {"rot90", "rot270"} & set(views)


@pytest.mark.parametrize("corner", [(0, 0), (1, 1), (0, 1)])
def test_picture_in_picture_window_is_found(corner):
    frames = _footage(5).copy()
    side, margin = int(0.4 * S), int(0.04 * S)
    y0 = margin if corner[0] == 0 else S - side - margin
    x0 = margin if corner[1] == 0 else S - side - margin
    frames[:, y0:y0 + side, x0:x0 + side] = _resize(_footage(6, smooth=25.0), side, side)
    views = {v.name: v for v in find_views(frames)}
    assert "pip" in views
    top, bottom, left, right = views["pip"].box
    assert (top, bottom, left, right) == pytest.approx(
        ((y0) / S, (y0 + side) / S, x0 / S, (x0 + side) / S), abs=0.05)


def test_blurred_background_frame_gives_the_inner_box():
    content = _footage(7)
    enlarged = _resize(content[:, 18:110, 18:110], S, S)
    frames = np.stack([ndimage.gaussian_filter(f, 5) for f in enlarged])
    inner = int(0.7 * S)
    at = (S - inner) // 2
    frames[:, at:at + inner, at:at + inner] = _resize(content, inner, inner)
    views = {v.name: v for v in find_views(frames)}
    assert "box" in views
    assert views["box"].box == pytest.approx((at / S, (at + inner) / S) * 2, abs=0.04)


def test_static_border_around_moving_content_is_cut():
    border = np.repeat(_footage(8)[:1], N, 0)  # a textured frame that never changes
    frames = border.copy()
    frames[:, 16:112, 20:108] = _resize(_footage(9), 96, 88)
    box = content_box(frames)
    assert box == pytest.approx((16 / S, 112 / S, 20 / S, 108 / S), abs=0.04)


def test_black_bars_alone_add_no_view():
    frames = np.zeros((N, S, S), np.float32)
    frames[:, 24:104] = _resize(_footage(10), 80, S)
    assert find_views(frames) == [FULL]


def test_quarter_turns_undo_a_rotation():
    frames = _footage(11)
    turned = np.ascontiguousarray(np.rot90(frames, k=1, axes=(1, 2)))  # counter-clockwise
    views = {v.name: v for v in find_views(turned, source_size=(360, 640))}
    assert {"rot90", "rot270"} <= set(views)
    back = view_frames(turned, views["rot90"], size=S)
    assert np.allclose(back, frames, atol=1e-3)
    a, _ = frame_embeddings(view_frames(turned, views["rot90"], size=64))
    b, _ = frame_embeddings(view_frames(frames, FULL, size=64))
    assert np.min(np.sum(a * b, 1)) > 0.99
    # landscape frames get no turns
    assert "rot90" not in _names(find_views(frames, source_size=(640, 360)))


def test_query_views_keep_the_reference_whole_frame_and_the_mirror():
    frames = np.clip(_footage(12), 0, 255).astype(np.uint8)
    small = frames.reshape(N, 64, 2, 64, 2).mean((2, 4)).round().astype(np.uint8)
    reference, _ = frame_embeddings(small)
    prints = KeyframePrints(views=ViewParams())
    prints.add(frames, np.arange(N, dtype=np.float32) / 2)
    query = prints.result("test")
    assert query.views is not None and set(query.views.tolist()) == {0}
    assert np.min(np.sum(query.primary().vectors * reference, 1)) > 0.995
    mirrored = KeyframePrints(views=ViewParams())
    mirrored.add(np.ascontiguousarray(frames[:, :, ::-1]), np.arange(N, dtype=np.float32) / 2)
    assert np.min(np.sum(mirrored.result("m").vectors * reference, 1)) > 0.99


def test_split_layout_rows_are_tagged_and_round_trip():
    from nanhu.engine.fingerprint import Fingerprint

    pair = np.concatenate([_resize(_footage(13), S, S // 2), _resize(_footage(14), S, S // 2)], 2)
    prints = KeyframePrints(views=ViewParams())
    prints.add(np.clip(pair, 0, 255).astype(np.uint8), np.arange(N, dtype=np.float32) / 2)
    video = prints.result("pair")
    assert {0, 2, 3} <= set(video.views.tolist()) and video.has_views
    assert len(video.primary()) == N
    back = Fingerprint.from_bytes(Fingerprint(duration_s=6.0, video=video).to_bytes()).video
    assert np.array_equal(back.views, video.views)


def _halves(views: list[View]) -> dict[str, tuple[float, float, float, float]]:
    return {v.name: v.box for v in views if v.name in ("left", "right", "top", "bottom")}


def test_side_by_side_of_a_short_clip_of_still_pictures_is_split():
    """Ten frames (a 5 s clip) of two still, squeezed pictures: the disagreement cue has little
    to go on; the straight edge at the seam, in every frame, finds it."""
    still = np.repeat(_footage(15, n=1, smooth=10.0), 10, 0)
    other = np.repeat(_footage(16, n=1, smooth=10.0), 10, 0)
    pair = np.concatenate([_resize(still, S, S // 2), _resize(other, S, S // 2)], 2)
    halves = _halves(find_views(pair, source_size=(640, 360)))  # aspect gives nothing away
    assert halves["left"][3] == pytest.approx(0.5, abs=0.03)
    # and from a single frame
    halves = _halves(find_views(pair[:1], source_size=(640, 360)))
    assert halves["left"][3] == pytest.approx(0.5, abs=0.03)


def test_a_composite_aspect_gives_its_halves_where_no_seam_shows():
    """Two pictures that meet without a seam (the right one mirrors the left at the middle):
    1280x360 is two 640x360s, so its halves are tried; the same frames at a plain aspect get
    no halves."""
    half = _resize(_footage(17), S, S // 2)
    frames = np.concatenate([half, half[:, :, ::-1]], 2)
    halves = _halves(find_views(frames, source_size=(1280, 360)))
    assert set(halves) == {"left", "right"} and halves["left"][3] == 0.5
    halves = _halves(find_views(frames, source_size=(640, 360)))
    assert not {"left", "right"} & set(halves)
    views = _names(find_views(_resize(_footage(19), S, S), source_size=(640, 720)))
    assert {"top", "bottom"} <= set(views) and "rot90" not in views


def test_stacked_layout_reads_two_common_aspects():
    assert stacked_layout((1280, 360)) == "side"  # two 16:9
    assert stacked_layout((960, 360)) == "side"  # two 4:3
    assert stacked_layout((640, 720)) == "stacked"
    assert stacked_layout((640, 960)) == "stacked"
    for plain in ((640, 360), (360, 640), (480, 640), (640, 640), (1920, 1080), (860, 360),
                  None):
        assert stacked_layout(plain) is None


def test_picture_in_picture_of_a_short_clip_over_flat_footage_is_found():
    """A 40 % window over a smooth, nearly flat background, 10 frames: little texture on the
    outer side of the window's sides to correlate."""
    frames = np.full((10, S, S), 90.0, np.float32) + np.linspace(0, 20, S)[None, None, :]
    side, at = int(0.4 * S), int(0.04 * S)
    frames[:, at:at + side, at:at + side] = _resize(_footage(20, n=10), side, side)
    views = {v.name: v for v in find_views(frames, source_size=(640, 360))}
    assert "pip" in views
    assert views["pip"].box == pytest.approx((at / S, (at + side) / S) * 2, abs=0.05)
    assert not {"left", "right", "top", "bottom"} & set(views)


def test_plain_short_clips_and_single_frames_get_no_extra_view():
    for seed in range(4):
        clip = _footage(30 + seed, n=10)
        assert find_views(clip, source_size=(640, 360)) == [FULL]
        assert find_views(clip[:1], source_size=(640, 360)) == [FULL]
