"""Per-shard video vector index: FAISS (as Nanhu builds it) against a Milvus Lite collection.

Issue 12 item 5. Measures, for ``n`` keyframe vectors (248-d float32 unit rows), each backend's
build time (wall and CPU), resident memory (RSS delta over the loaded data, and peak), bytes on
disk, search latency of one query of 20 keyframes at k=32 (p50/p99 wall, median CPU), recall@32
against an exact flat search over 200 query vectors, and the true-match rate: the share of the
real positive query keyframes whose true reference keyframe (same reference, within 1 s of the
clip's offset) is among the top 32.

Backends (``--backends``, comma-separated):

- ``faiss-flat``   ``faiss.IndexFlatIP`` (Nanhu below ``HNSW_MIN_VECTORS``)
- ``faiss-flat-blas`` the same, searched through BLAS (see :class:`FaissFlatBlas`)
- ``faiss-hnsw``   ``faiss.IndexHNSWFlat`` M=32, efConstruction 40 (FAISS default), efSearch 64
                   (``engine/store/vectors.py``: ``HNSW_M``, ``HNSW_EF_SEARCH``), one graph per shard
- ``compact``      Nanhu's compact index (``engine/store/vectors_compact.py``: IVF + PQ31
                   shortlist, PQ62 re-rank); needs ``nanhu`` importable
- ``milvus-flat``, ``milvus-ivf``, ``milvus-ivfsq8``, ``milvus-hnsw``: a Milvus Lite collection
                   through ``pymilvus.MilvusClient("<dir>.db")`` with index FLAT, IVF_FLAT
                   (nlist 512 per segment, nprobe 32), IVF_SQ8 (same), HNSW (M 32,
                   efConstruction 40, ef 64); needs ``pymilvus`` and ``milvus-lite``

Data: the real keyframes of ``video-scale-real-video-v1-17-0-16-16.npz`` (references, their
positive and negative query clips) plus synthetic keyframes drawn from a Gaussian fitted to the
real references' mean and covariance with shot structure (the approach of
``benchmarks/scale_video_synth.py``'s ``KeyframeModel``, copied here so this runs without
``nanhu``). The real references are rows 0..2099 of every catalog, the synthetic ones follow.
The catalog, the queries and the exact answers are made once per size and cached in
``--cache`` (``prepare``); each backend then runs in its own process (clean RSS). The backends are in
``benchmarks/vector_store_backends.py``.

Everything runs single-threaded (``faiss.omp_set_num_threads(1)``, OMP/BLAS threads 1; Milvus
Lite 3.x runs in-process on the same FAISS, so the setting covers it too).

Usage::

    python3.11 -m venv /tmp/milvus-venv
    /tmp/milvus-venv/bin/pip install pymilvus milvus-lite faiss-cpu numpy
    V=/tmp/milvus-venv/bin/python; N=/work/main/.venv/bin/python   # N has nanhu installed
    $V benchmarks/vector_store_compare.py prepare --n 1000000
    $V benchmarks/vector_store_compare.py run --n 100000 \\
        --backends faiss-flat,faiss-hnsw,milvus-flat,milvus-ivf,milvus-hnsw
    $N benchmarks/vector_store_compare.py run --n 100000 --backends compact
    $V benchmarks/vector_store_compare.py table      # markdown of every result so far

Environment: ``VSC_TIMED=30`` times fewer latency queries (exact search at 1M is slow);
``VSC_REUSE=1`` reopens a Milvus collection a failed run left in ``<cache>/work-*`` instead of
rebuilding it (build time is then not measured).

Results are appended to ``<cache>/results.jsonl``, one JSON object per (n, backend).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

try:  # run as a script (the usual way: its folder is on sys.path, nanhu may be missing)
    from vector_store_backends import DIM, make_backend  # noqa: E402
except ImportError:  # imported as nanhu.benchmarks.vector_store_compare
    from nanhu.benchmarks.vector_store_backends import DIM, make_backend  # noqa: E402

REAL = Path("/root/.cache/nanhu/bench/video-scale-real-video-v1-17-0-16-16.npz")
K = 32
QUERY_KEYFRAMES = 20
LATENCY_QUERIES = 120
#: latency queries timed in a run (``--latency-queries``; fewer for slow exact searches)
TIMED = int(os.environ.get("VSC_TIMED", LATENCY_QUERIES))
WARMUP = 5
RECALL_QUERIES = 200
TRUE_MATCH_S = 1.0
MEAN_SHOT = 8.0


# ---- data -----------------------------------------------------------------------------------

def load_real(path: Path = REAL) -> dict:
    with np.load(path, allow_pickle=False) as z:
        n_refs = int(z["n_refs"][0])
        refs = [(z[f"ref{i}_v"], z[f"ref{i}_t"]) for i in range(n_refs)]
        pos = [(int(m[0]), float(m[1]), z[f"pos{k}_v"], z[f"pos{k}_t"])
               for k, m in enumerate(z["meta_pos"])]
        neg = [z[f"neg{k}_v"] for k in range(len(z["meta_neg"]))]
    return {"refs": refs, "pos": pos, "neg": neg}


def fit_model(vectors: list[np.ndarray]):
    """Mean, principal basis and scales, within-shot share (``KeyframeModel.fit``)."""
    stacked = np.concatenate(vectors).astype(np.float64)
    mean = stacked.mean(0)
    eigvals, eigvecs = np.linalg.eigh(np.cov((stacked - mean).T))
    scales = np.sqrt(np.clip(eigvals, 0, None))
    sims = []
    for v in vectors:
        c = v - mean
        sims.append(np.sum(c[1:] * c[:-1], 1) / (np.linalg.norm(c[1:], axis=1)
                                                 * np.linalg.norm(c[:-1], axis=1) + 1e-12))
    shot_share = float(np.clip(np.median(np.concatenate(sims)), 0.0, 0.98))
    return (mean.astype(np.float32), eigvecs.astype(np.float32), scales.astype(np.float32),
            1.0 - shot_share)


def sample(model, n: int, rng: np.random.Generator) -> np.ndarray:
    """float32[n, d] unit vectors in shots (``KeyframeModel.sample``)."""
    mean, basis, scales, within = model
    lengths = rng.geometric(1.0 / MEAN_SHOT, size=n // 2 + 16)
    shot_of = np.repeat(np.arange(lengths.size), lengths)[:n]
    bases = rng.standard_normal((int(shot_of[-1]) + 1, mean.size), dtype=np.float32)
    fresh = rng.standard_normal((n, mean.size), dtype=np.float32)
    z = (np.sqrt(1 - within) * bases[shot_of] + np.sqrt(within) * fresh) * scales
    out = mean + z @ basis.T
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    return out.astype(np.float32)


def prepare(cache: Path, n_max: int, sizes: list[int]) -> None:
    """Catalog of n_max rows (real references first), queries, exact answers per size."""
    import faiss

    faiss.omp_set_num_threads(1)
    cache.mkdir(parents=True, exist_ok=True)
    real = load_real()
    ref_v = np.concatenate([v for v, _ in real["refs"]]).astype(np.float32)
    ref_v /= np.linalg.norm(ref_v, axis=1, keepdims=True)
    ref_of = np.concatenate([np.full(len(v), i, np.int32) for i, (v, _) in enumerate(real["refs"])])
    ref_t = np.concatenate([t for _, t in real["refs"]]).astype(np.float32)
    base_path = cache / f"base-{n_max}.npy"
    if not base_path.exists():
        model = fit_model([v for v, _ in real["refs"]])
        out = np.lib.format.open_memmap(base_path, "w+", np.float32, (n_max, DIM))
        out[:len(ref_v)] = ref_v
        block = 200_000
        for start in range(len(ref_v), n_max, block):
            m = min(block, n_max - start)
            out[start:start + m] = sample(model, m, np.random.default_rng([7, start]))
        out.flush()
        del out
    pos_q = np.concatenate([v for _, _, v, _ in real["pos"]]).astype(np.float32)
    pos_ref = np.concatenate([np.full(len(v), i, np.int32) for i, _, v, _ in real["pos"]])
    pos_t = np.concatenate([s + t for _, s, _, t in real["pos"]]).astype(np.float32)
    neg_q = np.concatenate(real["neg"]).astype(np.float32)
    every_q = np.concatenate([pos_q, neg_q])
    every_q /= np.linalg.norm(every_q, axis=1, keepdims=True)
    pos_q = every_q[:len(pos_q)]
    rng = np.random.default_rng(11)
    recall_q = every_q[np.sort(rng.choice(len(every_q), RECALL_QUERIES, replace=False))]
    # latency queries: 20 consecutive keyframes of a real clip (positive or negative)
    clips = [v for _, _, v, _ in real["pos"]] + real["neg"]
    lat = []
    for i in range(LATENCY_QUERIES + WARMUP):
        clip = clips[i % len(clips)]
        clip = clip / np.linalg.norm(clip, axis=1, keepdims=True)
        reps = np.concatenate([clip, clip[::-1]])
        lat.append(np.resize(reps, (QUERY_KEYFRAMES, DIM)).astype(np.float32))
    base = np.load(base_path, mmap_mode="r")
    for n in sizes:
        gt_path = cache / f"queries-{n}.npz"
        if gt_path.exists():
            continue
        flat = faiss.IndexFlatIP(DIM)
        for a in range(0, n, 200_000):
            flat.add(np.ascontiguousarray(base[a:min(n, a + 200_000)]))
        _, exact = flat.search(recall_q, K)
        _, exact_pos = flat.search(pos_q, K)
        np.savez(gt_path, recall_q=recall_q, exact=exact, pos_q=pos_q, pos_ref=pos_ref,
                 pos_t=pos_t, exact_pos=exact_pos, latency=np.stack(lat), ref_of=ref_of,
                 ref_t=ref_t)
        print(f"prepared n={n}", flush=True)


# ---- measurement helpers --------------------------------------------------------------------

def rss_mib() -> tuple[float, float]:
    """(VmRSS, VmHWM) of this process in MiB."""
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(("VmRSS", "VmHWM")):
            out[line.split(":")[0]] = int(line.split()[1]) / 1024
    return out["VmRSS"], out["VmHWM"]


def run_one(cache: Path, n: int, name: str) -> dict:
    import faiss
    faiss.omp_set_num_threads(1)
    q = np.load(cache / f"queries-{n}.npz")
    base = np.ascontiguousarray(np.load(cache / f"base-{max_prepared(cache)}.npy",
                                        mmap_mode="r")[:n])
    work = cache / f"work-{name}-{n}"
    if not os.environ.get("VSC_REUSE"):
        shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)
    rss0, _ = rss_mib()
    backend = make_backend(name)
    t0, c0 = time.perf_counter(), time.process_time()
    backend.build(base, work)
    build_wall, build_cpu = time.perf_counter() - t0, time.process_time() - c0
    # latency: one query of 20 keyframes, k=32
    walls, cpus = [], []
    for i, batch in enumerate(q["latency"][:WARMUP + TIMED]):
        t0, c0 = time.perf_counter(), time.process_time()
        backend.search(np.ascontiguousarray(batch), K)
        if i >= WARMUP:
            walls.append(time.perf_counter() - t0)
            cpus.append(time.process_time() - c0)
    rows = np.concatenate([backend.search(np.ascontiguousarray(q["recall_q"][a:a + 20]), K)
                           for a in range(0, RECALL_QUERIES, 20)])
    exact = q["exact"]
    recall = float(np.mean([len(set(r[r >= 0]) & set(e)) / K for r, e in zip(rows, exact)]))
    pos_q = q["pos_q"]
    pos_rows = np.concatenate([backend.search(np.ascontiguousarray(pos_q[a:a + 20]), K)
                               for a in range(0, len(pos_q), 20)])
    rss1, hwm = rss_mib()
    ref_of, ref_t = q["ref_of"], q["ref_t"]

    def true_match(found):
        hits = 0
        for row, ref, t in zip(found, q["pos_ref"], q["pos_t"]):
            row = row[(row >= 0) & (row < len(ref_of))]
            hits += bool(np.any((ref_of[row] == ref) & (np.abs(ref_t[row] - t) <= TRUE_MATCH_S)))
        return hits / len(found)

    result = {
        "n": n, "backend": name, "build_wall_s": build_wall, "build_cpu_s": build_cpu,
        "rss_delta_mib": rss1 - rss0, "peak_delta_mib": hwm - rss0,
        "disk_mib": backend.disk_bytes / 2**20,
        "lat_p50_ms": 1e3 * float(np.percentile(walls, 50)),
        "lat_p99_ms": 1e3 * float(np.percentile(walls, 99)),
        "cpu_p50_ms": 1e3 * float(np.percentile(cpus, 50)),
        "recall32": recall, "true_match": true_match(pos_rows),
        "true_match_exact": true_match(q["exact_pos"]), "notes": backend.notes,
        "load": os.getloadavg()[0], "python": sys.executable,
    }
    shutil.rmtree(work, ignore_errors=True)
    return result


def max_prepared(cache: Path) -> int:
    return max(int(p.stem.split("-")[1]) for p in cache.glob("base-*.npy"))


def table(cache: Path) -> str:
    lines = ["| n | backend | build wall s | build CPU s | RSS Δ MiB | peak Δ MiB | disk MiB | "
             "p50 ms | p99 ms | CPU p50 ms | recall@32 | true match (exact) | load | notes |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for line in (cache / "results.jsonl").read_text().splitlines():
        r = json.loads(line)
        lines.append(
            f"| {r['n']:,} | {r['backend']} | {r['build_wall_s']:.1f} | {r['build_cpu_s']:.1f} | "
            f"{r['rss_delta_mib']:.0f} | {r['peak_delta_mib']:.0f} | {r['disk_mib']:.0f} | "
            f"{r['lat_p50_ms']:.2f} | {r['lat_p99_ms']:.2f} | {r['cpu_p50_ms']:.2f} | "
            f"{r['recall32']:.3f} | {r['true_match']:.3f} ({r['true_match_exact']:.3f}) | "
            f"{r['load']:.1f} | {r['notes']} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("command", choices=["prepare", "run", "one", "table"])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--sizes", default="100000,1000000")
    ap.add_argument("--backends", default="faiss-flat,faiss-hnsw,milvus-flat,milvus-ivf,"
                                          "milvus-hnsw")
    ap.add_argument("--cache", type=Path, default=Path("/tmp/vector-store-compare"))
    args = ap.parse_args()
    if args.command == "prepare":
        sizes = [int(s) for s in args.sizes.split(",")]
        prepare(args.cache, max(args.n, *sizes), sizes)
    elif args.command == "one":
        print("RESULT " + json.dumps(run_one(args.cache, args.n, args.backends)), flush=True)
    elif args.command == "run":
        for name in args.backends.split(","):
            proc = subprocess.run([sys.executable, __file__, "one", "--n", str(args.n),
                                   "--backends", name, "--cache", str(args.cache)],
                                  capture_output=True, text=True)
            found = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
            if proc.returncode or not found:
                print(f"{name} n={args.n} FAILED rc={proc.returncode}\n{proc.stderr[-3000:]}",
                      flush=True)
                continue
            with open(args.cache / "results.jsonl", "a") as out:
                out.write(found[0][7:] + "\n")
            r = json.loads(found[0][7:])
            print(f"{name} n={args.n}: build {r['build_wall_s']:.1f} s, p50 "
                  f"{r['lat_p50_ms']:.2f} ms, recall {r['recall32']:.3f}, true match "
                  f"{r['true_match']:.3f}", flush=True)
    else:
        print(table(args.cache))


if __name__ == "__main__":
    main()
