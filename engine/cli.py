"""The engine's subcommands: register, query, delete (and, from their own modules, list, stats,
check, repair, compact in :mod:`engine.catalog_cli`; policy, claims, webhook, conflicts, owner).

A stable contract: scripts depend on the flags and on ``query --json`` (one JSON object per
query file, one per line). The catalog is ``--catalog DIR``, else ``$NANHU_CATALOG``, else
``./var/catalog``. Errors go to stderr as ``nanhu: WHAT: REASON``; exit codes come from
:data:`EXIT_CODES`, the one table from exception type to exit code.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from pathlib import Path

from nanhu.engine import errors

#: exit code per exception type (first match in order wins); 0 is success.
EXIT_CODES: list[tuple[type[BaseException], int]] = [
    (errors.InvalidArgument, 2),
    (errors.MediaNotFound, 4),
    (errors.EmptyMediaError, 3),
    (errors.MediaError, 3),
    (errors.NotFound, 4),
    (errors.AlreadyExists, 5),
    (errors.CatalogLocked, 6),
    (errors.CatalogCorrupt, 7),
    (errors.VersionMismatch, 7),
    (errors.LimitExceeded, 8),
    (errors.PermissionDenied, 9),
    (errors.Unauthenticated, 9),
    (errors.InvalidState, 11),
    (errors.NanhuError, 1),
]


def exit_code_for(exc: BaseException) -> int:
    for kind, code in EXIT_CODES:
        if isinstance(exc, kind):
            return code
    return 1


def default_catalog() -> Path:
    return Path(os.environ.get("NANHU_CATALOG") or "var/catalog")


def catalog_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--catalog", type=Path, default=None,
        help="catalog directory (default: $NANHU_CATALOG, else ./var/catalog)",
    )


def add_commands(subparsers) -> None:
    """Register the engine's subcommands on an argparse subparsers object."""
    from nanhu.engine import catalog_cli

    p = subparsers.add_parser("register", help="register media files as references")
    catalog_arg(p)
    p.add_argument("--id", dest="ref_id", help="reference id (default: the file's stem)")
    p.add_argument("--title", help="title (default: the file's stem)")
    p.add_argument("--owner", default="", help="owning tenant (default: none)")
    p.add_argument("--no-video", action="store_true", help="fingerprint the audio track only")
    p.add_argument("files", nargs="+", type=Path, metavar="FILE")
    p.set_defaults(func=cmd_register)

    p = subparsers.add_parser("query", help="find which references media files copy")
    catalog_arg(p)
    p.add_argument("--json", action="store_true", help="one JSON object per file per line")
    p.add_argument("--min-score", type=float, default=None, help="lowest score reported")
    p.add_argument("--no-video", action="store_true", help="match the audio track only")
    p.add_argument("--record-claims", action="store_true",
                   help="record a claim per work whose policy acts on a match, in the catalog's "
                        "claims.sqlite (a server records them for every screening)")
    p.add_argument("files", nargs="+", type=Path, metavar="FILE")
    p.set_defaults(func=cmd_query)

    p = subparsers.add_parser("delete", help="delete references by id")
    catalog_arg(p)
    p.add_argument("ids", nargs="+", metavar="ID")
    p.set_defaults(func=cmd_delete)

    p = subparsers.add_parser("list", help="list references")
    catalog_arg(p)
    p.add_argument("--json", action="store_true",
                   help="one JSON object per reference (raw values: seconds, epoch times)")
    p.add_argument("--owner", default=None, help="only this tenant's works (default: every owner)")
    p.set_defaults(func=catalog_cli.cmd_list)

    p = subparsers.add_parser("stats", help="catalog statistics")
    catalog_arg(p)
    p.add_argument("--json", action="store_true", help="one JSON object, raw numbers (bytes, hours)")
    p.set_defaults(func=catalog_cli.cmd_stats)

    p = subparsers.add_parser("check", help="verify a catalog (read-only, safe to interrupt)")
    catalog_arg(p)
    p.set_defaults(func=catalog_cli.cmd_check)

    p = subparsers.add_parser("repair", help="drop what `check` finds unreadable, as one commit "
                                             "(safe to interrupt)")
    catalog_arg(p)
    p.add_argument("--dry-run", action="store_true", help="report what would be dropped; change nothing")
    p.set_defaults(func=catalog_cli.cmd_repair)

    p = subparsers.add_parser("compact", help="merge segments and purge deleted references")
    catalog_arg(p)
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.set_defaults(func=catalog_cli.cmd_compact)

    from nanhu.engine import policy_cli, review_cli

    policy_cli.add_commands(subparsers)
    review_cli.add_commands(subparsers)


