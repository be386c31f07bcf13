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
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

#: how many keys (postings) ahead the loops below ask for the memory they will read
PREFETCH_AHEAD = 16


@intrinsic
def _prefetch(typingctx, array, index):  # pragma: no cover - compiled
    """Ask the CPU to bring ``array[index]``'s cache line in (``llvm.prefetch``: read, keep in
    every cache level). A hint: no fault, no effect on results.

    The lookups below are bound by memory latency, not by work: at 10,000 h each key reads a
    random directory entry (a 256 MB table) and a random bucket (2.7 GB), and each misses the
    TLB and the caches (~400 ns a key). Asking for key ``i + 16``'s lines while key ``i`` is
    bisected overlaps those misses: 13.3 -> 6.5 ms for a never-registered 5 s query's 31,600
    keys in the 10,000 h segment (median of 200 queries, identical runs).
    """
    sig = types.void(array, index)

    def codegen(context, builder, signature, args):
        array_type = signature.args[0]
        view = context.make_array(array_type)(context, builder, args[0])
        pointer = cgutils.get_item_pointer(context, builder, array_type, view, [args[1]])
        byte_pointer = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        function = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [byte_pointer, i32, i32, i32]),
            "llvm.prefetch.p0i8")
        builder.call(function, [builder.bitcast(pointer, byte_pointer), ir.Constant(i32, 0),
                                ir.Constant(i32, 3), ir.Constant(i32, 1)])
        return context.get_dummy_value()

    return sig, codegen


