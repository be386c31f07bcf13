"""Peak-by-peak verification of audio hypotheses the votes leave short.

A (reference, warp, offset) hypothesis of :func:`engine.audio.align.align_audio` that gathers
a few aligned keys but not enough to pass is checked against the reference's own stored peaks
(:mod:`engine.store.audio_peaks`): every query peak is put where the hypothesis says it falls
in the reference (frame ``query_frame * speed + offset``, frequency divided by ``pitch``) and
counts as a hit when a reference peak lies within ``verify_frames`` frames and
``verify_bins`` FFT bins of it. A key needs three peaks to survive together; a hit needs one,
so a copy under noise, voice-over or a tempo change that leaves too few whole keys still
leaves many of its single peaks where the reference has them.

Chance model. A query peak lands on a reference peak by chance with probability
``p = 1 - exp(-rate * (2 * verify_frames + 1))``, where ``rate`` is how often the reference has
a peak at that very frequency (within ``verify_bins``), per frame, over a stretch of
``verify_background_s`` around the hypothesis: time is taken as random, pitch is not, since
music keeps to its key. Hits are a sum of
such chances, modelled as ``Poisson(mu = sum p)``; ``log10 P(Poisson(mu) >= hits)`` plus
log10 of the hypotheses checked is the raw figure, calibrated against never-registered
queries as the vote figure is (:class:`~engine.audio.align.AudioMatchParams`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np
from scipy import special

from nanhu.engine.audio.params import AudioParams
from nanhu.engine.audio.peaks import Peaks
from nanhu.engine.segments import Segment, score_from_log10_expected

if TYPE_CHECKING:
    from nanhu.engine.audio.align import AudioMatchParams


@dataclass(frozen=True)
class Hypothesis:
    """A (reference, warp, offset) alignment that did not pass on votes alone.

    Reference frame = ``query_frame * speed + offset``; the query sounds ``pitch`` times higher
    than the reference. ``query_lo`` / ``query_hi``: the query frames its votes span.
    """

    ordinal: int
    speed: float
    pitch: float
    offset: float
    query_lo: float
    query_hi: float
    votes: int


def warp_variants(hypothesis: Hypothesis) -> list[Hypothesis]:
    """The hypothesis and its neighbours on the edit's two axes: its time scale without its
    pitch change (a time stretch), its pitch change without its time scale (a pitch shift),
    and the resampling at either; each anchored at its votes' centre, so that the query time
    there maps where the votes put it. A pitch-shifted copy is often first seen at the
    resampling warp of its pitch, where its timing is several per cent off and its peaks miss.
    """
    centre = (hypothesis.query_lo + hypothesis.query_hi) / 2.0
    s, p = hypothesis.speed, hypothesis.pitch
    out: list[Hypothesis] = []
    for speed, pitch in ((s, p), (s, 1.0), (1.0, p), (p, p), (s, s)):
        if any(abs(speed - v.speed) < 1e-3 and abs(pitch - v.pitch) < 1e-3 for v in out):
            continue
        out.append(replace(hypothesis, speed=speed, pitch=pitch,
                           offset=hypothesis.offset + centre * (s - speed)))
    return out


def fft_bins(log_freq: np.ndarray, params: AudioParams) -> np.ndarray:
    """float64[n]: FFT bin (fractional) of log-frequency steps above ``params.fmin_hz``."""
    hz = params.fmin_hz * 2.0 ** (np.asarray(log_freq, np.float64) / params.bins_per_octave)
    return hz * params.n_fft / params.sample_rate


def peak_agreement(query_frames: np.ndarray, query_bins: np.ndarray, ref_frames: np.ndarray,
                   ref_bins: np.ndarray, *, dt: float, dbin: float,
                   density_frames: tuple[float, float]) -> tuple[np.ndarray, float]:
    """(hit, expected chance hits) of mapped query peaks against a reference's peaks.

    query_frames, query_bins : float64[q], query peaks mapped into the reference (frames,
        fractional FFT bins); ref_frames, ref_bins : float64[r], the reference's peaks over
        ``density_frames`` [lo, hi], a stretch around the mapped query (the background).
    dt, dbin : tolerance in frames and bins (each side).
    hit : bool[q], whether each query peak has a reference peak within the tolerance.
    expected : the sum over query peaks of the chance that one lands on a reference peak when
        the reference's peaks at its frequency (within ``dbin``) fall anywhere in the stretch:
        exact frequency, not a band's average, because music keeps to a few pitches (a query
        on the same key and scale meets the reference's pitches far more often than the
        spectrum's mean density says).
    """
    if query_frames.size == 0 or ref_frames.size == 0:
        return np.zeros(query_frames.size, bool), 0.0
    hit = peak_hits(query_frames, query_bins, ref_frames, ref_bins, dt=dt, dbin=dbin)
    span = max(1.0, float(density_frames[1] - density_frames[0]) + 1)
    order = np.sort(ref_bins)
    same_pitch = (np.searchsorted(order, query_bins + dbin, side="right")
                  - np.searchsorted(order, query_bins - dbin, side="left"))
    rate = same_pitch / span  # peaks per frame at each query peak's frequency
    expected = float(np.sum(-np.expm1(-rate * (2 * np.floor(dt) + 1))))
    return hit, expected


def peak_hits(query_frames: np.ndarray, query_bins: np.ndarray, ref_frames: np.ndarray,
              ref_bins: np.ndarray, *, dt: float, dbin: float) -> np.ndarray:
    """bool[q]: whether each mapped query peak has a reference peak within ``dt`` frames and
    ``dbin`` bins (the hit of :func:`peak_agreement`, without its chance figure)."""
    if query_frames.size == 0 or ref_frames.size == 0:
        return np.zeros(query_frames.size, bool)
    near = (ref_frames >= query_frames.min() - dt) & (ref_frames <= query_frames.max() + dt)
    close = ((np.abs(query_frames[:, None] - ref_frames[near][None, :]) <= dt)
             & (np.abs(query_bins[:, None] - ref_bins[near][None, :]) <= dbin))
    return close.any(axis=1)


def log10_tail(hits: int, expected: float) -> float:
    """log10 P(Poisson(expected) >= hits)."""
    if hits <= 0:
        return 0.0
    return float(np.log10(max(special.pdtrc(hits - 1, max(expected, 1e-12)), 1e-300)))


def check(peaks: Peaks, hypothesis: Hypothesis, reference: tuple[np.ndarray, np.ndarray],
          *, params: AudioParams, lo: float, hi: float, dt: float, dbin: float,
          density_frames: tuple[float, float], shifts: tuple[float, ...] = ()) -> dict:
    """Verify one hypothesis over query frames [lo, hi) (:func:`query_range`) against
    ``reference`` = the reference's peaks over ``density_frames`` (:func:`reference_range`),
    as (frames, fractional FFT bins: :func:`fft_bins`). peaks : the query window's peaks
    (query frames, ascending).

    shifts : reference frames the hypothesis is also tried at, moved off its offset: the hits
        there are this reference's own chance agreement with this query (music repeats itself;
        a passage that comes back every bar agrees at many offsets).

    Returns {"hits", "query_peaks", "expected", "shifted", "log10_tail", "hit_lo", "hit_hi"}:
    ``expected`` the chance model's hits, ``shifted`` the mean hits at the ``shifts`` (0
    without), ``log10_tail`` the Poisson tail at the larger of the two; ``hit_lo`` /
    ``hit_hi`` the query frames of the first and last hit (the range's ends without hits).
    """
    a, b = np.searchsorted(peaks.frame, [lo, hi], side="left")
    q_frames = peaks.frame[a:b].astype(np.float64)
    mapped = q_frames * hypothesis.speed + hypothesis.offset
    bins = fft_bins(peaks.log_freq[a:b], params) / hypothesis.pitch
    ref_frames, ref_bins = reference
    hit, expected = peak_agreement(mapped, bins, ref_frames, ref_bins, dt=dt, dbin=dbin,
                                   density_frames=density_frames)
    shifted = float(np.mean([np.count_nonzero(peak_hits(
        mapped + shift, bins, ref_frames, ref_bins, dt=dt, dbin=dbin))
        for shift in shifts])) if shifts else 0.0
    hits = int(np.count_nonzero(hit))
    hit_frames = q_frames[hit] if hits else np.array([lo, hi])
    return {"hits": hits, "query_peaks": int(q_frames.size), "expected": expected,
            "shifted": shifted, "log10_tail": log10_tail(hits, max(expected, shifted)),
            "hit_lo": float(hit_frames.min()),
            "hit_hi": float(hit_frames.max())}


def query_range(hypothesis: Hypothesis, span_frames: float,
                window: tuple[float, float] | None = None) -> tuple[float, float]:
    """Query frames [lo, hi) a hypothesis is checked over: its votes' span, widened evenly to
    ``span_frames`` at least, within ``window`` (the query window's frames)."""
    lo, hi = float(hypothesis.query_lo), float(hypothesis.query_hi) + 1.0
    grow = max(0.0, span_frames - (hi - lo)) / 2.0
    lo, hi = lo - grow, hi + grow
    if window is not None:
        lo, hi = max(lo, window[0]), min(hi, window[1])
    return lo, hi


def reference_range(hypothesis: Hypothesis, lo: float, hi: float,
                    margin: float) -> tuple[float, float]:
    """Reference frames a check of query frames [lo, hi) reads: where they map, ``margin``
    frames either side (the background's stretch)."""
    return (lo * hypothesis.speed + hypothesis.offset - margin,
            hi * hypothesis.speed + hypothesis.offset + margin)


def verified_segments(peaks: Peaks, hypotheses: list[Hypothesis], reference_peaks, *,
                      params: AudioParams, match: AudioMatchParams, catalog_hours: float,
                      window: tuple[float, float], found: list[Segment]) -> list[Segment]:
    """Segments of the hypotheses that pass the peak check.

    peaks : the window's query peaks (query frames); reference_peaks : the catalog's stored
    peaks (``windows([(ordinal, lo, hi), ...])``); window : the window's query frames [lo, hi);
    found : the window's segments so far (a reference already matched over a hypothesis's
    stretch is not checked again). The strongest hypothesis of each reference is checked, at
    most ``match.verify_hypotheses`` of them, and every check counts in the chance figure.
    """
    fps = params.frames_per_second
    dt, dbin = float(match.verify_frames), float(match.verify_bins)
    span = match.verify_span_s * fps
    chosen: list[tuple[Hypothesis, float, float]] = []
    seen: set[int] = set()
    for h in sorted(hypotheses, key=lambda h: -h.votes):
        if h.ordinal in seen or h.votes < match.verify_min_votes:
            continue
        lo, hi = query_range(h, span, window)
        if hi <= lo or any(s.reference == h.ordinal and s.query_start_s * fps < hi
                           and s.query_end_s * fps > lo for s in found):
            continue
        seen.add(h.ordinal)
        chosen.append((h, lo, hi))
        if len(chosen) >= match.verify_hypotheses:
            break
    if not chosen:
        return []
    tries = [(h, lo, hi, warp_variants(h)) for h, lo, hi in chosen]
    # every warp tried of every hypothesis is one more look for chance to pass
    multiplicity = float(np.log10(sum(len(v) for *_, v in tries)))
    spans = []  # (ordinal, first, last reference frame) each hypothesis's warps read
    for h, lo, hi, variants in tries:
        ranges = np.array([reference_range(v, lo, hi, match.verify_background_s * fps)
                           for v in variants])
        spans.append((h.ordinal, float(ranges[:, 0].min()), float(ranges[:, 1].max())))
    # read at once: a sharded catalog answers every hypothesis's peaks in one round trip
    windows = reference_peaks.windows(spans)
    out: list[Segment] = []
    for (h, lo, hi, variants), (_, ref_lo, ref_hi), (ref_frames, ref_lf) in zip(
            tries, spans, windows):
        if ref_frames.size == 0:
            continue
        ref = (ref_frames, fft_bins(ref_lf, params))  # once for every warp tried
        # the background's stretch is what the reference has of it (not before its start)
        stretch = (max(ref_lo, 0.0), min(ref_hi, float(ref_frames.max())))
        h = min(variants, key=lambda v: check(peaks, v, ref, params=params, lo=lo, hi=hi,
                                              dt=dt, dbin=dbin,
                                              density_frames=stretch)["log10_tail"])
        result = check(peaks, h, ref, params=params, lo=lo, hi=hi, dt=dt, dbin=dbin,
                       density_frames=stretch,
                       shifts=tuple(s * fps for s in match.verify_shifts_s))
        raw = result["log10_tail"] + multiplicity
        log10_e = match.verify_calibrated(raw, catalog_hours)
        score = score_from_log10_expected(log10_e)
        if result["hits"] < match.verify_min_hits or score < match.min_score:
            continue
        q_lo, q_hi = result["hit_lo"], result["hit_hi"]
        out.append(Segment(
            reference=h.ordinal, modality="audio", query_start_s=q_lo / fps,
            query_end_s=q_hi / fps + params.n_fft / params.sample_rate,
            reference_start_s=(q_lo * h.speed + h.offset) / fps,
            reference_end_s=(q_hi * h.speed + h.offset) / fps
            + params.n_fft / params.sample_rate * h.speed,
            speed=h.speed, score=score,
            evidence={"aligned_hashes": int(h.votes), "verified": "peaks",
                      "peak_hits": result["hits"], "query_peaks": result["query_peaks"],
                      "expected_hits": round(result["expected"], 2),
                      "shifted_hits": round(result["shifted"], 2),
                      "log10_chance": round(float(max(log10_e, -300.0)), 2),
                      "log10_chance_poisson": round(float(max(raw, -300.0)), 2),
                      "pitch": round(h.pitch, 4), "offset_s": round(h.offset / fps, 3)}))
    return out
