"""A shard's lookup answers as they travel to the view: compact, lossless
(:func:`pack_lookup`, :func:`unpack_counts`, :func:`wide`).

Ray inlines an answer of at most 100 KiB in the call's reply; a larger one goes through the
object store, and on this machine that costs ~3.5 ms more CPU a call than an inlined answer,
whatever its size (docs/results/cluster-fanout-2026-12-02b/). Under the limit, the bytes
barely count. So the answers are cut to stay under it:

- **Counts, sparse.** The view needs each key's posting count, but most of a query's keys hold
  no posting on a shard: only the keys that hold some travel, as (index into the keys, count).
- **Narrow integers.** Key indices, ordinals, frames and counts travel in the smallest unsigned
  type that holds the values of that answer (a key index of a look under 65,536 keys in 2
  bytes, a shard's ordinal under 256 works in 1), and are widened back to uint32 at the view.

Every array is restored exactly (values and order), so the view's merge sees what it saw when
the answers travelled as uint32.
"""

from __future__ import annotations

import numpy as np

#: (number of keys asked, indices of the keys that hold postings, their counts)
PackedCounts = tuple[int, np.ndarray, np.ndarray]


def narrow(values: np.ndarray) -> np.ndarray:
    """Non-negative integers in the smallest unsigned type that holds them all (uint8 when
    empty)."""
    values = np.asarray(values)
    if values.size == 0:
        return np.zeros(0, np.uint8)
    return values.astype(np.min_scalar_type(int(values.max())), copy=False)


def wide(values: np.ndarray) -> np.ndarray:
    """:func:`narrow`'s values back as uint32."""
    return np.asarray(values).astype(np.uint32, copy=False)


def pack_counts(counts: np.ndarray) -> PackedCounts:
    """Per-key posting counts (int[m]) as the keys that hold postings and their counts."""
    held = np.flatnonzero(counts)
    return counts.size, narrow(held), narrow(counts[held])


def unpack_counts(packed: PackedCounts) -> np.ndarray:
    """:func:`pack_counts`'s counts back, dense: int64[m]."""
    size, held, counts = packed
    out = np.zeros(int(size), np.int64)
    out[np.asarray(held, np.int64)] = counts
    return out


def pack_postings(key_index: np.ndarray, ordinals: np.ndarray, frames: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(key index, ordinal, frame) of postings, each narrowed (:func:`wide` restores them)."""
    return narrow(key_index), narrow(ordinals), narrow(frames)


def unpack_postings(packed: tuple[np.ndarray, np.ndarray, np.ndarray]
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    key_index, ordinals, frames = packed
    return wide(key_index), wide(ordinals), wide(frames)
