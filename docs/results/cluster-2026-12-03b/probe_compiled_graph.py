import time, ray, numpy as np
ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
@ray.remote
class A:
    def f(self, x): return x
a = A.remote(); ray.get(a.f.remote(1))
from ray.dag import InputNode
with InputNode() as inp:
    dag = a.f.bind(inp)
try:
    c = dag.experimental_compile()
    for _ in range(10): ray.get(c.execute(1))
    ts = []
    payload = (np.zeros(20000, np.uint16), {"x": 1})
    for _ in range(500):
        t = time.perf_counter(); ray.get(c.execute(payload)); ts.append(time.perf_counter() - t)
    print("compiled median %.3f ms" % (np.median(ts) * 1e3))
    c.teardown()
except Exception as e:
    print("compiled failed", type(e).__name__, e)
