"""The backends :mod:`benchmarks.vector_store_compare` measures, one class each: ``build(base,
work)`` then ``search(queries, k) -> rows``; their parameters are the engine's
(``engine/store/vectors.py``) or Milvus's documented ones. Imports nothing of Nanhu but the
``compact`` backend, so the others run in a venv that has only FAISS and pymilvus."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

DIM = 248
HNSW_M, HNSW_EF_CONSTRUCTION, HNSW_EF_SEARCH = 32, 40, 64
MILVUS_NLIST, MILVUS_NPROBE = 512, 32


def dir_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


class Backend:
    """build(base) then search(queries float32[m, d], k) -> rows int64[m, k]."""

    disk_bytes = 0
    notes = ""


class FaissFlat(Backend):
    def build(self, base, work):
        import faiss
        self.index = faiss.IndexFlatIP(DIM)
        self.index.add(base)
        faiss.write_index(self.index, str(work / "flat.index"))
        self.disk_bytes = len(base) * (DIM * 4 + 8)  # Nanhu's segment: vectors + id map
        (work / "flat.index").unlink()

    def search(self, q, k):
        return self.index.search(q, k)[1]


class FaissFlatBlas(FaissFlat):
    """The same flat index searched through BLAS: FAISS 1.15's default
    ``distance_compute_blas_threshold`` (128,000 queries) keeps a 20-keyframe query on its
    scalar path."""

    def build(self, base, work):
        import faiss
        faiss.cvar.distance_compute_blas_threshold = 16
        super().build(base, work)
        self.notes = "distance_compute_blas_threshold 16"


class FaissHnsw(Backend):
    def build(self, base, work):
        import faiss
        self.index = faiss.IndexHNSWFlat(DIM, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        self.index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        self.index.add(base)
        self.index.hnsw.efSearch = HNSW_EF_SEARCH
        path = work / "graph.hnsw"
        faiss.write_index(self.index, str(path))
        # Nanhu keeps the float segment (vectors + id map) and the graph file beside it
        self.disk_bytes = path.stat().st_size + len(base) * (DIM * 4 + 8)
        self.notes = f"graph file {path.stat().st_size / 2**20:.0f} MiB + float segment"

    def search(self, q, k):
        return self.index.search(q, k)[1]


class Compact(Backend):
    def build(self, base, work):
        from nanhu.engine.store import vectors_compact as vc
        from nanhu.engine.store import vectors_compact_segment as vcs
        from nanhu.engine.store.vectors_compact_search import CompactPart
        quantiser = vc.Quantiser.train(base)
        qpath, spath = work / "quantiser.vqz", work / "segment.vcx"
        quantiser.write(qpath)
        n = len(base)
        ords = np.zeros(n, np.uint32)
        times = np.zeros(n, np.float32)
        vcs.write_compact_segment(spath, quantiser, (
            (base[a:a + 100_000], None, ords[a:a + 100_000], times[a:a + 100_000])
            for a in range(0, n, 100_000)))
        self.part = CompactPart([vcs.CompactSegment(spath, quantiser)])
        self.disk_bytes = qpath.stat().st_size + spath.stat().st_size
        self.notes = (f"nlist {vc.nlist_for(n)}, nprobe {vc.NPROBE}, shortlist "
                      f"{vc.SHORTLIST}")

    def search(self, q, k):
        return self.part.search(q, k)[1]


class Milvus(Backend):
    INDEX = {
        "milvus-flat": ("FLAT", {}, {}),
        "milvus-ivf": ("IVF_FLAT", {"nlist": MILVUS_NLIST}, {"nprobe": MILVUS_NPROBE}),
        "milvus-ivfsq8": ("IVF_SQ8", {"nlist": MILVUS_NLIST}, {"nprobe": MILVUS_NPROBE}),
        "milvus-hnsw": ("HNSW", {"M": HNSW_M, "efConstruction": HNSW_EF_CONSTRUCTION},
                        {"ef": HNSW_EF_SEARCH}),
    }

    def __init__(self, name):
        self.index_type, self.build_params, self.search_params = self.INDEX[name]

    def build(self, base, work):
        from pymilvus import DataType, MilvusClient
        self.path = work / "shard.db"
        reuse = self.path.exists()  # a collection left by an earlier run (``VSC_REUSE=1``)
        self.client = MilvusClient(str(self.path))
        if reuse:
            self.client.load_collection("keyframes")  # index files on disk are loaded
            self.disk_bytes = dir_bytes(self.path)
            self.notes = "reused collection: build time from its files' times, not measured"
            return
        schema = MilvusClient.create_schema(auto_id=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("v", DataType.FLOAT_VECTOR, dim=DIM)
        self.client.create_collection("keyframes", schema=schema)
        t0, c0 = time.perf_counter(), time.process_time()
        batch = 5_000
        for a in range(0, len(base), batch):
            rows = base[a:a + batch]
            self.client.insert("keyframes", [{"id": a + i, "v": v} for i, v in enumerate(rows)])
        self.client.flush("keyframes")
        self.insert_s = (time.perf_counter() - t0, time.process_time() - c0)
        params = self.client.prepare_index_params()
        params.add_index("v", index_type=self.index_type, metric_type="IP",
                         params=self.build_params)
        try:
            self.client.create_index("keyframes", params)
        except Exception as exc:  # noqa: BLE001
            # at 1M rows the synchronous build outlasts pymilvus's call and its retry is
            # answered "index already exists" although the first call built it
            if "already exists" not in str(exc):
                raise
        self.client.load_collection("keyframes")
        self.disk_bytes = dir_bytes(self.path)
        segs = list(self.path.rglob("data_*.parquet"))
        self.notes = (f"insert {self.insert_s[0]:.0f} s wall / {self.insert_s[1]:.0f} s CPU; "
                      f"{len(segs)} data file(s)")

    def search(self, q, k):
        res = self.client.search("keyframes", data=q.tolist(), limit=k, anns_field="v",
                                 search_params={"metric_type": "IP",
                                                "params": self.search_params})
        out = np.full((len(q), k), -1, np.int64)
        for i, hits in enumerate(res):
            ids = [h["id"] for h in hits]
            out[i, :len(ids)] = ids
        return out


def make_backend(name: str) -> Backend:
    if name == "faiss-flat":
        return FaissFlat()
    if name == "faiss-flat-blas":
        return FaissFlatBlas()
    if name == "faiss-hnsw":
        return FaissHnsw()
    if name == "compact":
        return Compact()
    if name.startswith("milvus-"):
        return Milvus(name)
    raise SystemExit(f"unknown backend {name}")
