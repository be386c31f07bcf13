"""Video match decision parameters and the null model that scores aligned segments.

:mod:`engine.video.align` finds the lines of aligned keyframes; this module says how unlikely
each is by chance (:class:`_Chance`) and holds the parameters of both (:class:`VideoMatchParams`).

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
says; its rate is measured on its hits off the line
(:func:`engine.video.align._off_line_background`), counting a unit's hits at one reference
keyframe once, and used as a floor for every unit but the seed.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
from scipy import special


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


def _background_rate(rows: np.ndarray, span_s: float, n_query: int,
                     params: VideoMatchParams) -> float:
    """Chance that a query keyframe has a hit on a given line of this reference if its hits
    fell at random reference times: averaged over query keyframes, ``1 - (1 - w / span) ** h``
    for its ``h`` hits off the line (``rows``: their query keyframes) spread over ``span_s``
    seconds of the reference, ``w`` the line's band."""
    width = 2 * params.tolerance_s
    per_keyframe = np.bincount(rows, minlength=n_query)
    return float(np.mean(1.0 - (1.0 - min(1.0, width / (span_s + width))) ** per_keyframe))
