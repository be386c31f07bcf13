"""Audio at catalog scale: real references among N hours of decoys, real queries, the null.

Decoys follow the real key distribution: each synthetic reference is a real corpus reference's
spectral peaks played backwards, transposed 3-6 semitones up or down at a tempo of 0.90-1.10
(drawn per decoy), then keyed exactly as a registration is. Intervals, chords and rhythms are
real music's, while no decoy is reachable by any query warp: warps are monotone in time, so no
speed or pitch change maps a passage onto its reversal. (Decoys of version 1 were transposed
only; a transposition of 3 semitones at tempo 1.10 sits 1.35 semitones off the resampling line,
where a sped-up query's warps reach it: at 10,000 h, with 540 decoys of every real track, such
a derived decoy outvoted the true reference for a third of the speed-1.1 queries.)
Decoys are written in chunks of ``CHUNK_HOURS`` and merged into one segment with the catalog's
own :func:`engine.store.postings_write.merge_segments` (the compaction path), so building 10,000 h
also measures compaction at that size.

Per size the run reports latency (match only, one process, one thread), top-1 recall on real
attacked excerpts (clean, mp3, pink 5 dB, speed 1.1), false matches on never-registered music,
resident memory, index bytes per hour, the build time and the time to register one more hour.
:func:`benchmarks.scale_null.null_records` screens thousands of never-registered queries with the thresholds
off and records each one's best chance figure, for the predicted-against-observed plot.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sqlite3
import time
from pathlib import Path

import numpy as np

from nanhu.benchmarks.scale_null import best_poisson, null_records, rule_table
from nanhu.benchmarks.scale_queries import (  # noqa: F401 - re-exported for importers
    ATTACK_RATE,
    QUERY_CONDITIONS,
    cached_query_set,
    queries_file,
    query_set,
    related_negatives,
)
from nanhu.engine.audio.align import AudioMatchParams
from nanhu.engine.audio.keys import KEY_BITS, Landmarks, triplet_hashes
from nanhu.engine.audio.params import AudioParams
from nanhu.engine.audio.peaks import Peaks, stream_peaks
from nanhu.engine.catalog import Catalog
from nanhu.engine.fingerprint import Fingerprint
from nanhu.engine.matcher import Matcher
from nanhu.engine.media import decode_audio
from nanhu.engine.store.audio_peaks import merge_peak_segments, write_peak_segment
from nanhu.engine.store.postings_write import merge_segments, write_segment

log = logging.getLogger(__name__)

FIRST_SYNTHETIC_ORDINAL = 10_000_000
CHUNK_HOURS = 250.0


def _rss_mb() -> tuple[float, float]:
    """(VmRSS, RssAnon) of this process in MiB: mapped index pages count in the first only."""
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        name, _, value = line.partition(":")
        fields[name] = value.strip()
    kb = lambda name: float(fields.get(name, "0 kB").split()[0])  # noqa: E731
    return kb("VmRSS") / 1024, kb("RssAnon") / 1024


def corpus_peaks(corpus: dict, params: AudioParams, cache: Path) -> list[Peaks]:
    """Spectral peaks of every corpus reference, cached as one npz (no pickle)."""
    path = cache / f"peaks-{params.tag()}-{len(corpus['references'])}.npz"
    if path.exists():
        with np.load(path) as data:
            frames, log_freq, bounds = data["frames"], data["log_freq"], data["bounds"]
    else:
        pieces = []
        for ref in corpus["references"]:
            peaks, _ = stream_peaks(decode_audio(ref["path"], sample_rate=params.sample_rate),
                                    params=params)
            pieces.append(peaks)
        frames = np.concatenate([p.frame for p in pieces])
        log_freq = np.concatenate([p.log_freq for p in pieces])
        bounds = np.cumsum([0] + [len(p) for p in pieces])
        cache.mkdir(parents=True, exist_ok=True)
        np.savez(path, frames=frames, log_freq=log_freq, bounds=bounds)
    ones = np.ones(0, np.float32)
    return [Peaks(frames[a:b], log_freq[a:b], ones) for a, b in zip(bounds[:-1], bounds[1:])]


#: version of :func:`decoy` (cached scale catalogs are named with it)
DECOY_VERSION = 2


def decoy(peaks: Peaks, rng: np.random.Generator, params: AudioParams) -> Landmarks:
    """One synthetic reference: ``peaks`` time-reversed, transposed 3-6 semitones (random sign)
    at a random tempo of 0.90-1.10, keyed as a registration."""
    return triplet_hashes(decoy_peaks(peaks, rng, params), params=params)


def decoy_peaks(peaks: Peaks, rng: np.random.Generator, params: AudioParams) -> Peaks:
    """The peaks of :func:`decoy` (what a catalog stores for the peak check)."""
    semitones = rng.uniform(3.0, 6.0) * rng.choice([-1.0, 1.0])
    tempo = rng.uniform(0.90, 1.10)
    last = int(peaks.frame.max()) if len(peaks) else 0
    # reversed in time: peaks sorted by frame again (frequency order within a frame kept)
    order = np.lexsort((peaks.log_freq, -peaks.frame))
    frames = np.rint((last - peaks.frame[order]) / tempo).astype(np.int64)
    log_freq = (peaks.log_freq[order] + params.bins_per_octave * semitones / 12).astype(np.float32)
    return Peaks(frames, log_freq, np.ones(frames.size, np.float32))


def build_scale_catalog(real_catalog: Path, directory: Path, hours: float, seed: int,
                        peaks: list[Peaks], params: AudioParams) -> dict:
    """Copy the real catalog and add ``hours`` of decoys as one merged segment; with the real
    catalog's reference peaks (format 5), the decoys' peaks too, for the peak check."""
    started = time.perf_counter()
    if directory.exists():
        shutil.rmtree(directory)
    (directory / "audio").mkdir(parents=True)
    (directory / "video").mkdir()
    manifest = json.loads((real_catalog / "manifest.json").read_text())
    for entry in manifest["audio_segments"] + manifest.get("audio_peaks", []):
        os.link(real_catalog / entry["file"], directory / entry["file"])
    with_peaks = bool(manifest.get("audio_peaks"))
    peak_items, peak_chunks = [], []
    shutil.copy(real_catalog / "meta.sqlite", directory / "meta.sqlite")
    fps = params.frames_per_second
    rng = np.random.default_rng(seed)
    rows, chunks, made_s = [], [], 0.0
    keys, ords, frames, chunk_s = [], [], [], 0.0
    while made_s < hours * 3600:
        source = peaks[int(rng.integers(len(peaks)))]
        if len(source) < 100:
            continue
        made = decoy_peaks(source, rng, params)
        landmarks = triplet_hashes(made, params=params)
        ordinal = FIRST_SYNTHETIC_ORDINAL + len(rows)
        if with_peaks:
            peak_items.append((ordinal, made.frame, made.log_freq))
        duration = float(landmarks.frames.max() + 1) / fps if len(landmarks) else 0.0
        rows.append((ordinal, f"synthetic-{len(rows)}", duration, len(landmarks)))
        keys.append(landmarks.hashes)
        ords.append(np.full(len(landmarks), ordinal, np.uint32))
        frames.append(landmarks.frames)
        made_s += duration
        chunk_s += duration
        if chunk_s >= CHUNK_HOURS * 3600 or made_s >= hours * 3600:
            path = directory / "audio" / f"synthetic-chunk-{len(chunks):04d}.pst"
            write_segment(path, np.concatenate(keys), np.concatenate(ords), np.concatenate(frames),
                          key_bits=KEY_BITS)
            chunks.append(path)
            keys, ords, frames, chunk_s = [], [], [], 0.0
            if with_peaks:
                peak_chunks.append(path.with_suffix(".apk"))
                write_peak_segment(peak_chunks[-1], peak_items)
                peak_items = []
            log.info("scale %g h: decoys %.0f / %.0f h (%.0f s)", hours, made_s / 3600, hours,
                     time.perf_counter() - started)
    generated_s = time.perf_counter() - started
    merged = directory / "audio" / "seg-synthetic.pst"
    merge_started = time.perf_counter()
    info = merge_segments(chunks, merged, key_bits=KEY_BITS, partitions=1024)
    merge_s = time.perf_counter() - merge_started
    for path in chunks:
        path.unlink()
    if peak_chunks:
        merged_peaks = merge_peak_segments(peak_chunks, directory / "audio" / "seg-synthetic.apk")
        for path in peak_chunks:
            path.unlink()
        manifest["audio_peaks"] = [*manifest["audio_peaks"], {
            "file": "audio/seg-synthetic.apk", "count": merged_peaks["peaks"],
            "bytes": merged_peaks["bytes"]}]
    with sqlite3.connect(directory / "meta.sqlite") as db:
        db.executemany(
            "INSERT INTO refs (ordinal, ref_id, duration_s, digest, n_hashes, created_at, "
            "generation) VALUES (?,?,?,?,?,?,?)",
            ((o, name, d, f"syn-{o}", n, 0.0, manifest["generation"]) for o, name, d, n in rows))
    manifest["audio_segments"] = [*manifest["audio_segments"],
                                  {"file": "audio/seg-synthetic.pst", "count": info["count"],
                                   "bytes": info["bytes"]}]
    (directory / "manifest.json").write_text(json.dumps(manifest))
    return {"synthetic_hours": made_s / 3600, "synthetic_references": len(rows),
            "postings": info["count"], "bytes": info["bytes"], "build_s": time.perf_counter() - started,
            "generate_s": generated_s, "merge_s": merge_s}


def add_one_hour(directory: Path, peaks: list[Peaks], params: AudioParams, seed: int) -> float:
    """Seconds to register and commit one more hour of (decoy) references, then delete them
    again (a second commit, not timed) so the cached catalog keeps its size."""
    rng = np.random.default_rng([seed, 77])
    fps = params.frames_per_second
    fingerprints, total = [], 0.0
    while total < 3600:
        landmarks = decoy(peaks[int(rng.integers(len(peaks)))], rng, params)
        if not len(landmarks):
            continue
        duration = float(landmarks.frames.max() + 1) / fps
        fingerprints.append(Fingerprint(duration_s=duration, digest=f"add-{seed}-{total}",
                                        audio=landmarks, audio_params_tag=params.tag()))
        total += duration
    with Catalog(directory, writable=True) as catalog:
        started = time.perf_counter()
        for n, fp in enumerate(fingerprints):
            catalog.add(f"added-hour-{n}", fp)
        catalog.commit()
        elapsed = time.perf_counter() - started
        for n in range(len(fingerprints)):
            catalog.delete(f"added-hour-{n}")
        catalog.commit()
    return elapsed


def measure(directory: Path, positives: list, negatives: list,
            match: AudioMatchParams | None = None, flagged: set[str] = frozenset()) -> dict:
    """Latency, recall and false matches of the query sets against one catalog; false matches
    are also counted without the ``flagged`` negative tracks (:func:`related_negatives`)."""
    catalog = Catalog(directory)
    matcher = Matcher(catalog, audio_match=match)
    if positives:
        matcher.match(positives[0][2])  # map the segments before timing
    latencies, cpu, correct, by_condition = [], [], 0, {}
    for ref_id, condition, fp in positives:
        t0, c0 = time.perf_counter(), time.thread_time()
        matches = matcher.match(fp)
        latencies.append((time.perf_counter() - t0) * 1000)
        cpu.append((time.thread_time() - c0) * 1000)
        hit = bool(matches and matches[0].reference_id == ref_id)
        correct += hit
        by_condition.setdefault(condition, []).append(hit)
    false = []
    for source, fp in negatives:
        t0, c0 = time.perf_counter(), time.thread_time()
        matches = matcher.match(fp)
        latencies.append((time.perf_counter() - t0) * 1000)
        cpu.append((time.thread_time() - c0) * 1000)
        if matches:
            false.append({"negative": source, "reference_id": matches[0].reference_id,
                          "expected_false_matches": matches[0].to_dict()["expected_false_matches"],
                          "aligned_hashes": matches[0].evidence.get("aligned_hashes")})
    stats = catalog.stats()
    rss, anon = _rss_mb()
    catalog.close()
    return {
        "hours": stats["hours"], "queries": len(positives), "negatives": len(negatives),
        "top1_recall": correct / max(1, len(positives)),
        "recall_by_condition": {c: float(np.mean(v)) for c, v in by_condition.items()},
        "false_matches": len(false),
        "false_matches_unflagged": sum(f["negative"] not in flagged for f in false),
        "negatives_unflagged": sum(src not in flagged for src, _ in negatives),
        "false_match_list": false[:30],
        # wall time and the matching thread's CPU time (which a machine shared with other work
        # inflates less), pooled and by query set: positives stop at the first look that
        # covers them, never-registered negatives run every look
        **_percentiles("match_ms", latencies, len(positives)),
        **_percentiles("match_cpu_ms", cpu, len(positives)),
        "rss_mb": rss, "rss_anon_mb": anon,
        "index_bytes_per_hour": stats["audio_index_bytes"] / max(stats["hours"], 1e-9),
    }


def _percentiles(name: str, values: list[float], n_positives: int) -> dict:
    """p50/p99 of ``values`` (positives first, then negatives): ``{name}_p50`` of all of them,
    ``{name}_p50_positives`` and ``{name}_p50_negatives`` of each set, and the same for p99."""
    out = {}
    parts = {"": values, "positives": values[:n_positives], "negatives": values[n_positives:]}
    for part, vals in parts.items():
        suffix = f"_{part}" if part else ""
        for q in (50, 99):
            out[f"{name}_p{q}{suffix}"] = float(np.percentile(vals, q)) if vals else None
    return out


_SERVING = """
import json, sys, numpy as np
from nanhu.benchmarks.scale_audio import _rss_mb
from nanhu.engine.catalog import Catalog
from nanhu.engine.fingerprint import Fingerprint
from nanhu.engine.matcher import Matcher
with np.load(sys.argv[2]) as data:
    blob, bounds = data["blob"], data["bounds"]
