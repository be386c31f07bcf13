"""Audio postings: landmark key -> (reference ordinal, frame), behind one narrow interface.

- :class:`SegmentPostings` (the catalog's store): immutable, memory-mapped segment files; a
  lookup is one directory read per key and a bisection of that key's bucket, and no key may return
  more than ``max_postings`` postings (stop-keys: the commonest spectral patterns say little
  about which work it is and cost the most). New registrations write small segments;
  :func:`merge_segments` merges them (tiered, in the writer's commit, and on ``compact``) in
  bounded memory, partition by partition of the key space.
- :class:`~engine.store.postings_twin.BruteForcePostings`: a dict of lists, obviously correct,
  for differential tests.

Segment file format (version 4, little-endian; version 3, the flat layout under a 48-byte
header without the last two fields, is still read; version 2 stored keys unmixed)::

    magic      b"NANHUPST"                                         8 bytes
    header     version u4, key_bits u4, dir_bits u4, rem_bytes u4,
               count u8, n_refs u8, total_frames u8,
               n_keys u8 (0: flat layout), hot_count u8            56 bytes
    ordinals   u4[n_refs]              the segment's references, in timeline order
    (pad to 8)
    starts     u8[n_refs + 1]          first timeline position of each reference; last = total
  flat layout (a remainder per posting: the smaller file where most keys hold a posting or two)
    directory  u4[2^dir_bits + 1]      first posting of each bucket (bucket = key >> rem_bits)
    remainders u1|u2|u4[count]         key & (2^rem_bits - 1), sorted within each bucket
    (pad to 4)
    positions  u4[count]               starts[reference] + frame, in key order
  keyed layout (a remainder per key: the smaller file where keys hold many postings)
    directory  u4[2^dir_bits + 1]      first key of each bucket
    key_rems   u1|u2|u4[n_keys]        each key's remainder, ascending within its bucket
    (pad to 4)
    key_runs   u4[n_keys, 2]           where its postings start in positions, and how many
                                       (side by side: one cache line a key)
    positions  u4[count]               the postings of the keys holding at most HOT_MAX first
                                       (hot_count of them), in key order; then the others'
                                       by count class (HOT_MAX * 2^(k-1) < count <=
                                       HOT_MAX * 2^k), each class in key order

Of the keyed layout's positions, a lookup mostly reads the *hot* region: the budget takes the
rarest keys first, and at 10,000 h 97 % of the runs it read (86 % of the postings) were in keys
of at most 64 postings, which hold 42 % of the postings. Kept apart, those pages are the
index's working set and the rest is read from disk when asked (with the default stop-key cap
of 64 postings, ``AudioMatchParams.stop_key_floor``, never: the hot tier is every run a lookup
reads).
After it, runs are ordered by their key's count class (``postings_write.count_classes``), so
the positions a page cache keeps past the hot tier are those read most often. The reader needs
no such order (a key's run is wherever its key table entry says): files written before it are
read alike.

Keys are stored *mixed*: ``k' = (k * MIX) mod 2^key_bits``, a bijection (``MIX`` is odd), so
that keys which differ only in their low fields (a popular peak pattern at every pitch cell
and time span) spread over the directory instead of filling one bucket; a lookup mixes the
query's keys the same way.

A flat posting costs ``rem_bytes + 4`` bytes plus 4 bytes per bucket; a keyed one 4 bytes plus
``rem_bytes + 8`` per key (at 10,000 h, 37 postings a key: 4.3 bytes a posting where the flat
layout took 5.1). The writer picks the smaller of the two per segment. Positions are 32
bits, so one segment holds at most 2^32 frames (19,000 hours at 62.5 frames/s); the merge
policy keeps segments below that.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from nanhu.engine.errors import CatalogCorrupt
from nanhu.engine.store import kernels, mapping
from nanhu.engine.store.postings_keys import (  # noqa: F401 - the store's key order, re-exported
    MIX,
    StoredKeys,
    mix_keys,
    sort_keys,
    unmix_keys,
)
from nanhu.engine.store.timeline import Timeline

MAGIC = b"NANHUPST"
SEGMENT_VERSION = 4
#: versions this Nanhu reads (3: the flat layout under a shorter header)
READABLE_VERSIONS = (3, 4)
_HEADERS = {3: 48, 4: 64}
#: keyed layout: postings of keys holding at most this many are the hot region of positions.
#: The stop-key floor (``AudioMatchParams.stop_key_floor``): in a catalog small enough that no
#: key holds more, every readable key is hot.
HOT_MAX = 64
MAX_SEGMENT_FRAMES = (1 << 32) - 1
class PostingsIndex(Protocol):
    """Read side of an audio postings store."""

    def lookup(self, keys: np.ndarray, *, max_postings: int | None = None,
               budget: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The postings of each key; keys with more than ``max_postings`` in all give none, and
        at most ``budget`` postings are returned, from the rarest keys up (see :func:`select`).

        keys : ndarray [shape=(m,)], uint32, unique
        Returns (key_index int64[k] into ``keys``, ordinal uint32[k], frame uint32[k]).
        """

    def __len__(self) -> int: ...


