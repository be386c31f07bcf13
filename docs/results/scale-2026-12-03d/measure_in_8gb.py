"""The 8 GB runs of README.md (and ``../scale-2026-12-04/``, which added
``--stop-key-share``): ``benchmarks.scale_audio.measure`` on the scale benchmark's
cached queries keyed on demand (100 positives and 1,000 of its 2,000 never-registered
negatives), in the process's memory cgroup as it is (run it inside one limited to 8 GiB, page
cache charged to it: ``run_in_8gb.sh``).

First ``--warm`` other queries (negatives 1,000-1,999, not timed) screen against the
catalog from the state the page cache is in, so the index pages that queries use are those
in memory; then the measured queries run, on a second catalog opened in the same process.
``--only-warm`` stops after the warm-up, so that a second run with ``--warm 0`` measures in a
fresh process (a server restarted on a warm page cache, which is how ``run_in_8gb.sh``'s
README runs were made); ``--warm 0`` alone measures the cold start. The cgroup's memory use
(page cache included) and its major faults during the measured queries are printed after.

    ./run_in_8gb.sh sh -c "python measure_in_8gb.py --only-warm CATALOG;
                           python measure_in_8gb.py --warm 0 CATALOG"
"""

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

from nanhu.benchmarks.audio_bench import _corpus_key
from nanhu.benchmarks.corpus.audio import cache_dir, load_audio_corpus
from nanhu.benchmarks.scale_audio import measure
from nanhu.benchmarks.scale_queries import cached_query_set, related_negatives
from nanhu.engine.audio.align import AudioMatchParams
from nanhu.engine.audio.params import AudioParams
from nanhu.engine.catalog import Catalog
from nanhu.engine.matcher import Matcher

FIELDS = ("hours", "top1_recall", "recall_by_condition", "false_matches",
          "false_matches_unflagged", "negatives_unflagged", "false_match_list", "match_ms_p50",
          "match_ms_p99", "match_ms_p50_positives", "match_ms_p99_positives",
          "match_ms_p50_negatives", "match_ms_p99_negatives", "match_cpu_ms_p50",
          "match_cpu_ms_p99", "match_cpu_ms_p50_positives", "match_cpu_ms_p50_negatives",
          "rss_mb", "rss_anon_mb", "index_bytes_per_hour")
CGROUP = Path("/sys/fs/cgroup/memory")


def cgroup_memory() -> dict:
    """This process's memory cgroup (v1): its limit, use and peak, in MB, page cache included,
    and its major faults so far."""
    line = next(x for x in open("/proc/self/cgroup") if ":memory:" in x)
    group = CGROUP / line.strip().split(":", 2)[2].lstrip("/")
    read = lambda name: int((group / name).read_text()) / 1e6  # noqa: E731
    stat = dict(x.split() for x in (group / "memory.stat").read_text().splitlines())
    return {"cgroup": str(group), "limit_mb": read("memory.limit_in_bytes"),
            "usage_mb": read("memory.usage_in_bytes"),
            "max_usage_mb": read("memory.max_usage_in_bytes"),
            "major_faults": int(stat.get("pgmajfault", 0)),
            "unevictable_mb": int(stat.get("unevictable", 0)) / 1e6}


parser = argparse.ArgumentParser()
parser.add_argument("catalog", type=Path)
parser.add_argument("--warm", type=int, default=1000, help="untimed queries first")
parser.add_argument("--negatives", type=int, default=1000)
parser.add_argument("--only-warm", action="store_true", help="stop after the warm-up")
parser.add_argument("--stop-key-share", type=float, default=None,
                    help="AudioMatchParams.stop_key_share (0: the cap is the floor, 64 postings: "
                    "no key past a keyed segment's hot tier is read)")
args = parser.parse_args()
params = AudioParams()
corpus = load_audio_corpus()
bench = cache_dir() / "bench"
real = bench / f"audio-catalog-{params.tag()}-{_corpus_key(corpus)}"
related = related_negatives(corpus, real, params)
positives, negatives = cached_query_set(bench, corpus, params, positives=100, negatives=2000,
                                        seed=0, keys_on_demand=True)
started = time.perf_counter()
if args.warm:
    with Catalog(args.catalog) as catalog:
        matcher = Matcher(catalog, audio_match=None if args.stop_key_share is None else replace(
            AudioMatchParams(), stop_key_share=args.stop_key_share))
        for _, fp in negatives[1000:1000 + args.warm]:
            matcher.match(fp)
before = cgroup_memory()
print(json.dumps({"warm_queries": args.warm, "warm_s": round(time.perf_counter() - started, 1),
                  **before}), flush=True)
if args.only_warm:
    raise SystemExit(0)
match = AudioMatchParams() if args.stop_key_share is None else replace(
    AudioMatchParams(), stop_key_share=args.stop_key_share)
row = measure(args.catalog, positives, negatives[:args.negatives], match,
              flagged=set(related))
row["load"] = open("/proc/loadavg").read().split()[0]
after = cgroup_memory()
print(json.dumps({**{k: row[k] for k in FIELDS if k in row}, "load": row["load"],
                  "after": after, "major_faults_per_query": (after["major_faults"] - before[
                      "major_faults"]) / (len(positives) + args.negatives)}), flush=True)
