"""Geometric verification of the global shortlist with local features, scored on a measured null.

The global search (:mod:`engine.video.align`) finds copies whose keyframes stay close to the
reference's as a whole. Under a 20-30 % crop, a caption band, a logo or a zoom they often do
not: the right reference is among the query's neighbours but no line is significant. Here the
query's local features (:mod:`engine.video.local`, a frame a second, shown and mirrored) are
matched against the ORB keyframes of the few references the global neighbours point at most,
and a frame whose keypoints agree on one affine map of a reference keyframe is strong evidence.

Candidates. Per reference, the sum over query times of the best neighbour similarity any row
(any view) of that time found at it; the ``candidates`` best are verified. Their keyframes are
tried where the global neighbours fell (the ORB keyframe spans holding them), at most
``keyframes_per_reference`` of them, best first.

Score (the meaning of :mod:`engine.video.score`: the expected number of chance findings this
strong per query at this catalog's size). For one pair of unrelated frames, ``P(inliers >= n)``
is the measured tail ``inlier_chance`` (``benchmarks/video_local_null.py``: every query frame
of attacked never-registered clips against every reference ORB keyframe). Pairs of one
reference are grouped into units (query frames of one shot, by the whole-frame embedding, as
the global score does; a reference keyframe counts once), the best pair of each unit kept:

- the best unit could have verified against any ORB keyframe of the catalog, in any query frame
  and orientation tried: ``frames_tried * catalog_keyframes * P(n_1)``;
- every further unit had to verify against this reference: ``tried_u * P(n_u)`` for the
  ``tried_u`` of its keyframes it was matched with;

each term capped at 1, the product's ``log10`` is the segment's ``log10_chance``. Where the
global alignment found a segment of the reference over the same query time, the stronger of the
two chances stands (they are not independent: the same frames).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import numpy as np

from nanhu.engine.segments import Segment, covered_s
from nanhu.engine.video.local import LocalFeatures, LocalParams, count_inliers
from nanhu.engine.video.score import VideoMatchParams

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LocalMatchParams:
    """Decision parameters of the verification (they change no stored data)."""

    #: references verified per query
    candidates: int = 4
    #: query frames verified per query (spread over its time; each shown and mirrored)
    max_query_frames: int = 10
    #: reference ORB keyframes tried per candidate and query frame
    keyframes_per_reference: int = 24
    #: fewest inliers for a pair to be evidence at all
    min_inliers: int = 8
    #: (inliers n, P(inliers >= n) for one pair of unrelated frames): the measured tail over
    #: 220,800 pairs (``benchmarks/video_local_null.py``; 17 corpus videos, 10 attacks, every
    #: query frame shown and mirrored against every other video's ORB keyframes;
    #: docs/results/video-local-2026-12-02/local-null.json): 3-6 as counted (>= 43 pairs
    #: each); 7 the 95 % upper bound of its 3 pairs; none reached 8, and past 7 the tail falls
    #: one decade an inlier (the measured steps fell 1.16-1.26 decades an inlier, and a
    #: binomial-like tail falls faster, so this overstates the chance of strong pairs)
    inlier_chance: tuple[tuple[float, float], ...] = (
        (3, 0.322), (4, 5.35e-2), (5, 2.97e-3), (6, 1.95e-4), (7, 3.5e-5), (8, 3.5e-6))
    #: skip verification when global segments already cover this share of the query
    covered_share: float = 0.8


class LocalIndex:
    """The catalog's local features by reference ordinal, and their keyframe count.

    What :func:`verify` asks of a catalog's local features; a cluster view answers the same
    questions from its shards (:class:`engine.cluster.lookup.ShardedLocalIndex`)."""

    def __init__(self, features: dict[int, LocalFeatures]) -> None:
        self.features = features
        self.keyframes = int(sum(len(f) for f in features.values()))

    def __len__(self) -> int:
        return self.keyframes

    def has_features(self, ordinals: np.ndarray) -> np.ndarray:
        """bool[n]: which of the reference ordinals int[n] have local features."""
        return np.array([int(o) in self.features for o in np.asarray(ordinals).tolist()], bool)

    def features_to_verify(self, hits: dict[int, tuple[np.ndarray, np.ndarray]], most: int
                           ) -> dict[int, LocalFeatures]:
        """{ordinal: its local features} of the candidates ``hits`` names ({ordinal: (hit
        times float[h], hit similarities float[h])}, the global neighbours at it), of which
        :func:`verify` reads the ``most`` keyframes :func:`keyframes_to_try` picks. Here the
        whole features (they are in memory); a cluster sends only those keyframes
        (:func:`features_to_try`)."""
        return {o: self.features[o] for o in hits if o in self.features}


def features_to_try(reference: LocalFeatures, hit_times: np.ndarray, hit_sims: np.ndarray,
                    most: int) -> LocalFeatures:
    """``reference`` with the keypoints of only the keyframes :func:`verify` tries for these
    hits (:func:`keyframes_to_try`): every keyframe's time kept, the others' counts 0. Verifying
    with it gives what verifying with the whole features gives (the keyframes tried, their
    inliers and the times read are the same), for at most ``most`` keyframes' bytes."""
    tried = keyframes_to_try(reference, hit_times, hit_sims, most)
    if tried.size == len(reference):
        return reference
    keep = np.zeros(len(reference), bool)
    keep[tried] = True
    rows = np.repeat(keep, reference.counts)
    return LocalFeatures(reference.times_s, np.where(keep, reference.counts, 0).astype(np.int32),
                         reference.xy[rows], reference.descriptors[rows], reference.size,
                         reference.flipped)


