"""Where fingerprints go: the local catalog (the single writer), or a Nanhu server over gRPC.

A sink answers the resume questions (is this id registered, and with which content?), stages
references and makes them durable on :meth:`commit`. Both sinks raise the engine's errors:
:class:`~engine.errors.AlreadyExists` with ``existing_id`` for a taken id or known content.
"""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path

from nanhu.engine.audio.params import AudioParams
from nanhu.engine.catalog import Catalog
from nanhu.engine.errors import AlreadyExists, InvalidArgument, NanhuError, NotFound, Unauthenticated
from nanhu.engine.fingerprint import Fingerprint
from nanhu.indexer.manifest import Entry, tagged

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
        self._screen = None

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
        from nanhu.engine.conflicts import BatchScreen, describe

        # against the catalog and this batch's earlier works (engine.conflicts)
        if self._screen is None:
            self._screen = BatchScreen(self.catalog)
        overlaps = self._screen.overlaps(fp)
        for line in describe(entry.ref_id, entry.owner, overlaps):
            log.warning("%s", line)
        title, metadata = tagged(entry, fp.meta)
        self.catalog.add(entry.ref_id, fp, title=title, owner=entry.owner,
                         metadata=metadata, policy=entry.policy, overlaps=overlaps)
        self._screen.added(entry.ref_id, fp, entry.owner)

    def commit(self) -> int:
        return self.catalog.commit()

    def rollback(self) -> None:
        self.catalog.rollback()
        if self._screen is not None:  # its scratch copy holds the works just rolled back
            self._screen.close()
            self._screen = None

    def stats(self) -> dict:
        return self.catalog.stats()

    def close(self) -> None:
        if self._screen is not None:
            self._screen.close()
        self.catalog.close()


class ClusterSink:
    """A cluster catalog (``nanhu cluster init``): each batch's works staged per shard and
    committed on :meth:`commit` as one commit per shard, through the shards' writers (Ray
    actors at ``address``, else the shard directories opened here). Ids and content digests are
    checked on every shard; conflicts are found within each work's shard
    (:mod:`engine.cluster.writes`)."""

    def __init__(self, path: str | Path, *, address: str | None = None) -> None:
        from nanhu.engine.cluster.writes import ClusterWriter
        from nanhu.server.cluster_core import open_view

        self.layout, self.view, writes = open_view(path, address=address)
        self.writer = ClusterWriter(self.layout, self.view, writes)
        self.root = Path(path).absolute()  # the journal goes here, as in a catalog
        self.target = f"cluster {self.root}" + (f" on {address}" if address else "")
        self.audio_params: AudioParams = self.view.audio_params
        self._staged: dict[int, list[dict]] = {}
        self._digests: dict[str, str] = {}

    def _known(self, ref) -> Known:
        return Known(ref.ref_id, ref.digest, ref.duration_s)

    def by_id(self, ref_id: str) -> Known | None:
        try:
            return self._known(self.view.get(ref_id))
        except NotFound:
            return None

    def by_digest(self, digest: str) -> Known | None:
        ref = self.view.find_digest(digest)
        return self._known(ref) if ref else None

    def add(self, entry: Entry, fp: Fingerprint) -> None:
        if fp.digest and fp.digest in self._digests:
            raise AlreadyExists(f"same content is already registered as "
                                f"{self._digests[fp.digest]!r}",
                                existing_id=self._digests[fp.digest])
        if self.by_id(entry.ref_id) is not None or any(
                op["ref_id"] == entry.ref_id for ops in self._staged.values() for op in ops):
            raise AlreadyExists(f"reference id {entry.ref_id!r} already exists",
                                existing_id=entry.ref_id)
        twin = self.by_digest(fp.digest) if fp.digest else None
        if twin is not None:
            raise AlreadyExists(f"same content is already registered as {twin.ref_id!r}",
                                existing_id=twin.ref_id)
        title, metadata = tagged(entry, fp.meta)
        self._staged.setdefault(self.layout.shard_for(entry.ref_id), []).append({
            "op": "add", "ref_id": entry.ref_id, "fingerprint": fp.keyed().to_bytes(),
            "title": title, "owner": entry.owner, "metadata": metadata,
            "policy": entry.policy or {}})
        if fp.digest:
            self._digests[fp.digest] = entry.ref_id

    def commit(self) -> int:
        staged, self._staged = self._staged, {}
        self._digests = {}
        for shard, ops in sorted(staged.items()):
            self.writer._one(shard, ops)
        self.view.refresh()
        return sum(g for g in self.view.generation if g > 0)

    def rollback(self) -> None:
        self._staged = {}
        self._digests = {}

    def stats(self) -> dict:
        return self.view.stats()

    def close(self) -> None:
        self.view.close()


