"""Reference-peak segments: the spectral peaks of references' audio, one file a commit, for
checking a match hypothesis against where the reference's peaks are (engine.audio.verify).

Layout of ``audio/seg-<g>.apk`` (little-endian; no pickle)::

    magic   b"NHAP"
    u32     format version (FORMAT_VERSION)
    u32     references r
    u64     peaks n
    i64[r, 3]  per reference, by ordinal: ordinal, first peak, peaks
    u32     CRC-32 of everything before it
    u32[n]  STFT frame of each peak (a reference's peaks sorted by frame)
    u16[n]  (log-frequency + LF_OFFSET) in 1/LF_SCALE steps of ``AudioParams.bins_per_octave``

At 16 peaks a second that is 0.35 MB an hour. The file is memory-mapped: a check reads a few
hundred peaks of one reference. The header and table carry a checksum and the file's size must
be the one they give, so a torn write is refused as corrupt; the peaks themselves are not
summed at open (3.5 GB at 10,000 h), a file is written under a temporary name, fsynced and
renamed before the manifest names it (:meth:`engine.catalog.Catalog.commit`).

:class:`ReferencePeaks` reads a set of segments; :class:`ReferencePeaksTwin` is its brute-force
twin (a dict), for differential tests.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from nanhu.engine.errors import CatalogCorrupt, VersionMismatch
from nanhu.engine.store import mapping

MAGIC = b"NHAP"
FORMAT_VERSION = 1
#: log-frequency steps are stored in sixteenths (0.06 of an FFT bin at 4 kHz)
LF_SCALE = 16
#: added before scaling: the picker's lowest bin, interpolated, lies up to 1.5 steps below 0
LF_OFFSET = 8
_HEAD = struct.Struct("<4sIIQ")
_CHUNK_PEAKS = 1 << 22


def _as_arrays(frames: np.ndarray, log_freq: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    frames = np.asarray(frames)
    order = np.argsort(frames, kind="stable")
    lf = np.clip(np.rint((np.asarray(log_freq, np.float64)[order] + LF_OFFSET) * LF_SCALE),
                 0, 65535)
    return frames[order].astype("<u4"), lf.astype("<u2")


def write_peak_segment(path: Path, items: Iterable[tuple[int, np.ndarray, np.ndarray]]) -> int:
    """Write references' peaks, ``(ordinal, frames, log_freq)`` triples (frames: STFT frames,
    log_freq: float steps), and fsync; returns the file's size in bytes."""
    rows = sorted(((int(o), *_as_arrays(f, lf)) for o, f, lf in items if len(f)),
                  key=lambda row: row[0])
    return _write(path, rows)


def _head(ordinals: Sequence[int], counts: np.ndarray) -> bytes:
    """Header, table and their checksum for references ``ordinals`` with ``counts`` peaks."""
    table = np.zeros((len(ordinals), 3), "<i8")
    if len(ordinals):
        table[:, 0] = ordinals
        table[:, 1] = np.concatenate([[0], np.cumsum(counts)[:-1]])
        table[:, 2] = counts
    head = _HEAD.pack(MAGIC, FORMAT_VERSION, len(ordinals), int(np.sum(counts))) + table.tobytes()
    return head + struct.pack("<I", zlib.crc32(head))


def _write(path: Path, rows: Sequence[tuple[int, np.ndarray, np.ndarray]]) -> int:
    counts = np.array([f.size for _, f, _ in rows], np.int64)
    with open(path, "wb") as handle:
        handle.write(_head([o for o, _, _ in rows], counts))
        for _, frames, _ in rows:
            handle.write(np.ascontiguousarray(frames, "<u4").tobytes())
        for _, _, lf in rows:
            handle.write(np.ascontiguousarray(lf, "<u2").tobytes())
        handle.flush()
        os.fsync(handle.fileno())
        return handle.tell()


#: a reference's peaks are asked for whole by :meth:`PeakSegment.prefetch` up to this many
#: (65,536: about 68 minutes of audio at 16 a second, 384 KB)
PREFETCH_ROW_PEAKS = 1 << 16


