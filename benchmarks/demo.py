"""Seed an embedded catalog with demo works so `make run` has something to screen against.

``python -m nanhu.benchmarks.demo --catalog var/catalog`` registers three generated tracks (once),
writes two example uploads to ``var/demo/`` (an excerpt played 5 % faster with noise, and an
unrelated clip), screens them in-process and prints the result and how to try the service.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from scipy import signal

from nanhu.benchmarks.synth import music_like, write_audio
from nanhu.engine import Catalog, Matcher, fingerprint_media
from nanhu.engine.errors import NotFound

RATE = 22050


def seed_catalog(catalog_dir: Path, media_dir: Path) -> list[Path]:
    media_dir.mkdir(parents=True, exist_ok=True)
    works = []
    for number in range(3):
        path = media_dir / f"demo-song-{number + 1}.ogg"
        if not path.exists():
            write_audio(path, music_like(60, seed=1000 + number, sample_rate=RATE), RATE)
        works.append(path)
    try:
        with Catalog(catalog_dir) as existing:
            if existing.stats()["references"]:
                return works
    except NotFound:
        pass
    with Catalog(catalog_dir, writable=True, create=True) as catalog:
        for path in works:
            catalog.add(path.stem, fingerprint_media(path), title=path.stem.replace("-", " "),
                        owner="demo")
        catalog.commit()
    return works


def example_uploads(media_dir: Path) -> list[Path]:
    song = music_like(60, seed=1001, sample_rate=RATE)
    excerpt = song[20 * RATE : 32 * RATE]
    faster = signal.resample_poly(excerpt, 20, 21).astype(np.float32)  # 5 % faster
    noisy = faster + 0.02 * np.random.default_rng(0).standard_normal(faster.size).astype(np.float32)
    copied = write_audio(media_dir / "upload-copied.mp3", noisy, RATE)
    unrelated = write_audio(media_dir / "upload-unrelated.mp3",
                            music_like(10, seed=77, sample_rate=RATE), RATE)
    return [copied, unrelated]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--catalog", type=Path, default=Path("var/catalog"))
    parser.add_argument("--media", type=Path, default=Path("var/demo"))
    args = parser.parse_args(argv)
    seed_catalog(args.catalog, args.media)
    uploads = example_uploads(args.media)
    catalog = Catalog(args.catalog)
    matcher = Matcher(catalog)
    print(f"Catalog {args.catalog}: {catalog.stats()['references']} references.")
    for upload in uploads:
        matches = matcher.match(fingerprint_media(upload, audio_params=catalog.audio_params,
                                                  query=True))
        print(f"  {upload}: " + ("; ".join(
            f"{m.reference_id} score {m.score:.3f}, upload {m.query_start_s:.1f}-"
            f"{m.query_end_s:.1f} s = reference {m.reference_start_s:.1f}-"
            f"{m.reference_end_s:.1f} s at speed {m.speed:.3f}" for m in matches) or "no match"))
    print("Try it yourself:\n"
          f"  .venv/bin/nanhu query --catalog {args.catalog} --json {uploads[0]}\n"
          f"  .venv/bin/nanhu register --catalog {args.catalog} YOUR_SONG.mp3")
    catalog.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
