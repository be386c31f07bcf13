"""Where fingerprints go: the local catalog (the single writer), or a Nanhu server over gRPC.

A sink answers the resume questions (is this id registered, and with which content?), stages
references and makes them durable on :meth:`commit`. Both sinks raise the engine's errors:
:class:`~engine.errors.AlreadyExists` with ``existing_id`` for a taken id or known content.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path

from engine.audio.params import AudioParams
from engine.catalog import Catalog
from engine.errors import AlreadyExists, InvalidArgument, NanhuError, NotFound, Unauthenticated
from engine.fingerprint import Fingerprint
from indexer.manifest import Entry

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Known:
    """A reference the target already holds."""

    ref_id: str
    digest: str
    duration_s: float


class CatalogSink:
    """The local catalog, opened as its single writer for the whole run."""

    def __init__(self, path: str | Path) -> None:
        self.catalog = Catalog(path, writable=True, create=True)
        self.target = str(Path(path).absolute())
        self.audio_params: AudioParams = self.catalog.audio_params

    def by_id(self, ref_id: str) -> Known | None:
        try:
            ref = self.catalog.get(ref_id)
        except NotFound:
            return None
        return Known(ref.ref_id, ref.digest, ref.duration_s)

    def by_digest(self, digest: str) -> Known | None:
        ref = self.catalog.find_digest(digest)
        return Known(ref.ref_id, ref.digest, ref.duration_s) if ref else None

    def add(self, entry: Entry, fp: Fingerprint) -> None:
        self.catalog.add(entry.ref_id, fp, title=entry.title, owner=entry.owner,
                         metadata=entry.metadata)

    def commit(self) -> int:
        return self.catalog.commit()

    def rollback(self) -> None:
        self.catalog.rollback()

    def stats(self) -> dict:
        return self.catalog.stats()

    def close(self) -> None:
        self.catalog.close()


class ServerSink:
    """Registration over gRPC: fingerprints made here, sent to a Nanhu server (the edge path).

    Each registration is durable on the server when its call returns, so :meth:`commit` has
    nothing left to do; the ingest still journals in batches, and a resumed run asks the server
    (``GetReference``) what it already holds. Status codes come back as the engine's errors
    (the inverse of ``server.status.STATUS_CODES``); the ones that say the server cannot be
    used at all (unreachable, bad key, deadline) stop the run instead of failing every file.
    """

    def __init__(self, address: str, key: str, *, timeout: float = 300.0) -> None:
        import grpc

        from server.client import NanhuClient
        from server.status import STATUS_CODES

        self._grpc = grpc
        self._errors: dict = {}
        for kind, code in STATUS_CODES:  # first match per code: the most specific error
            self._errors.setdefault(code, kind)
        self._fatal = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNAUTHENTICATED,
                       grpc.StatusCode.DEADLINE_EXCEEDED}
        self.client = NanhuClient(address, key=key, timeout=timeout)
        self.target = f"grpc://{address}"
        self.audio_params = AudioParams()  # the server refuses other parameters (VersionMismatch)

    def _error(self, exc, what: str) -> NanhuError:
        code, detail = exc.code(), exc.details() or str(exc)
        if code == self._grpc.StatusCode.UNAUTHENTICATED:
            return Unauthenticated(f"server {self.target} refused the key: {detail}")
        if code in self._fatal:
            return ServerUnusable(f"server {self.target}: {code.name}: {detail}")
        kind = self._errors.get(code, NanhuError)
        if not (isinstance(kind, type) and issubclass(kind, NanhuError)):
            kind = NanhuError
        if kind is AlreadyExists:
            twin = _REGISTERED_AS.search(detail)
            return AlreadyExists(detail, existing_id=twin.group(1) if twin else what)
        return kind(f"server: {detail}")

    def by_id(self, ref_id: str) -> Known | None:
        try:
            ref = self.client.get(ref_id)
        except self._grpc.RpcError as exc:
            if exc.code() == self._grpc.StatusCode.NOT_FOUND:
                return None
            raise self._error(exc, ref_id) from None
        return Known(ref["reference_id"], ref["digest"], ref["duration_s"])

    def by_digest(self, digest: str) -> Known | None:
        return None  # no such RPC: duplicates are found by the server when they are sent

    def add(self, entry: Entry, fp: Fingerprint) -> None:
        metadata = {k: v if isinstance(v, str) else json.dumps(v) for k, v in entry.metadata.items()}
        try:
            self.client.register_fingerprint(fp, entry.ref_id, title=entry.title,
                                             metadata=metadata, owner=entry.owner)
        except self._grpc.RpcError as exc:
            raise self._error(exc, entry.ref_id) from None

    def commit(self) -> None:
        return None

    def rollback(self) -> None:
        pass

    def close(self) -> None:
        self.client.close()


class ServerUnusable(NanhuError):
    """The server cannot be used at all (unreachable, key refused, deadline): stop the run."""


#: errors that stop a run: no later file could fare better
FATAL_ERRORS = (ServerUnusable, Unauthenticated)
_REGISTERED_AS = re.compile(r"registered as '([^']+)'")


def make_sink(*, catalog: Path | None, server: str | None, key: str | None):
    if server:
        if not key:
            raise InvalidArgument("--server needs --key KEY (an API key with the register role)")
        return ServerSink(server, key)
    if key:
        raise InvalidArgument("--key is used with --server only")
    from engine.cli import default_catalog

    return CatalogSink(catalog or default_catalog())
