"""Video keyframe vectors: immutable segment files and a FAISS index over them.

Segment file format (version 1, little-endian)::

    magic b"NANHUVEC" 8 bytes; version uint32; dim uint32; count uint64
    vectors  float32[count, dim]   L2-normalised
    ordinals uint32[count]
    times_s  float32[count]

:class:`FaissVectorIndex` answers k-nearest-neighbour queries by inner product over every
segment. Small segments share one exact ``IndexFlatIP`` (copying their vectors is cheap).
A segment of :data:`HNSW_MIN_VECTORS` or more (compaction makes them) gets an HNSW graph
(``IndexHNSWFlat``), written once beside the segment as ``<segment>.hnsw`` by FAISS's own
``write_index`` and memory-mapped on open, so reopening a large catalog costs no rebuild: at
1,000,000 keyframes a query's exact search + alignment took 724 ms p50 and building the graph
~10 minutes on 2 cores, against 14 ms p50 through the graph (video benchmark,
``docs/results/video-2026-11-28.md``). Results of the parts are merged by similarity.
:class:`BruteForceVectorIndex` is the exact numpy twin for differential tests.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from nanhu.engine.errors import CatalogCorrupt

#: a segment this large gets a persisted HNSW graph: exact search + alignment measured 59 ms
#: p50 at 100,000 keyframes, about 30 ms at this size (7 hours of video), against 14 ms
#: through a graph at 1,000,000
HNSW_MIN_VECTORS = 50_000
HNSW_M = 32
HNSW_EF_SEARCH = 64

MAGIC = b"NANHUVEC"
SEGMENT_VERSION = 1
_HEADER = 24

log = logging.getLogger(__name__)


def write_vector_segment(
    path: Path, vectors: np.ndarray, ordinals: np.ndarray, times_s: np.ndarray
) -> int:
    """Write and fsync a vector segment; returns its size in bytes.

    vectors : ndarray [shape=(n, d)], float32; ordinals : uint32[n]; times_s : float32[n].
    """
    vectors = np.ascontiguousarray(vectors, "<f4")
    count, dim = vectors.shape
    with open(path, "wb") as handle:
        handle.write(MAGIC)
        handle.write(np.array([SEGMENT_VERSION, dim], "<u4").tobytes())
        handle.write(np.array([count], "<u8").tobytes())
        handle.write(vectors.tobytes())
        handle.write(np.ascontiguousarray(ordinals, "<u4").tobytes())
        handle.write(np.ascontiguousarray(times_s, "<f4").tobytes())
        handle.flush()
        os.fsync(handle.fileno())
    return path.stat().st_size


def map_segment(path: Path, *, magic: bytes, header: int, version: int,
                what: str) -> tuple[np.memmap, int]:
    """Map a vector segment file (float or compact: ``magic``, then version and dim uint32)
    and check its magic, its ``header`` bytes and its ``version``: (the mapping, dim), or
    CatalogCorrupt naming the file and what is wrong with it."""
    try:
        raw = np.memmap(path, dtype=np.uint8, mode="r")
    except (OSError, ValueError) as exc:
        raise CatalogCorrupt(f"{path}: cannot map {what} ({exc})") from exc
    if raw.size < header or bytes(raw[:8]) != magic:
        raise CatalogCorrupt(f"{path}: not a Nanhu {what}")
    found, dim = (int(v) for v in np.frombuffer(raw[8:16], "<u4"))
    if found != version:
        raise CatalogCorrupt(f"{path}: {what} version {found} is not supported")
    return raw, dim


class VectorSegment:
    """One memory-mapped vector segment."""

    def __init__(self, path: Path) -> None:
        self.path = path
        raw, dim = map_segment(path, magic=MAGIC, header=_HEADER, version=SEGMENT_VERSION,
                               what="vector segment")
        count = int(np.frombuffer(raw[16:24], "<u8")[0])
        if raw.size != _HEADER + count * (dim * 4 + 8):
            raise CatalogCorrupt(f"{path}: vector segment is truncated")
        offset = _HEADER
        self.vectors = np.frombuffer(raw, "<f4", count=count * dim, offset=offset).reshape(
            count, dim
        )
        offset += count * dim * 4
        self.ordinals = np.frombuffer(raw, "<u4", count=count, offset=offset)
        self.times_s = np.frombuffer(raw, "<f4", count=count, offset=offset + count * 4)
        self.dim = dim

    def __len__(self) -> int:
        return int(self.ordinals.size)


#: stored vectors whose norm is further than this from 1, and keyframe times outside
#: 0..MAX_TIME_S or not finite, are unusable: such rows are left out of every index and merge
#: (a logged warning), so one bad reference cannot outrank or break everyone else's matches.
#: ``engine.validate`` refuses them at the boundary; this is the defence behind it.
NORM_TOLERANCE = 0.01
MAX_TIME_S = 7 * 24 * 3600.0


def sane_rows(vectors: np.ndarray, times_s: np.ndarray) -> np.ndarray:
    """bool[n]: rows whose vector is finite and of unit norm and whose time is a plausible time.

    vectors : ndarray [shape=(n, d)], float32; times_s : ndarray [shape=(n,)], float32
    """
    vectors = np.asarray(vectors, np.float32)
    with np.errstate(all="ignore"):
        norms = np.linalg.norm(vectors.astype(np.float64), axis=1)
        return (np.isfinite(norms) & (np.abs(norms - 1.0) <= NORM_TOLERANCE)
                & sane_times(times_s))


def sane_times(times_s: np.ndarray) -> np.ndarray:
    """bool[n]: keyframe times that are finite and within 0..``MAX_TIME_S``.

    times_s : ndarray [shape=(n,)], float32 (s)
    """
    times = np.asarray(times_s, np.float32)
    with np.errstate(all="ignore"):
        return np.isfinite(times) & (times >= 0) & (times <= MAX_TIME_S)


def usable_segments(segments: list[VectorSegment]) -> list[VectorSegment]:
    """The segments of the dimension that holds the most vectors; the others are logged and
    left out (a segment of another dimension can only come from a bad write)."""
    if not segments:
        return []
    by_dim: dict[int, int] = {}
    for segment in segments:
        by_dim[segment.dim] = by_dim.get(segment.dim, 0) + len(segment)
    dim = max(by_dim, key=lambda d: (by_dim[d], -[s.dim for s in segments].index(d)))
    for segment in segments:
        if segment.dim != dim:
            log.warning("%s: vector dimension %d, not the catalog's %d: segment skipped "
                        "(references %s)", segment.path, segment.dim, dim,
                        sorted({int(o) for o in np.unique(segment.ordinals)})[:10])
    return [s for s in segments if s.dim == dim]


def _log_bad_rows(segment: VectorSegment, good: np.ndarray) -> None:
    bad = sorted({int(o) for o in np.unique(segment.ordinals[~good])})
    log.warning("%s: %d unusable keyframe row(s) skipped (non-unit or non-finite vector, or "
                "bad time) of references %s", segment.path, int((~good).sum()), bad[:10])


def merge_segments(segments: list[VectorSegment]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every usable row of ``segments`` (see :func:`usable_segments`, :func:`sane_rows`):
    (vectors float32[n, d], ordinals uint32[n], times_s float32[n])."""
    segments = usable_segments(segments)
    if not segments:
        return np.zeros((0, 0), np.float32), np.zeros(0, np.uint32), np.zeros(0, np.float32)
    parts = []
    for segment in segments:
        good = sane_rows(segment.vectors, segment.times_s)
        if not good.all():
            _log_bad_rows(segment, good)
        parts.append((segment.vectors[good], segment.ordinals[good], segment.times_s[good]))
    return tuple(np.concatenate(p) for p in zip(*parts))


