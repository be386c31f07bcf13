"""Key layouts compared on real music: how many aligned keys survive an attack, and how many
chance postings a query would touch at 10,000 hours (``docs/audio.md``, "Choosing the key").

For each layout, every reference is hashed once; 5 s excerpts (at random sub-hop offsets) are
attacked and hashed at the layout's query warps. Per query:

- ``aligned``: distinct query anchors whose key meets the true reference within +-2 frames of
  the true offset (the votes a copy gets), at the best warp;
- ``touched_10kh``: postings the query's distinct keys hold in the study catalog, scaled to
  10,000 hours (the work a lookup does, and the pool chance votes come from).

``python -m nanhu.benchmarks.key_study [--tracks N] [--queries Q]`` prints a table.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os

import numpy as np

from nanhu.benchmarks import audio_attacks as attacks
from nanhu.engine.audio.keys import Landmarks, triplet_hashes
from nanhu.engine.audio.params import AudioParams
from nanhu.engine.audio.peaks import Peaks, stream_peaks
from nanhu.engine.media import load_audio
from nanhu.engine.store.postings import expand_ranges

log = logging.getLogger(__name__)
RATE = 16000

CONDITIONS = {
    "clean": lambda x, rng: x,
    "pink-5dB": lambda x, rng: attacks.add_pink_noise(x, RATE, rng, snr_db=5),
    "pink-0dB": lambda x, rng: attacks.add_pink_noise(x, RATE, rng, snr_db=0),
    "speed-1.1": lambda x, rng: attacks.change_speed(x, RATE, rng, speed=1.1),
    "speed-0.8": lambda x, rng: attacks.change_speed(x, RATE, rng, speed=0.8),
    "pitch+1": lambda x, rng: attacks.change_pitch(x, RATE, rng, semitones=1),
    "tempo-1.05": lambda x, rng: attacks.change_tempo(x, RATE, rng, rate=1.05),
}


def _peaks(samples: np.ndarray, params: AudioParams):
    from scipy.signal import resample_poly

    x = resample_poly(samples, params.sample_rate, RATE).astype(np.float32)
    return stream_peaks([x], params=params)[0]


def layouts() -> dict[str, tuple[AudioParams, object]]:
    """The candidates: today's pair key (audio-v2 warps) and triplet keys at two quantisations."""
    old_warps = _v2_warps()
    base = AudioParams()
    rep = dataclasses.replace
    variants = {
        "pair-22bit (v2)": (rep(base, query_warps=old_warps), pair_hashes),
        "triplet d1 t8 r32": (rep(base, key_t_per_octave=8.0, key_r_levels=32), triplet_hashes),
        "triplet d2 t6 r32": (rep(base, key_d_step=2.0, key_r_levels=32), triplet_hashes),
        "triplet d1 t6 r16": (base, triplet_hashes),
        "triplet d1 t6 r16 fan5": (rep(base, fanout=5, query_fanout=5), triplet_hashes),
        "triplet d1 t6 r16 q-fan6": (rep(base, query_fanout=6), triplet_hashes),
        "triplet d1 t6 r16 q-fan6 q-24/s": (rep(base, query_fanout=6, query_peaks_per_second=24),
                                            triplet_hashes),
        "triplet d1 t6 r16 q-fan8 q-24/s": (rep(base, query_fanout=8, query_peaks_per_second=24),
                                            triplet_hashes),
        "triplet d1 t6 r16 q-fan6 probe 0.15": (rep(base, query_probe=0.15), triplet_hashes),
        "triplet d1 t6 r16 q-fan6 probe 0.3": (rep(base, query_probe=0.3), triplet_hashes),
    }
    only = os.environ.get("KEY_STUDY_ONLY")
    return {k: v for k, v in variants.items() if not only or k in only.split(",")}


