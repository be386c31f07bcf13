"""Every fan-out call of 2 x 100 quick queries timed by method, at one shard count on a local
Ray (1 client, warm view): how often a query makes each call and its median and mean wall ms.

    .venv/bin/python calls.py SHARDS LABEL
"""

import collections
import json
import sys
import time

import numpy as np
import ray

from nanhu.benchmarks.cluster_bench import CACHE, read_queries, split_catalog
from nanhu.engine.matcher import Matcher
from nanhu.server.cluster_core import open_view
from nanhu.server.cluster_ray import start_actors, stop_actors

n, label = int(sys.argv[1]), sys.argv[2]
source = CACHE / "audio-catalog-audio-v3-1cc93e6a58"
queries = read_queries(CACHE / "scale-queries-audio-v3-f6-p0.15-1cc93e6a58-0-200-5000.npz",
                       60, 40, 200)
ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False,
         namespace="nanhu")
layout = split_catalog(source, CACHE / f"cluster-{n}-{source.name}", n)
start_actors(layout)
_, view, _ = open_view(layout.root, address=ray.get_runtime_context().gcs_address)
matcher = Matcher(view)
for _, fp in queries:  # warm: the caches filled
    view.refresh()
    matcher.match(fp)
times: dict[str, list[float]] = collections.defaultdict(list)
call_each = view.fanout.call_each


def timed(method, calls):
    started = time.perf_counter()
    out = call_each(method, calls)
    times[method].append((time.perf_counter() - started) * 1e3)
    return out


view.fanout.call_each = timed
per_query = []
for _ in range(2):
    for _, fp in queries:
        started = time.perf_counter()
        view.refresh()
        matcher.match(fp)
        per_query.append((time.perf_counter() - started) * 1e3)
out: dict = {"label": label, "shards": n, "p50": float(np.median(per_query))}
for method, ms in times.items():  # [calls a query, median ms, mean ms]
    out[method] = [len(ms) / len(per_query), float(np.median(ms)), float(np.mean(ms))]
print(json.dumps(out))
stop_actors(layout)
ray.shutdown()
