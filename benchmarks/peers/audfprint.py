"""An audio peer for the benchmark: audfprint (Dan Ellis's landmark fingerprinter), as packaged
on PyPI by ``audfprint2``, run through its own library on the same queries Nanhu answers.

audfprint is the reference open implementation of Shazam-style landmarks (Wang 2003): peaks of a
512-point STFT at 11025 Hz picked under a decaying masking threshold, paired into (f1, f2 - f1,
dt) hashes of 20 bits, stored in a dense table of 2^20 buckets x 100 entries of (track id, time);
a query is matched by counting hits at one time skew. It has no speed or pitch invariance.

How it is driven here, and why:

* Analysers and matchers come from ``audfprint2.cli.setup_analyzer`` / ``setup_matcher``, the
  functions its command line uses, so "defaults" are exactly ``audfprint new`` and
  ``audfprint match`` without options (queries analysed at 4 sub-frame shifts, references at 1,
  ``--match-win 2``, ``--min-count 5``, ``--density 20``, ``--fanout 3``).
* Audio reaches it as 16-bit WAV files at its own rate (11025 Hz) in a temporary directory:
  audfprint2 reads anything else through an ``ffmpeg`` binary, which this machine lacks, and its
  fallback reader takes WAV at the target rate only. We decode with PyAV
  (:func:`engine.media.load_audio`) and hand over the file; the decode is counted in its
  fingerprinting time, as it is in Nanhu's.
* Its database is its own HDF5 file (``HashTable.save``, gzip level 1), cached under
  ``<cache>/bench/peer-audfprint2-<settings>-<corpus>/`` with the build timings, as Nanhu's catalog
  is; its size on disk is what the benchmark reports, next to the table it holds in memory
  (2^hashbits x bucketsize x 4 bytes whatever the catalog size).

The two settings compared, :data:`DEFAULTS` and :data:`TUNED`, are described on :data:`TUNED`.

Why not Chromaprint (Debian ``libchromaprint-tools``, ``fpcalc``): it is not a landmark
fingerprinter but one chroma-feature sequence per file, from its first 120 s by default, made to
be compared whole track against whole track (AcoustID); it has no index that finds a 5-second
excerpt cut from anywhere inside a reference, which is what this benchmark asks.

Known behaviour worth reading the figures with: audfprint's masking threshold carries from loud
passages into the quiet ones after them, so a quiet stretch of a reference may store no hashes
at all (``nexuiz-thunder`` at 28-34 s stores none; a 5-s excerpt from there cannot match), and
with the default ``--maxtime`` reference times wrap every 380 s (offsets of later excerpts come
out modulo that; the track is still found).

Screening the benchmark's queries with it, and choosing :data:`TUNED`:
:mod:`benchmarks.peers.audfprint_comparison`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from nanhu.engine.errors import EmptyMediaError
from nanhu.engine.media import Source, load_audio

log = logging.getLogger(__name__)

#: the PyPI distribution compared
PACKAGE = "audfprint2"


def available() -> bool:
    """Whether the peer package is installed."""
    import importlib.util

    return importlib.util.find_spec(PACKAGE) is not None


def package_version() -> str:
    from importlib.metadata import version

    return version(PACKAGE)


@dataclass(frozen=True)
class PeerSettings:
    """One audfprint configuration, in the command line's terms (``audfprint --help``).

    ``ref_*`` apply when building the database (``audfprint new``), ``query_*`` when matching
    (``audfprint match``); ``None`` for a query value means "the same as the reference".
    Times: frames of ``n_hop = 256`` samples at ``sample_rate`` (23.2 ms at 11025 Hz).
    """

    name: str
    density: float = 20.0           # -n: target hashes per second
    fanout: int = 3                 # -F: pairs per peak
    pks_per_frame: int = 5          # -P
    freq_sd: float = 30.0           # -S: masking spread (bins)
    ref_shifts: int = 0             # -i when building: 0 means the CLI's choice, 1
    query_shifts: int = 0           # -i when matching: 0 means the CLI's choice, 4
    query_density: float | None = None
    query_fanout: int | None = None
    match_win: int = 2              # -w
    min_count: int = 5              # -N
    search_depth: int = 100         # -D
    exact_count: bool = False       # -X
    hashbits: int = 20              # -h
    bucketsize: int = 100           # -b
    maxtimebits: int = 14           # -u: times wrap after 2^14 frames (380 s)
    sample_rate: int = 11025        # -r

    def reference_settings(self) -> dict:
        """The fields the database depends on."""
        return {k: getattr(self, k) for k in REFERENCE_FIELDS}

    def reference_key(self) -> str:
        """Settings with the same key share one database."""
        ref = tuple(self.reference_settings().values())
        return hashlib.sha256(repr(ref).encode()).hexdigest()[:10]

    def analyzer(self, *, query: bool):
        """An ``audfprint2`` Analyzer set up as its CLI sets it up for ``match`` or ``new``."""
        from audfprint2.cli import setup_analyzer

        density = (self.query_density or self.density) if query else self.density
        fanout = (self.query_fanout or self.fanout) if query else self.fanout
        return setup_analyzer(density, query, self.pks_per_frame, fanout, self.freq_sd,
                              self.query_shifts if query else self.ref_shifts, self.sample_rate,
                              False, None)

    def matcher(self):
        from audfprint2.cli import setup_matcher

        return setup_matcher(self.match_win, self.search_depth, self.min_count, 1,
                             self.exact_count, False, 0.05, False, False, False)

    @property
    def frame_s(self) -> float:
        return 256 / self.sample_rate


REFERENCE_FIELDS = ("density", "fanout", "pks_per_frame", "freq_sd", "ref_shifts", "hashbits",
                    "bucketsize", "maxtimebits", "sample_rate")

#: ``audfprint new`` / ``audfprint match`` with no options.
DEFAULTS = PeerSettings("defaults")

#: Tuned for short, noisy excerpts the way audfprint's author advises (dpwe/audfprint#27, #9:
#: raise ``--density`` first, aim for dozens of matching hashes; keep the matches that chance
#: cannot reach; ``--maxtime`` above the longest track so offsets do not wrap), chosen with
#: :func:`~benchmarks.peers.audfprint_comparison.tune` on other queries than the benchmark's
#: (seed 1: 8 references x 7 conditions x 5/10 s, 100 never-registered excerpts), against the
#: database of all 271 references:
#:
#: * defaults (20.7 hashes/s stored, 450 hashes per query p50): mean recall over the 14
#:   condition/length cells 46 % at its ``--min-count 5``, but 5 of 100 negatives matched
#:   (chance reaches 8 aligned hashes in a 271-track database); 35 % at a chance-free 8.
#: * ``--density 70`` (68 hashes/s stored, about Nanhu's 61 postings/s; 1844 query hashes):
#:   67 % at ``--min-count 5`` with 76/100 false matches; chance reaches 15 aligned hashes
#:   (p99 12), and at ``--min-count 15`` recall is 52-54 % with no false match. Kept.
#: * On a 30-reference subset: ``--density 40`` (with and without ``--fanout 5``) sat between
#:   the two; ``--exact-count`` changed nothing; a query-side ``--fanout 10`` against the default
#:   database gained 1 point. Shifts stay at the CLI's 4 for queries.
TUNED = replace(DEFAULTS, name="tuned", density=70.0, maxtimebits=17, min_count=15)


@dataclass
class PeerMatch:
    """The peer's answer to one query; ``reference_id`` is None when it finds nothing."""

    reference_id: str | None
    offset_s: float | None           # reference time at the query's start (s)
    aligned_hashes: int              # hashes agreeing on that time skew (within match_win)
    common_hashes: int               # hashes the query shares with that reference at any skew
    query_hashes: int                # distinct hashes analysed from the query
    fingerprint_ms: float            # decode, WAV hand-over and analysis
    match_ms: float                  # lookup and time-skew counting


