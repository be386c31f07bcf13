"""``nanhu policy set|show|clear``: a work's own policy, or an owner's default (``--owner``).

The contract (scripts depend on it)::

    nanhu policy set   [--catalog DIR | --server HOST:PORT [--key KEY]] ID
                       --action block|monetize|track|review [--modality audio|video|both|any]
                       [--min-match-s S] [--min-upload-share F] [--min-reference-share F]
                       [--exclude START-END ...] [--disabled]
    nanhu policy show  [...] [--json] ID
    nanhu policy clear [...] ID

``--owner TENANT`` in place of ``ID`` addresses the owner's default policy. Here the policies
live in a local catalog (:class:`LocalPolicies`); ``server.cli`` adds ``--server`` and ``--key``
and a store that talks gRPC, so this module never imports the server.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from nanhu.engine.errors import InvalidArgument
from nanhu.engine.policy import (
    ACTIONS,
    MAX_MIN_MATCH_S,
    MODALITIES,
    Policy,
    effective,
    parse_action,
    parse_range,
)


class PolicyStore(Protocol):
    """Where ``nanhu policy`` reads and writes: a catalog here, or a server."""

    def set(self, ref_id: str, policy: Policy | None) -> None: ...

    def set_owner(self, owner: str, policy: Policy | None) -> None: ...

    def show(self, ref_id: str) -> dict:
        """``{"reference_id", "title", "owner", "policy", "owner_policy"}`` (stored forms)."""
        ...

    def show_owner(self, owner: str) -> dict:
        """``{"owner", "policy"}``."""
        ...

    def close(self) -> None: ...


class LocalPolicies:
    """Policies in a catalog directory; each change is one commit."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def set(self, ref_id: str, policy: Policy | None) -> None:
        from nanhu.engine.catalog import Catalog

        with Catalog(self.directory, writable=True) as catalog:
            catalog.set_policy(ref_id, policy)
            catalog.commit()

    def set_owner(self, owner: str, policy: Policy | None) -> None:
        from nanhu.engine.catalog import Catalog

        with Catalog(self.directory, writable=True) as catalog:
            catalog.set_owner_policy(owner, policy)
            catalog.commit()

    def show(self, ref_id: str) -> dict:
        from nanhu.engine.catalog import Catalog

        with Catalog(self.directory) as catalog:
            reference = catalog.get(ref_id)
            default = catalog.owner_policy(reference.owner)
        own = reference.match_policy
        return {"reference_id": reference.ref_id, "title": reference.title, "owner": reference.owner,
                "policy": own.to_dict() if own else {},
                "owner_policy": default.to_dict() if default else {}}

    def show_owner(self, owner: str) -> dict:
        from nanhu.engine.catalog import Catalog

        with Catalog(self.directory) as catalog:
            policy = catalog.owner_policy(owner)
        return {"owner": owner, "policy": policy.to_dict() if policy else {}}

    def close(self) -> None:
        pass


def open_local(args: argparse.Namespace) -> PolicyStore:
    from nanhu.engine.cli import default_catalog

    return LocalPolicies(args.catalog or default_catalog())


# --- argument types: errors name the flag and what it takes (exit code 2) ---------------------
def _argument(parse: Callable, *args) -> Callable[[str], object]:
    def convert(text: str):
        try:
            return parse(text, *args)
        except InvalidArgument as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return convert


def _bounded(text: str, upper: float) -> float:
    try:
        value = float(text)
    except ValueError:
        raise InvalidArgument(f"{text!r} is not a number") from None
    if not 0.0 <= value <= upper:
        raise InvalidArgument(f"{text} is out of range (0 to {upper:g})")
    return value