n = min(int(sys.argv[3]), bounds.size - 1)
fps = [Fingerprint.from_bytes(blob[a:b].tobytes()) for a, b in zip(bounds[:n], bounds[1:n + 1])]
del blob
before = _rss_mb()
matcher = Matcher(Catalog(sys.argv[1]))
for fp in fps:
    matcher.match(fp)
after = _rss_mb()
print(json.dumps({"queries": n, "before_mb": before, "after_mb": after}))
"""


def serving_memory(directory: Path, queries_file: Path, n: int = 1000) -> dict:
    """Resident memory of a fresh process that opens the catalog and screens ``n`` cached
    queries: VmRSS and RssAnon after, less what the loaded queries themselves hold. Mapped
    index pages count in VmRSS only (the kernel may drop them); RssAnon is the heap."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", _SERVING, str(directory), str(queries_file),
                           str(n)], capture_output=True, text=True, check=True)
    out = json.loads(done.stdout.strip().splitlines()[-1])
    (rss0, anon0), (rss1, anon1) = out["before_mb"], out["after_mb"]
    return {"serving_rss_mb": rss1 - rss0, "serving_rss_anon_mb": anon1 - anon0,
            "serving_queries": out["queries"]}


def run_scale_series(hours: list[float], *, seed: int = 0, positives: int = 100,
                     negatives: int = 1000, null_queries: int = 0, out: Path | None = None,
                     params: AudioParams | None = None, match: AudioMatchParams | None = None,
                     add_hour: bool = True, with_real: bool = True,
                     null_limit: int | None = None, keys_on_demand: bool = True) -> dict:
    """The scale benchmark: the real catalog alone, then with ``hours`` of decoys each.

    ``keys_on_demand``: queries keep their peaks and are keyed by the matcher, as the server
    screens an upload, so the peak check runs on them (False: keyed whole, votes alone)."""
    from nanhu.benchmarks.audio_bench import _corpus_key, build_catalog
    from nanhu.benchmarks.corpus.audio import cache_dir, load_audio_corpus

    params = params or AudioParams()
    corpus = load_audio_corpus()
    bench = cache_dir() / "bench"
    real = bench / f"audio-catalog-{params.tag()}-{_corpus_key(corpus)}"
    if not (real / "build.json").exists():
        shutil.rmtree(real, ignore_errors=True)
        (real.parent).mkdir(parents=True, exist_ok=True)
        (real / "build.json").parent.mkdir(parents=True, exist_ok=True)
        build = build_catalog(corpus, real, params)
        (real / "build.json").write_text(json.dumps(build))
    started = time.perf_counter()
    related = related_negatives(corpus, real, params)
    log.info("scale: negative tracks that match a reference when screened whole (flagged): %s",
             related)
    pos, neg = cached_query_set(bench, corpus, params, positives=positives,
                                negatives=max(negatives, null_queries), seed=seed,
                                keys_on_demand=keys_on_demand)
    log.info("scale: %d + %d query fingerprints in %.0f s", len(pos), len(neg),
             time.perf_counter() - started)
    peaks = corpus_peaks(corpus, params, bench)
    results, nulls, null_segments, positive_segments = [], {}, {}, {}
    for size in [0.0, *sorted(hours)] if with_real else sorted(hours):
        if size == 0:
            directory, build = real, {"build_s": None, "synthetic_hours": 0.0}
        else:
            directory = bench / f"audio-scale-{params.tag()}-d{DECOY_VERSION}-{int(size)}h"
            info_path = directory / "scale.json"
            if info_path.exists():
                build = json.loads(info_path.read_text())
            else:
                build = build_scale_catalog(real, directory, size, seed, peaks, params)
                info_path.write_text(json.dumps(build))
        row = measure(directory, pos, neg[:negatives], match, flagged=set(related))
        row.update(build_s=build.get("build_s"), synthetic_hours=build["synthetic_hours"],
                   format=params.tag(), keys_on_demand=keys_on_demand)
        row.update(serving_memory(directory, queries_file(
            bench, corpus, params, positives=positives, negatives=max(negatives, null_queries),
            seed=seed, keys_on_demand=keys_on_demand), n=min(300, positives + negatives)))
        if size and add_hour:
            row["add_one_hour_s"] = add_one_hour(directory, peaks, params, seed)
        if null_queries:
            key = f"{row['hours']:.0f}"
            null_segments[key] = null_records(directory,
                                              [fp for _, fp in neg[:null_limit or null_queries]],
                                              match=match)
            nulls[key] = best_poisson(null_segments[key])
            positive_segments[key] = null_records(directory, [fp for _, _, fp in pos],
                                                  truth=[r for r, _, _ in pos], match=match)
        results.append(row)
        log.info("scale: %s", json.dumps(row))
        if out is not None:
            _write(out, results, nulls, null_segments, positive_segments, neg[:null_queries],
                   related, match)
    rules = _rules(null_segments, positive_segments, neg[:null_queries], related, match)
    return {"audio": results, "null_log10_chance": nulls, "related_negatives": related,
            "null_sources": [src for src, _ in neg[:null_queries]], "rules": rules}


def _rules(null_segments: dict, positive_segments: dict, negatives: list, related: dict,
           match: AudioMatchParams | None) -> list[dict]:
    if not null_segments:
        return []
    return rule_table(null_segments, positive_segments, sources=[src for src, _ in negatives],
                      flagged=set(related), calibrate=(match or AudioMatchParams()).calibrated)


def _write(out: Path, results: list, nulls: dict, null_segments: dict, positive_segments: dict,
           negatives: list, related: dict, match: AudioMatchParams | None) -> None:
    """scale-results.json (rows, the null's best figures, the rule table) and
    scale-null-records.json (every relaxed segment, for refitting offline)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "scale-results.json").write_text(json.dumps(
        {"audio": results, "null_log10_chance": nulls,
         "null_sources": [src for src, _ in negatives], "related_negatives": related,
         "rules": _rules(null_segments, positive_segments, negatives, related, match)},
        indent=1, default=float))
    (out / "scale-null-records.json").write_text(json.dumps(
        {"null": null_segments, "positives": positive_segments}, default=float))