class Segment:
    """One memory-mapped, immutable segment file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            raw = np.memmap(path, dtype=np.uint8, mode="r")
        except (OSError, ValueError) as exc:
            raise CatalogCorrupt(f"{path}: cannot map postings segment ({exc})") from exc
        if raw.size < _HEADERS[3] or bytes(raw[:8]) != MAGIC:
            raise CatalogCorrupt(f"{path}: not a Nanhu postings segment")
        version, key_bits, dir_bits, rem_bytes = (int(v) for v in np.frombuffer(raw[8:24], "<u4"))
        if version not in READABLE_VERSIONS:
            raise CatalogCorrupt(
                f"{path}: postings segment version {version} is not supported (this Nanhu reads "
                f"versions {', '.join(map(str, READABLE_VERSIONS))}; rebuild the catalog)")
        header = _HEADERS[version]
        if raw.size < header:
            raise CatalogCorrupt(f"{path}: postings segment is truncated (header)")
        fields = [int(v) for v in np.frombuffer(raw[24:header], "<u8")]
        count, n_refs, total = fields[:3]
        n_keys, self.hot_count = fields[3:] if version >= 4 else (0, count)
        self.version, self.keyed = version, n_keys > 0
        self.key_bits, self.dir_bits = key_bits, dir_bits
        self.rem_bits = key_bits - dir_bits
        offset = header
        try:
            self.ordinals = np.frombuffer(raw, "<u4", n_refs, offset)
            offset += n_refs * 4 + (-(n_refs * 4) % 8)
            self.starts = np.frombuffer(raw, "<u8", n_refs + 1, offset)
            offset += (n_refs + 1) * 8
            self.directory = np.frombuffer(raw, "<u4", (1 << dir_bits) + 1, offset)
            directory_offset = offset
            offset += ((1 << dir_bits) + 1) * 4
            if self.keyed:
                self.key_rems = np.frombuffer(raw, f"<u{rem_bytes}", n_keys, offset)
                offset += n_keys * rem_bytes
                offset += -offset % 4
                self.key_runs = np.frombuffer(raw, "<u4", 2 * n_keys, offset)  # flat pairs
                self.key_firsts, self.key_counts = self.key_runs[0::2], self.key_runs[1::2]
                offset += n_keys * 8
            else:
                self.remainders = np.frombuffer(raw, f"<u{rem_bytes}", count, offset)
                offset += count * rem_bytes
            # Every lookup reads the directory and the remainders (or the key table) at one
            # random place per key: mapped now (sequential, so read-ahead helps), before any
            # lookup waits on them.
            mapping.populate(raw, directory_offset, offset)
            mapping.advise_random(raw)
            offset += -offset % 4
            self.positions = np.frombuffer(raw, "<u4", count, offset)
            # the hot tier (all of a flat segment's positions) in the background, where it
            # fits: a keyed segment's locked with its directory and key table; the rest stays
            # lazy, read from disk when a lookup asks for it
            hot_end = offset + self.hot_count * 4
            if not (self.keyed and mapping.lock_later(
                    raw, [(directory_offset, offset), (offset, hot_end)], what=str(path))):
                mapping.populate_later(raw, offset, hot_end, what=str(path))
            offset += count * 4
        except ValueError as exc:
            raise CatalogCorrupt(f"{path}: postings segment is truncated ({exc})") from exc
        if offset != raw.size or int(self.starts[-1]) != total or not 0 <= self.hot_count <= count:
            raise CatalogCorrupt(f"{path}: postings segment is truncated or padded")
        if self.keyed and (int(self.directory[-1]) != n_keys
                           or int(self.key_runs[-2:].astype(np.int64).sum()) > count):
            raise CatalogCorrupt(f"{path}: postings segment's key table does not match its "
                                 "positions")
        self.total_frames = total
        self.timeline = Timeline(self.starts)

    def __len__(self) -> int:
        return int(self.positions.size)

    def ranges(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(first posting int64[m], count int64[m]) of each key: its postings are
        ``first .. first + count``.

        One directory read per key, then a bisection of the key's bucket (remainders are sorted
        within a bucket), a compiled loop over the keys (:func:`kernels.key_runs`; its numpy
        twin is :meth:`ranges_numpy`): the cost is ``log2(bucket size)`` steps in one or two
        cache lines, whatever the keys hold, so a key that shares its bucket with a popular one
        costs no more than any other, and no posting is read before the caller has chosen
        which to read.
        """
        return self.ranges_stored(StoredKeys(keys, self.key_bits))

    def ranges_stored(self, query: StoredKeys) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`ranges` of keys already mixed and sorted for this key width (one
        :class:`StoredKeys` serves every segment of the width)."""
        if query.key_bits != self.key_bits:
            raise ValueError(f"keys mixed for {query.key_bits} bits; segment has {self.key_bits}")
        first, count = np.empty(query.size, np.int64), np.empty(query.size, np.int64)
        if self.keyed:
            kernels.key_table_runs(self.directory, self.key_rems, self.key_runs,
                                   query.ordered, query.order, self.rem_bits, first, count)
        else:
            kernels.key_runs(self.directory, self.remainders, query.ordered, query.order,
                             self.rem_bits, first, count)
        if query.wide.any():
            first[query.wide] = 0 if self.keyed else self.directory[(
                query.mixed[query.wide] >> np.uint32(self.rem_bits)).astype(np.int64)]
            count[query.wide] = 0
        return first, count

    def ranges_numpy(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`ranges` as vectorised bisections: its twin in the tests."""
        keys = np.asarray(keys, np.uint32)
        wide = keys >= (1 << self.key_bits)
        mixed = mix_keys(np.where(wide, 0, keys), self.key_bits)
        bucket = (mixed >> np.uint32(self.rem_bits)).astype(np.int64)
        lo = self.directory[bucket].astype(np.int64)
        hi = self.directory[bucket + 1].astype(np.int64)
        hi[wide] = lo[wide]
        wanted = (mixed & np.uint32((1 << self.rem_bits) - 1)).astype(np.int64)
        if self.keyed:  # a key's entry in the bucket's key table; 0, 0 where none
            at = _lower_bound(self.key_rems, lo, hi, wanted)
            found = at < hi
            found[found] = self.key_rems[at[found]] == wanted[found]
            first = np.where(found, self.key_firsts[np.where(found, at, 0)], 0).astype(np.int64)
            return first, np.where(found, self.key_counts[np.where(found, at, 0)], 0).astype(
                np.int64)
        first = _lower_bound(self.remainders, lo, hi, wanted)
        stop = _lower_bound(self.remainders, first, hi, wanted + 1)
        return first, stop - first

    def resolve(self, posting: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(ordinal uint32, frame uint32) of postings."""
        position = self.positions[posting].astype(np.int64)
        local = self.timeline.locate(position)
        return self.ordinals[local], (position - self.timeline.starts[local]).astype(np.uint32)

    def read_runs(self, first: np.ndarray, count: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(key_index int64[k], ordinal uint32[k], frame uint32[k]) of the postings
        ``first[i] .. first[i] + count[i]`` of each key ``i`` (int64[m]), key by key: what
        :func:`expand_ranges` and :meth:`resolve` give, in one compiled pass
        (:func:`kernels.read_runs`). With ``NANHU_PREFETCH=1`` the cold tier's runs are asked
        of the disk together first (:func:`mapping.prefetch`), not one page fault at a time."""
        timeline = self.timeline
        if self.hot_count < self.positions.size and mapping.prefetching():  # cold: lazy
            first = np.asarray(first, np.int64)
            cold = (np.asarray(count) > 0) & (first >= self.hot_count)
            if cold.any():
                mapping.prefetch(self.positions, first[cold] * 4,
                                 (first[cold] + np.asarray(count, np.int64)[cold]) * 4)
        return kernels.read_runs(np.ascontiguousarray(first, np.int64),
                                 np.ascontiguousarray(count, np.int64), self.positions,
                                 timeline.first, timeline.starts, timeline.block_bits,
                                 self.ordinals)

    def keys_in(self, first_bucket: int, stop_bucket: int) -> tuple[np.ndarray, np.ndarray]:
        """(mixed keys uint32, postings int64) of buckets [first_bucket, stop_bucket), in stored
        key order, each key's postings in stored order (:func:`unmix_keys` gives the keys)."""
        lo, hi = int(self.directory[first_bucket]), int(self.directory[stop_bucket])
        counts = np.diff(self.directory[first_bucket: stop_bucket + 1].astype(np.int64))
        high = np.repeat(np.arange(first_bucket, stop_bucket, dtype=np.uint32), counts)
        if not self.keyed:
            keys = (high << np.uint32(self.rem_bits)) | self.remainders[lo:hi].astype(np.uint32)
            return keys, np.arange(lo, hi, dtype=np.int64)
        keys = (high << np.uint32(self.rem_bits)) | self.key_rems[lo:hi].astype(np.uint32)
        per_key = self.key_counts[lo:hi].astype(np.int64)
        return np.repeat(keys, per_key), expand_ranges(self.key_firsts[lo:hi], per_key)

    @property
    def n_keys(self) -> int:
        """Distinct keys of the segment (flat layout: counted from its remainders)."""
        if self.keyed:
            return int(self.key_counts.size)
        keys, _ = self.keys_in(0, 1 << self.dir_bits)
        return int(np.count_nonzero(np.diff(keys.astype(np.int64))) + (keys.size > 0))


def _lower_bound(values: np.ndarray, lo: np.ndarray, hi: np.ndarray,
                 wanted: np.ndarray) -> np.ndarray:
    """First index ``i`` in ``[lo, hi)`` with ``values[i] >= wanted`` (``hi`` if none), for
    many sorted ranges at once: a vectorised bisection, ``log2(max(hi - lo))`` steps.

    values : ndarray [shape=(n,)], sorted within each range; lo, hi, wanted : int64[m].
    """
    lo, hi = lo.copy(), hi.copy()
    active = np.flatnonzero(lo < hi)
    while active.size:
        mid = (lo[active] + hi[active]) >> 1
        below = values[mid] < wanted[active]
        lo[active[below]] = mid[below] + 1
        hi[active[~below]] = mid[~below]
        active = active[lo[active] < hi[active]]
    return lo


def select(per_key: np.ndarray, *, max_postings: int | None, budget: int | None) -> np.ndarray:
    """Which keys a lookup answers, given each key's posting count (bool mask).

    Keys above ``max_postings`` are stop-keys. Of the rest, the rarest keys are taken first
    (ties in key order) while their postings add up to at most ``budget``: a rare key is
    strong evidence and cheap, a common one weak and costly, so a query's work is bounded
    whatever the catalog's size, and what is left out is what says least.
    """
    keep = per_key <= max_postings if max_postings is not None else np.ones(per_key.size, bool)
    if budget is None or int(per_key[keep].sum()) <= budget:
        return keep
    if budget < 0:
        return np.zeros(per_key.size, bool)
    # The rarest first, ties in key order, while the total fits: every key rarer than some
    # count c, then as many of the keys holding exactly c as fit, in key order. Counted by
    # posting count (a bincount, linear) rather than by a stable sort of the keys.
    counts = per_key[keep].astype(np.int64)
    by_count = np.bincount(counts) * np.arange(int(counts.max()) + 1, dtype=np.int64)
    total_below = np.cumsum(by_count) - by_count  # postings of the keys rarer than c
    c = int(np.flatnonzero(total_below + by_count > budget)[0])  # the count that overflows
    room = budget - int(total_below[c])
    ties = np.flatnonzero(keep & (per_key == c))[: room // c]  # c >= 1: zeros always fit
    taken = keep & (per_key < c)
    taken[ties] = True
    return taken


def expand_ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenated ``arange(s, s + l)`` for each (s, l), vectorised."""
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, np.int64)
    ends = np.cumsum(lengths)
    within = np.arange(total, dtype=np.int64) - np.repeat(ends - lengths, lengths)
    return np.repeat(starts.astype(np.int64), lengths) + within


class SegmentPostings:
    """Postings over a list of memory-mapped segments (the catalog's default store)."""

    def __init__(self, paths: Sequence[Path]) -> None:
        self.segments = [Segment(path) for path in paths]

    def __len__(self) -> int:
        return sum(len(segment) for segment in self.segments)

    def lookup(self, keys: np.ndarray, *, max_postings: int | None = None,
               budget: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """See :meth:`PostingsIndex.lookup`."""
        keys = np.asarray(keys, np.uint32)
        spans = self.spans(keys)
        keep = None
        if (max_postings is not None or budget is not None) and spans:
            per_key = sum(count for _, count in spans)
            keep = select(per_key, max_postings=max_postings, budget=budget)
        return self.read(spans, keep)

    def spans(self, keys: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """Each segment's (first posting int64[m], count int64[m]) of every key: the first
        half of :meth:`lookup` (nothing read yet but the directory)."""
        keys = np.asarray(keys, np.uint32)
        stored: dict[int, StoredKeys] = {}
        for segment in self.segments:
            if segment.key_bits not in stored:
                stored[segment.key_bits] = StoredKeys(keys, segment.key_bits)
        return [segment.ranges_stored(stored[segment.key_bits]) for segment in self.segments]

    def read(self, spans: list[tuple[np.ndarray, np.ndarray]],
             keep: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The postings of the kept keys (bool[m]; None: all) of :meth:`spans`; the second
        half of :meth:`lookup`, same result."""
        if keep is not None:
            spans = [(first, np.where(keep, count, 0)) for first, count in spans]
        key_index, ordinals, frames = [], [], []
        for segment, (first, count) in zip(self.segments, spans):
            k, o, f = segment.read_runs(first, count)
            key_index.append(k)
            ordinals.append(o)
            frames.append(f)
        if not key_index:
            return np.zeros(0, np.int64), np.zeros(0, np.uint32), np.zeros(0, np.uint32)
        return np.concatenate(key_index), np.concatenate(ordinals), np.concatenate(frames)

    def all_postings(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(keys uint32[n], ordinals uint32[n], frames uint32[n]) of every segment, for tests
        and diagnostics (memory in proportion to the catalog: not for the query path)."""
        keys, ordinals, frames = [np.zeros(0, np.uint32)], [np.zeros(0, np.uint32)], [
            np.zeros(0, np.uint32)]
        for segment in self.segments:
            k, posting = segment.keys_in(0, 1 << segment.dir_bits)
            o, f = segment.resolve(posting)
            keys.append(unmix_keys(k, segment.key_bits))
            ordinals.append(o)
            frames.append(f)
        return np.concatenate(keys), np.concatenate(ordinals), np.concatenate(frames)


#: the writing side, moved to :mod:`engine.store.postings_write`; still importable from here
#: (resolved on first use: postings_write imports this module's format and reader)
_WRITE_SIDE = ("write_segment", "merge_segments", "_SegmentWriter", "_dir_bits", "_rem_dtype",
               "_pad", "_timeline")


def __getattr__(name: str):
    if name in _WRITE_SIDE:
        from nanhu.engine.store import postings_write

        return getattr(postings_write, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
