"""Where the heavy work runs: a bounded pool of worker processes, a bound on concurrent calls,
and the spool that holds uploads while they are worked on.

Decoding, fingerprinting and matching hold the GIL for long stretches, so they run in worker
processes (:mod:`server.jobs`, run by :class:`server.pool.WorkerPool`: one job at a time per
worker, each within a CPU-time and memory budget). Uploads are spooled to a private temporary
folder and handed to a worker by path, so the bytes are not copied between processes; every
spool file is removed when its call ends, however it ends.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import shutil
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import Future
from pathlib import Path

from nanhu.engine.errors import LimitExceeded, MediaError
from nanhu.server.pool import JobBudget as JobBudget  # noqa: F401 - re-exported: where servers look
from nanhu.server.pool import WorkerPool as WorkerPool  # noqa: F401
from nanhu.server.status import CallCancelled, DeadlinePassed, ServerBusy

log = logging.getLogger(__name__)


def _call_wait_s(context) -> float | None:
    remaining = context.time_remaining()
    return None if remaining is None or remaining > 1e6 else remaining


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
    return future.result()  # a dead worker's job raises WorkerCrashed, one over budget BudgetExceeded


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
                raise ServerBusy(
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


def idle_limited(items: Iterator, idle_s: float | None, *, what: str = "upload") -> Iterator:
    """The items of ``items`` (a gRPC request stream), but :class:`LimitExceeded` when none
    arrives for ``idle_s`` seconds: a stalled client must not hold a concurrency slot and a
    spool file forever. The stream is read by a helper thread; once the call is aborted, gRPC
    ends the stream and the thread with it."""
    if idle_s is None:
        yield from items
        return
    box: queue.Queue = queue.Queue(maxsize=4)
    stop = threading.Event()
    end = object()

    def hand_over(entry: tuple) -> bool:
        """Put ``entry`` in the box unless the consumer is gone; False once it is."""
        while not stop.is_set():
            try:
                box.put(entry, timeout=1.0)
                return True
            except queue.Full:
                continue
        return False

    def pump() -> None:
        try:
            for item in items:
                if not hand_over(("item", item)):
                    return
            hand_over(("end", end))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, re-raised there
            hand_over(("error", exc))

    threading.Thread(target=pump, name="nanhu-upload-reader", daemon=True).start()
    try:
        while True:
            try:
                kind, value = box.get(timeout=idle_s)
            except queue.Empty:
                raise LimitExceeded(
                    f"{what} stalled: no data for {idle_s:g} s (the server's idle limit)") from None
            if kind == "end":
                return
            if kind == "error":
                raise value
            yield value
    finally:
        stop.set()


_SPOOL_PREFIX = "nanhu-uploads-"
_OWNER = "owner.pid"


def _spool_is_dead(folder: Path) -> bool:
    try:
        pid = int((folder / _OWNER).read_text().strip())
    except FileNotFoundError:
        try:
            return time.time() - folder.stat().st_mtime > 3600.0
        except OSError:
            return False
    except (OSError, ValueError):
        return False
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


class Spool:
    """A private folder for uploads in progress; each file lives exactly as long as its call.

    The folder holds ``owner.pid``; at start-up, folders of servers that are gone (killed,
    crashed) are removed with the uploads they held (:meth:`remove_dead`).
    """

    def __init__(self, parent: str | Path | None = None) -> None:
        self.remove_dead(parent)
        self.path = Path(tempfile.mkdtemp(prefix=_SPOOL_PREFIX, dir=parent))
        (self.path / _OWNER).write_text(str(os.getpid()))
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
        """Uploads in the spool now."""
        if not self.path.exists():
            return []
        return sorted(p for p in self.path.iterdir() if p.name != _OWNER)

    @staticmethod
    def remove_dead(parent: str | Path | None = None) -> list[Path]:
        """Remove the spool folders (under ``parent``, default the temporary folder) of servers
        no longer running; a folder without an owner file counts as dead once an hour old.
        Returns the folders removed."""
        removed = []
        for folder in Path(parent or tempfile.gettempdir()).glob(_SPOOL_PREFIX + "*"):
            if not folder.is_dir() or not _spool_is_dead(folder):
                continue
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
        if removed:
            log.warning("event=spool-cleaned removed=%d reason=\"their servers are gone\"",
                        len(removed))
        return removed

    def close(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
