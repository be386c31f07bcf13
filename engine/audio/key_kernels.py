"""Compiled loops that make a signal's triplet keys (:func:`engine.audio.keys.triplet_hashes`).

A 5 s query is keyed at 39 warps of 19 distinct speeds: about 1,200 triplets a speed, 85,000
keys in all. As numpy, each speed was ~100 whole-array operations on arrays of a few thousand
elements, and each warp a few more: 7-9 ms of a query's CPU, where what the loops compute is a
few hundred microseconds of arithmetic. These are the same computations, in the same order
and the same float64 arithmetic, one pass each; ``engine.audio.keys`` keeps their numpy form
(``_speed_keys_numpy``, ``_warp_keys_numpy``), and the tests hold the two to identical keys.
See :mod:`engine.store.kernels` for the rules (pure, typed by their arguments, cached, GIL
released).
"""

from __future__ import annotations

import numpy as np
from numba import njit

# the key's fields, from the low bits up (engine.audio.keys documents them)
_F_BITS, _T_BITS, _R_BITS, _D_BITS = 6, 6, 4, 7
_T_SHIFT = _F_BITS
_R_SHIFT = _T_SHIFT + _T_BITS
_D2_SHIFT = _R_SHIFT + _R_BITS
_D1_SHIFT = _D2_SHIFT + _D_BITS
_D_OFFSET = 63.0
_D_MAX = 126.0


@njit(cache=True, nogil=True, inline="always")
def _pack(d1: float, d2: float, r: float, t: float) -> np.uint32:  # pragma: no cover
    return np.uint32((np.uint32(d1) << _D1_SHIFT) | (np.uint32(d2) << _D2_SHIFT)
                     | (np.uint32(r) << _R_SHIFT) | (np.uint32(t) << _T_SHIFT))


@njit(cache=True, nogil=True, inline="always")
def _probe_step(x: float, lo_edge: float, probe: float) -> float:  # pragma: no cover
    """-1 when ``x`` is within ``probe`` of its cell's lower edge, +1 of its upper, else 0."""
    if x - lo_edge < probe:
        return -1.0
    if lo_edge + 1.0 - x < probe:
        return 1.0
    return 0.0


