import json, sys, time, logging
from pathlib import Path
import numpy as np
from nanhu.benchmarks.scale_audio import measure
from nanhu.benchmarks.scale_queries import cached_query_set, related_negatives
from nanhu.benchmarks.audio_bench import _corpus_key
from nanhu.benchmarks.corpus.audio import cache_dir, load_audio_corpus
from nanhu.engine.audio.params import AudioParams
from nanhu.engine.audio.align import AudioMatchParams
params = AudioParams(); corpus = load_audio_corpus(); bench = cache_dir() / "bench"
real = bench / f"audio-catalog-{params.tag()}-{_corpus_key(corpus)}"
related = related_negatives(corpus, real, params)
pos, neg = cached_query_set(bench, corpus, params, positives=200, negatives=1000, seed=0)
for d in sys.argv[1:]:
    d = Path(d)
    t = time.perf_counter()
    for f in sorted((d / "audio").glob("*.pst")):
        with open(f, "rb") as h:
            while h.read(1 << 24):
                pass
    print("warmed", d.name, round(time.perf_counter() - t, 1), "s", flush=True)
    row = measure(d, pos, neg, AudioMatchParams(), flagged=set(related))
    row["load"] = open("/proc/loadavg").read().split()[0]
    print(json.dumps({k: row[k] for k in ("hours", "top1_recall", "recall_by_condition", "false_matches", "false_matches_unflagged", "match_ms_p50", "match_ms_p99", "match_ms_p50_positives", "match_ms_p99_positives", "match_ms_p50_negatives", "match_ms_p99_negatives", "match_cpu_ms_p50", "match_cpu_ms_p99", "rss_mb", "rss_anon_mb", "index_bytes_per_hour", "load") if k in row}), flush=True)