def add_commands(subparsers) -> None:
    from nanhu.engine.cli import catalog_arg

    p = subparsers.add_parser("policy", help="a work's policy, or an owner's default (set, show, clear)",
                              description=__doc__.split("\n\n")[0])
    actions = p.add_subparsers(dest="policy_command", metavar="ACTION")

    def target(sub: argparse.ArgumentParser) -> None:
        catalog_arg(sub)
        sub.add_argument("--owner", default=None, metavar="TENANT",
                         help="the owner's default policy (for its works without their own) "
                              "instead of a work's")
        sub.add_argument("ref_id", nargs="?", metavar="ID", help="the work's reference id")
        sub.set_defaults(open_store=open_local)

    s = actions.add_parser("set", help="set (replace) the policy")
    target(s)
    s.add_argument("--action", required=True, type=_argument(parse_action),
                   metavar="|".join(ACTIONS), help="what to do with a match that meets the conditions")
    s.add_argument("--modality", default="any", choices=MODALITIES,
                   help="evidence a match needs: audio, video, both (fused audio+video) or any")
    s.add_argument("--min-match-s", type=_argument(_bounded, MAX_MIN_MATCH_S), default=0.0,
                   metavar="S", help="least seconds of the upload matched (default 0: any)")
    s.add_argument("--min-upload-share", type=_argument(_bounded, 1.0), default=0.0, metavar="F",
                   help="least share of the upload matched, 0..1 (default 0: any)")
    s.add_argument("--min-reference-share", type=_argument(_bounded, 1.0), default=0.0,
                   metavar="F", help="least share of the work matched, 0..1 (default 0: any)")
    s.add_argument("--exclude", nargs="+", action="extend", default=[], type=_argument(parse_range),
                   metavar="START-END", help="seconds of the work cut out of every match "
                   "(licensed samples, intros); one or more, e.g. --exclude 0-12.5 90-95")
    s.add_argument("--disabled", action="store_true",
                   help="keep the policy but take no action and trim nothing")
    s.set_defaults(func=cmd_policy_set)

    s = actions.add_parser("show", help="the policy, the owner's default and which applies")
    target(s)
    s.add_argument("--json", action="store_true", help="one JSON object (stored forms)")
    s.set_defaults(func=cmd_policy_show)

    s = actions.add_parser("clear", help="remove the policy (a work's owner default applies again)")
    target(s)
    s.set_defaults(func=cmd_policy_clear)
    p.set_defaults(func=lambda args: p.print_help() or 2)


def _target(args: argparse.Namespace) -> tuple[str | None, str | None]:
    if (args.ref_id is None) == (args.owner is None):
        raise InvalidArgument("give a reference ID or --owner TENANT (one of them)")
    if args.owner is not None and not args.owner:
        raise InvalidArgument("--owner needs the tenant's name")
    return args.ref_id, args.owner


def _run(args: argparse.Namespace, work: Callable[[PolicyStore], int]) -> int:
    _target(args)
    store = args.open_store(args)
    try:
        return work(store)
    finally:
        store.close()


def _words(stored: dict) -> str:
    policy = Policy.from_stored(stored) if stored else None
    return policy.describe() if policy else "-"


def cmd_policy_set(args: argparse.Namespace) -> int:
    policy = Policy(action=args.action, modality=args.modality, min_match_s=args.min_match_s,
                    min_upload_share=args.min_upload_share,
                    min_reference_share=args.min_reference_share,
                    excluded_ranges=tuple(args.exclude), enabled=not args.disabled)

    def work(store: PolicyStore) -> int:
        if args.owner is not None:
            store.set_owner(args.owner, policy)
            print(f"owner {args.owner}: default policy: {policy.describe()}")
        else:
            store.set(args.ref_id, policy)
            print(f"{args.ref_id}: policy: {policy.describe()}")
        return 0

    return _run(args, work)


def cmd_policy_clear(args: argparse.Namespace) -> int:
    def work(store: PolicyStore) -> int:
        if args.owner is not None:
            store.set_owner(args.owner, None)
            print(f"owner {args.owner}: default policy cleared")
            return 0
        store.set(args.ref_id, None)
        shown = store.show(args.ref_id)
        after = (f"owner {shown['owner']}'s default applies: {_words(shown['owner_policy'])}"
                 if shown["owner_policy"] else "no policy applies")
        print(f"{args.ref_id}: own policy cleared; {after}")
        return 0

    return _run(args, work)


def cmd_policy_show(args: argparse.Namespace) -> int:
    def work(store: PolicyStore) -> int:
        if args.owner is not None:
            shown = store.show_owner(args.owner)
            if args.json:
                print(json.dumps(shown))
            else:
                print(f"{'owner':16s}{shown['owner']}\n{'default policy':16s}{_words(shown['policy'])}")
            return 0
        shown = store.show(args.ref_id)
        applies, source = effective(Policy.from_stored(shown["policy"]),
                                    Policy.from_stored(shown["owner_policy"]))
        shown = {**shown, "applies": applies.to_dict() if applies else {}, "source": source}
        if args.json:
            print(json.dumps(shown))
            return 0
        whose = {"reference": "its own policy: ", "owner": "the owner's default: ", "": ""}[source]
        lines = [("reference", f"{shown['reference_id']} ({shown['title'] or '-'})"),
                 ("owner", shown["owner"] or "-"), ("own policy", _words(shown["policy"])),
                 ("owner default", _words(shown["owner_policy"])),
                 ("applies", whose + (applies.describe() if applies else "none (action none)"))]
        for key, value in lines:
            print(f"{key:16s}{value}")
        return 0

    return _run(args, work)
