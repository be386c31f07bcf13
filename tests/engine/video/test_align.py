"""Video alignment: nearest reference keyframes per query keyframe -> time-aligned segments.

The neighbour lists are built by hand: the true neighbour (at the reference keyframe nearest to
where the copy maps the query keyframe, as a real search finds it) is mixed among random
distractors at random ranks, so each test says exactly what the vote must find.
"""

from __future__ import annotations

import numpy as np
import pytest

from nanhu.engine.segments import Segment
from nanhu.engine.video.align import VideoMatchParams, align_video, default_params

FPS = 2.0  # keyframes per second, query and reference
K = 16


def neighbours(query_times: np.ndarray, copies, *, seed: int, n_refs: int = 500,
               ref_duration_s: float = 600.0, distractor_sims=(0.3, 0.86)):
    """Neighbour arrays for ``query_times`` where ``copies`` are (q_start, q_end, ref, speed,
    offset, sim): query time q in [q_start, q_end) shows reference time ``speed * q + offset``.
    Every other slot holds an unrelated keyframe (random reference, time and similarity)."""
    rng = np.random.default_rng(seed)
    n = query_times.size
    refs = rng.integers(0, n_refs, (n, K)).astype(np.int64)
    times = (np.floor(rng.uniform(0, ref_duration_s, (n, K)) * FPS) / FPS).astype(np.float32)
    sims = rng.uniform(*distractor_sims, (n, K)).astype(np.float32)
    for q_start, q_end, ref, speed, offset, sim in copies:
        rows = np.flatnonzero((query_times >= q_start) & (query_times < q_end))
        slot = rng.integers(0, K, rows.size)
        true_time = speed * query_times[rows] + offset
        refs[rows, slot] = ref
        times[rows, slot] = np.round(true_time * FPS) / FPS  # the nearest reference keyframe
        sims[rows, slot] = sim + rng.uniform(-0.04, 0.04, rows.size)
    order = np.argsort(-sims, axis=1)
    take = np.take_along_axis
    return take(refs, order, 1), take(times, order, 1), take(sims, order, 1)


def query_times(duration_s: float) -> np.ndarray:
    return (np.arange(int(duration_s * FPS)) / FPS).astype(np.float32)


def assert_segment(seg: Segment, *, ref: int, q: tuple[float, float], r: tuple[float, float],
                   speed: float, tol_s: float = 1.0) -> None:
    assert seg.reference == ref and seg.modality == "video"
    assert seg.query_start_s == pytest.approx(q[0], abs=tol_s)
    assert seg.query_end_s == pytest.approx(q[1], abs=tol_s)
    assert seg.reference_start_s == pytest.approx(r[0], abs=tol_s)
    assert seg.reference_end_s == pytest.approx(r[1], abs=tol_s)
    assert seg.speed == pytest.approx(speed, rel=0.03)
    assert 0.0 <= seg.score <= 1.0


def test_a_copied_stretch_comes_back_with_its_times():
    qt = query_times(20.0)
    segs = align_video(qt, *neighbours(qt, [(4.0, 14.0, 42, 1.0, 96.0, 0.9)], seed=1))
    assert len(segs) == 1
    assert_segment(segs[0], ref=42, q=(4.0, 14.0), r=(100.0, 110.0), speed=1.0)
    assert segs[0].score >= default_params().min_score
    assert segs[0].evidence["aligned_keyframes"] == 20


def test_a_five_second_clip_matches():
    qt = query_times(5.0)
    segs = align_video(qt, *neighbours(qt, [(0.0, 5.0, 7, 1.0, 300.0, 0.88)], seed=2))
    assert [s.reference for s in segs] == [7]
    assert_segment(segs[0], ref=7, q=(0.0, 5.0), r=(300.0, 305.0), speed=1.0)


@pytest.mark.parametrize("speed", [0.8, 1.25])
def test_speed_changes_are_aligned(speed):
    qt = query_times(24.0)
    segs = align_video(qt, *neighbours(qt, [(2.0, 22.0, 9, speed, 50.0, 0.9)], seed=3))
    assert len(segs) == 1
    assert_segment(segs[0], ref=9, q=(2.0, 22.0), r=(50 + 2 * speed, 50 + 22 * speed),
                   speed=speed)