@njit(cache=True, nogil=True, inline="always")
def _bisect(values: np.ndarray, lo: np.int64, hi: np.int64, w: np.int64,
            above: bool) -> np.int64:  # pragma: no cover - compiled
    """First index in ``[lo, hi)`` whose value is ``>= w`` (``> w`` with ``above``), ``hi`` if
    none; ``values[lo:hi]`` sorted."""
    while lo < hi:
        mid = (lo + hi) >> 1
        if values[mid] < w or (above and values[mid] == w):
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(cache=True, nogil=True, inline="always")
def _look_ahead(directory: np.ndarray, ordered: np.ndarray, i: int,
                rem_bits: int) -> np.int64:  # pragma: no cover - compiled
    """Ask for the directory entry of the key :data:`PREFETCH_AHEAD` (16) after ``i``, and
    return that of the key 8 after it (asked for 8 keys ago), where its bucket starts: the
    caller asks for its bucket's lines there. -1 past the end."""
    m = ordered.size
    if i + PREFETCH_AHEAD < m:
        _prefetch(directory, np.int64(ordered[i + PREFETCH_AHEAD]) >> rem_bits)
    if i + PREFETCH_AHEAD // 2 < m:
        return np.int64(directory[np.int64(ordered[i + PREFETCH_AHEAD // 2]) >> rem_bits])
    return np.int64(-1)


@njit(cache=True, nogil=True)
def key_runs(directory: np.ndarray, remainders: np.ndarray, ordered: np.ndarray,
             order: np.ndarray, rem_bits: int, first: np.ndarray,
             count: np.ndarray) -> None:  # pragma: no cover - compiled
    """Fill ``first[order[i]]``, ``count[order[i]]`` (int64[m]) with the run of key
    ``ordered[i]`` in a segment: bucket ``ordered[i] >> rem_bits``, whose remainders are
    ``remainders[directory[b]:directory[b + 1]]``, sorted.

    directory : uint32[2^dir_bits + 1]; remainders : uint8|uint16|uint32[n];
    ordered : uint32[m], mixed keys in stored (ascending) order; order : int64[m], each one's
    place in the caller's key order. Splitting each key into bucket and remainder here, and
    writing in the caller's order, saves four whole-array temporaries a segment (1.6 ms a
    query per small segment at 10,000 h).
    """
    mask = (np.int64(1) << rem_bits) - 1
    for i in range(ordered.size):
        at = _look_ahead(directory, ordered, i, rem_bits)
        if at >= 0:
            _prefetch(remainders, at)
        key = np.int64(ordered[i])
        b = key >> rem_bits
        w = key & mask
        hi = np.int64(directory[b + 1])
        start = _bisect(remainders, np.int64(directory[b]), hi, w, False)
        first[order[i]] = start
        count[order[i]] = _bisect(remainders, start, hi, w, True) - start


@njit(cache=True, nogil=True)
def key_table_runs(directory: np.ndarray, key_rems: np.ndarray, key_runs: np.ndarray,
                   ordered: np.ndarray, order: np.ndarray, rem_bits: int, first: np.ndarray,
                   count: np.ndarray) -> None:  # pragma: no cover - compiled
    """:func:`key_runs` for a segment of the keyed layout: bucket ``b`` holds the keys
    ``directory[b]:directory[b + 1]``, whose remainders ``key_rems`` are ascending and
    distinct, and key ``j``'s postings are ``key_runs[2j] .. + key_runs[2j + 1]`` (first and
    count side by side, one cache line); a key not in the segment gets ``first = count = 0``.

    key_rems : uint8|uint16|uint32[n_keys]; key_runs : uint32[2 n_keys]; the rest as
    :func:`key_runs`.
    """
    mask = (np.int64(1) << rem_bits) - 1
    for i in range(ordered.size):
        at = _look_ahead(directory, ordered, i, rem_bits)
        if at >= 0:
            _prefetch(key_rems, at)
            _prefetch(key_runs, 2 * at)
        key = np.int64(ordered[i])
        b = key >> rem_bits
        w = key & mask
        hi = np.int64(directory[b + 1])
        lo = _bisect(key_rems, np.int64(directory[b]), hi, w, False)
        if lo < hi and np.int64(key_rems[lo]) == w:
            first[order[i]] = key_runs[2 * lo]
            count[order[i]] = key_runs[2 * lo + 1]
        else:
            first[order[i]] = 0
            count[order[i]] = 0


@njit(cache=True, nogil=True)
def read_runs(first: np.ndarray, count: np.ndarray, positions: np.ndarray,
              block_first: np.ndarray, starts: np.ndarray, block_bits: int,
              ordinals: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # pragma: no cover - compiled
    """(key_index int64[k], ordinal uint32[k], frame uint32[k]) of every posting of the runs
    ``first[i] .. first[i] + count[i]`` (int64[m]), key by key: the posting's timeline
    position ``positions[p]`` (uint32[n]) is in reference ``r`` with
    ``starts[r] <= position < starts[r + 1]`` (int64[n_refs + 1]), found as
    :class:`~engine.store.timeline.Timeline` does (``block_first``: the reference at every
    ``2^block_bits``-th position, then a step or two), and ``ordinals[r]`` (uint32[n_refs]) is
    its ordinal. One pass where the numpy form (expand the runs, gather, locate, subtract)
    made seven arrays of k.
    """
    total = 0
    for i in range(first.size):
        total += count[i]
    key_index = np.empty(total, np.int64)
    posting = np.empty(total, np.int64)
    j = 0
    for i in range(first.size):
        for p in range(first[i], first[i] + count[i]):
            key_index[j] = i
            posting[j] = p
            j += 1
    ordinal = np.empty(total, np.uint32)
    frame = np.empty(total, np.uint32)
    top = starts.size - 1
    ahead, third = PREFETCH_AHEAD, PREFETCH_AHEAD // 3
    for j in range(total):
        # the position 16 postings ahead, the block entry of the one ~11 ahead (its position
        # asked for 5 postings ago), the references' start of the one ~5 ahead
        if j + ahead < total:
            _prefetch(positions, posting[j + ahead])
        if j + 2 * third < total:
            _prefetch(block_first, np.int64(positions[posting[j + 2 * third]]) >> block_bits)
        if j + third < total:
            _prefetch(starts, block_first[np.int64(positions[posting[j + third]]) >> block_bits])
        position = np.int64(positions[posting[j]])
        local = block_first[position >> block_bits]
        while local < top and starts[local + 1] <= position:
            local += 1
        ordinal[j] = ordinals[local]
        frame[j] = position - starts[local]
    return key_index, ordinal, frame


#: digits of :func:`sort_words`: 16 bits (three passes for a 5 s query's 48-bit words)
RADIX_BITS = 16
#: arrays at least this long are radix-sorted by :func:`sorted_words` (below, numpy's sort is
#: as fast: the passes' digit counts cost the same whatever the length)
RADIX_MIN = 16_384


def sorted_words(words: np.ndarray, bits: int) -> np.ndarray:
    """A sorted copy of ``words`` (uint64[n], below ``2^bits``): :func:`sort_words` for long
    arrays, numpy's sort for short ones."""
    if words.size >= RADIX_MIN:
        return sort_words(words, bits)
    return np.sort(words)


@njit(cache=True, nogil=True)
def sort_words(words: np.ndarray, bits: int) -> np.ndarray:  # pragma: no cover - compiled
    """``np.sort(words)`` for uint64[n] words below ``2^bits``: a least-significant-digit radix
    sort, ``ceil(bits / 16)`` counting passes of 16-bit digits.

    A query's keys and their indices are 48-bit words (30-bit key, 18-bit index); numpy's sort
    of 170,000 of them took 7-8 ms of CPU on these cores, three passes 2-3 ms.
    """
    n = words.size
    source = words.copy()
    target = np.empty_like(source)
    mask = np.uint64((1 << RADIX_BITS) - 1)
    count = np.empty((1 << RADIX_BITS) + 1, np.int64)
    shift = 0
    while shift < bits:
        count[:] = 0
        for i in range(n):
            count[np.int64((source[i] >> np.uint64(shift)) & mask) + 1] += 1
        for b in range(1 << RADIX_BITS):
            count[b + 1] += count[b]
        for i in range(n):
            digit = np.int64((source[i] >> np.uint64(shift)) & mask)
            target[count[digit]] = source[i]
            count[digit] += 1
        source, target = target, source
        shift += RADIX_BITS
    return source
