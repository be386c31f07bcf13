"""CPU of a local Ray's process tree (raylet, GCS, each shard's replica and writer actors)
while it serves nothing: the floor under every per-query CPU figure of ab.py.

    .venv/bin/python idle.py SHARDS
"""

import json
import sys
import time

import psutil
import ray

from nanhu.benchmarks.cluster_bench import CACHE, split_catalog
from nanhu.server.cluster_ray import start_actors, stop_actors

n = int(sys.argv[1])
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


ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False,
         namespace="nanhu")
source = CACHE / "audio-catalog-audio-v3-1cc93e6a58"
layout = split_catalog(source, CACHE / f"cluster-{n}-{source.name}", n)
start_actors(layout)
time.sleep(3)
cpu, started = tree_cpu(), time.perf_counter()
time.sleep(10)
print(json.dumps({"shards": n, "processes": len(me.children(recursive=True)),
                  "idle_cpu_ms_per_s": round((tree_cpu() - cpu)
                                             / (time.perf_counter() - started) * 1e3, 1)}))
stop_actors(layout)
ray.shutdown()
