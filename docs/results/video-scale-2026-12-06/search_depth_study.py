"""Does searching deeper bring back what the 10,000 h catalog loses? The scale run's 80
positives and 80 negatives matched at other neighbour counts (``k``) and at other
``nprobe, shortlist`` depths of the compact index, one FAISS thread:

    .venv/bin/python docs/results/video-scale-2026-12-06/search_depth_study.py CATALOG \
        --k 32 64 128 --depth 32,256 64,512 128,1024
"""

import argparse
import dataclasses
from pathlib import Path

import faiss
import numpy as np

from nanhu.benchmarks.corpus.cache import cache_dir
from nanhu.benchmarks.scale_video import _match_all, _queries
from nanhu.benchmarks.scale_video_data import real_video_set
from nanhu.engine.catalog import Catalog
from nanhu.engine.matcher import Matcher
from nanhu.engine.store.vectors_compact_search import CompactPart
from nanhu.engine.video import align as video_align


def run(matcher: Matcher, positives: list, negatives: list) -> dict:
    matcher.match(positives[0][1])
    got = _match_all(matcher, positives, negatives)
    return {"top1": got["top1"], "false": got["false"],
            "p50_ms": float(np.percentile(got["wall"], 50)),
            "p99_ms": float(np.percentile(got["wall"], 99))}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("catalog", type=Path)
    parser.add_argument("--k", type=int, nargs="*", default=[32, 64, 128])
    parser.add_argument("--depth", nargs="*", default=["32,256", "64,512", "128,1024"])
    args = parser.parse_args()
    faiss.omp_set_num_threads(1)
    cache = cache_dir()
    data = real_video_set(cache / "bench", cache, positives=80, negatives=80, seed=0)
    positives, negatives = _queries(data)
    catalog = Catalog(args.catalog)
    part = next(p.index for p in catalog.vectors().parts if isinstance(p.index, CompactPart))
    for k in args.k:
        params = dataclasses.replace(video_align.default_params(), k=k)
        print("k", k, run(Matcher(catalog, video_match=params), positives, negatives), flush=True)
    for depth in args.depth:
        part.nprobe, part.shortlist = (int(v) for v in depth.split(","))
        print("nprobe,shortlist", depth, run(Matcher(catalog), positives, negatives), flush=True)


if __name__ == "__main__":
    main()
