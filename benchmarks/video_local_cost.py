"""CPU cost of a 10 s video-only query's extra views and local verification.

``python -m nanhu.benchmarks.video_local_cost CATALOG [--clips N]`` cuts seeded 10 s clips of
the catalog's cached corpus videos (``<cache>/video/ref-*.mp4``), applies a few attacks,
encodes them without sound and measures, in CPU seconds of this process (min of 3 runs):

- ``plain``: fingerprinting as a reference would be (64x64 decode, no views, no local features)
- ``views``: as a query without local features (128x128 decode, framing views)
- ``local``: as a query (views and local features)
- ``match`` / ``match_local``: :meth:`Matcher.segments` without / with the query's local features

The issue's budget is on (views - plain) + (local - views) + (match_local - match).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np

from nanhu.benchmarks.attacks.video import ATTACKS
from nanhu.benchmarks.attacks.video_clips import encode_clip, read_window
from nanhu.benchmarks.corpus.cache import cache_dir
from nanhu.engine.catalog import Catalog
from nanhu.engine.fingerprint import fingerprint_media
from nanhu.engine.matcher import Matcher


def cpu(function, *args, runs: int = 3, **kwargs):
    """(least CPU seconds of ``runs`` calls, the last result)."""
    best, result = np.inf, None
    for _ in range(runs):
        t0 = time.process_time()
        result = function(*args, **kwargs)
        best = min(best, time.process_time() - t0)
    return best, result


def shortlist_rank(catalog: Catalog, fp, truth: int) -> int | None:
    """Rank (0 = first) of the true reference among the verification candidates the global
    neighbours give (:func:`engine.video.verify._candidates`), None when it is not among them."""
    from nanhu.engine.video.verify import _candidates

    index = catalog.local_index()
    ordinals, times, sims = catalog.vectors().search(fp.video.vectors, 32)
    ranked = _candidates(np.asarray(fp.video.times_s, np.float64), ordinals, sims, index,
                         len(index.features)).tolist()
    return ranked.index(truth) if truth in ranked else None


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("catalog", type=Path)
    parser.add_argument("--clips", type=int, default=4)
    parser.add_argument("--attacks", default="crop-20%,caption,zoom-1.3x")
    args = parser.parse_args()
    paths = sorted((cache_dir() / "video").glob("ref-*.mp4"))[:12]
    rng = np.random.default_rng(11)
    rows = []
    with Catalog(args.catalog) as catalog:
        matcher = Matcher(catalog)
        for _ in range(args.clips):
            path = paths[int(rng.integers(len(paths)))]
            clip = read_window(path, float(rng.uniform(0, 40)), 10.0, audio=False)
            # composites (side by side, PiP) take the next corpus video's opening as the other
            # footage, drawing nothing from rng: the other attacks' clips stay as they were
            beside = paths[(paths.index(path) + 1) % len(paths)]
            for name in args.attacks.split(","):
                other = (read_window(beside, 0.0, 10.0, audio=False)
                         if ATTACKS[name].needs_other else None)
                data = encode_clip(dataclasses.replace(ATTACKS[name].apply(clip, rng, other=other),
                                                       audio=None))
                plain, _ = cpu(fingerprint_media, data, local=False)
                views, _ = cpu(fingerprint_media, data, query=True, local=False)
                local, fp = cpu(fingerprint_media, data, query=True)
                bare = dataclasses.replace(fp, video=dataclasses.replace(fp.video, local=None))
                match, _ = cpu(matcher.segments, bare)
                match_local, _ = cpu(matcher.segments, fp)
                found = [s for s in matcher.segments(fp) if s.score >= 0.5]
                truth = catalog.get(path.stem).ordinal
                row = {"video": path.stem, "attack": name, "plain": plain, "views": views,
                       "local": local, "match": match, "match_local": match_local,
                       "extra": views - plain + local - views + match_local - match,
                       "shortlist_rank": shortlist_rank(catalog, fp, truth),
                       "top1": bool(found) and found[0].reference == truth}
                rows.append(row)
                print(json.dumps({k: round(v, 3) if isinstance(v, float) else v
                                  for k, v in row.items()}), flush=True)
    extra = sorted(r["extra"] for r in rows)
    ranks = [r["shortlist_rank"] for r in rows]
    print("true reference's rank among verification candidates:",
          {k: ranks.count(k) for k in sorted(set(ranks), key=lambda v: (v is None, v))})
    print(f"extra CPU per 10 s query (views + local features + verification): p50 "
          f"{extra[len(extra) // 2]:.3f} s, max {extra[-1]:.3f} s over {len(rows)} queries")


if __name__ == "__main__":
    main()
