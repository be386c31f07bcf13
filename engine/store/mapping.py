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
import os
import threading
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

#: madvise(2) advice that maps a range's pages now (Linux 5.14+; not in Python's mmap module)
MADV_POPULATE_READ = 22
#: ranges at least this long are mapped by a background thread, in chunks of this size
BACKGROUND_CHUNK = 64 << 20
#: the hot tier of a keyed postings segment is locked in memory while it is at most this share
#: of the memory available (the rest serves the cold postings, the reference peaks and the heap)
LOCK_SHARE = 0.8
#: set to 0 to never lock (the hot tier is then only populated, and the kernel may evict it)
LOCK_ENV = "NANHU_LOCK_HOT"
#: madvise(2) advice: read these pages into the page cache now, without waiting for them
MADV_WILLNEED = 3
#: set to 1 to ask for a lookup's lazy pages together (:func:`prefetch`) rather than one
#: page fault at a time: for disks slow to answer one read (network block storage)
PREFETCH_ENV = "NANHU_PREFETCH"
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
    less where its memory cgroup's limit (v2 or v1, page cache charged to it) is closer; None
    where neither can be read."""
    available = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                available = int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    room = _cgroup_room()
    if room is not None:
        available = room if available is None else min(available, room)
    return available


def _cgroup_room() -> int | None:
    """Limit less use of this process's memory cgroup, its file pages counted as room (the
    kernel reclaims them, as ``MemAvailable`` counts them: a restarted server's own index
    pages are most of them), or None where it has no limit."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, group = (line.split(":", 2) + ["", ""])[:3]
        group = group.strip().lstrip("/")
        if controllers == "":  # v2: one unified hierarchy
            folder, limit_name, use_name = Path("/sys/fs/cgroup") / group, "memory.max", \
                "memory.current"
        elif "memory" in controllers.split(","):
            folder, limit_name, use_name = Path("/sys/fs/cgroup/memory") / group, \
                "memory.limit_in_bytes", "memory.usage_in_bytes"
        else:
            continue
        try:
            limit = (folder / limit_name).read_text().strip()
            if limit == "max" or int(limit) >= 1 << 60:  # v1 writes "no limit" as ~2^63
                continue
            used = int((folder / use_name).read_text()) - _file_pages(folder / "memory.stat")
            return max(int(limit) - max(used, 0), 0)
        except (OSError, ValueError):
            continue
    return None


def _file_pages(stat: Path) -> int:
    """Bytes of file pages (active and inactive) in a cgroup's memory.stat; 0 if unreadable."""
    try:
        fields = dict(line.split()[:2] for line in stat.read_text().splitlines() if line.strip())
    except (OSError, ValueError):
        return 0
    return sum(int(fields.get(name, 0)) for name in ("active_file", "inactive_file"))


_libc = None


def _lib() -> ctypes.CDLL:
    """The C library, with the argument types of the calls made here (once per process)."""
    global _libc
    if _libc is None:
        lib = ctypes.CDLL(None, use_errno=True)
        lib.madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
        lib.mlock.argtypes = (ctypes.c_void_p, ctypes.c_size_t)
        _libc = lib
    return _libc


def prefetching() -> bool:
    """Whether :func:`prefetch` asks for anything (``NANHU_PREFETCH=1``)."""
    return os.environ.get(PREFETCH_ENV, "0") == "1"


def prefetch(array: np.ndarray, starts: np.ndarray, stops: np.ndarray) -> int:
    """Ask the kernel to read the pages of byte ranges ``[starts[i], stops[i])`` of ``array``'s
    buffer (int64[n] each) into the page cache now, all at once (``MADV_WILLNEED``: the reads
    are queued and the call returns); returns the number of merged page ranges asked for.

    For the lazy parts of a memory-mapped index (a keyed segment's cold postings, the
    reference peaks), on a machine whose page cache cannot hold it: a lookup that touches 100
    such places one after the other waits for 100 disk reads in turn; asked for together, the
    disk serves them in parallel and the lookup waits about as long as for one or two.

    Off unless ``NANHU_PREFETCH=1``: on the benchmark machine's local disk (about 40 us a
    read) a 10,000 h catalog in 8 GiB waited 4.7 ms a query for its 115 reads, and asking for
    them together took that wait away but cost 7.4 ms more CPU (p50 43.6 -> 46.4 ms,
    docs/audio.md). It pays where one read costs a millisecond or more.
    """
    starts, stops = np.asarray(starts, np.int64), np.asarray(stops, np.int64)
    keep = stops > starts
    if not keep.any() or not prefetching():
        return 0
    page = mmap.PAGESIZE
    base = int(array.ctypes.data)
    first = (base + starts[keep]) // page
    last = (base + stops[keep] - 1) // page + 1  # page numbers, exclusive
    order = np.argsort(first, kind="stable")
    first, last = first[order], np.maximum.accumulate(last[order])
    new = np.ones(first.size, bool)
    new[1:] = first[1:] > last[:-1]  # a range that starts past all before it opens a run
    heads = np.flatnonzero(new)
    ends = np.append(heads[1:], first.size) - 1
    lib = _lib()
    for lo, hi in zip((first[heads] * page).tolist(), (last[ends] * page).tolist()):
        lib.madvise(ctypes.c_void_p(lo), ctypes.c_size_t(hi - lo), MADV_WILLNEED)
    return int(heads.size)


