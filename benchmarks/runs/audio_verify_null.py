"""The peak check's null and what it recovers: the measurement its calibration comes from.

``python -m nanhu.benchmarks.runs.audio_verify_null OUT [--queries N] [--negatives N]``
screens attacked excerpts of the benchmark's real catalog (which stores its references' peaks,
catalog format 5) and of never-registered music, and records, beside what the votes alone
find, every peak check the matcher makes (:mod:`engine.audio.verify`) with its raw figure
(``log10_chance_poisson``: Poisson tail and the checks' multiplicity). From the negatives'
figures it fits the calibration ``log10 E = offset + slope * raw`` on the observed null's
tail (the rate of queries whose best check is at least this strong), as the vote figure's
calibration is fitted (``nanhu bench scale``), and gives per condition the recall of the votes
alone and with the check at the default score. Writes ``OUT/verify-null.json``.
"""

from __future__ import annotations

import argparse
import gzip
import json
import time
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

import numpy as np

from nanhu.benchmarks import audio_attacks as attacks
from nanhu.benchmarks.audio_bench import ATTACK_RATE, _attack, _corpus_key, query_fingerprint
from nanhu.benchmarks.corpus.audio import cache_dir, load_audio_corpus
from nanhu.benchmarks.scale_queries import related_negatives
from nanhu.engine import matcher as matcher_module
from nanhu.engine.audio.align import AudioMatchParams
from nanhu.engine.audio.params import AudioParams
from nanhu.engine.catalog import Catalog
from nanhu.engine.matcher import Matcher
from nanhu.engine.media import load_audio
from nanhu.engine.segments import log10_expected

POSITIVE_CONDITIONS = (
    ("clean", 5.0), ("mp3-128k", 5.0), ("pink-snr5", 5.0), ("pink-snr0", 5.0),
    ("babble-snr5", 5.0), ("tempo-1.05", 5.0), ("tempo-0.95", 5.0), ("pitch+1", 5.0),
    ("pitch-1", 5.0), ("speech-over-0dB", 5.0), ("song-under-0dB", 5.0),
    ("speed-0.8", 10.0), ("speed-1.2", 10.0), ("pitch+2", 10.0), ("pitch-2", 10.0))
NEGATIVE_CONDITIONS = ("clean", "mp3-128k", "pink-snr5", "pink-snr0", "babble-snr5",
                       "tempo-1.05", "pitch+1", "speed-1.1", "speech-over-0dB")


class Recorder:
    """Stands in for :func:`engine.audio.verify.verified_segments` in the matcher: runs every
    check with no threshold (``min_score`` 0, ``verify_min_hits`` 0) and records it, and
    returns nothing, so that the matches are those of the votes alone."""

    def __init__(self) -> None:
        self.original = matcher_module.verified_segments
        self.checks: list[dict] = []

    def __call__(self, peaks, hypotheses, reference_peaks, *, params, match, **kwargs):
        loose = replace(match, min_score=0.0, verify_min_hits=0, verify_slope=1.0,
                        verify_offset=0.0, verify_per_decade=0.0)
        for seg in self.original(peaks, hypotheses, reference_peaks, params=params,
                                 match=loose, **kwargs):
            ev = seg.evidence
            self.checks.append({"ordinal": seg.reference, "raw": ev["log10_chance_poisson"],
                                "hits": ev["peak_hits"], "query_peaks": ev["query_peaks"],
                                "expected": ev["expected_hits"], "shifted": ev["shifted_hits"],
                                "votes": ev["aligned_hashes"]})
        return []


