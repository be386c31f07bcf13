"""Compact keyframe vectors: product-quantised codes behind an IVF coarse quantiser, with the
shortlist re-ranked on finer codes, so a large video catalog keeps under 1 MB an hour.

A float32 keyframe (248-d) costs 992 bytes, 6.3 MiB an hour at 6,573 keyframes an hour; the
budget is 1 MB an hour, about 150 bytes a keyframe for *everything*. Measured choice
(``docs/video.md``, "Compact index"):

- **shortlist** -- FAISS ``IVF{nlist},PQ62x4`` (31 bytes a code: 62 sub-quantisers of 4
  dimensions and 16 centroids each, plus FAISS's 8-byte id per code), held in RAM as
  ``IndexIVFPQFastScan`` (codes packed in blocks of 32, scanned with SIMD lookups in registers:
  ~8x faster than 8-bit codes of the same size), searched over ``nprobe`` lists;
- **re-rank** -- every shortlisted row's similarity recomputed from a finer code of the same
  vector, ``IVF1024,PQ62`` (its nearest of 1,024 centroids, 2 bytes, and ``PQ62`` of the
  residual, 62 bytes, 4 dimensions a sub-quantiser), memory-mapped from disk so only
  shortlisted rows are read;
- **id map** -- ordinal uint32 and time float32 per row (8 bytes), as in a float segment.

On disk that is 8 + 64 + 2 + 31 = 105 bytes a keyframe (the shortlist code with its list
number), 0.69 MB an hour; in RAM 31 + 8 (FAISS's int64 id) + 8 (the id map) = 47 bytes, 3.1 GB
at 10,000 hours, plus the page cache of the re-rank codes a query touches (4.2 GB at 10,000
hours if all of them stay cached). The exact float vectors are not kept once compacted: the budget cannot hold
them (float16 alone is 496 bytes).

The trained part -- the coarse centroids, the shortlist's and the re-rank codebooks -- is a
:class:`Quantiser`, one file per training (``video/quantiser-<g>.vqz``), trained on the
catalog's own vectors once it holds :data:`COMPACT_MIN_VECTORS`; below that every vector stays
float and exact (:mod:`engine.store.vectors`). ``compact`` retrains the shortlist part from the
re-rank codes' reconstructions; the re-rank codebook is kept from the first training, so a
stored code is never re-encoded (no error piles up over retrains).

File formats (little-endian; FAISS indexes as ``faiss.serialize_index`` bytes, no pickle;
quantiser version 2 = 4-bit fast-scan shortlist, version 1 = the first, 8-bit ``PQ31``
shortlist, still read and searched as it was; segment version 1 for both: its shortlist codes
are the quantiser's ``sa_encode``, whatever their kind, the list found through an HNSW
graph over the centroids at 8,192 lists and more, :mod:`engine.store.vectors_coarse`)::

    quantiser  magic b"NANHUVQZ"; version uint32; dim uint32; trained_on uint64;
               shortlist_len uint64, shortlist bytes; rerank_len uint64, rerank bytes
    segment    magic b"NANHUVCX"; version uint32; dim uint32; count uint64;
               code_bytes uint32; reserved uint32; quantiser digest 16 bytes;
               short_bytes uint64; then ordinals uint32[count], times_s float32[count],
               rerank codes uint8[count, code_bytes], shortlist codes uint8[count,
               short_bytes] (FAISS ``sa_encode`` of the IVF: list number, then PQ code)

A segment holds codes only, no centroids or codebooks (those are the quantiser's, once), so a
one-hour commit costs its rows' bytes and nothing more.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
from pathlib import Path

import numpy as np

from nanhu.engine.errors import CatalogCorrupt

log = logging.getLogger(__name__)

#: the catalog trains a quantiser once it holds this many keyframes (about 30 hours): enough
#: for a 1,024-list coarse quantiser and 256-centroid codebooks (FAISS wants 39+ training
#: points a centroid), and where an exact flat search of a 10 s query still measured ~30 ms
COMPACT_MIN_VECTORS = 200_000
#: codes of the shortlist and re-rank stores (FAISS index factory strings); the shortlist's
#: are 4-bit (``x4``), searched by fast-scan; the re-rank code is the nearest of its own
#: ``RERANK_LISTS`` centroids (2 bytes; fewer lists, one per 39 training rows, on a small
#: training set) and PQ62 of the vector's residual to it (62 bytes): trained once with the
#: first quantiser and kept by every retraining, like its codebook (the plain ``PQ62`` codes
#: of older quantisers are read as they are)
SHORTLIST_CODES = "PQ62x4"
RERANK_CODES = "PQ62"
RERANK_LISTS = 1024
#: shortlist codes quantised against the vector minus its list's centroid (FAISS
#: ``by_residual``) rather than the vector itself
SHORTLIST_BY_RESIDUAL = True
#: rows shortlisted per query vector before re-ranking, and IVF lists visited
SHORTLIST = 256
NPROBE = 32
#: training sample at most this many vectors, k-means iterations (cost grows with both)
MAX_TRAIN = 500_000
TRAIN_ITERATIONS = 10

QUANTISER_MAGIC = b"NANHUVQZ"
QUANTISER_VERSION = 2
#: 1: 8-bit PQ31 shortlist searched as a plain IVF; 2: 4-bit shortlist searched by fast-scan
READABLE_QUANTISER_VERSIONS = (1, 2)


def nlist_for(count: int) -> int:
    """IVF lists for ``count`` keyframes: about 2 sqrt(n), a power of two, 256..16,384 (1,024
    at the training threshold, 4,096 at 1,000 hours, 16,384 at 10,000 hours: the coarse
    k-means and each row's assignment cost grow with it, the rows scanned per query fall)."""
    return int(min(16_384, max(256, 2 ** round(np.log2(2 * np.sqrt(max(count, 1)))))))


def _serialize(index) -> bytes:
    import faiss

    return faiss.serialize_index(index).tobytes()


def _deserialize(data: bytes | np.ndarray, what: str):
    import faiss

    try:
        return faiss.deserialize_index(np.frombuffer(data, np.uint8).copy())
    except RuntimeError as exc:
        raise CatalogCorrupt(f"{what}: not a FAISS index ({str(exc).splitlines()[0]})") from exc


def _fsync_write(path: Path, parts: list[bytes]) -> int:
    with open(path, "wb") as handle:
        for part in parts:
            handle.write(part)
        handle.flush()
        os.fsync(handle.fileno())
    return path.stat().st_size


class Quantiser:
    """The trained part of the compact index: an empty trained shortlist index (IVF + PQ) and
    a trained re-rank index (PQ) whose codes are stored per row."""

    def __init__(self, shortlist, rerank, *, trained_on: int,
                 version: int = QUANTISER_VERSION) -> None:
        self.shortlist, self.rerank, self.trained_on = shortlist, rerank, trained_on
        self.dim = int(rerank.d)
        self.code_bytes = int(rerank.sa_code_size())
        self.version = version
        self._bytes: bytes | None = None

    @property
    def fast_scan(self) -> bool:
        """Whether the shortlist's codes are 4-bit, searched by fast-scan (version 2)."""
        import faiss

        return int(faiss.downcast_index(faiss.extract_index_ivf(self.shortlist)).pq.nbits) == 4

    @classmethod
    def train(cls, vectors: np.ndarray, *, rerank=None, seed: int = 0,
              nlist: int | None = None, trained_on: int | None = None) -> Quantiser:
        """Train on ``vectors`` [shape=(n, d)], float32 unit rows (a sample of at most
        :data:`MAX_TRAIN` is drawn). ``rerank``: keep this trained re-rank index (retraining
        only the shortlist). ``trained_on``: rows of the catalog ``vectors`` sample (sizes the
        coarse quantiser; default ``n``)."""
        import faiss

        vectors = np.ascontiguousarray(vectors, np.float32)
        n, dim = vectors.shape
        if n > MAX_TRAIN:
            pick = np.sort(np.random.default_rng(seed).choice(n, MAX_TRAIN, replace=False))
            sample = np.ascontiguousarray(vectors[pick])
        else:
            sample = vectors
        trained_on = trained_on or n
        nlist = nlist or min(nlist_for(trained_on), max(1, sample.shape[0] // 39))
        shortlist = faiss.index_factory(dim, f"IVF{nlist},{SHORTLIST_CODES}",
                                        faiss.METRIC_INNER_PRODUCT)
        ivf = faiss.extract_index_ivf(shortlist)
        ivf.cp.seed, ivf.cp.niter = seed, TRAIN_ITERATIONS
        ivfpq = faiss.downcast_index(ivf)
        # polysemous training (code reordering for Hamming pre-filters, unused here) took
        # minutes on 2 cores for no gain
        ivfpq.do_polysemous_training = False
        ivfpq.by_residual = SHORTLIST_BY_RESIDUAL
        ivfpq.pq.cp.niter = TRAIN_ITERATIONS
        shortlist.train(sample)
        if rerank is None:
            lists = min(RERANK_LISTS, max(1, sample.shape[0] // 39))
            rerank = faiss.index_factory(dim, f"IVF{lists},{RERANK_CODES}")
            coded = faiss.downcast_index(rerank)
            coded.do_polysemous_training = False
            coded.pq.cp.niter, coded.pq.cp.seed = TRAIN_ITERATIONS, seed
            coded.cp.niter, coded.cp.seed = TRAIN_ITERATIONS, seed
            rerank.train(sample)
        return cls(shortlist, rerank, trained_on=trained_on)

    def to_bytes(self) -> bytes:
        if self._bytes is None:
            short, rerank = _serialize(self.shortlist), _serialize(self.rerank)
            self._bytes = b"".join([
                QUANTISER_MAGIC, np.array([self.version, self.dim], "<u4").tobytes(),
                np.array([self.trained_on, len(short)], "<u8").tobytes(), short,
                np.array([len(rerank)], "<u8").tobytes(), rerank])
        return self._bytes

    @property
    def digest(self) -> bytes:
        """16 bytes naming this training (segments carry it: codes of another training are
        refused, not misread)."""
        return hashlib.sha256(self.to_bytes()).digest()[:16]

    def write(self, path: Path) -> int:
        """Write and fsync; returns the size in bytes."""
        return _fsync_write(path, [self.to_bytes()])

    @classmethod
    def read(cls, path: Path) -> Quantiser:
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise CatalogCorrupt(f"{path}: cannot read the vector quantiser ({exc})") from exc
        return cls.from_bytes(data, path)

    @classmethod
    def from_bytes(cls, data: bytes, path: Path | str = "<bytes>") -> Quantiser:
        """A quantiser from its file's bytes (``path`` names it in errors)."""
        if len(data) < 32 or data[:8] != QUANTISER_MAGIC:
            raise CatalogCorrupt(f"{path}: not a Nanhu vector quantiser")
        version, dim = (int(v) for v in np.frombuffer(data[8:16], "<u4"))
        if version not in READABLE_QUANTISER_VERSIONS:
            raise CatalogCorrupt(
                f"{path}: vector quantiser version {version} is not supported (this Nanhu reads "
                f"versions {', '.join(map(str, READABLE_QUANTISER_VERSIONS))}); rebuild the "
                "catalog's keyframes with this Nanhu (register the works again into a new "
                "catalog)")
        trained_on, short_len = (int(v) for v in np.frombuffer(data[16:32], "<u8"))
        end = 32 + short_len
        if len(data) < end + 8:
            raise CatalogCorrupt(f"{path}: vector quantiser is truncated")
        rerank_len = int(np.frombuffer(data[end:end + 8], "<u8")[0])
        if len(data) != end + 8 + rerank_len:
            raise CatalogCorrupt(f"{path}: vector quantiser is truncated")
        shortlist = _deserialize(data[32:end], f"{path} (shortlist)")
        rerank = _deserialize(data[end + 8:], f"{path} (re-rank codebook)")
        if shortlist.d != dim or rerank.d != dim or not shortlist.is_trained:
            raise CatalogCorrupt(f"{path}: vector quantiser does not match its header")
        quantiser = cls(shortlist, rerank, trained_on=trained_on, version=version)
        if quantiser.fast_scan != (version >= 2):
            raise CatalogCorrupt(f"{path}: vector quantiser version {version} holds a "
                                 "shortlist of another kind")
        quantiser._bytes = data
        return quantiser

    def encode(self, vectors: np.ndarray) -> np.ndarray:
        """Re-rank codes uint8[n, code_bytes] of float32[n, d] vectors."""
        return self.rerank.sa_encode(np.ascontiguousarray(vectors, np.float32))

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """float32[n, d] reconstructions of re-rank codes uint8[n, code_bytes]."""
        if len(codes) == 0:
            return np.zeros((0, self.dim), np.float32)
        return self.rerank.sa_decode(np.ascontiguousarray(codes, np.uint8))

    @functools.cached_property
    def coarse(self):
        """The shortlist's :class:`engine.store.vectors_coarse.CoarseGraph` (built on first
        use), or None where its flat table of centroids is used."""
        import faiss

        from nanhu.engine.store.vectors_coarse import coarse_graph

        return coarse_graph(faiss.extract_index_ivf(self.shortlist))

    def shortlist_encode(self, vectors: np.ndarray) -> np.ndarray:
        """Shortlist codes uint8[n, short_bytes] (list number, then PQ code) of float32[n, d]
        vectors: FAISS ``sa_encode``, the list found through :attr:`coarse` where it has one."""
        import faiss

        vectors = np.ascontiguousarray(vectors, np.float32)
        graph = self.coarse
        if graph is None or len(vectors) == 0:
            return self.shortlist.sa_encode(vectors)
        ivf = faiss.downcast_index(faiss.extract_index_ivf(self.shortlist))
        lists = np.ascontiguousarray(graph.assign(vectors))
        codes = np.empty((len(vectors), int(self.shortlist.sa_code_size())), np.uint8)
        ivf.encode_vectors(len(vectors), faiss.swig_ptr(vectors), faiss.swig_ptr(lists),
                           faiss.swig_ptr(codes), True)
        return codes

    def shortlist_index(self, blocks) -> object:
        """A copy of the trained shortlist index holding ``blocks`` (float32[m, d] arrays, in
        row order: ids are row numbers), searchable as
        :class:`engine.store.vectors_compact_search.CompactPart` searches it."""
        import faiss

        index = faiss.clone_index(self.shortlist)
        for block in blocks:
            index.add(np.ascontiguousarray(block, np.float32))
        if not self.fast_scan:
            return index
        fast = faiss.IndexIVFPQFastScan(index)
        fast.referenced_objects = [index]
        return fast
