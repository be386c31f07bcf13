"""Worker processes that die with the process they work for.

Nanhu's worker pools (``nanhu ingest``, the server) fork workers from a multiprocessing fork
server, so a worker's parent is the fork server, not the process that started the pool. A
``kill -9`` of that process used to leave the workers running, holding its stdout and memory
(a supervisor reading the output waited forever). :func:`die_with` makes a worker follow it:

- on Linux, ``prctl(PR_SET_PDEATHSIG, SIGKILL)``: the kernel kills the worker when its parent
  (the fork server, which itself exits once the pool's owner is gone) dies;
- everywhere, a daemon thread that checks every ``poll_s`` whether the owner still exists and
  ends the worker when it does not (this covers an owner killed while the fork server lives).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import signal
import sys
import threading

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


def _set_parent_death_signal(sig: int) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _alive(pid: int) -> bool:
    """True while ``pid`` runs. A zombie counts as gone: a killed owner stays one until its
    own parent reaps it, and a supervisor may reap only after the output ends."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = open(f"/proc/{pid}/stat").read()
    except OSError:
        return True  # no /proc: kill(0) is all there is
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def die_with(owner_pid: int | None, *, poll_s: float = 1.0) -> None:
    """Make this (worker) process end when ``owner_pid`` (the pool's owner) is gone.

    Call it in a worker's initializer. With ``owner_pid`` None only the parent-death signal is
    set. A parent that is already gone by the time this runs ends the worker at once.
    """
    parent = os.getppid()
    _set_parent_death_signal(signal.SIGKILL)
    if parent == 1 or (owner_pid is not None and not _alive(owner_pid)):
        os._exit(1)
    if owner_pid is None:
        return
    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(poll_s):
            if not _alive(owner_pid):
                os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, name="nanhu-owner-watch", daemon=True).start()