def verify(query: LocalFeatures, query_times_s: np.ndarray, query_vectors: np.ndarray,
           views: np.ndarray | None, neighbour_refs: np.ndarray, neighbour_times_s: np.ndarray,
           neighbour_sims: np.ndarray, index: LocalIndex, segments: list[Segment], *,
           params: LocalMatchParams | None = None, local: LocalParams | None = None,
           video: VideoMatchParams | None = None) -> list[Segment]:
    """The global ``segments`` with verified evidence added.

    query : the query's local features: frames shown and mirrored, ``flipped`` set (rows
        alternate, engine.validate checks it), or each frame once (``flipped`` None)
    query_times_s : ndarray [shape=(n,)], float32, time of each global row (s)
    query_vectors : ndarray [shape=(n, d)], float32, the rows' embeddings
    views : ndarray [shape=(n,)], int, or None: the rows' views (0 whole frame)
    neighbour_* : the global search's answer, [n, k] (ordinal -1 / similarity -inf for none)
    index : the catalog's local features
    Returns segments, best score first: verified ones new or strengthened, the rest as given.
    """
    params = params or LocalMatchParams()
    local = local or LocalParams()
    video = video or VideoMatchParams()
    if len(query) == 0 or index.keyframes == 0 or np.size(neighbour_refs) == 0:
        return segments
    duration = float(np.ptp(query.times_s)) + local.query_every_s
    if covered_s([s for s in segments if s.score >= video.min_score]) >= params.covered_share * duration:
        return segments
    refs = np.asarray(neighbour_refs, np.int64)
    sims = np.asarray(neighbour_sims, np.float64)
    times = np.asarray(neighbour_times_s, np.float64)
    rows_t = np.asarray(query_times_s, np.float64)
    candidates = _candidates(rows_t, refs, sims, index, params.candidates)
    if candidates.size == 0:
        return segments
    hits = {o: (times[refs == o], sims[refs == o]) for o in candidates.tolist()}
    chosen = index.features_to_verify(hits, params.keyframes_per_reference)
    frames = _query_frames(query, params.max_query_frames)
    units = _units(query.times_s[frames], rows_t, query_vectors, views, video.unit_similarity)
    # each frame shown and mirrored (the next row); a print without mirrored rows as it is
    twins = (0, 1) if query.flipped is not None else (0,)
    frames_tried = len(twins) * frames.size
    log10_seed = np.log10(max(frames_tried * index.keyframes, 1))
    out = list(segments)
    for ordinal in candidates.tolist():
        reference = chosen.get(ordinal)
        if reference is None:  # its shard did not answer: a partial answer (engine.cluster)
            continue
        tried = keyframes_to_try(reference, *hits[ordinal], params.keyframes_per_reference)
        pairs = []  # (unit, inliers, query time, keyframe, tried)
        for frame, unit in zip(frames.tolist(), units.tolist()):
            best = (0, -1)
            for twin in twins:
                xy, desc = query.points(frame + twin)
                inliers = count_inliers(xy, desc, reference, tried, params=local)
                j = int(np.argmax(inliers)) if inliers.size else -1
                if j >= 0 and inliers[j] > best[0]:
                    best = (int(inliers[j]), int(tried[j]))
            if best[0] >= params.min_inliers:
                pairs.append((unit, best[0], float(query.times_s[frame]), best[1], tried.size))
        if not pairs:
            continue
        seg = _segment(ordinal, pairs, reference, rows_t, refs, times, sims, query, local,
                       params, video, log10_seed)
        if seg is not None:
            out = _merge(out, seg)
    out.sort(key=lambda s: (-s.score, -s.evidence.get("aligned_keyframes", 0)))
    return out