def _say(message: str) -> None:
    print(f"nanhu: {message}", file=sys.stderr, flush=True)


def cmd_register(args: argparse.Namespace) -> int:
    from nanhu.engine.audio.params import AudioParams
    from nanhu.engine.catalog import Catalog, is_valid_reference_id
    from nanhu.engine.conflicts import BatchScreen, describe
    from nanhu.engine.fingerprint import fingerprint_media

    if args.ref_id is not None and not is_valid_reference_id(args.ref_id):
        _say(f"--id {args.ref_id!r} is not a reference id: use 1-200 letters, digits and "
             "._:@+- starting with a letter or digit")
        return 2
    if args.ref_id and len(args.files) > 1:
        _say("--id names one reference; it cannot be used with several files")
        return 2
    worst = 0
    registered = 0
    directory = args.catalog or default_catalog()
    # The catalog is created only once a file fingerprints: a run of bad files leaves none.
    try:
        catalog = Catalog(directory, writable=True)
    except errors.NotFound:
        catalog = None
    params = catalog.audio_params if catalog is not None else AudioParams()
    screen = BatchScreen(catalog) if catalog is not None else None
    try:
        for number, path in enumerate(args.files, 1):
            ref_id = args.ref_id or path.stem
            try:
                fp = fingerprint_media(path, audio_params=params, video=not args.no_video)
                if catalog is None:
                    catalog = Catalog(directory, writable=True, create=True, audio_params=params)
                    screen = BatchScreen(catalog)
                # against the catalog and the files of this run before it (engine.conflicts)
                overlaps = screen.overlaps(fp)
                catalog.add(ref_id, fp, title=args.title or path.stem, owner=args.owner,
                            metadata={"source": path.name}, overlaps=overlaps)
                screen.added(ref_id, fp, args.owner)
            except errors.NanhuError as exc:
                _say(f"{path}: {exc}" if str(path) not in str(exc) else str(exc))
                worst = max(worst, exit_code_for(exc))
                continue
            parts = []
            if fp.audio is not None:
                parts.append(f"{len(fp.audio)} audio hashes")
            if fp.video is not None:
                parts.append(f"{len(fp.video)} keyframes")
            print(f"registered {ref_id}: {fp.duration_s:.1f} s, {', '.join(parts)}", flush=True)
            for line in describe(ref_id, args.owner, overlaps):
                print(line, flush=True)
            if len(args.files) > 1:
                _say(f"[{number}/{len(args.files)}] {path}")
            registered += 1
            if registered % 50 == 0:  # bound what a crash can lose on long runs
                catalog.commit()
        if catalog is not None:
            catalog.commit()
    finally:
        if screen is not None:
            screen.close()
        if catalog is not None:
            catalog.close()
    return worst


