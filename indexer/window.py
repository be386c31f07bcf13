"""The window between the source and the writer: files in flight, and results awaiting their turn.

Results are handed to the writer in source order (see :mod:`indexer.ingest`), so the window
holds both the files being fingerprinted and finished ones waiting for an earlier, slower file.
Its size bounds memory: at most ``max(8, 4 x workers)`` fingerprints, ``2 x workers`` in flight.

A worker that dies (a decoder crash, the out-of-memory killer) breaks the whole local pool and
fails every task in flight. Those files become *suspects*: the pool restarts and each suspect is
retried alone, so the one file that kills workers fails with that reason and the others are
registered.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, CancelledError, Future, wait
from dataclasses import dataclass

from nanhu.indexer.manifest import Entry

log = logging.getLogger(__name__)


@dataclass
class Slot:
    """An entry in the window, from submission until the writer takes it."""

    entry: Entry
    future: Future | None = None
    result: dict | None = None
    error: str | None = None
    suspect: bool = False  # in flight when a worker died: retried alone
    counted: bool = False  # handed out by Window.newly_finished (progress counts it once)

    @property
    def ready(self) -> bool:
        return self.result is not None or self.error is not None


class Window:
    """Slots in source order over an executor (local pool, Ray, or a lazy one of either)."""

    def __init__(self, executor, *, audio_params: dict, video: bool) -> None:
        self.executor = executor
        self.audio_params = audio_params
        self.video = video
        self._slots: deque[Slot] = deque()

    def __len__(self) -> int:
        return len(self._slots)

    @property
    def full(self) -> bool:
        return len(self._slots) >= max(8, 4 * self.executor.workers)

    def append(self, entry: Entry) -> None:
        self._slots.append(Slot(entry))

    def _running(self) -> list[Slot]:
        return [s for s in self._slots if s.future is not None and not s.ready]

    def submit(self) -> None:
        """Start waiting files, in order, up to ``2 x workers`` in flight; a suspect runs alone."""
        running = self._running()
        if any(s.suspect for s in running):
            return
        for slot in self._slots:
            if slot.future is not None or slot.ready:
                continue
            if (slot.suspect and running) or len(running) >= 2 * self.executor.workers:
                return
            slot.future = self.executor.submit(str(slot.entry.path), self.audio_params, self.video)
            running.append(slot)
            if slot.suspect:
                return

    def wait(self, timeout_s: float) -> None:
        """Until a task finishes (or ``timeout_s``), unless the first slot is ready already."""
        running = [s.future for s in self._running()]
        if running and not self._slots[0].ready:
            wait(running, timeout=timeout_s, return_when=FIRST_COMPLETED)
        self._collect()

    def newly_finished(self) -> Iterator[Slot]:
        """Slots whose work ended since the last call, wherever they stand in the window: a
        file is done when its worker is, not when the slower files before it are."""
        for slot in self._slots:
            if slot.ready and not slot.counted:
                slot.counted = True
                yield slot

    def take_ready(self) -> Iterator[Slot]:
        """Finished slots from the front, in source order, until one is still running."""
        while self._slots and self._slots[0].ready:
            yield self._slots.popleft()

    def _collect(self) -> None:
        broken = False
        for slot in self._slots:
            if slot.future is None or slot.ready or not slot.future.done():
                continue
            try:
                slot.result = slot.future.result()
            except self.executor.broken:
                broken = True
            except CancelledError:
                broken = True  # cancelled by a restart below; retried
            except Exception as exc:  # a bug in a worker or a Ray failure: report, keep going
                log.error("%s: fingerprinting failed unexpectedly", slot.entry.path, exc_info=exc)
                slot.error = f"internal error while fingerprinting: {type(exc).__name__}: {exc}"
        if broken:
            self._restart()

    def _restart(self) -> None:
        for slot in self._slots:
            if slot.future is None or slot.ready:
                continue
            future = slot.future
            if future.done() and not future.cancelled() and future.exception() is None:
                slot.result = future.result()
                continue
            if slot.suspect:  # it ran alone, so it is the file that kills workers
                slot.error = "the worker process died while fingerprinting this file"
            slot.suspect = True
            slot.future = None
        log.warning("a worker process died; restarting the pool and retrying its files one by one")
        self.executor.restart()
