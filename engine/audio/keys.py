"""Triplet landmark keys (fingerprint audio-v3): three peaks, 30 bits, speed-aware layout.

An anchor peak ``a`` and two of its next ``fanout`` peaks in the target zone, ``b`` before
``c``, make one key. Its fields, from the high bits down::

    D1  (lf_b - lf_a) / d_step + 63        7 bits   invariant to speed and pitch changes
    D2  (lf_c - lf_a) / d_step + 63        7 bits   invariant to speed and pitch changes
    R   r_levels * (t_b - t_a) / (t_c - t_a)  4 bits invariant to any time scaling
    T   t_per_octave * log2(t_c - t_a)     6 bits   shifts by a constant under a speed change
    F   lf_a / f_step                      6 bits   shifts by a constant under a pitch change

(``lf``: log-frequency in ``bins_per_octave`` steps above ``fmin_hz``; ``t``: STFT frame.)

Why three peaks: a pair key has about 22 informative bits, so at 10,000 h a used key holds
thousands of postings and a query touches tens of millions of them. A third peak multiplies
specificity by the joint spread of (D2, R), about 2^9 on real music (``docs/audio.md``), at the
price of needing three surviving peaks instead of two; ``fanout`` targets give ``C(fanout, 2)``
triplets per anchor, so one lost target still leaves most of an anchor's keys.

Why this layout: the three invariant fields do not move under resampling, time stretching or
pitch shifting; only T (log time span) and F (coarse anchor frequency) move, each by a constant
for the whole query. Both are quantised coarsely (T in 1/6 octave, F in 1/16 octave), so a
query's candidate warps (see :func:`engine.audio.params.default_query_warps`) share most of
their keys: lookups are made once per distinct key, and neighbouring warps probe the
neighbouring T and F cells, absorbing quantisation at cell edges.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from itertools import combinations

import numpy as np

from nanhu.engine.audio import key_kernels
from nanhu.engine.audio.params import AudioParams
from nanhu.engine.audio.peaks import Peaks, stream_peaks


@dataclass(frozen=True)
class Landmarks:
    """Landmark hashes of one signal, hashed at one or more candidate speeds.

    hashes : ndarray [shape=(n,)], uint32 keys, ``engine.audio.keys.KEY_BITS`` significant bits
    frames : ndarray [shape=(n,)], int32, anchor frame rescaled to reference time
        (``round(query_frame * speed)``), so ``reference_frame - frames`` is constant for a copy
    speed_index : ndarray [shape=(n,)], uint8, index into ``speeds`` / ``pitches``
    speeds : ndarray [shape=(s,)], float32, candidate time scales: the query plays ``speed``
        times faster than the reference (1.0 for references)
    pitches : ndarray [shape=(s,)], float32, candidate frequency scales: the query sounds
        ``pitch`` times higher (equal to ``speeds`` for resampling-style changes)
    """

    hashes: np.ndarray
    frames: np.ndarray
    speed_index: np.ndarray
    speeds: np.ndarray
    pitches: np.ndarray

    def __len__(self) -> int:
        return int(self.hashes.size)



D_BITS, R_BITS, T_BITS, F_BITS = 7, 4, 6, 6
KEY_BITS = 2 * D_BITS + R_BITS + T_BITS + F_BITS
_D_OFFSET = 63
#: shift of each field in the key
F_SHIFT = 0
T_SHIFT = F_BITS
R_SHIFT = T_SHIFT + T_BITS
D2_SHIFT = R_SHIFT + R_BITS
D1_SHIFT = D2_SHIFT + D_BITS


def key_fields(keys: np.ndarray) -> dict[str, np.ndarray]:
    """Split packed keys into their fields (for tests and diagnostics).

    keys : ndarray [shape=(n,)], uint32. Returns {"d1", "d2", "r", "t", "f"} int64 arrays.
    """
    k = np.asarray(keys, np.int64)
    mask = lambda bits: (1 << bits) - 1  # noqa: E731
    return {
        "d1": (k >> D1_SHIFT) & mask(D_BITS), "d2": (k >> D2_SHIFT) & mask(D_BITS),
        "r": (k >> R_SHIFT) & mask(R_BITS), "t": (k >> T_SHIFT) & mask(T_BITS),
        "f": (k >> F_SHIFT) & mask(F_BITS),
    }


def _pack(d1: np.ndarray, d2: np.ndarray, r: np.ndarray, t: np.ndarray,
          f: np.ndarray) -> np.ndarray:
    """Fields (integer-valued arrays, in range) packed into uint32 keys."""
    return ((d1.astype(np.uint32) << D1_SHIFT) | (d2.astype(np.uint32) << D2_SHIFT)
            | (r.astype(np.uint32) << R_SHIFT) | (t.astype(np.uint32) << T_SHIFT)
            | f.astype(np.uint32))


def _targets(frames: np.ndarray, lf: np.ndarray, params: AudioParams, speed: float,
             fanout: int) -> np.ndarray:
    """First ``fanout`` target-zone peaks of each anchor at one warp.

    Returns int64[n_peaks, fanout], indices into the peaks, -1 where an anchor has fewer.
    """
    n = frames.size
    window = 4 * fanout
    anchor = np.repeat(np.arange(n), window)
    target = anchor + np.tile(np.arange(1, window + 1), n)
    inside = target < n
    anchor, target = anchor[inside], target[inside]
    dt = (frames[target] - frames[anchor]) * speed
    dlf = lf[target] - lf[anchor]
    # the zone is judged on the rounded difference, as D1 and D2 store it
    valid = (dt >= 1) & (dt <= params.max_dt_frames) & (np.abs(np.rint(dlf)) <= params.max_dlf_steps)
    anchor, target = anchor[valid], target[valid]
    rank = np.arange(anchor.size) - np.searchsorted(anchor, anchor, side="left")
    keep = rank < fanout
    out = np.full((n, fanout), -1, np.int64)
    out[anchor[keep], rank[keep]] = target[keep]
    return out


def triplet_hashes(
    peaks: Peaks, *, params: AudioParams, warps: tuple[tuple[float, float], ...] = ((1.0, 1.0),),
    fanout: int | None = None, probe: float = 0.0, n_anchors: int | None = None,
) -> Landmarks:
    """Triplet keys of ``peaks`` at each candidate (speed, pitch) warp.

    ``fanout`` (default ``params.fanout``) is the number of targets per anchor; queries use
    ``params.query_fanout``, wider than the references', so that a reference's targets are
    still among a query anchor's targets when noise has added peaks in between.

    Each warp maps peak coordinates back to reference time and frequency (``frame * speed``,
    ``log_freq - bins_per_octave * log2(pitch)``) before T, F and the target zone are computed;
    D1, D2 and R do not depend on the warp. References use the single warp (1, 1).
    ``probe`` (queries: ``params.query_probe``; 0 for references) is the distance to a cell
    edge, in cells, within which D1, D2, R or T is also keyed in the neighbouring cell.
    ``n_anchors`` (default: all) makes only the first ``n_anchors`` peaks anchors, the rest
    targets only: the keys of a run of anchors, given the ``4 * fanout`` peaks after it, are
    exactly those the whole signal gives them (targets are chosen among the next ``4 * fanout``
    peaks), which is how :class:`QueryPeaks` keys a long query window by window.
    Returns :class:`Landmarks` with ``frames`` = anchor frame in reference time.
    """
    speeds = np.asarray([w[0] for w in warps], np.float32)
    pitches = np.asarray([w[1] for w in warps], np.float32)
    n = len(peaks)
    if n < 3:
        return Landmarks(np.zeros(0, np.uint32), np.zeros(0, np.int32), np.zeros(0, np.uint8),
                         speeds, pitches)
    frames = peaks.frame.astype(np.float64)
    lf0 = peaks.log_freq.astype(np.float64)
    fanout = fanout or params.fanout
    per_warp: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    # The target zone and T depend on the speed only, F on the pitch only (the zone's
    # frequency limit is on a difference, which no pitch changes): the triplets are formed
    # once per distinct speed, and each of its warps only sets F.
    by_speed: dict[float, list[int]] = {}
    for warp_index, (speed, _) in enumerate(warps):
        by_speed.setdefault(float(speed), []).append(warp_index)
    for speed, warp_indices in by_speed.items():
        shifts = np.array([params.bins_per_octave * np.log2(float(warps[w][1]))
                           for w in warp_indices], np.float64)
        keys, at, counts = _speed_warp_keys(frames, lf0, params, speed, shifts, fanout, probe,
                                            n if n_anchors is None else n_anchors)
        ends = np.cumsum(counts)
        for warp_index, lo, hi in zip(warp_indices, ends - counts, ends):
            per_warp[warp_index] = (keys[lo:hi], at[lo:hi])
    # Grouped by warp, then by target pair, anchors ascending within each group: nothing
    # downstream needs another order (the postings writer and the aligner sort for themselves),
    # and a 2-hour query's 60 M keys are not copied once more to sort them.
    ordered = [per_warp[w] for w in range(len(warps))]
    return Landmarks(np.concatenate([h for h, _ in ordered]),
                     np.concatenate([f for _, f in ordered]),
                     np.concatenate([np.full(h.size, w, np.uint8)
                                     for w, (h, _) in enumerate(ordered)]),
                     speeds, pitches)


def _speed_warp_keys(frames: np.ndarray, lf0: np.ndarray, params: AudioParams, speed: float,
                     shifts: np.ndarray, fanout: int, probe: float, n_anchors: int, *,
                     compiled: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The keys of one candidate speed at each of its warps: (keys uint32[k], anchor frame in
    reference time int32[k], keys of each warp int64[w]), warp after warp.

    frames, lf0 : float64[n], the peaks' frames and log-frequencies; shifts : float64[w], each
    warp's pitch in log-frequency steps (``bins_per_octave * log2(pitch)``). ``compiled``
    (default) runs :mod:`engine.audio.key_kernels`; False, their numpy twins.
    """
    n_anchors = min(int(n_anchors), frames.size)
    if compiled:
        anchor, base = key_kernels.speed_triplets(
            frames, lf0, float(speed), int(fanout), n_anchors, float(params.max_dt_frames),
            float(params.max_dlf_steps), float(params.key_min_span_frames),
            float(params.key_d_step), int(params.key_r_levels), float(params.key_t_per_octave),
            float(probe))
        return key_kernels.warp_keys(anchor, base, frames, lf0, float(speed), shifts,
                                     float(params.key_f_step))
    first, second = (np.array(v, np.int64) for v in zip(*combinations(range(fanout), 2)))
    anchor, base = _speed_keys_numpy(frames, lf0, params, speed, fanout, first, second, probe,
                                     n_anchors)
    return _warp_keys_numpy(anchor, base, frames, lf0, params, speed, shifts)