def test_a_query_copying_two_works_gives_two_segments():
    qt = query_times(24.0)
    copies = [(0.0, 10.0, 3, 1.0, 100.0, 0.9), (12.0, 24.0, 5, 1.0, 8.0, 0.9)]
    segs = sorted(align_video(qt, *neighbours(qt, copies, seed=4)), key=lambda s: s.query_start_s)
    assert len(segs) == 2
    assert_segment(segs[0], ref=3, q=(0.0, 10.0), r=(100.0, 110.0), speed=1.0)
    assert_segment(segs[1], ref=5, q=(12.0, 24.0), r=(20.0, 32.0), speed=1.0)


def test_two_parts_of_one_work_give_two_segments():
    qt = query_times(24.0)
    copies = [(0.0, 10.0, 3, 1.0, 200.0, 0.9), (12.0, 24.0, 3, 1.0, -2.0, 0.9)]
    segs = sorted(align_video(qt, *neighbours(qt, copies, seed=5)), key=lambda s: s.query_start_s)
    assert len(segs) == 2
    assert_segment(segs[0], ref=3, q=(0.0, 10.0), r=(200.0, 210.0), speed=1.0)
    assert_segment(segs[1], ref=3, q=(12.0, 24.0), r=(10.0, 22.0), speed=1.0)


@pytest.mark.parametrize("seed", range(6))
def test_unrelated_neighbours_never_match(seed):
    # Similar-looking but unrelated keyframes everywhere, many of them above min_similarity.
    qt = query_times(120.0)
    segs = align_video(qt, *neighbours(qt, [], seed=10 + seed, distractor_sims=(0.5, 0.97)))
    assert segs == []


def test_unrelated_neighbours_in_a_small_catalog_never_match():
    # Few, short references: chance hits crowd every reference, so lines form by accident
    # more easily; the background rate of each reference must absorb that.
    qt = query_times(120.0)
    for seed in range(4):
        segs = align_video(qt, *neighbours(qt, [], seed=20 + seed, n_refs=4, ref_duration_s=60.0,
                                           distractor_sims=(0.5, 0.97)))
        assert segs == []


def test_a_static_shot_does_not_make_a_line_out_of_one_reference_keyframe():
    # Every query keyframe finds the same reference instant: not a copy that plays.
    qt = query_times(12.0)
    refs = np.full((qt.size, K), -1, np.int64)
    times = np.zeros((qt.size, K), np.float32)
    sims = np.full((qt.size, K), -np.inf, np.float32)
    refs[:, 0], times[:, 0], sims[:, 0] = 4, 30.0, 0.95
    assert align_video(qt, refs, times, sims) == []


def test_weak_neighbours_do_not_count():
    qt = query_times(20.0)
    arrays = neighbours(qt, [(0.0, 20.0, 8, 1.0, 10.0, 0.5)], seed=6, distractor_sims=(0.2, 0.4))
    assert align_video(qt, *arrays) == []
    assert align_video(qt, *arrays, params=VideoMatchParams(min_similarity=0.4)) != []


def test_missing_neighbours_and_empty_input():
    qt = query_times(10.0)
    refs = np.full((qt.size, K), -1, np.int64)
    times = np.zeros((qt.size, K), np.float32)
    sims = np.full((qt.size, K), -np.inf, np.float32)
    assert align_video(qt, refs, times, sims) == []
    empty = np.zeros((0, K))
    assert align_video(np.zeros(0, np.float32), empty.astype(np.int64), empty, empty) == []


def test_score_grows_with_evidence():
    short, long = query_times(6.0), query_times(30.0)
    s1 = align_video(short, *neighbours(short, [(0.0, 6.0, 1, 1.0, 0.0, 0.9)], seed=7))
    s2 = align_video(long, *neighbours(long, [(0.0, 30.0, 1, 1.0, 0.0, 0.9)], seed=7))
    assert s1 and s2 and s2[0].score > s1[0].score
    assert s2[0].evidence["log10_chance"] < s1[0].evidence["log10_chance"]