def cmd_query(args: argparse.Namespace) -> int:
    from nanhu.engine.audio.align import AudioMatchParams
    from nanhu.engine.catalog import Catalog
    from nanhu.engine.cluster.layout import is_cluster, open_local_view
    from nanhu.engine.fingerprint import fingerprint_media
    from nanhu.engine.matcher import Matcher

    where = args.catalog or default_catalog()
    catalog = open_local_view(where) if is_cluster(where) else Catalog(where)
    match_params = AudioMatchParams()
    if args.min_score is not None:
        match_params = AudioMatchParams(min_score=args.min_score)
    matcher = Matcher(catalog, audio_match=match_params)
    claims = None
    if args.record_claims:
        from nanhu.engine.claims import ClaimStore

        claims = ClaimStore(catalog.path)
    upload_id = getattr(args, "upload_id", None) or ""
    if upload_id and len(args.files) > 1:
        catalog.close()
        raise errors.InvalidArgument("--upload-id names one upload; give one file with it")

    def screen(path: Path) -> tuple[float, list[dict]]:
        fp = fingerprint_media(path, audio_params=catalog.audio_params, query=True,
                               video=not args.no_video, keys_on_demand=True)
        matches = matcher.match(fp)
        if claims is not None:
            claims.record(matches, tenant="", request_id=uuid.uuid4().hex, upload_id=upload_id,
                          filename=path.name, duration_s=fp.duration_s)
        return fp.duration_s, [{**m.to_dict(), "owner": m.owner} for m in matches]

    try:
        return query_files(args, screen)
    finally:
        catalog.close()
        if claims is not None:
            claims.close()


def query_files(args: argparse.Namespace, screen) -> int:
    """Answer every file of ``args.files`` with ``screen(path) -> (duration_s, match dicts)``
    (here or on a server), printing JSON lines or text; returns the worst exit code. A match
    dict's ``owner``, when there, is shown in the text and left out of the JSON."""
    worst = 0
    for number, path in enumerate(args.files, 1):
        started = time.perf_counter()
        try:
            duration_s, matches = screen(path)
        except errors.NanhuError as exc:
            worst = max(worst, exit_code_for(exc))
            if args.json:
                print(json.dumps({"query": str(path), "error": str(exc)}), flush=True)
            _say(f"{path}: {exc}" if str(path) not in str(exc) else str(exc))
            continue
        if args.json:
            print(json.dumps({
                "query": str(path), "duration_s": round(duration_s, 3),
                "matches": [{k: v for k, v in m.items() if k != "owner"} for m in matches],
            }), flush=True)
        else:
            print(f"{path}: {len(matches)} match(es) in {time.perf_counter() - started:.2f} s")
            for m in matches:
                print(*match_lines(m), sep="\n")
        if len(args.files) > 1 and not args.json:
            _say(f"[{number}/{len(args.files)}] {path}")
    return worst


def match_lines(m: dict) -> list[str]:
    """A match for people: action, title, id, owner, band; the ranges; the reason."""
    owner = f", owner {m['owner']}" if m.get("owner") else ""
    claim = f"; claim {m['claim_id']}" if m.get("claim_id") else ""
    return [
        f"  {m['action'].upper():8s} {m['title'] or '-'} ({m['reference_id']}{owner})  "
        f"[{m['modality']}] band {m['band']}, score {m['score']:.4f}{claim}",
        f"           upload {m['query_start_s']:.1f}-{m['query_end_s']:.1f} s = work "
        f"{m['reference_start_s']:.1f}-{m['reference_end_s']:.1f} s, speed {m['speed']:.3f}; "
        f"{m['matched_s']:.1f} s matched, {m['upload_share']:.0%} of the upload, "
        f"{m['reference_share']:.0%} of the work",
        f"           {m['reason']}",
    ]


def cmd_delete(args: argparse.Namespace) -> int:
    from nanhu.engine.catalog import Catalog

    worst = 0
    with Catalog(args.catalog or default_catalog(), writable=True) as catalog:
        for ref_id in args.ids:
            try:
                catalog.delete(ref_id)
            except errors.NanhuError as exc:
                _say(str(exc))
                worst = max(worst, exit_code_for(exc))
                continue
            print(f"deleted {ref_id}")
        catalog.commit()
    return worst
