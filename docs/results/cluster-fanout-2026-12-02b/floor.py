"""Ray's own cost of one actor call on this machine, by the size of what travels: a no-op, and
calls that send and return numpy buffers of a given size, as a tuple of arrays or as one flat
buffer, with and without task events; wall and CPU of the whole process tree per call.

    .venv/bin/python floor.py
"""

import json
import os
import time

import numpy as np
import psutil
import ray

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


@ray.remote
class Echo:
    def call(self, method, *args):
        return getattr(self, method)(*args)

    def noop(self):
        return None

    def arrays(self, keys, n_back):
        return (keys, (np.arange(n_back, dtype=np.uint32), np.arange(n_back, dtype=np.uint32),
                       np.arange(n_back, dtype=np.uint32)))

    def flat(self, keys, n_back):
        return np.zeros(keys.size + 3 * n_back, np.uint32)


def measure(actor, method, args, calls=200, events=True):
    remote = actor.call if events else actor.call.options(enable_task_events=False)
    for _ in range(20):
        ray.get(remote.remote(method, *args))
    cpu = tree_cpu()
    ms = []
    for _ in range(calls):
        s = time.perf_counter()
        ray.get(remote.remote(method, *args))
        ms.append((time.perf_counter() - s) * 1e3)
    return {"p50_ms": round(float(np.median(ms)), 3),
            "cpu_ms": round((tree_cpu() - cpu) / calls * 1e3, 3)}


ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
actor = Echo.remote()
ray.get(actor.call.remote("noop"))
time.sleep(2)
idle = tree_cpu()
time.sleep(5)
out = {"load": os.getloadavg()[0], "idle_cpu_ms_per_s": round((tree_cpu() - idle) / 5 * 1e3, 1)}
out["noop"] = measure(actor, "noop", ())
out["noop_no_events"] = measure(actor, "noop", (), events=False)
for n_keys, n_back in ((2000, 2000), (5000, 9000), (5000, 30000)):
    keys = np.arange(n_keys, dtype=np.uint32)
    tag = f"{n_keys * 4 // 1024}k_send_{(n_keys + 3 * n_back) * 4 // 1024}k_back"
    out[f"arrays_{tag}"] = measure(actor, "arrays", (keys, n_back))
    out[f"flat_{tag}"] = measure(actor, "flat", (keys, n_back))
print(json.dumps(out))
ray.shutdown()
