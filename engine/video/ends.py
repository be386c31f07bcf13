"""Segment ends over a query's content-free edges.

A query's keyframes with no content (black, flat, fades, titles on black) are dropped before
matching (:mod:`engine.video.keyframes`), so a copy that opens on a fade-in or closes on a
fade-out is aligned only from its first frame with content: its segment starts (or ends)
seconds inside the copy, though nothing in the query before (after) it could belong to any
other match. Such a segment is carried to the query's edge along its own line, as far as the
alignment bridges a gap inside a segment (``max_gap_s``) and as far as the reference runs.
This places ends; it adds no evidence, and the score does not change.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from nanhu.engine.segments import Segment


def extend_to_edges(segments: list[Segment], row_times_s: np.ndarray, duration_s: float, *,
                    max_gap_s: float, reference_durations_s: dict[int, float] | None = None
                    ) -> list[Segment]:
    """Video segments carried over the query's content-free start and end.

    row_times_s : ndarray [shape=(n,)], float, the query's keyframe times (s; every view's
        rows: a time with any row has content)
    duration_s : the query's duration (s)
    max_gap_s : the longest content-free edge bridged (s)
    reference_durations_s : {ordinal: reference duration (s)}; an end is not carried past it
    Returns the segments in the same order: a video segment with no row before its start
    (after its end) within ``max_gap_s`` of the query's start (end) reaches it, its reference
    times moved along its line (``speed``) and kept within the reference.
    """
    times = np.asarray(row_times_s, np.float64).reshape(-1)
    if times.size == 0 or duration_s <= 0:
        return segments
    first, last = float(times.min()), float(times.max())
    durations = reference_durations_s or {}
    out = []
    for seg in segments:
        if seg.modality != "video" or seg.speed <= 0:
            out.append(seg)
            continue
        q0, q1, r0, r1 = (seg.query_start_s, seg.query_end_s, seg.reference_start_s,
                          seg.reference_end_s)
        if first >= q0 - 1e-6 and 0.0 < q0 <= max_gap_s:
            step = min(q0, r0 / seg.speed)
            q0, r0 = q0 - step, r0 - step * seg.speed
        if last < q1 - 1e-6 and 0.0 < duration_s - q1 <= max_gap_s:
            step = duration_s - q1
            room = durations.get(seg.reference)
            if room is not None:
                step = max(0.0, min(step, (room - r1) / seg.speed))
            q1, r1 = q1 + step, r1 + step * seg.speed
        if (q0, q1) == (seg.query_start_s, seg.query_end_s):
            out.append(seg)
        else:
            out.append(replace(seg, query_start_s=q0, query_end_s=q1, reference_start_s=r0,
                               reference_end_s=r1))
    return out
