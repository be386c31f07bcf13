"""Video keyframe vectors: immutable segment files and a FAISS index over them.

Segment file format (version 1, little-endian)::

    magic b"NANHUVEC" 8 bytes; version uint32; dim uint32; count uint64
    vectors  float32[count, dim]   L2-normalised
    ordinals uint32[count]
    times_s  float32[count]

:class:`FaissVectorIndex` answers k-nearest-neighbour queries by inner product. It holds an
exact ``IndexFlatIP`` while the catalog is small and switches to ``IndexHNSWFlat`` past
``hnsw_threshold`` vectors (chosen by measurement, see the video benchmark report).
:class:`BruteForceVectorIndex` is the exact numpy twin for differential tests.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from engine.errors import CatalogCorrupt

MAGIC = b"NANHUVEC"
SEGMENT_VERSION = 1
_HEADER = 24


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


class VectorSegment:
    """One memory-mapped vector segment."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            raw = np.memmap(path, dtype=np.uint8, mode="r")
        except (OSError, ValueError) as exc:
            raise CatalogCorrupt(f"{path}: cannot map vector segment ({exc})") from exc
        if raw.size < _HEADER or bytes(raw[:8]) != MAGIC:
            raise CatalogCorrupt(f"{path}: not a Nanhu vector segment")
        version, dim = (int(v) for v in np.frombuffer(raw[8:16], "<u4"))
        if version != SEGMENT_VERSION:
            raise CatalogCorrupt(f"{path}: vector segment version {version} is not supported")
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


class FaissVectorIndex:
    """FAISS inner-product index over vector segments, with an id map to (ordinal, time)."""

    def __init__(
        self, segments: list[VectorSegment], *, hnsw_threshold: int = 2_000_000,
        hnsw_m: int = 32, ef_search: int = 64,
    ) -> None:
        import faiss

        self.count = sum(len(s) for s in segments)
        self.dim = segments[0].dim if segments else 0
        self.ordinals = (
            np.concatenate([s.ordinals for s in segments]) if segments else np.zeros(0, np.uint32)
        )
        self.times_s = (
            np.concatenate([s.times_s for s in segments]) if segments else np.zeros(0, np.float32)
        )
        self.index = None
        if self.count:
            if self.count >= hnsw_threshold:
                self.index = faiss.IndexHNSWFlat(self.dim, hnsw_m, faiss.METRIC_INNER_PRODUCT)
                self.index.hnsw.efSearch = ef_search
            else:
                self.index = faiss.IndexFlatIP(self.dim)
            for segment in segments:
                self.index.add(np.ascontiguousarray(segment.vectors, np.float32))

    def __len__(self) -> int:
        return self.count

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Same contract as :meth:`BruteForceVectorIndex.search`."""
        m = queries.shape[0]
        if self.index is None or m == 0:
            return _empty(m, k)
        sims, rows = self.index.search(np.ascontiguousarray(queries, np.float32), k)
        valid = rows >= 0
        safe = np.where(valid, rows, 0)
        ordinals = np.where(valid, self.ordinals[safe].astype(np.int64), -1)
        times = np.where(valid, self.times_s[safe], 0).astype(np.float32)
        return ordinals, times, np.where(valid, sims, -np.inf).astype(np.float32)