class BruteForceVectorIndex:
    """Exact inner-product search in numpy."""

    def __init__(self, vectors: np.ndarray, ordinals: np.ndarray, times_s: np.ndarray) -> None:
        self.vectors = np.asarray(vectors, np.float32)
        self.ordinals = np.asarray(ordinals, np.uint32)
        self.times_s = np.asarray(times_s, np.float32)

    def __len__(self) -> int:
        return int(self.ordinals.size)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """k nearest by inner product.

        queries : ndarray [shape=(m, d)], float32
        Returns (ordinals int64[m, k], times_s float32[m, k], sims float32[m, k]); missing
        neighbours have ordinal -1 and similarity -inf.
        """
        m = queries.shape[0]
        if len(self) == 0 or m == 0:
            return _empty(m, k)
        sims = queries @ self.vectors.T
        kk = min(k, sims.shape[1])
        top = np.argsort(-sims, axis=1, kind="stable")[:, :kk]
        return _pad(
            self.ordinals[top].astype(np.int64), self.times_s[top],
            np.take_along_axis(sims, top, 1), k,
        )


def _empty(m: int, k: int):
    return (
        np.full((m, k), -1, np.int64), np.zeros((m, k), np.float32),
        np.full((m, k), -np.inf, np.float32),
    )


