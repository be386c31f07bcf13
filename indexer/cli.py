"""The indexer's subcommand: ``nanhu ingest``.

Exit codes: 0 when every file is registered or skipped (already there, duplicate content);
:data:`~indexer.ingest.EXIT_PARTIAL` (10) when some files failed and the rest went in; 2 when
the source is invalid and nothing was done; 130 when interrupted (what was done is committed).
Other errors map through :data:`engine.cli.EXIT_CODES`.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from nanhu.engine.errors import InvalidArgument

_DESCRIPTION = """\
Register many media files at once. SOURCE is a folder (walked recursively; a file's id is its
path, its title its embedded title tag or else its name, its artist and album tags metadata) or a manifest:
a .csv or .jsonl file with a 'path' column and optional 'id', 'title' and 'owner' columns,
and 'policy' (block, monetize, track or review) with 'policy_modality', 'policy_min_match_s',
'policy_min_upload_share', 'policy_min_reference_share', 'policy_exclude' (0-12.5;30-40) and
'policy_disabled' (docs/policies.md); other columns are kept as metadata. The whole source is
validated first. Fingerprinting runs in parallel; one writer commits in batches; re-running
the same command resumes after a crash or Ctrl-C and skips what is already registered (it
does not change their policies: use `nanhu policy set`). Exit code 10 means some files
failed (see the report)."""


def add_commands(subparsers) -> None:
    p = subparsers.add_parser(
        "ingest", help="register a folder or a manifest of media files (parallel, resumable)",
        description=_DESCRIPTION,
    )
    p.add_argument("--catalog", type=Path, default=None,
                   help="catalog directory (default: $NANHU_CATALOG, else ./var/catalog)")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="fingerprinting processes (default: every core; with --ray: the "
                        "cluster's CPUs)")
    p.add_argument("--include", action="append", default=[], metavar="PAT",
                   help="folder: take only files matching this glob (repeatable; default: "
                        "common media suffixes)")
    p.add_argument("--exclude", action="append", default=[], metavar="PAT",
                   help="folder: leave out files matching this glob (repeatable)")
    p.add_argument("--skip-invalid", action="store_true",
                   help="ingest the valid rows and report invalid ones as failed")
    p.add_argument("--report", type=Path, default=Path("ingest-report.jsonl"), metavar="FILE",
                   help="JSON Lines report, one row per file (default: ./ingest-report.jsonl)")
    p.add_argument("--journal", type=Path, default=None, metavar="FILE",
                   help="resume journal (default: CATALOG/ingest-journal.jsonl; with --server, "
                        "next to the report)")
    p.add_argument("--batch", type=int, default=200, metavar="N",
                   help="commit every N registrations (default 200)")
    p.add_argument("--commit-interval", type=float, default=10.0, metavar="S",
                   help="... or every S seconds, whichever comes first (default 10)")
    p.add_argument("--owner", default="", help="owning tenant of rows without an 'owner'")
    p.add_argument("--no-video", action="store_true", help="fingerprint audio tracks only")
    p.add_argument("--ray", default=None, metavar="ADDRESS",
                   help="fingerprint on Ray: 'auto', HOST:PORT, ray://HOST:PORT, or 'local' "
                        "(the files must be readable at the same paths on every Ray node)")
    p.add_argument("--server", default=None, metavar="HOST:PORT",
                   help="register on a Nanhu server over gRPC, fingerprinting here")
    p.add_argument("--cluster", default=None, metavar="ADDRESS",
                   help="with a cluster catalog (--catalog DIR holding cluster.json): write "
                        "through the shard writers on this Ray cluster (`nanhu cluster start`) "
                        "instead of opening the shards here")
    p.add_argument("--key", default=None,
                   help="API key for --server (default: $NANHU_API_KEY, which keeps the key out "
                        "of the process list)")
    p.add_argument("--progress-interval", type=float, default=None, metavar="S",
                   help="seconds between progress lines when stderr is not a terminal (10)")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    p.add_argument("source", type=Path, metavar="SOURCE", help="folder, .csv or .jsonl")
    p.set_defaults(func=cmd_ingest)


def cmd_ingest(args: argparse.Namespace) -> int:
    from nanhu.indexer.ingest import IngestOptions, run_ingest

    if args.server and not args.key:
        args.key = os.environ.get("NANHU_API_KEY") or None
    if args.server and args.catalog:
        raise InvalidArgument("--catalog and --server exclude each other (the server has one)")
    if args.server and args.ray:
        raise InvalidArgument("--ray and --server exclude each other")
    if args.batch < 1:
        raise InvalidArgument("--batch must be at least 1")
    if args.commit_interval <= 0:
        raise InvalidArgument("--commit-interval must be positive")
    options = IngestOptions(
        source=args.source, catalog=args.catalog, workers=args.workers, include=args.include,
        exclude=args.exclude, skip_invalid=args.skip_invalid, report=args.report,
        journal=args.journal, batch=args.batch, commit_interval_s=args.commit_interval,
        owner=args.owner, video=not args.no_video, ray_address=args.ray, server=args.server,
        key=args.key, progress_interval_s=args.progress_interval, cluster=args.cluster,
    )
    result = run_ingest(options)
    summary = result.summary()
    if args.json:
        print(json.dumps(summary), flush=True)
        return result.exit_code
    counts = ", ".join(f"{summary[s]} {s}" for s in
                       ("registered", "skipped-duplicate", "skipped-existing", "failed"))
    if result.nothing_to_do:
        duplicates = summary["skipped-duplicate"]
        print(f"ingest: nothing to do: all {result.files} files are already registered"
              + (f" ({duplicates} as duplicates of other files)" if duplicates else ""))
    else:
        print(f"ingest: {result.files} files: {counts}")
        print(f"ingest: {summary['media_hours']:.4f} h of media fingerprinted in "
              f"{summary['wall_s']:.1f} s with {result.workers} {result.executor} worker(s): "
              f"{summary['media_hours_per_hour']:.0f}x real time, "
              f"{summary['media_hours_per_hour_per_core']:.0f}x per worker")
    if result.interrupted:
        print("ingest: interrupted; run the same command again to resume")
    elif summary["failed"]:
        print(f"ingest: {summary['failed']} file(s) failed; reasons in the report")
    print(f"ingest: report: {result.report}")
    stats = result.stats or {}
    if stats.get("audio_segments", 0) + stats.get("video_segments", 0) > 64:
        print(f"ingest: the catalog has {stats['audio_segments']} audio and "
              f"{stats['video_segments']} video segments; `nanhu compact` merges them")
    return result.exit_code
