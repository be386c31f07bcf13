"""The 10,000 h video scale catalog measured inside a memory limit (run it through
docs/results/scale-2026-12-03d/run_in_8gb.sh, which drops the page cache first): open, the 80
positives and 80 negatives of the scale run once from a cold cache and once more, one FAISS
thread; p50 / p99 wall and CPU, top-1, false matches, the process's anonymous and resident
memory and the cgroup's peak.

    sh docs/results/scale-2026-12-03d/run_in_8gb.sh .venv/bin/python \
        docs/results/video-scale-2026-12-06/measure_in_8gb.py CATALOG
"""

import json
import sys
import time
from pathlib import Path

import faiss
import numpy as np

from nanhu.benchmarks.corpus.cache import cache_dir
from nanhu.benchmarks.scale_audio import _rss_mb
from nanhu.benchmarks.scale_video import _match_all, _queries
from nanhu.benchmarks.scale_video_data import real_video_set
from nanhu.engine.catalog import Catalog
from nanhu.engine.matcher import Matcher

faiss.omp_set_num_threads(1)
cache = cache_dir()
data = real_video_set(cache / "bench", cache, positives=80, negatives=80, seed=0)
positives, negatives = _queries(data)
catalog = Catalog(Path(sys.argv[1]))
started = time.perf_counter()
catalog.vectors()
out = {"open_s": time.perf_counter() - started}
matcher = Matcher(catalog)
for run in ("cold", "again"):
    got = _match_all(matcher, positives, negatives)
    rss, anon = _rss_mb()
    out[run] = {"top1": got["top1"], "false": got["false"],
                **{f"{what}_ms_p{q}": float(np.percentile(got[what], q))
                   for what in ("wall", "cpu") for q in (50, 99)},
                "rss_mb": rss, "rss_anon_mb": anon}
peak = Path("/sys/fs/cgroup/memory/nanhu-8g/memory.max_usage_in_bytes")
if peak.exists():
    out["cgroup_peak_gb"] = int(peak.read_text()) / 1e9
print(json.dumps(out, indent=1))
