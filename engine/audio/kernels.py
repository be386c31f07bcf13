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
