"""Progress on stderr while an ingest runs, and the JSON Lines report it leaves behind.

On a terminal the progress is one redrawn bar (files, hours of media, rate, ETA); otherwise
(a log file, CI) a plain line every ``interval_s`` seconds. The report has one JSON object per
input row::

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
        self.bytes_done = 0

    def row(self, *, status: str, path: str | None, ref_id: str | None, line: int | None,
            reason: str = "", duration_s: float | None = None, digest: str = "",
            generation: int | None = None, seconds: float | None = None,
            cpu_s: float | None = None, size: int = 0, fingerprinted: bool = False) -> None:
        """Record one file's outcome; ``fingerprinted`` counts its media into the rate."""
        self.counts[status] += 1
        self.bytes_done += size
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


class Progress:
    """Redrawn bar on a terminal, periodic plain lines elsewhere."""

    def __init__(self, *, total_files: int, total_bytes: int, stream: TextIO | None = None,
                 interval_s: float | None = None) -> None:
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.interval_s = interval_s if interval_s is not None else (0.2 if self.tty else 10.0)
        self.total_files = total_files
        self.total_bytes = total_bytes
        self.started = time.monotonic()
        self._last = self.started
        self._drawn = False

    def line(self, files_done: int, bytes_done: int, media_s: float) -> str:
        elapsed = max(1e-6, time.monotonic() - self.started)
        hours = media_s / 3600.0
        rate = media_s / elapsed  # hours of media per hour of wall time
        fraction = (bytes_done / self.total_bytes if self.total_bytes
                    else files_done / max(1, self.total_files))
        eta = f"ETA {_clock(elapsed * (1 - fraction) / fraction)}" if 0 < fraction < 1 else "ETA -"
        text = (f"{files_done}/{self.total_files} files, {hours:.2f} h of media, "
                f"{rate:.0f} h/h ({files_done / elapsed:.1f} files/s), {eta}")
        if self.tty:
            width = 24
            filled = int(round(width * min(1.0, fraction)))
            text = f"[{'#' * filled}{'.' * (width - filled)}] {text}"
        return f"ingest: {text}"

    def update(self, files_done: int, bytes_done: int, media_s: float, *,
               force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < self.interval_s:
            return
        self._last = now
        text = self.line(files_done, bytes_done, media_s)
        if self.tty:
            self.stream.write("\r\033[K" + text)
            self._drawn = True
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def message(self, text: str) -> None:
        """A line that must not be drawn over by the bar."""
        if self.tty and self._drawn:
            self.stream.write("\r\033[K")
            self._drawn = False
        self.stream.write(text + "\n")
        self.stream.flush()

    def finish(self) -> None:
        if self.tty and self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False
