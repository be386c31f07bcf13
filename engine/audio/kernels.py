"""Compiled loops of the audio alignment's bookkeeping (see :mod:`engine.store.kernels` for why
numba, and the rules these follow: pure, typed by their arguments, cached, GIL released, and
each held to its numpy twin by the tests)."""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def merge_votes(refs_a: np.ndarray, votes_a: np.ndarray, refs_b: np.ndarray,
                votes_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover
    """(references int64[r], votes int64[r]): the union of two ascending, duplicate-free
    reference lists (int64[a], int64[b]), the votes of a reference in both added.

    A staged match adds each look's votes to those of the looks before it (their keys are
    disjoint): a linear merge, where a stable sort of the concatenation (its numpy twin,
    :func:`merge_votes_numpy`) took 6 ms a never-registered 5 s query at 10,000 h.
    """
    refs = np.empty(refs_a.size + refs_b.size, np.int64)
    votes = np.empty(refs.size, np.int64)
    i = j = n = 0
    while i < refs_a.size and j < refs_b.size:
        if refs_a[i] < refs_b[j]:
            refs[n], votes[n] = refs_a[i], votes_a[i]
            i += 1
        elif refs_b[j] < refs_a[i]:
            refs[n], votes[n] = refs_b[j], votes_b[j]
            j += 1
        else:
            refs[n], votes[n] = refs_a[i], votes_a[i] + votes_b[j]
            i += 1
            j += 1
        n += 1
    while i < refs_a.size:
        refs[n], votes[n] = refs_a[i], votes_a[i]
        i += 1
        n += 1
    while j < refs_b.size:
        refs[n], votes[n] = refs_b[j], votes_b[j]
        j += 1
        n += 1
    return refs[:n], votes[:n]


def merge_votes_numpy(refs_a: np.ndarray, votes_a: np.ndarray, refs_b: np.ndarray,
                      votes_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`merge_votes` as a sort of the concatenation: its twin in the tests."""
    refs = np.concatenate([refs_a, refs_b]).astype(np.int64)
    votes = np.concatenate([votes_a, votes_b]).astype(np.int64)
    if refs.size == 0:
        return refs, votes
    order = np.argsort(refs, kind="stable")
    refs, votes = refs[order], votes[order]
    starts = np.flatnonzero(np.r_[True, refs[1:] != refs[:-1]])
    return refs[starts], np.add.reduceat(votes, starts)


#: widest range of chosen values for which :func:`member_of` uses a bit table (1 MB of bits)
_BIT_TABLE_LIMIT = 1 << 23


@njit(cache=True, nogil=True)
def member_of(values: np.ndarray, chosen: np.ndarray) -> np.ndarray:  # pragma: no cover
    """bool[n]: whether each of ``values`` (uint32[n]) is one of ``chosen`` (int64[c],
    distinct, non-negative).

    The shortlist's mask over every hit so far: at 10,000 h a never-registered 5 s query's
    three looks ask it of ~277,000 postings, for 48 chosen references. Chosen ordinals below
    within 2^23 of each other (the references of catalogs up to ~50,000 h) are bits of a table
    of at most 1 MB from the lowest, and a value is a subtraction, shift, load and mask with no
    branch, where a probed hash table's unpredictable branches took 2.2 ms a query and
    numpy's prime-sized table 2.6. Chosen further apart use the probed table.
    """
    out = np.empty(values.size, np.bool_)
    if chosen.size == 0:
        out[:] = False
        return out
    low, span = chosen.min(), chosen.max() - chosen.min()
    if span < _BIT_TABLE_LIMIT:
        bits = np.zeros((span >> 6) + 1, np.uint64)
        for c in chosen:
            bits[(c - low) >> 6] |= np.uint64(1) << np.uint64((c - low) & 63)
        for i in range(values.size):
            v = np.int64(values[i]) - low
            inside = (v >= 0) & (v <= span)
            at = min(max(v, 0), span)
            word = bits[at >> 6]
            out[i] = inside & (((word >> np.uint64(at & 63)) & np.uint64(1)) == np.uint64(1))
        return out
    size, shift_bits = 8, 3
    while size < 4 * chosen.size:
        size *= 2
        shift_bits += 1
    shift = np.uint64(64 - shift_bits)
    empty = np.int64(-1)
    table = np.full(size, empty, np.int64)
    mix = np.uint64(0x9E3779B97F4A7C15)
    for c in chosen:
        slot = np.int64((np.uint64(c) * mix) >> shift)
        while table[slot] != empty:
            slot = (slot + 1) & (size - 1)
        table[slot] = c
    for i in range(values.size):
        v = np.int64(values[i])
        slot = np.int64((np.uint64(v) * mix) >> shift)
        found = False
        while table[slot] != empty:
            if table[slot] == v:
                found = True
                break
            slot = (slot + 1) & (size - 1)
        out[i] = found
    return out


@njit(cache=True, nogil=True)
def picked_order(picked: np.ndarray, by_key: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover
    """(indices int64[p], by_key int64[p]): the ``picked`` (bool[n]) landmarks, and their
    stable order by key taken from the window's (``by_key``, int64[n]): as
    ``flatnonzero(picked)`` and ``(cumsum(picked) - 1)[by_key[picked[by_key]]]``, in two passes
    instead of six whole-window arrays a look."""
    place = np.empty(picked.size, np.int64)
    n = 0
    for i in range(picked.size):
        if picked[i]:
            place[i] = n
            n += 1
    indices = np.empty(n, np.int64)
    order = np.empty(n, np.int64)
    j = 0
    for i in range(picked.size):
        if picked[i]:
            indices[place[i]] = i
    for k in by_key:
        if picked[k]:
            order[j] = place[k]
            j += 1
    return indices, order
