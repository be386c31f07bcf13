"""Where fingerprinting runs: local worker processes, or Ray tasks.

Both executors take the same task (:func:`indexer.worker.fingerprint_file`) and hand back
``concurrent.futures.Future`` objects, so the ingest loop does not care which one runs.

**Ray's shared-storage assumption.** A Ray task receives the file's absolute path, not its
bytes: the file is read where the task runs. Every Ray node must therefore see the source files
at the same paths as the machine running ``nanhu ingest`` (a shared filesystem: NFS, a cluster
filesystem, a bind mount), and must have Nanhu installed (``pip install 'nanhu[ray]'``) in the
same version, so fingerprints are made with the same parameters. The catalog writer stays
single and local: only fingerprints travel back.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import time
from concurrent.futures import Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

from nanhu.engine.errors import InvalidArgument
from nanhu.indexer.worker import fingerprint_file, ready, worker_init

log = logging.getLogger(__name__)

#: native thread pools a worker would start; one worker per core, one thread per worker
_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


class LocalExecutor:
    """A pool of worker processes on this machine (all cores by default).

    Workers come from a fork server that has already imported the engine, so a pool (or a
    replacement after a worker died) starts in milliseconds, and no worker inherits the
    parent's threads or open catalog.
    """

    name = "local"
    restartable = True
    broken = BrokenProcessPool

    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers or available_cores()
        for variable in _THREAD_VARIABLES:
            os.environ.setdefault(variable, "1")
        self._context = multiprocessing.get_context("forkserver")
        self._context.set_forkserver_preload(["nanhu.indexer.worker"])
        started = time.perf_counter()
        self._pool = self._start()
        wait([self._pool.submit(ready) for _ in range(self.workers)])
        #: seconds until every worker was up (reported apart from the throughput)
        self.startup_s = time.perf_counter() - started

    def _start(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(self.workers, mp_context=self._context,
                                   initializer=worker_init, initargs=(os.getpid(),))

    def submit(self, path: str, audio_params: dict, video: bool) -> Future:
        return self._pool.submit(fingerprint_file, path, audio_params, video)

    def restart(self) -> None:
        """Replace a pool broken by a worker that died (crash, out of memory)."""
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._pool = self._start()

    def shutdown(self, *, cancel: bool = False) -> None:
        self._pool.shutdown(wait=True, cancel_futures=cancel)


class RayExecutor:
    """Fingerprinting as Ray tasks, one CPU each.

    ``address`` is a Ray address (``auto``, ``HOST:PORT``, ``ray://HOST:PORT``) or ``local``
    (start a private Ray on this machine for the run). When this process already called
    ``ray.init`` the running Ray is used as it is.
    """

    name = "ray"
    restartable = False
    broken = ()

    def __init__(self, address: str, workers: int | None = None) -> None:
        try:
            import ray
        except ImportError:
            raise InvalidArgument(
                "--ray needs Ray, an optional extra: pip install 'nanhu[ray]'"
            ) from None
        self._ray = ray
        self._owns = False
        started = time.perf_counter()
        if not ray.is_initialized():
            options = {"include_dashboard": False, "log_to_driver": False}
            try:
                if address == "local":
                    # "local": a new instance, never a cluster some other job started here
                    ray.init(address="local", num_cpus=workers or available_cores(),
                             **options)
                else:
                    ray.init(address=address, **options)
            except (ConnectionError, ValueError, RuntimeError) as exc:
                raise InvalidArgument(f"cannot connect to Ray at {address!r}: {exc}") from exc
            self._owns = True
        self.workers = workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
        self._task = ray.remote(num_cpus=1, max_retries=2)(fingerprint_file)
        self._refs: dict[Future, object] = {}
        warm = ray.remote(num_cpus=1)(ready)
        ray.get([warm.remote() for _ in range(self.workers)])
        self.startup_s = time.perf_counter() - started

    def submit(self, path: str, audio_params: dict, video: bool) -> Future:
        ref = self._task.remote(path, audio_params, video)
        future = ref.future()
        self._refs[future] = ref
        future.add_done_callback(lambda f: self._refs.pop(f, None))
        return future

    def restart(self) -> None:  # pragma: no cover - Ray retries failed tasks itself
        raise NotImplementedError

    def shutdown(self, *, cancel: bool = False) -> None:
        if cancel:
            for ref in self._refs.copy().values():  # callbacks pop from other threads
                self._ray.cancel(ref, force=True)
        if self._owns:
            self._ray.shutdown()


def make_executor(*, workers: int | None, ray_address: str | None) -> LocalExecutor | RayExecutor:
    if workers is not None and workers < 1:
        raise InvalidArgument("--workers must be at least 1")
    if ray_address:
        return RayExecutor(ray_address, workers)
    return LocalExecutor(workers)


class LazyExecutor:
    """Starts the real executor on the first task, so a run with nothing to do starts none.

    ``guess`` sizes the window until then; with Ray and no ``workers``, the cluster's CPUs
    replace it once connected.
    """

    def __init__(self, guess: int, workers: int | None, ray_address: str | None) -> None:
        self.workers = guess
        self._requested = workers
        self.name = "ray" if ray_address else "local"
        self._ray_address = ray_address
        self._executor = None
        self.broken: type[BaseException] | tuple = ()
        self.startup_s = 0.0

    def submit(self, path: str, audio_params: dict, video: bool) -> Future:
        if self._executor is None:
            self._executor = make_executor(workers=self._requested, ray_address=self._ray_address)
            self.workers = self._executor.workers
            self.broken = self._executor.broken
            self.startup_s = self._executor.startup_s
        return self._executor.submit(path, audio_params, video)

    def restart(self) -> None:
        self._executor.restart()

    def shutdown(self, *, cancel: bool = False) -> None:
        if self._executor is not None:
            self._executor.shutdown(cancel=cancel)