class PeakSegment:
    """One reference-peak file, memory-mapped.

    Raises :class:`CatalogCorrupt` for a file that is short, not one of these, or whose header
    fails its checksum; :class:`VersionMismatch` for another format version.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        with open(self.path, "rb") as handle:
            head = handle.read(_HEAD.size)
            if len(head) < _HEAD.size or head[:4] != MAGIC:
                raise CatalogCorrupt(f"{self.path}: not a Nanhu reference-peak segment")
            _, version, n_refs, n_peaks = _HEAD.unpack(head)
            if version != FORMAT_VERSION:
                raise VersionMismatch(
                    f"{self.path}: reference-peak segment format version {version} is not "
                    f"supported (this Nanhu reads version {FORMAT_VERSION}); rebuild the "
                    "catalog with this Nanhu")
            table_bytes = handle.read(24 * n_refs)
            crc = handle.read(4)
        expected = _HEAD.size + 24 * n_refs + 4 + 6 * n_peaks
        size = self.path.stat().st_size
        if len(crc) < 4 or size != expected:
            raise CatalogCorrupt(f"{self.path}: reference-peak segment is {size} bytes, its "
                                 f"header says {expected} (torn write?)")
        if zlib.crc32(head + table_bytes) != struct.unpack("<I", crc)[0]:
            raise CatalogCorrupt(f"{self.path}: reference-peak segment fails its checksum")
        table = np.frombuffer(table_bytes, "<i8").reshape(n_refs, 3)
        self.ordinals = table[:, 0].copy()
        self.first = table[:, 1].copy()
        self.count = table[:, 2].copy()
        self.n_peaks = int(n_peaks)
        at = _HEAD.size + 24 * n_refs + 4
        if n_peaks:
            self._frames = np.memmap(self.path, "<u4", "r", at, (n_peaks,))
            self._lf = np.memmap(self.path, "<u2", "r", at + 4 * n_peaks, (n_peaks,))
            # a check reads a few KB of one reference: without this, each fault read the
            # device's read-ahead around it (8 MB on the benchmark machine), and at 10,000 h
            # in 8 GB those reads held 2.2 GB of the page cache the postings needed
            mapping.advise_random(self._frames)
            mapping.advise_random(self._lf)
        else:
            self._frames = np.zeros(0, "<u4")
            self._lf = np.zeros(0, "<u2")

    def __len__(self) -> int:
        return int(self.ordinals.size)

    def row(self, ordinal: int) -> int:
        """Index of ``ordinal`` in this file's table, or -1."""
        at = int(np.searchsorted(self.ordinals, ordinal))
        return at if at < self.ordinals.size and self.ordinals[at] == ordinal else -1

    def peaks(self, row: int) -> tuple[np.ndarray, np.ndarray]:
        """A table row's peaks: (frames u32, log-frequency + LF_OFFSET u16 in 1/LF_SCALE
        steps), views."""
        lo = int(self.first[row])
        hi = lo + int(self.count[row])
        return self._frames[lo:hi], self._lf[lo:hi]

    def prefetch(self, rows: np.ndarray) -> None:
        """Ask the disk for the peaks of table rows int64[n] now, together
        (:func:`mapping.prefetch`); rows of more than :data:`PREFETCH_ROW_PEAKS` peaks (a long
        work, of which a check reads a window) are left to be read as they are touched."""
        first, count = self.first[rows].astype(np.int64), self.count[rows].astype(np.int64)
        first, count = first[count <= PREFETCH_ROW_PEAKS], count[count <= PREFETCH_ROW_PEAKS]
        mapping.prefetch(self._frames, first * 4, (first + count) * 4)
        mapping.prefetch(self._lf, first * 2, (first + count) * 2)


def merge_peak_segments(paths: Sequence[Path], out: Path,
                        drop_ordinals: np.ndarray | None = None) -> dict:
    """One segment of every reference in ``paths`` but ``drop_ordinals`` (a reference in two
    files keeps the later file's peaks); returns ``{"references", "peaks", "bytes"}``. Peaks
    are copied a bounded chunk at a time (a 10,000 h catalog holds 3.5 GB of them)."""
    segments = [PeakSegment(p) for p in paths]
    dead = set(np.asarray(drop_ordinals if drop_ordinals is not None else [], np.int64).tolist())
    where: dict[int, tuple[int, int]] = {}
    for s, segment in enumerate(segments):
        for row, ordinal in enumerate(segment.ordinals.tolist()):
            if ordinal not in dead:
                where[ordinal] = (s, row)
    picked = sorted(where.items())
    counts = np.array([segments[s].count[r] for _, (s, r) in picked], np.int64)
    with open(out, "wb") as handle:
        handle.write(_head([o for o, _ in picked], counts))
        for part in (0, 1):
            buffered, size = [], 0
            for _, (s, r) in picked:
                view = segments[s].peaks(r)[part]
                buffered.append(np.asarray(view))
                size += view.size
                if size >= _CHUNK_PEAKS:
                    handle.write(np.concatenate(buffered).tobytes())
                    buffered, size = [], 0
            if buffered:
                handle.write(np.concatenate(buffered).tobytes())
        handle.flush()
        os.fsync(handle.fileno())
        total = handle.tell()
    return {"references": len(picked), "peaks": int(counts.sum()), "bytes": total}


