"""Compact keyframe segments: the file of one commit's (or one compaction's) coded rows --
ordinals, times, re-rank codes and shortlist codes -- written by
:func:`write_compact_segment` and memory-mapped by :class:`CompactSegment`; the codes are a
:class:`engine.store.vectors_compact.Quantiser`'s, and the layout is in that module's
docstring ("segment")."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from nanhu.engine.errors import CatalogCorrupt
from nanhu.engine.store.vectors import map_segment
from nanhu.engine.store.vectors_compact import Quantiser

SEGMENT_MAGIC = b"NANHUVCX"
SEGMENT_VERSION = 1
_SEGMENT_HEADER = 8 + 4 + 4 + 8 + 4 + 4 + 16 + 8


def write_compact_segment(path: Path, quantiser: Quantiser, blocks) -> int:
    """Write and fsync a compact segment; returns its size in bytes.

    blocks : iterable of (vectors float32[m, d] | None, codes uint8[m, code_bytes] | None,
    ordinals uint32[m], times_s float32[m]): rows given as float vectors are re-rank coded;
    rows given as codes (compaction of compact rows) keep their codes and get shortlist codes
    from their reconstructions. Streams: one block in memory at a time.
    """
    short_bytes = int(quantiser.shortlist.sa_code_size())
    ords, times = [], []
    tmp = {kind: path.with_name(f"{path.name}.{kind}") for kind in ("rerank", "shortlist")}
    count = 0
    try:
        with open(tmp["rerank"], "wb") as rerank_out, open(tmp["shortlist"], "wb") as short_out:
            for vectors, codes, ordinals, times_s in blocks:
                if vectors is None:
                    vectors = quantiser.decode(codes)
                vectors = np.ascontiguousarray(vectors, np.float32)
                if codes is None:
                    codes = quantiser.encode(vectors)
                rerank_out.write(np.ascontiguousarray(codes, np.uint8).tobytes())
                short_out.write(quantiser.shortlist_encode(vectors).tobytes())
                ords.append(np.asarray(ordinals, "<u4"))
                times.append(np.asarray(times_s, "<f4"))
                count += len(ordinals)
        header = b"".join([
            SEGMENT_MAGIC, np.array([SEGMENT_VERSION, quantiser.dim], "<u4").tobytes(),
            np.array([count], "<u8").tobytes(),
            np.array([quantiser.code_bytes, 0], "<u4").tobytes(), quantiser.digest,
            np.array([short_bytes], "<u8").tobytes()])
        with open(path, "wb") as handle:
            handle.write(header)
            for array, dtype in ((ords, "<u4"), (times, "<f4")):
                for part in array:
                    handle.write(part.astype(dtype).tobytes())
            for kind in ("rerank", "shortlist"):
                with open(tmp[kind], "rb") as codes_in:
                    while chunk := codes_in.read(1 << 24):
                        handle.write(chunk)
            handle.flush()
            os.fsync(handle.fileno())
    finally:
        for file in tmp.values():
            file.unlink(missing_ok=True)
    return path.stat().st_size


class CompactSegment:
    """One memory-mapped compact segment: ordinals, times and re-rank codes stay on disk
    (pages read as touched); the shortlist's codes are copied into RAM by :meth:`add_to`."""

    def __init__(self, path: Path, quantiser: Quantiser) -> None:
        self.path = path
        raw, dim = map_segment(path, magic=SEGMENT_MAGIC, header=_SEGMENT_HEADER,
                               version=SEGMENT_VERSION, what="compact vector segment")
        count = int(np.frombuffer(raw[16:24], "<u8")[0])
        code_bytes = int(np.frombuffer(raw[24:28], "<u4")[0])
        digest = bytes(raw[32:48])
        short_bytes = int(np.frombuffer(raw[48:56], "<u8")[0])
        if raw.size != _SEGMENT_HEADER + count * (8 + code_bytes + short_bytes):
            raise CatalogCorrupt(f"{path}: compact vector segment is truncated")
        if (digest != quantiser.digest or dim != quantiser.dim
                or code_bytes != quantiser.code_bytes
                or short_bytes != quantiser.shortlist.sa_code_size()):
            raise CatalogCorrupt(f"{path}: coded by another quantiser than the catalog's")
        offset = _SEGMENT_HEADER
        self.ordinals = np.frombuffer(raw, "<u4", count=count, offset=offset)
        self.times_s = np.frombuffer(raw, "<f4", count=count, offset=offset + 4 * count)
        offset += 8 * count
        self.codes = np.frombuffer(raw, np.uint8, count=count * code_bytes,
                                   offset=offset).reshape(count, code_bytes)
        offset += count * code_bytes
        self.short_codes = np.frombuffer(raw, np.uint8, count=count * short_bytes,
                                         offset=offset).reshape(count, short_bytes)
        self.dim, self.quantiser = dim, quantiser
        self._raw = raw

    def reads_at_random(self) -> None:
        """No read-ahead on this segment from now on: once its shortlist codes are in the
        search index (read in order, read-ahead welcome), what is left is a query's re-rank
        codes, 64 bytes at a time at random rows; the kernel's read-around (8 MB a fault on a
        device with ``read_ahead_kb`` 8192) would fill a small machine's page cache with
        neighbours no query asked for (:func:`engine.store.mapping.advise_random`)."""
        from nanhu.engine.store import mapping

        mapping.advise_random(self._raw)

    def __len__(self) -> int:
        return int(self.ordinals.size)

    @property
    def coarse_bytes(self) -> int:
        """Bytes of the list number that opens each shortlist code."""
        import faiss

        return int(faiss.extract_index_ivf(self.quantiser.shortlist).coarse_code_size())

    def list_numbers(self, nlist: int) -> np.ndarray:
        """int32[n]: each row's shortlist list (CatalogCorrupt past ``nlist``)."""
        lists = np.zeros(len(self), np.int32)
        for byte in range(self.coarse_bytes):  # little-endian list number first
            lists |= self.short_codes[:, byte].astype(np.int32) << (8 * byte)
        if len(self) and int(lists.max()) >= nlist:
            raise CatalogCorrupt(f"{self.path}: shortlist codes name lists past {nlist}")
        return lists

    def add_to(self, index, first_id: int) -> None:
        """Put this segment's shortlist codes into ``index`` (a trained plain IVF of the
        quantiser's shortlist), ids ``first_id + row``: straight into its inverted lists, no
        re-encoding."""
        import faiss

        ivf = faiss.extract_index_ivf(index)
        coarse = self.coarse_bytes
        n = len(self)
        lists = self.list_numbers(int(ivf.nlist))
        order = np.argsort(lists, kind="stable")
        bounds = np.searchsorted(lists[order], np.arange(ivf.nlist + 1))
        codes = np.ascontiguousarray(self.short_codes[order, coarse:])
        ids = (order + first_id).astype(np.int64)
        for list_no in np.nonzero(np.diff(bounds))[0]:
            a, b = int(bounds[list_no]), int(bounds[list_no + 1])
            ivf.invlists.add_entries(int(list_no), b - a, faiss.swig_ptr(ids[a:b]),
                                     faiss.swig_ptr(codes[a:b]))
        ivf.ntotal += n
        index.ntotal = ivf.ntotal

    def reconstruct(self, rows: np.ndarray | None = None) -> np.ndarray:
        """float32[n, d] reconstructions of ``rows`` (all when None)."""
        codes = self.codes if rows is None else self.codes[rows]
        return self.quantiser.decode(codes)