def _candidates(row_times: np.ndarray, refs: np.ndarray, sims: np.ndarray, index: LocalIndex,
                most: int) -> np.ndarray:
    """Reference ordinals ranked by the summed best similarity per query time (int64[<= most]);
    only references with local features."""
    found = (refs >= 0) & np.isfinite(sims)
    if not found.any():
        return np.zeros(0, np.int64)
    slot = np.unique(row_times, return_inverse=True)[1].reshape(-1, 1)
    slot = np.broadcast_to(slot, refs.shape)[found]
    ref, sim = refs[found], sims[found]
    key = ref * (int(slot.max()) + 1) + slot
    order = np.lexsort((-sim, key))
    first = np.concatenate([[True], key[order][1:] != key[order][:-1]])
    best_ref, best_sim = ref[order][first], sim[order][first]
    ordinals, inverse = np.unique(best_ref, return_inverse=True)
    totals = np.bincount(inverse, weights=best_sim)
    ranked = ordinals[np.argsort(-totals, kind="stable")].astype(np.int64)
    return ranked[index.has_features(ranked)][:most]


def _query_frames(query: LocalFeatures, most: int) -> np.ndarray:
    """Rows of the shown (not mirrored) frames to verify, spread evenly over time: int64[f];
    row + 1 is each one's mirrored twin."""
    shown = np.flatnonzero(~query.flipped) if query.flipped is not None else np.arange(len(query))
    if shown.size > most:
        shown = shown[np.round(np.linspace(0, shown.size - 1, most)).astype(np.int64)]
    return shown


def _units(frame_times: np.ndarray, row_times: np.ndarray, vectors: np.ndarray,
           views: np.ndarray | None, unit_similarity: float) -> np.ndarray:
    """Unit id of each verified frame: consecutive frames whose nearest whole-frame rows are at
    least ``unit_similarity`` alike are one shot (int64[f])."""
    whole = np.flatnonzero(views == 0) if views is not None else np.arange(row_times.size)
    if whole.size == 0 or frame_times.size == 0:
        return np.arange(frame_times.size)
    near = whole[np.argmin(np.abs(row_times[whole][None, :] - frame_times[:, None]), axis=1)]
    v = np.asarray(vectors, np.float32)[near]
    alike = np.sum(v[1:] * v[:-1], axis=1) >= unit_similarity
    return np.concatenate([[0], np.cumsum(~alike)])


def keyframes_to_try(reference: LocalFeatures, hit_times: np.ndarray, hit_sims: np.ndarray,
                      most: int) -> np.ndarray:
    """The reference's ORB keyframes whose spans (from one to the next) hold the query's global
    hits, best hit first, then the rest in time order, at most ``most``: int64[<= most]."""
    m = len(reference)
    if m <= most:
        return np.arange(m)
    span = np.clip(np.searchsorted(reference.times_s, hit_times, side="right") - 1, 0, m - 1)
    best = np.full(m, -np.inf)
    np.maximum.at(best, span, hit_sims)
    return np.argsort(-best, kind="stable")[:most]


def _log10_tail(inliers: np.ndarray, table: tuple[tuple[float, float], ...]) -> np.ndarray:
    """log10 P(inliers >= n) for unrelated frames: log-linear in the measured table, its
    last slope continued past it (float64, same shape)."""
    t = np.asarray(table, np.float64)
    n, lp = t[:, 0], np.log10(t[:, 1])
    x = np.asarray(inliers, np.float64)
    slope = (lp[-1] - lp[-2]) / (n[-1] - n[-2])
    return np.where(x > n[-1], lp[-1] + slope * (x - n[-1]), np.interp(x, n, lp))


def _segment(ordinal, pairs, reference, row_times, refs, times, sims, query, local, params,
             video, log10_seed) -> Segment | None:
    """One segment of a reference from its verified pairs; None when it does not pass."""
    arr = np.array([(u, n, q, k, t) for u, n, q, k, t in pairs], np.float64)
    # One pair per unit (the most inliers), one unit per reference keyframe.
    order = np.lexsort((-arr[:, 1], arr[:, 0]))
    arr = arr[order][np.concatenate([[True], np.diff(arr[order][:, 0]) != 0])]
    order = np.lexsort((-arr[:, 1], arr[:, 3]))
    arr = arr[order][np.concatenate([[True], np.diff(arr[order][:, 3]) != 0])]
    arr = arr[np.argsort(-arr[:, 1], kind="stable")]
    tail = _log10_tail(arr[:, 1], params.inlier_chance)
    terms = np.concatenate([[log10_seed + tail[0]], np.log10(arr[1:, 4]) + tail[1:]])
    log10_chance = float(np.minimum(terms, 0.0).sum())
    score = float(1.0 - 10.0 ** (-max(0.0, -log10_chance) / video.score_scale))
    if score < video.min_score:
        return None
    q_times = arr[:, 2]
    ref_times = np.array([_reference_time(reference, int(k), q, row_times, refs, times, sims,
                                          ordinal) for k, q in zip(arr[:, 3], q_times)])
    offset = float(np.median(ref_times - q_times))
    start, end, offset = _extent(float(q_times.min()), float(q_times.max()) + local.query_every_s,
                                 offset, ordinal, row_times, refs, times, sims, video)
    return Segment(
        reference=int(ordinal), modality="video", query_start_s=start, query_end_s=end,
        reference_start_s=max(0.0, start + offset), reference_end_s=max(0.0, end + offset),
        speed=1.0, score=score,
        evidence={"aligned_keyframes": int(arr.shape[0]), "verified_keyframes": int(arr.shape[0]),
                  "best_inliers": int(arr[0, 1]),
                  "log10_chance": round(max(log10_chance, -300.0), 2),
                  "offset_s": round(offset, 3), "view": "local"})