def decode_window(frames: np.ndarray, lf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Stored peaks (frames u32, log-frequency + LF_OFFSET u16 in 1/LF_SCALE steps) as the
    check reads them: (frames float64, log-frequency float64 steps)."""
    return (np.asarray(frames).astype(np.float64),
            np.asarray(lf).astype(np.float64) / LF_SCALE - LF_OFFSET)


class ReferencePeaks:
    """The reference peaks of a catalog's segments (the newest file holding a reference wins).

    :meth:`window` gives one reference's peaks between two frames, as float arrays;
    :meth:`windows` several at once (a sharded catalog answers them in one round trip);
    :meth:`raw_window` the stored integers, for sending.
    """

    def __init__(self, paths: Sequence[Path]) -> None:
        self.segments = [PeakSegment(p) for p in paths]

    def __contains__(self, ordinal: int) -> bool:
        return any(s.row(int(ordinal)) >= 0 for s in self.segments)

    def raw_window(self, ordinal: int, lo: float, hi: float) -> tuple[np.ndarray, np.ndarray]:
        """The stored peaks of reference ``ordinal`` with ``lo <= frame <= hi``: (frames u32,
        log-frequency u16 as stored; :func:`decode_window` reads them), views of the mapped
        file; empty arrays for a reference without stored peaks."""
        found = self._locate(ordinal)
        if found is None:
            return np.zeros(0, np.uint32), np.zeros(0, np.uint16)
        frames, lf = self.segments[found[0]].peaks(found[1])
        a = int(np.searchsorted(frames, max(lo, 0.0), side="left"))
        b = int(np.searchsorted(frames, max(hi, -1.0), side="right"))
        return frames[a:b], lf[a:b]

    def _locate(self, ordinal: int) -> tuple[int, int] | None:
        """(segment index, table row) of reference ``ordinal``'s peaks, the newest file's where
        two hold it; None where none does."""
        for k in range(len(self.segments) - 1, -1, -1):
            row = self.segments[k].row(int(ordinal))
            if row >= 0:
                return k, row
        return None

    def window(self, ordinal: int, lo: float, hi: float) -> tuple[np.ndarray, np.ndarray]:
        """The peaks of reference ``ordinal`` with ``lo <= frame <= hi``: (frames float64,
        log-frequency float64 steps); empty arrays for a reference without stored peaks."""
        return decode_window(*self.raw_window(ordinal, lo, hi))

    def windows(self, requests: Sequence[tuple[int, float, float]]
                ) -> list[tuple[np.ndarray, np.ndarray]]:
        """:meth:`window` of each (ordinal, lo, hi); with ``NANHU_PREFETCH=1`` the references'
        rows are asked of the disk together first (:func:`mapping.prefetch`: a check reads a
        few pages of each, at random places in a file the page cache may not hold)."""
        wanted: dict[int, list[int]] = {}  # segment -> its rows the requests read
        for ordinal in {int(r[0]) for r in requests} if mapping.prefetching() else ():
            found = self._locate(ordinal)
            if found is not None:
                wanted.setdefault(found[0], []).append(found[1])
        for k, rows in wanted.items():
            self.segments[k].prefetch(np.array(rows, np.int64))
        return [self.window(*r) for r in requests]


class ReferencePeaksTwin:
    """Brute-force twin of :class:`ReferencePeaks`: every reference's peaks in a dict, filtered
    by a mask (differential tests)."""

    def __init__(self, items: Iterable[tuple[int, np.ndarray, np.ndarray]]) -> None:
        self._peaks = {int(o): (np.asarray(f, np.float64),
                                np.rint((np.asarray(lf, np.float64) + LF_OFFSET) * LF_SCALE)
                                / LF_SCALE - LF_OFFSET)
                       for o, f, lf in items}

    def __contains__(self, ordinal: int) -> bool:
        return int(ordinal) in self._peaks and self._peaks[int(ordinal)][0].size > 0

    def window(self, ordinal: int, lo: float, hi: float) -> tuple[np.ndarray, np.ndarray]:
        frames, lf = self._peaks.get(int(ordinal), (np.zeros(0), np.zeros(0)))
        keep = (frames >= lo) & (frames <= hi)
        order = np.argsort(frames[keep], kind="stable")
        return frames[keep][order], lf[keep][order]

    def windows(self, requests: Sequence[tuple[int, float, float]]
                ) -> list[tuple[np.ndarray, np.ndarray]]:
        return [self.window(*r) for r in requests]
