"""Real-music audio corpus for the audio recall benchmark, built from Debian packages.

Where the audio comes from: :mod:`benchmarks.corpus.audio_sources`; how near-duplicates and
loops are found: :mod:`benchmarks.corpus.audio_similarity`.

Selection: music tracks of at least ``MIN_MUSIC_S`` seconds, exact copies (same sha256) and
near-duplicates removed, are split deterministically (sorted inputs, ``seed``): a share of
every package, by largest remainders, becomes never-registered ``negatives`` (at least
``min_negatives``), the rest ``references``. Speech (``speech``) is a seeded sample of at most
``max_speech_per_package`` files per package, for babble noise and fillers, never references.

Manifest ``<cache>/audio-corpus.json`` (``MANIFEST_VERSION``)::

    {"version": 1, "seed": 0,
     "packages": [{"name", "version", "sha256"}],
     "references" | "negatives" | "speech": [{"id", "path", "package", "member", "sha256",
                                              "duration_s", "loop_period_s", "repeat_lags_s"}],
     "dropped": [{"id", "package", "member", "reason", "duplicate_of", "shared_s"}]}

``path`` is absolute, into the cache; ``id`` is unique and filesystem-safe (``wz2100-track25``).
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

import av
import numpy as np

from nanhu.benchmarks.corpus.audio_similarity import (
    ANALYSIS_RATE,
    Repeat,
    chroma_blocks,
    duplicate_groups,
    find_duplicates,
    find_repeats,
    loop_period,
)
from nanhu.benchmarks.corpus.audio_sources import (
    MUSIC_SOURCES,
    SPEECH_SOURCES,
    Candidate,
    CorpusError,
    decode,
    fetch_package,
    list_candidates,
)
from nanhu.benchmarks.corpus.cache import cache_dir, sha256_file

log = logging.getLogger(__name__)

MANIFEST_VERSION = 1
MANIFEST_NAME = "audio-corpus.json"
MIN_MUSIC_S = 20.0
MIN_SPEECH_S = 1.0

Progress = Callable[[str, int, int], None]


def split_tracks(tracks: Sequence[dict], *, seed: int, negative_fraction: float = 0.15,
                 min_negatives: int = 30) -> tuple[list[dict], list[dict]]:
    """Deterministic (references, negatives) split, stratified by package.

    Each package gives negatives in proportion to its track count (largest remainders, ties
    by package name) but keeps at least one reference. Both lists come sorted by id.
    """
    by_package: dict[str, list[dict]] = {}
    for track in sorted(tracks, key=lambda t: t["id"]):
        by_package.setdefault(track["package"], []).append(track)
    wanted = min(max(min_negatives, round(negative_fraction * len(tracks))),
                 len(tracks) - len(by_package))
    names = sorted(by_package)
    exact = {n: wanted * len(by_package[n]) / max(len(tracks), 1) for n in names}
    quota = {n: min(math.floor(exact[n]), len(by_package[n]) - 1) for n in names}
    for name in sorted(names, key=lambda n: (-(exact[n] - math.floor(exact[n])), n)):
        if sum(quota.values()) >= wanted:
            break
        quota[name] = min(quota[name] + 1, len(by_package[name]) - 1)
    rng = np.random.default_rng(seed)
    references, negatives = [], []
    for name in names:
        chosen = set(rng.permutation(len(by_package[name]))[: quota[name]].tolist())
        for n, track in enumerate(by_package[name]):
            (negatives if n in chosen else references).append(track)
    return (sorted(references, key=lambda t: t["id"]), sorted(negatives, key=lambda t: t["id"]))


def probe_duration(path: Path) -> float | None:
    """Duration (s) from the container, None if PyAV cannot open it."""
    try:
        with av.open(str(path)) as container:
            if container.duration:
                return container.duration / 1e6
            stream = container.streams.audio[0]
            return float(stream.duration * stream.time_base) if stream.duration else None
    except (av.FFmpegError, IndexError):
        return None


def _entry(candidate: Candidate, duration_s: float, repeats: Sequence[Repeat] = (),
           sha256: str | None = None) -> dict:
    return {"id": candidate.id, "path": str(candidate.path.resolve()),
            "package": candidate.package, "member": candidate.member,
            "sha256": sha256 or sha256_file(candidate.path), "duration_s": round(duration_s, 3),
            "loop_period_s": loop_period(repeats),
            "repeat_lags_s": [r.lag_s for r in repeats]}


def select_speech(candidates: Sequence[Candidate], *, seed: int, limit: int) -> list[dict]:
    """A seeded sample of at most ``limit`` decodable speech files of MIN_SPEECH_S or more."""
    out = []
    for n in np.random.default_rng(seed).permutation(len(candidates)):
        duration = probe_duration(candidates[n].path)
        if duration is not None and duration >= MIN_SPEECH_S:
            out.append(_entry(candidates[n], duration))
            if len(out) == limit:
                break
    return sorted(out, key=lambda e: e["id"])


def write_manifest(manifest: dict, path: Path) -> None:
    """Write the manifest atomically (temporary file, then rename)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=1, sort_keys=False) + "\n")
    os.replace(tmp, path)


def read_manifest(path: Path) -> dict:
    """Read a manifest, refusing other versions."""
    manifest = json.loads(path.read_text())
    if manifest.get("version") != MANIFEST_VERSION:
        raise CorpusError(f"{path}: audio corpus version {manifest.get('version')!r}, expected "
                          f"{MANIFEST_VERSION}; delete it to rebuild")
    return manifest


