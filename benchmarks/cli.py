"""``nanhu bench [audio|video|server|ingest|all] [--quick] [--out DIR]``.

Each run builds or reuses the cached real-media corpus, measures, and contributes a section,
plots and raw results to ``DIR/report.md`` / ``DIR/results.json``.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

log = logging.getLogger(__name__)

KINDS = ("audio", "video", "server", "ingest")


def add_commands(subparsers) -> None:
    p = subparsers.add_parser("bench", help="run benchmarks and write a report")
    p.add_argument("kind", nargs="?", default="all", choices=(*KINDS, "all"))
    p.add_argument("--quick", action="store_true", help="a few minutes on 2 cores")
    p.add_argument("--out", type=Path, default=Path("bench-out"), help="report directory")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--queries", type=int, default=None,
                   help="audio: queries per condition and length (default 200; --quick 25)")
    p.add_argument("--scale-hours", type=float, default=None,
                   help="audio: hours of synthetic postings in the scale run (default 10000)")
    p.set_defaults(func=cmd_bench)


def _audio(out: Path, quick: bool, seed: int, args: argparse.Namespace) -> tuple[str, dict]:
    from benchmarks import report
    from benchmarks.audio_bench import run_audio_bench
    from benchmarks.scale_audio import run_scale

    summary = run_audio_bench(out, quick=quick, seed=seed, queries_per_condition=args.queries)
    hours = args.scale_hours or (200 if quick else 10_000)
    summary["scale"] = run_scale(hours=hours, seed=seed)
    plots = report.audio_plots(summary, out)
    text = report.audio_markdown(summary) + "".join(f"\n![{p}]({p})\n" for p in plots)
    return text, summary


def _video(out: Path, quick: bool, seed: int, args: argparse.Namespace) -> tuple[str, dict]:
    from benchmarks.video_bench import run_video_bench_section

    return run_video_bench_section(out, quick=quick, seed=seed)


def _server(out: Path, quick: bool, seed: int, args: argparse.Namespace) -> tuple[str, dict]:
    from benchmarks.server_bench import run_server_bench_section

    return run_server_bench_section(out, quick=quick, seed=seed)


def _ingest(out: Path, quick: bool, seed: int, args: argparse.Namespace) -> tuple[str, dict]:
    from benchmarks.ingest_bench import run_ingest_bench_section

    return run_ingest_bench_section(out, quick=quick, seed=seed)


RUNS = {"audio": _audio, "video": _video, "server": _server, "ingest": _ingest}


def cmd_bench(args: argparse.Namespace) -> int:
    from benchmarks import report

    logging.getLogger("benchmarks").setLevel(logging.INFO)
    kinds = KINDS if args.kind == "all" else (args.kind,)
    size = "quick (a few minutes)" if args.quick else "full (about an hour or more on 2 cores)"
    print(f"nanhu bench {' '.join(kinds)}: {size}; report in {args.out}/report.md",
          file=sys.stderr)
    sections: dict[str, str] = {}
    raw: dict = {}
    status = 0
    for kind in kinds:
        started = time.perf_counter()
        print(f"nanhu bench: {kind} ...", file=sys.stderr, flush=True)
        try:
            text, results = RUNS[kind](args.out, args.quick, args.seed, args)
        except ModuleNotFoundError as exc:
            if not (exc.name or "").startswith("benchmarks."):
                raise
            sections[kind] = f"## {kind.capitalize()}\n\nNot available in this build ({exc}).\n"
            status = 1
            continue
        sections[kind] = text
        raw[kind] = results
        print(f"nanhu bench: {kind} done in {time.perf_counter() - started:.0f} s",
              file=sys.stderr, flush=True)
    if "audio" in raw:
        from benchmarks.corpus_audio import load_audio_corpus

        corpus = load_audio_corpus()
        raw["corpus_audio"] = {"packages": corpus["packages"],
                               "files": [{k: r[k] for k in ("id", "package", "member", "sha256")}
                                         for r in corpus["references"] + corpus["negatives"]]}
    command = "nanhu bench " + " ".join(sys.argv[2:]) if len(sys.argv) > 2 else "nanhu bench"
    path = report.write_report(args.out, sections, raw, command)
    print(f"nanhu bench: wrote {path}", file=sys.stderr)
    return status
