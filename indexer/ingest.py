"""Bulk registration: validate a source, fingerprint in parallel, commit in batches, resume.

The run, in order:

1. one streaming pass validates the whole source; problems stop the run before any work
   (unless ``skip_invalid``, which reports each invalid row as ``failed``);
2. a second pass streams the entries through a bounded window: files the target already holds
   are skipped (``skipped-existing``, checked against the catalog itself, with the journal
   sparing a re-read), the rest are fingerprinted by the executor's workers;
3. the single writer adds results **in source order** (so the catalog, its ordinals and which
   copy of duplicated content wins do not depend on the number of workers or on Ray), and
   commits every ``batch`` registrations or ``commit_interval_s`` seconds; after each commit
   the journal and the report record the batch. A crash loses at most the uncommitted batch;
   re-running the same command resumes.

Memory is bounded by the window (``4 x workers`` fingerprints, at least 8) and by the set of
ids seen (duplicate-id detection), never by the catalog's size.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from nanhu.engine.errors import AlreadyExists, InvalidArgument, NanhuError
from nanhu.engine.fingerprint import Fingerprint
from nanhu.engine.media import content_digest
from nanhu.indexer import progress as P
from nanhu.indexer.executors import LazyExecutor, available_cores
from nanhu.indexer.journal import Journal, JournalState
from nanhu.indexer.manifest import Entry, ManifestInvalid, Problem, Source, Validation, validate
from nanhu.indexer.sinks import FATAL_ERRORS, make_sink
from nanhu.indexer.window import Slot, Window

log = logging.getLogger(__name__)

#: exit code of a run where some files failed (the others are registered)
EXIT_PARTIAL = 10
EXIT_INTERRUPTED = 130


@dataclass
class IngestOptions:
    source: Path
    catalog: Path | None = None
    workers: int | None = None
    include: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)
    skip_invalid: bool = False
    report: Path = Path("ingest-report.jsonl")
    journal: Path | None = None
    batch: int = 200
    commit_interval_s: float = 10.0
    owner: str = ""
    video: bool = True
    ray_address: str | None = None
    server: str | None = None
    key: str | None = None
    #: Ray address of a cluster catalog's shard writers (``catalog`` is the cluster directory)
    cluster: str | None = None
    progress_interval_s: float | None = None


@dataclass
class IngestResult:
    counts: dict
    media_s: float
    wall_s: float
    workers: int
    report: Path
    journal: Path
    interrupted: bool = False
    executor: str = "local"
    stats: dict | None = None
    #: seconds spent starting the workers (part of wall_s)
    startup_s: float = 0.0
    #: CPU seconds of this (the writer) process
    writer_cpu_s: float = 0.0

    @property
    def files(self) -> int:
        return sum(self.counts.values())

    @property
    def nothing_to_do(self) -> bool:
        """Every file was already there (registered, or a known duplicate): no work was done."""
        skipped = self.counts.get(P.SKIPPED_EXISTING, 0) + self.counts.get(P.SKIPPED_DUPLICATE, 0)
        return self.files > 0 and skipped == self.files and self.media_s == 0

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return EXIT_INTERRUPTED
        return EXIT_PARTIAL if self.counts.get(P.FAILED, 0) else 0

    def summary(self) -> dict:
        hours_per_hour = self.media_s / self.wall_s if self.wall_s else 0.0
        return {
            "files": self.files, **{s: self.counts.get(s, 0) for s in P.STATUSES},
            "media_hours": round(self.media_s / 3600, 4), "wall_s": round(self.wall_s, 3),
            "workers": self.workers, "executor": self.executor,
            "startup_s": round(self.startup_s, 3), "writer_cpu_s": round(self.writer_cpu_s, 3),
            "media_hours_per_hour": round(hours_per_hour, 1),
            "media_hours_per_hour_per_core": round(hours_per_hour / max(1, self.workers), 1),
            "interrupted": self.interrupted, "report": str(self.report),
        }


@dataclass
class _Staged:
    entry: Entry
    status: str
    digest: str
    duration_s: float
    seconds: float
    cpu_s: float
    reason: str = ""


class Ingest:
    def __init__(self, options: IngestOptions, *, stream: TextIO | None = None) -> None:
        self.options = options
        self.stream = stream or sys.stderr

    def _say(self, text: str) -> None:
        if getattr(self, "progress", None) is not None:
            self.progress.message(text)
        else:
            print(text, file=self.stream, flush=True)

    # --- the run -------------------------------------------------------------------------
    def run(self) -> IngestResult:
        opts = self.options
        if opts.batch < 1:
            raise ValueError("batch must be at least 1")
        started = time.monotonic()
        self.cpu_started = time.process_time()
        self.progress = None
        source = Source(opts.source, include=opts.include, exclude=opts.exclude, owner=opts.owner)
        checked = validate(source)
        if not checked.entries and not checked.problems:  # an empty or mistaken folder
            raise InvalidArgument(source.nothing_found())
        if checked.problems:
            for problem in checked.problems:
                self._say(f"nanhu: {problem.describe(source.path)}")
            if checked.more_problems:
                self._say(f"nanhu: ... and {checked.more_problems} more problems")
            total = len(checked.problems) + checked.more_problems
            if not opts.skip_invalid:
                raise ManifestInvalid(
                    f"{source.path}: {total} problem(s), nothing was ingested (fix them, or pass "
                    "--skip-invalid to ingest the valid rows and report the others)",
                    checked.problems)
            self._say(f"nanhu: skipping {total} invalid row(s) (--skip-invalid)")
        self.sink = make_sink(catalog=opts.catalog, server=opts.server, key=opts.key,
                              cluster=opts.cluster)
        try:
            return self._run(source, checked, started)
        finally:
            self.sink.close()

    def _run(self, source: Source, checked: Validation, started: float) -> IngestResult:
        n_entries = checked.entries
        opts = self.options
        journal_path = opts.journal or self._default_journal()
        self.journal = Journal(journal_path)
        self.known: JournalState = self.journal.load(str(source.path.absolute()))
        self.report = P.Report(opts.report)
        self.staged: list[_Staged] = []
        self.params = self.sink.audio_params.to_dict()
        workers = opts.workers or available_cores()
        if not opts.ray_address:
            workers = min(workers, max(1, n_entries))
        # with Ray, an unset --workers means the cluster's CPUs, known once connected
        self.executor = LazyExecutor(workers, opts.workers if opts.ray_address else workers,
                                     opts.ray_address)
        invalid = len(checked.problems) + checked.more_problems  # reported as failed rows
        self.progress = P.Progress(total_files=n_entries + invalid, total_bytes=checked.total_bytes,
                                   stream=self.stream, interval_s=opts.progress_interval_s)
        self.journal.start(str(source.path.absolute()), self.sink.target)
        self.stop_requested = False
        previous = self._catch_signals()
        try:
            self._loop(iter(source))
            interrupted = self.stop_requested
            if interrupted:
                self._say("nanhu: interrupted; committing what is done (run the same command "
                          "to resume)")
            self.executor.shutdown(cancel=interrupted)
            self._commit()
        except FATAL_ERRORS:  # the server went away: what it acknowledged is durable there
            self.executor.shutdown(cancel=True)
            self._commit()
            self._close_files()
            raise
        except BaseException:  # a second Ctrl-C, or a real error: stop without committing
            self.executor.shutdown(cancel=True)
            self.sink.rollback()
            self._close_files()
            raise
        finally:
            self._restore_signals(previous)
            self.report.flush()
        result = IngestResult(
            counts=dict(self.report.counts), media_s=self.report.media_s,
            wall_s=time.monotonic() - started, workers=self.executor.workers,
            report=self.report.path, journal=self.journal.path, interrupted=interrupted,
            executor=self.executor.name, startup_s=self.executor.startup_s,
            writer_cpu_s=time.process_time() - self.cpu_started,
        )
        self.progress.finish()
        if hasattr(self.sink, "stats"):
            result.stats = self.sink.stats()
        if not interrupted:
            self.journal.end(str(source.path.absolute()), result.summary())
        self._close_files()
        return result

    def _close_files(self) -> None:
        self.journal.close()
        self.report.close()

    def _catch_signals(self) -> dict:
        """Ctrl-C (or SIGTERM) asks the loop to stop and commit; a second one stops at once."""
        if threading.current_thread() is not threading.main_thread():
            return {}
        previous = {}
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, self._on_signal)
        return previous

    def _on_signal(self, signum, frame) -> None:
        if self.stop_requested:
            raise KeyboardInterrupt
        self.stop_requested = True

    @staticmethod
    def _restore_signals(previous: dict) -> None:
        for signum, handler in previous.items():
            signal.signal(signum, handler)

    def _default_journal(self) -> Path:
        if self.options.server:
            safe = self.options.server.replace(":", "_").replace("/", "_")
            return Path(self.options.report).parent / f"ingest-journal-{safe}.jsonl"
        return Path(getattr(self.sink, "root", None) or self.sink.target) / "ingest-journal.jsonl"

    def _loop(self, items) -> None:
        opts = self.options
        window = Window(self.executor, audio_params=self.params, video=opts.video)
        exhausted = False
        self.last_commit = time.monotonic()
        while not self.stop_requested:
            while not exhausted and not window.full:
                item = next(items, None)
                if item is None:
                    exhausted = True
                elif isinstance(item, Problem):
                    self._invalid(item)
                    self.progress.settled()
                elif self._already_there(item):
                    self.progress.settled(item.size)
                else:
                    window.append(item)
            window.submit()
            if not window:
                break
            window.wait(0.5)
            for slot in window.newly_finished():  # counted now, though committed later
                ok = slot.result is not None and slot.result["ok"]
                self.progress.worked(slot.entry.size, slot.result.get("duration_s", 0.0) if ok else 0.0)
            for slot in window.take_ready():
                self._accept(slot)
            registered = sum(s.status == P.REGISTERED for s in self.staged)
            if registered >= opts.batch or (
                self.staged and time.monotonic() - self.last_commit >= opts.commit_interval_s
            ):
                self._commit()
            self.progress.update()

    # --- outcomes ------------------------------------------------------------------------
    def _row(self, entry: Entry, status: str, reason: str = "", **extra) -> None:
        self.report.row(status=status, path=str(entry.path), ref_id=entry.ref_id,
                        line=entry.line, reason=reason, **extra)
        if status == P.FAILED:
            self._say(f"nanhu: {entry.path}: {reason}" if str(entry.path) not in reason
                      else f"nanhu: {reason}")

    def _invalid(self, problem: Problem) -> None:
        self.report.row(status=P.FAILED, path=problem.path, ref_id=problem.ref_id,
                        line=problem.line, reason=f"invalid: {problem.message}")

    def _already_there(self, entry: Entry) -> bool:
        """Settle entries the target already holds (resume), without fingerprinting them."""
        known = self.known.committed.get((str(entry.path), entry.size, entry.mtime_ns))
        try:
            current = self.sink.by_id(entry.ref_id)
        except FATAL_ERRORS:
            raise
        except NanhuError as exc:  # e.g. the id belongs to another tenant on the server
            self._row(entry, P.FAILED, str(exc))
            return True
        if current is None:
            if known is not None:
                twin = self.sink.by_digest(known[1])
                if twin is not None and twin.ref_id != entry.ref_id:
                    self._row(entry, P.SKIPPED_DUPLICATE, f"same content as {twin.ref_id!r}",
                              duration_s=twin.duration_s, digest=twin.digest)
                    return True
            return False
        if known is not None and known[0] == entry.ref_id:
            digest = known[1]
        else:
            try:
                digest = content_digest(entry.path)
            except OSError as exc:
                self._row(entry, P.FAILED, f"cannot read file ({exc.strerror})")
                return True
        if digest == current.digest:
            self._row(entry, P.SKIPPED_EXISTING, "already registered",
                      duration_s=current.duration_s, digest=digest)
        else:
            self._row(entry, P.FAILED,
                      f"id {entry.ref_id!r} is already registered with other content "
                      f"(digest {current.digest[:12]}); delete it first or use another id")
        return True

    def _accept(self, slot: Slot) -> None:
        entry = slot.entry
        if slot.error is not None:
            self._row(entry, P.FAILED, slot.error)
            return
        result = slot.result
        if not result["ok"]:
            self._row(entry, P.FAILED, result["reason"], seconds=result["seconds"],
                      cpu_s=result.get("cpu_s"))
            return
        fp = Fingerprint.from_bytes(result["fingerprint"])
        try:
            self.sink.add(entry, fp)
        except AlreadyExists as exc:
            if exc.existing_id and exc.existing_id != entry.ref_id:
                self.staged.append(_Staged(entry, P.SKIPPED_DUPLICATE, fp.digest, fp.duration_s,
                                           result["seconds"], result.get("cpu_s", 0.0),
                                           f"same content as {exc.existing_id!r}"))
            else:
                self._row(entry, P.FAILED, str(exc), digest=fp.digest, seconds=result["seconds"])
            return
        except FATAL_ERRORS:
            raise
        except NanhuError as exc:
            self._row(entry, P.FAILED, str(exc), digest=fp.digest, seconds=result["seconds"])
            return
        self.staged.append(_Staged(entry, P.REGISTERED, fp.digest, fp.duration_s,
                                   result["seconds"], result.get("cpu_s", 0.0)))

    def _commit(self) -> None:
        if not self.staged:
            return
        generation = self.sink.commit()
        self.journal.committed(generation, [
            {"path": str(s.entry.path), "size": s.entry.size, "mtime_ns": s.entry.mtime_ns,
             "id": s.entry.ref_id, "digest": s.digest, "status": s.status}
            for s in self.staged
        ])
        for s in self.staged:
            self._row(s.entry, s.status, s.reason, duration_s=s.duration_s, digest=s.digest,
                      generation=generation, seconds=s.seconds, cpu_s=s.cpu_s, fingerprinted=True)
        self.report.flush()
        log.debug("committed %d file(s) as generation %s", len(self.staged), generation)
        self.staged.clear()
        self.last_commit = time.monotonic()


def run_ingest(options: IngestOptions, *, stream: TextIO | None = None) -> IngestResult:
    return Ingest(options, stream=stream).run()
