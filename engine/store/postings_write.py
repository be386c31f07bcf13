"""The writing side of the audio postings store: :func:`write_segment` and :func:`merge_segments`.

Both stream sorted (key, position) runs through :class:`_SegmentWriter`; the segment file format
is described in :mod:`engine.store.postings`, which re-exports these names.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from nanhu.engine.errors import CatalogCorrupt, LimitExceeded
from nanhu.engine.store.postings import (
    HOT_MAX,
    MAGIC,
    MAX_SEGMENT_FRAMES,
    SEGMENT_VERSION,
    Segment,
    mix_keys,
)

#: keys (and their postings) reordered per pass when a keyed segment's positions are laid out
_REORDER_KEYS = 1 << 22


def _dir_bits(count: int, key_bits: int) -> int:
    """Directory size for ``count`` postings: 2-4 postings a bucket, within 10..26 bits (the
    directory then costs 1-2 bytes a posting, and a bucket's bisection takes a few steps)."""
    return int(min(key_bits - 1, 26, max(10, int(count).bit_length() - 2)))


def _rem_dtype(rem_bits: int) -> np.dtype:
    return np.dtype("<u1" if rem_bits <= 8 else "<u2" if rem_bits <= 16 else "<u4")


def _pad(handle, multiple: int) -> None:
    extra = handle.tell() % multiple
    if extra:
        handle.write(b"\0" * (multiple - extra))


def _timeline(ordinals: np.ndarray, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(unique ordinals in first-seen order, starts u8[n + 1]) giving each reference
    ``max(frame) + 1`` positions."""
    unique, first, inverse = np.unique(ordinals, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")
    length = np.zeros(unique.size, np.int64)
    np.maximum.at(length, inverse, frames.astype(np.int64) + 1)
    starts = np.concatenate([[0], np.cumsum(length[order])]).astype(np.uint64)
    return unique[order].astype(np.uint32), starts


def write_segment(path: Path, keys: np.ndarray, ordinals: np.ndarray, frames: np.ndarray, *,
                  key_bits: int, layout: str | None = None) -> int:
    """Write one segment file (sorted here) and fsync it; returns its size in bytes.

    keys : ndarray [shape=(n,)], uint32 < 2^key_bits; ordinals : uint32[n]; frames : int[n] >= 0.
    layout : "flat" or "keyed" to force one; default the smaller.
    """
    keys = np.asarray(keys, np.uint32)
    if keys.size and int(keys.max()) >= 1 << key_bits:
        raise ValueError(f"{path}: keys wider than {key_bits} bits")
    keys = mix_keys(keys, key_bits)
    frames = np.maximum(np.asarray(frames, np.int64), 0)
    ordinals = np.asarray(ordinals, np.uint32)
    refs, starts = _timeline(ordinals, frames)
    if int(starts[-1]) > MAX_SEGMENT_FRAMES:
        raise LimitExceeded(f"{path}: a postings segment holds at most 2^32 frames")
    by_ordinal = np.argsort(refs)
    local = by_ordinal[np.searchsorted(refs, ordinals, sorter=by_ordinal)]
    positions = (starts[local] + frames.astype(np.uint64)).astype(np.uint32)
    order = np.lexsort((positions, keys))
    with _SegmentWriter(path, key_bits, refs, starts, keys.size, layout) as writer:
        writer.append(keys[order], positions[order])
    return path.stat().st_size


class _SegmentWriter:
    """Streams sorted (key, position) runs into a segment file. Both layouts' parts go to
    scratch files (per-posting remainders, the key table, positions in key order); on close the
    smaller layout is written (see :mod:`engine.store.postings`), so no more than one run, or
    one reordering pass, is ever in memory. ``layout`` ("flat", "keyed") forces one (tests)."""

    def __init__(self, path: Path, key_bits: int, refs: np.ndarray, starts: np.ndarray,
                 expected_count: int, layout: str | None = None) -> None:
        self.path, self.key_bits, self.layout = path, key_bits, layout
        self.refs, self.starts = refs.astype("<u4"), starts.astype("<u8")
        self.dir_bits = _dir_bits(expected_count, key_bits)
        self.rem_bits = key_bits - self.dir_bits
        self.rem_dtype = _rem_dtype(self.rem_bits)
        self.bucket_counts = np.zeros(1 << self.dir_bits, np.int64)  # postings a bucket
        self.bucket_keys = np.zeros(1 << self.dir_bits, np.int64)  # keys a bucket
        self.count = self.n_keys = self.hot_count = 0
        self.last_key = -1
        self._scratch = tempfile.TemporaryDirectory(dir=path.parent, prefix=".merge-")
        scratch = Path(self._scratch.name)
        self._parts = {name: open(scratch / name, "wb")
                       for name in ("rem", "pos", "key_rems", "key_counts")}

    def __enter__(self) -> _SegmentWriter:
        return self

    def append(self, keys: np.ndarray, positions: np.ndarray) -> None:
        """Add postings whose (mixed) keys are sorted and above every key appended before (a
        key's postings come in one call)."""
        if keys.size == 0:
            return
        if int(keys[0]) <= self.last_key or int(keys.max()) >= 1 << self.key_bits:
            raise ValueError("postings appended out of key order, a key split between two "
                             "appends, or a key beyond the key width")
        self.last_key = int(keys[-1])
        # count into the buckets this run spans only (a merge appends 1/256 of the key space
        # at a time; a full-size count per append would cost the whole directory each time)
        buckets = (keys >> np.uint32(self.rem_bits)).astype(np.int64)
        first = int(buckets[0])
        span = slice(first, int(buckets[-1]) + 1)
        self.bucket_counts[span] += np.bincount(buckets - first)
        new_key = np.flatnonzero(np.diff(keys.astype(np.int64))) + 1
        run_starts = np.concatenate([[0], new_key])
        per_key = np.diff(np.append(run_starts, keys.size))
        self.bucket_keys[span] += np.bincount(buckets[run_starts] - first)
        mask = np.uint32((1 << self.rem_bits) - 1)
        self._parts["rem"].write((keys & mask).astype(self.rem_dtype).tobytes())
        self._parts["pos"].write(np.ascontiguousarray(positions, "<u4").tobytes())
        self._parts["key_rems"].write((keys[run_starts] & mask).astype(self.rem_dtype).tobytes())
        self._parts["key_counts"].write(per_key.astype("<u4").tobytes())
        self.count += keys.size
        self.n_keys += run_starts.size
        self.hot_count += int(per_key[per_key <= HOT_MAX].sum())

    def __exit__(self, exc_type, *exc) -> None:
        try:
            for part in self._parts.values():
                part.close()
            if exc_type is None:
                self._finish()
        finally:
            self._scratch.cleanup()

    def _keyed(self) -> bool:
        if self.layout is not None:
            return self.layout == "keyed" and self.n_keys > 0
        size = self.rem_dtype.itemsize
        return 0 < self.n_keys * (size + 8) < self.count * size

    def _finish(self) -> None:
        if self.count >= 1 << 32:
            raise LimitExceeded(f"{self.path}: a postings segment holds fewer than 2^32 postings")
        keyed = self._keyed()
        per_bucket = self.bucket_keys if keyed else self.bucket_counts
        directory = np.concatenate([[0], np.cumsum(per_bucket)])
        scratch = Path(self._scratch.name)
        with open(self.path, "wb") as handle:
            handle.write(MAGIC)
            handle.write(np.array([SEGMENT_VERSION, self.key_bits, self.dir_bits,
                                   self.rem_dtype.itemsize], "<u4").tobytes())
            handle.write(np.array([self.count, self.refs.size, int(self.starts[-1]),
                                   self.n_keys if keyed else 0,
                                   self.hot_count if keyed else self.count], "<u8").tobytes())
            handle.write(self.refs.tobytes())
            _pad(handle, 8)
            handle.write(self.starts.tobytes())
            handle.write(directory.astype("<u4").tobytes())
            if keyed:
                self._write_keyed(handle, scratch)
            else:
                _copy(scratch / "rem", handle)
                _pad(handle, 4)
                _copy(scratch / "pos", handle)
            handle.flush()
            os.fsync(handle.fileno())

    def _write_keyed(self, handle, scratch: Path) -> None:
        """Key table, then positions by count class (:func:`count_classes`): the hot keys'
        postings, then those of keys of 65-128 postings, 129-256, ..., each class in key order
        (the cold classes go through scratch files), :data:`_REORDER_KEYS` keys a pass."""
        _copy(scratch / "key_rems", handle)
        _pad(handle, 4)
        counts = np.memmap(scratch / "key_counts", "<u4", "r", shape=(self.n_keys,))
        totals = np.zeros(_MAX_CLASSES, np.int64)  # postings a class
        for lo in range(0, self.n_keys, _REORDER_KEYS):
            c = counts[lo: lo + _REORDER_KEYS].astype(np.int64)
            totals += np.bincount(count_classes(c), weights=c, minlength=_MAX_CLASSES
                                  ).astype(np.int64)
        next_first = np.concatenate([[0], np.cumsum(totals)[:-1]])  # where each class goes on
        present = np.flatnonzero(totals)
        for lo in range(0, self.n_keys, _REORDER_KEYS):
            c = counts[lo: lo + _REORDER_KEYS].astype(np.int64)
            cls = count_classes(c)
            runs = np.empty((c.size, 2), "<u4")  # (first, count) side by side
            for k in present:
                mine = cls == k
                runs[mine, 0] = next_first[k] + np.cumsum(c[mine]) - c[mine]
                next_first[k] += int(c[mine].sum())
            runs[:, 1] = c
            handle.write(runs.tobytes())
        _pad(handle, 4)
        parts = {int(k): open(scratch / f"class-{k}", "wb") for k in present if k > 0}
        try:
            with open(scratch / "pos", "rb") as positions:
                for lo in range(0, self.n_keys, _REORDER_KEYS):
                    c = counts[lo: lo + _REORDER_KEYS].astype(np.int64)
                    run = np.frombuffer(positions.read(int(c.sum()) * 4), "<u4")
                    # one stable (radix) sort of the postings' classes splits the pass
                    cls = np.repeat(count_classes(c).astype(np.uint8), c)
                    ends = np.cumsum(np.bincount(cls, minlength=_MAX_CLASSES))
                    run = run[np.argsort(cls, kind="stable")]
                    handle.write(run[:ends[0]].tobytes())
                    for k, part in parts.items():
                        part.write(run[ends[k - 1]:ends[k]].tobytes())
        finally:
            for part in parts.values():
                part.close()
        del counts
        for k in sorted(parts):
            _copy(scratch / f"class-{k}", handle)


#: count classes a keyed segment's positions are ordered by (key counts below 2^32)
_MAX_CLASSES = 28


def count_classes(counts: np.ndarray) -> np.ndarray:
    """Each key's count class (int64[n], from counts int[n] >= 1): 0 for keys of at most
    :data:`HOT_MAX` postings (the hot tier), ``k`` for keys of ``HOT_MAX * 2^(k-1) + 1`` to
    ``HOT_MAX * 2^k``.

    A budgeted lookup reads a query's rarest keys first, so the fewer postings a key holds the
    more often its run is read: at 10,000 h, under the stop-key cap of the time (548), 97 % of
    the runs read were of hot keys, and the keys above the cap (15 % of the postings) were
    never read. Ordered by class, the pages of positions a cache keeps after the hot tier hold
    runs that are read about equally often, and the never-read ones gather at the end of the
    file. With the default cap now at the hot tier's bound (64) no lookup reads past the hot
    tier; the order serves a catalog whose cap is raised (``AudioMatchParams.stop_key_share``)."""
    counts = np.asarray(counts, np.int64)
    scaled = (counts - 1) // max(HOT_MAX, 1)
    classes = np.zeros(scaled.shape, np.int64)
    while (above := scaled > 0).any():
        classes += above
        scaled >>= 1
    return np.maximum(classes, counts > HOT_MAX)  # (no hot tier at all when HOT_MAX is 0)


def _copy(path: Path, handle) -> None:
    with open(path, "rb") as part:
        shutil.copyfileobj(part, handle, 1 << 24)


def merge_segments(paths: Sequence[Path], out: Path, *, key_bits: int,
                   drop_ordinals: np.ndarray | None = None, partitions: int = 256,
                   layout: str | None = None) -> dict:
    """Merge segments into one at ``out`` (fsynced), dropping ``drop_ordinals``' postings.

    Memory holds one partition of the key space at a time (1/``partitions`` of the postings);
    references keep their order (segment by segment), so merging is deterministic; ``layout``
    as :func:`write_segment`. Returns {"count", "bytes", "references"}.
    """
    segments = [Segment(p) for p in paths]
    drop = np.asarray(drop_ordinals if drop_ordinals is not None else [], np.uint32)
    refs, lengths = [], []
    for s in segments:
        keep = ~np.isin(s.ordinals, drop)
        refs.append(s.ordinals[keep])
        lengths.append(np.diff(s.starts.astype(np.int64))[keep])
    refs_all = np.concatenate(refs) if refs else np.zeros(0, np.uint32)
    if np.unique(refs_all).size != refs_all.size:
        raise CatalogCorrupt(f"{out}: a reference has postings in two segments")
    starts = np.concatenate([[0], np.cumsum(np.concatenate(lengths) if lengths else [])])
    if int(starts[-1]) > MAX_SEGMENT_FRAMES:
        raise LimitExceeded(f"{out}: merged segment would exceed 2^32 frames")
    # Where each source segment's timeline lands in the new one: a segment none of whose
    # references is dropped moves by one constant; otherwise each reference by its own.
    shifts, first = [], 0
    for seg, kept in zip(segments, lengths):
        dropped = np.isin(seg.ordinals, drop)
        new_starts = first + np.concatenate([[0], np.cumsum(kept)])[:-1]
        first += int(kept.sum())
        if not dropped.any():
            shifts.append(int(new_starts[0]) if seg.ordinals.size else 0)
        else:
            delta = np.zeros(seg.ordinals.size, np.int64)
            delta[~dropped] = new_starts - seg.starts[:-1][~dropped].astype(np.int64)
            shifts.append((delta, dropped))
    expected = sum(len(s) for s in segments)
    part_bits = max(1, min(int(partitions).bit_length() - 1,
                           min((s.dir_bits for s in segments), default=10)))
    low = np.uint64(0xFFFFFFFF)
    with _SegmentWriter(out, key_bits, refs_all, starts.astype(np.uint64), expected,
                        layout) as writer:
        for part in range(1 << part_bits):
            runs = []
            for seg, shift in zip(segments, shifts):
                bits = seg.dir_bits - part_bits
                keys, posting = seg.keys_in(part << bits, (part + 1) << bits)
                position = seg.positions[posting].astype(np.int64)
                if isinstance(shift, int):
                    position += shift
                else:
                    delta, dropped = shift
                    local = np.searchsorted(seg.starts, position, side="right") - 1
                    alive = ~dropped[local]
                    keys, position = keys[alive], position[alive] + delta[local[alive]]
                # (key, new position) packed in one uint64: one plain sort orders both
                runs.append((keys.astype(np.uint64) << np.uint64(32)) | position.astype(np.uint64))
            if not runs:
                continue
            packed = np.concatenate(runs)
            packed.sort()
            writer.append((packed >> np.uint64(32)).astype(np.uint32),
                          (packed & low).astype(np.uint32))
        count = writer.count
    return {"count": count, "bytes": out.stat().st_size, "references": int(refs_all.size)}
