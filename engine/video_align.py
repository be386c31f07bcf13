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
   query gaps over ``max_gap_s``, and each segment is scored (below).
4. The line's keyframes leave the vote for this reference and the next best line is sought (a
   query may copy several parts of one work), until the best bin cannot pass, four lines in a
   row fail, or ``max_segments_per_reference`` segments are found.

Score. Under the null hypothesis ("the query is unrelated to this reference") a segment's
evidence is a run of query keyframes that each found a reference keyframe on one line. Two
facts of real footage shape the model:

- *Similarity is evidence.* Unrelated keyframes are rarely very similar: over the ~2 x 10^8
  pairs of keyframes of different references of the benchmark corpus (real footage and
  photographs), 0.55 % reach cosine 0.6, 0.006 % reach 0.8 and none reach 0.95. The table
  ``pair_chance`` holds that measured tail ``P(sim >= s)`` for one pair of unrelated
  keyframes. Where no pair was seen (0.95 and above) it holds the 95 % upper bound of a
  zero count, 3 / 2 x 10^8 = 1.5 x 10^-8, flat: extrapolating the slope of the last measured
  step would predict ~76 such pairs, and there were none.
- *Keyframes of one shot are not independent.* A still photograph or a slow pan gives a run of
  near-identical keyframes; counted one by one they would be many coincidences where there is
  one. Consecutive query keyframes at least as alike as ``unit_similarity``, or as the line's
  median likeness to the reference if that is lower, form one *unit*, and the evidence counts
  units (an unrelated pan across one photograph is not ten coincidences).

A segment with ``m`` aligned units of ``U`` units spanned, best similarities ``s_1 >= s_2 ...``:

- the *seed* (best unit) could have hit any of the ``N`` catalog keyframes, from any of the
  query's ``n_units``: ``n_units * min(1, N * pair_chance(s_1))``;
- every other aligned unit had to land on the seeded line, whose band of ``2 * tolerance_s``
  holds ``band`` reference keyframes: ``p_u = band * pair_chance(s_u)`` each, raised to the
  reference's own background rate (below), but never above ``R * pair_chance(s_u)`` for a
  reference of ``R`` keyframes when the unit's best hit is a reference keyframe no other unit
  took: a unit that close to *some* keyframe of the reference is evidence of it however
  crowded the line (a slideshow repeats its photographs: repeats blur where, not whether);
  times ``C(U - 1, m - 1)`` choices of which, times the ``n_speeds`` slopes the line could
  take;

``log10_chance`` is the ``log10`` of that product, and the score maps it onto 0..1 as
``score = 1 - 10 ** (log10_chance / score_scale)`` (0 when the chance is 1 or more): with the
default ``score_scale = 10``, score 0.5 means odds of 1 in 1,000 that chance alone explains the
segment, 0.9 one in 10^10. The default threshold ``min_score = 0.5`` is therefore "1 in 1,000
per query". The seed term grows with the catalog: a single still image needs a closer
likeness in a large catalog than in a small one.

Background. A reference that unrelated keyframes hit everywhere (a catalog of a handful of
works, a reference that looks like everything) lines up by accident more easily than the table
says; its rate is measured on its hits off the line (:func:`_off_line_background`), counting a
unit's hits at one reference keyframe once, and used as a floor for every unit but the seed.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import special

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
    #: (cosine similarity, P(sim >= it) for two unrelated keyframes): the measured tail over the
    #: ~2e8 cross-reference keyframe pairs of the benchmark corpus (real footage and photographs,
    #: ``benchmarks/corpus/video.py``); from 0.95 up no pair was seen: the 95 % upper bound of a
    #: zero count (3 / 2e8), kept flat
    pair_chance: tuple[tuple[float, float], ...] = (
        (0.5, 2.9e-2), (0.55, 1.3e-2), (0.6, 5.5e-3), (0.65, 2.0e-3), (0.7, 6.4e-4),
        (0.75, 2.0e-4), (0.8, 5.9e-5), (0.85, 2.0e-5), (0.9, 6.1e-6), (0.925, 1.5e-6),
        (0.95, 1.5e-8), (1.0, 1.5e-8))
    #: consecutive query keyframes at least this similar are one unit of evidence (one shot)
    unit_similarity: float = 0.95
    #: reference keyframes per second (the sampling rate of ``VideoParams``)
    reference_keyframes_per_s: float = 2.0
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
    query_vectors: np.ndarray | None = None,
    catalog_keyframes: int = 1_000_000,
    reference_keyframes: Callable[[np.ndarray], np.ndarray] | None = None,
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
    chance = _Chance(params, order=order_in_time, alike=alike, n_speeds=speeds.size,
                     catalog_keyframes=max(int(catalog_keyframes), 1))
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


