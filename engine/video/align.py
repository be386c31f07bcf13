"""Video alignment: nearest keyframes per query keyframe, voted into time-aligned segments.

For every query keyframe the vector index returns its ``k`` nearest reference keyframes
(reference ordinal, reference time, cosine similarity). A copy of a stretch of a reference maps
query time ``q`` to reference time ``r = speed * q + offset``; chance neighbours do not line up.

Method, per candidate reference (a loop over references; everything inside is vectorised):

1. Hits below ``min_similarity`` are dropped; references whose hits cover fewer than
   ``min_keyframes`` distinct query keyframes are not examined.
2. Hough vote over (speed, offset): every hit votes, at each candidate speed of a 1 % geometric
   grid over ``speed_range`` (0.8..1.25), for the ``2 * tolerance_s`` offset bin of
   ``r - speed * q``. A query keyframe counts once per bin (a static shot matches many
   reference keyframes); a bin's count includes its two neighbours so that a line on a bin
   edge is not split, the unsmoothed count breaks ties, then the speed nearest 1.0.
3. The best bin seeds a line. A cheap bound drops it when even a perfect run of its keyframes
   could not reach ``min_score``; otherwise it is refined (:func:`_fit_line`: nearby grid
   speeds and the least-squares slope, each with its centred offset, judged by the summed
   similarity of their inliers, one per query keyframe). Inliers are cut into segments at
   query gaps over ``max_gap_s``, and each segment is scored (:mod:`engine.video.score`).
4. The line's keyframes leave the vote for this reference and the next best line is sought (a
   query may copy several parts of one work), until the best bin cannot pass, four lines in a
   row fail, or ``max_segments_per_reference`` segments are found.

Scoring (the null model of chance lines, the background rate of a reference) and the decision
parameters live in :mod:`engine.video.score`; they are re-exported here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np

from nanhu.engine.segments import Segment
from nanhu.engine.video.score import (
    VideoMatchParams,
    _background_rate,
    _Chance,
    _needed_log10,
    _slots,
    consecutive_similarity,
    default_params,
)

__all__ = ["VideoMatchParams", "align_video", "consecutive_similarity", "default_params"]

log = logging.getLogger(__name__)


def align_video(
    query_times_s: np.ndarray,
    neighbour_refs: np.ndarray,
    neighbour_times_s: np.ndarray,
    neighbour_sims: np.ndarray,
    *,
    params: VideoMatchParams | None = None,
    query_vectors: np.ndarray | None = None,
    catalog_keyframes: int = 1_000_000,
    reference_keyframes: Callable[[np.ndarray], np.ndarray] | None = None,
    views: int = 1,
) -> list[Segment]:
    """Time-aligned segments from the nearest reference keyframes of each query keyframe.

    query_times_s : ndarray [shape=(n,)], float32, presentation time of each query keyframe (s)
    neighbour_refs : ndarray [shape=(n, k)], int64, reference ordinal of each neighbour; -1 none
    neighbour_times_s : ndarray [shape=(n, k)], float32, reference time of each neighbour (s)
    neighbour_sims : ndarray [shape=(n, k)], float32, cosine similarity (-inf for none)
    query_vectors : ndarray [shape=(n, d)], float32, L2-normalised query embeddings; they tell
        which keyframes are one shot (one unit of evidence). Without them every keyframe is
        its own unit, which overrates static queries: pass them.
    catalog_keyframes : keyframes in the searched index (the look-elsewhere of the best hit)
    reference_keyframes : given reference ordinals, their keyframe counts; without it every
        reference is taken to be as large as the catalog (weaker scores)
    views : how many views of the query (whole frame, framing regions, rotations) are aligned
        on their own, this one among them: each is one more chance for a chance line, so the
        chance of every line is multiplied by it, as by the speeds a line could take
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
    candidates, per_ref = np.unique(pairs // n, return_counts=True)
    candidates = candidates[per_ref >= params.min_keyframes]
    if candidates.size == 0:
        return []
    speeds = _speed_grid(params)
    order_in_time, alike = consecutive_similarity(query_times, query_vectors)
    chance = _Chance(params, order=order_in_time, alike=alike,
                     n_speeds=speeds.size * max(int(views), 1),
                     catalog_keyframes=max(int(catalog_keyframes), 1))
    # The cheap bound of _could_pass is not a true bound for crowded references; it is left
    # without the views' charge, so that trying views prunes no line a single view would fit
    # (the segments' scores still pay it in full).
    chance.log10_views = float(np.log10(max(int(views), 1)))
    sizes = (np.full(candidates.size, chance.catalog_keyframes, np.int64)
             if reference_keyframes is None else np.asarray(reference_keyframes(candidates)))
    order = np.argsort(hit_ref, kind="stable")
    sorted_refs = hit_ref[order]
    segments: list[Segment] = []
    for ordinal, size in zip(candidates, sizes):
        lo, hi = np.searchsorted(sorted_refs, [ordinal, ordinal + 1])
        idx = order[lo:hi]
        segments.extend(_segments_of_reference(
            int(ordinal), query_times, rows[idx], hit_rt[idx], hit_sim[idx],
            speeds=speeds, chance=chance.for_reference(int(size)), params=params,
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


def _off_line_background(query_times, rows, ref_times, speed, offset, chance: _Chance,
                         params: VideoMatchParams) -> float:
    """Background rate from this reference's hits off the line, counted per unit: a unit's hits
    at one reference keyframe count once however many of its keyframes share them (a still
    shot repeats its hits), so a photograph shown twice in a reference is one coincidence."""
    off_line = ~_near(query_times[rows], ref_times, speed, offset, params.tolerance_s)
    units = chance.units[rows[off_line]]
    slots = _slots(ref_times[off_line], params)
    stride = slots.max(initial=0) + 1
    distinct = np.unique(units * stride + slots) // stride
    return _background_rate(distinct, float(np.ptp(ref_times)), chance.n_units, params)


def _segments_of_reference(
    ordinal: int, query_times: np.ndarray, rows: np.ndarray, ref_times: np.ndarray,
    sims: np.ndarray, *, speeds: np.ndarray, chance: _Chance, params: VideoMatchParams,
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
        if smoothed[best] < params.min_keyframes:
            break
        s_index, b = divmod(int(cells[best]), n_bins)
        speed = float(speeds[s_index])
        offset = (b - 1 + base + 0.5) * width
        background = _off_line_background(query_times, rows, ref_times, speed, offset, chance,
                                          params)
        if not _could_pass(q, r, rows[idx], sims[idx], query_times, speed, offset, background,
                           chance, params):
            active[idx[_near(q, r, speed, offset, 2 * params.tolerance_s)]] = False
            continue
        line = _fit_line(q, r, sims[idx], rows[idx], speed, offset, params, speeds)
        if line is None:
            active[idx[_near(q, r, speed, offset, 2 * params.tolerance_s)]] = False
            continue
        speed, offset, inliers = line
        background = _off_line_background(query_times, rows, ref_times, speed, offset, chance,
                                          params)
        found = False
        for part in _split_by_gaps(inliers, q, params.max_gap_s):
            seg = _segment(ordinal, query_times, q, r, rows[idx], sims[idx], part, speed,
                           offset, background, chance, params)
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


def _could_pass(q, r, hit_rows, sims, query_times, speed, offset, background,
                chance: _Chance, params: VideoMatchParams) -> bool:
    """Cheap bound before the line fit: could any gap-free run of this line's hits (within twice
    the tolerance, every spanned unit counted as aligned) reach ``min_score``? Chance lines among
    crowded hits fail here, which keeps their cost down."""
    near = np.flatnonzero(_near(q, r, speed, offset, 2 * params.tolerance_s))
    if near.size == 0:
        return False
    times = q[near]
    order = np.argsort(times, kind="stable")
    near, times = near[order], times[order]
    cuts = np.flatnonzero(np.diff(times) > params.max_gap_s) + 1
    needed = _needed_log10(params)
    for run in np.split(near, cuts):
        unit_sims, slots = chance.unit_sims(hit_rows[run], sims[run],
                                            chance.line_units(sims[run]), r[run])
        if (chance.log10(unit_sims, slots, unit_sims.size, background)
                - getattr(chance, "log10_views", 0.0)) <= needed:
            return True
    return False


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


def _segment(ordinal, query_times, q, ref_times, hit_rows, sims, part, speed, offset, background,
             chance: _Chance, params: VideoMatchParams) -> Segment | None:
    """Score one run of aligned keyframes; None when it does not pass the thresholds."""
    aligned = part.size
    if aligned < params.min_keyframes:
        return None
    q_start, q_end = float(q[part].min()), float(q[part].max())
    spanned = int(np.count_nonzero((query_times >= q_start - 1e-6) & (query_times <= q_end + 1e-6)))
    spanned = max(spanned, aligned)
    units = chance.line_units(sims[part])
    unit_sims, slots = chance.unit_sims(hit_rows[part], sims[part], units, ref_times[part])
    spanned_units = chance.spanned_units(query_times, q_start, q_end, units)
    log10_chance = chance.log10(unit_sims, slots, spanned_units, background)
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
            "aligned_units": int(unit_sims.size), "query_units": spanned_units,
            "mean_similarity": round(float(sims[part].mean()), 4),
            "best_similarity": round(float(unit_sims.max()), 4),
            "log10_chance": round(max(log10_chance, -300.0), 2),
            "offset_s": round(offset, 3), "background": round(background, 4),
        },
    )


def _sample_period(query_times: np.ndarray) -> float:
    """The query's keyframe period (s): the median step, 0.5 s when it cannot be told."""
    steps = np.diff(np.sort(query_times))
    steps = steps[steps > 1e-6]
    return float(np.median(steps)) if steps.size else 0.5
