"""Segment ends over a query's content-free edges (engine.video.ends): a copy that opens on a
fade is placed from the query's start, along its line, within the reference; an edge with
content, a gap too long or an audio segment is left alone."""

from __future__ import annotations

import numpy as np

from nanhu.engine.segments import Segment
from nanhu.engine.video.ends import extend_to_edges


def seg(q0, q1, r0, r1, *, speed=1.0, modality="video", reference=3) -> Segment:
    return Segment(reference=reference, modality=modality, query_start_s=q0, query_end_s=q1,
                   reference_start_s=r0, reference_end_s=r1, speed=speed, score=0.9)


def rows(start, end):
    return np.arange(start, end, 0.5)


def test_a_fade_in_is_carried_to_the_query_start_along_the_line():
    # the query's first 3.5 s have no content keyframe; the copy starts 2 s into the reference
    found = extend_to_edges([seg(3.5, 10.0, 5.5, 12.0)], rows(3.5, 10.0), 10.0, max_gap_s=6.0)
    assert (found[0].query_start_s, found[0].reference_start_s) == (0.0, 2.0)
    assert (found[0].query_end_s, found[0].reference_end_s) == (10.0, 12.0)
    assert found[0].score == 0.9


def test_speed_moves_reference_times_and_the_reference_bounds_them():
    found = extend_to_edges([seg(2.0, 6.0, 3.0, 8.0, speed=1.25)], rows(2.0, 6.0), 9.0,
                            max_gap_s=6.0, reference_durations_s={3: 10.0})
    assert np.isclose(found[0].reference_start_s, 0.5) and found[0].query_start_s == 0.0
    # 3 s of fade-out would run 3.75 s of reference past its end at 10 s: only 1.6 s is taken
    assert np.isclose(found[0].reference_end_s, 10.0)
    assert np.isclose(found[0].query_end_s, 6.0 + 2.0 / 1.25)
    # a copy of the reference's very start cannot reach back past it
    found = extend_to_edges([seg(3.0, 6.0, 1.0, 4.0)], rows(3.0, 6.0), 6.0, max_gap_s=6.0)
    assert (found[0].query_start_s, found[0].reference_start_s) == (2.0, 0.0)


def test_edges_with_content_long_gaps_and_audio_are_left_alone():
    # content before the segment (another picture): not this copy's fade
    kept = seg(3.5, 10.0, 5.5, 12.0)
    assert extend_to_edges([kept], rows(0.0, 10.0), 10.0, max_gap_s=6.0) == [kept]
    # a content-free start longer than the alignment bridges
    late = seg(8.0, 12.0, 20.0, 24.0)
    assert extend_to_edges([late], rows(8.0, 12.0), 12.0, max_gap_s=6.0) == [late]
    audio = seg(3.5, 10.0, 5.5, 12.0, modality="audio")
    assert extend_to_edges([audio], rows(3.5, 10.0), 10.0, max_gap_s=6.0) == [audio]
    assert extend_to_edges([kept], np.zeros(0), 10.0, max_gap_s=6.0) == [kept]
