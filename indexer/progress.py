"""Progress on stderr while an ingest runs, and the JSON Lines report it leaves behind.

Progress counts a file as soon as its outcome is known: when its fingerprint comes back from a
worker (not when the batch holding it is committed), or at once when it is skipped or invalid.
On a terminal it is one bar drawn by tqdm; otherwise (a log file, CI) a plain line every
``interval_s`` seconds and one at the end, so logs hold no carriage returns::

    ingest: 12/40 files (30 %), 0.84 h of media, 310x real time, 2.1 files/s, ETA 1m05s

"x real time" is hours of media fingerprinted per hour of wall time. The ETA divides the bytes
still to do by the rate at which workers got through bytes so far; files skipped without work
(already registered, on a resumed run) move the count but not that rate, so a resume does not
promise an ETA its remaining work cannot keep. Before the first file is done it is unknown.

The report has one JSON object per input row::

    {"line": 12, "path": "...", "id": "...", "status": "registered", "reason": "",
     "duration_s": 183.2, "digest": "ab12...", "generation": 4, "seconds": 1.93, "cpu_s": 1.9}

``status`` is one of :data:`STATUSES`; ``line`` is the manifest line (null for folders);
``seconds`` is the time spent fingerprinting the file, ``cpu_s`` the worker's CPU time on it.
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import TextIO

from tqdm import tqdm

REGISTERED = "registered"
SKIPPED_DUPLICATE = "skipped-duplicate"
SKIPPED_EXISTING = "skipped-existing"
FAILED = "failed"
STATUSES = (REGISTERED, SKIPPED_DUPLICATE, SKIPPED_EXISTING, FAILED)


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


class Report:
    """The JSON Lines report, written row by row as each file's outcome becomes final."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = open(self.path, "w", encoding="utf-8")
        self.counts: Counter[str] = Counter()
        self.media_s = 0.0

    def row(self, *, status: str, path: str | None, ref_id: str | None, line: int | None,
            reason: str = "", duration_s: float | None = None, digest: str = "",
            generation: int | None = None, seconds: float | None = None,
            cpu_s: float | None = None, fingerprinted: bool = False) -> None:
        """Record one file's outcome; ``fingerprinted`` counts its media into the rate."""
        self.counts[status] += 1
        if fingerprinted and duration_s:
            self.media_s += duration_s
        self._handle.write(json.dumps({
            "line": line, "path": path, "id": ref_id, "status": status, "reason": reason,
            "duration_s": round(duration_s, 3) if duration_s is not None else None,
            "digest": digest, "generation": generation,
            "seconds": round(seconds, 4) if seconds is not None else None,
            "cpu_s": round(cpu_s, 4) if cpu_s is not None else None,
        }) + "\n")

    @property
    def files_done(self) -> int:
        return sum(self.counts.values())

    def flush(self) -> None:
        if not self._handle.closed:
            self._handle.flush()

    def close(self) -> None:
        self._handle.close()




def _x_real_time(media_s: float, elapsed_s: float) -> str:
    rate = media_s / max(elapsed_s, 1e-6)
    return f"{rate:.0f}x real time" if rate >= 10 else f"{rate:.1f}x real time"


class _Bar(tqdm):
    """tqdm's bar with our own figures after it (the ``{stats}`` of ``bar_format``), the way
    tqdm's documentation adds fields: by extending ``format_dict``."""

    def __init__(self, *args, stats: str = "", **kwargs) -> None:
        self.stats = stats  # before tqdm's first draw
        super().__init__(*args, **kwargs)

    @property
    def format_dict(self) -> dict:
        return {**super().format_dict, "stats": self.stats}


