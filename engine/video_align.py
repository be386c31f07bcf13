"""Video alignment: nearest keyframes per query keyframe, voted into time-aligned segments.

For every query keyframe the vector index returns its ``k`` nearest reference keyframes
(reference ordinal, reference time, cosine similarity). A copy of a stretch of a reference maps
query time ``q`` to reference time ``r = speed * q + offset``; chance neighbours do not line up.

Method, per candidate reference (a loop over references; everything inside is vectorised):

1. Hits below ``min_similarity`` are dropped; references whose hits cover too few distinct
   query keyframes to ever reach ``min_score`` are not examined.
2. Hough vote over (speed, offset): every hit votes, at each candidate speed of a 1 % geometric
   grid over ``speed_range`` (0.8..1.25), for the ``2 * tolerance_s`` offset bin of
   ``r - speed * q``. A query keyframe counts once per bin (a static shot matches many
   reference keyframes); a bin's count includes its two neighbours so that a line on a bin
   edge is not split, the unsmoothed count breaks ties, then the speed nearest 1.0.
3. The best bin seeds a line. A cheap bound drops it when even a perfect run of its keyframes
   could not reach ``min_score``; otherwise it is refined (:func:`_fit_line`: nearby grid
   speeds and the least-squares slope, each with its centred offset, judged by the summed
   similarity of their inliers, one per query keyframe). Inliers are cut into segments at
   query gaps over ``max_gap_s``, and each segment is scored (below).
4. The line's keyframes leave the vote for this reference and the next best line is sought (a
   query may copy several parts of one work), until the best bin cannot pass, four lines in a
   row fail, or ``max_segments_per_reference`` segments are found.

Score. Under the null hypothesis ("the query keyframes are unrelated to this reference") each
query keyframe finds a neighbour on a given line with a small probability ``p_null``. A segment
whose span holds ``n`` query keyframes of which ``m`` are aligned has the binomial tail
``P = P(Binomial(n, p_null) >= m)``; picking the best of many lines is paid for with a factor
``n_lines`` (every hit above ``min_similarity`` could seed a line at every candidate speed):
``log10_chance = log10(n_lines * P)``. The score maps this onto 0..1 as
``score = 1 - 10 ** (log10_chance / score_scale)`` (0 when the chance is 1 or more): with the
default ``score_scale = 10``, score 0.5 means odds of 1 in 1,000 that chance alone explains the
segment, 0.9 one in 10^10, 0.99 one in 10^20. The default threshold ``min_score = 0.5`` is
therefore "1 in 1,000 per query". With ``k = 32`` neighbours per keyframe all above
``min_similarity``, a 5 s clip with all 10 keyframes in line scores about 0.87, 8 of 10 about
0.65, and a 2.5 s stretch (5 keyframes) about 0.45, below the threshold.

``p_null`` is the larger of ``p_chance = 0.05`` and the reference's own background rate, measured
on its hits off the line (see :func:`_background_rate`): a reference that every query keyframe
hits somewhere (a catalog of a handful of works, a reference that looks like everything) lines up
by accident more often. ``p_chance`` is deliberately pessimistic: on unrelated generated and real
footage (``benchmarks/video_probe.py``) far fewer than 5 % of query keyframes have any neighbour
above the default ``min_similarity`` at all, so real-world coincidences (title cards, similar
compositions, temporally correlated keyframes of one shot) still stay under the threshold. Each
aligned keyframe also needs ``min_similarity``, so weak neighbours cannot inflate the count.
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
    k: int = 32
    #: cosine similarity a neighbour needs to count as a hit: attacked keyframes keep 0.65-0.8
    #: under crops, logos and captions (``benchmarks/video_probe.py``); chance lines among the
    #: many unrelated neighbours above it are what the score accounts for
    min_similarity: float = 0.60
    #: fewest aligned query keyframes for a segment
    min_keyframes: int = 4
    #: lowest score for a segment (0.5: chance odds of 1e-3 at ``score_scale`` 10)
    min_score: float = 0.5
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
    #: ``-log10`` chance that maps to score 0.9 (score = 1 - 10 ** (log10_chance / scale))
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
    if n == 0 or np.size(neighbour_refs) == 0:
        return []
    refs = np.asarray(neighbour_refs, np.int64).reshape(n, -1)
    ref_times = np.asarray(neighbour_times_s, np.float64).reshape(n, -1)
    sims = np.asarray(neighbour_sims, np.float64).reshape(n, -1)
    keep = (refs >= 0) & np.isfinite(sims) & (sims >= params.min_similarity)
    rows = np.nonzero(keep)[0]
    hit_ref, hit_rt, hit_sim = refs[keep], ref_times[keep], sims[keep]
    if hit_ref.size == 0:
        return []
    # References whose hits cover enough distinct query keyframes to possibly pass.
    pairs = np.unique(hit_ref * n + rows)
    ref_of_pair = pairs // n
    candidates, per_ref = np.unique(ref_of_pair, return_counts=True)
    least_votes = _least_votes(hit_ref.size, params)
    candidates = candidates[per_ref >= least_votes]
    if candidates.size == 0:
        return []
    speeds = _speed_grid(params)
    n_lines = _n_lines(hit_ref.size, speeds.size)
    order = np.argsort(hit_ref, kind="stable")
    sorted_refs = hit_ref[order]
    segments: list[Segment] = []
    for ordinal in candidates:
        lo, hi = np.searchsorted(sorted_refs, [ordinal, ordinal + 1])
        idx = order[lo:hi]
        segments.extend(_segments_of_reference(
            int(ordinal), query_times, rows[idx], hit_rt[idx], hit_sim[idx],
            speeds=speeds, n_lines=n_lines, least_votes=least_votes, params=params,
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


def _least_votes(n_hits: int, params: VideoMatchParams) -> int:
    """Fewest aligned keyframes that can reach ``min_score`` even with every spanned keyframe
    aligned and the lowest null rate: lines with fewer votes need not be examined."""
    needed = -params.score_scale * np.log10(max(1.0 - params.min_score, 1e-300))
    n_lines = _n_lines(n_hits, _speed_grid(params).size)
    least = (np.log10(n_lines) + needed) / -np.log10(params.p_chance)
    # The vote can undercount a line that the least-squares fit then completes: keep a margin.
    return max(params.min_keyframes, int(np.floor(least)) - 2)


def _n_lines(n_hits: int, n_speeds: int) -> float:
    """How many lines the search could have picked: every hit could seed a line at every
    candidate speed (the look-elsewhere factor of the score)."""
    return float(max(n_hits, 1) * n_speeds)


def _background_rate(rows: np.ndarray, span_s: float, n_query: int,
                     params: VideoMatchParams) -> float:
    """Chance that a query keyframe has a hit on a given line of this reference if its hits
    fell at random reference times: averaged over query keyframes, ``1 - (1 - w / span) ** h``
    for its ``h`` hits off the line spread over ``span_s`` seconds of the reference, ``w`` the
    line's band. When every query keyframe hits a reference (a catalog of a few works, a
    reference that looks like everything), lines form by accident more easily than
    ``p_chance`` assumes; hits on the line itself are the evidence, not the background."""
    width = 2 * params.tolerance_s
    per_keyframe = np.bincount(rows, minlength=n_query)
    return float(np.mean(1.0 - (1.0 - min(1.0, width / (span_s + width))) ** per_keyframe))


def _segments_of_reference(
    ordinal: int, query_times: np.ndarray, rows: np.ndarray, ref_times: np.ndarray,
    sims: np.ndarray, *, speeds: np.ndarray, n_lines: float, least_votes: int,
    params: VideoMatchParams,
) -> list[Segment]:
    """Every segment of one reference: repeated vote, fit, cut and score."""
    out: list[Segment] = []
    active = np.ones(rows.size, bool)
    width = 2 * params.tolerance_s
    tries = failures = 0
    most = params.max_segments_per_reference
    # Lines come strongest first; after a few that fail in a row, weaker ones fail too.
    while len(out) < most and tries < 4 * most and failures < 4:
        tries += 1
        failures += 1
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
        # Smoothing lets a wrong speed tie with the right one over a few bins; the unsmoothed
        # count tells them apart, then the speed nearest 1.0 wins (short segments fit many).
        nearness = -np.abs(np.log(speeds[cells // n_bins]))
        best = int(np.lexsort((nearness, votes, smoothed))[-1])
        if smoothed[best] < least_votes:
            break
        s_index, b = divmod(int(cells[best]), n_bins)
        speed = float(speeds[s_index])
        offset = (b - 1 + base + 0.5) * width
        if not _could_pass(q, r, rows, idx, query_times, ref_times, speed, offset, n_lines,
                           params):
            active[idx[_near(q, r, speed, offset, 2 * params.tolerance_s)]] = False
            continue
        line = _fit_line(q, r, sims[idx], rows[idx], speed, offset, params, speeds)
        if line is None:
            active[idx[_near(q, r, speed, offset, 2 * params.tolerance_s)]] = False
            continue
        speed, offset, inliers = line
        off_line = ~_near(query_times[rows], ref_times, speed, offset, params.tolerance_s)
        p_null = max(params.p_chance, _background_rate(
            rows[off_line], float(np.ptp(ref_times)), query_times.size, params))
        found = False
        for part in _split_by_gaps(inliers, q, params.max_gap_s):
            seg = _segment(ordinal, query_times, q, sims[idx], part, speed, offset, n_lines,
                           p_null, params)
            if seg is not None:
                out.append(seg)
                found = True
                failures = 0
        # Take this line's keyframes out of the vote either way: a failed line would win again.
        near = _near(q, r, speed, offset, params.tolerance_s)
        used_rows = np.unique(rows[idx][inliers])
        active[idx[near | np.isin(rows[idx], used_rows)]] = False
        if not found and not near.any():
            break
    return out


def _could_pass(q, r, rows, idx, query_times, ref_times, speed, offset, n_lines,
                params: VideoMatchParams) -> bool:
    """Cheap bound before the line fit: could any gap-free run of this line's keyframes reach
    ``min_score`` with two more aligned keyframes than the vote found (the fit may add some)?
    Chance lines among crowded hits fail here, which keeps their cost down."""
    near = _near(q, r, speed, offset, 2 * params.tolerance_s)
    aligned_rows = np.unique(rows[idx][near])  # sorted query keyframe indices
    if aligned_rows.size == 0:
        return False
    times = query_times[aligned_rows]
    cuts = np.flatnonzero(np.diff(times) > params.max_gap_s) + 1
    starts, stops = np.r_[0, cuts], np.r_[cuts, aligned_rows.size]
    aligned = stops - starts + 2
    spanned = np.searchsorted(query_times, times[stops - 1], side="right") - np.searchsorted(
        query_times, times[starts], side="left")
    spanned = np.maximum(spanned + 2, aligned)
    off_line = ~_near(query_times[rows], ref_times, speed, offset, params.tolerance_s)
    p_null = max(params.p_chance, _background_rate(
        rows[off_line], float(np.ptp(ref_times)), query_times.size, params))
    log10_best = np.log10(n_lines) + stats.binom.logsf(aligned - 1, spanned, p_null) / np.log(10)
    needed = -params.score_scale * np.log10(max(1.0 - params.min_score, 1e-300))
    return bool(np.any(-log10_best >= needed))


def _near(q: np.ndarray, r: np.ndarray, speed: float, offset: float, tol: float) -> np.ndarray:
    return np.abs(r - (speed * q + offset)) <= tol


def _fit_line(q, r, sims, rows, speed, offset, params: VideoMatchParams, speeds: np.ndarray):
    """Refine a voted line; returns (speed, offset, inliers) or None.

    Candidate speeds (grid speeds within 6 % of the current one, and the least-squares slope of
    the inliers) each get the offset that centres their inliers (per query keyframe, the most
    similar hit in the band). Counting inliers alone would not do: within a shot every query
    keyframe has neighbours at several reference times, and a tilted line collects as many of
    them, only less similar ones; so the best line has the highest summed similarity, then the
    smallest residuals. Keyframe times are quantised to the sampling period, which over a few
    seconds leaves the speed uncertain by several per cent: among the lines that explain the
    hits about as well (similarity within 0.01 per keyframe, residuals within 20 % or 0.15 s
    RMS) the speed nearest 1.0 is reported.
    """
    lo, hi = params.speed_range

    def inliers_of(speed: float, offset: float) -> np.ndarray:
        near = np.flatnonzero(_near(q, r, speed, offset, params.tolerance_s))
        return _best_per_row(near, r - (speed * q + offset), sims, rows)

    def trial(speed: float, offset: float) -> tuple:
        for _ in range(2):
            inliers = inliers_of(speed, offset)
            if inliers.size == 0:
                return (0.0, 0.0, speed, offset, inliers)
            offset = float(np.median(r[inliers] - speed * q[inliers]))
        inliers = inliers_of(speed, offset)
        residual = r[inliers] - (speed * q[inliers] + offset)
        rms = float(np.sqrt(np.mean(residual**2))) if inliers.size else 0.0
        return (float(sims[inliers].sum()), rms, speed, offset, inliers)

    def rank(t: tuple) -> tuple:
        return (t[0], -t[1])

    trials = [trial(speed, offset)]
    best = trials[0]
    for _ in range(3):
        _, _, speed, offset, inliers = best
        if inliers.size < 2:
            return None
        candidates = [float(s) for s in speeds if abs(np.log(s / speed)) <= 0.06]
        if inliers.size >= 3 and np.ptp(q[inliers]) >= 2.0:
            candidates.append(float(np.clip(np.polyfit(q[inliers], r[inliers], 1)[0], lo, hi)))
        pivot = float(np.median(q[inliers]))
        trials += [trial(s, offset + (speed - s) * pivot) for s in candidates]
        best = max(trials, key=rank)
    top_sum, top_rms = best[0], best[1]
    n_best = max(best[4].size, 1)
    good = [t for t in trials
            if t[0] >= top_sum - 0.01 * n_best and t[1] <= max(1.2 * top_rms, 0.15)]
    _, _, speed, offset, inliers = min(good, key=lambda t: (abs(np.log(t[2])), -t[0]))
    return (speed, offset, inliers) if inliers.size >= 2 else None


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


def _segment(ordinal, query_times, q, sims, part, speed, offset, n_lines, p_null,
             params: VideoMatchParams) -> Segment | None:
    """Score one run of aligned keyframes; None when it does not pass the thresholds."""
    aligned = part.size
    if aligned < params.min_keyframes:
        return None
    q_start, q_end = float(q[part].min()), float(q[part].max())
    spanned = int(np.count_nonzero((query_times >= q_start - 1e-6) & (query_times <= q_end + 1e-6)))
    spanned = max(spanned, aligned)
    log10_tail = stats.binom.logsf(aligned - 1, spanned, p_null) / np.log(10)
    log10_chance = float(log10_tail + np.log10(max(n_lines, 1.0)))
    score = float(1.0 - 10.0 ** (-max(0.0, -log10_chance) / params.score_scale))
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
            "offset_s": round(offset, 3), "p_null": round(p_null, 4),
        },
    )


def _sample_period(query_times: np.ndarray) -> float:
    """The query's keyframe period (s): the median step, 0.5 s when it cannot be told."""
    steps = np.diff(np.sort(query_times))
    steps = steps[steps > 1e-6]
    return float(np.median(steps)) if steps.size else 0.5