def _warp_keys_numpy(anchor: np.ndarray, base: np.ndarray, frames: np.ndarray,
                     lf0: np.ndarray, params: AudioParams, speed: float,
                     shifts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """numpy twin of :func:`engine.audio.key_kernels.warp_keys`."""
    anchor_frame = np.rint(frames[anchor] * speed).astype(np.int32)
    keys, at = [], []
    for shift in shifts:
        anchor_f = np.floor((lf0[anchor] - shift) / params.key_f_step)
        ok = (anchor_f >= 0) & (anchor_f < (1 << F_BITS))
        keys.append(base[ok] | anchor_f[ok].astype(np.uint32))
        at.append(anchor_frame[ok])
    return (np.concatenate(keys), np.concatenate(at),
            np.array([k.size for k in keys], np.int64))


def _speed_keys_numpy(frames: np.ndarray, lf0: np.ndarray, params: AudioParams, speed: float,
                      fanout: int, first: np.ndarray, second: np.ndarray, probe: float,
                      n_anchors: int) -> tuple[np.ndarray, np.ndarray]:
    """numpy twin of :func:`engine.audio.key_kernels.speed_triplets`: (anchor peak int64[k],
    key without F uint32[k]).

    Every target pair ``(first[p], second[p])`` of every anchor at once, pair-major; with
    ``probe``, the neighbouring-cell keys of fields near an edge follow.
    """
    targets = _targets(frames, lf0, params, speed, fanout)[:n_anchors]
    both = (targets[:, first] >= 0) & (targets[:, second] >= 0)
    # pair-major: all anchors of pair 0, then of pair 1, ...
    pair, a = np.nonzero(both.T)
    b, c = targets[a, first[pair]], targets[a, second[pair]]
    span = frames[c] - frames[a]
    ok = span * speed >= params.key_min_span_frames
    a, b, c, span = a[ok], b[ok], c[ok], span[ok]
    d1x = (lf0[b] - lf0[a]) / params.key_d_step + _D_OFFSET
    d2x = (lf0[c] - lf0[a]) / params.key_d_step + _D_OFFSET
    rx = params.key_r_levels * (frames[b] - frames[a]) / span
    tx = params.key_t_per_octave * np.log2(span * speed)
    d1, d2 = np.rint(d1x), np.rint(d2x)
    r = np.minimum(np.floor(rx), params.key_r_levels - 1)
    t = np.clip(np.floor(tx), 0, (1 << T_BITS) - 1)
    zero = np.zeros(a.size)
    keys, anchors = [_pack(d1, d2, r, t, zero)], [a]
    if probe > 0:
        # Multi-probe: a field within ``probe`` of its cell's edge is also keyed in the
        # neighbouring cell (one field at a time), so peak jitter that moves it across the
        # edge still meets the reference's key.
        limits = {"d1": 126, "d2": 126, "r": params.key_r_levels - 1, "t": (1 << T_BITS) - 1}
        for field, value, x, lo_edge in (("d1", d1, d1x, d1 - 0.5), ("d2", d2, d2x, d2 - 0.5),
                                         ("r", r, rx, r), ("t", t, tx, t)):
            step = np.where(x - lo_edge < probe, -1.0,
                            np.where(lo_edge + 1.0 - x < probe, 1.0, 0.0))
            alt = value + step
            near = np.flatnonzero((step != 0) & (alt >= 0) & (alt <= limits[field]))
            fields = {"d1": d1[near], "d2": d2[near], "r": r[near], "t": t[near]}
            fields[field] = alt[near]
            keys.append(_pack(fields["d1"], fields["d2"], fields["r"], fields["t"],
                              np.zeros(near.size)))
            anchors.append(a[near])
    return np.concatenate(anchors), np.concatenate(keys)


def audio_landmarks(
    chunks: Iterable[np.ndarray], *, params: AudioParams,
    warps: tuple[tuple[float, float], ...] = ((1.0, 1.0),), query: bool | None = None,
) -> tuple[Landmarks, float]:
    """Keys of a sample stream; returns (landmarks, duration_s).

    chunks : iterable of ndarray [shape=(n,)], float32 at ``params.sample_rate``.
    References use the default single warp; queries use ``params.query_warps``. A query
    (``query``, by default: more than one warp) keeps ``query_peaks_per_second`` peaks and
    ``query_fanout`` targets per anchor: the index is unchanged, the query asks more of it.
    """
    query = len(warps) > 1 if query is None else query
    if query:
        keys, duration = query_peaks(chunks, params=params, warps=warps)
        return keys.landmarks(), duration
    landmarks, _, duration = reference_audio(chunks, params=params, warps=warps)
    return landmarks, duration


def reference_audio(
    chunks: Iterable[np.ndarray], *, params: AudioParams,
    warps: tuple[tuple[float, float], ...] = ((1.0, 1.0),),
) -> tuple[Landmarks, Peaks, float]:
    """A reference's keys and the peaks they were made from; returns (landmarks, peaks,
    duration_s). The catalog keeps both: the keys to find candidates, the peaks to check a
    candidate alignment peak by peak (engine.audio.verify).

    chunks : iterable of ndarray [shape=(n,)], float32 at ``params.sample_rate``.
    """
    peaks, n_samples = stream_peaks(chunks, params=params)
    return (triplet_hashes(peaks, params=params, warps=warps), peaks,
            n_samples / params.sample_rate)


@dataclass(frozen=True)
class QueryPeaks:
    """A query's peaks, keyed on demand at its candidate warps.

    A query's keys are about 17,000 a second (every warp, multi-probe): 1.1 GB for a 2-hour
    upload, against 2 MB for its peaks. Keeping the peaks and keying one window of anchors at a
    time (:meth:`landmarks` with a range) bounds a long screening's memory by its window.

    peaks : :class:`~engine.audio.peaks.Peaks` at ``params.query_peaks_per_second``
    warps : candidate (speed, pitch) pairs, as ``params.query_warps``
    """

    peaks: Peaks
    warps: tuple[tuple[float, float], ...]
    params: AudioParams

    def __len__(self) -> int:
        return len(self.peaks)

    def landmarks(self, lo: int = 0, hi: int | None = None) -> Landmarks:
        """Keys of the anchors ``peaks[lo:hi]`` (all by default), exactly as keying every peak
        at once would give them (:func:`triplet_hashes` with ``n_anchors``)."""
        n = len(self.peaks)
        hi = n if hi is None else min(hi, n)
        lo = max(0, min(lo, hi))
        end = min(n, hi + 4 * self.params.query_fanout)
        part = Peaks(self.peaks.frame[lo:end], self.peaks.log_freq[lo:end],
                     self.peaks.prominence[lo:end])
        return triplet_hashes(part, params=self.params, warps=self.warps,
                              fanout=self.params.query_fanout, probe=self.params.query_probe,
                              n_anchors=hi - lo)


def query_peaks(
    chunks: Iterable[np.ndarray], *, params: AudioParams,
    warps: tuple[tuple[float, float], ...] | None = None,
) -> tuple[QueryPeaks, float]:
    """A query's peaks from a sample stream, to key on demand; returns (peaks, duration_s).

    chunks : iterable of ndarray [shape=(n,)], float32 at ``params.sample_rate``.
    """
    peak_params = replace(params, peaks_per_second=params.query_peaks_per_second)
    peaks, n_samples = stream_peaks(chunks, params=peak_params)
    return (QueryPeaks(peaks, tuple(warps or params.query_warps), params),
            n_samples / params.sample_rate)
