"""What the worker processes run: fingerprinting uploads, and screening (fingerprint + match).

Matching is mostly Python per candidate alignment, so it holds the GIL; it runs here, in the
worker processes, next to fingerprinting, which lets screening use every core. Each worker keeps
one read-only :class:`~engine.catalog.Catalog` + :class:`~engine.matcher.Matcher` per catalog
directory and reopens them when the manifest's generation moves (checked per job: one small
file read), so a registration committed before a job starts is visible to it. Postings are
memory-mapped, so the workers share them through the page cache.

Every job runs through :func:`timed`: it carries the call's request id onto the worker's log
lines and returns the job's stage times (decode, fingerprint, match) for the server's metrics.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import logging
import os
import pickle
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from nanhu.engine import stages, thumbnails
from nanhu.engine.audio.params import AudioParams
from nanhu.engine.catalog import Catalog
from nanhu.engine.errors import CatalogCorrupt, LimitExceeded, NanhuError
from nanhu.engine.fingerprint import Fingerprint
from nanhu.engine.matcher import Match, Matcher
from nanhu.engine.policy import ScreenFloor
from nanhu.engine.thumbnails import Thumbnail
from nanhu.server.logs import REQUEST_ID, configure_logging

_MATCHERS: dict[str, Matcher] = {}
log = logging.getLogger("nanhu.server.jobs")


#: the screening call's filters are the engine's platform floor (engine.policy.ScreenFloor)
ScreenOptions = ScreenFloor


def manifest_generation(catalog_dir: Path) -> int | None:
    """The committed generation on disk, or None while it cannot be read."""
    try:
        return int(json.loads((Path(catalog_dir) / "manifest.json").read_text())["generation"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def cluster_matcher_for(cluster_dir: str, address: str | None,
                        env: dict[str, str] | None = None) -> Matcher:
    """This process's matcher over a cluster catalog (served on Ray at ``address``, else
    opened here), with every shard asked for its generation: new commits are seen, and the
    shards missing from the last query are asked again."""
    key = f"{cluster_dir}@{address or ''}"
    matcher = _MATCHERS.get(key)
    if matcher is None:
        from nanhu.server.cluster_core import open_view

        os.environ.update(env or {})  # Ray's authentication, as the front door joined it
        _, view, _ = open_view(cluster_dir, address=address)
        matcher = _MATCHERS[key] = Matcher(view)
    matcher.catalog.refresh()
    return matcher


def matcher_for(catalog_dir: str, cluster: str | None = None,
                cluster_env: dict[str, str] | None = None) -> Matcher:
    """This process's matcher for ``catalog_dir``, at the generation on disk (a cluster
    directory: :func:`cluster_matcher_for`, on Ray at ``cluster`` when given)."""
    from nanhu.engine.cluster.layout import is_cluster

    if is_cluster(catalog_dir):
        return cluster_matcher_for(catalog_dir, cluster, cluster_env)
    matcher = _MATCHERS.get(catalog_dir)
    on_disk = manifest_generation(Path(catalog_dir))
    if matcher is None or (on_disk is not None and on_disk != matcher.catalog.generation):
        for attempt in range(3):
            catalog = Catalog(catalog_dir)
            try:
                catalog.postings()  # map the segments now, not inside the first alignment
                break
            except (CatalogCorrupt, FileNotFoundError):
                # A compaction replaced the segments between reading the manifest and mapping
                # them: read the new manifest.
                catalog.close()
                if attempt == 2:
                    raise
        matcher = Matcher(catalog)
        old = _MATCHERS.pop(catalog_dir, None)
        if old is not None:
            old.catalog.close()
        _MATCHERS[catalog_dir] = matcher
    return matcher


def start_worker(catalog_dir: str | None, owner_pid: int | None,
                 log_format: str | None = None) -> None:
    """Worker initializer: die with the server (no orphans after ``kill -9``), log as the server
    does (``log_format``, when the server configured one), open the catalog."""
    from nanhu.engine.process import die_with

    die_with(owner_pid)
    if log_format is not None:
        configure_logging(log_format, level=logging.INFO)
    ready(catalog_dir)


def serve_jobs(conn: Connection, catalog_dir: str | None, owner_pid: int | None,
               log_format: str | None = None) -> None:
    """A worker process's life (:mod:`server.pool`): start as :func:`start_worker` does, say
    ``("ready", pid, None)``, then run each ``(fn, args, kwargs)`` that arrives on ``conn``, one
    at a time, answering ``("ok", result, None)`` or ``("error", exception, traceback text)``;
    ``None`` or a closed pipe ends it."""
    try:
        start_worker(catalog_dir, owner_pid, log_format)
    except BaseException as exc:  # noqa: BLE001 - reported to the pool, which raises it
        _answer(conn, "error", exc)
        return
    conn.send(("ready", os.getpid(), None))
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        fn, args, kwargs = message
        try:
            kind, value = "ok", fn(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - sent to the caller, raised there
            kind, value = "error", exc
        del message, fn, args, kwargs
        _answer(conn, kind, value)
        del value
        _trim_memory()


def _answer(conn: Connection, kind: str, value: Any) -> None:
    trace = "".join(traceback.format_exception(value)) if kind == "error" else None
    try:
        conn.send((kind, value, trace))
    except (pickle.PicklingError, TypeError, AttributeError) as exc:  # an answer that cannot travel
        conn.send(("error", RuntimeError(f"the job's {'error' if trace else 'result'} could not "
                                         f"be sent back ({exc}): {value!r:.200}"), trace))


_MALLOC_TRIM: list = []


def _trim_memory() -> None:
    """Hand freed heap back to the system after a job, so the next job's memory budget
    measures what it holds, not what earlier jobs left in malloc's free lists (glibc)."""
    if not _MALLOC_TRIM:
        try:
            _MALLOC_TRIM.append(ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim)
        except (OSError, AttributeError):  # not glibc: nothing to trim
            _MALLOC_TRIM.append(None)
    if _MALLOC_TRIM[0] is not None:
        _MALLOC_TRIM[0](0)


