"""The null of local verification, measured: RANSAC inliers of unrelated frame pairs.

``python -m nanhu.benchmarks.video_local_null OUT [--clips N] [--attacks ...]`` fingerprints
every cached corpus video (``<cache>/video/ref-*.mp4``) as a reference would be (its sparse ORB
keyframes, :mod:`engine.video.local_sampling`), cuts ``--clips`` seeded 10 s clips of each,
applies each attack, encodes them without sound and fingerprints them as queries. Every query
frame, as shown and mirrored, is verified (:func:`engine.video.local.count_inliers`) against
every ORB keyframe of every *other* video: those counts are the unrelated pairs, whose survival
``P(inliers >= n)`` is the table :class:`engine.video.verify.LocalMatchParams` holds. The best
count against the clip's own video is kept too (the true pairs' side, for the report).
Writes ``OUT/local-null.json`` and prints the table. The clips are seeded apart from the quick
framing bench's (seed 7), so the table is not fitted on its negatives.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from nanhu.benchmarks.attacks.video import ATTACKS
from nanhu.benchmarks.attacks.video_clips import encode_clip, read_window
from nanhu.benchmarks.corpus.cache import cache_dir
from nanhu.engine.fingerprint import fingerprint_media
from nanhu.engine.video.local import LocalParams, count_inliers

log = logging.getLogger(__name__)

DEFAULT_ATTACKS = ("360p", "crop-20%", "caption", "logo", "crop-30%-off-centre", "zoom-1.3x",
                   "blurred-background", "hflip", "letterbox-1:1", "rotate-5+zoom")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--clips", type=int, default=1)
    parser.add_argument("--attacks", default=",".join(DEFAULT_ATTACKS))
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    params = LocalParams()
    paths = sorted((cache_dir() / "video").glob("ref-*.mp4"))
    refs = {}
    t0 = time.process_time()
    for path in paths:
        fp = fingerprint_media(path)
        refs[path.stem] = (fp.video.local, fp.duration_s)
        log.info("%s: %d ORB keyframes, %.0f bytes/h", path.stem, len(fp.video.local),
                 fp.video.local.nbytes() / fp.duration_s * 3600)
    reference_cpu = time.process_time() - t0
    rng = np.random.default_rng(args.seed)
    null: list[int] = []
    true_best: dict[str, list[int]] = {}
    verify_cpu, verified_frames = 0.0, 0
    for path in paths:
        local_ref, duration = refs[path.stem]
        for _ in range(args.clips):
            start = float(rng.uniform(0, max(0.0, duration - 11)))
            clip = read_window(path, start, 10.0, audio=False)
            for name in args.attacks.split(","):
                attacked = ATTACKS[name].apply(clip, rng)
                query = fingerprint_media(encode_clip(replace(attacked, audio=None)),
                                          query=True).video.local
                best = 0
                c0 = time.process_time()
                for row in range(len(query)):
                    xy, desc = query.points(row)
                    for other, (features, _) in refs.items():
                        counts = count_inliers(xy, desc, features, np.arange(len(features)),
                                               params=params)
                        if other == path.stem:
                            best = max(best, int(counts.max(initial=0)))
                        else:
                            null.extend(counts.tolist())
                verify_cpu += time.process_time() - c0
                verified_frames += len(query)
                true_best.setdefault(name, []).append(best)
        log.info("%s done: %d null pairs so far", path.stem, len(null))
    counts = np.asarray(null, np.int64)
    survival = {int(n): float(np.mean(counts >= n)) for n in range(3, int(counts.max()) + 2)}
    out = {"pairs": int(counts.size), "survival": survival,
           "histogram": np.bincount(counts).tolist(), "true_best": true_best,
           "reference_cpu_s": reference_cpu,
           "verify_cpu_ms_per_frame_and_reference": 1000 * verify_cpu / max(
               verified_frames * len(refs), 1),
           "params": params.to_dict()}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "local-null.json").write_text(json.dumps(out, indent=1))
    print(f"{counts.size} unrelated pairs; P(inliers >= n):")
    for n, p in survival.items():
        print(f"  {n:3d} {p:.3g}  ({int(np.sum(counts >= n))} pairs)")
    for name, best in true_best.items():
        print(f"{name:22s} own video's best: {sorted(best)}")


if __name__ == "__main__":
    main()
