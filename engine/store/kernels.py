"""Compiled loops for the lookups whose numpy form is a chain of scattered gathers.

A bisection per key, written as numpy, is about fifteen whole-array operations a step over
every key still searching: at 10,000 h, where a never-registered 5 s query looks up ~31,000
distinct keys in three segments three times, that was 35-50 ms of its ~90. The same bisection
as a loop per key touches the same one or two cache lines of the bucket and nothing else.

numba is already installed with librosa (which compiles its own kernels with it); functions
here are pure, typed by their arguments, compiled on first use and cached on disk
(``cache=True``), and release the GIL (``nogil=True``) so a server's threads look up in
parallel. Each has a numpy twin (the code it replaces) that the tests hold it to.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def key_runs(directory: np.ndarray, remainders: np.ndarray, buckets: np.ndarray,
             wanted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - compiled
    """(first int64[m], count int64[m]): the run of remainder ``wanted[i]`` in bucket
    ``buckets[i]``, whose remainders are ``remainders[directory[b]:directory[b + 1]]``, sorted.

    directory : uint32[2^dir_bits + 1]; remainders : uint8|uint16|uint32[n];
    buckets, wanted : int64[m].
    """
    m = buckets.size
    first = np.empty(m, np.int64)
    count = np.empty(m, np.int64)
    for i in range(m):
        lo = np.int64(directory[buckets[i]])
        hi = np.int64(directory[buckets[i] + 1])
        w = wanted[i]
        while lo < hi:  # first remainder >= w
            mid = (lo + hi) >> 1
            if remainders[mid] < w:
                lo = mid + 1
            else:
                hi = mid
        start = lo
        hi = np.int64(directory[buckets[i] + 1])
        while lo < hi:  # first remainder > w
            mid = (lo + hi) >> 1
            if remainders[mid] <= w:
                lo = mid + 1
            else:
                hi = mid
        first[i] = start
        count[i] = lo - start
    return first, count