@contextlib.contextmanager
def _wav_reader() -> Iterator[None]:
    """Make audfprint2 read our WAV files with scipy (its no-ffmpeg path), then restore."""
    from audfprint2.utils import audio

    before = audio.HAVE_FFMPEG
    audio.HAVE_FFMPEG = False
    try:
        yield
    finally:
        audio.HAVE_FFMPEG = before


def write_wav(path: Path, samples: np.ndarray, sample_rate: int) -> Path:
    """16-bit mono WAV of float samples (full scale ±1), for audfprint's reader."""
    from scipy.io import wavfile

    wavfile.write(path, sample_rate, (np.clip(samples, -1.0, 1.0) * 32767).astype(np.int16))
    return path


class AudfprintPeer:
    """One setting's analyser, matcher and hash table, answering queries from bytes or paths.

    ``table`` is an ``audfprint2.HashTable`` (built by :func:`build_databases` or loaded from its
    HDF file); reference names in it are the corpus ids.
    """

    def __init__(self, settings: PeerSettings, table, workdir: Path | None = None) -> None:
        self.settings = settings
        self.table = table
        self.analyzer = settings.analyzer(query=True)
        self.matcher = settings.matcher()
        self._own_dir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="peer-audfprint-"))

    def close(self) -> None:
        if self._own_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def match(self, query: Source) -> PeerMatch:
        """Best reference for a query (WAV bytes, any PyAV-readable bytes or a path)."""
        s = self.settings
        t0 = time.perf_counter()
        try:
            samples = load_audio(query, sample_rate=s.sample_rate)
        except EmptyMediaError:
            samples = np.zeros(0, np.float32)
        wav = write_wav(self.workdir / "query.wav", samples, s.sample_rate)
        with _wav_reader():
            hashes = self.analyzer.wavfile2hashes(str(wav))
        t1 = time.perf_counter()
        results = self.matcher.match_hashes(self.table, hashes) if len(hashes) else np.zeros((0, 7))
        t2 = time.perf_counter()
        fp_ms, match_ms = (t1 - t0) * 1000, (t2 - t1) * 1000
        if len(results) == 0:
            return PeerMatch(None, None, 0, 0, len(hashes), fp_ms, match_ms)
        track, aligned, skew, raw = (int(v) for v in results[0, :4])
        return PeerMatch(str(self.table.names[track]), skew * s.frame_s, aligned, raw, len(hashes),
                         fp_ms, match_ms)


