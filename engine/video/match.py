"""Video segments of a query against a catalog: global search, alignment (per view), local
verification of the shortlist and the segments' ends; what :class:`engine.matcher.Matcher`
asks for a query that carries keyframes."""

from __future__ import annotations

import logging

import numpy as np

from nanhu.engine.errors import InvalidArgument
from nanhu.engine.fingerprint import Fingerprint
from nanhu.engine.segments import Segment

log = logging.getLogger(__name__)


def video_segments(catalog, fp: Fingerprint, *, deleted: np.ndarray,
                   params=None) -> list[Segment]:
    """Aligned video segments of ``fp`` (which has keyframes) in ``catalog`` (a
    :class:`~engine.catalog.Catalog` or a cluster view), tombstoned ordinals (``deleted``,
    uint32[d]) left out; ``params``: :class:`~engine.video.align.VideoMatchParams`, or the
    defaults."""
    from nanhu.engine.video import align as video_align

    index = catalog.vectors()
    if len(index) == 0:
        return []
    params = params or video_align.default_params()
    if fp.video.vectors.ndim != 2 or fp.video.vectors.shape[1] != index.dim:
        raise InvalidArgument(
            f"query fingerprint: video.dim is {fp.video.vectors.shape[-1]}; this catalog's "
            f"keyframe vectors have {index.dim} dimensions")

    def reference_keyframes(ordinals: np.ndarray) -> np.ndarray:
        refs = catalog.by_ordinals(ordinals)
        return np.array([refs[int(o)].n_keyframes if int(o) in refs else 1 for o in ordinals],
                        np.int64)

    ordinals, times, sims = index.search(fp.video.vectors, params.k)
    # Defence behind engine.validate: a reference whose stored rows are unusable (a
    # similarity above 1 means a non-unit vector; times not finite or negative) is left
    # out of this query, logged, and every other reference is matched as usual.
    found = ordinals >= 0
    with np.errstate(invalid="ignore"):
        bad = found & ~(np.isfinite(sims) & (sims <= 1.0 + 1e-3) & np.isfinite(times)
                        & (times >= 0))
    dead = np.zeros(ordinals.shape, bool)
    if bad.any():
        poisoned = np.unique(ordinals[bad])
        log.warning("video matching skipped references with unusable keyframes "
                    "(ordinals %s)", poisoned[:10].tolist())
        dead |= np.isin(ordinals, poisoned)
    if deleted.size:
        dead |= np.isin(ordinals, deleted)
    if dead.any():
        ordinals = np.where(dead, -1, ordinals)
        sims = np.where(dead, -np.inf, sims).astype(np.float32)
        times = np.where(dead, 0.0, times).astype(np.float32)
    video = fp.video
    if not video.has_views:
        segments = video_align.align_video(
            video.times_s, ordinals, times, sims, params=params, query_vectors=video.vectors,
            catalog_keyframes=len(index), reference_keyframes=reference_keyframes)
    else:
        from nanhu.engine.video.views import align_views

        segments = align_views(video.views, video.times_s, ordinals, times, sims,
                               params=params, query_vectors=video.vectors,
                               catalog_keyframes=len(index),
                               reference_keyframes=reference_keyframes)
    # Geometric verification of the shortlist with local features (engine.video.verify);
    # a cluster view's local index asks the candidates' shards (engine.cluster.lookup).
    local_index = getattr(catalog, "local_index", None)
    if video.local is not None and len(video.local) and local_index is not None:
        from nanhu.engine.video.verify import verify

        segments = verify(video.local, video.times_s, video.vectors, video.views, ordinals,
                          times, sims, local_index(), segments, video=params)
    return _video_ends(catalog, segments, fp, params)


def _video_ends(catalog, segments: list[Segment], fp: Fingerprint, params) -> list[Segment]:
    """Segments carried over the query's content-free edges (engine.video.ends)."""
    from nanhu.engine.video.ends import extend_to_edges

    if not segments:
        return segments
    refs = catalog.by_ordinals(np.array([s.reference for s in segments], np.int64))
    return extend_to_edges(segments, fp.video.times_s, fp.duration_s,
                           max_gap_s=params.max_gap_s,
                           reference_durations_s={o: r.duration_s for o, r in refs.items()})