class ServerSink:
    """Registration over gRPC: fingerprints made here, sent to a Nanhu server (the edge path).

    Each registration is durable on the server when its call returns, so :meth:`commit` has
    nothing left to do; the ingest still journals in batches, and a resumed run asks the server
    (``GetReference``) what it already holds. Status codes come back as the engine's errors
    (the inverse of ``server.status.STATUS_CODES``); the ones that say the server cannot be
    used at all (unreachable, bad key, deadline) stop the run instead of failing every file.

    ``UNAVAILABLE`` (a server restarting, its catalog being written) and ``RESOURCE_EXHAUSTED``
    (busy) are retried, by gRPC's retry policy first (:mod:`server.client`), then here with
    backoff doubling from ``backoff_s`` up to ``max_backoff_s``, for up to ``retry_s`` seconds
    per call, before the run stops; a resumed run picks up where it stopped.
    """

    def __init__(self, address: str, key: str, *, timeout: float = 300.0, retry_s: float = 60.0,
                 backoff_s: float = 0.5, max_backoff_s: float = 10.0) -> None:
        import grpc

        from nanhu.server.client import NanhuClient
        from nanhu.server.status import STATUS_CODES

        self._grpc = grpc
        self._errors: dict = {}
        for kind, code in STATUS_CODES:  # first match per code: the most specific error
            self._errors.setdefault(code, kind)
        self._fatal = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNAUTHENTICATED,
                       grpc.StatusCode.DEADLINE_EXCEEDED}
        self._retry = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED}
        self.retry_s, self.backoff_s, self.max_backoff_s = retry_s, backoff_s, max_backoff_s
        # Fail fast while the server is down (retried below, with a line saying so) rather than
        # wait silently for it until the call's deadline.
        self.client = NanhuClient(address, key=key, timeout=timeout, wait_for_ready=False)
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

    def _retrying(self, call, what: str):
        """``call()``, retried on a retryable status with backoff for up to ``retry_s`` seconds."""
        give_up = time.monotonic() + self.retry_s
        delay = self.backoff_s
        while True:
            try:
                return call()
            except self._grpc.RpcError as exc:
                pushback = dict(exc.trailing_metadata() or ()).get("grpc-retry-pushback-ms")
                if exc.code() not in self._retry or pushback == "-1" or \
                        time.monotonic() + delay > give_up:
                    raise
                log.warning("server %s: %s for %s (%s); retrying in %.1f s", self.target,
                            exc.code().name, what, exc.details(), delay)
                time.sleep(delay)
                delay = min(2 * delay, self.max_backoff_s)

    def by_id(self, ref_id: str) -> Known | None:
        try:
            ref = self._retrying(lambda: self.client.get(ref_id), ref_id)
        except self._grpc.RpcError as exc:
            if exc.code() == self._grpc.StatusCode.NOT_FOUND:
                return None
            raise self._error(exc, ref_id) from None
        return Known(ref["reference_id"], ref["digest"], ref["duration_s"])

    def by_digest(self, digest: str) -> Known | None:
        return None  # no such RPC: duplicates are found by the server when they are sent

    def add(self, entry: Entry, fp: Fingerprint) -> None:
        title, metadata = tagged(entry, fp.meta)
        metadata = {k: v if isinstance(v, str) else json.dumps(v) for k, v in metadata.items()}
        try:
            self._retrying(lambda: self.client.register_fingerprint(
                fp, entry.ref_id, title=title, metadata=metadata, owner=entry.owner,
                policy=entry.policy or None),
                entry.ref_id)
        except self._grpc.RpcError as exc:
            error = self._error(exc, entry.ref_id)
            if isinstance(error, AlreadyExists) and error.existing_id == entry.ref_id and \
                    self._holds(entry.ref_id, fp.digest):
                return  # a retried call whose first attempt had committed: it is there
            raise error from None

    def _holds(self, ref_id: str, digest: str) -> bool:
        try:
            known = self.by_id(ref_id)
        except NanhuError:  # another tenant's id, say: the AlreadyExists stands
            return False
        return known is not None and bool(digest) and known.digest == digest

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


def make_sink(*, catalog: Path | None, server: str | None, key: str | None,
              cluster: str | None = None):
    from nanhu.engine.cluster.layout import is_cluster

    if catalog is not None and is_cluster(catalog):
        return ClusterSink(catalog, address=cluster)
    if cluster:
        raise InvalidArgument(f"--cluster: {catalog} is not a cluster catalog (no cluster.json)")
    if server:
        if not key:
            raise InvalidArgument("--server needs --key KEY (an API key with the register role)")
        return ServerSink(server, key)
    if key:
        raise InvalidArgument("--key is used with --server only")
    from nanhu.engine.cli import default_catalog

    return CatalogSink(catalog or default_catalog())
