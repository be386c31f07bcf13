"""The task a worker runs: fingerprint one file and hand back plain data.

The same function runs in a local worker process and as a Ray task. Its arguments and result
are builtins only (str, dict, bytes, float), the fingerprint travelling as
:meth:`engine.fingerprint.Fingerprint.to_bytes`, so no custom object is pickled on the way.
"""

from __future__ import annotations

import os
import signal
import time

from nanhu.engine.audio.params import AudioParams
from nanhu.engine.errors import NanhuError
from nanhu.engine.fingerprint import fingerprint_media
from nanhu.engine.process import die_with


def params_from_dict(values: dict) -> AudioParams:
    """AudioParams from ``AudioParams.to_dict()`` (JSON turns tuples into lists)."""
    return AudioParams(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


def ignore_sigint() -> None:
    """Worker initializer: Ctrl-C is the parent's to handle (it stops and commits cleanly)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def worker_init(owner_pid: int | None = None) -> None:
    """Worker initializer: leave Ctrl-C to the parent, and die with it (``kill -9`` of
    ``nanhu ingest`` must not leave workers running and holding its output)."""
    ignore_sigint()
    die_with(owner_pid)


def ready() -> int:
    """A no-op task: returns once a worker is up, with the engine imported."""
    return os.getpid()


def fingerprint_file(path: str, audio_params: dict, video: bool = True) -> dict:
    """Fingerprint ``path``.

    Returns ``{"ok": True, "fingerprint": bytes, "duration_s": float}`` or, when the file cannot
    be fingerprinted, ``{"ok": False, "error": class name, "reason": str}``, with ``seconds``
    (wall) and ``cpu_s`` (CPU time of the worker) spent on it.
    Exceptions that are not :class:`NanhuError` (bugs) propagate to the caller.
    """
    started, cpu_started = time.perf_counter(), time.process_time()
    try:
        fp = fingerprint_media(path, audio_params=params_from_dict(audio_params), video=video)
        out = {"ok": True, "fingerprint": fp.to_bytes(), "duration_s": fp.duration_s}
    except NanhuError as exc:
        out = {"ok": False, "error": type(exc).__name__, "reason": str(exc)}
    return {**out, "seconds": time.perf_counter() - started,
            "cpu_s": time.process_time() - cpu_started}