def _corpus_key(references: Sequence[dict]) -> str:
    ids = ",".join(sorted(r.get("sha256", r["id"]) for r in references))
    return hashlib.sha256(ids.encode()).hexdigest()[:10]


def database_dir(settings: PeerSettings, references: Sequence[dict], cache: Path | None = None
                 ) -> Path:
    from nanhu.benchmarks.corpus.cache import cache_dir

    return ((cache or cache_dir() / "bench")
            / f"peer-{PACKAGE}-{settings.reference_key()}-{_corpus_key(references)}")


def build_databases(references: Sequence[dict], settings: Sequence[PeerSettings], *,
                    cache: Path | None = None) -> dict[str, tuple[Any, dict]]:
    """Build (or reuse) one database per distinct reference key; returns name -> (table, build).

    Each reference is decoded once (PyAV, at 11025 Hz) and written as WAV; every database that
    needs it then analyses it (``Analyzer.wavfile2hashes``) and stores it (``HashTable.store``),
    as ``audfprint new`` does. A database's CPU time is the shared decode plus its own analysis
    and storing, so ``x_realtime_per_core`` means what Nanhu's does: media seconds per CPU
    second of one process, decode included.

    ``build`` holds ``references``, ``media_hours``, ``fingerprint_cpu_s``,
    ``fingerprint_x_realtime_per_core``, ``hashes`` (stored), ``dropped`` (bucket overflow),
    ``index_bytes`` (the HDF file), ``index_bytes_per_hour`` and ``table_bytes_in_memory``.
    """
    from audfprint2 import HashTable

    by_key: dict[str, PeerSettings] = {}
    for s in settings:
        by_key.setdefault(s.reference_key(), s)
    out_dirs = {k: database_dir(s, references, cache) for k, s in by_key.items()}
    loaded: dict[str, tuple[Any, dict]] = {}
    todo: dict[str, PeerSettings] = {}
    for key, s in by_key.items():
        d = out_dirs[key]
        if (d / "db.hdf").exists() and (d / "build.json").exists():
            loaded[key] = (HashTable(str(d / "db.hdf")), json.loads((d / "build.json").read_text()))
        else:
            todo[key] = s
    if todo:
        loaded.update(_build(references, todo, out_dirs))
    return {s.name: loaded[s.reference_key()] for s in settings}