def _pad(ordinals, times, sims, k):
    m, kk = ordinals.shape
    if kk == k:
        return ordinals, times, sims.astype(np.float32)
    out = _empty(m, k)
    out[0][:, :kk], out[1][:, :kk], out[2][:, :kk] = ordinals, times, sims
    return out


def build_hnsw(vectors: np.ndarray, *, m: int = HNSW_M, ef_search: int = HNSW_EF_SEARCH):
    """An inner-product ``faiss.IndexHNSWFlat`` over ``vectors`` [shape=(n, d)], float32."""
    import faiss

    vectors = np.ascontiguousarray(vectors, np.float32)
    index = faiss.IndexHNSWFlat(vectors.shape[1], m, faiss.METRIC_INNER_PRODUCT)
    index.add(vectors)
    index.hnsw.efSearch = ef_search
    return index


def write_hnsw_graph(path: Path, vectors: np.ndarray) -> int:
    """Build and write (fsynced) the HNSW graph of a segment's vectors; returns its size."""
    import faiss

    faiss.write_index(build_hnsw(vectors), str(path))
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())
    return path.stat().st_size


def read_hnsw_graph(path: Path, count: int, dim: int, *, ef_search: int = HNSW_EF_SEARCH):
    """Memory-map a graph written by :func:`write_hnsw_graph`; CatalogCorrupt when it is not
    an HNSW index of ``count`` vectors of ``dim``."""
    import faiss

    try:
        index = faiss.read_index(str(path), faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY)
    except RuntimeError as exc:
        raise CatalogCorrupt(f"{path}: cannot read HNSW graph ({str(exc).splitlines()[0]})") from exc
    if not hasattr(index, "hnsw") or index.ntotal != count or index.d != dim:
        raise CatalogCorrupt(f"{path}: HNSW graph does not match its segment")
    index.hnsw.efSearch = ef_search
    return index


class _Part:
    """One FAISS index over some rows of the catalog's vectors (``rows``: local -> global, or
    None with ``offset``: global = local + offset, no array for a compact part's rows)."""

    def __init__(self, index, rows: np.ndarray | None, *, offset: int = 0,
                 count: int = 0) -> None:
        self.index, self.rows, self.offset = index, rows, offset
        self.count = count if rows is None else int(rows.size)

    def global_rows(self, local: np.ndarray) -> np.ndarray:
        valid = local >= 0
        if self.rows is None:
            return np.where(valid, local + self.offset, -1)
        return np.where(valid, self.rows[np.where(valid, local, 0)], -1)


