"""The server's state and the engine calls behind the catalog RPCs (no gRPC messages here).

Screening runs in the worker processes (:mod:`server.jobs`); this module holds the rest:

- :class:`Snapshots`: the read side for catalog calls (get, list, stats). A read-only
  :class:`~engine.catalog.Catalog` pinned at one generation, shared by the gRPC threads and
  swapped for a fresh one when the manifest's generation moves (checked at most once per
  ``refresh_interval_s``, and at once after this server's own commits). A call keeps the
  catalog it started with, so it never sees a half-updated one.
- :class:`Writer`: the single writer. Each mutation opens the catalog writable under a lock,
  commits and closes it, so the writer lock is held only while committing and the CLI or the
  indexer can write between registrations (they get CatalogLocked -> UNAVAILABLE meanwhile).
- ``Core.claims``: the catalog's :class:`~engine.claims.ClaimStore` (``claims.sqlite``), which
  the screening servicer records claims in and the claims servicer reads and changes.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from nanhu.engine.catalog import Catalog, Conflict, Reference
from nanhu.engine.claims import ClaimStore, Viewer
from nanhu.engine.conflicts import find_overlaps
from nanhu.engine.errors import AlreadyExists, InvalidArgument, NotFound, PermissionDenied
from nanhu.engine.fingerprint import Fingerprint
from nanhu.engine.policy import Policy
from nanhu.server.auth import Principal
from nanhu.server.jobs import check_duration, manifest_generation

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limits:
    """What one call may ask of the server; beyond any of these: RESOURCE_EXHAUSTED."""

    #: largest upload accepted (bytes)
    max_upload_bytes: int = 512 * 2**20
    #: longest media accepted, uploads and fingerprints alike (seconds)
    max_duration_s: float = 3 * 3600.0
    #: screening and registration calls in progress at once
    max_concurrent: int = 64
    #: largest single gRPC message (a chunk or a fingerprint), bytes
    max_message_bytes: int = 64 * 2**20
    #: an upload stream that sends nothing for this long is ended (RESOURCE_EXHAUSTED), freeing
    #: its slot and spool file (seconds; None: wait as long as the call's deadline)
    upload_idle_s: float | None = 30.0
    #: how stale the read side may be after another process commits (seconds)
    refresh_interval_s: float = 1.0
    #: CPU seconds one worker job (decoding, fingerprinting, matching one upload or fingerprint)
    #: may use before it is stopped (None: no bound); see :class:`server.pool.JobBudget`
    job_cpu_s: float | None = 1800.0
    #: private memory (MiB) a worker may hold while it runs one job (None: no bound)
    job_memory_mb: float | None = 4096.0


class Snapshots:
    """The current read-only catalog; see the module docstring."""

    def __init__(self, path: Path, *, refresh_interval_s: float = 1.0) -> None:
        self.path = Path(path)
        self.refresh_interval_s = refresh_interval_s
        self._lock = threading.Lock()
        self._catalog = Catalog(self.path)
        self._checked = time.monotonic()

    def current(self) -> Catalog:
        if time.monotonic() - self._checked >= self.refresh_interval_s:
            self.refresh(wait=False)
        return self._catalog

    def refresh(self, *, wait: bool = True) -> bool:
        """Swap in the on-disk generation if it moved; True when it did.

        With ``wait=False`` a call that finds another thread refreshing goes on with the
        current catalog instead of waiting.
        """
        if not self._lock.acquire(blocking=wait):
            return False
        try:
            self._checked = time.monotonic()
            return self._reload()
        finally:
            self._lock.release()

    def _reload(self) -> bool:
        on_disk = manifest_generation(self.path)
        if on_disk is None or on_disk == self._catalog.generation:
            return False
        old = self._catalog.generation
        # Calls in flight keep the old catalog (closed when the last one drops it).
        self._catalog = Catalog(self.path)
        log.info("catalog refreshed generation=%d previous=%d", self._catalog.generation, old)
        return True


class Writer:
    """The single catalog writer: one mutation at a time, each its own commit."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    @contextmanager
    def open(self) -> Iterator[Catalog]:
        with self._lock, Catalog(self.path, writable=True) as catalog:
            try:
                yield catalog
            except BaseException:
                catalog.rollback()
                raise
            catalog.commit()


def claimed_digest(owner: str, digest: str) -> str:
    """How a client-supplied digest is stored: scoped to the owner that claimed it."""
    return f"claim:{owner}:{digest}"


def public_digest(reference: Reference) -> str:
    """The digest as the API shows it: a claim without its scope (what the client sent)."""
    scope = claimed_digest(reference.owner, "")
    return reference.digest.removeprefix(scope)


