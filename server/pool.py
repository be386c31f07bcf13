"""The server's worker processes: one job at a time each, every job within a CPU-time and
memory budget.

Each worker is a process started from a multiprocessing ``forkserver`` that has the engine
preloaded (new workers start in milliseconds and never inherit gRPC's threads), fed by one
thread of this process over a pipe. That thread watches the job while it runs: every
``JobBudget.poll_s`` it reads the worker's CPU time (user + system, all its threads, since the
job started) and its private resident memory (``RssAnon``: the memory-mapped catalog, which the
workers share through the page cache, does not count) from ``/proc``. A job over either budget
has its worker killed (``SIGKILL``, so nothing in the job can hold it up); its caller gets
:class:`~engine.errors.BudgetExceeded` (``RESOURCE_EXHAUSTED``) naming the file and the budget,
and a fresh worker takes the dead one's place. A worker that dies by itself (a crash, the
kernel's OOM killer) fails its own job with :class:`~server.status.WorkerCrashed`. Either way
only that job's caller is affected: the other workers and their jobs go on
(``concurrent.futures.ProcessPoolExecutor`` fails every job in flight when one worker dies,
which is why the pool is not one).

The budget is checked by polling, so a job may overshoot it by what it does in one interval
(20 ms by default); the kernel's OOM killer remains the last line. Where ``/proc`` is missing
(not Linux) budgets are not enforced, and the pool says so once.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import os
import queue
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nanhu.engine.errors import BudgetExceeded, InvalidArgument
from nanhu.server import jobs
from nanhu.server.logs import configured_format
from nanhu.server.status import WorkerCrashed, log_event

log = logging.getLogger("nanhu.server.pool")

#: imported once by the fork server, so a new worker's first job does not pay for them
#: (OpenCV, for the local features of video, is ~0.25 s of CPU to import; the key sort's
#: compiled kernel ~0.3 s to load, :mod:`server.warm`)
_PRELOAD = ["nanhu.engine.fingerprint", "nanhu.engine.matcher", "nanhu.engine.video",
            "nanhu.engine.video.local_sampling", "nanhu.server.warm", "nanhu.server.jobs"]
def kernels_warm() -> bool:
    """Whether this process holds the key sort's compiled kernel already (in a worker: whether
    the fork server's warm-up, :mod:`server.warm`, reached it)."""
    from nanhu.engine.store.kernels import sort_words

    return bool(sort_words.signatures)


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass(frozen=True)
class JobBudget:
    """What one job may use in its worker process; None: no bound.

    The defaults are meant to leave room for the largest media the server accepts by default
    (3 hours; audio fingerprints at about 400x real time per core, a 2-hour audio self-match
    peaks near 1.2 GB) while stopping a job that would run or grow without end. They are not
    measured against 3 hours of HD video (docs/server.md says how to set them).
    """

    #: CPU seconds (user + system, all threads) one job may use
    cpu_s: float | None = 1800.0
    #: private resident memory (MiB) the worker may hold while it runs one job; this includes
    #: what the worker holds between jobs (the engine, the open catalog's small video index)
    memory_mb: float | None = 4096.0
    #: how often a running job is checked (seconds)
    poll_s: float = 0.02

    def __post_init__(self) -> None:
        for name in ("cpu_s", "memory_mb"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value > 0):
                raise InvalidArgument(f"job budget {name} = {value}: give a positive number "
                                      "(or none for no bound)")

    @property
    def bounded(self) -> bool:
        return self.cpu_s is not None or self.memory_mb is not None


def cpu_seconds(pid: int) -> float | None:
    """CPU time (user + system, every thread) process ``pid`` has used; None when unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS  # utime, stime


def private_bytes(pid: int) -> int | None:
    """Private (anonymous) resident memory of process ``pid``, bytes; None when unknown."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) * 1024
    return None


