"""Audio fingerprinting speed: media seconds fingerprinted per second of process CPU, per codec.

    python -m nanhu.benchmarks.fingerprint_speed FILES... [--repeats 3] [--video] [--json OUT]

Each file goes through :func:`engine.fingerprint.fingerprint_media` as a reference would (one
warp, decode included, video off so that audio-only and audio+video files measure the same
thing; ``--video`` fingerprints the video too, in the same demux pass, as registering does).
Time is the process's CPU time (``time.process_time``: user + system of every thread), so the
figure is "x real time per core" and stays meaningful on a machine shared with other jobs;
each file's time is the median of ``repeats`` runs, after one warm-up run of the first file (it
pays for imports and FFmpeg's codec set-up once).

Result::

    {"files": [{"path", "codec", "media_s", "cpu_s", "x_realtime"}],
     "codecs": {codec: {"files", "media_s", "cpu_s", "x_realtime"}},
     "overall": {"files", "media_s", "cpu_s", "x_realtime"}}

where a group's ``x_realtime`` is its summed media seconds over its summed CPU seconds. Not a
timed test.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import av

from nanhu.engine.fingerprint import fingerprint_media


def _cpu_seconds(path: Path, repeats: int, video: bool) -> tuple[float, float]:
    """(median process CPU seconds of ``repeats`` fingerprints of ``path``, media seconds)."""
    times = []
    duration = 0.0
    for _ in range(repeats):
        start = time.process_time()
        fp = fingerprint_media(path, video=video)
        times.append(time.process_time() - start)
        duration = fp.duration_s
    return statistics.median(times), duration


def _codec(path: Path) -> str:
    """The first audio stream's codec as FFmpeg names the format ("mp3", not "mp3float")."""
    with av.open(str(path)) as container:
        if not container.streams.audio or container.streams.audio[0].codec_context is None:
            return "?"
        return container.streams.audio[0].codec_context.codec.canonical_name


def _group(rows: Sequence[dict]) -> dict:
    media_s = sum(r["media_s"] for r in rows)
    cpu_s = sum(r["cpu_s"] for r in rows)
    return {"files": len(rows), "media_s": round(media_s, 3), "cpu_s": round(cpu_s, 4),
            "x_realtime": round(media_s / cpu_s, 1) if cpu_s > 0 else None}


def run_fingerprint_speed(files: Sequence[str | Path], *, repeats: int = 3,
                          video: bool = False) -> dict:
    """Per-file, per-codec and overall x-real-time per core of audio fingerprinting (of audio
    and video with ``video``)."""
    paths = [Path(f) for f in files]
    if not paths:
        raise ValueError("no files to measure")
    fingerprint_media(paths[0], video=video)  # warm-up: imports, codec tables, FFT plans
    rows = []
    for path in paths:
        codec = _codec(path)
        cpu_s, media_s = _cpu_seconds(path, repeats, video)
        rows.append({"path": str(path), "codec": codec, "media_s": round(media_s, 3),
                     "cpu_s": round(cpu_s, 4),
                     "x_realtime": round(media_s / cpu_s, 1) if cpu_s > 0 else None})
    codecs = sorted({r["codec"] for r in rows})
    return {
        "files": rows,
        "codecs": {c: _group([r for r in rows if r["codec"] == c]) for c in codecs},
        "overall": _group(rows),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nanhu.benchmarks.fingerprint_speed",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="+", help="audio (or audio+video) files")
    parser.add_argument("--repeats", type=int, default=3, help="runs per file (median kept)")
    parser.add_argument("--video", action="store_true",
                        help="fingerprint the video too (one demux pass, as registering does)")
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args(argv)
    result = run_fingerprint_speed(args.files, repeats=args.repeats, video=args.video)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    for codec, group in {**result["codecs"], "all": result["overall"]}.items():
        sys.stdout.write(f"{codec:>10}  {group['files']:3d} files  {group['media_s']:8.1f} s  "
                         f"{group['cpu_s']:7.3f} cpu-s  {group['x_realtime']:7.1f}x real time\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
