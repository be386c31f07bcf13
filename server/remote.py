"""The CLI's ``--server HOST:PORT [--key KEY]`` mode: ``nanhu policy``, ``query``, ``claims``,
``webhook``, ``conflicts`` and ``owner`` through a running service.

The engine offers these commands on a local catalog (:mod:`engine.policy_cli`,
:mod:`engine.review_cli`, :mod:`engine.cli`); :func:`add_remote_options` adds the server flags
to them and swaps in a store or a screening function that talks gRPC
(:class:`server.client.NanhuClient`). Failed calls
come back as the engine's errors (:func:`server.status.engine_error`), so the exit codes are the
local ones. The key defaults to ``$NANHU_API_KEY``.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from nanhu.engine import review_cli
from nanhu.engine.errors import InvalidArgument, InvalidState
from nanhu.engine.policy import Policy
from nanhu.engine.policy_cli import PolicyStore, open_local


def _server_flags(parser: argparse.ArgumentParser, *, suppress: bool = False) -> None:
    """``--server`` and ``--key``; ``suppress``: under a command that has them already."""
    default = argparse.SUPPRESS if suppress else None
    parser.add_argument("--server", default=default, metavar="HOST:PORT",
                        help="act on a Nanhu server over gRPC instead of a local catalog")
    parser.add_argument("--key", default=default,
                        help="API key for --server (default: $NANHU_API_KEY, which keeps the key "
                             "out of the process list)")


def _client(args: argparse.Namespace):
    from nanhu.server.client import NanhuClient

    if args.catalog is not None:
        raise InvalidArgument("--catalog and --server exclude each other (the server has one)")
    key = args.key or os.environ.get("NANHU_API_KEY") or None
    return NanhuClient(args.server, key=key, timeout=60, wait_for_ready=False)


@contextmanager
def _engine_errors(server: str, *, precondition: type | None = None) -> Iterator[None]:
    """gRPC errors as the engine's; ``precondition``: what FAILED_PRECONDITION means here."""
    import grpc  # here, not at import: `nanhu list` need not load gRPC

    from nanhu.server.status import engine_error

    try:
        yield
    except grpc.RpcError as exc:
        error = engine_error(exc, server=f"server {server}")
        if precondition is not None and exc.code() == grpc.StatusCode.FAILED_PRECONDITION:
            raise precondition(str(error)) from None
        raise error from None


def _fields(policy: Policy | None) -> dict:
    if policy is None:
        return {}
    return {"action": policy.action, "modality": policy.modality,
            "min_match_s": policy.min_match_s, "min_upload_share": policy.min_upload_share,
            "min_reference_share": policy.min_reference_share,
            "excluded_ranges": policy.excluded_ranges, "enabled": policy.enabled}


class RemotePolicies:
    """:class:`engine.policy_cli.PolicyStore` over gRPC (SetPolicy, Set/GetOwnerPolicy)."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.address = args.server
        self.client = _client(args)

    def set(self, ref_id: str, policy: Policy | None) -> None:
        with _engine_errors(self.address):
            self.client.set_policy(ref_id, **_fields(policy))

    def set_owner(self, owner: str, policy: Policy | None) -> None:
        with _engine_errors(self.address):
            self.client.set_owner_policy(owner, **_fields(policy))

    def show(self, ref_id: str) -> dict:
        with _engine_errors(self.address):
            reference = self.client.get(ref_id)
            owner = reference["owner"]
            default = self.client.get_owner_policy(owner)["policy"] if owner else {}
        return {"reference_id": reference["reference_id"], "title": reference["title"],
                "owner": owner, "policy": reference["policy"], "owner_policy": default}

    def show_owner(self, owner: str) -> dict:
        with _engine_errors(self.address):
            return self.client.get_owner_policy(owner)

    def close(self) -> None:
        self.client.close()


def open_policy_store(args: argparse.Namespace) -> PolicyStore:
    """The server's store with ``--server``, else the local catalog's."""
    if args.server:
        return RemotePolicies(args)
    if args.key:
        raise InvalidArgument("--key is used with --server only")
    return open_local(args)


class RemoteReview:
    """:class:`engine.review_cli.Review` over gRPC: the key decides what the caller sees."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.address = args.server
        self.client = _client(args)

    def _errors(self):
        return _engine_errors(self.address, precondition=InvalidState)

    def list_claims(self, *, status: str, reference_id: str, upload_id: str) -> list[dict]:
        with self._errors():
            return self.client.list_claims(status=status, reference_id=reference_id,
                                           upload_id=upload_id, page_size=1000)

    def get_claim(self, claim_id: str) -> dict:
        with self._errors():
            return self.client.get_claim(claim_id)

    def resolve_claim(self, claim_id: str, status: str, note: str) -> dict:
        with self._errors():
            return self.client.resolve_claim(claim_id, status, note=note)

    def set_webhook(self, tenant: str, url: str, secret: str) -> dict:
        with self._errors():
            return self.client.set_webhook(url, tenant=tenant, secret=secret)

    def get_webhook(self, tenant: str) -> dict:
        with self._errors():
            return self.client.get_webhook(tenant=tenant)

    def clear_webhook(self, tenant: str) -> None:
        with self._errors():
            self.client.clear_webhook(tenant=tenant)

    def list_conflicts(self, *, include_resolved: bool) -> list[dict]:
        with self._errors():
            return self.client.list_conflicts(include_resolved=include_resolved)

    def resolve_conflict(self, conflict_id: int, note: str) -> dict:
        with self._errors():
            return self.client.resolve_conflict(conflict_id, note=note)

    def set_owner(self, ref_id: str, owner: str) -> dict:
        with self._errors():
            return self.client.set_owner(ref_id, owner)

    def close(self) -> None:
        self.client.close()