def _v2_warps() -> tuple[tuple[float, float], ...]:
    grid = np.round(1.015 ** np.arange(-8, 9), 4)
    resample = [(float(s), float(s)) for s in grid]
    stretch = [(float(s), 1.0) for s in (0.95, 0.97, 0.985, 1.015, 1.03, 1.05)]
    shift = [(1.0, float(p)) for p in np.round(2 ** (np.array([-4, -3, -2, -1, 1, 2, 3, 4]) / 48), 4)]
    return tuple(resample + stretch + shift)


# audio-v2 layout: anchor log-frequency (8 bits) | delta + 64 (7 bits) | dt (7 bits).
_LF_BITS, _DLF_BITS, _DT_BITS = 8, 7, 7


def pair_hashes(
    peaks: Peaks, *, params: AudioParams, warps: tuple[tuple[float, float], ...] = ((1.0, 1.0),)
) -> Landmarks:
    """audio-v2's 22-bit pair key, kept for the comparison: each anchor with its next
    ``fanout`` peaks in the target zone, hashed as pairs.

    ``warps`` are candidate (speed, pitch) pairs. For each, the peak coordinates are first
    mapped back to reference time and frequency (``frame * speed``,
    ``log_freq - bins_per_octave * log2(pitch)``), so a query played ``speed`` times faster
    and ``pitch`` times higher than its reference yields the reference's hashes at that
    candidate. Resampling-style changes have ``speed == pitch``; time-stretching keeps
    ``pitch == 1``; pitch-shifting keeps ``speed == 1``. References use ``((1.0, 1.0),)``.
    """
    speeds_arr = np.asarray([w[0] for w in warps], np.float32)
    pitches_arr = np.asarray([w[1] for w in warps], np.float32)
    n = len(peaks)
    max_k = 4 * params.fanout
    if n < 2:
        return Landmarks(np.zeros(0, np.uint32), np.zeros(0, np.int32), np.zeros(0, np.uint8),
                         speeds_arr, pitches_arr)
    anchor_idx = np.repeat(np.arange(n), max_k)
    target_idx = anchor_idx + np.tile(np.arange(1, max_k + 1), n)
    inside = target_idx < n
    anchor_idx, target_idx = anchor_idx[inside], target_idx[inside]
    frame = peaks.frame.astype(np.float64)
    out_hash, out_frame, out_speed = [], [], []
    for speed_index, (speed, pitch) in enumerate(warps):
        t = frame * speed
        lf = peaks.log_freq.astype(np.float64) - params.bins_per_octave * np.log2(pitch)
        dt = np.rint(t[target_idx] - t[anchor_idx])
        lf_anchor = np.rint(lf[anchor_idx])
        dlf = np.rint(lf[target_idx] - lf[anchor_idx])
        valid = (
            (dt >= 1) & (dt <= params.max_dt_frames) & (np.abs(dlf) <= params.max_dlf_steps)
            & (lf_anchor >= 0) & (lf_anchor < (1 << _LF_BITS))
        )
        # Keep the first `fanout` valid targets of each anchor (pairs are in anchor, k order).
        sel_anchor = anchor_idx[valid]
        first = np.searchsorted(sel_anchor, sel_anchor, side="left")
        rank = np.arange(sel_anchor.size) - first
        keep = np.flatnonzero(valid)[rank < params.fanout]
        packed = (
            (lf_anchor[keep].astype(np.uint32) << (_DLF_BITS + _DT_BITS))
            | ((dlf[keep] + 64).astype(np.uint32) << _DT_BITS)
            | dt[keep].astype(np.uint32)
        )
        out_hash.append(packed)
        out_frame.append(np.rint(t[anchor_idx[keep]]).astype(np.int32))
        out_speed.append(np.full(keep.size, speed_index, np.uint8))
    return Landmarks(
        np.concatenate(out_hash), np.concatenate(out_frame), np.concatenate(out_speed),
        speeds_arr, pitches_arr,
    )


