"""``nanhu claims``, ``nanhu webhook``, ``nanhu conflicts`` and ``nanhu owner``: reviewing what
screenings and registrations left behind.

The contract (scripts depend on it)::

    nanhu claims list    [--catalog DIR | --server HOST:PORT [--key KEY]] [--status S] [--json]
    nanhu claims show    [...] [--json] CLAIM_ID
    nanhu claims resolve [...] CLAIM_ID --status confirmed|released|reinstated|disputed [--note TEXT]
    nanhu webhook set    [...] [--tenant T] URL [--secret S]      (show, clear)
    nanhu conflicts      [...] [--all] [--json]
    nanhu conflicts resolve [...] CONFLICT_ID [--note TEXT]
    nanhu owner set      [...] ID OWNER

``--json`` prints one JSON object per claim (conflict) per line. With ``--catalog`` (the
default: ``$NANHU_CATALOG``) the command reads the catalog's files directly and acts as an
admin (whoever can read them is one); ``server.cli`` adds ``--server`` and ``--key``, where the
key decides what the caller sees (:mod:`engine.claims`). This module never imports the server.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Protocol

from nanhu.engine.claims import LOCAL_ADMIN, STATUSES, ClaimStore, parse_status, shown
from nanhu.engine.errors import InvalidArgument


class Review(Protocol):
    """Where the review commands act: a catalog directory here, or a server."""

    def list_claims(self, *, status: str, reference_id: str, upload_id: str) -> list[dict]: ...

    def get_claim(self, claim_id: str) -> dict: ...

    def resolve_claim(self, claim_id: str, status: str, note: str) -> dict: ...

    def set_webhook(self, tenant: str, url: str, secret: str) -> dict: ...

    def get_webhook(self, tenant: str) -> dict: ...

    def clear_webhook(self, tenant: str) -> None: ...

    def list_conflicts(self, *, include_resolved: bool) -> list[dict]: ...

    def resolve_conflict(self, conflict_id: int, note: str) -> dict: ...

    def set_owner(self, ref_id: str, owner: str) -> dict: ...

    def close(self) -> None: ...


class LocalReview:
    """The review commands on a catalog directory, as an admin."""

    def __init__(self, directory: Path) -> None:
        from nanhu.engine.catalog import Catalog

        self.directory = Path(directory)
        Catalog(self.directory).close()  # NotFound (exit 4) when there is no catalog
        self._claims: ClaimStore | None = None

    @property
    def claims(self) -> ClaimStore:
        if self._claims is None:
            self._claims = ClaimStore(self.directory)
        return self._claims

    def list_claims(self, *, status: str, reference_id: str, upload_id: str) -> list[dict]:
        out, before = [], None
        while True:
            page, before = self.claims.list(LOCAL_ADMIN, status=status or None,
                                            reference_id=reference_id or None,
                                            upload_id=upload_id or None, limit=1000, before=before)
            out += [shown(c) for c in page]
            if before is None:
                return out

    def get_claim(self, claim_id: str) -> dict:
        return shown(self.claims.get(LOCAL_ADMIN, claim_id))

    def resolve_claim(self, claim_id: str, status: str, note: str) -> dict:
        return shown(self.claims.resolve(LOCAL_ADMIN, claim_id, status, note=note))

    def _tenant(self, tenant: str) -> str:
        if not tenant:
            raise InvalidArgument("--tenant names whose webhook it is (with --catalog there is no "
                                  "key to say so)")
        return tenant

    def set_webhook(self, tenant: str, url: str, secret: str) -> dict:
        return self.claims.outbox.set_webhook(self._tenant(tenant), url, secret or None)

    def get_webhook(self, tenant: str) -> dict:
        from nanhu.engine.errors import NotFound

        hook = self.claims.outbox.webhook(self._tenant(tenant))
        if hook is None:
            raise NotFound(f"tenant {tenant!r} has no webhook")
        return hook

    def clear_webhook(self, tenant: str) -> None:
        self.claims.outbox.clear_webhook(self._tenant(tenant))

    def list_conflicts(self, *, include_resolved: bool) -> list[dict]:
        from nanhu.engine.catalog import Catalog

        with Catalog(self.directory) as catalog:
            return [c.to_dict() for c in catalog.conflicts(include_resolved=include_resolved)]

    def resolve_conflict(self, conflict_id: int, note: str) -> dict:
        from nanhu.engine.catalog import Catalog

        with Catalog(self.directory, writable=True) as catalog:
            catalog.resolve_conflict(conflict_id, by="local", note=note)
            catalog.commit()
            return next(c.to_dict() for c in catalog.conflicts(include_resolved=True)
                        if c.conflict_id == conflict_id)

    def set_owner(self, ref_id: str, owner: str) -> dict:
        from nanhu.engine.catalog import Catalog

        with Catalog(self.directory, writable=True) as catalog:
            catalog.set_owner(ref_id, owner)
            catalog.commit()
            return catalog.get(ref_id).to_dict()

    def close(self) -> None:
        if self._claims is not None:
            self._claims.close()


def open_local(args: argparse.Namespace) -> Review:
    from nanhu.engine.cli import default_catalog

    return LocalReview(args.catalog or default_catalog())


def _run(args: argparse.Namespace, work) -> int:
    review = args.open_review(args)
    try:
        return work(review) or 0
    finally:
        review.close()


# --- the parsers -------------------------------------------------------------------------------
def _target(parser: argparse.ArgumentParser, *, suppress: bool = False) -> None:
    """``--catalog``; under a command that has it already, a copy that does not reset it."""
    parser.add_argument("--catalog", type=Path, default=argparse.SUPPRESS if suppress else None,
                        help="catalog directory (default: $NANHU_CATALOG, else ./var/catalog)")
    parser.set_defaults(open_review=open_local)


def add_commands(subparsers) -> None:
    p = subparsers.add_parser("claims", help="claims screenings recorded (list, show, resolve)",
                              description=__doc__.split("\n\n")[0])
    actions = p.add_subparsers(dest="claims_command", metavar="ACTION")
    s = actions.add_parser("list", help="the claims, newest first")
    _target(s)
    s.add_argument("--status", type=_status, default=None, metavar="|".join(STATUSES),
                   help="only claims of this status")
    s.add_argument("--reference", default="", metavar="ID", help="only claims on this work")
    s.add_argument("--upload-id", default="", metavar="ID", help="only claims on this upload")
    s.add_argument("--json", action="store_true", help="one JSON object per claim per line")
    s.set_defaults(func=cmd_claims_list)
    s = actions.add_parser("show", help="one claim: its matches and history")
    _target(s)
    s.add_argument("--json", action="store_true", help="the claim as one JSON object")
    s.add_argument("claim_id", metavar="CLAIM_ID")
    s.set_defaults(func=cmd_claims_show)
    s = actions.add_parser("resolve", help="change a claim's status")
    _target(s)
    s.add_argument("claim_id", metavar="CLAIM_ID")
    s.add_argument("--status", required=True, type=_status,
                   metavar="confirmed|released|reinstated|disputed",
                   help="rights holders confirm, release and reinstate; platforms dispute")
    s.add_argument("--note", default="", help="why (kept in the claim's history)")
    s.add_argument("--json", action="store_true", help="print the claim after the change as JSON")
    s.set_defaults(func=cmd_claims_resolve)
    p.set_defaults(func=lambda args: p.print_help() or 2)

    p = subparsers.add_parser("webhook", help="a tenant's webhook for new claims and status changes")
    actions = p.add_subparsers(dest="webhook_command", metavar="ACTION")
    for name, helptext, func in (("set", "set the URL (and secret)", cmd_webhook_set),
                                 ("show", "the URL and deliveries waiting", cmd_webhook_show),
                                 ("clear", "remove it and its undelivered events", cmd_webhook_clear)):
        s = actions.add_parser(name, help=helptext)
        _target(s)
        s.add_argument("--tenant", default="", help="whose webhook (default: the key's tenant; "
                                                    "needed with --catalog)")
        if name == "set":
            s.add_argument("url", metavar="URL", help="http:// or https:// URL receiving a signed POST "
                                                      "per event")
            s.add_argument("--secret", default="", help="signing secret, 16+ characters (default: a "
                                                        "random one, printed once)")
        s.set_defaults(func=func)
    p.set_defaults(func=lambda args: p.print_help() or 2)

    p = subparsers.add_parser("conflicts", help="reference conflicts found at registration")
    _target(p)
    p.add_argument("--all", action="store_true",
                   help="also same-owner overlaps and resolved conflicts")
    p.add_argument("--json", action="store_true", help="one JSON object per conflict per line")
    p.set_defaults(func=cmd_conflicts)
    actions = p.add_subparsers(dest="conflicts_command", metavar="ACTION")
    s = actions.add_parser("resolve", help="accept a conflict: the held stretches match again")
    _target(s, suppress=True)
    s.add_argument("conflict_id", type=int, metavar="CONFLICT_ID")
    s.add_argument("--note", default="", help="why (licensed, co-owned, ...)")
    s.set_defaults(func=cmd_conflicts_resolve)

    p = subparsers.add_parser("owner", help="assign or transfer a work's owner")
    actions = p.add_subparsers(dest="owner_command", metavar="ACTION")
    s = actions.add_parser("set", help="give work ID to tenant OWNER")
    _target(s)
    s.add_argument("ref_id", metavar="ID")
    s.add_argument("owner", metavar="OWNER")
    s.set_defaults(func=cmd_owner_set)
    p.set_defaults(func=lambda args: p.print_help() or 2)


def _status(text: str) -> str:
    try:
        return parse_status(text)
    except InvalidArgument as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


# --- the commands ------------------------------------------------------------------------------
def cmd_claims_list(args: argparse.Namespace) -> int:
    from nanhu.engine.cli_text import iso_time, text_table

    def work(review: Review) -> int:
        claims = review.list_claims(status=args.status or "", reference_id=args.reference,
                                    upload_id=args.upload_id)
        if args.json:
            for claim in claims:
                print(json.dumps(claim))
            return 0
        rows = [(c["claim_id"], c["status"], c["action"], c["reference_id"], c["owner"] or "-",
                 c["tenant"] or "-", c["upload_id"] or "-", iso_time(c["created_at"]),
                 c["title"] or "-") for c in claims]
        if rows:
            for line in text_table(("CLAIM", "STATUS", "ACTION", "WORK", "OWNER", "PLATFORM",
                                    "UPLOAD", "CREATED", "TITLE"), rows):
                print(line)
        return 0

    return _run(args, work)


def claim_lines(claim: dict) -> list[str]:
    """A claim for people: who, what, the matches, the history."""
    from nanhu.engine.cli import match_lines
    from nanhu.engine.cli_text import iso_time

    lines = [f"{'claim':12s}{claim['claim_id']}", f"{'status':12s}{claim['status']}",
             f"{'action':12s}{claim['action']}",
             f"{'work':12s}{claim['title'] or '-'} ({claim['reference_id']}), owner "
             f"{claim['owner'] or '-'}",
             f"{'platform':12s}{claim['tenant'] or '-'}, upload {claim['upload_id'] or '-'}, file "
             f"{claim['filename'] or '-'} ({claim['duration_s']:.1f} s)",
             f"{'request id':12s}{claim['request_id'] or '-'}", "matches"]
    for match in claim["matches"]:
        lines += match_lines(match)
    lines.append("history")
    for event in claim["history"]:
        change = f"{event['from']} -> {event['to']}" if event["from"] else event["to"]
        note = f": {event['note']}" if event["note"] else ""
        lines.append(f"  {iso_time(event['at'])}  {change:24s} by {event['who']} "
                     f"({event['party']}){note}")
    return lines


def cmd_claims_show(args: argparse.Namespace) -> int:
    def work(review: Review) -> int:
        claim = review.get_claim(args.claim_id)
        print(json.dumps(claim) if args.json else "\n".join(claim_lines(claim)))
        return 0

    return _run(args, work)


def cmd_claims_resolve(args: argparse.Namespace) -> int:
    def work(review: Review) -> int:
        claim = review.resolve_claim(args.claim_id, args.status, args.note)
        event = claim["history"][-1]
        print(json.dumps(claim) if args.json else
              f"{claim['claim_id']}: {event['from']} -> {event['to']}")
        return 0

    return _run(args, work)


def cmd_webhook_set(args: argparse.Namespace) -> int:
    def work(review: Review) -> int:
        hook = review.set_webhook(args.tenant, args.url, args.secret)
        print(f"webhook of tenant {hook['tenant']}: {hook['url']}")
        if not args.secret:
            print(f"secret {hook['secret']}  (shown only now: verify X-Nanhu-Signature with it)")
        return 0

    return _run(args, work)


def cmd_webhook_show(args: argparse.Namespace) -> int:
    def work(review: Review) -> int:
        hook = review.get_webhook(args.tenant)
        print(f"webhook of tenant {hook['tenant']}: {hook['url']} ({hook['pending']} pending, "
              f"{hook['failed']} failed)")
        return 0

    return _run(args, work)


def cmd_webhook_clear(args: argparse.Namespace) -> int:
    def work(review: Review) -> int:
        review.clear_webhook(args.tenant)
        print("webhook removed")
        return 0

    return _run(args, work)


def _ranges(conflict: dict) -> str:
    return "; ".join(f"{r['start_s']:.1f}-{r['end_s']:.1f} s = {r['other_start_s']:.1f}-"
                     f"{r['other_end_s']:.1f} s" for r in conflict["ranges"])


def cmd_conflicts(args: argparse.Namespace) -> int:
    from nanhu.engine.cli_text import text_table

    def work(review: Review) -> int:
        found = review.list_conflicts(include_resolved=args.all)
        if not args.all:
            found = [c for c in found if c["status"] == "held"]
        if args.json:
            for conflict in found:
                print(json.dumps(conflict))
            return 0
        rows = [(str(c["conflict_id"]), c["status"], f"{c['reference_id']} ({c['owner'] or '-'})",
                 f"{c['other_reference_id']} ({c['other_owner'] or '-'})", _ranges(c))
                for c in found]
        if rows:
            for line in text_table(("ID", "STATUS", "WORK (OWNER)", "OVERLAPS (OWNER)",
                                    "WORK S = OTHER S"), rows):
                print(line)
        return 0

    return _run(args, work)


def cmd_conflicts_resolve(args: argparse.Namespace) -> int:
    def work(review: Review) -> int:
        conflict = review.resolve_conflict(args.conflict_id, args.note)
        print(f"conflict {conflict['conflict_id']} resolved: {conflict['reference_id']} "
              f"{_ranges(conflict)} of {conflict['other_reference_id']} match again")
        return 0

    return _run(args, work)


def cmd_owner_set(args: argparse.Namespace) -> int:
    def work(review: Review) -> int:
        reference = review.set_owner(args.ref_id, args.owner)
        print(f"{reference['reference_id']}: owner {reference['owner']}")
        return 0

    return _run(args, work)
