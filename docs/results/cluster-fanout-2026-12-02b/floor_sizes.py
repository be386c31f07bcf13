"""Ray's cost of one actor call by the bytes returned (and sent), on this machine: wall p50 and
CPU of the whole process tree per call, for a numpy uint32 array, the same as bytes, and a tuple
of four arrays of the same total; both sides of the 100 KiB inline limit.

    .venv/bin/python floor_sizes.py
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
    def back(self, kind, nbytes, _sent=None):
        n = nbytes // 4
        if kind == "array":
            return np.ones(n, np.uint32)
        if kind == "bytes":
            return np.ones(n, np.uint32).tobytes()
        return tuple(np.ones(n // 4, np.uint32) for _ in range(4))


def measure(actor, kind, nbytes, sent=None, calls=150):
    for _ in range(10):
        ray.get(actor.back.remote(kind, nbytes, sent))
    cpu = tree_cpu()
    ms = []
    for _ in range(calls):
        s = time.perf_counter()
        ray.get(actor.back.remote(kind, nbytes, sent))
        ms.append((time.perf_counter() - s) * 1e3)
    return [round(float(np.median(ms)), 2), round((tree_cpu() - cpu) / calls * 1e3, 2)]


ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
actor = Echo.remote()
ray.get(actor.back.remote("array", 4))
out: dict = {"load": os.getloadavg()[0]}
for kib in (0, 4, 16, 48, 96, 110, 200, 400):
    for kind in ("array", "bytes", "tuple"):
        out[f"{kind}_back_{kib}k"] = measure(actor, kind, kib * 1024)
for kib in (16, 48, 96, 200):
    out[f"array_sent_{kib}k"] = measure(actor, "array", 0, np.ones(kib * 256, np.uint32))
out["load_end"] = os.getloadavg()[0]
print(json.dumps(out))
ray.shutdown()
