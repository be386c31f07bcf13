import time, ray, numpy as np, psutil, os
ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
@ray.remote
class A:
    def f(self, x): return x
a = A.remote(); ray.get(a.f.remote(1))
def tree():
    me = psutil.Process(); procs = [me] + me.children(recursive=True)
    t = 0
    for p in procs:
        try: c = p.cpu_times(); t += c.user + c.system
        except psutil.Error: pass
    return t
def per_proc():
    me = psutil.Process(); out = {}
    for p in [me] + me.children(recursive=True):
        try: c = p.cpu_times(); out[p.pid] = (" ".join(p.cmdline())[:60], c.user + c.system)
        except psutil.Error: pass
    return out
time.sleep(2)
b = per_proc(); t0 = time.time(); time.sleep(5); e = per_proc()
print("idle 5s cpu ms/s:", round(sum(e[k][1] - b[k][1] for k in e if k in b) / 5 * 1e3, 1))
for k in e:
    if k in b and e[k][1] - b[k][1] > 0.01: print("   ", e[k][0], round((e[k][1] - b[k][1]) / 5 * 1e3, 1))
b = per_proc(); t0 = time.time()
N = 1000
for _ in range(N): ray.get(a.f.remote(1))
wall = time.time() - t0; e = per_proc()
print("per call: wall %.2f ms, cpu %.2f ms" % (wall / N * 1e3, sum(e[k][1] - b[k][1] for k in e if k in b) / N * 1e3))
for k in e:
    if k in b and e[k][1] - b[k][1] > 0.05: print("   ", e[k][0], round((e[k][1] - b[k][1]) / N * 1e3, 3))