def timed(request_id: str, job: Callable, /, *args, **kwargs) -> tuple[Any, dict[str, float]]:
    """Run ``job(*args, **kwargs)`` for the call ``request_id``; returns ``(result, stage times)``."""
    token = REQUEST_ID.set(request_id)
    try:
        with stages.measure() as times:
            result = job(*args, **kwargs)
        return result, times
    finally:
        REQUEST_ID.reset(token)


def ready(catalog_dir: str | None = None) -> int:
    """Warm-up job: import everything, open the catalog; returns the worker's pid."""
    from nanhu.engine.cluster.layout import is_cluster

    if catalog_dir is not None and not is_cluster(catalog_dir):  # a cluster: on first use
        matcher_for(catalog_dir)
    return os.getpid()


def fingerprint_file(path: str, name: str, *, audio_params: AudioParams, query: bool,
                     max_duration_s: float | None) -> Fingerprint:
    """Fingerprint a spooled upload; errors name the upload (``name``), not the spool path."""
    from nanhu.engine.fingerprint import fingerprint_media

    try:
        with stages.stage("fingerprint", exclude=("decode",)):
            # A screening keys its audio window by window in the matcher (bounded memory
            # for long uploads); a registration needs its keys now.
            fp = fingerprint_media(path, audio_params=audio_params, query=query,
                                   max_duration_s=max_duration_s, keys_on_demand=query)
    except NanhuError as exc:
        raise type(exc)(str(exc).replace(path, name)) from None
    check_duration(fp, name, max_duration_s)
    return fp


def check_duration(fp: Fingerprint, name: str, max_duration_s: float | None) -> None:
    if max_duration_s is not None and fp.duration_s > max_duration_s + 1.0:
        raise LimitExceeded(f"{name}: media of {fp.duration_s:.0f} s is longer than the limit of "
                            f"{max_duration_s:g} s")


def screen(catalog_dir: str, source: str | Fingerprint, name: str, *, options: ScreenOptions,
           max_duration_s: float | None, cluster: str | None = None,
           cluster_env: dict[str, str] | None = None
           ) -> tuple[float, str, list[Match], list[Thumbnail], list[str]]:
    """Screen a spooled upload (a path) or a query fingerprint: ``(duration_s, digest, matches,
    thumbnails, missing shards)``; the thumbnails are pictures of an uploaded file's keyframes
    inside its acting video matches, for their claims (none for a fingerprint: there is no
    picture to take). ``missing shards`` names the shards of a cluster catalog that did not
    answer (the matches are then partial); empty on one catalog."""
    matcher = matcher_for(catalog_dir, cluster, cluster_env)
    if isinstance(source, Fingerprint):
        fp = source
        check_duration(fp, name, max_duration_s)
    else:
        fp = fingerprint_file(source, name, audio_params=matcher.catalog.audio_params, query=True,
                              max_duration_s=max_duration_s)
    with stages.stage("match"):
        matches = matcher.match(fp, floor=options)
    pictures: list[Thumbnail] = []
    if not isinstance(source, Fingerprint) and fp.video is not None:
        times = thumbnails.pick_times(matches, fp.video.times_s)
        if times:
            with stages.stage("thumbnails"):
                pictures = thumbnails.extract(source, times,
                                              within=thumbnails.video_ranges(matches))
    missing = matcher.catalog.missing_names() if hasattr(matcher.catalog, "missing_names") else []
    if missing:
        log.warning("screening %s is partial: shards %s did not answer", name, ", ".join(missing))
    return fp.duration_s, fp.digest, matches, pictures, missing
