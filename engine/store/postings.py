"""Audio postings: landmark hash -> (reference ordinal, frame), behind one narrow interface.

Three implementations of :class:`PostingsIndex`:

- :class:`SegmentPostings` (the default): immutable segment files of sorted ``uint32`` keys with
  packed ``uint64`` values ``(ordinal << 32) | frame``, memory-mapped; lookups are one vectorised
  ``searchsorted`` per segment. New registrations write new segments; compaction merges them.
- :class:`FaissBinaryPostings`: the same postings in FAISS's ``IndexBinaryHash`` (the design
  card's choice), with the value packed into the 64-bit id. Kept for the benchmark's
  side-by-side measurement (``benchmarks/audio_bench.py``), see ``docs/audio.md``.
- :class:`BruteForcePostings`: a dict of lists, obviously correct, for differential tests.

Segment file format (version 1, little-endian)::

    magic  b"NANHUPST"  8 bytes
    version uint32, reserved uint32, count uint64
    keys   uint32[count]   sorted ascending
    pad to 8 bytes
    values uint64[count]   (ordinal << 32) | frame
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

import numpy as np

from engine.errors import CatalogCorrupt

MAGIC = b"NANHUPST"
SEGMENT_VERSION = 1
_HEADER = 24


class PostingsIndex(Protocol):
    """Read side of an audio postings store."""

    def lookup(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """All postings of each key.

        keys : ndarray [shape=(m,)], uint32, unique
        Returns (key_index int64[k] into ``keys``, ordinal uint32[k], frame uint32[k]).
        """

    def __len__(self) -> int: ...


def pack_values(ordinals: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """uint64 ``(ordinal << 32) | frame``; frames are clipped to >= 0."""
    return (ordinals.astype(np.uint64) << np.uint64(32)) | np.maximum(frames, 0).astype(np.uint64)


def unpack_values(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return (values >> np.uint64(32)).astype(np.uint32), (values & np.uint64(0xFFFFFFFF)).astype(
        np.uint32
    )


def write_segment(path: Path, keys: np.ndarray, values: np.ndarray) -> int:
    """Write a segment file (keys sorted here) and fsync it; returns its size in bytes.

    keys : ndarray [shape=(n,)], uint32; values : ndarray [shape=(n,)], uint64.
    """
    order = np.argsort(keys, kind="stable")
    keys = np.ascontiguousarray(keys[order], dtype="<u4")
    values = np.ascontiguousarray(values[order], dtype="<u8")
    count = keys.size
    with open(path, "wb") as handle:
        handle.write(MAGIC)
        handle.write(np.array([SEGMENT_VERSION, 0], "<u4").tobytes())
        handle.write(np.array([count], "<u8").tobytes())
        handle.write(keys.tobytes())
        if (count * 4) % 8:
            handle.write(b"\0" * 4)
        handle.write(values.tobytes())
        handle.flush()
        os.fsync(handle.fileno())
    return path.stat().st_size


class Segment:
    """One memory-mapped, immutable segment file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            raw = np.memmap(path, dtype=np.uint8, mode="r")
        except (OSError, ValueError) as exc:
            raise CatalogCorrupt(f"{path}: cannot map postings segment ({exc})") from exc
        if raw.size < _HEADER or bytes(raw[:8]) != MAGIC:
            raise CatalogCorrupt(f"{path}: not a Nanhu postings segment")
        version = int(np.frombuffer(raw[8:12], "<u4")[0])
        if version != SEGMENT_VERSION:
            raise CatalogCorrupt(f"{path}: postings segment version {version} is not supported")
        count = int(np.frombuffer(raw[16:24], "<u8")[0])
        key_bytes = count * 4 + (4 if (count * 4) % 8 else 0)
        if raw.size != _HEADER + key_bytes + count * 8:
            raise CatalogCorrupt(f"{path}: postings segment is truncated")
        self.keys = np.frombuffer(raw, "<u4", count=count, offset=_HEADER)
        self.values = np.frombuffer(raw, "<u8", count=count, offset=_HEADER + key_bytes)

    def __len__(self) -> int:
        return int(self.keys.size)