def _extent(start: float, end: float, offset: float, ordinal: int, row_times: np.ndarray,
            refs: np.ndarray, times: np.ndarray, sims: np.ndarray,
            video: VideoMatchParams) -> tuple[float, float, float]:
    """(start, end, offset) of a verified segment: its query span extended over the query
    times whose global neighbours at this reference lie on its line (within twice the
    alignment's tolerance, similarity at least ``min_similarity``), while gaps stay within
    ``max_gap_s``; the offset re-centred on those hits when there are three or more. The
    hits are too weak to score (that is why the global alignment missed), not to place.
    The line is the verified pair's unless the global hits support another offset of this
    reference better (:func:`_supported_offset`)."""
    band = 2 * video.tolerance_s
    offset = _supported_offset(offset, ordinal, row_times, refs, times, sims, video)
    on = ((refs == ordinal) & (sims >= video.min_similarity)
          & (np.abs(times - (row_times[:, None] + offset)) <= band))
    rows, cols = np.nonzero(on)
    if rows.size >= 3:
        offset = float(np.median(times[rows, cols] - row_times[rows]))
    hit_times = np.unique(row_times[rows])
    period = 0.5
    for t in hit_times[hit_times < start][::-1]:
        if start - t > video.max_gap_s:
            break
        start = float(t)
    for t in hit_times[hit_times >= end]:
        if t - end > video.max_gap_s:
            break
        end = float(t) + period
    return start, end, offset


def _supported_offset(offset: float, ordinal: int, row_times: np.ndarray, refs: np.ndarray,
                      times: np.ndarray, sims: np.ndarray, video: VideoMatchParams) -> float:
    """The offset (reference minus query time, s) of the verified pair, or the one the
    reference's global hits (similarity >= ``min_similarity``) support at more distinct query
    times: a slideshow shows a photograph more than once, and the ORB keyframe verified may
    be a repeat far from where the copy was taken."""
    rows, cols = np.nonzero((refs == ordinal) & (sims >= video.min_similarity))
    if rows.size == 0:
        return offset
    band = 2 * video.tolerance_s
    offsets = times[rows, cols] - row_times[rows]
    slots = np.round(row_times[rows] * 4).astype(np.int64)

    def support(value: float) -> int:
        return int(np.unique(slots[np.abs(offsets - value) <= band]).size)

    bins = np.floor(offsets / band).astype(np.int64)
    pairs = np.unique(np.stack([bins, slots], axis=1), axis=0)
    values, counts = np.unique(pairs[:, 0], return_counts=True)
    best = float(np.median(offsets[bins == values[np.argmax(counts)]]))
    return best if support(best) > support(offset) else offset


def _reference_time(reference: LocalFeatures, keyframe: int, q: float, row_times, refs, times,
                    sims, ordinal: int) -> float:
    """Reference time of a verified query frame: the best global neighbour at this reference,
    from the query rows of that time, inside the verified keyframe's span; else the keyframe's
    time (an ORB keyframe opens a shot: the frame may lie seconds into it)."""
    start = float(reference.times_s[keyframe])
    stop = (float(reference.times_s[keyframe + 1]) if keyframe + 1 < len(reference)
            else np.inf)
    rows = np.abs(row_times - q) <= 0.26
    pick = rows[:, None] & (refs == ordinal) & (times >= start - 0.5) & (times < stop)
    if not pick.any():
        return start
    flat = np.flatnonzero(pick)
    return float(times.reshape(-1)[flat[np.argmax(sims.reshape(-1)[flat])]])


def _merge(segments: list[Segment], found: Segment) -> list[Segment]:
    """Add a verified segment: a global one of the same reference over the same query time
    takes the stronger chance; otherwise it is new."""
    for i, seg in enumerate(segments):
        if seg.reference == found.reference and seg.query_overlap_s(found) > 0:
            if found.score > seg.score:
                evidence = {**seg.evidence, **{k: found.evidence[k] for k in (
                    "verified_keyframes", "best_inliers", "log10_chance")}}
                segments[i] = replace(seg, score=found.score, evidence=evidence)
            return segments
    return [*segments, found]