def run(out: Path, n_queries: int, n_negatives: int, seed: int = 11,
        catalog_dir: Path | None = None) -> dict:
    params = AudioParams()
    corpus = load_audio_corpus()
    bench = cache_dir() / "bench"
    catalog = Catalog(catalog_dir or bench / f"audio-catalog-{params.tag()}-{_corpus_key(corpus)}")
    hours = catalog.total_audio_frames / params.frames_per_second / 3600.0
    if not catalog.manifest.get("audio_peaks"):
        raise SystemExit(f"{catalog.path}: the catalog stores no reference peaks (written before "
                         "format 5); move it away and run `nanhu bench audio --quick` to rebuild")
    real = bench / f"audio-catalog-{params.tag()}-{_corpus_key(corpus)}"
    flagged = sorted(related_negatives(corpus, real, params))  # before the recorder stands in
    recorder = Recorder()
    matcher_module.verified_segments = recorder
    matcher = Matcher(catalog)
    rng = np.random.default_rng(seed)
    refs = [r for r in corpus["references"] if r["duration_s"] >= 25]
    negatives = [r for r in corpus["negatives"] if r["duration_s"] >= 25]
    speech = [load_audio(s["path"], sample_rate=ATTACK_RATE) for s in corpus["speech"][:40]]
    decoded: dict[str, np.ndarray] = {}

    def excerpt(entry: dict, length: float) -> np.ndarray:
        if entry["id"] not in decoded:
            decoded[entry["id"]] = load_audio(entry["path"], sample_rate=ATTACK_RATE)
        x = decoded[entry["id"]]
        start = int(rng.uniform(0, x.size / ATTACK_RATE - length - 1) * ATTACK_RATE)
        return x[start: start + int(length * ATTACK_RATE)]

    runs = [(c, length, False, [refs[i] for i in rng.integers(0, len(refs), n_queries)])
            for c, length in POSITIVE_CONDITIONS]
    per = max(1, n_negatives // len(NEGATIVE_CONDITIONS))
    runs += [(c, 5.0, True, [negatives[i] for i in rng.integers(0, len(negatives), per)])
             for c in NEGATIVE_CONDITIONS]
    rows = []
    started = time.perf_counter()
    for number, (condition, length, negative, items) in enumerate(runs):
        crng = np.random.default_rng([seed, number])
        for entry in items:
            source = excerpt(entry, length * attacks.speed_of(condition))
            query, _ = _attack(condition, source, crng, speech, corpus["negatives"])
            fp = query_fingerprint(attacks.to_wav_bytes(query, ATTACK_RATE), params)
            recorder.checks = []
            segments = matcher.segments(fp) if fp is not None else []
            ids = catalog.by_ordinals(np.array(
                [s.reference for s in segments] + [c["ordinal"] for c in recorder.checks],
                np.int64))

            def ref_id(ordinal: int, ids=ids) -> str | None:
                found = ids.get(ordinal)
                return found.ref_id if found is not None else None

            truth = None if negative else entry["id"]
            rows.append({
                "condition": condition, "seconds": length, "negative": negative,
                "source": entry["id"],
                "votes_found": bool(truth) and any(ref_id(s.reference) == truth
                                                   for s in segments),
                "votes_false": any(ref_id(s.reference) != truth for s in segments),
                # what a false match by the votes matched, and how surely: the evidence for
                # telling a quoted reference (a flagged source) from a chance match
                "false_refs": [{"ref": ref_id(s.reference), "score": round(float(s.score), 6),
                                "votes": int(s.evidence.get("aligned_hashes", 0))}
                               for s in segments if ref_id(s.reference) != truth],
                "checks": [{**c, "true": bool(truth) and ref_id(c["ordinal"]) == truth}
                           for c in recorder.checks]})
        print(condition, "negatives" if negative else "positives", "done",
              round(time.perf_counter() - started), "s", flush=True)
    matcher_module.verified_segments = recorder.original
    summary = {"catalog_hours": round(hours, 1), "flagged": flagged,
               **summarise(rows, AudioMatchParams(), hours, set(flagged))}
    out.mkdir(parents=True, exist_ok=True)
    (out / "verify-null.json").write_text(json.dumps({"summary": summary, "rows": rows}))
    return summary


def summarise(rows: list[dict], match: AudioMatchParams, hours: float = 18.5,
              flagged: set[str] = frozenset()) -> dict:
    """The fitted calibration and, at it and at the checked-in one, recall per condition.
    Negatives from ``flagged`` tracks (they match a registered work when screened whole:
    shared material or a false match, :func:`benchmarks.scale_queries.related_negatives`) are
    left out of the fit and counted apart."""
    rows = [{**r, "condition": r["condition"] + " (flagged)"}
            if r["negative"] and r.get("source") in flagged else r for r in rows]
    negatives = [r for r in rows if r["negative"] and r.get("source") not in flagged]
    # observed null: the share of negative queries whose best check is at least this strong
    grid, rate = null_tail(rows, flagged, match.verify_min_hits)
    tail = (rate <= 0.3) & (grid < 0)
    if np.count_nonzero(tail) >= 3:
        slope, offset = np.polyfit(grid[tail], np.log10(rate[tail]), 1)
    else:
        slope, offset = 1.0, 0.0
    fitted = replace(match, verify_slope=float(slope), verify_offset=float(offset),
                     verify_per_decade=0.0)

    def recall(m: AudioMatchParams) -> dict:
        limit = log10_expected(m.min_score)

        def passes(c: dict) -> bool:
            return (c["hits"] >= m.verify_min_hits
                    and m.verify_calibrated(c["raw"], hours) <= limit + 1e-9)

        by: dict[str, list[dict]] = defaultdict(list)
        for r in rows:
            by[("neg " if r["negative"] else "") + f"{r['condition']} {r['seconds']:g}s"].append(r)
        table = {}
        for name, rs in by.items():
            if name.startswith("neg "):
                table[name] = {"queries": len(rs),
                               "false_votes": sum(r["votes_false"] for r in rs),
                               "false_checked": sum(any(passes(c) for c in r["checks"])
                                                    for r in rs)}
            else:
                table[name] = {"queries": len(rs), "votes": sum(r["votes_found"] for r in rs),
                               "votes_and_check": sum(r["votes_found"] or any(
                                   c["true"] and passes(c) for c in r["checks"]) for r in rs),
                               "false_checked": sum(any(not c["true"] and passes(c)
                                                        for c in r["checks"]) for r in rs)}
        return table

    return {"negatives": len(negatives), "null_best_raw_min": float(grid.min()) if grid.size
            else 0.0, "fitted_slope": round(float(slope), 4),
            "fitted_offset": round(float(offset), 4),
            "at_fitted": recall(fitted), "at_default": recall(match)}


def null_tail(rows: list[dict], flagged: set[str], min_hits: int) -> tuple[np.ndarray, np.ndarray]:
    """(best raw figure of each unflagged negative query, ascending; the share of those
    queries at least that strong): the observed null's survival curve."""
    best = np.sort([min([c["raw"] for c in r["checks"] if c["hits"] >= min_hits] + [0.0])
                    for r in rows if r["negative"] and r.get("source") not in flagged])
    return best, np.arange(1, best.size + 1) / max(1, best.size)


def fit_sizes(paths: list[Path], match: AudioMatchParams | None = None) -> dict:
    """One calibration over several runs (``verify-null.json``, gzipped or not, each; runs at one
    size are pooled as they come, each run's tail counted apart):
    least squares of ``log10 share = offset + per_decade * log10(hours / 18.5) + slope * raw``
    over every size's null tail (shares of 0.3 and below)."""
    match = match or AudioMatchParams()
    xs, ys = [], []
    for path in paths:
        raw_bytes = Path(path).read_bytes()
        data = json.loads(gzip.decompress(raw_bytes) if raw_bytes[:2] == b"\x1f\x8b" else raw_bytes)
        hours = data["summary"]["catalog_hours"]
        raw, share = null_tail(data["rows"], set(data["summary"].get("flagged", [])),
                               match.verify_min_hits)
        tail = (share <= 0.3) & (raw < 0)
        xs += [[1.0, np.log10(hours / 18.5), r] for r in raw[tail]]
        ys += list(np.log10(share[tail]))
    (offset, per_decade, slope), *_ = np.linalg.lstsq(np.array(xs), np.array(ys), rcond=None)
    return {"verify_offset": round(float(offset), 3),
            "verify_per_decade": round(float(per_decade), 3),
            "verify_slope": round(float(slope), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, nargs="?")
    parser.add_argument("--fit", type=Path, nargs="+", metavar="JSON",
                        help="fit one calibration to these runs' verify-null.json instead")
    parser.add_argument("--queries", type=int, default=25)
    parser.add_argument("--negatives", type=int, default=1008)
    parser.add_argument("--seed", type=int, default=11,
                        help="draws the excerpts (another seed: a held-out set)")
    parser.add_argument("--catalog", type=Path, default=None,
                        help="a catalog with stored peaks (default: the benchmark's real one; "
                        "a scale catalog built from it has its decoys' peaks too)")
    args = parser.parse_args()
    if args.fit:
        print(json.dumps(fit_sizes(args.fit)))
        return
    if args.out is None:
        parser.error("OUT is required without --fit")
    print(json.dumps(run(args.out, args.queries, args.negatives, seed=args.seed,
                         catalog_dir=args.catalog), indent=1))


if __name__ == "__main__":
    main()
