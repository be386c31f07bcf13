"""The catalog's own subcommands: list, stats, check, repair, compact (registered by
:func:`engine.cli.add_commands`)."""

from __future__ import annotations

import argparse
import json

from nanhu.engine import errors
from nanhu.engine.cli import _say, default_catalog, exit_code_for
from nanhu.engine.cli_text import human_bytes, human_hours, iso_time, text_table


def cmd_list(args: argparse.Namespace) -> int:
    from nanhu.engine.catalog import Catalog

    rows = []
    with Catalog(args.catalog or default_catalog()) as catalog:
        defaults = catalog.owner_policies()
        after = None
        while True:
            page = catalog.list(owner=args.owner, limit=1000, after_id=after)
            for ref in page:
                if args.json:
                    print(json.dumps(ref.to_dict()))
                else:
                    rows.append((ref.ref_id, f"{ref.duration_s:.1f} s", ref.modalities,
                                 ref.owner or "-", _policy_cell(ref, defaults),
                                 iso_time(ref.created_at), ref.title))
            if len(page) < 1000:
                break
            after = page[-1].ref_id
    if not args.json:
        if not rows:
            _say("no references" + (f" of owner {args.owner!r}" if args.owner else ""))
            return 0
        for line in text_table(("ID", "DURATION", "MODALITIES", "OWNER", "POLICY", "CREATED", "TITLE"),
                           rows):
            print(line)
        unowned = [row[0] for row in rows if row[3] == "-"]
        if unowned:
            shown = ", ".join(unowned[:5]) + (", ..." if len(unowned) > 5 else "")
            _say(f"{len(unowned)} work(s) without an owner ({shown}): no tenant's key sees them "
                 "and no owner default applies; assign one with `nanhu owner set ID OWNER`")
    return 0


def _policy_cell(ref, defaults: dict) -> str:
    """``block``, ``block(off)`` (disabled), ``track(owner)`` (the owner's default) or ``-``."""
    own = ref.match_policy
    policy = own or defaults.get(ref.owner)
    if policy is None:
        return "-"
    return policy.action + ("" if policy.enabled else "(off)") + ("" if own else "(owner)")


def cmd_stats(args: argparse.Namespace) -> int:
    from nanhu.engine.catalog import Catalog

    with Catalog(args.catalog or default_catalog()) as catalog:
        stats = catalog.stats()
    if args.json:
        print(json.dumps(stats))
        return 0
    s = stats
    lines = [
        ("catalog", s["catalog"]),
        ("format version", s["format_version"]),
        ("generation", s["generation"]),
        ("references", f"{s['references']:,} ({s['audio_references']:,} with audio, "
                       f"{s['video_references']:,} with video)"),
        ("media", human_hours(s["hours"])),
        ("audio hashes", f"{s['audio_hashes']:,}"),
        ("keyframes", f"{s['keyframes']:,}"),
        ("segments", f"{s['audio_segments']} audio, {s['video_segments']} video"),
        ("deleted, not purged", f"{s['tombstones']:,}"),
        ("without owner", f"{s['unowned_references']:,}" + (
            " (no tenant sees them: `nanhu owner set ID OWNER`)" if s["unowned_references"] else "")),
        ("conflicts held", f"{s['held_conflicts']:,}" + (
            " (material held out of screening: `nanhu conflicts`)" if s["held_conflicts"] else "")),
        ("index", f"{human_bytes(s['audio_index_bytes'])} audio, "
                  f"{human_bytes(s['video_index_bytes'])} video"
                  + (f" ({human_bytes(s['index_bytes_per_hour'])} per hour of media)"
                     if s["index_bytes_per_hour"] else "")),
        ("files present", "yes" if s["files_present"] else "NO (run `nanhu check`)"),
        ("audio parameters", s["audio_params"] or "-"),
        ("video parameters", s["video_params"] or "-"),
    ]
    for key, value in lines:
        print(f"{key:20s} {value}")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    """Print the check report as JSON; exit 0 when the catalog is sound, else 7 (corrupt)."""
    from nanhu.engine.check import check_catalog

    report = check_catalog(args.catalog or default_catalog())
    print(json.dumps(report))
    for problem in report["problems"]:
        _say(problem)
    return 0 if report["ok"] else exit_code_for(errors.CatalogCorrupt(""))


def cmd_repair(args: argparse.Namespace) -> int:
    """Print the repair report as JSON; exit 0 when the catalog is sound afterwards, else 7, as
    ``check`` does (6 when another process holds the writer lock)."""
    from nanhu.engine.repair import repair_catalog

    report = repair_catalog(args.catalog or default_catalog(), dry_run=args.dry_run,
                            on_commit=lambda g: _say(f"writing the repaired catalog (generation {g})"))
    print(json.dumps(report), flush=True)
    verb = "would drop" if args.dry_run else "dropped"
    for ref in report["dropped"]["references"]:
        _say(f"{verb} reference {ref['reference_id']!r}: {ref['reason']} (register it again)")
    for name in report["dropped"]["segments"]:
        _say(f"{verb} segment {name}")
    if report["dropped"]["keyframe_rows"]:
        _say(f"{verb} {report['dropped']['keyframe_rows']} keyframe row(s)")
    for problem in report["problems"]:
        _say(problem)
    if report["repaired"]:
        _say(f"repaired: generation {report['generation_before']} -> {report['generation']}")
    elif not report["problems"]:
        _say("nothing to repair")
    return 0 if report["ok"] else exit_code_for(errors.CatalogCorrupt(""))


def cmd_compact(args: argparse.Namespace) -> int:
    from nanhu.engine.catalog import Catalog

    with Catalog(args.catalog or default_catalog(), writable=True) as catalog:
        result = catalog.compact()
    if args.json:
        print(json.dumps(result))
    else:
        print(f"compacted to generation {result['generation']}: purged "
              f"{result['purged_references']:,} deleted reference(s); {result['audio_postings']:,} "
              f"audio postings and {result['video_vectors']:,} video vectors kept")
    return 0