def _build(references: Sequence[dict], todo: dict[str, PeerSettings], out_dirs: dict[str, Path]
           ) -> dict[str, tuple[Any, dict]]:
    from audfprint2 import HashTable

    rates = {s.sample_rate for s in todo.values()}
    assert len(rates) == 1, "one decode serves every database"
    rate = rates.pop()
    tables = {k: HashTable(hashbits=s.hashbits, depth=s.bucketsize, maxtime=1 << s.maxtimebits)
              for k, s in todo.items()}
    for k, s in todo.items():
        tables[k].params["samplerate"] = s.sample_rate
    analyzers = {k: s.analyzer(query=False) for k, s in todo.items()}
    cpu = dict.fromkeys(todo, 0.0)
    hashes = dict.fromkeys(todo, 0)
    media_s = 0.0
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="peer-build-") as tmp, _wav_reader():
        wav = Path(tmp) / "reference.wav"
        for number, ref in enumerate(references, 1):
            c0 = time.process_time()
            samples = load_audio(ref["path"], sample_rate=rate)
            write_wav(wav, samples, rate)
            shared = time.process_time() - c0
            media_s += samples.size / rate
            for k, table in tables.items():
                c0 = time.process_time()
                found = analyzers[k].wavfile2hashes(str(wav))
                # What Analyzer.ingest does, under the corpus id instead of the file name.
                table.store(ref["id"], [(int(t), int(h)) for t, h in found.tolist()])
                cpu[k] += shared + time.process_time() - c0
                hashes[k] += len(found)
            if number % 25 == 0:
                rate_n = number / (time.perf_counter() - started)
                log.info("peer %s: %d/%d references (ETA %.0f s)", PACKAGE, number,
                            len(references), (len(references) - number) / rate_n)
    out = {}
    for k, table in tables.items():
        d = out_dirs[k]
        if d.exists():
            shutil.rmtree(d)
        d.mkdir(parents=True)
        path = Path(table.save(str(d / "db.hdf")))
        counts = table.counts.astype(np.int64)
        build = {
            "reference_settings": todo[k].reference_settings(), "references": len(references),
            "media_hours": media_s / 3600, "fingerprint_cpu_s": cpu[k],
            "fingerprint_x_realtime_per_core": media_s / max(cpu[k], 1e-9),
            "hashes": int(hashes[k]), "hashes_per_s": hashes[k] / max(media_s, 1e-9),
            "dropped": int(np.maximum(counts - table.depth, 0).sum()),
            "index_bytes": path.stat().st_size,
            "index_bytes_per_hour": path.stat().st_size / max(media_s / 3600, 1e-9),
            "table_bytes_in_memory": int(table.table.nbytes + table.counts.nbytes),
        }
        (d / "build.json").write_text(json.dumps(build, indent=1))
        out[k] = (table, build)
    return out
