"""The before/after probe of README.md (as in ../cluster-fanout-2026-12-01/, plus the round
trips per query in all): one shard count, 1 client, over the bench's quick queries; wall p50/p99
and CPU per query of the whole process tree (driver and the local Ray's processes), the shards in
process against the same shards on Ray, twice, alternating.

    .venv/bin/python ab.py POSITIVES NEGATIVES SHARDS LABEL >> ab-interleaved.jsonl

Run with each checkout's own venv (the actors run the driver's code), alternating. Each query
starts with ``view.refresh()``, as a screening does (server/jobs.py).
"""

import json
import os
import sys
import time

import numpy as np
import psutil
import ray

from nanhu.benchmarks.cluster_bench import CACHE, _rows, read_queries, split_catalog
from nanhu.engine.catalog import Catalog
from nanhu.engine.matcher import Matcher
from nanhu.server.cluster_core import open_view
from nanhu.server.cluster_ray import start_actors, stop_actors

positives, negatives, n, label = (int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]),
                                  sys.argv[4])
looks_ahead = "one-look-a-trip" not in label  # the branch's variant without the looks ahead
source = CACHE / "audio-catalog-audio-v3-1cc93e6a58"
queries = read_queries(CACHE / "scale-queries-audio-v3-f6-p0.15-1cc93e6a58-0-200-5000.npz",
                       positives, negatives, 200)
me = psutil.Process()


def tree_cpu() -> float:
    total = 0.0
    for process in [me, *me.children(recursive=True)]:
        try:
            cpu = process.cpu_times()
        except psutil.Error:
            continue
        total += cpu.user + cpu.system
    return total


def measure(matcher, view) -> tuple[float, float, float]:
    ms = []
    cpu = tree_cpu()
    for _, fp in queries:
        t = time.perf_counter()
        view.refresh()
        matcher.match(fp)
        ms.append((time.perf_counter() - t) * 1e3)
    return (float(np.percentile(ms, 50)), float(np.percentile(ms, 99)),
            (tree_cpu() - cpu) / len(queries) * 1e3)


with Catalog(source) as single:
    one = Matcher(single)
    expected = [_rows(one.match(fp)) for _, fp in queries]
ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False,
         namespace="nanhu")
layout = split_catalog(source, CACHE / f"cluster-{n}-{source.name}", n)
start_actors(layout)
_, view, _ = open_view(layout.root, address=ray.get_runtime_context().gcs_address)
on_ray = Matcher(view)
if hasattr(view.postings(), "ahead"):
    view.postings().ahead = looks_ahead
differ = 0
for (_, fp), want in zip(queries, expected):
    view.refresh()
    differ += _rows(on_ray.match(fp)) != want
local = open_view(layout.root)[1]
in_process = Matcher(local)
if hasattr(local.postings(), "ahead"):
    local.postings().ahead = looks_ahead
measure(in_process, local)  # warm
out = {"label": label, "shards": n, "differ": differ, "load": os.getloadavg()[0]}
before = dict(getattr(view, "round_trips", {}))
for rep in range(2):
    out[f"local{rep}"] = measure(in_process, local)
    out[f"ray{rep}"] = measure(on_ray, view)
if hasattr(view, "round_trips"):
    out["round_trips"] = {k: round((v - before.get(k, 0)) / (2 * len(queries)), 2)
                          for k, v in view.round_trips.items() if v - before.get(k, 0)}
    out["round_trips_per_query"] = round(sum(out["round_trips"].values()), 2)
out["load_end"] = os.getloadavg()[0]
print(json.dumps(out))
stop_actors(layout)
ray.shutdown()
