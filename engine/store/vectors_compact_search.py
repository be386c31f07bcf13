"""Searching compact keyframe segments (:mod:`engine.store.vectors_compact`): the shortlist's
FAISS index built from the segments' stored codes when they are opened, and
:class:`CompactPart`, the search that re-ranks its shortlist on the finer codes."""

from __future__ import annotations

import numpy as np

from nanhu.engine.store import mapping
from nanhu.engine.store.vectors_compact import NPROBE, SHORTLIST, Quantiser
from nanhu.engine.store.vectors_compact_segment import CompactSegment

#: rows of a segment moved into the search index at a time (bounds the memory of opening)
OPEN_CHUNK = 1 << 20


def search_index(quantiser: Quantiser, segments: list[CompactSegment]):
    """The shortlist search index over ``segments`` (ids: rows numbered over them in
    order). Version 2: a fast-scan index filled a group of lists at a time, each group
    holding about :data:`OPEN_CHUNK` rows of every segment: their codes go into a plain
    4-bit IVF, which FAISS packs into fast-scan blocks and merges in. Each list is filled
    once, whole: appending to a part-filled fast-scan list through FAISS (1.15) writes past
    its buffer when the list holds a multiple of 992 codes (``BlockInvertedLists::
    add_entries`` compares a code count with a block's bytes), which corrupted the heap at
    300 h. Opening holds one group's copy and the rows' list numbers and order (12 bytes a
    row) beside the index (:class:`CompactPart` gives their pages back to the kernel after)."""
    import faiss

    if not quantiser.fast_scan:
        index, start = faiss.clone_index(quantiser.shortlist), 0
        for segment in segments:
            segment.add_to(index, start)
            start += len(segment)
        return index
    # the fast-scan index borrows its template's coarse quantiser: it keeps the template
    owner = faiss.clone_index(quantiser.shortlist)
    index = faiss.IndexIVFPQFastScan(owner)
    index.referenced_objects = [owner]
    nlist = int(owner.nlist)
    starts = np.cumsum([0] + [len(s) for s in segments]).astype(np.int64)
    lists = np.concatenate([s.list_numbers(nlist) for s in segments] or [np.zeros(0, "i4")])
    order = np.argsort(lists, kind="stable")  # rows by list, in row order within one
    bounds = np.searchsorted(lists[order], np.arange(nlist + 1))
    del lists
    first = 0
    while first < nlist:
        last = max(first + 1, int(np.searchsorted(bounds, bounds[first] + OPEN_CHUNK,
                                                  side="right")) - 1)
        last = min(last, nlist)
        rows = order[bounds[first]:bounds[last]]
        chunk = faiss.clone_index(quantiser.shortlist)
        ivf = faiss.extract_index_ivf(chunk)
        coarse = segments[0].coarse_bytes
        codes = gather_rows([s.short_codes[:, coarse:] for s in segments], starts, rows)
        for list_no in range(first, last):
            a, b = int(bounds[list_no] - bounds[first]), int(bounds[list_no + 1] - bounds[first])
            if b > a:
                ivf.invlists.add_entries(list_no, b - a, faiss.swig_ptr(rows[a:b]),
                                         faiss.swig_ptr(codes[a:b]))
        ivf.ntotal = chunk.ntotal = int(rows.size)
        index.merge_from(faiss.IndexIVFPQFastScan(chunk), 0)
        first = last
    return index


def gather_rows(tables: list[np.ndarray], starts: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Rows of per-segment tables (2-D arrays, one a segment, numbered over the segments in
    order, segment ``i`` from ``starts[i]``) at global ``rows`` int64[n]: uint8[n, width]."""
    which = np.searchsorted(starts, rows, side="right") - 1
    out = np.empty((rows.size, tables[0].shape[1]), tables[0].dtype)
    for s in np.unique(which):
        mask = which == s
        out[mask] = tables[s][rows[mask] - starts[s]]
    return out


class CompactPart:
    """Search over compact segments as one FAISS-like index: ``search(queries, k)`` returns
    (sims float32[m, k], local rows int64[m, k]; -inf / -1 where missing), rows numbered over
    the segments in order. Every segment's shortlist codes go into one IVF (one coarse search a
    query, whatever the number of segments); each row's similarity is re-ranked on its
    re-rank code's reconstruction."""

    def __init__(self, segments: list[CompactSegment], *, nprobe: int = NPROBE,
                 shortlist: int = SHORTLIST) -> None:
        self.segments = segments
        self.starts = np.cumsum([0] + [len(s) for s in segments]).astype(np.int64)
        self.quantiser = segments[0].quantiser
        self.index = search_index(self.quantiser, segments)
        self.quantiser.coarse  # noqa: B018 -- its graph built at opening, not by a query
        mapping.release_freed_memory()  # opening's copies: 80 -> 43.5 resident bytes a row
        for segment in segments:  # from here on, queries read re-rank codes at random rows
            segment.reads_at_random()
        self.nprobe, self.shortlist = nprobe, shortlist

    def __len__(self) -> int:
        return int(self.starts[-1])

    def codes(self, rows: np.ndarray) -> np.ndarray:
        """Re-rank codes uint8[n, code_bytes] of global rows int64[n] (valid rows only)."""
        return gather_rows([s.codes for s in self.segments], self.starts, rows)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        import faiss

        m = queries.shape[0]
        depth = max(k, self.shortlist)
        graph = self.quantiser.coarse
        if graph is None:
            _, found = self.index.search(queries, depth,
                                         params=faiss.SearchParametersIVF(nprobe=self.nprobe))
        else:  # the lists to visit found through the graph over the centroids
            near, lists = graph.probe(queries, self.nprobe)
            self.index.nprobe = lists.shape[1]  # FAISS takes it from the index here
            _, found = self.index.search_preassigned(queries, depth, lists, near)
        valid = found >= 0
        unique, inverse = np.unique(found[valid], return_inverse=True)
        # sorted rows: the memory-mapped codes are read in file order
        decoded = self.quantiser.decode(self.codes(unique))
        # a PQ reconstruction is shorter than its unit vector (the residual is lost): scaled
        # back to unit length, its inner products are unbiased estimates of the cosines
        decoded /= np.maximum(np.linalg.norm(decoded, axis=1, keepdims=True), 1e-6)
        sims = np.full((m, depth), -np.inf, np.float32)
        rows_of_query = np.nonzero(valid)[0]
        sims[valid] = np.einsum("nd,nd->n", decoded[inverse], queries[rows_of_query])
        top = np.argsort(-sims, axis=1, kind="stable")[:, :k]
        sims, rows = np.take_along_axis(sims, top, 1), np.take_along_axis(found, top, 1)
        rows = np.where(np.isfinite(sims), rows, -1)
        if rows.shape[1] < k:  # fewer rows than k in the whole index
            pad = k - rows.shape[1]
            sims = np.pad(sims, ((0, 0), (0, pad)), constant_values=-np.inf)
            rows = np.pad(rows, ((0, 0), (0, pad)), constant_values=-1)
        return sims, rows