@njit(cache=True, nogil=True)
def speed_triplets(frames: np.ndarray, lf: np.ndarray, speed: float, fanout: int,
                   n_anchors: int, max_dt: float, max_dlf: float, min_span: float,
                   d_step: float, r_levels: int, t_per_octave: float,
                   probe: float) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover
    """Triplets of one candidate speed: (anchor peak int64[k], key without F uint32[k]).

    frames, lf : float64[n], the peaks' STFT frames and log-frequencies (time order). Anchor
    ``a < n_anchors`` takes as targets its first ``fanout`` peaks among the next
    ``4 fanout`` whose warped time delta ``(frame - frame_a) speed`` is in ``[1, max_dt]``
    and whose rounded log-frequency delta is at most ``max_dlf``; every pair ``(i, j)``,
    ``i < j``, of its targets makes a triplet when the pair's last peak is ``min_span``
    warped frames or more after the anchor. Keys are pair-major (all anchors of pair 0, then
    of pair 1, ... in ``itertools.combinations`` order), then, with ``probe > 0``, the
    neighbouring-cell keys of D1, D2, R and T in turn (a field within ``probe`` of its cell's
    edge is keyed in the next cell too).
    """
    n = frames.size
    window = 4 * fanout
    targets = np.full((n_anchors, fanout), -1, np.int64)
    n_targets = np.zeros(n_anchors, np.int64)
    for a in range(n_anchors):
        k = 0
        for t in range(a + 1, min(n, a + window + 1)):
            dt = (frames[t] - frames[a]) * speed
            if dt >= 1 and dt <= max_dt and abs(np.rint(lf[t] - lf[a])) <= max_dlf:
                targets[a, k] = t
                k += 1
                if k == fanout:
                    break
        n_targets[a] = k
    n_pairs = fanout * (fanout - 1) // 2
    cap = n_anchors * n_pairs
    anchor = np.empty(cap, np.int64)
    fields = np.empty((cap, 8), np.float64)  # d1x d2x rx tx d1 d2 r t
    m = 0
    for first in range(fanout):
        for second in range(first + 1, fanout):
            for a in range(n_anchors):
                if n_targets[a] <= second:
                    continue
                b, c = targets[a, first], targets[a, second]
                span = frames[c] - frames[a]
                if span * speed < min_span:
                    continue
                d1x = (lf[b] - lf[a]) / d_step + _D_OFFSET
                d2x = (lf[c] - lf[a]) / d_step + _D_OFFSET
                rx = r_levels * (frames[b] - frames[a]) / span
                tx = t_per_octave * np.log2(span * speed)
                anchor[m] = a
                fields[m, 0], fields[m, 1], fields[m, 2], fields[m, 3] = d1x, d2x, rx, tx
                fields[m, 4], fields[m, 5] = np.rint(d1x), np.rint(d2x)
                fields[m, 6] = min(np.floor(rx), r_levels - 1)
                fields[m, 7] = min(max(np.floor(tx), 0.0), (1 << _T_BITS) - 1)
                m += 1
    limits = (_D_MAX, _D_MAX, float(r_levels - 1), float((1 << _T_BITS) - 1))
    out_anchor = np.empty(m * 5 if probe > 0 else m, np.int64)
    out_key = np.empty(out_anchor.size, np.uint32)
    for i in range(m):
        out_anchor[i] = anchor[i]
        out_key[i] = _pack(fields[i, 4], fields[i, 5], fields[i, 6], fields[i, 7])
    k = m
    if probe > 0:
        for field in range(4):
            for i in range(m):
                value = fields[i, 4 + field]
                # D1 and D2 are rounded (edges at +-0.5), R and T floored
                lo_edge = value - 0.5 if field < 2 else value
                step = _probe_step(fields[i, field], lo_edge, probe)
                alt = value + step
                if step == 0 or alt < 0 or alt > limits[field]:
                    continue
                d1, d2, r, t = fields[i, 4], fields[i, 5], fields[i, 6], fields[i, 7]
                if field == 0:
                    d1 = alt
                elif field == 1:
                    d2 = alt
                elif field == 2:
                    r = alt
                else:
                    t = alt
                out_anchor[k] = anchor[i]
                out_key[k] = _pack(d1, d2, r, t)
                k += 1
    return out_anchor[:k], out_key[:k]


@njit(cache=True, nogil=True)
def warp_keys(anchor: np.ndarray, base: np.ndarray, frames: np.ndarray, lf: np.ndarray,
              speed: float, shifts: np.ndarray, f_step: float
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # pragma: no cover
    """One speed's triplets at each of its warps: (keys uint32[k], anchor frame in reference
    time int32[k], keys of each warp int64[w]), warp after warp.

    anchor, base : :func:`speed_triplets`' output; frames, lf : float64[n] as there; shifts :
    float64[w], each warp's pitch as log-frequency steps (``bins_per_octave log2(pitch)``).
    A warp's F field is ``floor((lf_anchor - shift) / f_step)``; a triplet whose F falls
    outside its 6 bits is not keyed at that warp.
    """
    keys = np.empty(base.size * shifts.size, np.uint32)
    at = np.empty(keys.size, np.int32)
    counts = np.zeros(shifts.size, np.int64)
    k = 0
    for w in range(shifts.size):
        for i in range(base.size):
            f = np.floor((lf[anchor[i]] - shifts[w]) / f_step)
            if f < 0 or f >= (1 << _F_BITS):
                continue
            keys[k] = base[i] | np.uint32(f)
            at[k] = np.int32(np.rint(frames[anchor[i]] * speed))
            k += 1
        counts[w] = k
    for w in range(shifts.size - 1, 0, -1):
        counts[w] -= counts[w - 1]
    return keys[:k], at[:k], counts
