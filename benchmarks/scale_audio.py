"""Audio at scale: a synthetic catalog of N hours of postings, queried with real excerpts.

The synthetic postings follow the *real* hash distribution: keys are drawn (multinomially) with
the frequencies they have in the benchmark's real-music catalog, at the real catalog's postings
per second, for synthetic references of 4 minutes each; values are uniform over those
references' frames. The real catalog's segment is added beside it, so real excerpts must still
find their reference among N hours of decoys: the run reports latency, memory and recall at
that size.
"""

from __future__ import annotations

import json
import logging
import os
import resource
import shutil
import sqlite3
import time
from pathlib import Path

import numpy as np

from benchmarks import audio_attacks as attacks
from engine.audio.landmarks import HASH_BITS
from engine.catalog import Catalog
from engine.fingerprint import fingerprint_media
from engine.matcher import Matcher
from engine.media import load_audio
from engine.store.postings import MAGIC, SEGMENT_VERSION, Segment

log = logging.getLogger(__name__)

SYNTHETIC_REFERENCE_S = 240.0
FIRST_SYNTHETIC_ORDINAL = 10_000_000


def write_synthetic_segment(path: Path, key_probability: np.ndarray, n_postings: int,
                            n_refs: int, frames_per_ref: int, rng: np.random.Generator) -> int:
    """Stream a sorted postings segment of ``n_postings`` straight to disk (bounded memory)."""
    counts = rng.multinomial(n_postings, key_probability)
    total = int(counts.sum())
    with open(path, "wb") as handle:
        handle.write(MAGIC)
        handle.write(np.array([SEGMENT_VERSION, 0], "<u4").tobytes())
        handle.write(np.array([total], "<u8").tobytes())
        step = 1 << 20
        for start in range(0, counts.size, step):
            block = counts[start : start + step]
            handle.write(np.repeat(np.arange(start, start + block.size, dtype="<u4"), block).tobytes())
        if (total * 4) % 8:
            handle.write(b"\0" * 4)
        chunk = 50_000_000
        for start in range(0, total, chunk):
            n = min(chunk, total - start)
            ordinals = rng.integers(0, n_refs, n, dtype=np.uint64) + np.uint64(FIRST_SYNTHETIC_ORDINAL)
            frames = rng.integers(0, frames_per_ref, n, dtype=np.uint64)
            handle.write(((ordinals << np.uint64(32)) | frames).astype("<u8").tobytes())
        handle.flush()
        os.fsync(handle.fileno())
    return path.stat().st_size


def build_scale_catalog(real_catalog: Path, directory: Path, hours: float, seed: int) -> dict:
    """Copy the real catalog's metadata and add a synthetic segment of ``hours`` of postings."""
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    (directory / "audio").mkdir()
    (directory / "video").mkdir()
    manifest = json.loads((real_catalog / "manifest.json").read_text())
    real_files = [real_catalog / s["file"] for s in manifest["audio_segments"]]
    keys = np.concatenate([np.asarray(Segment(f).keys) for f in real_files])
    with sqlite3.connect(real_catalog / "meta.sqlite") as db:
        real_s = db.execute("SELECT SUM(duration_s) FROM refs WHERE n_hashes > 0").fetchone()[0]
    postings_per_s = keys.size / real_s
    probability = np.bincount(keys, minlength=1 << HASH_BITS).astype(np.float64) + 0.05
    probability /= probability.sum()
    n_refs = int(np.ceil(hours * 3600 / SYNTHETIC_REFERENCE_S))
    fps = manifest["audio_params"]["sample_rate"] / manifest["audio_params"]["hop_length"]
    n_postings = int(hours * 3600 * postings_per_s)
    rng = np.random.default_rng(seed)
    started = time.perf_counter()
    size = write_synthetic_segment(directory / "audio" / "seg-synthetic.pst", probability,
                                   n_postings, n_refs, int(SYNTHETIC_REFERENCE_S * fps), rng)
    log.warning("scale: wrote %d postings (%.1f GiB) in %.0f s", n_postings, size / 2**30,
                time.perf_counter() - started)
    for f in real_files:
        os.link(f, directory / "audio" / f.name) if _same_fs(f, directory) else shutil.copy(
            f, directory / "audio" / f.name)
    shutil.copy(real_catalog / "meta.sqlite", directory / "meta.sqlite")
    with sqlite3.connect(directory / "meta.sqlite") as db:
        g = manifest["generation"]
        db.executemany(
            "INSERT INTO refs (ordinal, ref_id, duration_s, digest, n_hashes, created_at, "
            "generation) VALUES (?,?,?,?,?,?,?)",
            ((FIRST_SYNTHETIC_ORDINAL + i, f"synthetic-{i}", SYNTHETIC_REFERENCE_S, f"syn{i}", 1,
              0.0, g) for i in range(n_refs)),
        )
    manifest["audio_segments"] = [
        {"file": "audio/seg-synthetic.pst", "count": n_postings, "bytes": size},
        *({"file": f"audio/{f.name}", "count": 0, "bytes": f.stat().st_size} for f in real_files),
    ]
    (directory / "manifest.json").write_text(json.dumps(manifest))
    return {"hours": hours + real_s / 3600, "synthetic_hours": hours, "postings": n_postings,
            "bytes": size, "postings_per_s": postings_per_s, "synthetic_references": n_refs}


