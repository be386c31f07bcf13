"""Server load test: screening latency and throughput over gRPC under 1, 8 and 32 clients.

    python -m nanhu.benchmarks.server_bench --quick        # a few minutes on 2 cores
    nanhu bench server [--quick]

A catalog of real music from the benchmark corpus (``benchmarks.corpus.audio``) is served by
``nanhu serve`` in its own process on a loopback port; this process plays 1, 8 and 32
concurrent clients, each with its own channel, uploading 10 s and 60 s excerpts of registered
works re-encoded as MP3 (``Screen``), and then the same excerpts as edge fingerprints computed
beforehand (``ScreenFingerprint``). Each client loop is bounded in count and in time. Reported:
p50/p99 latency, uploads per second, errors, server memory (all its processes) before and after.
The baseline is in-process screening of the same files (decode + fingerprint + match, one at a
time): the server's overhead is its 1-client p50 over that p50.

Claims: the same server then screens two 10 s edge fingerprints of two different works,
alternating, first with one work's policy blocking (each screening records a claim, committed
before the answer) and the other's disabled (same work, action ``none``, nothing written), then
the other way round (:func:`benchmarks.claims_latency.alternating`): p50/p99 with and without
claims from one run, and their p50 difference (issue 13 asks at most 5 ms). ``--claims-only``
runs just that part.

Not a timed test; results go to ``OUT/server/server.json`` and a report section.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from nanhu.benchmarks import claims_latency
from nanhu.benchmarks.synth import write_audio

log = logging.getLogger(__name__)

RATE = 22050
LEVELS = (1, 8, 32)


def _tree_rss_mb(root: int) -> float:
    """Resident memory of ``root`` and all its descendants (MiB), from /proc."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            fields = Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()
            pages = int(Path(entry.path, "statm").read_text().split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
        rss[int(entry.name)] = pages * os.sysconf("SC_PAGE_SIZE")
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        total += rss.get(pid, 0)
        stack.extend(children.get(pid, []))
    return total / 2**20


def ensure_catalog(corpus: dict, references: int) -> Path:
    """A catalog of the first ``references`` corpus works (reuses the audio benchmark's when it
    holds them all)."""
    from nanhu.benchmarks.audio_bench import build_catalog
    from nanhu.benchmarks.corpus.cache import cache_dir
    from nanhu.engine.audio.params import AudioParams

    # Keyed by the fingerprint parameters: an old catalog refuses new edge fingerprints.
    folder = cache_dir() / "bench" / f"server-catalog-{AudioParams().tag()}-{references}"
    if not (folder / "build.json").exists():
        subset = {**corpus, "references": corpus["references"][:references]}
        build = build_catalog(subset, folder, AudioParams())
        (folder / "build.json").write_text(json.dumps(build))
    return folder


def make_queries(corpus: dict, folder: Path, *, count: int, length_s: float, seed: int,
                 references: int) -> list[Path]:
    """``count`` MP3 excerpts of ``length_s`` seconds from random registered works.

    Each query draws from its own seeded generator, so the set does not depend on which files
    a previous run left cached; draws that land in a silent passage (some tracks have them:
    an upload of silence is not a screening load) are drawn again.
    """
    from nanhu.engine.media import load_audio

    folder.mkdir(parents=True, exist_ok=True)
    works = [r for r in corpus["references"][:references] if r["duration_s"] >= length_s + 2]
    decoded: dict[str, np.ndarray] = {}
    paths = []
    for number in range(count):
        path = folder / f"q{int(length_s)}s-{seed}-{number:03d}.mp3"
        paths.append(path)
        rng = np.random.default_rng([seed, number])
        for _attempt in range(20):
            if path.exists():
                break
            ref = works[int(rng.integers(len(works)))]
            offset = float(rng.uniform(0, ref["duration_s"] - length_s - 1))
            if ref["id"] not in decoded:
                decoded[ref["id"]] = load_audio(ref["path"], sample_rate=RATE)
            clip = decoded[ref["id"]][int(offset * RATE) : int((offset + length_s) * RATE)]
            if np.sqrt(np.mean(np.square(clip, dtype=np.float64))) > 1e-3:
                write_audio(path.with_name("tmp-" + path.name), clip, RATE).rename(path)
        if not path.exists():
            raise RuntimeError(f"{folder}: 20 draws of a {length_s:g} s excerpt were all silent")
    return paths


def start_server(catalog: Path, workers: int) -> tuple[subprocess.Popen, str]:
    cmd = [sys.executable, "-m", "nanhu", "serve", "--catalog", str(catalog), "--listen",
           "127.0.0.1:0", "--workers", str(workers), "--max-concurrent", "128"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    for line in proc.stdout:
        found = re.search(r" on (127\.0\.0\.1:\d+) ", line)
        if found:
            threading.Thread(target=proc.stdout.read, daemon=True).start()  # keep the pipe drained
            return proc, found.group(1)
    raise RuntimeError(f"nanhu serve exited with {proc.wait()}")


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def load(call, items: list, *, clients: int, max_requests: int, max_seconds: float) -> dict:
    """``clients`` threads calling ``call(client_index, item)`` until either bound is reached."""
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    issued = [0]
    stop_at = time.perf_counter() + max_seconds

    def worker(index: int) -> None:
        while time.perf_counter() < stop_at:
            with lock:
                if issued[0] >= max_requests:
                    return
                item = items[issued[0] % len(items)]
                issued[0] += 1
            started = time.perf_counter()
            try:
                call(index, item)
            except Exception as exc:  # noqa: BLE001 - a load test counts every failure
                detail = exc.details() if hasattr(exc, "details") else str(exc)
                with lock:
                    errors.append(f"{type(exc).__name__}: {detail}")
                continue
            with lock:
                latencies.append(time.perf_counter() - started)

    wall0 = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - wall0
    return {"clients": clients, "requests": len(latencies), "errors": len(errors),
            "error_examples": sorted(set(errors))[:3], "wall_s": round(wall, 2),
            "p50_s": round(percentile(latencies, 50), 4), "p99_s": round(percentile(latencies, 99), 4),
            "per_s": round(len(latencies) / wall, 3)}


def in_process(catalog: Path, queries: list[Path]) -> dict:
    """Decode + fingerprint + match in this process, one query at a time."""
    from nanhu.engine.catalog import Catalog
    from nanhu.engine.fingerprint import fingerprint_media
    from nanhu.engine.matcher import Matcher

    matcher = Matcher(Catalog(catalog))
    latencies = []
    for path in queries:
        started = time.perf_counter()
        matcher.match(fingerprint_media(path, audio_params=matcher.catalog.audio_params, query=True))
        latencies.append(time.perf_counter() - started)
    return {"requests": len(latencies), "p50_s": round(percentile(latencies, 50), 4),
            "p99_s": round(percentile(latencies, 99), 4)}


def soak(address: str, queries: list[Path], folder: Path, *, seconds: float, seed: int,
         server_pid: int) -> dict:
    """Mixed load for ``seconds``: 4 screening clients and 1 registering generated songs; the
    server's memory is sampled throughout; afterwards every registered song must be found."""
    from nanhu.benchmarks.synth import music_like
    from nanhu.server.client import NanhuClient

    folder.mkdir(parents=True, exist_ok=True)
    stop_at = time.perf_counter() + seconds
    errors: list[str] = []
    registered: list[tuple[str, np.ndarray]] = []
    rss: list[float] = []
    counts = {"screened": 0}
    lock = threading.Lock()

    def screener(index: int) -> None:
        with NanhuClient(address, timeout=600) as client:
            number = index
            while time.perf_counter() < stop_at:
                try:
                    client.screen_file(queries[number % len(queries)])
                    with lock:
                        counts["screened"] += 1
                except Exception as exc:  # noqa: BLE001 - the soak counts every failure
                    errors.append(f"screen: {exc}")
                number += 4

    def registrar() -> None:
        with NanhuClient(address, timeout=600) as client:
            number = 0
            while time.perf_counter() < stop_at:
                samples = music_like(40.0, seed=seed * 100_000 + 70_000 + number, sample_rate=RATE)
                path = write_audio(folder / f"soak-{seed}-{number}.mp3", samples, RATE)
                ref_id = f"soak-{seed}-{time.time_ns()}"
                try:
                    client.register_file(path, ref_id)
                    registered.append((ref_id, samples))
                except Exception as exc:  # noqa: BLE001
                    errors.append(f"register: {exc}")
                path.unlink()
                number += 1

    threads = [threading.Thread(target=screener, args=(i,)) for i in range(4)]
    threads.append(threading.Thread(target=registrar))
    for thread in threads:
        thread.start()
    while any(t.is_alive() for t in threads):
        rss.append(_tree_rss_mb(server_pid))
        threads[-1].join(5.0)
    for thread in threads:
        thread.join()
    missing = []
    with NanhuClient(address, timeout=600) as client:
        for ref_id, samples in registered:
            path = write_audio(folder / "check.mp3", samples[10 * RATE : 20 * RATE], RATE)
            found = [m["reference_id"] for m in client.screen_file(path)["matches"]]
            if ref_id not in found:
                missing.append(ref_id)
            client.delete(ref_id)  # leave the benchmark catalog as it was
    return {"seconds": seconds, "screened": counts["screened"], "registered": len(registered),
            "errors": len(errors), "error_examples": sorted(set(errors))[:3],
            "not_found_afterwards": missing, "rss_mb_first": round(rss[0], 1) if rss else None,
            "rss_mb_max": round(max(rss), 1) if rss else None,
            "rss_mb_last": round(rss[-1], 1) if rss else None}


def run_server_bench(out: Path, *, quick: bool = False, seed: int = 0, workers: int | None = None,
                     references: int | None = None, soak_s: float | None = None,
                     tiny: bool = False, claims_only: bool = False) -> dict:
    """Load test of ``nanhu serve``. ``tiny``: a smoke run (10 s uploads, 1 and 8 clients, a few
    requests each, no soak) for ``nanhu bench --tiny``. ``claims_only``: only the claims
    latency part (the catalog, the server, :func:`benchmarks.claims_latency.claims_phase`)."""
    from nanhu.benchmarks.corpus.audio import load_audio_corpus
    from nanhu.engine.fingerprint import fingerprint_media
    from nanhu.server.client import NanhuClient

    out.mkdir(parents=True, exist_ok=True)
    corpus = load_audio_corpus()
    references = references or (30 if quick else len(corpus["references"]))
    workers = workers or os.cpu_count() or 2
    catalog = ensure_catalog(corpus, references)
    lengths = (10.0,) if tiny else (10.0, 60.0)
    levels = (1, 8) if tiny else LEVELS
    quick = quick or tiny
    if claims_only:
        lengths = (10.0,)
    queries = {length: make_queries(corpus, out / "queries", count=4 if tiny else 12 if quick else 40,
                                    length_s=length, seed=seed + int(length), references=references)
               for length in lengths}
    summary: dict = {"references": references, "workers": workers, "cores": os.cpu_count(),
                     "quick": quick, "baseline": {}, "stream": {}, "fingerprint": {}}
    for length in () if claims_only else lengths:
        summary["baseline"][f"{length:g}s"] = in_process(
            catalog, queries[length][:2 if tiny else 6 if quick else 20])
    edge = {length: [fingerprint_media(p, query=True) for p in queries[length]] for length in lengths}
    proc, address = start_server(catalog, workers)
    try:
        summary["server_rss_mb_start"] = round(_tree_rss_mb(proc.pid), 1)
        clients = [NanhuClient(address, timeout=600) for _ in range(max(levels))]
        for length in () if claims_only else lengths:
            for level in levels:
                bound = (level if tiny else max(2 * level, 12 if length < 30 else 4) if quick
                         else max(4 * level, 40))
                seconds = (40 if length < 30 else 60) if quick else 300
                key = f"{length:g}s x{level}"
                summary["stream"][key] = load(lambda i, p: clients[i].screen_file(p), queries[length],
                                              clients=level, max_requests=bound, max_seconds=seconds)
                summary["fingerprint"][key] = load(
                    lambda i, fp: clients[i].screen_fingerprint(fp), edge[length], clients=level,
                    max_requests=bound, max_seconds=seconds)
                log.info("server bench: %s: stream %s, fingerprint %s", key, summary["stream"][key],
                         summary["fingerprint"][key])
        for client in clients:
            client.close()
        summary["claims"] = claims_latency.claims_phase(address, edge[10.0],
                                         calls=5 if tiny else 40 if quick else 150)
        log.info("server bench: claims %s", summary["claims"])
        summary["server_rss_mb_end"] = round(_tree_rss_mb(proc.pid), 1)
        if claims_only:
            soak_s = 0.0
        soak_s = soak_s if soak_s is not None else (0.0 if tiny else 60.0 if quick else 600.0)
        if soak_s > 0:
            summary["soak"] = soak(address, queries[10.0], out / "soak", seconds=soak_s, seed=seed,
                                   server_pid=proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    if not claims_only:
        base = summary["baseline"]["10s"]["p50_s"]
        one = summary["stream"]["10s x1"]["p50_s"]
        summary["overhead_10s"] = round((one - base) / base, 3)
        summary["speedup_8_over_1_10s"] = round(
            summary["stream"]["10s x8"]["per_s"] / max(summary["stream"]["10s x1"]["per_s"], 1e-9),
            2)
    (out / "server.json").write_text(json.dumps(summary, indent=1))
    return summary


def markdown(summary: dict) -> str:
    if not summary["stream"]:  # --claims-only
        return "\n".join(["## Server: screening with and without claims", "",
                          *claims_latency.markdown(summary["claims"])])
    lines = [
        "## Server: screening over gRPC",
        "",
        f"{summary['references']} registered works, {summary['workers']} worker processes, "
        f"{summary['cores']} cores, server and clients on one machine (loopback).",
        "",
        "| upload | clients | mode | requests | errors | p50 (s) | p99 (s) | uploads/s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for mode in ("stream", "fingerprint"):
        for key, run in summary[mode].items():
            length, level = key.split(" x")
            lines.append(f"| {length} | {level} | {mode} | {run['requests']} | {run['errors']} | "
                         f"{run['p50_s']:.3f} | {run['p99_s']:.3f} | {run['per_s']:.2f} |")
    base = summary["baseline"]
    lines += [
        "",
        "In-process baseline (decode + fingerprint + match, one at a time): "
        + ", ".join(f"{k} p50 {v['p50_s']:.3f} s" for k, v in base.items()) + ".",
        f"Server overhead at 1 client, 10 s uploads: {100 * summary['overhead_10s']:.1f}% of latency; "
        f"throughput with 8 clients: {summary['speedup_8_over_1_10s']:.2f}x that with 1.",
        f"Server memory (all processes): {summary['server_rss_mb_start']} MiB at start, "
        f"{summary['server_rss_mb_end']} MiB at the end.",
        "",
    ]
    if "claims" in summary:
        lines += claims_latency.markdown(summary["claims"])
    if "soak" in summary:
        soaked = summary["soak"]
        lines += [
            f"Soak, {soaked['seconds']:g} s of 4 screening clients and 1 registering client: "
            f"{soaked['screened']} screened, {soaked['registered']} registered, {soaked['errors']} "
            f"errors, {len(soaked['not_found_afterwards'])} registered works not found afterwards; "
            f"server memory {soaked['rss_mb_first']} MiB first, {soaked['rss_mb_max']} MiB max, "
            f"{soaked['rss_mb_last']} MiB last.",
            "",
        ]
    return "\n".join(lines)


def run_server_bench_section(out: Path, *, quick: bool = False, seed: int = 0,
                             tiny: bool = False) -> tuple[str, dict]:
    summary = run_server_bench(out / "server", quick=quick, seed=seed, tiny=tiny,
                               references=3 if tiny else None)
    return markdown(summary), summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nanhu.benchmarks.server_bench", description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("bench-out"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--references", type=int, default=None)
    parser.add_argument("--soak-s", type=float, default=None,
                        help="mixed-load soak length (default 60 s quick, 600 s full; 0: none)")
    parser.add_argument("--claims-only", action="store_true",
                        help="only screening latency with and without claims recorded")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    summary = run_server_bench(args.out / "server", quick=args.quick, seed=args.seed,
                               workers=args.workers, references=args.references, soak_s=args.soak_s,
                               claims_only=args.claims_only)
    print(markdown(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
