"""Audio match parameters: the decision thresholds of an audio match, and the calibrations
that map the vote and peak-check figures to the expected number of chance matches (no effect
on fingerprints). Used by :mod:`engine.audio.align` (which re-exports them), the matcher and
the peak check."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class AudioMatchParams:
    """Decision thresholds for audio matches (no effect on fingerprints)."""

    #: fewest aligned landmarks (distinct query anchors) for a segment. With the calibrated
    #: score below, 5 to 10 give the same null and recall at every size measured
    #: (``docs/audio.md``); 6 keeps a margin against a pair of coincident notes
    min_votes: int = 6
    #: lowest score for a segment (0.6: E <= 1.05e-4 expected chance matches per query): no
    #: never-registered query of 5,000 at 18.5, 118.5 and 1,018.5 h passes it (flagged tracks
    #: that quote registered ones aside); at 1e-3, 2 in 4,600 did at 118.5 h
    min_score: float = 0.6
    #: offset bins within this many frames of the peak bin vote together
    offset_tolerance: int = 2
    #: votes further apart than this in query time start a new segment (s)
    max_gap_s: float = 8.0
    #: most candidate (reference, speed, offset) bins examined per query
    max_candidates: int = 64
    #: a key holding more than ``max(stop_key_floor, stop_key_share * postings)`` postings is
    #: a stop-key, skipped at query time: a common pattern says little about which work it is,
    #: and such keys are most of the work. The cap is constant, 64 postings at any catalog size
    #: (as Olaf's 2,000 hits a lookup and AcoustID's 1,000 postings a key are): up to 1,170 h
    #: the share rule (2e-7) gave 64 anyway; at 10,018.6 h it let keys of up to 548 postings
    #: be read, whose runs, outside a keyed segment's hot tier (``postings.HOT_MAX`` = 64),
    #: were the disk reads and page reclaim of a query in 8 GiB: p50 43.6 ms with them, 21.2
    #: without, for 4 fewer of 375 hard 5 s copies found (docs/audio.md, "Stop-keys")
    stop_key_share: float = 0.0
    stop_key_floor: int = 64
    #: most postings a query window reads per second of query audio, taken from its rarest keys
    #: up (bounded work at any catalog size, in proportion to the query's length: a 5 s query
    #: reads at most 150,000, a 60 s window 1.8 M; at 18-120 h no 5 s query reaches it)
    lookup_budget_per_s: int = 30_000
    #: references kept after the raw vote (distinct query keys with any hit), strongest first:
    #: ``shortlist`` for a query of up to ``shortlist / shortlist_per_s`` seconds, and
    #: ``shortlist_per_s`` a second beyond (a 60 s window keeps 600): raw votes grow with the
    #: window for every reference, so a short copy inside a long window needs a longer list
    shortlist: int = 48
    shortlist_per_s: float = 10.0
    #: most bins examined per reference (several copies of one work in one upload each need one)
    bins_per_reference: int = 32
    #: long queries are matched in windows of this much query time (s)
    window_s: float = 60.0
    #: look first with the unwarped keys alone (about a sixteenth of a query's distinct keys)
    #: and keep that answer when its matches cover ``first_look_cover`` of the window; else
    #: look with every warp. Its hypotheses, (reference, warp 1, offset) bins, are a subset of
    #: the full look's, and are counted as all of them (``n_bins`` counts every warp), so no
    #: chance figure changes; most uploads copy a work at its own speed and pitch.
    #: The first look reads at most this share of the lookup budget: it asks a sixteenth of
    #: the questions, and a look that falls short only hands the window to the full look.
    #: Measured at 10,018.6 h (200 attacked 5 s queries): share 1 p50 46 ms, top-1 93.0 %;
    #: 0.5: 34 ms, 93.0 %; 0.25: 23 ms, 92.5 %; no first look: 122-145 ms, 91.0 %.
    first_look: bool = True
    first_look_cover: float = 0.8
    first_look_budget_share: float = 0.25
    #: after a first look that falls short, look with the resampling warps' keys next (speed
    #: and pitch together: the commonest edit after none) and keep that answer when it covers
    #: the window; else add the remaining warps' keys. The looks' keys are disjoint and each
    #: look aligns over the hits of every look so far, so the last one is the full look, with
    #: no key read twice; the budget left after the first look is split between the two in
    #: proportion to their keys. Measured at 10,018.6 h (200 attacked 5 s queries and 300
    #: negatives, two alternating pairs, CPU per query on a machine at load 2-2.5): top-1
    #: 92.5 -> 94.0 %, speed-1.1 p50 139/132 -> 113/97 ms, positives' p99 228/201 -> 187/189
    #: ms, negatives' p50 127/130 -> 144/140 ms (they pay three alignments instead of two); at
    #: 18.5 h top-1 stays 96.0 %.
    staged_looks: bool = True
    #: check the hypotheses the votes leave short against the reference's stored peaks
    #: (:mod:`engine.audio.verify`; catalogs of format 5, which store them): at most
    #: ``verify_hypotheses`` references a window, each its strongest (warp, offset) bin with at
    #: least ``verify_min_votes`` aligned keys, over ``verify_span_s`` of query at least; a
    #: query peak is a hit within ``verify_frames`` frames and ``verify_bins`` FFT bins of a
    #: reference peak, and a verified segment needs ``verify_min_hits`` hits besides its score
    verify: bool = True
    verify_min_votes: int = 3
    verify_hypotheses: int = 8
    verify_span_s: float = 10.0
    verify_frames: int = 2
    verify_bins: float = 1.0
    verify_min_hits: int = 12
    #: the reference's peaks this far either side of a hypothesis make its background (s)
    verify_background_s: float = 20.0
    #: the hypothesis is also tried this far off its offset (s); the mean hits there, the
    #: reference's own chance agreement with the query, bound the chance figure from below
    verify_shifts_s: tuple[float, ...] = (-9.0, -6.5, -4.0, -2.5, 2.5, 4.0, 6.5, 9.0)
    #: calibration of the peak check's Poisson figure (with the checks' multiplicity) against
    #: never-registered queries (``benchmarks/runs/audio_verify_null.py``, ``docs/audio.md``):
    #: log10 E = verify_offset + verify_per_decade * log10(hours / 18.5)
    #: + verify_slope * log10 E_poisson, at most 0. Fitted on the observed null's tail of
    #: 5,459 never-registered 5 s queries at 18.5 h (its strongest, raw -15.4, maps to E 2e-4);
    #: held out: 5,482 others at 18.5 h, 5,459 at 1,018.6 h and 4,509 at 10,018.6 h, none
    #: passing the default. Larger catalogs gave a weaker null (a joint fit: -0.244 a decade),
    #: but decoys are reversed, transposed music, out of key with a query, so a real catalog of
    #: that size would not be: no loosening with size is applied
    verify_slope: float = 0.204
    verify_offset: float = -0.561
    verify_per_decade: float = 0.0

    #: calibration of the Poisson figure against never-registered music (``nanhu bench
    #: scale``, ``docs/audio.md``): log10 E = offset + per_decade * log10(hours / 18.5)
    #: + slope * log10 E_poisson, at most 0. Music repeats itself, so its coincidences come in
    #: clumps and the Poisson tail is far too thin; the measured null falls about one decade
    #: for every three decades of the Poisson figure at every size, and a little lower per
    #: decade of catalog (coincidences come from the query's own structure meeting similar
    #: music, which a larger catalog of unrelated music does not add in proportion).
    #: Fitted on 5,000 never-registered queries at 18.5, 118.5 and 1,018.5 h (query warps with
    #: multi-probe, decoys v2).
    calibration_slope: float = 0.267
    calibration_offset: float = 0.215
    calibration_per_decade: float = -0.559

    def calibrated(self, log10_poisson, catalog_hours: float):
        """log10 of the expected chance matches, from the Poisson figure (see above): a float
        for a float, an array for an array."""
        size = np.log10(max(catalog_hours, 1e-3) / 18.5)
        value = np.minimum(0.0, self.calibration_offset + self.calibration_per_decade * size
                           + self.calibration_slope * np.asarray(log10_poisson, np.float64))
        return float(value) if value.ndim == 0 else value

    def verify_calibrated(self, log10_poisson: float, catalog_hours: float) -> float:
        """log10 E of a peak check from its Poisson figure (see ``verify_slope``)."""
        size = np.log10(max(catalog_hours, 1e-3) / 18.5)
        return float(min(0.0, self.verify_offset + self.verify_per_decade * size
                         + self.verify_slope * log10_poisson))

    def least_votes(self, verifying: bool) -> int:
        """Fewest votes a reference or bin needs to be aligned at all: ``min_votes``, or the
        peak check's own floor when the short ones are kept for it."""
        return min(self.min_votes, self.verify_min_votes) if verifying else self.min_votes

    def stop_key_cap(self, total_postings: int) -> int:
        """Most postings a key may hold at this catalog size and still be looked up."""
        return int(max(self.stop_key_floor, self.stop_key_share * total_postings))