def release_freed_memory() -> bool:
    """Hand the heap's free pages back to the kernel (glibc's ``malloc_trim(0)``); False where
    the C library has no such call.

    For after a large build in memory: glibc keeps the pages a process freed for its next
    allocations, so a build's temporary copies stay in its resident memory. Opening the compact
    keyframe index (2 M rows) left 80 bytes a row of anonymous memory, 43.5 once trimmed, its
    steady state (docs/video.md)."""
    try:
        trim = _lib().malloc_trim
    except (OSError, AttributeError):
        return False
    trim.argtypes = (ctypes.c_size_t,)
    trim(0)
    return True


def _madvise_populate(address: int, length: int) -> None:
    """madvise(MADV_POPULATE_READ) through ctypes, which lets go of the GIL for the call
    (Python's mmap.madvise holds it: queries would wait for the whole range)."""
    _lib().madvise(ctypes.c_void_p(address), ctypes.c_size_t(length), MADV_POPULATE_READ)


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


def lock_later(raw: np.memmap, ranges: list[tuple[int, int]], *, what: str) -> bool:
    """Lock the byte ranges of ``raw`` in memory (``mlock``, in a background thread: it reads
    them in as it goes, and lets go of the GIL) if they fit in :data:`LOCK_SHARE` of the
    memory available; True when it was asked. Where the lock is refused (``RLIMIT_MEMLOCK``
    for an unprivileged process; raise it with ``ulimit -l unlimited``, systemd's
    ``LimitMEMLOCK=infinity`` or Docker's ``--ulimit memlock=-1``), the ranges are populated
    as :func:`populate_later` does, and a warning says so.

    For the hot tier of a keyed postings segment (its directory, key table and hot positions):
    read by nearly every lookup, and on a machine whose page cache cannot hold the whole index,
    the kernel evicts some of it for pages read once (a cold key's postings, a reference's
    peaks). At 10,000 h in 8 GiB, 5 % of the hot pages were out at any time, 340 reads from
    disk a query. The lock lasts as long as the mapping.
    """
    total = sum(stop - start for start, stop in ranges)
    if total <= 0 or os.environ.get(LOCK_ENV, "1") == "0":
        return False
    available = memory_available()
    if available is None or total > LOCK_SHARE * available or getattr(raw, "_mmap", None) is None:
        log.info("%s: the %.1f GB hot tier is not locked (%.1f GB of memory available)", what,
                 total / 1e9, (available or 0) / 1e9)
        return False
    page = mmap.PAGESIZE
    base = raw.ctypes.data

    def run() -> None:
        keep = raw  # noqa: F841 - the mapping stays open while the thread locks it
        for start, stop in ranges:
            first = start - start % page
            for lo in range(first, stop, BACKGROUND_CHUNK):
                length = min(BACKGROUND_CHUNK, stop - lo)
                if _lib().mlock(ctypes.c_void_p(base + lo), ctypes.c_size_t(length)) != 0:
                    log.warning("%s: cannot lock the hot tier in memory (%s); it is only "
                                "mapped, and the kernel may evict it. Raise the memory-lock "
                                "limit (ulimit -l unlimited) to keep it", what,
                                os.strerror(ctypes.get_errno()))
                    for a, b in ranges:
                        _madvise_populate(base + a - a % page, b - a + a % page)
                    return

    threading.Thread(target=run, name=f"nanhu-lock {what}", daemon=True).start()
    return True