class RemoteTraceback(Exception):
    """The traceback of an exception raised in a worker (set as its ``__cause__``)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


@dataclass
class _Job:
    future: Future
    what: str
    fn: Callable
    args: tuple
    kwargs: dict


class _Worker:
    """One worker process (started on demand, replaced when it dies) and how to run a job in it."""

    def __init__(self, pool: WorkerPool, number: int) -> None:
        self.pool = pool
        self.number = number
        self.process = None
        self.conn = None
        self._ready = False
        self._lock = threading.Lock()

    @property
    def pid(self) -> int | None:
        process = self.process  # read once: the worker's thread may replace it meanwhile
        return process.pid if process is not None and process.is_alive() else None

    def start(self) -> None:
        """Start the process unless one is running (it opens the catalog as it starts); a process
        found dead (killed, crashed while idle) counts as replaced."""
        with self._lock:
            if self.process is not None and self.process.is_alive():
                return
            if self.process is not None:
                self.process.join(0)
                self.pool._note_death(self, reason=f"exit code {self.process.exitcode}")
            self._discard()
            ours, theirs = self.pool._context.Pipe()
            self.process = self.pool._context.Process(
                target=jobs.serve_jobs, name=f"nanhu-worker-{self.number}", daemon=True,
                args=(theirs, self.pool.catalog_dir, os.getpid(), configured_format()))
            self.process.start()
            theirs.close()  # the child's end lives in the child: a dead child reads as EOF
            self.conn, self._ready = ours, False

    def ready(self) -> int:
        """Wait until the process has started (catalog open); its pid. Raises what its start
        raised (a catalog that cannot be opened, say), or WorkerCrashed."""
        self.start()
        with self._lock:
            if not self._ready:
                try:
                    kind, value, trace = self.conn.recv()
                except (EOFError, OSError):
                    self._discard()
                    raise WorkerCrashed("a worker process died while starting") from None
                if kind != "ready":  # its start failed; it exits now
                    self.process.join(5.0)
                    self._discard()
                    raise _with_trace(value, trace)
                self._ready = True
            return self.process.pid

    def run(self, job: _Job) -> Any:
        """Run ``job`` in this worker, within the budget; its result, or raise its error."""
        self.ready()
        pid = self.process.pid
        budget = self.pool.budget
        watched = budget.bounded and self.pool.enforced
        cpu_start = cpu_seconds(pid) if watched else None
        try:
            self.conn.send((job.fn, job.args, job.kwargs))
        except OSError:
            pass  # died since it was ready: found below
        while True:
            if self.conn.poll(budget.poll_s if watched else None):
                try:
                    kind, value, trace = self.conn.recv()
                except (EOFError, OSError):
                    break  # the process died mid-job
                if kind == "ok":
                    return value
                raise _with_trace(value, trace)
            over = self._over_budget(pid, cpu_start) if watched else None
            if over is not None:
                self.kill()
                kind, detail = over
                self.pool._note_death(self, reason=f"{kind}-budget")
                log_event(log, logging.WARNING, event="job-over-budget", budget=kind,
                          file=job.what, pid=pid, detail=detail)
                self.pool._restart(self)
                raise BudgetExceeded(f"{job.what}: stopped, {detail}", budget=kind)
            if not self.process.is_alive():
                break
        self.process.join(5.0)
        code = self.process.exitcode
        self._discard()
        self.pool._note_death(self, reason=f"exit code {code}")
        self.pool._restart(self)
        raise WorkerCrashed(f"{job.what}: a worker process died on this media (crashed or out "
                            "of memory); retrying is safe")

    def _over_budget(self, pid: int, cpu_start: float | None) -> tuple[str, str] | None:
        """``(budget, what was used)`` when the running job is over a budget, else None.

        Memory is judged first: a job that allocates fast also burns CPU filling its pages, and
        when a late poll finds both over, the memory is what endangers the machine and what the
        caller should hear about."""
        budget = self.pool.budget
        if budget.memory_mb is not None:
            held = private_bytes(pid)
            if held is not None and held > budget.memory_mb * 2**20:
                return "memory", (f"over the server's memory budget: it held "
                                  f"{held / 2**20:.0f} MiB, the budget is {budget.memory_mb:g} "
                                  "MiB per job")
        if budget.cpu_s is not None and cpu_start is not None:
            used = cpu_seconds(pid)
            if used is not None and used - cpu_start > budget.cpu_s:
                return "cpu", (f"over the server's CPU-time budget: it used {used - cpu_start:.2f} s "
                               f"of CPU, the budget is {budget.cpu_s:g} s per job")
        return None

    def kill(self) -> None:
        """End the process at once (a job over budget; shutdown)."""
        process = self.process
        if process is not None and process.is_alive():
            _signal(process.pid, signal.SIGKILL)
            process.join(5.0)
        self._discard()

    def stop(self) -> None:
        """Ask an idle process to exit."""
        if self.conn is not None:
            try:
                self.conn.send(None)
            except (OSError, ValueError):
                pass

    def _discard(self) -> None:
        if self.conn is not None:
            self.conn.close()
        self.conn, self._ready = None, False
        if self.process is not None and not self.process.is_alive():
            self.process.join(0)
            self.process = None


def _with_trace(exc: BaseException, trace: str | None) -> BaseException:
    if trace:
        exc.__cause__ = RemoteTraceback(trace)
    return exc


class WorkerPool:
    """``workers`` processes for fingerprinting and screening, each job within ``budget``."""

    def __init__(self, workers: int, catalog_dir: str | None = None, *,
                 budget: JobBudget | None = None) -> None:
        self.workers = max(1, int(workers))
        self.catalog_dir = catalog_dir
        self.budget = budget or JobBudget()
        self.enforced = cpu_seconds(os.getpid()) is not None and private_bytes(os.getpid()) is not None
        if self.budget.bounded and not self.enforced:
            log.warning("event=budgets-not-enforced reason=\"no /proc on this system\"")
        self._context = multiprocessing.get_context("forkserver")
        self._context.set_forkserver_preload(_PRELOAD)
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._closed = False
        #: jobs submitted and not finished (queued or running)
        self.jobs = 0
        #: workers replaced because their process died (crashed, killed, over budget)
        self.restarts = 0
        #: jobs stopped for going over a budget, per budget ("cpu", "memory")
        self.over_budget = {"cpu": 0, "memory": 0}
        self._count_lock = threading.Lock()
        self._workers = [_Worker(self, number) for number in range(self.workers)]
        self._threads = [threading.Thread(target=self._serve, args=(w,), daemon=True,
                                          name=f"nanhu-pool-{w.number}") for w in self._workers]
        for thread in self._threads:
            thread.start()

    @property
    def pids(self) -> list[int]:
        """Process ids of the workers running now."""
        return sorted(pid for pid in (w.pid for w in self._workers) if pid is not None)

    def warm(self) -> list[int]:
        """Start every worker now rather than on the first upload; returns their pids."""
        for worker in self._workers:
            worker.start()
        for worker in self._workers:
            worker.ready()
        return self.pids

    def submit(self, fn: Callable, /, *args, **kwargs) -> Future:
        """Queue ``fn(*args, **kwargs)`` for the next free worker."""
        return self.submit_as("job", fn, *args, **kwargs)

    def submit_as(self, what: str, fn: Callable, /, *args, **kwargs) -> Future:
        """Queue a job about ``what`` (the file its errors name, as the caller knows it)."""
        if self._closed:
            raise RuntimeError("the worker pool is shut down")
        future: Future = Future()
        with self._count_lock:
            self.jobs += 1
        future.add_done_callback(self._job_done)
        self._queue.put(_Job(future, what, fn, args, kwargs))
        return future

    def _job_done(self, _future: Future) -> None:
        with self._count_lock:
            self.jobs -= 1

    def _note_death(self, worker: _Worker, *, reason: str) -> None:
        with self._count_lock:
            self.restarts += 1
            if reason.endswith("-budget"):
                self.over_budget[reason.removesuffix("-budget")] += 1
        log_event(log, logging.WARNING, event="worker-replaced", worker=worker.number,
                  reason=reason)

    def _restart(self, worker: _Worker) -> None:
        """Start a replacement now, so the next job finds it warm; a failure to start is left
        for that job to meet (and report)."""
        if self._closed:
            return
        try:
            worker.start()
        except OSError as exc:
            log_event(log, logging.WARNING, event="worker-start-failed", worker=worker.number,
                      error=str(exc))

    def _serve(self, worker: _Worker) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                worker.stop()
                return
            if not job.future.set_running_or_notify_cancel():
                continue  # cancelled while queued (deadline, client gone)
            try:
                result = worker.run(job)
            except BaseException as exc:  # noqa: BLE001 - the job's caller gets it
                job.future.set_exception(exc)
            else:
                job.future.set_result(result)

    def shutdown(self, *, wait: bool = True, timeout_s: float = 10.0) -> None:
        """Drop queued jobs; with ``wait``, give running ones ``timeout_s`` to finish (their calls
        are gone by now), then kill the workers still busy."""
        self._closed = True
        while True:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                break
            if job is not None:
                job.future.cancel()
        for _ in self._threads:
            self._queue.put(None)
        if not wait:
            return
        deadline = time.monotonic() + timeout_s
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        for worker, thread in zip(self._workers, self._threads):
            pid = worker.pid
            if thread.is_alive() and pid is not None:  # still busy: its thread sees it die
                log_event(log, logging.WARNING, event="worker-terminated", pid=pid)
                _signal(pid, signal.SIGKILL)
        for worker in self._workers:
            process = worker.process
            if process is not None:
                process.join(5.0)
                if process.is_alive():
                    _signal(process.pid, signal.SIGKILL)


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass
