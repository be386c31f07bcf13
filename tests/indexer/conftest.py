"""Shared fixtures of the indexer tests: generated clips and a look inside catalogs."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from nanhu.benchmarks.synth import music_like, write_audio
from nanhu.engine.catalog import Catalog
from nanhu.engine.store.vectors import VectorSegment

RATE = 22050


def make_clip(path: Path, *, seed: int, seconds: float = 2.5) -> Path:
    """A distinct music-like WAV clip per seed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_audio(path, music_like(seconds, seed=seed, sample_rate=RATE), RATE)


@pytest.fixture(scope="session")
def clip_bank(tmp_path_factory) -> list[Path]:
    """Sixteen short clips, made once per session; tests copy or link what they need."""
    folder = tmp_path_factory.mktemp("clips")
    return [make_clip(folder / f"clip{seed:02d}.wav", seed=seed) for seed in range(16)]


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def read_report(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def catalog_contents(path: Path) -> dict:
    """Everything a catalog holds, in a form that compares equal iff the contents are equal.

    Postings and vectors are concatenated over segments and sorted, so the comparison does not
    depend on how registrations were batched into commits.
    """
    with Catalog(path) as catalog:
        refs = {r.ref_id: (r.ordinal, r.title, r.owner, r.duration_s, r.digest, r.metadata,
                           r.n_hashes, r.n_keyframes)
                for r in catalog.list(limit=100_000)}
        keys, ordinals, frames = catalog.postings().all_postings()
        order = np.lexsort((frames, ordinals, keys))
        segments = [VectorSegment(path / s["file"]) for s in catalog.manifest["video_segments"]]
        video = b""
        if segments:
            ordinals = np.concatenate([s.ordinals for s in segments])
            times = np.concatenate([s.times_s for s in segments])
            rows = np.lexsort((times, ordinals))
            video = np.concatenate([s.vectors for s in segments])[rows].tobytes()
        return {"refs": refs, "keys": keys[order].tobytes(),
                "values": (ordinals[order].tobytes(), frames[order].tobytes()),
                "video": video, "postings": int(keys.size)}


def postings_by_id(path: Path) -> list[tuple[int, str, int]]:
    """(hash, reference id, frame) triplets, sorted: equal across catalogs whatever the ordinals."""
    with Catalog(path) as catalog:
        keys, ordinals, frames = catalog.postings().all_postings()
        names = {o: r.ref_id for o, r in catalog.by_ordinals(np.unique(ordinals)).items()}
        return sorted(zip(keys.tolist(), (names[o] for o in ordinals.tolist()), frames.tolist()))


def generation(catalog: Path) -> int:
    """The committed generation on disk, -1 while there is no readable manifest yet."""
    try:
        return int(json.loads((catalog / "manifest.json").read_text())["generation"])
    except (OSError, ValueError, KeyError):
        return -1


# Test modules are imported with --import-mode=importlib and cannot import this file by name,
# so the helpers reach them as fixtures.
@pytest.fixture(name="helpers")
def _helpers():
    class Helpers:
        pass

    helpers = Helpers()
    for function in (make_clip, write_csv, read_report, catalog_contents, postings_by_id,
                     generation):
        setattr(helpers, function.__name__, staticmethod(function))
    return helpers
