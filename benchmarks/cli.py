"""``nanhu bench [audio|video|server|ingest|scale|all] [--quick | --tiny] [--out DIR]``.

Each run builds or reuses the cached real-media corpus, measures, and contributes a section,
plots and raw results to ``DIR/report.md`` / ``DIR/results.json``. ``--tiny`` runs every step
on a few generated files instead (no download, about a minute or two): a smoke test of the
tooling whose numbers mean nothing.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

log = logging.getLogger(__name__)

KINDS = ("audio", "video", "server", "ingest", "scale")

#: what each size runs, as told up front
PLANS = {
    "tiny": "tiny (generated media, a minute or two; a smoke test, not a measurement)",
    "quick": "quick (real corpus, cut-down query counts; a few minutes per section once the "
             "corpus is cached)",
    "full": "full (real corpus, 200 audio queries per condition, 300 video negatives, "
            "10,000-hour and 1,000,000-keyframe synthetic catalogs: several hours on 2 cores)",
}
#: the reliability bench generates its own media whatever the size
RELIABILITY_PLANS = {
    "tiny": "tiny (generated media, each class a few times: a smoke test, a minute or two)",
    "quick": "quick (generated media, fewer trials, a 20-minute self-match: minutes)",
    "full": "full (generated media, hundreds of mutations, a 2-hour self-match: tens of minutes)",
}


def add_commands(subparsers) -> None:
    p = subparsers.add_parser("bench", help="run benchmarks and write a report")
    p.add_argument("kind", nargs="?", default="all", choices=(*KINDS, "reliability", "cluster", "all"))
    size = p.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="a few minutes per section on 2 cores")
    size.add_argument("--tiny", action="store_true",
                      help="generated media, every step once: a smoke test of the tooling")
    p.add_argument("--out", type=Path, default=Path("bench-out"), help="report directory")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--queries", type=int, default=None,
                   help="audio: queries per condition and length (default 200; --quick 25)")
    p.add_argument("--audio-hours", "--scale-hours", dest="scale_hours", type=float, nargs="+",
                   default=None, help="scale: hours of decoys beside the real catalog "
                                      "(default 100 1000 10000; --quick 100 1000)")
    p.add_argument("--video-hours", type=float, nargs="+", default=None,
                   help="scale: hours of synthetic keyframes beside the real video references "
                        "(rows under \"video\"; alone, it runs the video side only)")
    p.add_argument("--video-exact-hours", type=float, default=None,
                   help="scale: run the video exact-search pass (recall against exact search) "
                        "for sizes up to this many hours (default 1000: past it the pass "
                        "costs most of an hour at 10,000 h)")
    p.set_defaults(func=cmd_bench)


def _size(args: argparse.Namespace) -> str:
    return "tiny" if args.tiny else "quick" if args.quick else "full"


def _audio(out: Path, size: str, seed: int, args: argparse.Namespace) -> tuple[str, dict]:
    from nanhu.benchmarks import report
    from nanhu.benchmarks.audio_bench import run_audio_bench
    from nanhu.benchmarks.peers.audfprint import available as peer_available
    if size == "tiny":
        summary = run_audio_bench(out, quick=True, seed=seed, queries_per_condition=1,
                                  negatives=3, conditions=["clean", "pink-snr5", "speed-1.1"])
    else:
        summary = run_audio_bench(out, quick=size == "quick", seed=seed,
                                  queries_per_condition=args.queries, peer=peer_available())
    plots = report.audio_plots(summary, out)
    text = report.audio_markdown(summary) + "".join(f"\n![{p}]({p})\n" for p in plots)
    return text, summary


def _scale(out: Path, size: str, seed: int, args: argparse.Namespace) -> tuple[str, dict]:
    """Audio at catalog scale (``benchmarks.scale_audio``): latency, recall, false matches,
    memory, bytes per hour, build and add-one-hour times, and the null calibration; with
    ``--video-hours`` the video side too (``benchmarks.scale_video``), alone when no
    ``--audio-hours`` is given."""
    text, results = "", {}
    if args.scale_hours or not getattr(args, "video_hours", None):
        text, results = _scale_audio(out, size, seed, args)
    if getattr(args, "video_hours", None):
        video_text, rows = _scale_video(out, seed, args.video_hours,
                                        getattr(args, "video_exact_hours", None))
        text, results = text + video_text, {**results, "video": rows}
    return text, results


def _scale_video(out: Path, seed: int, hours: list[float],
                 exact_hours: float | None = None) -> tuple[str, list]:
    from nanhu.benchmarks.scale_video import EXACT_MAX_HOURS, run_video_scale

    rows = run_video_scale(hours, seed=seed, out=out,
                           exact_max_hours=EXACT_MAX_HOURS if exact_hours is None else exact_hours)
    lines = ["## Video at catalog scale", "",
             "| hours | index | p50 ms | p99 ms | top-1 | false / negatives | recall@32 vs exact "
             "| RSS MiB | bytes/h | build s | add 1 h s |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['hours']:,.1f} | {r['index']} | {r['match_ms_p50']:.1f} | "
            f"{r['match_ms_p99']:.1f} | {r['top1_recall']:.1%} | {r['false_matches']} / "
            f"{r['negatives']} | {_recall_cell(r)} | "
            f"{r['rss_mb']:.0f} | {r['index_bytes_per_hour'] / 1e6:.2f} MB | "
            f"{r['build_s'] or 0:.0f} | {r.get('add_one_hour_s') or 0:.2f} |")
    return "\n".join(lines) + "\n", rows


def _recall_cell(row: dict) -> str:
    recall = row.get("recall_at_32_vs_exact")
    if recall is not None:
        return f"{recall:.1%}"
    return "not measured" if row.get("exact_pass") else "exact"


def _scale_audio(out: Path, size: str, seed: int, args: argparse.Namespace) -> tuple[str, dict]:
    from nanhu.benchmarks import scale_plots
    from nanhu.benchmarks.scale_audio import run_scale_series

    hours = args.scale_hours or {"tiny": [2.0], "quick": [100.0, 1000.0],
                                 "full": [100.0, 1000.0, 10_000.0]}[size]
    counts = {"tiny": (8, 8, 8), "quick": (100, 1000, 2000), "full": (200, 1000, 5000)}[size]
    results = run_scale_series(hours, seed=seed, positives=counts[0], negatives=counts[1],
                               null_queries=counts[2], out=out)
    from nanhu.engine.audio.align import AudioMatchParams

    plots = scale_plots.calibration_plot(results["null_log10_chance"], out,
                                         calibrate=AudioMatchParams().calibrated)
    lines = ["## Audio at catalog scale", "",
             "| hours | p50 ms | p99 ms | p50 ms positives / negatives | CPU p50 ms | top-1 | "
             "false / negatives | RSS MiB (anon) | bytes/h | build s | add 1 h s |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results["audio"]:
        def ms(name: str, r: dict = r) -> str:
            return "-" if r.get(name) is None else f"{r[name]:.1f}"

        split = (f"{ms('match_ms_p50_positives')} / {ms('match_ms_p50_negatives')} | "
                 f"{ms('match_cpu_ms_p50')}")
        lines.append(
            f"| {r['hours']:,.0f} | {r['match_ms_p50']:.1f} | {r['match_ms_p99']:.1f} | {split} | "
            f"{r['top1_recall']:.1%} | {r['false_matches']} / {r['negatives']} | "
            f"{r['rss_mb']:.0f} ({r['rss_anon_mb']:.0f}) | {r['index_bytes_per_hour'] / 2**20:.2f} MiB | "
            f"{r['build_s'] or 0:.0f} | {r.get('add_one_hour_s') or 0:.2f} |")
    text = "\n".join(lines) + "\n" + "".join(f"\n![{p}]({p})\n" for p in plots)
    return text, results


def _video(out: Path, size: str, seed: int, args: argparse.Namespace) -> tuple[str, dict]:
    from nanhu.benchmarks.runs.video import run_video_bench_section

    return run_video_bench_section(out, quick=size == "quick", seed=seed, tiny=size == "tiny")


def _server(out: Path, size: str, seed: int, args: argparse.Namespace) -> tuple[str, dict]:
    from nanhu.benchmarks.server_bench import run_server_bench_section

    return run_server_bench_section(out, quick=size == "quick", seed=seed, tiny=size == "tiny")


def _ingest(out: Path, size: str, seed: int, args: argparse.Namespace) -> tuple[str, dict]:
    from nanhu.benchmarks.ingest_bench import run_ingest_bench_section

    return run_ingest_bench_section(out, quick=size == "quick", seed=seed, tiny=size == "tiny")


def _reliability(out: Path, size: str, seed: int, args: argparse.Namespace) -> tuple[str, dict]:
    """Hostile inputs with counts (``benchmarks.reliability``); not part of ``all``."""
    from nanhu.benchmarks.reliability import run_reliability_section

    return run_reliability_section(out, quick=size == "quick", seed=seed, tiny=size == "tiny")


RUNS = {"audio": _audio, "video": _video, "server": _server, "ingest": _ingest,
        "scale": _scale, "reliability": _reliability}


def _corpus_manifests(raw: dict) -> dict:
    """The corpora the run used (package, version, file, checksum), for the report."""
    out = {}
    if "audio" in raw or "server" in raw:
        from nanhu.benchmarks.corpus.audio import load_audio_corpus

        corpus = load_audio_corpus()
        out["corpus_audio"] = {
            "packages": corpus["packages"],
            "files": [{k: r[k] for k in ("id", "package", "member", "sha256")}
                      for r in corpus["references"] + corpus["negatives"]]}
    if "video" in raw:
        from nanhu.benchmarks.corpus.video import load_video_corpus

        corpus = load_video_corpus()
        out["corpus_video"] = {
            "packages": corpus.get("packages", []),
            "files": [{k: r.get(k) for k in ("id", "width", "height", "fps", "duration_s",
                                             "sources")}
                      for r in corpus["references"] + corpus["negatives"]]}
    return out


def _corpus_markdown(raw: dict) -> str:
    """Which packages the corpora came from (every file and checksum is in results.json)."""
    lines = ["## Corpus", "", "| corpus | package | version | sha256 (first 16) |", "|---|---|---|---|"]
    for key in ("corpus_audio", "corpus_video"):
        for package in raw.get(key, {}).get("packages", []):
            lines.append(f"| {key.split('_')[1]} | {package.get('name', package.get('package'))} | "
                         f"{package.get('version', '')} | {str(package.get('sha256', ''))[:16]} |")
        if key in raw:
            lines.append(f"| {key.split('_')[1]} | {len(raw[key]['files'])} files | | |")
    return "\n".join(lines) + "\n"


def cmd_bench(args: argparse.Namespace) -> int:
    from nanhu.benchmarks import report, scale_plots

    logging.getLogger("nanhu.benchmarks").setLevel(logging.INFO)
    size = _size(args)
    if args.kind == "cluster":  # not part of "all": it starts a Ray of its own
        from nanhu.benchmarks.cluster_bench import run as run_cluster

        result = run_cluster(args.out, quick=size != "full")
        print(json.dumps({k: result[k] for k in ("identical_answers", "queries",
                                                 "fanout_overhead_ms")}))
        return 0 if result["identical_answers"] else 1
    if size == "tiny" and args.kind != "reliability":  # reliability generates its own media
        from nanhu.benchmarks.corpus.tiny import build_tiny_corpora

        cache = (args.out / "tiny-cache").resolve()
        os.environ["NANHU_CACHE"] = str(cache)
        build_tiny_corpora(cache, seed=args.seed)
    kinds = KINDS if args.kind == "all" else (args.kind,)
    plan = (RELIABILITY_PLANS if args.kind == "reliability" else PLANS)[size]
    log.info("bench %s: %s; report in %s/report.md", " ".join(kinds), plan, args.out)
    sections: dict[str, str] = {}
    raw: dict = {}
    status = 0
    for kind in kinds:
        started = time.perf_counter()
        log.info("bench: %s ...", kind)
        try:
            text, results = RUNS[kind](args.out, size, args.seed, args)
        except ModuleNotFoundError as exc:
            if not (exc.name or "").startswith("nanhu.benchmarks."):
                raise
            sections[kind] = f"## {kind.capitalize()}\n\nNot available in this build ({exc}).\n"
            status = 1
            continue
        except Exception as exc:  # one section failing must not lose the others' results
            log.exception("nanhu bench: %s failed", kind)
            sections[kind] = (f"## {kind.capitalize()}\n\nThis section failed: "
                              f"{type(exc).__name__}: {exc}\n")
            status = 1
            continue
        sections[kind] = text
        raw[kind] = results
        log.info("bench: %s done in %.0f s", kind, time.perf_counter() - started)
    if raw.keys() - {"reliability"}:
        try:
            table = scale_plots.headline_table(raw)
        except (KeyError, TypeError, ValueError) as exc:  # a partial run: keep the sections
            log.exception("nanhu bench: no summary table")
            table = f"(no summary: {type(exc).__name__}: {exc})\n"
        table = report.banner(size) + table  # the table travels alone (README): so does the warning
        (args.out / "summary.md").write_text(table)
        sections = {"summary": "## Summary\n\n" + table, **sections}
    if {"audio", "video"} & raw.keys():
        plots = (scale_plots.latency_vs_size_plot(raw, args.out)
                 + scale_plots.index_size_plot(raw, args.out))
        sections["size"] = scale_plots.summary_markdown(raw) + "".join(
            f"\n![{p}]({p})\n" for p in plots)
    raw.update(_corpus_manifests(raw))
    sections["corpus"] = _corpus_markdown(raw)
    command = "nanhu bench " + " ".join(sys.argv[2:]) if len(sys.argv) > 2 else "nanhu bench"
    path = report.write_report(args.out, sections, raw, command, size=size)
    log.info("bench: wrote %s", path)
    return status
