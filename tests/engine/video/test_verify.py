"""Verification in the matcher's video path: a verified copy becomes a scored segment, an
unrelated query does not, and the chance model grows with the catalog and shrinks with inliers."""

from __future__ import annotations

import cv2
import numpy as np

from nanhu.engine.video.local import LocalFeatures, LocalParams, describe
from nanhu.engine.video.verify import LocalIndex, LocalMatchParams, _log10_tail, verify

PARAMS = LocalParams()


def scene(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:180, 0:320]
    frame = (96 + 60 * np.sin(xx / rng.uniform(20, 60)) * np.cos(yy / rng.uniform(20, 60)))
    frame = frame.astype(np.uint8)
    for _ in range(40):
        x, y = int(rng.integers(0, 320)), int(rng.integers(0, 180))
        points = rng.integers(-25, 25, (5, 2)) + [x, y]
        cv2.fillPoly(frame, [points.astype(np.int32)], int(rng.integers(0, 256)))
    return frame


def features(frames: list[np.ndarray], times: list[float], n: int, *,
             query: bool = False) -> LocalFeatures:
    parts = []
    for t, frame in zip(times, frames):
        for flipped in ((False, True) if query else (None,)):
            picture = frame[:, ::-1] if flipped else frame
            xy, desc = describe(np.ascontiguousarray(picture), n)
            parts.append(LocalFeatures(np.array([t], np.float32), np.array([len(desc)], np.int32),
                                       xy, desc, (320, 180),
                                       None if flipped is None else np.array([flipped])))
    return LocalFeatures.concat(parts, (320, 180))


def crop(frame: np.ndarray) -> np.ndarray:
    cut = frame[20:20 + 126, 10:10 + 224]  # 30 % off-centre crop, scaled back
    return cv2.resize(cut, (320, 180), interpolation=cv2.INTER_LINEAR)


def global_answer(n_rows: int, ordinal: int, seed: int):
    """A weak global answer: every row's neighbours at ``ordinal`` and another, sims ~0.5."""
    rng = np.random.default_rng(seed)
    refs = np.tile(np.array([ordinal, 99], np.int64), (n_rows, 1))
    times = rng.uniform(0, 20, (n_rows, 2)).astype(np.float32)
    sims = np.full((n_rows, 2), 0.5, np.float32)
    vectors = rng.standard_normal((n_rows, 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return refs, times, sims, vectors


def index_of() -> LocalIndex:
    return LocalIndex({
        7: features([scene(1), scene(2)], [0.0, 10.0], PARAMS.reference_features),
        99: features([scene(3), scene(4)], [0.0, 10.0], PARAMS.reference_features)})


def test_a_cropped_copy_is_verified_into_a_segment():
    frames = [crop(scene(2))] * 4
    times = [0.0, 1.0, 2.0, 3.0]
    query = features(frames, times, PARAMS.query_features, query=True)
    refs, ref_times, sims, vectors = global_answer(4, 7, 0)
    found = verify(query, np.asarray(times, np.float32), vectors, None, refs, ref_times, sims,
                   index_of(), [])
    assert found and found[0].reference == 7 and found[0].score >= 0.5
    assert found[0].evidence["best_inliers"] >= LocalMatchParams().min_inliers
    assert 8.0 <= found[0].reference_start_s <= 22.0  # in the verified keyframe's span


def test_an_unrelated_query_finds_nothing():
    times = [0.0, 1.0, 2.0, 3.0]
    query = features([scene(10 + i) for i in range(4)], times, PARAMS.query_features, query=True)
    refs, ref_times, sims, vectors = global_answer(4, 7, 1)
    assert verify(query, np.asarray(times, np.float32), vectors, None, refs, ref_times, sims,
                  index_of(), []) == []


def test_the_tail_falls_with_inliers_and_continues_past_the_table():
    table = LocalMatchParams().inlier_chance
    tail = _log10_tail(np.arange(3, 30), table)
    assert np.all(np.diff(tail) < 0)
    assert tail[-1] < np.log10(table[-1][1]) - 10


def test_a_verified_span_extends_over_weak_global_hits_on_its_line():
    from nanhu.engine.video.score import VideoMatchParams
    from nanhu.engine.video.verify import _extent

    row_times = np.arange(0, 10, 0.5)
    refs = np.full((row_times.size, 1), 7, np.int64)
    times = (row_times + 30.2)[:, None]  # on the line r = q + 30.2 ...
    sims = np.full((row_times.size, 1), 0.62)  # ... too weak to score, not to place
    sims[row_times >= 8.0] = 0.3
    start, end, offset = _extent(4.0, 5.0, 29.5, 7, row_times, refs, times, sims,
                                 VideoMatchParams())
    assert (start, end) == (0.0, 8.0) and abs(offset - 30.2) < 1e-6
    weak = np.full_like(sims, 0.3)
    assert _extent(4.0, 5.0, 20.0, 7, row_times, refs, times, weak, VideoMatchParams()) == (
        4.0, 5.0, 20.0)  # no hit strong enough to place by: the verified span as it is


def test_a_repeated_picture_does_not_move_the_segment_off_the_supported_line():
    from nanhu.engine.video.score import VideoMatchParams
    from nanhu.engine.video.verify import _extent

    row_times = np.arange(0, 10, 0.5)
    refs = np.full((row_times.size, 1), 7, np.int64)
    times = (row_times + 2.0)[:, None]  # the copy was taken at 2 s; the verified keyframe
    sims = np.full((row_times.size, 1), 0.63)  # is the same photograph shown again at 70 s
    start, end, offset = _extent(4.0, 5.0, 66.5, 7, row_times, refs, times, sims,
                                 VideoMatchParams())
    assert abs(offset - 2.0) < 1e-6 and (start, end) == (0.0, 10.0)