class FaissVectorIndex:
    """FAISS inner-product search over vector segments, with an id map to (ordinal, time)."""

    def __init__(
        self, segments: list[VectorSegment], *, graphs: list[Path | None] | None = None,
        hnsw_threshold: int = HNSW_MIN_VECTORS, ef_search: int = HNSW_EF_SEARCH,
        compact: list | None = None,
    ) -> None:
        """segments : the catalog's segments. graphs : per segment, its persisted HNSW graph
        or None. A segment without a graph but of ``hnsw_threshold`` vectors or more gets one
        built in memory (a graph file that is missing or damaged is rebuilt, with a warning).
        compact : the catalog's compact segments
        (:class:`engine.store.vectors_compact_segment.CompactSegment`), searched as one part; their
        rows come after the float segments' rows."""
        import faiss

        graphs = graphs or [None] * len(segments)
        compact = compact or []
        if compact:  # float segments of another dimension than the compact ones are unusable
            dim = compact[0].dim
            graphs = [g for s, g in zip(segments, graphs) if s.dim == dim]
            segments = [s for s in segments if s.dim == dim]
        usable = usable_segments(segments)
        graphs = [g for s, g in zip(segments, graphs) if any(s is u for u in usable)]
        segments = usable
        every = [*segments, *compact]
        self.dim = every[0].dim if every else 0
        self.ordinals = (
            np.concatenate([s.ordinals for s in every]) if every else np.zeros(0, np.uint32)
        )
        self.times_s = (
            np.concatenate([s.times_s for s in every]) if every else np.zeros(0, np.float32)
        )
        self.parts: list[_Part] = []
        starts = np.cumsum([0] + [len(s) for s in segments])
        flat_rows = []
        for segment, graph, start in zip(segments, graphs, starts):
            rows = np.arange(start, start + len(segment), dtype=np.int64)
            if graph is not None:
                try:
                    index = read_hnsw_graph(graph, len(segment), segment.dim, ef_search=ef_search)
                    self.parts.append(_Part(index, rows))
                    continue
                except (CatalogCorrupt, FileNotFoundError) as exc:
                    log.warning("%s; rebuilding it in memory", exc)
            good = sane_rows(segment.vectors, segment.times_s)
            if not good.all():
                _log_bad_rows(segment, good)
            if good.sum() >= hnsw_threshold:
                self.parts.append(_Part(build_hnsw(segment.vectors[good], ef_search=ef_search),
                                        rows[good]))
            elif good.any():
                flat_rows.append((segment.vectors[good], rows[good]))
        if flat_rows:
            flat = faiss.IndexFlatIP(self.dim)
            for vectors, _ in flat_rows:
                flat.add(np.ascontiguousarray(vectors, np.float32))
            self.parts.insert(0, _Part(flat, np.concatenate([r for _, r in flat_rows])))
        if compact:
            from nanhu.engine.store.vectors_compact_search import CompactPart

            part = CompactPart(compact)
            self.parts.append(_Part(part, None, offset=int(starts[-1]), count=len(part)))
        self.count = sum(p.count for p in self.parts)

    def __len__(self) -> int:
        return self.count

    def set_ef_search(self, ef_search: int) -> None:
        """Search breadth of every HNSW part (recall against speed)."""
        for part in self.parts:
            if hasattr(part.index, "hnsw"):
                part.index.hnsw.efSearch = ef_search

    def search_rows(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(sims float32[m, k], global rows int64[m, k]; -inf / -1 where missing), best first."""
        m = queries.shape[0]
        queries = np.ascontiguousarray(queries, np.float32)
        if not self.parts or m == 0:
            return np.full((m, k), -np.inf, np.float32), np.full((m, k), -1, np.int64)
        sims, rows = [], []
        for part in self.parts:
            s, local = part.index.search(queries, k)
            rows.append(part.global_rows(local))
            sims.append(np.where(local >= 0, s, -np.inf).astype(np.float32))
        if len(self.parts) == 1:
            return sims[0], rows[0]
        sims_all, rows_all = np.concatenate(sims, axis=1), np.concatenate(rows, axis=1)
        top = np.argsort(-sims_all, axis=1, kind="stable")[:, :k]
        return np.take_along_axis(sims_all, top, 1), np.take_along_axis(rows_all, top, 1)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Same contract as :meth:`BruteForceVectorIndex.search`."""
        if not self.parts:  # nothing to map rows to
            return _empty(queries.shape[0], k)
        sims, rows = self.search_rows(queries, k)  # -inf / -1 already where missing
        valid = rows >= 0
        safe = np.where(valid, rows, 0)
        ordinals = np.where(valid, self.ordinals[safe].astype(np.int64), -1)
        times = np.where(valid, self.times_s[safe], 0).astype(np.float32)
        return ordinals, times, sims
