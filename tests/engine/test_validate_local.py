"""Checking a fingerprint's local features (engine.validate, ``video.local``): whatever a caller
sends is refused naming the field, or it fits together and verification runs on it."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nanhu.engine.errors import InvalidArgument
from nanhu.engine.fingerprint import Fingerprint, VideoPrint
from nanhu.engine.validate import local_limits, validate_fingerprint
from nanhu.engine.video import VideoParams
from nanhu.engine.video.local import LocalFeatures, LocalParams
from nanhu.engine.video.verify import LocalIndex, verify

DIM = VideoParams().dim


def query_local(frames: int = 3, keypoints: int = 40, *, seed: int = 0) -> LocalFeatures:
    """Random features shaped as a query's: each frame shown, then mirrored."""
    rng = np.random.default_rng(seed)
    rows = 2 * frames
    total = rows * keypoints
    return LocalFeatures(np.repeat(np.arange(frames, dtype=np.float32), 2),
                         np.full(rows, keypoints, np.int32),
                         rng.integers(0, 256, (total, 2), dtype=np.uint8),
                         rng.integers(0, 256, (total, 32), dtype=np.uint8), (320, 180),
                         np.tile([False, True], frames))


def fingerprint(local: LocalFeatures, *, duration_s: float = 10.0) -> Fingerprint:
    rng = np.random.default_rng(1)
    vectors = rng.standard_normal((20, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return Fingerprint(duration_s=duration_s, video=VideoPrint(
        vectors, np.arange(20, dtype=np.float32) * 0.5, VideoParams().tag(), local=local))


def changed(**fields) -> LocalFeatures:
    return dataclasses.replace(query_local(), **fields)


POISONS = {
    "counts do not sum to the rows": (changed(counts=np.full(6, 41, np.int32)), "video.local.xy"),
    "descriptors 16 bytes wide": (changed(descriptors=np.zeros((240, 16), np.uint8)),
                                  "video.local.descriptors"),
    "descriptors as floats": (changed(descriptors=np.zeros((240, 32), np.float32)),
                              "video.local.descriptors"),
    "NaN coordinates": (changed(xy=np.full((240, 2), np.nan, np.float32)), "video.local.xy"),
    "coordinates past the grid": (changed(xy=np.full((240, 2), 300, np.int32)), "video.local.xy"),
    "NaN time": (changed(times_s=np.array([0, 0, np.nan, np.nan, 2, 2], np.float32)),
                 "video.local.times_s"),
    "times out of order": (changed(times_s=np.array([2, 2, 1, 1, 0, 0], np.float32)),
                           "video.local.times_s"),
    "time past the duration": (changed(times_s=np.array([0, 0, 1, 1, 99, 99], np.float32)),
                               "video.local.times_s"),
    "one count too few": (changed(counts=np.full(5, 48, np.int32)), "video.local.counts"),
    "negative count": (changed(counts=np.array([-40, 120, 40, 40, 40, 40], np.int64)),
                       "video.local.counts"),
    "a 2-D times array": (changed(times_s=np.zeros((3, 2), np.float32)), "video.local.times_s"),
    "a tiny frame": (changed(size=(2, 2)), "video.local.size"),
    "mirrored rows out of step": (changed(flipped=np.array([True, False] * 3)),
                                  "video.local.flipped"),
    "too many frames": (query_local(frames=65, keypoints=2), "video.local.times_s"),
    "too many keypoints a frame": (query_local(frames=1, keypoints=501), "video.local.counts"),
}


@pytest.mark.parametrize("name", sorted(POISONS))
def test_poisoned_local_features_are_refused_naming_the_field(name):
    local, field = POISONS[name]
    with pytest.raises(InvalidArgument, match=f"^fingerprint: {field}"):
        validate_fingerprint(fingerprint(local), for_reference=False)


def test_a_query_of_the_samplers_own_size_passes_and_dtypes_are_made_canonical():
    rows, per_row = local_limits(10.0, for_reference=False)
    assert (rows, per_row) == (2 * LocalParams().max_query_frames, LocalParams().query_features)
    full = query_local(frames=rows // 2, keypoints=per_row)
    assert validate_fingerprint(fingerprint(full, duration_s=100.0),
                                for_reference=False).video.local is full  # unchanged
    loose = dataclasses.replace(query_local(), counts=np.full(6, 40, np.int64), size=[320, 180])
    out = validate_fingerprint(fingerprint(loose), for_reference=False).video.local
    assert out.counts.dtype == np.int32 and out.size == (320, 180)


def test_a_reference_has_no_mirrored_rows_and_keeps_to_its_budget():
    shown = query_local(frames=1)
    one = dataclasses.replace(shown, times_s=shown.times_s[:1], counts=np.array([40], np.int32),
                              xy=shown.xy[:40], descriptors=shown.descriptors[:40], flipped=None)
    validate_fingerprint(fingerprint(one), for_reference=True)
    with pytest.raises(InvalidArgument, match="video.local.flipped"):
        validate_fingerprint(fingerprint(shown), for_reference=True)
    rows, _ = local_limits(3600.0, for_reference=True)
    p = LocalParams()
    assert rows == int(p.bucket_keyframes + p.bytes_per_hour / p.keyframe_bytes)
    many = LocalFeatures.concat([dataclasses.replace(one, times_s=np.array([t], np.float32))
                                 for t in range(6)], (320, 180))
    with pytest.raises(InvalidArgument, match="video.local.times_s: 6 frames; at most 4"):
        validate_fingerprint(fingerprint(many), for_reference=True)


MUTATIONS = ("counts", "rows", "total", "times", "flipped", "size", "dtype")


@settings(max_examples=60, deadline=None)
@given(frames=st.integers(1, 4), keypoints=st.integers(0, 60), seed=st.integers(0, 1000),
       mutations=st.lists(st.sampled_from(MUTATIONS), max_size=2, unique=True))
def test_whatever_is_sent_is_refused_or_verifies_without_error(frames, keypoints, seed,
                                                               mutations):
    """A query's features with up to two things broken (shapes, counts, times, mirrored rows,
    size, dtypes): validation refuses them with InvalidArgument, or what it lets through runs
    through verification against a small index."""
    rng = np.random.default_rng(seed)
    local = query_local(frames, keypoints, seed=seed)
    counts, times, flipped = local.counts.astype(np.int64), local.times_s, local.flipped
    xy, descriptors, size = local.xy, local.descriptors, local.size
    if "counts" in mutations:
        counts = counts + rng.integers(-3, 4, counts.size)
    if "rows" in mutations:
        counts, times, flipped = counts[:-1], times[:-1], flipped[:-1]
    if "total" in mutations:
        xy = xy[: max(0, len(xy) - int(rng.integers(0, 3)))]
    if "times" in mutations:
        times = rng.uniform(-1, 20, times.size).astype(np.float32)
    if "flipped" in mutations:
        flipped = [None, rng.integers(0, 2, times.size).astype(bool)][int(rng.integers(0, 2))]
    if "size" in mutations:
        size = [(180, 320), (2, 2), (320, 0), (640, 360)][int(rng.integers(0, 4))]
    if "dtype" in mutations:
        xy = xy.astype([np.float32, np.int64, np.uint8][int(rng.integers(0, 3))])
    try:
        fp = validate_fingerprint(fingerprint(LocalFeatures(times, counts, xy, descriptors, size,
                                                            flipped)), for_reference=False)
    except InvalidArgument:
        return
    reference = dataclasses.replace(query_local(frames=2, keypoints=48, seed=5), flipped=None)
    n = len(fp.video)
    refs = np.full((n, 2), 3, np.int64)
    verify(fp.video.local, fp.video.times_s, fp.video.vectors, None, refs,
           np.zeros((n, 2), np.float32), np.full((n, 2), 0.5, np.float32),
           LocalIndex({3: reference}), [])