class Progress:
    """Files done, hours of media, x real time and ETA: a tqdm bar on a terminal, plain lines
    every ``interval_s`` seconds (and at the end) anywhere else.

    The ingest tells it each file's outcome as soon as it is known: :meth:`worked` when a worker
    is done with a file (fingerprinted or failed), :meth:`settled` for a file finished without
    work (already registered, a known duplicate, an invalid row); :meth:`update` redraws.
    """

    def __init__(self, *, total_files: int, total_bytes: int, stream: TextIO | None = None,
                 interval_s: float | None = None) -> None:
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.interval_s = interval_s if interval_s is not None else (0.2 if self.tty else 10.0)
        self.total_files = total_files
        self.total_bytes = total_bytes
        self.files_done = 0
        self.bytes_done = 0
        self.media_s = 0.0
        #: files and bytes that workers got through (the rate the ETA rests on)
        self.worked_files = 0
        self.worked_bytes = 0
        self.started = time.monotonic()
        self._last_line = self.started
        self._bar: _Bar | None = None
        if self.tty:
            self._bar = _Bar(total=self._total, file=self.stream, mininterval=self.interval_s,
                             bar_format="ingest: {percentage:3.0f}%|{bar:24}| {stats}",
                             leave=True, stats=self.describe())

    @property
    def _total(self) -> int:
        """What the bar and the ETA measure: bytes when the sizes are known, else files."""
        return self.total_bytes if self.total_bytes else self.total_files

    def _done(self) -> int:
        return self.bytes_done if self.total_bytes else self.files_done

    def worked(self, size: int, media_s: float = 0.0) -> None:
        """A worker finished with a file of ``size`` bytes holding ``media_s`` seconds of media
        (0 when it could not be fingerprinted)."""
        self.files_done += 1
        self.bytes_done += size
        self.media_s += media_s
        self.worked_files += 1
        self.worked_bytes += size

    def settled(self, size: int = 0) -> None:
        """A file's outcome was known without fingerprinting it."""
        self.files_done += 1
        self.bytes_done += size

    def eta_s(self, now: float | None = None) -> float | None:
        """Seconds left at the rate workers went so far; None while no file was worked on."""
        elapsed = max(1e-6, (now or time.monotonic()) - self.started)
        if self.total_bytes:
            remaining, worked = self.total_bytes - self.bytes_done, self.worked_bytes
        else:
            remaining, worked = self.total_files - self.files_done, self.worked_files
        if remaining <= 0:
            return 0.0
        if worked <= 0:
            return None
        return remaining * elapsed / worked

    def describe(self, now: float | None = None) -> str:
        """The figures, as one line: files, share done, media hours, x real time, rate, ETA."""
        now = now or time.monotonic()
        elapsed = max(1e-6, now - self.started)
        share = self._done() / self._total if self._total else 1.0
        eta = self.eta_s(now)
        return (f"{self.files_done}/{self.total_files} files ({100 * min(1.0, share):.0f} %), "
                f"{self.media_s / 3600:.2f} h of media, {_x_real_time(self.media_s, elapsed)}, "
                f"{self.files_done / elapsed:.1f} files/s, "
                f"ETA {'?' if eta is None else _clock(eta)}")

    def line(self) -> str:
        """The plain line written where stderr is not a terminal."""
        return f"ingest: {self.describe()}"

    def update(self, *, force: bool = False) -> None:
        """Redraw the bar (tqdm limits it to every ``interval_s``), or write a plain line when
        ``interval_s`` has passed since the last one (``force``: now)."""
        if self._bar is not None:
            self._bar.stats = self.describe()
            self._bar.update(self._done() - self._bar.n)
            if force:
                self._bar.refresh()
            return
        now = time.monotonic()
        if not force and now - self._last_line < self.interval_s:
            return
        self._last_line = now
        self.stream.write(self.line() + "\n")
        self.stream.flush()

    def message(self, text: str) -> None:
        """A line that must not be drawn over by the bar."""
        if self._bar is not None:
            self._bar.write(text, file=self.stream)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def finish(self) -> None:
        """The last figures, and the bar left on screen above what follows."""
        self.update(force=True)
        if self._bar is not None:
            self._bar.close()
            self._bar = None
