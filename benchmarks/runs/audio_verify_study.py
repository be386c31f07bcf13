"""A study, not a feature: would checking a hypothesis against the reference's own peaks
recover the 5 s queries that the triplet votes leave below the threshold?

``python -m nanhu.benchmarks.runs.audio_verify_study OUT [--queries N] [--negatives N]``
screens attacked 5 s excerpts of the benchmark's real catalog (18.5 h) with the decision
thresholds off (``min_votes`` 3, no score limit), so every (reference, warp, offset)
hypothesis the alignment forms is kept, and for each counts the query's peaks that land on a
peak of the reference (within 2 frames and 1 FFT bin, after the hypothesis's warp and
offset). It does the same at six far offsets of the same reference (the reference's own
self-similarity) and for never-registered negatives (every hypothesis false). The reference
peaks come from the scale benchmark's cache of the corpus's peaks; the catalog does not store
peaks today, so this cannot run inside the matcher. Writes ``OUT/verify-study.json`` and
prints, per condition, what today's rule finds and what a hit threshold above every false
hypothesis's count would find (``docs/audio.md``, "Where 5 s recall is lost").
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

import numpy as np

from nanhu.benchmarks import audio_attacks as attacks
from nanhu.benchmarks.audio_bench import ATTACK_RATE, _attack
from nanhu.benchmarks.corpus.audio import cache_dir, load_audio_corpus
from nanhu.benchmarks.scale_audio import corpus_peaks
from nanhu.engine.audio.align import AudioMatchParams
from nanhu.engine.audio.params import AudioParams
from nanhu.engine.audio.peaks import Peaks
from nanhu.engine.catalog import Catalog
from nanhu.engine.errors import EmptyMediaError
from nanhu.engine.fingerprint import fingerprint_media
from nanhu.engine.matcher import Matcher
from nanhu.engine.media import load_audio

CONDITIONS = ("clean", "pitch+1", "tempo-1.05", "babble-snr5", "speech-over-0dB", "pink-snr0")
NEGATIVE_CONDITIONS = ("clean", "pink-snr5", "mp3-128k", "speed-1.1", "pitch+1")
FAR_OFFSETS = (-900, -600, -300, 300, 600, 900)  # frames (about 5-14 s)


def peak_hits(query: Peaks, reference: Peaks, *, speed: float, pitch: float, offset: float,
              params: AudioParams, dt: float = 2.0, dbin: float = 1.0) -> int:
    """Query peaks with a reference peak within ``dt`` frames and ``dbin`` FFT bins of where
    the hypothesis puts them: reference frame ``frame * speed + offset``, frequency divided by
    ``pitch``. query, reference : peaks (frames, log-frequency steps)."""
    bin_hz = params.sample_rate / params.n_fft

    def to_bin(lf: np.ndarray) -> np.ndarray:
        return params.fmin_hz * 2.0 ** (np.asarray(lf, np.float64) / params.bins_per_octave) / bin_hz

    frames = query.frame.astype(np.float64) * speed + offset
    bins = to_bin(query.log_freq) / pitch
    near = (reference.frame >= frames.min() - dt - 1) & (reference.frame <= frames.max() + dt + 1)
    ref_frames, ref_bins = reference.frame[near].astype(np.float64), to_bin(reference.log_freq[near])
    if ref_frames.size == 0:
        return 0
    close = ((np.abs(frames[:, None] - ref_frames[None, :]) <= dt)
             & (np.abs(bins[:, None] - ref_bins[None, :]) <= dbin))
    return int(close.any(axis=1).sum())


def run(out: Path, n_queries: int, n_negatives: int, seed: int = 7) -> dict:
    params = AudioParams()
    corpus = load_audio_corpus()
    bench = cache_dir() / "bench"
    peaks = corpus_peaks(corpus, params, bench)
    index_of = {r["id"]: i for i, r in enumerate(corpus["references"])}
    from nanhu.benchmarks.audio_bench import _corpus_key

    catalog = Catalog(bench / f"audio-catalog-{params.tag()}-{_corpus_key(corpus)}")
    matcher = Matcher(catalog, audio_match=replace(AudioMatchParams(), min_votes=3,
                                                   min_score=0.0))
    fps = params.frames_per_second
    rng = np.random.default_rng(seed)
    refs = [r for r in corpus["references"] if r["duration_s"] >= 15]
    negatives = [r for r in corpus["negatives"] if r["duration_s"] >= 15]
    speech = [load_audio(s["path"], sample_rate=ATTACK_RATE) for s in corpus["speech"][:40]]
    decoded: dict[str, np.ndarray] = {}

    def excerpt(ref: dict, offset: float, length: float) -> np.ndarray:
        if ref["id"] not in decoded:
            decoded[ref["id"]] = load_audio(ref["path"], sample_rate=ATTACK_RATE)
        start = int(offset * ATTACK_RATE)
        return decoded[ref["id"]][start: start + int(length * ATTACK_RATE)]

    def pick(pool: list[dict], n: int) -> list[tuple[dict, float]]:
        chosen = [pool[i] for i in rng.integers(0, len(pool), n)]
        return [(r, float(rng.uniform(0, r["duration_s"] - 17.0))) for r in chosen]

    rows = []
    runs = [(c, False, pick(refs, n_queries)) for c in CONDITIONS]
    runs += [(c, True, pick(negatives, n_negatives // len(NEGATIVE_CONDITIONS)))
             for c in NEGATIVE_CONDITIONS]
    for number, (condition, negative, items) in enumerate(runs):
        crng = np.random.default_rng([3, number])
        for ref, offset in items:
            source = excerpt(ref, offset, 5.0 * attacks.speed_of(condition))
            query, _ = _attack(condition, source, crng, speech, corpus["negatives"])
            try:
                fp = fingerprint_media(attacks.to_wav_bytes(query, ATTACK_RATE),
                                       audio_params=params, query=True, video=False,
                                       keys_on_demand=True)
            except EmptyMediaError:  # a silent excerpt: nothing to match, nothing to count
                rows.append({"condition": condition, "negative": negative, "query_peaks": 0,
                             "hypotheses": []})
                continue
            segments = matcher.segments(fp)
            found = catalog.by_ordinals(np.array([s.reference for s in segments], np.int64))
            hypotheses = []
            for seg in segments[:64]:
                ref_id = found[seg.reference].ref_id
                ev = seg.evidence
                shift = ev["offset_s"] * fps
                target = peaks[index_of[ref_id]]

                counts = [peak_hits(fp.audio_peaks.peaks, target, speed=seg.speed,
                                    pitch=ev["pitch"], offset=shift + extra, params=params)
                          for extra in (0.0, *FAR_OFFSETS)]
                hypotheses.append({
                    "true": (not negative) and ref_id == ref["id"], "votes": ev["aligned_hashes"],
                    "log10_chance": ev["log10_chance"], "hits": counts[0], "far": counts[1:],
                    "speed": seg.speed, "pitch": ev["pitch"]})
            rows.append({"condition": condition, "negative": negative,
                         "query_peaks": len(fp.audio_peaks), "hypotheses": hypotheses})
        print(condition, "negatives" if negative else "positives", "done", flush=True)
    out.mkdir(parents=True, exist_ok=True)
    summary = summarise(rows)
    (out / "verify-study.json").write_text(json.dumps({"summary": summary, "rows": rows}))
    return summary


def summarise(rows: list[dict], default_min_log10: float = -3.98, min_votes: int = 6) -> dict:
    """Today's rule (E <= ~1e-4 and ``min_votes``) against "today's rule, or peak hits above
    the most any false hypothesis reached" per condition."""
    false_hits = [h["hits"] for r in rows for h in r["hypotheses"] if not h["true"]]
    threshold = max(false_hits, default=0) + 1
    by: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        if not r["negative"]:
            by[r["condition"]].append(r)

    def today(h: dict) -> bool:
        return h["log10_chance"] <= default_min_log10 and h["votes"] >= min_votes

    table = {}
    for condition, rs in by.items():
        now = sum(any(h["true"] and today(h) for h in r["hypotheses"]) for r in rs)
        verified = sum(any(h["true"] and (today(h) or h["hits"] >= threshold)
                           for h in r["hypotheses"]) for r in rs)
        table[condition] = {"queries": len(rs), "today": now, "with_peak_check": verified}
    return {"false_hypotheses": len(false_hits), "max_false_hits": threshold - 1,
            "hit_threshold": threshold,
            "negative_queries": sum(r["negative"] for r in rows), "conditions": table}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--queries", type=int, default=16)
    parser.add_argument("--negatives", type=int, default=200)
    args = parser.parse_args()
    print(json.dumps(run(args.out, args.queries, args.negatives), indent=1))


if __name__ == "__main__":
    main()
