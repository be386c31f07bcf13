"""Ingest throughput: hours of media per hour of wall time, per core; memory; per-file overhead.

    python -m nanhu.benchmarks.ingest_bench                    # generated corpus, 1 and 2 workers
    python -m nanhu.benchmarks.ingest_bench --corpus DIR --ray # a real corpus folder, and Ray too
    python -m nanhu.benchmarks.ingest_bench --short 10000      # the issue's 10,000-clip manifest

Each configuration runs ``nanhu ingest --json`` in a fresh process on a fresh catalog, while a
sampler reads the resident memory of the ingest and all its workers from ``/proc``. Reported per
run: wall time, worker start-up time, media hours per wall hour (overall and per worker, with
and without start-up), peak memory, catalog size. On a shared machine wall-time scaling says
more about the neighbours than about Nanhu, so each run also reports the CPU share its workers
got, the pipeline's worker utilisation, and the throughput projected for idle cores.

The short-clip run gives the per-file overhead beyond fingerprinting, with one worker:
``(wall - start-up) / files - mean fingerprint time`` (the writer runs beside the worker, so
this is what each file costs the pipeline on top of its fingerprint), and the writer's own CPU
per file.

Results go to ``OUT/ingest.json`` (default ``bench-out/ingest``). Not a timed test.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

from nanhu.benchmarks.synth import music_like, write_audio

log = logging.getLogger(__name__)

RATE = 22050


def generate_corpus(folder: Path, *, files: int, seconds: float, seed0: int,
                    suffixes: tuple[str, ...]) -> Path:
    """Distinct music-like clips, cycling through ``suffixes`` (codecs); reused when present."""
    folder.mkdir(parents=True, exist_ok=True)
    for number in range(files):
        path = folder / f"clip{number:05d}{suffixes[number % len(suffixes)]}"
        if not path.exists():
            tmp = path.with_name("tmp-" + path.name)
            write_audio(tmp, music_like(seconds, seed=seed0 + number, sample_rate=RATE), RATE)
            tmp.rename(path)
    return folder


def _tree_rss(root: int) -> tuple[int, int]:
    """(sum of RSS over ``root`` and its descendants, RSS of ``root``), bytes, from /proc."""
    parents: dict[int, int] = {}
    rss: dict[int, int] = {}
    page = os.sysconf("SC_PAGE_SIZE")
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
            statm = Path(entry.path, "statm").read_text().split()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        parents[int(entry.name)] = int(fields[1])
        rss[int(entry.name)] = int(statm[1]) * page
    tree, frontier = {root}, [root]
    while frontier:
        pid = frontier.pop()
        children = [p for p, parent in parents.items() if parent == pid and p not in tree]
        tree.update(children)
        frontier.extend(children)
    return sum(rss.get(p, 0) for p in tree), rss.get(root, 0)


def run_ingest(source: Path, workdir: Path, *, workers: int, ray: str | None = None,
               batch: int = 200) -> dict:
    """One ``nanhu ingest`` in a fresh process on a fresh catalog; its summary plus measures."""
    catalog = workdir / "catalog"
    shutil.rmtree(catalog, ignore_errors=True)
    report = workdir / "report.jsonl"
    command = [sys.executable, "-m", "nanhu", "ingest", "--catalog", str(catalog), "--json",
               "--workers", str(workers), "--batch", str(batch), "--report", str(report),
               "--progress-interval", "3600", str(source)]
    if ray:
        command[4:4] = ["--ray", ray]
    started = time.monotonic()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = {"tree": 0, "writer": 0}
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.2):
            tree, writer = _tree_rss(proc.pid)
            peak["tree"] = max(peak["tree"], tree)
            peak["writer"] = max(peak["writer"], writer)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    done.set()
    sampler.join()
    if proc.returncode not in (0, 10):
        raise RuntimeError(f"ingest failed ({proc.returncode}):\n{err[-3000:]}")
    summary = json.loads(out.strip().splitlines()[-1])
    rows = [json.loads(line) for line in report.read_text().splitlines()]
    fingerprint_s = sum(r["seconds"] or 0.0 for r in rows if r["status"] == "registered")
    fingerprint_cpu_s = sum(r["cpu_s"] or 0.0 for r in rows if r["status"] == "registered")
    busy_s = summary["wall_s"] - summary["startup_s"]
    media_h = summary["media_hours"]
    size = sum(f.stat().st_size for f in catalog.rglob("*") if f.is_file()
               and f.name != "ingest-journal.jsonl")
    return {
        **summary, "process_wall_s": round(time.monotonic() - started, 3),
        "fingerprint_s": round(fingerprint_s, 3),
        "media_h_per_h": round(media_h * 3600 / summary["wall_s"], 1),
        "media_h_per_h_per_worker": round(media_h * 3600 / summary["wall_s"] / summary["workers"], 1),
        "media_h_per_h_after_startup": round(media_h * 3600 / busy_s, 1),
        "media_h_per_h_per_worker_after_startup": round(
            media_h * 3600 / busy_s / summary["workers"], 1),
        # share of the workers' time spent fingerprinting: what the pipeline (writer, queue,
        # start-up excluded) leaves them idle shows as less than 1; CPU contention does not
        "worker_utilization": round(fingerprint_s / (summary["workers"] * busy_s), 3),
        # CPU the workers got while fingerprinting, over their wall time: < 1 when other
        # processes compete for the cores, which makes wall-time scaling meaningless
        "fingerprint_cpu_s": round(fingerprint_cpu_s, 3),
        "worker_cpu_share": round(fingerprint_cpu_s / fingerprint_s, 3),
        "media_h_per_cpu_h": round(media_h * 3600 / fingerprint_cpu_s, 1),
        # what the run would reach with a whole core per worker: CPU-time throughput, times
        # the workers, times the share of time the pipeline kept them fed
        "projected_media_h_per_h_idle_cores": round(
            media_h * 3600 / fingerprint_cpu_s * summary["workers"]
            * fingerprint_s / (summary["workers"] * busy_s), 1),
        "peak_rss_mb_all_processes": round(peak["tree"] / 2**20, 1),
        "peak_rss_mb_writer": round(peak["writer"] / 2**20, 1),
        "catalog_bytes": size,
    }


def run_ingest_bench(out: Path, *, cache: Path, corpus: Path | None = None, long: int = 16,
                     long_seconds: float = 120.0, short: int = 2000, short_seconds: float = 2.0,
                     workers: tuple[int, ...] = (1, 2), ray: bool = False) -> dict:
    """Every configuration in turn; returns (and writes ``out/ingest.json``) the results."""
    out.mkdir(parents=True, exist_ok=True)
    corpus = corpus or generate_corpus(
        cache / f"long-{long}x{long_seconds:g}s", files=long,
        seconds=long_seconds, seed0=10_000, suffixes=(".mp3", ".flac", ".ogg", ".m4a"))
    results: dict = {"corpus": str(corpus), "cores": len(os.sched_getaffinity(0)), "runs": []}
    configs = [(w, None) for w in workers]
    if ray:
        configs.append((max(workers), "local"))
    for n_workers, executor in configs:
        run = run_ingest(corpus, out / "work", workers=n_workers, ray=executor)
        run["what"] = f"corpus, {n_workers} {'ray' if executor else 'local'} worker(s)"
        results["runs"].append(run)
        log.info("ingest bench: %s", json.dumps(run))
    if short:
        clips = generate_corpus(cache / f"short-{short}x{short_seconds:g}s",
                                files=short, seconds=short_seconds, seed0=50_000,
                                suffixes=(".wav",))
        run = run_ingest(clips, out / "work", workers=1)
        files = run["registered"]
        run["what"] = f"{files} short clips, 1 local worker"
        run["overhead_ms_per_file"] = round(
            1000 * ((run["wall_s"] - run["startup_s"]) - run["fingerprint_s"]) / files, 2)
        run["fingerprint_ms_per_file"] = round(1000 * run["fingerprint_s"] / files, 2)
        run["writer_cpu_ms_per_file"] = round(1000 * run["writer_cpu_s"] / files, 2)
        results["runs"].append(run)
        log.info("ingest bench: %s", json.dumps(run))
    local = {r["workers"]: r for r in results["runs"] if r["executor"] == "local"
             and r["what"].startswith("corpus")}
    if 1 in local and 2 in local:
        results["speedup_2_vs_1"] = round(local[2]["media_h_per_h"] / local[1]["media_h_per_h"], 2)
        results["speedup_2_vs_1_after_startup"] = round(
            local[2]["media_h_per_h_after_startup"] / local[1]["media_h_per_h_after_startup"], 2)
        results["projected_speedup_2_vs_1_idle_cores"] = round(
            local[2]["projected_media_h_per_h_idle_cores"]
            / local[1]["projected_media_h_per_h_idle_cores"], 2)
    ray_runs = [r for r in results["runs"] if r["executor"] == "ray"]
    if ray_runs and ray_runs[0]["workers"] in local:
        same = local[ray_runs[0]["workers"]]
        results["local_vs_ray_wall"] = round(ray_runs[0]["wall_s"] / same["wall_s"], 2)
        results["local_vs_ray_after_startup"] = round(
            same["media_h_per_h_after_startup"] / ray_runs[0]["media_h_per_h_after_startup"], 2)
        results["local_vs_ray_projected_idle_cores"] = round(
            same["projected_media_h_per_h_idle_cores"]
            / ray_runs[0]["projected_media_h_per_h_idle_cores"], 2)
    (out / "ingest.json").write_text(json.dumps(results, indent=1))
    shutil.rmtree(out / "work", ignore_errors=True)
    return results


def markdown(results: dict) -> str:
    """The ingest section of the benchmark report."""
    lines = ["## Ingest", "", "| run | files | media h per wall h | peak RSS (MB) | notes |",
             "|---|---|---|---|---|"]
    for run in results["runs"]:
        notes = ""
        if "overhead_ms_per_file" in run:
            notes = (f"overhead {run['overhead_ms_per_file']} ms/file beyond fingerprinting; "
                     f"writer {run['writer_cpu_ms_per_file']} ms CPU/file")
        lines.append(f"| {run['what']} | {run.get('registered', '–')} | "
                     f"{run.get('media_h_per_h', '–')} | "
                     f"{run.get('peak_rss_mb_all_processes', '–')} | {notes} |")
    for key in ("speedup_2_vs_1", "speedup_2_vs_1_after_startup",
                "projected_speedup_2_vs_1_idle_cores", "local_vs_ray_wall"):
        if key in results:
            lines.append(f"\n{key.replace('_', ' ')}: {results[key]}")
    return "\n".join(lines) + "\n"


def run_ingest_bench_section(out: Path, *, quick: bool = False, seed: int = 0,
                             tiny: bool = False) -> tuple[str, dict]:
    """``nanhu bench ingest``: generated audio, 1 and 2 workers, and the short-clip manifest
    (``tiny``: 2 files of 20 s and 20 clips, a smoke run)."""
    del seed  # generated media is seeded per file (seed0 below) so runs repeat exactly
    results = run_ingest_bench(out / "ingest", cache=out / "ingest-media",
                               long=2 if tiny else 6 if quick else 16,
                               long_seconds=20.0 if tiny else 120.0,
                               short=20 if tiny else 300 if quick else 10_000)
    return markdown(results), results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("bench-out/ingest"))
    parser.add_argument("--cache", type=Path, default=Path("bench-out/ingest-media"),
                        help="where generated media is kept between runs")
    parser.add_argument("--corpus", type=Path, default=None,
                        help="a folder of real media (default: generated clips)")
    parser.add_argument("--long", type=int, default=16, help="generated corpus: files")
    parser.add_argument("--long-seconds", type=float, default=120.0)
    parser.add_argument("--short", type=int, default=2000, help="short-clip manifest: files")
    # 2 s: the shortest reference a catalog accepts (engine.validate.MIN_REFERENCE_S)
    parser.add_argument("--short-seconds", type=float, default=2.0)
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    parser.add_argument("--ray", action="store_true", help="also run with --ray local")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    results = run_ingest_bench(
        args.out, cache=args.cache, corpus=args.corpus, long=args.long,
        long_seconds=args.long_seconds, short=args.short, short_seconds=args.short_seconds,
        workers=tuple(int(w) for w in args.workers.split(",")), ray=args.ray)
    print(json.dumps({k: v for k, v in results.items() if k != "runs"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
