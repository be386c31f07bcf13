"""Wall and CPU time of an empty Ray actor task on this machine, and an idle Ray's CPU.

Run: ``python probe_ray_task.py`` (starts a local Ray on 2 CPUs)."""

import time

import psutil
import ray


@ray.remote
class Echo:
    def f(self, x):
        return x


def cpu_by_process() -> dict[int, tuple[str, float]]:
    """{pid: (command line, CPU seconds)} of this process and its children."""
    me = psutil.Process()
    out = {}
    for p in [me, *me.children(recursive=True)]:
        try:
            c = p.cpu_times()
            out[p.pid] = (" ".join(p.cmdline())[:60], c.user + c.system)
        except psutil.Error:
            pass
    return out


def spent(before: dict, after: dict) -> float:
    return sum(after[k][1] - before[k][1] for k in after if k in before)


def main(calls: int = 1000) -> None:
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             configure_logging=False)
    actor = Echo.remote()
    ray.get(actor.f.remote(1))
    time.sleep(2)
    before = cpu_by_process()
    time.sleep(5)
    print(f"idle Ray: {spent(before, cpu_by_process()) / 5 * 1e3:.1f} ms of CPU a second")
    before = cpu_by_process()
    t0 = time.perf_counter()
    for _ in range(calls):
        ray.get(actor.f.remote(1))
    wall = time.perf_counter() - t0
    after = cpu_by_process()
    print(f"per call: wall {wall / calls * 1e3:.2f} ms, "
          f"CPU {spent(before, after) / calls * 1e3:.2f} ms")
    for pid, (name, cpu) in after.items():
        if pid in before and cpu - before[pid][1] > 0.05:
            print(f"    {name}: {(cpu - before[pid][1]) / calls * 1e3:.3f} ms a call")
    ray.shutdown()


if __name__ == "__main__":
    main()
