"""A quick video-only run of the framing and layout attacks (issue 11) on whatever real
references are cached, for before/after comparisons on a small machine.

``python -m nanhu.benchmarks.runs.video_framing_quick OUT [--refs N] [--clips N] [--negatives N]``
registers the first ``N`` cached corpus videos (``<cache>/video/ref-*.mp4``, audio + video),
keeps the rest as never-registered negatives, and screens attacked clips (5, 10 and 30 s
in rounds) with the steps of the full benchmark (:mod:`benchmarks.runs.video_screening`), no
vPDQ. Queries are encoded without an audio stream (video alone must carry the match, and the
audio query warps would dominate the run's time). It writes ``OUT/video-results.json`` and
prints per-attack video-only top-1 and false matches. It needs no corpus manifest, so it
runs while the full corpus is not built.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import replace
from pathlib import Path

import av

from nanhu.benchmarks.attacks import video as attacks
from nanhu.benchmarks.attacks.video_clips import encode_clip
from nanhu.benchmarks.corpus.cache import cache_dir
from nanhu.benchmarks.runs.video import build_catalog
from nanhu.benchmarks.runs.video_measures import summarise
from nanhu.benchmarks.runs.video_screening import Screener, _picks, screen_negatives, screen_positives
from nanhu.engine.catalog import Catalog
from nanhu.engine.matcher import Matcher

ATTACKS = ["360p", "hflip", "crop-20%", "caption", "logo", "crop10+flip+bright",
           "letterbox+logo+360p", "pip-50%", "side-by-side", "rotate-90",
           "crop-30%-off-centre", "blurred-background", "letterbox-1:1", "pip-40%", "top-bottom",
           "rotate-5+zoom", "zoom-1.3x"]


def _entry(path: Path) -> dict:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return {"id": path.stem, "path": str(path), "width": stream.width,
                "height": stream.height, "duration_s": float(container.duration / 1e6) - 0.5}


def _encode_without_audio(self, clip):
    return encode_clip(replace(clip, audio=None), bit_rate=self.bit_rate)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--refs", type=int, default=12)
    parser.add_argument("--clips", type=int, default=3, help="clips per attack of 5 s and 10 s")
    parser.add_argument("--long", type=int, default=1, help="clips per attack of 30 s")
    parser.add_argument("--negatives", type=int, default=105)
    parser.add_argument("--attacks", default=",".join(ATTACKS))
    parser.add_argument("--rebuild", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    videos = [_entry(p) for p in sorted((cache_dir() / "video").glob("ref-*.mp4"))]
    refs, negatives = videos[: args.refs], videos[args.refs:]
    args.out.mkdir(parents=True, exist_ok=True)
    catalog_dir = args.out / "catalog"
    if args.rebuild or not (catalog_dir / "build.json").exists():
        build_catalog(refs, catalog_dir)
    attack_names = args.attacks.split(",")
    attacks.Attack.encode = _encode_without_audio
    t0 = time.perf_counter()
    with Catalog(catalog_dir) as catalog:
        screener = Screener(Matcher(catalog), None, keep_vectors=0)
        counts = {5.0: args.clips, 10.0: args.clips, 30.0: args.long}
        negative_records = screen_negatives(screener, negatives, args.negatives, 0, (5.0, 10.0))
        positives = screen_positives(screener, _picks(refs, negatives, counts, 0), attack_names, 0,
                                     None)
    summary = summarise(positives, negative_records, attack_names)
    (args.out / "video-results.json").write_text(json.dumps(
        {"summary": summary, "positives": positives, "negatives": negative_records},
        indent=1, default=float))
    print(f"{len(refs)} references, {len(negatives)} negative videos, "
          f"{time.perf_counter() - t0:.0f} s screening")
    for name in attack_names:
        rows = [p for p in positives if p["attack"] == name]
        hits = sum(bool(p["video"]) and p["video"][0]["reference_id"] == p["reference_id"]
                   for p in rows)
        print(f"{name:24s} video-only top-1 {hits}/{len(rows)}")
    by_attack: dict[str, list[int]] = {}
    for record in negative_records:
        by_attack.setdefault(record["attack"], []).append(len(record["video"]))
    flagged = sum(bool(r["video"]) for r in negative_records)
    print(f"negatives: {len(negative_records)}, video-only flagged {flagged}; "
          + ", ".join(f"{k} {sum(map(bool, v))}/{len(v)}" for k, v in by_attack.items()))
    cost = [p["fingerprint_ms"] for p in positives if p["length_s"] == 10.0]
    match = [p["match_video_ms"] for p in positives if p["length_s"] == 10.0]
    if cost:
        cost.sort()
        match.sort()
        print(f"10 s queries: fingerprint p50 {cost[len(cost) // 2]:.0f} ms, "
              f"video match p50 {match[len(match) // 2]:.0f} ms")


if __name__ == "__main__":
    main()
