"""The video benchmark at catalog scale: video search + alignment latency over the real
keyframes plus random unit vectors up to a million, flat against HNSW, and HNSW's recall.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from nanhu.engine.catalog import Catalog


@dataclasses.dataclass
class _ArraySegment:
    """In-memory stand-in for a vector segment (what FaissVectorIndex reads)."""

    vectors: np.ndarray
    ordinals: np.ndarray
    times_s: np.ndarray

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def __len__(self) -> int:
        return int(self.ordinals.size)


def scale_test(catalog: Catalog, queries: list[tuple[np.ndarray, np.ndarray]], *,
               total_keyframes: int, seed: int = 0, ef_search: tuple[int, ...] = (64, 128)) -> dict:
    """Video search + alignment latency, flat vs HNSW, over the real keyframes plus random unit
    vectors up to ``total_keyframes``; HNSW's recall@k against flat on the real query vectors."""
    from nanhu.engine.store.vectors import FaissVectorIndex, VectorSegment
    from nanhu.engine.video import align as video_align

    params = video_align.default_params()
    real = [VectorSegment(catalog.path / s["file"]) for s in catalog.manifest["video_segments"]]
    dim = real[0].dim
    n_real = sum(len(s) for s in real)
    n_synthetic = max(0, total_keyframes - n_real)
    rng = np.random.default_rng([seed, 1_000_003])
    synthetic = np.empty((n_synthetic, dim), np.float32)
    for start in range(0, n_synthetic, 100_000):
        block = rng.standard_normal((min(100_000, n_synthetic - start), dim), dtype=np.float32)
        synthetic[start:start + block.shape[0]] = block / np.linalg.norm(block, axis=1, keepdims=True)
    per_ref = 400  # synthetic references of 400 keyframes each, ordinals past the real ones
    segments = [*real, _ArraySegment(
        synthetic, (10_000_000 + np.arange(n_synthetic) // per_ref).astype(np.uint32),
        ((np.arange(n_synthetic) % per_ref) * 0.5).astype(np.float32))]
    result: dict = {"keyframes": n_real + n_synthetic, "real_keyframes": n_real, "dim": dim,
                    "k": params.k, "queries": len(queries)}
    rows: dict[str, np.ndarray] = {}
    top: dict[str, list] = {}
    for kind in ("flat", "hnsw"):
        t0 = time.perf_counter()
        # One segment (the synthetic keyframes) is large enough for a graph; the real ones stay
        # exact, as in a catalog after compaction of the synthetic part.
        index = FaissVectorIndex(segments, hnsw_threshold=1 if kind == "hnsw" else 1 << 62)
        build_s = time.perf_counter() - t0
        latencies, best = [], []
        for vectors, times in queries:
            t0 = time.perf_counter()
            ordinals, ref_times, sims = index.search(vectors, params.k)
            segs = video_align.align_video(times, ordinals, ref_times, sims, params=params,
                                           query_vectors=vectors,
                                           catalog_keyframes=n_real + n_synthetic)
            latencies.append((time.perf_counter() - t0) * 1000)
            best.append(segs[0].reference if segs else None)
        top[kind] = best
        stacked = np.concatenate([v for v, _ in queries]) if queries else np.zeros((0, dim), np.float32)
        entry = {"build_s": build_s,
                 "latency_ms_p50": float(np.percentile(latencies, 50)) if latencies else None,
                 "latency_ms_p99": float(np.percentile(latencies, 99)) if latencies else None,
                 "memory_bytes_estimate": (n_real + n_synthetic) * dim * 4
                 + (int(n_real + n_synthetic) * 32 * 2 * 4 if kind == "hnsw" else 0)}
        if kind == "flat":
            rows["flat"] = index.search_rows(stacked, params.k)[1]
        else:
            entry["recall_at_k"] = {}
            for ef in ef_search:
                index.set_ef_search(ef)
                found = index.search_rows(stacked, params.k)[1]
                entry["recall_at_k"][str(ef)] = _overlap_recall(found, rows["flat"])
            index.set_ef_search(ef_search[0])
        result[kind] = entry
        del index
    agree = [a == b for a, b in zip(top["flat"], top["hnsw"])]
    result["top1_agreement"] = float(np.mean(agree)) if agree else None
    return result


def _overlap_recall(found: np.ndarray, exact: np.ndarray) -> float | None:
    """Mean share of each row's exact neighbours that ``found`` also returned."""
    shares = []
    for f, e in zip(found, exact):
        e = e[e >= 0]
        if e.size:
            shares.append(np.isin(e, f).mean())
    return float(np.mean(shares)) if shares else None
