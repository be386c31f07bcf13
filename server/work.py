"""Where the heavy work runs: a bounded pool of worker processes, a bound on concurrent calls,
and the spool that holds uploads while they are worked on.

Decoding, fingerprinting and matching hold the GIL for long stretches, so they run in worker
processes (:mod:`server.jobs`; ``ProcessPoolExecutor`` over a ``forkserver`` that has the engine
preloaded: new workers start in milliseconds and never inherit gRPC's threads). Uploads are
spooled to a private temporary folder and handed to a worker by path, so the bytes are not
copied between processes; every spool file is removed when its call ends, however it ends.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from engine.errors import LimitExceeded, MediaError
from server import jobs
from server.status import CallCancelled, DeadlinePassed, WorkerCrashed

log = logging.getLogger(__name__)

_PRELOAD = ["engine.fingerprint", "engine.matcher", "engine.video", "server.jobs"]


def _call_wait_s(context) -> float | None:
    remaining = context.time_remaining()
    return None if remaining is None or remaining > 1e6 else remaining


class WorkerPool:
    """``workers`` processes for fingerprinting and screening, started once and reused."""

    def __init__(self, workers: int, catalog_dir: str | None = None) -> None:
        self.workers = max(1, int(workers))
        self.catalog_dir = catalog_dir
        self._context = multiprocessing.get_context("forkserver")
        self._context.set_forkserver_preload(_PRELOAD)
        self._lock = threading.Lock()
        self._executor = self._new()

    def _new(self) -> ProcessPoolExecutor:
        # Every worker, replacements included, opens the catalog as it starts.
        return ProcessPoolExecutor(max_workers=self.workers, mp_context=self._context,
                                   initializer=jobs.ready, initargs=(self.catalog_dir,))

    @property
    def pids(self) -> list[int]:
        """Process ids of the workers running now."""
        return sorted(getattr(self._executor, "_processes", None) or {})

    def warm(self) -> list[int]:
        """Start workers now rather than on the first upload (the rest start as load comes);
        returns the pids of those running."""
        for future in [self.submit(jobs.ready) for _ in range(self.workers)]:
            future.result()
        return self.pids

    def submit(self, fn, /, *args, **kwargs) -> Future:
        """Queue a job; a pool broken by a dead worker (crash, OOM kill) is replaced first."""
        with self._lock:
            try:
                return self._executor.submit(fn, *args, **kwargs)
            except BrokenProcessPool:
                log.warning("event=workers-restarted reason=\"a worker process died\"")
                self._executor.shutdown(wait=False, cancel_futures=True)
                self._executor = self._new()
                return self._executor.submit(fn, *args, **kwargs)

    def shutdown(self, *, wait: bool = True, timeout_s: float = 10.0) -> None:
        """Drop queued jobs; with ``wait``, give running ones ``timeout_s`` to finish (their calls
        are gone by now), then terminate the workers still busy."""
        processes = list((getattr(self._executor, "_processes", None) or {}).values())
        self._executor.shutdown(wait=False, cancel_futures=True)
        if not wait:
            return
        deadline = time.monotonic() + timeout_s
        for process in processes:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                log.warning("event=worker-terminated pid=%s", process.pid)
                process.terminate()
                process.join(5.0)


def wait_for_call(future: Future, context):
    """``future.result()``, unless the call ends first (cancel, disconnect or deadline)."""
    done = threading.Event()
    future.add_done_callback(lambda _: done.set())
    if not context.add_callback(done.set):  # the call has already ended
        future.cancel()
        raise CallCancelled("client cancelled or disconnected")
    done.wait(_call_wait_s(context))
    if not future.done():
        future.cancel()  # a job that already runs finishes in its worker; its result is dropped
        if context.is_active():
            raise DeadlinePassed("deadline passed while the media was worked on")
    if not context.is_active():
        raise CallCancelled("client cancelled, disconnected or ran out of time")
    try:
        return future.result()
    except BrokenProcessPool:
        raise WorkerCrashed("a worker process died on this media (crashed or out of "
                            "memory); retrying is safe") from None


class Limiter:
    """At most ``limit`` calls doing heavy work (uploads, fingerprinting, matching) at once.

    Beyond it :meth:`slot` raises :class:`LimitExceeded` at once (RESOURCE_EXHAUSTED) rather
    than queueing: a platform retries with backoff, and the server never holds more uploads
    than it can work on.
    """

    def __init__(self, limit: int) -> None:
        self.limit = int(limit)
        self.in_flight = 0
        self._cond = threading.Condition()

    @contextlib.contextmanager
    def slot(self, what: str) -> Iterator[_Slot]:
        with self._cond:
            if self.in_flight >= self.limit:
                raise LimitExceeded(
                    f"server busy: {self.in_flight} calls in progress (limit {self.limit}); retry later"
                )
            self.in_flight += 1
            self._cond.notify_all()
        slot = _Slot(self)
        try:
            yield slot
        finally:
            slot.release()

    def _release(self) -> None:
        with self._cond:
            self.in_flight -= 1
            self._cond.notify_all()

    def wait_until(self, predicate, timeout: float | None = None) -> bool:
        """Block until ``predicate(in_flight)`` holds (tests, shutdown); False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: predicate(self.in_flight), timeout)


class _Slot:
    """A held place in the :class:`Limiter`; stays taken while a worker job it started runs."""

    def __init__(self, limiter: Limiter) -> None:
        self._limiter = limiter
        self._holders = 1
        self._lock = threading.Lock()

    def hold_until(self, future: Future) -> Future:
        with self._lock:
            self._holders += 1
        future.add_done_callback(lambda _: self.release())
        return future

    def release(self) -> None:
        with self._lock:
            self._holders -= 1
            last = self._holders == 0
        if last:
            self._limiter._release()


class Spool:
    """A private folder for uploads in progress; each file lives exactly as long as its call."""

    def __init__(self, parent: str | Path | None = None) -> None:
        self.path = Path(tempfile.mkdtemp(prefix="nanhu-uploads-", dir=parent))
        self.open_uploads = 0
        self._cond = threading.Condition()

    def _count(self, delta: int) -> None:
        with self._cond:
            self.open_uploads += delta
            self._cond.notify_all()

    def wait_until(self, predicate, timeout: float | None = None) -> bool:
        """Block until ``predicate(open_uploads)`` holds (tests, shutdown); False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: predicate(self.open_uploads), timeout)

    @contextlib.contextmanager
    def receive(self, chunks: Iterable[bytes], *, name: str, max_bytes: int) -> Iterator[Path]:
        """Write ``chunks`` to a spool file and yield its path; the file is gone afterwards.

        Raises LimitExceeded past ``max_bytes`` (without reading the rest) and MediaError when
        there is no data. A client that cancels mid-upload ends the iteration with an error,
        which propagates after the partial file is removed.
        """
        fd, tmp = tempfile.mkstemp(dir=self.path, suffix=".upload")
        path = Path(tmp)
        self._count(+1)
        try:
            total = 0
            with os.fdopen(fd, "wb") as handle:
                for data in chunks:
                    total += len(data)
                    if total > max_bytes:
                        raise LimitExceeded(f"{name}: upload is larger than the limit of {max_bytes} bytes")
                    handle.write(data)
            if total == 0:
                raise MediaError(f"{name}: no data")
            yield path
        finally:
            path.unlink(missing_ok=True)
            self._count(-1)

    def files(self) -> list[Path]:
        return sorted(self.path.iterdir()) if self.path.exists() else []

    def close(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
