"""Alignment of a query described in several views (whole frame, framing regions, rotations).

A query's keyframes may each be described several times (:mod:`engine.video.framing`): the
whole frame as references are, plus regions (a content box inside a blurred or static frame, the
halves of a split layout, a picture-in-picture window) and quarter turns. A copy shows the
reference in one view for the length of a shot, so each view is aligned on its own
(:func:`engine.video.align.align_video`) and its lines are charged for the views tried: the
chance of every line is multiplied by the number of views, once per line (not per keyframe: a
line's keyframes all come from one view). Segments of one reference found in several views
over the same query time are one finding: the best scored is kept.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from nanhu.engine.segments import Segment
from nanhu.engine.video.align import align_video
from nanhu.engine.video.framing import VIEW_NAMES
from nanhu.engine.video.score import VideoMatchParams


def align_views(
    views: np.ndarray, query_times_s: np.ndarray, neighbour_refs: np.ndarray,
    neighbour_times_s: np.ndarray, neighbour_sims: np.ndarray, *,
    params: VideoMatchParams | None = None, query_vectors: np.ndarray | None = None,
    catalog_keyframes: int = 1_000_000,
    reference_keyframes: Callable[[np.ndarray], np.ndarray] | None = None,
) -> list[Segment]:
    """Segments of a query whose rows are tagged by view.

    views : ndarray [shape=(n,)], int, view id of each row (:data:`VIEW_NAMES`)
    The other arguments are :func:`engine.video.align.align_video`'s, one row per (keyframe,
    view). Returns segments, best score first, each with ``evidence["view"]``.
    """
    views = np.asarray(views).reshape(-1)
    ids = np.unique(views)
    found: list[Segment] = []
    for view in ids:
        rows = np.flatnonzero(views == view)
        segments = align_video(
            np.asarray(query_times_s)[rows], np.asarray(neighbour_refs)[rows],
            np.asarray(neighbour_times_s)[rows], np.asarray(neighbour_sims)[rows],
            params=params,
            query_vectors=None if query_vectors is None else np.asarray(query_vectors)[rows],
            catalog_keyframes=catalog_keyframes, reference_keyframes=reference_keyframes,
            views=ids.size)
        for segment in segments:
            segment.evidence["view"] = VIEW_NAMES[int(view)]
        found.extend(segments)
    found.sort(key=lambda s: (-s.score, -s.evidence["aligned_keyframes"]))
    kept: list[Segment] = []
    for segment in found:
        if not any(k.reference == segment.reference and _overlap(k, segment) for k in kept):
            kept.append(segment)
    return kept


def _overlap(a: Segment, b: Segment) -> bool:
    """More than half of the shorter segment's query time is shared."""
    shorter = min(a.query_duration_s, b.query_duration_s)
    return a.query_overlap_s(b) > 0.5 * max(shorter, 1e-9)