def _expand_ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenated ``arange(s, s + l)`` for each (s, l), vectorised."""
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, np.int64)
    ends = np.cumsum(lengths)
    within = np.arange(total, dtype=np.int64) - np.repeat(ends - lengths, lengths)
    return np.repeat(starts.astype(np.int64), lengths) + within


class SegmentPostings:
    """Postings over a list of memory-mapped segments (the catalog's default store)."""

    def __init__(self, paths: list[Path]) -> None:
        self.segments = [Segment(path) for path in paths]

    def __len__(self) -> int:
        return sum(len(segment) for segment in self.segments)

    def lookup(
        self, keys: np.ndarray, *, max_postings: int | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """See :meth:`PostingsIndex.lookup`; keys holding more than ``max_postings`` postings
        in all (stop-hashes: the commonest spectral patterns, which say little about which
        work it is) return nothing."""
        keys = np.asarray(keys, np.uint32)
        ranges = []
        total = np.zeros(keys.size, np.int64)
        for segment in self.segments:
            left = np.searchsorted(segment.keys, keys, side="left")
            right = np.searchsorted(segment.keys, keys, side="right")
            ranges.append((left, right))
            total += right - left
        usable = total <= max_postings if max_postings is not None else np.ones(keys.size, bool)
        key_index, values = [], []
        for segment, (left, right) in zip(self.segments, ranges):
            lengths = np.where(usable, right - left, 0)
            positions = _expand_ranges(left, lengths)
            key_index.append(np.repeat(np.arange(keys.size, dtype=np.int64), lengths))
            values.append(segment.values[positions])
        if not values:
            return np.zeros(0, np.int64), np.zeros(0, np.uint32), np.zeros(0, np.uint32)
        ordinals, frames = unpack_values(np.concatenate(values))
        return np.concatenate(key_index), ordinals, frames

    def all_postings(self) -> tuple[np.ndarray, np.ndarray]:
        """(keys uint32[n], values uint64[n]) of every segment, for merging."""
        if not self.segments:
            return np.zeros(0, np.uint32), np.zeros(0, np.uint64)
        return (
            np.concatenate([np.asarray(s.keys) for s in self.segments]),
            np.concatenate([np.asarray(s.values) for s in self.segments]),
        )


class BruteForcePostings:
    """A dict of lists: the obviously correct twin used in differential tests."""

    def __init__(self) -> None:
        self.table: dict[int, list[tuple[int, int]]] = {}

    def add(self, ordinal: int, keys: np.ndarray, frames: np.ndarray) -> None:
        for key, frame in zip(keys.tolist(), frames.tolist()):
            self.table.setdefault(key, []).append((ordinal, max(frame, 0)))

    def delete(self, ordinal: int) -> None:
        for key in list(self.table):
            self.table[key] = [p for p in self.table[key] if p[0] != ordinal]

    def __len__(self) -> int:
        return sum(len(v) for v in self.table.values())

    def lookup(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        rows = [
            (index, ordinal, frame)
            for index, key in enumerate(np.asarray(keys).tolist())
            for ordinal, frame in self.table.get(key, [])
        ]
        if not rows:
            return np.zeros(0, np.int64), np.zeros(0, np.uint32), np.zeros(0, np.uint32)
        array = np.array(rows, np.int64)
        return array[:, 0], array[:, 1].astype(np.uint32), array[:, 2].astype(np.uint32)


class FaissBinaryPostings:
    """Postings in ``faiss.IndexBinaryHash`` (exact-key buckets, id = packed value).

    Each 32-bit hash is stored as a 4-byte binary code; the index buckets codes by their first
    ``hash_bits`` bits; an exact lookup is a range search of radius 0.
    """

    def __init__(self, hash_bits: int = 22) -> None:
        import faiss

        self._faiss = faiss
        self.hash_bits = hash_bits
        self.index = faiss.IndexBinaryHash(32, hash_bits)

    def _codes(self, keys: np.ndarray) -> np.ndarray:
        # Big-endian bytes put the hash's high bits first, where IndexBinaryHash buckets.
        shifted = np.asarray(keys, np.uint32) << np.uint32(32 - self.hash_bits)
        return np.ascontiguousarray(shifted.astype(">u4")).view(np.uint8).reshape(-1, 4)

    def add(self, keys: np.ndarray, values: np.ndarray) -> None:
        self.index.add_with_ids(self._codes(keys), values.astype(np.int64))

    def __len__(self) -> int:
        return int(self.index.ntotal)

    def lookup(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        keys = np.asarray(keys, np.uint32)
        if keys.size == 0 or self.index.ntotal == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.uint32), np.zeros(0, np.uint32)
        lims, _, ids = self.index.range_search(self._codes(keys), 1)
        counts = np.diff(lims).astype(np.int64)
        ordinals, frames = unpack_values(ids.astype(np.uint64))
        return np.repeat(np.arange(keys.size, dtype=np.int64), counts), ordinals, frames
