"""Video at catalog scale: ``nanhu bench scale --video-hours 1000 10000``.

The real references (the cached corpus videos, :mod:`benchmarks.scale_video_data`) beside
``hours`` of synthetic keyframes drawn with the real vectors' statistics
(:mod:`benchmarks.scale_video_synth`), in a catalog whose keyframes are compact codes
(:mod:`engine.store.vectors_compact`). Rows carry the same fields as audio's
(:mod:`benchmarks.scale_audio`) plus the shortlist's recall against exact search.

Queries are video-only fingerprints of attacked 10 s clips (no soundtrack can carry them);
negatives are clips of corpus videos that are never registered. Every query is also matched
through an exact search of the same catalog (the synthetic keyframes regenerated block by
block, no float index kept), so a row tells what the catalog's size costs (``*_exact``) apart
from what the compact codes cost. Latency is wall and CPU time per query (the cores are
shared: the load average is recorded with each row).
"""

from __future__ import annotations

import json
import logging
import shutil
import sqlite3
import time
from pathlib import Path

import numpy as np

from nanhu.benchmarks.scale_video_study import coarse_study, miss_breakdown
from nanhu.benchmarks.scale_video_synth import REFERENCE_KEYFRAMES, KeyframeModel, synthetic_ids
from nanhu.engine.catalog import Catalog
from nanhu.engine.fingerprint import Fingerprint, VideoPrint

log = logging.getLogger(__name__)

#: keyframes an hour of reference video keeps (the issue's figure: 2 a second, blank ones out)
KEYFRAMES_PER_HOUR = 6_573
FIRST_SYNTHETIC_ORDINAL = 10_000_000
SYNTH_VERSION = 1
#: how the scale catalogs are built (part of their cache name): 2 = fast-scan shortlist, the
#: engine's list count (1 trained on 20,000 keyframes, which capped it at 566 lists)
BUILD_VERSION = 2
#: positives and negatives: with 80 each, one query is 1.25 points
POSITIVES = NEGATIVES = 80
#: FAISS threads a query runs on: on 2 shared cores, two threads spin against each other (the
#: coarse search of a 20-vector query took 8.5 ms CPU on two, 0.6 ms on one)
QUERY_THREADS = 1
#: training keyframes per coarse list (FAISS wants 39+), so the engine's ``nlist_for`` holds
TRAIN_PER_LIST = 40
#: sizes past this many hours skip the exact pass by default: at 10,000 h it regenerates 65.7 M
#: keyframes and scores every query vector against them (~5 x 10^13 multiply-adds, most of an
#: hour on 2 cores); ``--video-exact-hours`` raises it
EXACT_MAX_HOURS = 1000.0


def _video_fp(vectors: np.ndarray, times: np.ndarray, digest: str) -> Fingerprint:
    from nanhu.engine.video import VideoParams

    duration = float(times.max()) + 0.5 if times.size else 0.0
    return Fingerprint(duration_s=duration, digest=digest,
                       video=VideoPrint(vectors, times, VideoParams().tag()))


def build_real_catalog(directory: Path, refs: list) -> None:
    if directory.exists():
        shutil.rmtree(directory)
    with Catalog(directory, writable=True, create=True) as catalog:
        for name, vectors, times in refs:
            catalog.add(name, _video_fp(vectors, times, f"real-{name}"))
        catalog.commit()