def run_key_study(paths: list[str], *, queries: int = 60, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    audio = [load_audio(p, sample_rate=RATE) for p in paths]
    audio = [x for x in audio if x.size > 20 * RATE]
    hours = sum(x.size for x in audio) / RATE / 3600
    plan = []
    for _ in range(queries):
        ref = int(rng.integers(len(audio)))
        start = float(rng.uniform(2, audio[ref].size / RATE - 8))
        plan.append((ref, start, str(rng.choice(list(CONDITIONS))), int(rng.integers(1 << 30))))
    results = {}
    for name, (params, hasher) in layouts().items():
        fps = params.frames_per_second
        keys, refs, frames = [], [], []
        for i, x in enumerate(audio):
            lm = hasher(_peaks(x, params), params=params)
            keys.append(lm.hashes)
            refs.append(np.full(lm.hashes.size, i))
            frames.append(lm.frames)
        keys, refs, frames = map(np.concatenate, (keys, refs, frames))
        order = np.argsort(keys, kind="stable")
        keys, refs, frames = keys[order], refs[order], frames[order]
        per_condition: dict[str, list] = {}
        for ref, start, condition, qseed in plan:
            x = audio[ref][int(start * RATE): int((start + 5) * RATE)]
            y = CONDITIONS[condition](x, np.random.default_rng(qseed)).astype(np.float32)
            if hasher is triplet_hashes:
                lm = hasher(_peaks(y, dataclasses.replace(
                    params, peaks_per_second=params.query_peaks_per_second)),
                    params=params, warps=params.query_warps, fanout=params.query_fanout,
                    probe=params.query_probe)
            else:
                lm = hasher(_peaks(y, params), params=params, warps=params.query_warps)
            unique, inverse = np.unique(lm.hashes, return_inverse=True)
            lo = np.searchsorted(keys, unique, "left")
            hi = np.searchsorted(keys, unique, "right")
            touched = int((hi - lo).sum())
            # Aligned anchors: hits on the true reference near the true offset, best warp.
            u = inverse.reshape(-1)
            lengths = hi[u] - lo[u]
            posting = expand_ranges(lo[u], lengths)
            landmark = np.repeat(np.arange(u.size), lengths)
            on_ref = refs[posting] == ref
            offset = frames[posting] - lm.frames[landmark].astype(np.int64)
            good = on_ref & (np.abs(offset - start * fps) <= 3)
            warp = lm.speed_index[landmark[good]].astype(np.int64)
            anchor = np.unique(warp * (1 << 32) + np.rint(lm.frames[landmark[good]]
                                                          / lm.speeds[warp]).astype(np.int64))
            best = int(np.bincount(anchor >> 32).max()) if anchor.size else 0
            per_condition.setdefault(condition, []).append(
                (best, touched * 10_000 / hours, int(unique.size)))
        results[name] = {
            "postings_per_s": round(keys.size / (hours * 3600), 1),
            "h2_bits": round(float(-np.log2(np.sum((np.unique(keys, return_counts=True)[1]
                                                     / keys.size) ** 2))), 2),
            "conditions": {
                c: {"median_aligned": float(np.median([v[0] for v in vals])),
                    "share_aligned_ge6": round(float(np.mean([v[0] >= 6 for v in vals])), 3),
                    "median_touched_10kh": float(np.median([v[1] for v in vals])),
                    "median_unique_keys": float(np.median([v[2] for v in vals])), "n": len(vals)}
                for c, vals in sorted(per_condition.items())
            },
        }
        log.warning("%s: %s", name, json.dumps(results[name]))
    return {"hours": hours, "tracks": len(audio), "results": results}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("list", help="a text file naming one audio file a line")
    parser.add_argument("--queries", type=int, default=60)
    args = parser.parse_args()
    print(json.dumps(run_key_study(open(args.list).read().splitlines(), queries=args.queries), indent=1))


if __name__ == "__main__":
    main()
