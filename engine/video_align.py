"""Video alignment: nearest keyframes per query keyframe, voted into time-aligned segments.

For every query keyframe the vector index returns its ``k`` nearest reference keyframes
(reference ordinal, reference time, cosine similarity). A copy of a stretch of a reference maps
query time ``q`` to reference time ``r = speed * q + offset``; chance neighbours do not line up.

Method, per candidate reference (a loop over references; everything inside is vectorised):

1. Hits below ``min_similarity`` are dropped; references with hits on fewer than ``min_keyframes``
   distinct query keyframes are not examined.
2. Hough vote over (speed, offset): every hit votes, at each candidate speed of a geometric grid
   over ``speed_range`` (0.8..1.25), for the offset bin of ``r - speed * q``. A query keyframe
   counts once per bin (a static shot matches many reference keyframes), and a bin's count
   includes its two neighbours so that a line on a bin edge is not split.
3. The best bin seeds a line; the line is refined by least squares on its inliers (hits within
   ``tolerance_s`` of it, one per query keyframe, the most similar), speed clipped to
   ``speed_range``, twice. Inliers are cut into segments at query gaps over ``max_gap_s``.
4. Each segment is scored (below); accepted segments take their query keyframes out of the
   vote for this reference, and the next best line is sought (a query may copy several parts
   of one work). A loop per reference stops when the best bin has fewer than
   ``min_keyframes`` votes.

Score. Under the null hypothesis ("the query keyframes are unrelated to this reference") each
query keyframe finds a neighbour on a given line with a small probability ``p_chance``. A
segment whose span holds ``n`` query keyframes of which ``m`` are aligned has the binomial tail
``P = P(Binomial(n, p_chance) >= m)``; testing many lines (every reference, speed and offset
tried) is paid for with a factor ``n_lines``: ``log10_chance = log10(n_lines * P)``. The score
maps this onto 0..1 as ``score = clip(-log10_chance / score_scale, 0, 1)``: with the default
``score_scale = 10`` a score of 0.3 means odds of 1 in 1000 that chance alone explains the
segment, and 1.0 means 1 in 10^10 or less. ``p_chance = 0.05`` is deliberately pessimistic:
on unrelated generated and real footage (``benchmarks/video_probe.py``) the measured rate at
the default ``min_similarity`` is well below it, so real-world coincidences (title cards,
similar compositions) still stay under the default threshold ``min_score = 0.3``. Each aligned
keyframe also needs ``min_similarity``, so the count cannot be inflated by weak neighbours.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from scipy import stats

from engine.segments import Segment

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VideoMatchParams:
    """Decision parameters for video matches (they do not change fingerprints)."""

    #: neighbours fetched from the vector index per query keyframe
    k: int = 16
    #: cosine similarity a neighbour needs to count as a hit
    min_similarity: float = 0.80
    #: fewest aligned query keyframes for a segment
    min_keyframes: int = 4
    #: lowest score for a segment (0.3: chance odds of 1e-3 at ``score_scale`` 10)
    min_score: float = 0.3
    #: playback speeds tried (query plays ``speed`` times faster than the reference)
    speed_range: tuple[float, float] = (0.8, 1.25)
    #: relative step of the speed grid of the vote (the fit refines it)
    speed_step: float = 0.01
    #: a hit within this many seconds of reference time from a line is on it
    tolerance_s: float = 0.75
    #: aligned keyframes further apart than this in query time start a new segment (s)
    max_gap_s: float = 6.0
    #: null-hypothesis chance that a query keyframe has a hit on a given line
    p_chance: float = 0.05
    #: ``-log10`` chance that maps to score 1.0
    score_scale: float = 10.0
    #: most segments returned per reference
    max_segments_per_reference: int = 8


def default_params() -> VideoMatchParams:
    """The default decision parameters."""
    return VideoMatchParams()


def align_video(
    query_times_s: np.ndarray,
    neighbour_refs: np.ndarray,
    neighbour_times_s: np.ndarray,
    neighbour_sims: np.ndarray,
    *,
    params: VideoMatchParams | None = None,
) -> list[Segment]:
    """Time-aligned segments from the nearest reference keyframes of each query keyframe.

    query_times_s : ndarray [shape=(n,)], float32, presentation time of each query keyframe (s)
    neighbour_refs : ndarray [shape=(n, k)], int64, reference ordinal of each neighbour; -1 none
    neighbour_times_s : ndarray [shape=(n, k)], float32, reference time of each neighbour (s)
    neighbour_sims : ndarray [shape=(n, k)], float32, cosine similarity (-inf for none)
    Returns segments (modality ``"video"``), best score first.
    """
    params = params or VideoMatchParams()
    query_times = np.asarray(query_times_s, np.float64).reshape(-1)
    n = query_times.size
    refs = np.asarray(neighbour_refs, np.int64).reshape(n, -1)
    ref_times = np.asarray(neighbour_times_s, np.float64).reshape(n, -1)
    sims = np.asarray(neighbour_sims, np.float64).reshape(n, -1)
    if n == 0 or refs.size == 0:
        return []
    keep = (refs >= 0) & np.isfinite(sims) & (sims >= params.min_similarity)
    rows = np.nonzero(keep)[0]
    hit_ref, hit_rt, hit_sim = refs[keep], ref_times[keep], sims[keep]
    if hit_ref.size == 0:
        return []
    # References whose hits cover enough distinct query keyframes to possibly pass.
    pairs = np.unique(hit_ref * n + rows)
    ref_of_pair = pairs // n
    candidates, per_ref = np.unique(ref_of_pair, return_counts=True)
    candidates = candidates[per_ref >= params.min_keyframes]
    if candidates.size == 0:
        return []
    speeds = _speed_grid(params)
    n_lines = _n_lines(query_times, hit_rt, candidates.size, speeds.size, params)
    order = np.argsort(hit_ref, kind="stable")
    sorted_refs = hit_ref[order]
    segments: list[Segment] = []
    for ordinal in candidates:
        lo, hi = np.searchsorted(sorted_refs, [ordinal, ordinal + 1])
        idx = order[lo:hi]
        segments.extend(_segments_of_reference(
            int(ordinal), query_times, rows[idx], hit_rt[idx], hit_sim[idx],
            speeds=speeds, n_lines=n_lines, params=params,
        ))
    segments.sort(key=lambda s: (-s.score, -s.evidence["aligned_keyframes"]))
    return segments


def _speed_grid(params: VideoMatchParams) -> np.ndarray:
    """Geometric speed grid over ``speed_range`` that always holds 1.0 exactly."""
    lo, hi = params.speed_range
    step = np.log1p(params.speed_step)
    down = np.arange(0, np.log(lo) - 1e-12, -step)
    up = np.arange(step, np.log(hi) + 1e-12, step)
    return np.exp(np.concatenate([down[::-1], up]))


def _n_lines(query_times: np.ndarray, hit_rt: np.ndarray, n_refs: int, n_speeds: int,
             params: VideoMatchParams) -> float:
    """How many distinct lines the search could have picked: the look-elsewhere factor."""
    span = max(float(np.ptp(hit_rt)) + float(np.ptp(query_times)), 1.0)
    return float(n_refs) * n_speeds * max(1.0, span / (2 * params.tolerance_s))


def _segments_of_reference(
    ordinal: int, query_times: np.ndarray, rows: np.ndarray, ref_times: np.ndarray,
    sims: np.ndarray, *, speeds: np.ndarray, n_lines: float, params: VideoMatchParams,
) -> list[Segment]:
    """Every segment of one reference: repeated vote, fit, cut and score."""
    out: list[Segment] = []
    active = np.ones(rows.size, bool)
    width = 2 * params.tolerance_s
    tries = 0
    while len(out) < params.max_segments_per_reference and tries < 4 * params.max_segments_per_reference:
        tries += 1
        idx = np.flatnonzero(active)
        if np.unique(rows[idx]).size < params.min_keyframes:
            break
        q, r = query_times[rows[idx]], ref_times[idx]
        # Vote: (speed, offset bin, query keyframe) triples, each counted once.
        offsets = r[None, :] - speeds[:, None] * q[None, :]
        bins = np.floor(offsets / width).astype(np.int64)
        base = bins.min()
        n_bins = int(bins.max() - base) + 3
        speed_idx = np.broadcast_to(np.arange(speeds.size)[:, None], bins.shape)
        cell = speed_idx * n_bins + (bins - base + 1)
        triple = np.unique(cell * query_times.size + rows[idx][None, :])
        cells, votes = np.unique(triple // query_times.size, return_counts=True)
        # A line on a bin edge splits its votes: count each bin with its two neighbours.
        smoothed = votes.copy()
        for shift in (-1, 1):
            pos = np.clip(np.searchsorted(cells, cells + shift), 0, cells.size - 1)
            smoothed += np.where(cells[pos] == cells + shift, votes[pos], 0)
        best = int(np.argmax(smoothed))
        if smoothed[best] < params.min_keyframes:
            break
        s_index, b = divmod(int(cells[best]), n_bins)
        speed = float(speeds[s_index])
        offset = (b - 1 + base + 0.5) * width
        line = _fit_line(q, r, sims[idx], rows[idx], speed, offset, params)
        if line is None:
            active[idx[_near(q, r, speed, offset, 2 * params.tolerance_s)]] = False
            continue
        speed, offset, inliers = line
        found = False
        for part in _split_by_gaps(inliers, q, params.max_gap_s):
            seg = _segment(ordinal, query_times, rows[idx], q, sims[idx], part, speed, offset,
                           n_lines, params)
            if seg is not None:
                out.append(seg)
                found = True
        # Take this line's keyframes out of the vote either way: a failed line would win again.
        near = _near(q, r, speed, offset, params.tolerance_s)
        used_rows = np.unique(rows[idx][inliers])
        active[idx[near | np.isin(rows[idx], used_rows)]] = False
        if not found and not near.any():
            break
    return out


def _near(q: np.ndarray, r: np.ndarray, speed: float, offset: float, tol: float) -> np.ndarray:
    return np.abs(r - (speed * q + offset)) <= tol


def _fit_line(q, r, sims, rows, speed, offset, params: VideoMatchParams):
    """Refine (speed, offset) by least squares on inliers; returns (speed, offset, inliers)."""
    lo, hi = params.speed_range
    inliers = np.zeros(0, np.int64)
    for _ in range(3):
        inliers = _best_per_row(np.flatnonzero(_near(q, r, speed, offset, params.tolerance_s)),
                                r - (speed * q + offset), sims, rows)
        if inliers.size < 2:
            return None
        qi, ri = q[inliers], r[inliers]
        if np.ptp(qi) >= 2.0:
            slope, intercept = np.polyfit(qi, ri, 1)
            speed = float(np.clip(slope, lo, hi))
        offset = float(np.median(ri - speed * qi))
    inliers = _best_per_row(np.flatnonzero(_near(q, r, speed, offset, params.tolerance_s)),
                            r - (speed * q + offset), sims, rows)
    return speed, offset, inliers


def _best_per_row(cand: np.ndarray, residual: np.ndarray, sims: np.ndarray,
                  rows: np.ndarray) -> np.ndarray:
    """One hit per query keyframe among ``cand``: the most similar, then the closest."""
    if cand.size == 0:
        return cand
    order = np.lexsort((np.abs(residual[cand]), -sims[cand], rows[cand]))
    cand = cand[order]
    first = np.concatenate([[True], rows[cand][1:] != rows[cand][:-1]])
    return cand[first]


def _split_by_gaps(inliers: np.ndarray, q: np.ndarray, max_gap_s: float) -> list[np.ndarray]:
    order = inliers[np.argsort(q[inliers], kind="stable")]
    cuts = np.flatnonzero(np.diff(q[order]) > max_gap_s) + 1
    return np.split(order, cuts)


def _segment(ordinal, query_times, rows, q, sims, part, speed, offset, n_lines,
             params: VideoMatchParams) -> Segment | None:
    """Score one run of aligned keyframes; None when it does not pass the thresholds."""
    aligned = part.size
    if aligned < params.min_keyframes:
        return None
    q_start, q_end = float(q[part].min()), float(q[part].max())
    spanned = int(np.count_nonzero((query_times >= q_start - 1e-6) & (query_times <= q_end + 1e-6)))
    spanned = max(spanned, aligned)
    log10_tail = stats.binom.logsf(aligned - 1, spanned, params.p_chance) / np.log(10)
    log10_chance = float(log10_tail + np.log10(max(n_lines, 1.0)))
    score = float(np.clip(-log10_chance / params.score_scale, 0.0, 1.0))
    if score < params.min_score:
        return None
    period = _sample_period(query_times)
    return Segment(
        reference=ordinal, modality="video",
        query_start_s=q_start, query_end_s=q_end + period,
        reference_start_s=speed * q_start + offset,
        reference_end_s=speed * (q_end + period) + offset,
        speed=speed, score=score,
        evidence={
            "aligned_keyframes": int(aligned), "query_keyframes": spanned,
            "mean_similarity": round(float(sims[part].mean()), 4),
            "log10_chance": round(max(log10_chance, -300.0), 2),
            "offset_s": round(offset, 3),
        },
    )


def _sample_period(query_times: np.ndarray) -> float:
    """The query's keyframe period (s): the median step, 0.5 s when it cannot be told."""
    steps = np.diff(np.sort(query_times))
    steps = steps[steps > 1e-6]
    return float(np.median(steps)) if steps.size else 0.5
