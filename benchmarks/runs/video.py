"""The video recall benchmark: real footage, pirates' attacks, a PDQ baseline, false matches,
localisation, µAP, speed, latency at corpus size and at a million keyframes, index size.

``run_video_bench(out_dir, quick=...)`` builds (or reuses, under ``<cache>/bench``) a catalog of
the video corpus references (audio + video, ``fingerprint_media``) and the vPDQ baseline's
reference hashes, cuts clips of 5, 10 and 30 s at seeded random offsets, attacks them
(:mod:`benchmarks.attacks.video`), encodes each to H.264 mp4 and screens the file's bytes three
ways: Nanhu fused (``fingerprint_media(query=True)`` + ``Matcher.match``), Nanhu video only (the
same fingerprint with ``audio=None``, so the soundtrack cannot carry recall) and vPDQ
(:mod:`benchmarks.peers.pdq`). Never-registered negative videos, excerpted and attacked the
same way, count false matches.

The steps: screening the queries (:mod:`benchmarks.runs.video_screening`), the measures and
their definitions (:mod:`benchmarks.runs.video_measures`), the test at a million keyframes
(:mod:`benchmarks.runs.video_scale`) and the report section (:mod:`benchmarks.runs.video_report`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import resource
import shutil
import time
from pathlib import Path

import av
import numpy as np

from nanhu.benchmarks.attacks.video import ATTACKS
from nanhu.benchmarks.attacks.video_clips import WORK_SIZE
from nanhu.benchmarks.peers import pdq
from nanhu.benchmarks.runs.video_measures import summarise
from nanhu.benchmarks.runs.video_report import video_markdown, video_plots
from nanhu.benchmarks.runs.video_scale import scale_test
from nanhu.benchmarks.runs.video_screening import (
    Screener,
    _picks,
    _progress,
    screen_negatives,
    screen_positives,
)
from nanhu.engine.catalog import Catalog
from nanhu.engine.fingerprint import fingerprint_media
from nanhu.engine.matcher import Matcher

log = logging.getLogger(__name__)

LENGTHS = (5.0, 10.0, 30.0)
PDQ_REFERENCE_SIZE = (640, 360)


def _file_key(entries: list[dict]) -> str:
    stats = [(e["id"], Path(e["path"]).stat().st_size, Path(e["path"]).stat().st_mtime_ns)
             for e in entries]
    return hashlib.sha256(json.dumps(stats).encode()).hexdigest()[:12]


def _params_key() -> str:
    """The fingerprint parameter versions (a catalog is only reused for the same ones)."""
    from nanhu.engine.audio.params import AudioParams
    from nanhu.engine.video import VideoParams

    return f"{AudioParams().tag()}-{VideoParams().tag()}"


def catalog_matches_code(directory: Path, ref: dict) -> bool:
    """True when fingerprinting ``ref`` now gives what the cached catalog holds for it: the same
    number of audio hashes and the same keyframe vectors and times (the engine may change
    without a version bump while it is developed; then the catalog is rebuilt)."""
    from nanhu.engine.store.vectors import VectorSegment

    fp = fingerprint_media(ref["path"])
    with Catalog(directory) as catalog:
        stored = catalog.get(ref["id"])
        n_video = len(fp.video) if fp.video is not None else 0
        if stored.n_hashes != (len(fp.audio) if fp.audio is not None else 0) or (
                stored.n_keyframes != n_video):
            return False
        if n_video == 0:
            return True
        rows = [(s.vectors[s.ordinals == stored.ordinal], s.times_s[s.ordinals == stored.ordinal])
                for s in (VectorSegment(directory / f["file"])
                          for f in catalog.manifest["video_segments"])]
    vectors = np.concatenate([r[0] for r in rows])
    times = np.concatenate([r[1] for r in rows])
    return (vectors.shape == fp.video.vectors.shape
            and np.allclose(vectors, fp.video.vectors, atol=1e-5)
            and np.allclose(times, fp.video.times_s, atol=1e-4))


# ---------------------------------------------------------------------------- building
def build_catalog(refs: list[dict], directory: Path) -> dict:
    """Register every reference (audio + video); returns build figures (times are wall, s)."""
    if directory.exists():
        shutil.rmtree(directory)
    media_s = fingerprint_s = 0.0
    started = time.perf_counter()
    with Catalog(directory, writable=True, create=True) as catalog:
        for number, ref in enumerate(refs, 1):
            t0 = time.perf_counter()
            fp = fingerprint_media(ref["path"])
            fingerprint_s += time.perf_counter() - t0
            media_s += ref["duration_s"]
            catalog.add(ref["id"], fp, title=ref["id"])
            if number % 10 == 0:
                catalog.commit()
                _progress(number, len(refs), "registering video references", started)
        catalog.commit()
        catalog.compact()
        stats = catalog.stats()
    build = {
        "references": stats["references"], "media_hours": media_s / 3600,
        "fingerprint_s": fingerprint_s, "x_realtime": media_s / max(fingerprint_s, 1e-9),
        "keyframes": stats["keyframes"], "video_index_bytes": stats["video_index_bytes"],
        "audio_index_bytes": stats["audio_index_bytes"], "video_params": stats["video_params"],
    }
    (directory / "build.json").write_text(json.dumps(build))
    return build


def pdq_indexes(refs: list[dict], cache: Path) -> tuple[dict[str, pdq.VpdqIndex], dict]:
    """vPDQ reference hashes at 5 fps (cached per file), loaded into two brute-force indexes:
    ``"1fps"`` (the standard sampling, taken from the 5 fps hashes) and ``"5fps"``."""
    cache.mkdir(parents=True, exist_ok=True)
    indexes = {"1fps": pdq.VpdqIndex(), "5fps": pdq.VpdqIndex()}
    hashed_s = media_s = 0.0
    for ref in refs:
        path = cache / f"{ref['id']}-{_file_key([ref])}-5fps.npz"
        if path.exists():
            frames = pdq.load_frames(path)
        else:
            t0 = time.perf_counter()
            frames = pdq.hash_video(ref["path"], every_s=0.2, size=PDQ_REFERENCE_SIZE)
            hashed_s += time.perf_counter() - t0
            media_s += ref["duration_s"]
            pdq.save_frames(path, frames)
        indexes["5fps"].add(ref["id"], frames)
        indexes["1fps"].add(ref["id"], pdq.subsample(frames, every_s=1.0))
    return indexes, {"frames": indexes["1fps"].frame_count,
                     "frames_5fps": indexes["5fps"].frame_count, "hashed_now_s": hashed_s,
                     "x_realtime_5fps": media_s / hashed_s if hashed_s else None}


def speed_ratio(refs: list[dict]) -> dict:
    """Time of ``fingerprint_video`` over a plain decode of every frame of the same file (PyAV,
    threaded like the engine, frames left in the decoder's format), on each of ``refs``: wall
    time and CPU time of this process (all threads)."""
    from nanhu.engine.video import fingerprint_video

    rows = []
    for ref in refs:
        t0, c0 = time.perf_counter(), time.process_time()
        with av.open(ref["path"]) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            frames = sum(1 for _ in container.decode(stream))
        decode_s, decode_cpu = time.perf_counter() - t0, time.process_time() - c0
        t0, c0 = time.perf_counter(), time.process_time()
        fingerprint_video(ref["path"])
        fingerprint_s, fingerprint_cpu = time.perf_counter() - t0, time.process_time() - c0
        rows.append({"id": ref["id"], "size": f"{ref['width']}x{ref['height']}",
                     "frames": frames, "decode_s": decode_s, "fingerprint_s": fingerprint_s,
                     "ratio": fingerprint_s / decode_s, "cpu_ratio": fingerprint_cpu / decode_cpu})
    return {"files": rows, "ratio_median": float(np.median([r["ratio"] for r in rows])),
            "cpu_ratio_median": float(np.median([r["cpu_ratio"] for r in rows])),
            "decode_fps_median": float(np.median([r["frames"] / r["decode_s"] for r in rows]))}


# ---------------------------------------------------------------------------- run
def run_video_bench(
    out_dir: Path, *, quick: bool = False, seed: int = 0, references: int | None = None,
    clips_per_length: int | dict[float, int] | None = None, negatives: int | None = None,
    negative_lengths: tuple[float, ...] = LENGTHS, synthetic_keyframes: int | None = None,
    attack_names: list[str] | None = None, corpus: dict | None = None,
    time_budget_s: float | None = None, baseline: bool = True,
) -> dict:
    """Run the benchmark; writes ``out_dir/video-results.json`` and returns the summary.

    quick: 20 references, clips per attack 2 x 5 s, 2 x 10 s, 1 x 30 s, 30 negatives, 100k
    synthetic keyframes. Full: every reference, ``clips_per_length`` (default 20 of each of
    5, 10 and 30 s; an int applies to every length, a dict gives the count per length) clips
    per attack, 300 negatives, 1,000,000 synthetic keyframes. ``time_budget_s`` stops the
    positive clips after the round in progress once spent (every attack then still has the
    same clips); the counts actually run are in the summary.
    """
    from nanhu.benchmarks.corpus.cache import cache_dir

    wall0 = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    corpus = corpus or load_or_build_corpus()
    refs = corpus["references"][: references or (20 if quick else len(corpus["references"]))]
    negative_videos = corpus["negatives"]
    attack_names = attack_names or list(ATTACKS)
    n_negatives = negatives if negatives is not None else (30 if quick else 300)
    n_synthetic = synthetic_keyframes or (100_000 if quick else 1_000_000)
    if clips_per_length is None:
        clips_per_length = {5.0: 2, 10.0: 2, 30.0: 1} if quick else 20
    counts = (dict(clips_per_length) if isinstance(clips_per_length, dict)
              else dict.fromkeys(LENGTHS, clips_per_length))

    bench = cache_dir() / "bench"
    catalog_dir = bench / f"video-catalog-{_file_key(refs)}-{_params_key()}"
    probe = min(refs, key=lambda r: r["duration_s"])
    if ((catalog_dir / "build.json").exists() and (catalog_dir / "manifest.json").exists()
            and catalog_matches_code(catalog_dir, probe)):
        build = json.loads((catalog_dir / "build.json").read_text())
    else:
        log.info("building the video benchmark catalog (%d references)", len(refs))
        build = build_catalog(refs, catalog_dir)
    baseline_info = {"available": pdq.available()}
    index = None
    if baseline and baseline_info["available"] is None:
        index, info = pdq_indexes(refs, bench / "pdq")
        baseline_info.update(info)
    speed = speed_ratio(refs[:3 if quick else 5])

    catalog = Catalog(catalog_dir)
    screener = Screener(Matcher(catalog), index, keep_vectors=60 if quick else 100)
    picks = _picks(refs, negative_videos, counts, seed)
    # Negatives first: a time budget then only trims the positive rounds.
    negative_records = screen_negatives(screener, negative_videos, n_negatives, seed,
                                        negative_lengths)
    deadline = None if time_budget_s is None else wall0 + time_budget_s
    positives = screen_positives(screener, picks, attack_names, seed, deadline)
    summary = summarise(positives, negative_records, attack_names)
    results_path = out_dir / "video-results.json"
    # Written now and again at the end: the scale test is long and must not lose the queries.
    results_path.write_text(json.dumps({"summary": summary, "positives": positives,
                                        "negatives": negative_records}, indent=1, default=float))
    summary["scale"] = scale_test(catalog, screener.query_vectors, total_keyframes=n_synthetic,
                                  seed=seed)
    hours = build["media_hours"]
    summary.update({
        "build": build, "baseline": baseline_info, "speed": speed,
        "bytes_per_hour": {"video": build["video_index_bytes"] / hours,
                           "audio": build["audio_index_bytes"] / hours,
                           "keyframes_per_hour": build["keyframes"] / hours},
        "config": {"quick": quick, "seed": seed, "references": len(refs),
                   "clips_per_attack": {f"{L:g}": sum(1 for p in positives if p["length_s"] == L
                                                    and p["attack"] == attack_names[0])
                                        for L in sorted(counts)},
                   "negatives": len(negative_records), "attacks": attack_names,
                   "synthetic_keyframes": n_synthetic, "work_size": list(WORK_SIZE)},
        "wall_s": time.perf_counter() - wall0,
        "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    })
    results_path.write_text(json.dumps(
        {"summary": summary, "positives": positives, "negatives": negative_records},
        indent=1, default=float))
    catalog.close()
    return summary


#: the full run stops starting rounds of positive clips this long after it began (s)
FULL_TIME_BUDGET_S = 3600.0


def load_or_build_corpus() -> dict:
    """The cached video corpus, built first (about an hour on 2 cores) when it is missing."""
    from nanhu.benchmarks.corpus.video import build_video_corpus, load_video_corpus

    try:
        return load_video_corpus()
    except FileNotFoundError:
        log.info("building the video corpus (100 references, 30 negatives; about an hour "
                    "on 2 cores, once)")
        return build_video_corpus(progress=lambda done, total, what: log.info(
            "video corpus: %d/%d (%s)", done, total, what))


#: ``nanhu bench --tiny``: a smoke run of every step on the tiny generated corpus
TINY = {"references": 3, "clips_per_length": {5.0: 1, 10.0: 1}, "negatives": 2,
        "negative_lengths": (5.0,), "synthetic_keyframes": 5_000,
        "attack_names": ["360p", "hflip", "speed-1.25", "pip-50%"]}


def run_video_bench_section(out_dir: Path, *, quick: bool, seed: int,
                            tiny: bool = False) -> tuple[str, dict]:
    """What ``nanhu bench video`` calls: (Markdown section with plots, summary dict).

    The full run takes as many rounds of positive clips (up to 20 per attack and length) as
    fit in :data:`FULL_TIME_BUDGET_S`; the report states the counts.
    """
    sizes = TINY if tiny else {}
    summary = run_video_bench(Path(out_dir), quick=quick or tiny, seed=seed,
                              time_budget_s=None if quick or tiny else FULL_TIME_BUDGET_S,
                              **sizes)
    plots = video_plots(summary, Path(out_dir))
    return video_markdown(summary) + "".join(f"\n![{p}]({p})\n" for p in plots), summary