def open_review(args: argparse.Namespace) -> review_cli.Review:
    """The server's review commands with ``--server``, else the local catalog's."""
    if getattr(args, "server", None):
        return RemoteReview(args)
    if getattr(args, "key", None):
        raise InvalidArgument("--key is used with --server only")
    return review_cli.open_local(args)


def _remote_query(local: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """``nanhu query`` that uploads each file to ``--server`` when it is given."""

    def cmd_query(args: argparse.Namespace) -> int:
        if not args.server:
            if args.key:
                raise InvalidArgument("--key is used with --server only")
            if args.upload_id and not args.record_claims:
                raise InvalidArgument("--upload-id is used with --server or --record-claims")
            return local(args)
        from nanhu.engine.cli import query_files

        if args.min_score is not None or args.no_video:
            raise InvalidArgument("--min-score and --no-video apply to a local catalog; the "
                                  "server uses its own matching settings")
        if args.upload_id and len(args.files) > 1:
            raise InvalidArgument("--upload-id names one upload; give one file with it")
        client = _client(args)

        def screen(path: Path) -> tuple[float, list[dict]]:
            from nanhu.engine.errors import MediaNotFound

            if not path.is_file():
                raise MediaNotFound(f"{path}: no such file")
            with _engine_errors(args.server):
                result = client.screen_file(path, upload_id=args.upload_id or "")
            return result["duration_s"], result["matches"]

        try:
            return query_files(args, screen)
        finally:
            client.close()

    return cmd_query


def _subparser(subparsers, *names: str) -> argparse.ArgumentParser | None:
    parser = subparsers.choices.get(names[0]) if hasattr(subparsers, "choices") else None
    for name in names[1:]:
        if parser is None:
            return None
        nested = next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)
        parser = nested.choices.get(name) if nested else None
    return parser


def add_remote_options(subparsers) -> None:
    """Give ``policy set|show|clear`` and ``query`` their ``--server``/``--key`` mode."""
    for action in ("set", "show", "clear"):
        parser = _subparser(subparsers, "policy", action)
        if parser is not None:
            _server_flags(parser)
            parser.set_defaults(open_store=open_policy_store)
    query = _subparser(subparsers, "query")
    if query is not None:
        _server_flags(query)
        query.add_argument("--upload-id", default=None, metavar="ID",
                           help="the platform's id of the upload, kept with the claims the "
                                "screening records (with --server or --record-claims)")
        query.set_defaults(func=_remote_query(query.get_default("func")))
    for names in (("claims", "list"), ("claims", "show"), ("claims", "resolve"),
                  ("webhook", "set"), ("webhook", "show"), ("webhook", "clear"),
                  ("conflicts",), ("conflicts", "resolve"), ("owner", "set")):
        parser = _subparser(subparsers, *names)
        if parser is not None:
            _server_flags(parser, suppress=names == ("conflicts", "resolve"))
            parser.set_defaults(open_review=open_review)