def consecutive_similarity(query_times: np.ndarray,
                           query_vectors: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Time order of the query keyframes and the similarity of each to the one before it.

    query_times : ndarray [shape=(n,)], float, keyframe times (s)
    query_vectors : ndarray [shape=(n, d)], float32, L2-normalised, or None (nothing alike)
    Returns (order : ndarray [shape=(n,)], int64; alike : ndarray [shape=(n - 1,)], float32).
    """
    n = np.size(query_times)
    order = np.argsort(query_times, kind="stable")
    if query_vectors is None or n < 2:
        return order, np.full(max(n - 1, 0), -1.0, np.float32)
    vectors = np.asarray(query_vectors, np.float32).reshape(n, -1)[order]
    return order, np.sum(vectors[1:] * vectors[:-1], axis=1)


class _Chance:
    """The null model of the module docstring, for one query."""

    def __init__(self, params: VideoMatchParams, *, order: np.ndarray, alike: np.ndarray,
                 n_speeds: int, catalog_keyframes: int) -> None:
        table = np.asarray(params.pair_chance, np.float64)
        self.table_sims, self.table_log10 = table[:, 0], np.log10(table[:, 1])
        self.params = params
        self.order, self.alike = order, alike
        self.units = self.units_at(params.unit_similarity)
        self.n_units = int(self.units.max()) + 1 if self.units.size else 1
        self.log10_n_units = float(np.log10(self.n_units))
        self.log10_n_speeds = float(np.log10(max(n_speeds, 1)))
        self.catalog_keyframes = catalog_keyframes
        self.log10_catalog = float(np.log10(catalog_keyframes))
        self.log10_reference = self.log10_catalog
        band = 2 * params.tolerance_s * params.reference_keyframes_per_s
        self.log10_band = float(np.log10(max(band, 1.0)))

    def for_reference(self, keyframes: int) -> _Chance:
        """This model for one reference of ``keyframes`` keyframes."""
        out = copy.copy(self)
        out.log10_reference = float(np.log10(min(max(keyframes, 1), self.catalog_keyframes)))
        return out

    def log10_pair(self, sims: np.ndarray) -> np.ndarray:
        """log10 P(sim >= s) for unrelated keyframes (log-linear in the table; flat below it)."""
        return np.interp(sims, self.table_sims, self.table_log10)

    def units_at(self, threshold: float) -> np.ndarray:
        """Unit of each query keyframe when consecutive keyframes at least ``threshold`` alike
        are one unit: ndarray [shape=(n,)], int64, ids in time order."""
        units = np.empty(self.order.size, np.int64)
        units[self.order] = np.concatenate([[0], np.cumsum(self.alike < threshold)])
        return units

    def line_units(self, line_sims: np.ndarray) -> np.ndarray:
        """Units for a line whose hits have similarities ``line_sims``: keyframes more alike
        each other than the line's median likeness to the reference are one piece of evidence
        (an unrelated pan across one photograph is not ten coincidences)."""
        threshold = min(self.params.unit_similarity, float(np.median(line_sims)))
        return self.units_at(threshold)

    def unit_sims(self, rows: np.ndarray, sims: np.ndarray, units: np.ndarray,
                  ref_times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Best similarity per unit among hits (``rows``: their query keyframes) and the
        reference keyframe slot of that best hit: (float64[m], int64[m])."""
        units = units[rows]
        order = np.lexsort((-sims, units))
        first = np.concatenate([[True], units[order][1:] != units[order][:-1]])
        return sims[order][first], _slots(ref_times, self.params)[order][first]

    def log10(self, unit_sims: np.ndarray, slots: np.ndarray, spanned_units: int,
              background: float) -> float:
        """log10 of the chance of a line with these aligned units' best similarities (and the
        reference slots they hit)."""
        order = np.argsort(-np.asarray(unit_sims, np.float64), kind="stable")
        best = np.asarray(unit_sims, np.float64)[order]
        m = best.size
        if m == 0:
            return 0.0
        log_pair = self.log10_pair(best)
        total = self.log10_n_units + min(0.0, self.log10_catalog + float(log_pair[0]))
        if m == 1:
            return total
        others = self.log10_band + log_pair[1:]
        if background > 0:
            others = np.maximum(others, np.log10(background))
        # However crowded the line, a unit this close to *some* keyframe of the reference is
        # evidence of the reference (repeats blur where, not whether) - once per reference
        # keyframe: units that all found the same one are one likeness, not several.
        slots = np.asarray(slots)[order]
        _, first = np.unique(slots, return_index=True)
        fresh = np.zeros(m, bool)
        fresh[first] = True
        identity = np.where(fresh[1:], self.log10_reference + log_pair[1:], 0.0)
        others = np.minimum(others, identity)
        spanned = max(int(spanned_units), m)
        combinations = (special.gammaln(spanned) - special.gammaln(m)
                        - special.gammaln(spanned - m + 1)) / np.log(10)
        return float(total + self.log10_n_speeds + combinations + np.minimum(others, 0.0).sum())

    def spanned_units(self, query_times: np.ndarray, start: float, end: float,
                      units: np.ndarray) -> int:
        inside = (query_times >= start - 1e-6) & (query_times <= end + 1e-6)
        return int(np.unique(units[inside]).size)


def _slots(ref_times: np.ndarray, params: VideoMatchParams) -> np.ndarray:
    """Reference keyframe index of each reference time (int64, same shape)."""
    return np.round(ref_times * params.reference_keyframes_per_s).astype(np.int64)


def _needed_log10(params: VideoMatchParams) -> float:
    """The ``log10_chance`` a segment must reach (at most) for ``min_score``."""
    return params.score_scale * np.log10(max(1.0 - params.min_score, 1e-300))


def _speed_grid(params: VideoMatchParams) -> np.ndarray:
    """Geometric speed grid over ``speed_range`` that always holds 1.0 exactly."""
    lo, hi = params.speed_range
    step = np.log1p(params.speed_step)
    down = np.arange(0, np.log(lo) - 1e-12, -step)
    up = np.arange(step, np.log(hi) + 1e-12, step)
    return np.exp(np.concatenate([down[::-1], up]))


def _background_rate(rows: np.ndarray, span_s: float, n_query: int,
                     params: VideoMatchParams) -> float:
    """Chance that a query keyframe has a hit on a given line of this reference if its hits
    fell at random reference times: averaged over query keyframes, ``1 - (1 - w / span) ** h``
    for its ``h`` hits off the line (``rows``: their query keyframes) spread over ``span_s``
    seconds of the reference, ``w`` the line's band."""
    width = 2 * params.tolerance_s
    per_keyframe = np.bincount(rows, minlength=n_query)
    return float(np.mean(1.0 - (1.0 - min(1.0, width / (span_s + width))) ** per_keyframe))


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
        if chance.log10(unit_sims, slots, unit_sims.size, background) <= needed:
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
