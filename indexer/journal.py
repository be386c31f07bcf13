"""The resume journal: an append-only JSON Lines record of what each ingest run committed.

Layout (version 1), one JSON object per line::

    {"format": "nanhu-ingest-journal", "version": 1}
    {"event": "start", "source": "...", "target": "...", "time": 1700000000.0}
    {"event": "commit", "generation": 7, "files": [{"path", "size", "mtime_ns", "id", "digest"}]}
    {"event": "end", "source": "...", "summary": {...}, "time": ...}

A ``commit`` line is appended (and fsynced) only after the catalog (or the server) made those
files durable, so the journal never claims more than the target holds. It may claim less (a
crash between the commit and the journal line): the target stays the authority, and the
journal only spares a resumed run from re-reading files it already knows. A torn last line
(a crash mid-write) is ignored.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

FORMAT = "nanhu-ingest-journal"
VERSION = 1

#: (absolute path, size, mtime_ns): a file's identity without reading it
FileKey = tuple[str, int, int]


@dataclass
class JournalState:
    """What earlier runs committed: file key -> (reference id, content digest)."""

    committed: dict[FileKey, tuple[str, str]] = field(default_factory=dict)
    runs: int = 0
    completed_runs: int = 0


class Journal:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._handle = None

    def load(self, source: str | None = None) -> JournalState:
        """What earlier runs committed; with ``source``, only runs over that source (so memory
        follows the size of this source, not the catalog's history)."""
        state = JournalState()
        current_source = None
        if not self.path.exists():
            return state
        with open(self.path, "rb") as handle:
            for number, raw in enumerate(handle, 1):
                try:
                    record = json.loads(raw)
                except ValueError:
                    log.warning("%s:%d: skipping a torn journal line", self.path, number)
                    continue
                if number == 1:
                    if record.get("format") != FORMAT or record.get("version") != VERSION:
                        log.warning("%s: not a version %d ingest journal; ignoring it",
                                    self.path, VERSION)
                        return JournalState()
                    continue
                event = record.get("event")
                if event == "start":
                    current_source = record.get("source")
                if source is not None and current_source != source:
                    continue
                if event == "start":
                    state.runs += 1
                elif event == "end":
                    state.completed_runs += 1
                elif event == "commit":
                    for row in record.get("files", []):
                        key = (row["path"], int(row["size"]), int(row["mtime_ns"]))
                        state.committed[key] = (row["id"], row["digest"])
        return state

    def _append(self, record: dict) -> None:
        if self._handle is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fresh = not self.path.exists() or self.path.stat().st_size == 0
            self._handle = open(self.path, "ab")
            if not fresh:
                self._terminate_torn_line()
            else:
                self._write({"format": FORMAT, "version": VERSION})
        self._write(record)

    def _terminate_torn_line(self) -> None:
        with open(self.path, "rb") as handle:
            handle.seek(-1, os.SEEK_END)
            if handle.read(1) != b"\n":
                self._handle.write(b"\n")

    def _write(self, record: dict) -> None:
        self._handle.write(json.dumps(record, separators=(",", ":")).encode() + b"\n")
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def start(self, source: str, target: str) -> None:
        self._append({"event": "start", "source": source, "target": target, "time": time.time()})

    def committed(self, generation: int | None, files: list[dict]) -> None:
        if files:
            self._append({"event": "commit", "generation": generation, "files": files})

    def end(self, source: str, summary: dict) -> None:
        self._append({"event": "end", "source": source, "summary": summary, "time": time.time()})

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
