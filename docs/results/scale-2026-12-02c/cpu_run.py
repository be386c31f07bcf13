"""CPU per query (thread time) of the scale bench's cached queries against one catalog, and a
digest of the answers.

    python cpu_run.py CATALOG N_POSITIVES N_NEGATIVES LABEL
"""

import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np

import nanhu.engine.matcher as matcher_module
from nanhu.benchmarks.corpus.audio import cache_dir, load_audio_corpus
from nanhu.benchmarks.scale_queries import cached_query_set
from nanhu.engine.audio.params import AudioParams
from nanhu.engine.catalog import Catalog

directory, n_pos, n_neg, label = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
pos, neg = cached_query_set(cache_dir() / "bench", load_audio_corpus(), AudioParams(),
                            positives=200, negatives=1000, seed=0)
matcher = matcher_module.Matcher(Catalog(directory))
for _, fp in neg[-40:]:  # warm-up: map the segments, compile the kernels
    matcher.segments(fp)
digest = hashlib.sha256()
row = {"label": label, "code": matcher_module.__file__}
for kind, fps in (("pos", [fp for _, _, fp in pos[:n_pos]]),
                  ("neg", [fp for _, fp in neg[:n_neg]])):
    cpu = []
    for fp in fps:
        started = time.thread_time()
        segments = matcher.segments(fp)
        cpu.append((time.thread_time() - started) * 1e3)
        digest.update(repr([(s.reference, s.query_start_s, s.query_end_s, s.reference_start_s,
                             s.score, sorted(s.evidence.items())) for s in segments]).encode())
    row[f"{kind}_p50"] = round(float(np.percentile(cpu, 50)), 2)
    row[f"{kind}_mean"] = round(float(np.mean(cpu)), 2)
    row[f"{kind}_p99"] = round(float(np.percentile(cpu, 99)), 2)
row["digest"] = digest.hexdigest()[:16]
row["load"] = open("/proc/loadavg").read().split()[0]
print(json.dumps(row), flush=True)
