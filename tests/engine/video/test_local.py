"""Local features: ORB verification accepts an edited copy of a frame and refuses an unrelated
one; the reference selector keeps to its byte budget; the Hamming twin agrees with OpenCV's."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from nanhu.engine.video.local import (
    LocalFeatures,
    LocalParams,
    count_inliers,
    describe,
    hamming,
    orb_features,
    two_nearest,
)

PARAMS = LocalParams()


def scene(seed: int, size: tuple[int, int] = (320, 180)) -> np.ndarray:
    """A generated frame uint8[h, w]: textured shapes on a smooth ground (corners to detect)."""
    rng = np.random.default_rng(seed)
    width, height = size
    yy, xx = np.mgrid[0:height, 0:width]
    frame = (96 + 60 * np.sin(xx / rng.uniform(20, 60)) * np.cos(yy / rng.uniform(20, 60)))
    frame = frame.astype(np.uint8)
    for _ in range(40):
        colour = int(rng.integers(0, 256))
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        if rng.random() < 0.5:
            w, h = int(rng.integers(6, 40)), int(rng.integers(6, 40))
            cv2.rectangle(frame, (x, y), (x + w, y + h), colour, -1)
        else:
            points = rng.integers(-25, 25, (5, 2)) + [x, y]
            cv2.fillPoly(frame, [points.astype(np.int32)], colour)
    return frame


def reference_of(frames: list[np.ndarray]) -> LocalFeatures:
    parts = []
    for t, frame in enumerate(frames):
        xy, desc = describe(frame, PARAMS.reference_features)
        parts.append(LocalFeatures(np.array([t], np.float32), np.array([len(desc)], np.int32),
                                   xy, desc, (frame.shape[1], frame.shape[0])))
    return LocalFeatures.concat(parts, (frames[0].shape[1], frames[0].shape[0]))


def crop_caption(frame: np.ndarray) -> np.ndarray:
    """An off-centre 25 % crop scaled back to the frame size, with a caption band over it."""
    height, width = frame.shape
    cut = frame[10:10 + int(height * 0.75), 30:30 + int(width * 0.75)]
    out = cv2.resize(cut, (width, height), interpolation=cv2.INTER_LINEAR)
    cv2.rectangle(out, (0, height - 30), (width, height), 20, -1)
    cv2.putText(out, "BREAKING NEWS 24", (10, height - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.7, 235, 2)
    return out


def test_verification_accepts_an_edited_copy_and_refuses_an_unrelated_frame():
    reference = reference_of([scene(1), scene(2)])
    copy_xy, copy_desc = orb_features(crop_caption(scene(1)), PARAMS.query_features)
    other_xy, other_desc = orb_features(scene(3), PARAMS.query_features)
    copy = count_inliers(copy_xy, copy_desc, reference, np.arange(2), params=PARAMS)
    other = count_inliers(other_xy, other_desc, reference, np.arange(2), params=PARAMS)
    assert copy[0] >= 10  # the copied keyframe, not the other one
    assert copy[1] < 8
    assert other.max() < 8


def test_mirrored_query_verifies_as_mirrored():
    reference = reference_of([scene(4)])
    mirrored = scene(4)[:, ::-1]
    xy, desc = orb_features(mirrored, PARAMS.query_features)
    back_xy, back_desc = orb_features(np.ascontiguousarray(mirrored[:, ::-1]), PARAMS.query_features)
    assert count_inliers(back_xy, back_desc, reference, [0], params=PARAMS)[0] >= 20
    assert count_inliers(xy, desc, reference, [0], params=PARAMS)[0] < 8


def test_two_nearest_agrees_with_the_plain_hamming_twin():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (60, 32), dtype=np.uint8)
    b = rng.integers(0, 256, (90, 32), dtype=np.uint8)
    nearest, best, second = two_nearest(a, b)
    distances = hamming(a, b)
    ordered = np.sort(distances, axis=1)
    assert np.array_equal(distances[np.arange(60), nearest], best)
    assert np.array_equal(ordered[:, 0], best) and np.array_equal(ordered[:, 1], second)


@pytest.mark.parametrize("cut_every_s", [1.0, 3.0])
def test_reference_selector_keeps_to_its_budget(cut_every_s):
    from nanhu.engine.video.local_sampling import LocalCollector

    class Frame:  # what the collector reads of an av.VideoFrame, here from generated scenes
        width, height = 320, 180

    collector = LocalCollector(PARAMS)
    pictures = [scene(10 + i) for i in range(8)]
    images = {}

    def detail(frame):
        return images[id(frame)]

    collector._detail = detail  # the scaler needs a real VideoFrame; the choice does not
    hours = 0.25
    for i in range(int(hours * 3600 * 2)):
        t = i * 0.5
        picture = pictures[int(t // cut_every_s) % len(pictures)]
        frame = Frame()
        images[id(frame)] = picture
        small = cv2.resize(picture, (64, 64), interpolation=cv2.INTER_AREA)
        collector.offer(t, small, frame)
    features = collector.result()
    assert len(features) >= 2
    assert features.nbytes() <= PARAMS.bytes_per_hour * hours + PARAMS.keyframe_bytes
    assert np.all(np.diff(features.times_s) > 0)


def test_a_long_query_keeps_a_bounded_evenly_spread_set_of_frames():
    from nanhu.engine.video.local_sampling import LocalCollector

    class Frame:
        width, height = 320, 180

    collector = LocalCollector(PARAMS, query=True)
    picture = scene(5)
    collector._detail = lambda frame: picture
    for i in range(2 * 3600):  # an hour at 2 samples a second
        collector.offer(i * 0.5, picture[:64, :64], Frame())
    features = collector.result()
    shown = features.times_s[~features.flipped]
    assert PARAMS.max_query_frames // 2 <= shown.size <= PARAMS.max_query_frames + 1
    assert np.array_equal(features.times_s[features.flipped], shown)  # each with its mirror
    steps = np.diff(shown)
    assert steps.min() == steps.max() and shown[-1] > 3000  # even, and to the end
