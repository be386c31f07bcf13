"""The before/after probe (../cluster-fanout-2026-12-02/ab.py, generalised): one shard count,
1 client; wall p50/p99 and CPU per query of the whole process tree (driver and the local Ray's
processes), the shards in process against the same shards on Ray, twice, alternating; the
round trips a query and the pickled bytes a trip (sent, and back per shard).

    .venv/bin/python ab.py SOURCE QUERIES SHARDS LABEL >> ab.jsonl

SOURCE: a catalog directory, or "bench" for the 18.5 h real-music catalog; QUERIES: a directory
of *.fp, or "bench" for the bench's quick queries (60 attacked 5 s excerpts, 40 never
registered). Run with each checkout's own venv (the actors run the driver's code), alternating.
Each query starts with ``view.refresh()``, as a screening does (server/jobs.py).
"""

import json
import os
import pickle
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import ray

from nanhu.benchmarks.cluster_bench import CACHE, _rows, read_queries, split_catalog
from nanhu.engine.catalog import Catalog
from nanhu.engine.fingerprint import Fingerprint
from nanhu.engine.matcher import Matcher
from nanhu.server.cluster_core import open_view
from nanhu.server.cluster_ray import start_actors, stop_actors

#: the bench's cached quick query set (200 positives, then the negatives)
QUERY_SET = "scale-queries-audio-v3-f6-p0.15-1cc93e6a58-0-200-*.npz"

where, query_dir, n, label = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
source = CACHE / "audio-catalog-audio-v3-1cc93e6a58" if where == "bench" else Path(where)
if query_dir == "bench":
    queries = read_queries(min(CACHE.glob(QUERY_SET)),
                           60, 40, 200)
else:
    queries = [(p.name, Fingerprint.from_bytes(p.read_bytes()).keyed())
               for p in sorted(Path(query_dir).glob("*.fp"))]
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
try:  # as the front door joins Ray (server/cluster_ray.py connect), where the checkout does
    from nanhu.server.cluster_ray import INLINE_BYTES, INLINE_ENV

    os.environ.setdefault(INLINE_ENV, str(INLINE_BYTES))
except ImportError:
    pass
ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False,
         namespace="nanhu")
splits = Path(os.environ.get("NANHU_SPLITS", source.parent))  # where the shard copies go
layout = split_catalog(source, splits / f"cluster-{n}-{source.name}", n)
start_actors(layout)
_, view, _ = open_view(layout.root, address=ray.get_runtime_context().gcs_address)
on_ray = Matcher(view)
differ = 0
for (_, fp), want in zip(queries, expected):
    view.refresh()
    differ += _rows(on_ray.match(fp)) != want
local = open_view(layout.root)[1]
in_process = Matcher(local)
measure(in_process, local)  # warm
out = {"label": label, "shards": n, "queries": len(queries), "differ": differ,
       "load": os.getloadavg()[0]}
before = dict(view.round_trips)
for rep in range(2):
    out[f"local{rep}"] = measure(in_process, local)
    out[f"ray{rep}"] = measure(on_ray, view)
out["round_trips"] = {k: round((v - before.get(k, 0)) / (2 * len(queries)), 2)
                      for k, v in view.round_trips.items() if v - before.get(k, 0)}
out["round_trips_per_query"] = round(sum(out["round_trips"].values()), 2)
# bytes a trip, pickled as Ray's serialiser writes them: one more pass, in process, sized
sent: list[int] = []
back: list[int] = []
call_each = local.fanout.call_each


def sized(method, calls):
    answers = call_each(method, calls)
    sent.extend(len(pickle.dumps(args, protocol=5)) for _, args in calls)
    back.extend(len(pickle.dumps(a, protocol=5)) for a in answers)
    return answers


local.fanout.call_each = sized
measure(in_process, local)
out["bytes_sent_per_call"] = [int(np.median(sent)), int(np.percentile(sent, 90)), max(sent)]
out["bytes_back_per_call"] = [int(np.median(back)), int(np.percentile(back, 90)), max(back)]
out["back_over_100k"] = round(float(np.mean(np.array(back) > 100 * 1024)), 3)
out["load_end"] = os.getloadavg()[0]
print(json.dumps(out))
stop_actors(layout)
ray.shutdown()
