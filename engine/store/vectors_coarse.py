"""Coarse assignment for large compact indexes: an HNSW graph over the IVF's centroids.

A row's shortlist code starts with its nearest coarse centroid, and a query vector visits its
``nprobe`` nearest lists. Against a flat table of centroids both cost ``nlist x d``
multiply-adds a vector: at 16,384 lists 4 M, 84 us a row on one core, the largest part of
coding a keyframe. A small HNSW graph over the centroids finds the nearest list at a third of
that (``docs/video.md``, "The coarse graph": 99.6 % the same list on the microbench's
centroids, 92.8 % on the 10,000 h catalog's 12,820, where the 10,000 h build took 43 minutes
and deeper probes found no more), so above :data:`MIN_LISTS` lists the compact index assigns
and probes through it.

The graph is built in memory from the quantiser's centroids when first needed (about 1 s at
16,384 lists, one thread, so it is the same graph on every machine) and never stored: the
quantiser file and its digest do not change, and a row coded through the graph is an ordinary
code (list number + residual code), read and searched like one coded against the flat table.
A row the graph puts in its second-nearest list costs a little of its residual code's
precision, and is still found by a query probing either list.
"""

from __future__ import annotations

import numpy as np

#: coarse quantisers with at least this many lists are assigned and probed through the graph;
#: below it the flat table is as fast (4,096 lists: 21 us a row either way)
MIN_LISTS = 8192
#: graph degree and build breadth
GRAPH_M = 16
EF_CONSTRUCTION = 80
#: search breadth assigning a row (nearest list) and probing for a query (at least this, and
#: at least twice its nprobe)
ASSIGN_EF = 32
PROBE_EF = 64


class CoarseGraph:
    """HNSW over the coarse centroids float32[nlist, d] of an IVF with metric ``metric`` (a
    FAISS metric type): :meth:`assign` and :meth:`probe` stand in for its flat quantiser."""

    def __init__(self, centroids: np.ndarray, metric: int) -> None:
        import faiss

        centroids = np.ascontiguousarray(centroids, np.float32)
        self.nlist = int(centroids.shape[0])
        self.graph = faiss.IndexHNSWFlat(int(centroids.shape[1]), GRAPH_M, metric)
        self.graph.hnsw.efConstruction = EF_CONSTRUCTION
        threads = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(1)  # a parallel build's graph depends on thread timing
        try:
            self.graph.add(centroids)
        finally:
            faiss.omp_set_num_threads(threads)

    def assign(self, vectors: np.ndarray) -> np.ndarray:
        """int64[n]: each row's (approximately) nearest list, for float32[n, d] rows."""
        import faiss

        _, lists = self.graph.search(np.ascontiguousarray(vectors, np.float32), 1,
                                     params=faiss.SearchParametersHNSW(efSearch=ASSIGN_EF))
        return lists[:, 0].astype(np.int64)

    def probe(self, queries: np.ndarray, nprobe: int) -> tuple[np.ndarray, np.ndarray]:
        """(similarities float32[m, nprobe], lists int64[m, nprobe]): the lists a query visits,
        as ``search_preassigned`` takes them."""
        import faiss

        nprobe = min(nprobe, self.nlist)
        ef = max(PROBE_EF, 2 * nprobe)
        return self.graph.search(np.ascontiguousarray(queries, np.float32), nprobe,
                                 params=faiss.SearchParametersHNSW(efSearch=ef))


def coarse_graph(ivf) -> CoarseGraph | None:
    """The graph for a FAISS IVF index whose coarse quantiser is a flat table of at least
    :data:`MIN_LISTS` centroids; None when the flat table should be used."""
    import faiss

    if int(ivf.nlist) < MIN_LISTS:
        return None
    flat = faiss.downcast_index(ivf.quantizer)
    if not isinstance(flat, faiss.IndexFlat):
        return None
    return CoarseGraph(flat.reconstruct_n(0, int(ivf.nlist)), int(ivf.metric_type))
