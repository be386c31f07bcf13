"""The order in which postings segments store keys: mixed (a bijection that spreads keys
differing only in their low fields over the directory) and sorted; see
:mod:`engine.store.postings` for the file format."""

from __future__ import annotations

import numpy as np

from nanhu.engine.store import kernels

#: odd multiplier of the key mixing (Knuth's multiplicative hash constant)
MIX = 0x9E3779B1


def mix_keys(keys: np.ndarray, key_bits: int) -> np.ndarray:
    """``(keys * MIX) mod 2^key_bits``: the stored order of keys (a bijection on the key space).

    keys : ndarray [shape=(n,)], uint32 < 2^key_bits. Returns uint32[n].
    """
    mask = np.uint64((1 << key_bits) - 1)
    return ((np.asarray(keys, np.uint64) * np.uint64(MIX)) & mask).astype(np.uint32)


def unmix_keys(mixed: np.ndarray, key_bits: int) -> np.ndarray:
    """The inverse of :func:`mix_keys`."""
    inverse = np.uint64(pow(MIX, -1, 1 << key_bits))
    mask = np.uint64((1 << key_bits) - 1)
    return ((np.asarray(mixed, np.uint64) * inverse) & mask).astype(np.uint32)


def sort_keys(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sorted keys uint32[n], order int64[n]): ``keys[order]`` and ``order``, the stable argsort
    of ``keys`` (uint32[n]).

    Each key and its index are one 64-bit word, and a plain sort of the words gives the stable
    order (``argsort(kind="stable")``, a merge sort, took 8.2 ms for a 5 s query's 85,000
    hashes). Large arrays are radix-sorted (:func:`engine.store.kernels.sort_words`: a 5 s
    query's 170,000 landmarks in 2-3 ms of CPU where numpy's sort took 7-8 on these cores).
    """
    index_bits = max(int(keys.size).bit_length(), 1)
    word = np.asarray(keys, np.uint64) << np.uint64(index_bits)
    word |= np.arange(keys.size, dtype=np.uint64)
    if keys.size:
        word = kernels.sorted_words(word, int(keys.max()).bit_length() + index_bits)
    order = (word & np.uint64((1 << index_bits) - 1)).astype(np.int64)
    return (word >> np.uint64(index_bits)).astype(np.uint32), order


class StoredKeys:
    """Query keys as segments of one key width store them: mixed (:func:`mix_keys`) and
    sorted, so that neighbouring keys' directory and remainder pages are near each other
    (their page-table entries share cache lines: 25 % faster than query order). Made once per
    lookup and shared by every segment of the width.

    keys : ndarray [shape=(m,)], uint32; a key wider than ``key_bits`` (a malformed query) has
    no bucket and no postings (``wide``).
    """

    def __init__(self, keys: np.ndarray, key_bits: int) -> None:
        keys = np.asarray(keys, np.uint32)
        self.key_bits = key_bits
        self.size = keys.size
        self.wide = keys >= (1 << key_bits)
        self.mixed = mix_keys(np.where(self.wide, 0, keys), key_bits)
        self.ordered, self.order = sort_keys(self.mixed)
