"""Wall time of a call through a Ray Compiled Graph of one actor (a 40 kB payload).

Run: ``python probe_compiled_graph.py`` (starts a local Ray on 2 CPUs)."""

import time

import numpy as np
import ray
from ray.dag import InputNode


@ray.remote
class Echo:
    def f(self, x):
        return x


def main(calls: int = 500) -> None:
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             configure_logging=False)
    actor = Echo.remote()
    ray.get(actor.f.remote(1))
    with InputNode() as inp:
        dag = actor.f.bind(inp)
    compiled = dag.experimental_compile()
    for _ in range(10):
        ray.get(compiled.execute(1))
    payload = (np.zeros(20000, np.uint16), {"x": 1})
    times = []
    for _ in range(calls):
        t = time.perf_counter()
        ray.get(compiled.execute(payload))
        times.append(time.perf_counter() - t)
    print(f"compiled graph: median {np.median(times) * 1e3:.3f} ms a call")
    compiled.teardown()
    ray.shutdown()


if __name__ == "__main__":
    main()