def _same_fs(a: Path, b: Path) -> bool:
    return os.stat(a).st_dev == os.stat(b).st_dev


def run_scale(*, hours: float = 10_000, seed: int = 0, queries: int = 100) -> dict:
    """Build (or reuse) the scale catalog and time real queries against it."""
    from benchmarks.audio_bench import _corpus_key
    from benchmarks.corpus_audio import cache_dir, load_audio_corpus
    from engine.audio.params import AudioParams

    corpus = load_audio_corpus()
    params = AudioParams()
    real = cache_dir() / "bench" / f"audio-catalog-{params.tag()}-{_corpus_key(corpus)}"
    directory = cache_dir() / "bench" / f"audio-scale-{params.tag()}-{int(hours)}h"
    info_path = directory / "scale.json"
    if info_path.exists():
        info = json.loads(info_path.read_text())
    else:
        info = build_scale_catalog(real, directory, hours, seed)
        info_path.write_text(json.dumps(info))
    catalog = Catalog(directory)
    matcher = Matcher(catalog)
    rng = np.random.default_rng([seed, 5])
    refs = [r for r in corpus["references"] if r["duration_s"] >= 20]
    latencies, correct = [], 0
    for i in range(queries):
        ref = refs[int(rng.integers(len(refs)))]
        x = load_audio(ref["path"], sample_rate=16000)
        start = int(rng.uniform(0, x.size / 16000 - 6) * 16000)
        query = x[start : start + 5 * 16000]
        if i % 2:
            query = attacks.add_pink_noise(query, 16000, rng, snr_db=5)
        fp = fingerprint_media(attacks.to_wav_bytes(query, 16000), audio_params=params,
                               query=True, video=False)
        t0 = time.perf_counter()
        matches = matcher.match(fp)
        latencies.append((time.perf_counter() - t0) * 1000)
        correct += bool(matches and matches[0].reference_id == ref["id"])
    catalog.close()
    return {**info, "queries": queries, "top1_recall": correct / queries,
            "match_ms_p50": float(np.percentile(latencies, 50)),
            "match_ms_p99": float(np.percentile(latencies, 99)),
            "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def run_scale_series(hours: list[float], *, seed: int = 0, queries: list[int] | int = 20) -> list[dict]:
    """:func:`run_scale` at each catalog size in ``hours`` (smallest first), for the latency
    against catalog size plot; ``queries`` per size (a list, or one count for all)."""
    counts = queries if isinstance(queries, list) else [queries] * len(hours)
    return [run_scale(hours=h, seed=seed, queries=n) for h, n in zip(sorted(hours), counts)]
