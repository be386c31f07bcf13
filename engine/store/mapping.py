"""How segment files are mapped: which pages are brought in at open, which stay lazy.

A memory-mapped segment's pages are the file's (the page cache: shared between processes,
reclaimable, read from disk once), not the process's own memory. What costs is the first
touch of each page in a process: a page fault (about 1 us) on a page already cached, a read
from disk on one that is not. Lookups read a few bytes at random places, so without help every
new page a query touches is a fault.
"""

from __future__ import annotations

import ctypes
import logging
import mmap
import threading
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

#: madvise(2) advice that maps a range's pages now (Linux 5.14+; not in Python's mmap module)
MADV_POPULATE_READ = 22
#: ranges at least this long are mapped by a background thread, in chunks of this size
BACKGROUND_CHUNK = 64 << 20
#: a lazy range is mapped at open only while it is at most this share of the memory available
#: (the rest of the catalog, the process and the other tenants of the page cache need room;
#: populating a range the page cache cannot hold would only evict the pages lookups need most)
POPULATE_SHARE = 0.5


def populate(raw: np.memmap, start: int, stop: int) -> None:
    """Map the pages of ``raw[start:stop]`` (bytes) into the process now, where the kernel can;
    on an older kernel, or another platform, the range stays lazy."""
    handle = getattr(raw, "_mmap", None)
    page = mmap.PAGESIZE
    first = start - start % page
    if handle is None or stop <= first:
        return
    try:
        handle.madvise(MADV_POPULATE_READ, first, stop - first)
    except (OSError, ValueError):
        pass


def advise_random(raw: np.memmap) -> None:
    """No read-ahead on this mapping: lookups read a few bytes at random places, and on a
    machine whose page cache cannot hold the index the kernel's default read-around (32 pages a
    fault) multiplies the reads from disk by about 30 for nothing."""
    handle = getattr(raw, "_mmap", None)
    if handle is None:
        return
    try:
        handle.madvise(mmap.MADV_RANDOM)
    except (OSError, ValueError, AttributeError):
        pass


def memory_available() -> int | None:
    """Bytes this process could still fill with page cache: the kernel's ``MemAvailable``, or
    less where a cgroup (v2) limit is closer; None where neither can be read."""
    available = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                available = int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit != "max":
            used = int(Path("/sys/fs/cgroup/memory.current").read_text())
            room = max(int(limit) - used, 0)
            available = room if available is None else min(available, room)
    except (OSError, ValueError):
        pass
    return available


_libc = None


def _madvise_populate(address: int, length: int) -> None:
    """madvise(MADV_POPULATE_READ) through ctypes, which lets go of the GIL for the call
    (Python's mmap.madvise holds it: queries would wait for the whole range)."""
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
        _libc.madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    _libc.madvise(ctypes.c_void_p(address), ctypes.c_size_t(length), MADV_POPULATE_READ)


def populate_later(raw: np.memmap, start: int, stop: int, *, what: str) -> bool:
    """Map ``raw[start:stop]`` now if it is small, else in a background thread, if the machine
    has the memory for it (:data:`POPULATE_SHARE`); True when it was asked.

    For the postings' positions: read only for the postings a query keeps, ~130,000 random
    places a never-registered 5 s query at 10,000 h, so a new server's first few hundred
    queries fault on most of them (resolving them took 21.8 ms a query over the first 100,
    10 ms once mapped). Mapped in the background, they cost the server 1 s of one core at
    open (11 GB, cached) and no query waits for it; the thread holds the mapping until done.
    """
    length = stop - start
    if length <= 0:
        return False
    if length < BACKGROUND_CHUNK:
        populate(raw, start, stop)
        return True
    available = memory_available()
    if available is None or length > POPULATE_SHARE * available:
        log.info("%s: %.1f GB of positions stay lazy (%.1f GB of memory available)", what,
                 length / 1e9, (available or 0) / 1e9)
        return False
    if getattr(raw, "_mmap", None) is None:
        return False
    page = mmap.PAGESIZE
    base = raw.ctypes.data
    first = start - start % page

    def run() -> None:
        keep = raw  # noqa: F841 - the mapping stays open while the thread reads it
        try:
            for lo in range(first, stop, BACKGROUND_CHUNK):
                _madvise_populate(base + lo, min(BACKGROUND_CHUNK, stop - lo))
        except (OSError, AttributeError, ValueError):  # no libc madvise: stay lazy
            pass

    threading.Thread(target=run, name=f"nanhu-map {what}", daemon=True).start()
    return True
