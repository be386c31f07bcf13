"""Queries on Ray in a loop for py-spy to sample: writes the driver's and the replica actors'
pids to PIDS_FILE, then runs the queries for SECONDS.

    .venv/bin/python prof.py SOURCE QUERIES SHARDS SECONDS PIDS_FILE
"""

import json
import os
import sys
import time
from pathlib import Path

import psutil
import ray

from nanhu.benchmarks.cluster_bench import CACHE, read_queries, split_catalog
from nanhu.engine.fingerprint import Fingerprint
from nanhu.engine.matcher import Matcher
from nanhu.server.cluster_core import open_view
from nanhu.server.cluster_ray import start_actors, stop_actors

try:  # a replica actor a node (this branch); else one a shard
    from nanhu.server.cluster_ray import holder_name
except ImportError:
    from nanhu.server.cluster_ray import cluster_name, replica_name

    def holder_name(layout, shard, replica):
        return replica_name(cluster_name(layout), shard, replica)

#: the bench's cached quick query set (200 positives, then the negatives)
QUERY_SET = "scale-queries-audio-v3-f6-p0.15-1cc93e6a58-0-200-*.npz"

where, query_dir, n, seconds, pids = (sys.argv[1], sys.argv[2], int(sys.argv[3]),
                                      float(sys.argv[4]), Path(sys.argv[5]))
source = CACHE / "audio-catalog-audio-v3-1cc93e6a58" if where == "bench" else Path(where)
if query_dir == "bench":
    queries = read_queries(min(CACHE.glob(QUERY_SET)),
                           60, 40, 200)
else:
    queries = [(p.name, Fingerprint.from_bytes(p.read_bytes()).keyed())
               for p in sorted(Path(query_dir).glob("*.fp"))]
ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False,
         namespace="nanhu")
splits = Path(os.environ.get("NANHU_SPLITS", source.parent))  # where the shard copies go
layout = split_catalog(source, splits / f"cluster-{n}-{source.name}", n)
start_actors(layout)
_, view, _ = open_view(layout.root, address=ray.get_runtime_context().gcs_address)
matcher = Matcher(view)
for _, fp in queries:
    view.refresh()
    matcher.match(fp)
holders = sorted({holder_name(layout, s, 0) for s in range(n)})
handles = [ray.get_actor(h, namespace="nanhu") for h in holders]
actors = [ray.get(h.pid.remote()) for h in handles]
pids.write_text(json.dumps({"driver": os.getpid(), "replicas": actors}))
me = psutil.Process()


def cpu_by_process() -> dict:
    """{name: user + system CPU s} of this process and every process it started."""
    out: dict = {}
    for process in [me, *me.children(recursive=True)]:
        try:
            cpu = process.cpu_times()
            name = "driver" if process.pid == me.pid else (
                "replica" if process.pid in actors else " ".join(process.cmdline()[:2])[-40:])
        except psutil.Error:
            continue
        out[name] = out.get(name, 0.0) + cpu.user + cpu.system
    return out


def instrument(actor_self) -> None:
    """In the actor: count the CPU its shard methods take (the work), apart from Ray's."""
    import time as clock

    actor_self.work_s = 0.0
    for target in (getattr(actor_self, "shards", None) or {0: actor_self.target}).values():
        for method in ("checked", "lookup", "lookups", "postings_of", "search"):
            inner = getattr(target, method)

            def timed(*args, _inner=inner):
                started = clock.thread_time()
                try:
                    return _inner(*args)
                finally:
                    actor_self.work_s += clock.thread_time() - started
            setattr(target, method, timed)


ray.get([h.__ray_call__.remote(instrument) for h in handles])
fanout_s = [0.0]
call_each = view.fanout.call_each


def timed_fanout(method, calls):
    started = time.thread_time()
    try:
        return call_each(method, calls)
    finally:
        fanout_s[0] += time.thread_time() - started


view.fanout.call_each = timed_fanout
start_cpu = cpu_by_process()
done, end = 0, time.monotonic() + seconds
while time.monotonic() < end:
    for _, fp in queries:
        view.refresh()
        matcher.match(fp)
        done += 1
end_cpu = cpu_by_process()
work = sum(ray.get([h.__ray_call__.remote(lambda self: self.work_s) for h in handles]))
print(json.dumps({"queries": done, "per_s": done / seconds,
                  "driver_fanout_ms_per_query": round(fanout_s[0] / done * 1e3, 2),
                  "replica_work_ms_per_query": round(work / done * 1e3, 2),
                  "cpu_ms_per_query": {k: round((v - start_cpu.get(k, 0.0)) / done * 1e3, 2)
                                       for k, v in end_cpu.items()
                                       if v - start_cpu.get(k, 0.0) > 0.005}}))
stop_actors(layout)
ray.shutdown()