def _analyse(candidates: Sequence[Candidate], progress: Progress | None
             ) -> tuple[list[dict], list[np.ndarray], list[dict]]:
    """Decode every candidate; drop undecodable, short and exact copies; find repeats."""
    kept, blocks, dropped, by_digest = [], [], [], {}
    for n, cand in enumerate(candidates):
        if progress:
            progress("analyse", n, len(candidates))
        digest = sha256_file(cand.path)
        if digest in by_digest:
            dropped.append({"id": cand.id, "package": cand.package, "member": cand.member,
                            "reason": "exact copy", "duplicate_of": by_digest[digest],
                            "shared_s": None})
            continue
        by_digest[digest] = cand.id
        try:
            samples = decode(cand.path)
        except av.FFmpegError as exc:
            log.warning("skipping %s: PyAV cannot decode it (%s)", cand.path, exc)
            continue
        if len(samples) < MIN_MUSIC_S * ANALYSIS_RATE:
            continue
        seq = chroma_blocks(samples)
        kept.append(_entry(cand, len(samples) / ANALYSIS_RATE, find_repeats(samples, seq),
                           digest))
        blocks.append(seq)
    return kept, blocks, dropped


def _drop_duplicates(tracks: list[dict], blocks: Sequence[np.ndarray],
                     dropped: list[dict]) -> list[dict]:
    """Keep one track per duplicate group: the most distinct material, then the smaller id."""
    pairs = find_duplicates(blocks, lambda i: decode(Path(tracks[i]["path"])))
    for pair in pairs:
        log.info("duplicate: %s ~ %s (%.0f s shared, %.0f%% of peaks, lag %.2f s)",
                 tracks[pair.first]["id"], tracks[pair.second]["id"], pair.shared_s,
                 100 * pair.peak_share, pair.lag_s)
    shared = {(p.first, p.second): p.shared_s for p in pairs}
    drop = set()
    for group in duplicate_groups(len(tracks), pairs):
        def material(i: int) -> tuple[float, str]:
            return (-(tracks[i]["loop_period_s"] or tracks[i]["duration_s"]), tracks[i]["id"])

        keep = min(group, key=material)
        for i in sorted(set(group) - {keep}):
            drop.add(i)
            dropped.append({"id": tracks[i]["id"], "package": tracks[i]["package"],
                            "member": tracks[i]["member"], "reason": "near duplicate",
                            "duplicate_of": tracks[keep]["id"],
                            "shared_s": shared.get((min(i, keep), max(i, keep)))})
    return [t for i, t in enumerate(tracks) if i not in drop]


def build_audio_corpus(cache: Path | None = None, *, seed: int = 0,
                       progress: Progress | None = None, negative_fraction: float = 0.15,
                       min_negatives: int = 30, max_speech_per_package: int = 200) -> dict:
    """Fetch the packages, analyse and split the music, write and return the manifest.

    progress(stage, done, total) is called as work advances (stages: fetch, analyse, speech).
    """
    cache = Path(cache) if cache is not None else cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    packages, music, speech_candidates = [], [], []
    sources = MUSIC_SOURCES + SPEECH_SOURCES
    for n, source in enumerate(sources):
        if progress:
            progress("fetch", n, len(sources))
        record, root = fetch_package(source.package, cache)
        packages.append(record)
        found = list_candidates(source, root, cache)
        (music if source in MUSIC_SOURCES else speech_candidates).append(found)
    candidates = sorted((c for found in music for c in found), key=lambda c: c.id)
    tracks, blocks, dropped = _analyse(candidates, progress)
    tracks = _drop_duplicates(tracks, blocks, dropped)
    references, negatives = split_tracks(tracks, seed=seed, negative_fraction=negative_fraction,
                                         min_negatives=min_negatives)
    speech = []
    for n, found in enumerate(speech_candidates):
        if progress:
            progress("speech", n, len(speech_candidates))
        speech += select_speech(found, seed=seed + n, limit=max_speech_per_package)
    hours = sum(t["duration_s"] for t in references) / 3600
    if len(references) < 150 or hours < 8 or len(negatives) < 30:
        log.warning("audio corpus is short: %d references (%.2f h), %d negatives available; "
                    "wanted >= 150 references, >= 8 h, >= 30 negatives",
                    len(references), hours, len(negatives))
    manifest = {"version": MANIFEST_VERSION, "seed": seed, "packages": packages,
                "references": references, "negatives": negatives, "speech": speech,
                "dropped": sorted(dropped, key=lambda d: d["id"])}
    write_manifest(manifest, cache / MANIFEST_NAME)
    return manifest


def load_audio_corpus(cache: Path | None = None) -> dict:
    """The manifest from the cache, built first if it is not there yet."""
    cache = Path(cache) if cache is not None else cache_dir()
    path = cache / MANIFEST_NAME
    return read_manifest(path) if path.exists() else build_audio_corpus(cache)


def summary(manifest: dict) -> str:
    """Counts and hours per split and per package, as text."""
    lines = []
    for split in ("references", "negatives", "speech"):
        entries = manifest[split]
        hours = sum(e["duration_s"] for e in entries) / 3600
        looped = sum(e["loop_period_s"] is not None for e in entries)
        lines.append(f"{split}: {len(entries)} files, {hours:.2f} h, {looped} looping")
        per_package: dict[str, list[float]] = {}
        for e in entries:
            per_package.setdefault(e["package"], []).append(e["duration_s"])
        lines += [f"  {name:28s} {len(d):4d} files {sum(d) / 3600:6.2f} h"
                  for name, d in sorted(per_package.items())]
    reasons = Counter(d["reason"] for d in manifest["dropped"])
    lines.append("dropped: " + ", ".join(f"{n} {r}" for r, n in sorted(reasons.items())))
    return "\n".join(lines)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    print(summary(build_audio_corpus(seed=int(sys.argv[1]) if len(sys.argv) > 1 else 0)))