@dataclass(frozen=True)
class NewReference:
    """What a registration asks for (from a RegisterHeader)."""

    reference_id: str
    title: str = ""
    owner: str = ""
    metadata: dict | None = None
    policy: dict | None = None
    filename: str = ""


class Core:
    """The engine calls behind the RPCs, with tenancy checks; used by the servicers."""

    def __init__(self, catalog_dir: Path, limits: Limits) -> None:
        self.catalog_dir = Path(catalog_dir)
        self.limits = limits
        if not (self.catalog_dir / "manifest.json").exists():
            Catalog(self.catalog_dir, writable=True, create=True).close()
            log.info("catalog created path=%s", self.catalog_dir)
        self.snapshots = Snapshots(self.catalog_dir, refresh_interval_s=limits.refresh_interval_s)
        self.writer = Writer(self.catalog_dir)
        self.claims = ClaimStore(self.catalog_dir)

    @property
    def audio_params(self):
        return self.snapshots.current().audio_params

    # --- registration ------------------------------------------------------------------------
    def owner_for(self, principal: Principal, requested_owner: str) -> str:
        """The owner of a new work: the caller's tenant; admins may name another."""
        if requested_owner and requested_owner != principal.tenant:
            principal.require_owner(requested_owner, f"tenant {requested_owner!r}")
            return requested_owner
        return principal.tenant

    def precheck(self, new: NewReference) -> None:
        """Refuse a taken id before receiving the upload (the commit checks again)."""
        try:
            self.snapshots.current().get(new.reference_id)
        except NotFound:
            return
        raise AlreadyExists(f"reference id {new.reference_id!r} already exists",
                            existing_id=new.reference_id)

    def register(self, new: NewReference, fp: Fingerprint, *,
                 digest_trusted: bool = True) -> Reference:
        """Commit a new work. ``digest_trusted``: the server computed ``fp.digest`` from the
        media itself (uploads). An edge fingerprint's digest is only the client's claim: it is
        stored scoped to the owner (:func:`claimed_digest`), so it can refuse a duplicate of
        that owner's works but never another tenant's media."""
        check_duration(fp, new.filename or new.reference_id, self.limits.max_duration_s)
        if not digest_trusted and fp.digest:
            fp = dataclasses.replace(fp, digest=claimed_digest(new.owner, fp.digest))
        metadata = dict(new.metadata or {})
        if new.filename:
            metadata.setdefault("source", new.filename)
        try:
            overlaps = self._commit_new(new, fp, metadata)
        except AlreadyExists as exc:
            raise self._own_duplicate_only(exc, new) from None
        self.snapshots.refresh()
        reference = self.snapshots.current().get(new.reference_id)
        log.info("registered reference=%s owner=%s duration_s=%.1f overlaps=%d", reference.ref_id,
                 reference.owner or "-", reference.duration_s, overlaps)
        return reference

    def _commit_new(self, new: NewReference, fp: Fingerprint, metadata: dict) -> int:
        """Add and commit the work; returns how many overlaps with other works were stored."""
        with self.writer.open() as catalog:
            # Screened against the committed catalog under the writer lock, so no other
            # registration slips in between (engine.conflicts).
            overlaps = find_overlaps(catalog, fp)
            catalog.add(new.reference_id, fp, title=new.title or new.reference_id,
                        owner=new.owner, metadata=metadata, policy=new.policy or {},
                        overlaps=overlaps)
        return len(overlaps)

    def _own_duplicate_only(self, exc: AlreadyExists, new: NewReference) -> AlreadyExists:
        """The error to send for a duplicate: it names the existing work only to its owner."""
        existing = exc.existing_id
        if existing is None or existing == new.reference_id:
            return exc
        try:
            owner = self.snapshots.current().get(existing).owner
        except NotFound:  # staged in the same commit, or deleted meanwhile
            owner = None
        if owner == new.owner:
            return exc
        return AlreadyExists("the same content is already registered by another owner")

    # --- catalog management ------------------------------------------------------------------
    def get(self, principal: Principal, ref_id: str) -> Reference:
        reference = self.snapshots.current().get(ref_id)
        principal.require_owner(reference.owner, f"reference {ref_id!r}")
        return reference

    def list(self, principal: Principal, *, owner: str, page_size: int,
             after_id: str | None) -> tuple[list[Reference], str | None]:
        """One page in id order and the id to continue after (None on the last page)."""
        if not principal.is_admin:
            if owner and owner != principal.tenant:
                principal.require_owner(owner, f"the works of tenant {owner!r}")
            owner = principal.tenant
        size = min(max(page_size or 100, 1), 1000)
        page = self.snapshots.current().list(owner=owner or None, limit=size + 1,
                                                     after_id=after_id)
        more = len(page) > size
        page = page[:size]
        return page, page[-1].ref_id if more else None

    def delete(self, principal: Principal, ref_id: str) -> Reference:
        with self.writer.open() as catalog:
            reference = catalog.get(ref_id)
            principal.require_owner(reference.owner, f"reference {ref_id!r}")
            catalog.delete(ref_id)
        self.snapshots.refresh()
        log.info("deleted reference=%s owner=%s", ref_id, reference.owner or "-")
        return reference

    def set_policy(self, principal: Principal, ref_id: str, policy: dict) -> Reference:
        with self.writer.open() as catalog:
            reference = catalog.get(ref_id)
            principal.require_owner(reference.owner, f"reference {ref_id!r}")
            catalog.set_policy(ref_id, policy)
        self.snapshots.refresh()
        return self.snapshots.current().get(ref_id)

    def _policy_owner(self, principal: Principal, owner: str) -> str:
        """Whose default a call means: the named tenant (its own, or any for admins), else the
        caller's tenant."""
        owner = owner or principal.tenant
        if not owner:
            raise InvalidArgument("name the owner (tenant) whose default policy this is")
        principal.require_owner(owner, f"the default policy of tenant {owner!r}")
        return owner

    def set_owner_policy(self, principal: Principal, owner: str,
                         policy: dict) -> tuple[str, Policy | None]:
        owner = self._policy_owner(principal, owner)
        with self.writer.open() as catalog:
            catalog.set_owner_policy(owner, policy)
        self.snapshots.refresh()
        log.info("owner policy set owner=%s policy=%s", owner, policy.get("action") or "-")
        return owner, self.snapshots.current().owner_policy(owner)

    def get_owner_policy(self, principal: Principal, owner: str) -> tuple[str, Policy | None]:
        owner = self._policy_owner(principal, owner)
        return owner, self.snapshots.current().owner_policy(owner)

    def stats(self) -> dict:
        return self.snapshots.current().stats()

    # --- owners and reference conflicts ------------------------------------------------------
    def set_owner(self, principal: Principal, ref_id: str, owner: str) -> Reference:
        """Assign or transfer a work (admins only: unowned works are no tenant's to claim)."""
        if not principal.is_admin:
            raise PermissionDenied("only an admin key can assign or transfer a work's owner")
        with self.writer.open() as catalog:
            old = catalog.set_owner(ref_id, owner).owner
        self.snapshots.refresh()
        log.info("owner set reference=%s owner=%s previous=%s", ref_id, owner, old or "-")
        return self.snapshots.current().get(ref_id)

    def conflicts_of(self, reference: Reference) -> list[Conflict]:
        return self.snapshots.current().conflicts(ordinals=[reference.ordinal])

    def list_conflicts(self, principal: Principal, *, include_resolved: bool) -> list[Conflict]:
        found = self.snapshots.current().conflicts(include_resolved=include_resolved)
        if principal.is_admin:
            return found
        return [c for c in found if principal.tenant in (c.reference.owner, c.other.owner)]

    def resolve_conflict(self, principal: Principal, conflict_id: int, note: str) -> Conflict:
        """Accept a conflict: the owner of the earlier work (whose material it is) or an admin.
        A tenant whose works are not involved is told there is no such conflict."""
        with self.writer.open() as catalog:
            may_accept(principal, conflict_id, catalog.conflicts())
            catalog.resolve_conflict(conflict_id, by=principal.tenant or "admin", note=note)
        self.snapshots.refresh()
        return next(c for c in self.snapshots.current().conflicts(include_resolved=True)
                    if c.conflict_id == conflict_id)


def may_accept(principal: Principal, conflict_id: int, conflicts: list[Conflict]) -> Conflict:
    """The open conflict ``conflict_id`` of ``conflicts``, if ``principal`` may accept it: the
    owner of the earlier work or an admin; NotFound for a tenant whose works are not in it."""
    found = [c for c in conflicts if c.conflict_id == conflict_id]
    visible = found and (principal.is_admin or principal.tenant in (
        found[0].reference.owner, found[0].other.owner))
    if not visible:
        raise NotFound(f"no open reference conflict with id {conflict_id}")
    if not principal.is_admin and found[0].other.owner != principal.tenant:
        raise PermissionDenied(f"conflict {conflict_id}: only the owner of "
                               f"{found[0].other.ref_id!r} (or an admin) can accept it")
    return found[0]


def viewer_for(principal: Principal) -> Viewer:
    """Who a key is for claims: rights holder with ``register``, platform with ``screen``."""
    return Viewer(tenant=principal.tenant, rights_holder="register" in principal.roles,
                  platform="screen" in principal.roles, admin=principal.is_admin,
                  name=principal.key_id)