def build_scale_catalog(real: Path, directory: Path, hours: float, model: KeyframeModel,
                        seed: int) -> dict:
    """The real catalog plus ``hours`` of synthetic keyframes, all in one compact segment (as
    ``compact`` leaves a catalog), the quantiser trained on a sample of both."""
    from nanhu.engine.store import vectors_compact as compact
    from nanhu.engine.store.catalog_schema import manifest_version
    from nanhu.engine.store.vectors import VectorSegment
    from nanhu.engine.store.vectors_compact_segment import write_compact_segment

    started = time.perf_counter()
    if directory.exists():
        shutil.rmtree(directory)
    shutil.copytree(real, directory)
    manifest = json.loads((directory / "manifest.json").read_text())
    real_segments = [VectorSegment(directory / s["file"]) for s in manifest["video_segments"]]
    n_synth = int(hours * KEYFRAMES_PER_HOUR)
    n_real = sum(len(s) for s in real_segments)
    train_n = min(n_synth, compact.MAX_TRAIN,
                  TRAIN_PER_LIST * compact.nlist_for(n_synth + n_real) - n_real)
    sample = np.concatenate([*(s.vectors for s in real_segments),
                             model.sample(train_n, np.random.default_rng([seed, 9]))])
    quantiser = compact.Quantiser.train(sample, seed=seed, trained_on=n_synth + n_real)
    train_s = time.perf_counter() - started
    g = manifest["generation"] + 1
    qname, sname = f"video/quantiser-{g:08d}.vqz", f"video/seg-{g:08d}-c.vcx"
    qsize = quantiser.write(directory / qname)

    def blocks():
        for s in real_segments:
            yield np.asarray(s.vectors), None, s.ordinals, s.times_s
        for start, block in model.blocks(n_synth, seed):
            ordinals, times = synthetic_ids(start, len(block), first_ordinal=FIRST_SYNTHETIC_ORDINAL)
            yield block, None, ordinals, times
            log.info("video scale %g h: %.0f / %.0f h coded (%.0f s)", hours,
                        (start + len(block)) / KEYFRAMES_PER_HOUR, hours,
                        time.perf_counter() - started)

    size = write_compact_segment(directory / sname, quantiser, blocks())
    for s in manifest["video_segments"]:
        (directory / s["file"]).unlink()
    total = n_synth + n_real
    manifest.update(generation=g, video_segments=[],
                    video_compact=[{"file": sname, "count": total, "bytes": size}],
                    video_quantiser={"file": qname, "bytes": qsize, "trained_on": total,
                                     "nlist": int(quantiser.shortlist.nlist)})
    manifest["version"] = manifest_version(manifest)
    n_refs = -(-n_synth // REFERENCE_KEYFRAMES)
    seconds = REFERENCE_KEYFRAMES * 3600.0 / KEYFRAMES_PER_HOUR
    with sqlite3.connect(directory / "meta.sqlite") as db:
        db.executemany(
            "INSERT INTO refs (ordinal, ref_id, duration_s, digest, n_hashes, n_keyframes, "
            "created_at, generation) VALUES (?,?,?,?,?,?,?,?)",
            ((FIRST_SYNTHETIC_ORDINAL + i, f"synthetic-{i}", seconds, f"syn-{i}", 0,
              REFERENCE_KEYFRAMES, 0.0, g) for i in range(n_refs)))
    (directory / "manifest.json").write_text(json.dumps(manifest))
    return {"synthetic_hours": hours, "synthetic_keyframes": n_synth, "bytes": size + qsize,
            "train_s": train_s, "build_s": time.perf_counter() - started,
            "nlist": int(quantiser.shortlist.nlist), "train_rows": int(len(sample)),
            "shortlist_codes": compact.SHORTLIST_CODES,
            "rerank_codes": f"IVF{quantiser.rerank.nlist},{compact.RERANK_CODES}",
            "quantiser_version": quantiser.version}


class ExactNeighbours:
    """Stands in for a catalog's vector index: answers the bench's query vectors from an
    exact pass made beforehand (:func:`exact_neighbours`), so the matcher aligns what exact
    search would have given it over the same catalog."""

    def __init__(self, vectors: np.ndarray, ordinals, times, sims, count: int) -> None:
        self.dim, self.count = vectors.shape[1], count
        self._row_of = {v.tobytes(): i for i, v in enumerate(vectors)}
        self._answers = ordinals, times, sims

    def __len__(self) -> int:
        return self.count

    def search(self, queries: np.ndarray, k: int):
        rows = [self._row_of[np.ascontiguousarray(q, np.float32).tobytes()] for q in queries]
        return tuple(a[rows, :k] for a in self._answers)


def _queries(data: dict) -> tuple[list, list]:
    names = [r[0] for r in data["refs"]]
    positives = [(names[i], _video_fp(v, t, "q")) for i, _, _, v, t in data["positives"]]
    negatives = [(f"held-{j}", _video_fp(v, t, "n")) for j, _, v, t in data["negatives"]]
    return positives, negatives


def _match_all(matcher, positives: list, negatives: list) -> dict:
    """Top-1, false matches, and wall / CPU milliseconds of each query (positives first)."""
    wall, cpu, correct, false = [], [], 0, 0
    for i, (ref_id, fp) in enumerate(positives + negatives):
        t0, c0 = time.perf_counter(), time.process_time()
        matches = matcher.match(fp)
        wall.append((time.perf_counter() - t0) * 1000)
        cpu.append((time.process_time() - c0) * 1000)
        if i < len(positives):
            correct += bool(matches and matches[0].reference_id == ref_id)
        else:
            false += bool(matches)
    return {"top1": correct / max(1, len(positives)), "false": false, "wall": wall, "cpu": cpu}


def measure(directory: Path, data: dict, exact: ExactNeighbours | None = None) -> dict:
    """Match every query through the catalog's index (and through ``exact``, when given, for
    the ``*_exact`` fields); the index search alone is timed once more per query. Queries run
    on one FAISS thread (:data:`QUERY_THREADS`); building and the exact pass use them all."""
    import faiss

    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(QUERY_THREADS)
    try:
        return _measure(directory, data, exact)
    finally:
        faiss.omp_set_num_threads(threads)


def _measure(directory: Path, data: dict, exact: ExactNeighbours | None) -> dict:
    import os

    from nanhu.benchmarks.scale_audio import _rss_mb
    from nanhu.engine.matcher import Matcher

    catalog = Catalog(directory)
    matcher = Matcher(catalog)
    positives, negatives = _queries(data)
    opened = time.perf_counter()
    index = catalog.vectors()  # opened before timing
    open_s = time.perf_counter() - opened
    matcher.match(positives[0][1])
    load_before = os.getloadavg()[0]
    got = _match_all(matcher, positives, negatives)
    search_ms = []
    for _, fp in positives + negatives:
        c0 = time.process_time()
        index.search(fp.video.vectors, 32)
        search_ms.append((time.process_time() - c0) * 1000)
    stats = catalog.stats()
    rss, anon = _rss_mb()
    pct = lambda values, q: float(np.percentile(values, q))  # noqa: E731
    row = {
        "hours": stats["hours"], "queries": len(positives), "negatives": len(negatives),
        "top1_recall": got["top1"], "false_matches": got["false"],
        "match_ms_p50": pct(got["wall"], 50), "match_ms_p99": pct(got["wall"], 99),
        "match_cpu_ms_p50": pct(got["cpu"], 50), "match_cpu_ms_p99": pct(got["cpu"], 99),
        "search_cpu_ms_p50": pct(search_ms, 50), "search_cpu_ms_p99": pct(search_ms, 99),
        "loadavg_1min": [load_before, os.getloadavg()[0]], "open_s": open_s,
        "query_threads": QUERY_THREADS,
        "rss_mb": rss, "rss_anon_mb": anon, "keyframes": int(len(index)),
        "query_vectors_mean": float(np.mean([len(fp.video) for _, fp in positives])),
        "index_bytes_per_hour": stats["video_index_bytes"] / max(stats["hours"], 1e-9),
    }
    if exact is not None:
        catalog._vectors = exact  # the matcher asks the catalog for its index on every query
        twin = _match_all(matcher, positives, negatives)
        row.update(top1_recall_exact=twin["top1"], false_matches_exact=twin["false"],
                   match_cpu_ms_p50_exact=pct(twin["cpu"], 50))
    catalog.close()
    return row


def exact_neighbours(directory: Path, real: Path, data: dict, model: KeyframeModel,
                     hours: float, seed: int, *, k: int = 32) -> tuple[dict, ExactNeighbours]:
    """An exact flat pass over every keyframe (the synthetic ones regenerated block by block)
    for every query vector: recall@k of the compact index's rows against it (positives'
    vectors), and the exact answers as an index for :func:`measure`."""
    import faiss

    from nanhu.engine.store.vectors import VectorSegment

    n_pos = sum(len(p[3]) for p in data["positives"])
    queries = np.ascontiguousarray(np.concatenate(
        [p[3] for p in data["positives"]] + [n[2] for n in data["negatives"]]), np.float32)
    manifest = json.loads((real / "manifest.json").read_text())
    real_segments = [VectorSegment(real / s["file"]) for s in manifest["video_segments"]]
    real_vectors = np.concatenate([s.vectors for s in real_segments])
    best_s = np.full((len(queries), k), -np.inf, np.float32)
    best_r = np.full((len(queries), k), -1, np.int64)

    def fold(vectors, offset):
        nonlocal best_s, best_r
        flat = faiss.IndexFlatIP(vectors.shape[1])
        flat.add(np.ascontiguousarray(vectors))
        s, r = flat.search(queries, k)
        s_all = np.concatenate([best_s, s], 1)
        r_all = np.concatenate([best_r, r + offset], 1)
        top = np.argsort(-s_all, 1, kind="stable")[:, :k]
        best_s, best_r = np.take_along_axis(s_all, top, 1), np.take_along_axis(r_all, top, 1)

    fold(real_vectors, 0)
    n_synth = int(hours * KEYFRAMES_PER_HOUR)
    for start, block in model.blocks(n_synth, seed):
        fold(block, len(real_vectors) + start)
    with Catalog(directory) as catalog:
        _, rows = catalog.vectors().search_rows(queries[:n_pos], k)
    recall = float(np.mean([np.isin(e, f).mean() for e, f in zip(best_r[:n_pos], rows)]))
    top1 = float(np.mean(rows[:, 0] == best_r[:n_pos, 0]))
    real_ords = np.concatenate([s.ordinals for s in real_segments]).astype(np.int64)
    real_times = np.concatenate([s.times_s for s in real_segments])
    found = best_r >= 0
    synth = np.where(found & (best_r >= len(real_vectors)), best_r - len(real_vectors), 0)
    s_ords = FIRST_SYNTHETIC_ORDINAL + synth // REFERENCE_KEYFRAMES
    s_times = (synth % REFERENCE_KEYFRAMES) * 0.5
    is_real = found & (best_r < len(real_vectors))
    safe = np.where(is_real, best_r, 0)
    ordinals = np.where(is_real, real_ords[safe], np.where(found, s_ords, -1))
    times = np.where(is_real, real_times[safe], np.where(found, s_times, 0)).astype(np.float32)
    sims = np.where(found, best_s, -np.inf).astype(np.float32)
    answers = ExactNeighbours(queries, ordinals, times, sims, len(real_vectors) + n_synth)
    return ({"recall_at_32_vs_exact": recall, "top1_row_vs_exact": top1,
             "exact_query_vectors": int(n_pos)}, answers)


def add_one_hour(directory: Path, model: KeyframeModel, seed: int) -> float:
    """Seconds to register and commit one more hour (coded with the catalog's quantiser),
    deleted again after (untimed)."""
    vectors = model.sample(KEYFRAMES_PER_HOUR, np.random.default_rng([seed, 31]))
    times = (np.arange(KEYFRAMES_PER_HOUR) * 0.5).astype(np.float32)
    with Catalog(directory, writable=True) as catalog:
        started = time.perf_counter()
        catalog.add("added-hour", _video_fp(vectors, times, f"add-{seed}"))
        catalog.commit()
        elapsed = time.perf_counter() - started
        catalog.delete("added-hour")
        catalog.commit()
    return elapsed


def run_video_scale(hours: list[float], *, seed: int = 0, positives: int = POSITIVES,
                    negatives: int = NEGATIVES, out: Path | None = None,
                    exact_max_hours: float = EXACT_MAX_HOURS) -> list[dict]:
    """Rows for the real catalog alone (exact) and with each size of synthetic keyframes; the
    exact pass (``*_exact``, recall@32) for sizes up to ``exact_max_hours``."""
    from nanhu.benchmarks.corpus.cache import cache_dir
    from nanhu.benchmarks.scale_video_data import real_video_set
    from nanhu.engine.video import VideoParams

    cache = cache_dir()
    bench = cache / "bench"
    data = real_video_set(bench, cache, positives=positives, negatives=negatives, seed=seed)
    model = KeyframeModel.fit([r[1] for r in data["refs"]])
    tag = VideoParams().tag()
    real = bench / f"video-scale-{tag}-s{SYNTH_VERSION}-real"
    if not (real / "manifest.json").exists():
        build_real_catalog(real, data["refs"])
    rows = []
    for size in [0.0, *sorted(hours)]:
        if size == 0:
            directory, build = real, {"build_s": None, "synthetic_hours": 0.0}
        else:
            directory = bench / f"video-scale-{tag}-s{SYNTH_VERSION}-b{BUILD_VERSION}-{size:g}h"
            info = directory / "scale.json"
            if info.exists():
                build = json.loads(info.read_text())
            else:
                build = build_scale_catalog(real, directory, size, model, seed)
                info.write_text(json.dumps(build))
        if size == 0:
            recall, exact = {}, None
        elif size > exact_max_hours:
            recall, exact = {"exact_pass": f"skipped past {exact_max_hours:g} h"}, None
        else:
            recall, exact = exact_neighbours(directory, real, data, model, size, seed)
        row = measure(directory, data, exact)
        row.update(recall)
        row.update(build_s=build.get("build_s"), synthetic_hours=build["synthetic_hours"],
                   format=tag, index="exact" if size == 0 else "compact")
        if size:
            queries = np.concatenate([p[3] for p in data["positives"]])
            row.update(coarse_study(directory, model, queries, seed))
            row["positives_lost"] = miss_breakdown(directory, data)
            row["add_one_hour_s"] = add_one_hour(directory, model, seed)
            row.update({k: build[k] for k in ("train_s", "nlist", "train_rows",
                                              "shortlist_codes", "rerank_codes",
                                              "quantiser_version") if k in build})
        rows.append(row)
        log.info("video scale: %s", json.dumps(row))
        if out is not None:
            write_rows(out, rows)
    return rows


def write_rows(out: Path, rows: list[dict]) -> None:
    """Put ``rows`` under "video" in ``out/scale-results.json`` (audio's rows kept)."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / "scale-results.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    results["video"] = rows
    path.write_text(json.dumps(results, indent=1, default=float))
