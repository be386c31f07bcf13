"""The runs of README.md: ``benchmarks.scale_audio.measure`` on the scale benchmark's cached
queries keyed on demand (100 positives and the first N of its 2,000 negatives: what
`nanhu bench scale --quick` made), negatives flagged as the bench now flags them (screened
whole on demand). Warm (default): the catalog's postings and peaks read into the page cache
first. ``--cold``: not read (the 8 GB run, inside a memory-limited cgroup after dropping the
page cache).

    python measure_warm_od.py ~/.cache/nanhu/bench/audio-scale-audio-v3-d2-10000h
    python measure_warm_od.py --cold --negatives 200 ~/.cache/nanhu/bench/audio-scale-audio-v3-d2-10000h
"""

import argparse
import json
import time
from pathlib import Path

from nanhu.benchmarks.audio_bench import _corpus_key
from nanhu.benchmarks.corpus.audio import cache_dir, load_audio_corpus
from nanhu.benchmarks.scale_audio import measure
from nanhu.benchmarks.scale_queries import cached_query_set, related_negatives
from nanhu.engine.audio.align import AudioMatchParams
from nanhu.engine.audio.params import AudioParams

FIELDS = ("hours", "top1_recall", "recall_by_condition", "false_matches",
          "false_matches_unflagged", "negatives_unflagged", "false_match_list", "match_ms_p50",
          "match_ms_p99", "match_ms_p50_positives", "match_ms_p99_positives",
          "match_ms_p50_negatives", "match_ms_p99_negatives", "match_cpu_ms_p50",
          "match_cpu_ms_p99", "match_cpu_ms_p50_positives", "match_cpu_ms_p50_negatives",
          "rss_mb", "rss_anon_mb", "index_bytes_per_hour", "load")

parser = argparse.ArgumentParser()
parser.add_argument("catalogs", nargs="+", type=Path)
parser.add_argument("--cold", action="store_true", help="do not read the catalog into the cache")
parser.add_argument("--negatives", type=int, default=1000)
args = parser.parse_args()
params = AudioParams()
corpus = load_audio_corpus()
bench = cache_dir() / "bench"
real = bench / f"audio-catalog-{params.tag()}-{_corpus_key(corpus)}"
related = related_negatives(corpus, real, params)
print("flagged", sorted(related), flush=True)
positives, negatives = cached_query_set(bench, corpus, params, positives=100, negatives=2000,
                                        seed=0, keys_on_demand=True)
for directory in args.catalogs:
    started = time.perf_counter()
    for pattern in () if args.cold else ("*.pst", "*.apk"):
        for segment in sorted((directory / "audio").glob(pattern)):
            with open(segment, "rb") as handle:
                while handle.read(1 << 24):
                    pass
    print("warmed", directory.name, round(time.perf_counter() - started, 1), "s", flush=True)
    row = measure(directory, positives, negatives[:args.negatives], AudioMatchParams(),
                  flagged=set(related))
    row["load"] = open("/proc/loadavg").read().split()[0]
    print(json.dumps({k: row[k] for k in FIELDS if k in row}), flush=True)
