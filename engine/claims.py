"""Claims: what a screening leaves behind when it matches a work whose policy acts.

A screening (over gRPC, or ``nanhu query --record-claims``) that reports a match with an action
(``block``, ``monetize``, ``track``, ``review``; not ``none``) records one claim per matched
work: the platform's tenant and upload id, the call's request id, the work and its owner, the
action, the matches, and a status with its history. Rights holders (the work's owner) and
platforms (the tenant that screened) then move the claim through :data:`TRANSITIONS`::

    open -> confirmed | released (rights holder), disputed (platform)
    confirmed -> released (rights holder), disputed (platform)
    disputed -> reinstated | released (rights holder)
    reinstated -> released (rights holder)

``released`` is final; :func:`allowed_changes` says what a viewer may do next (the rules live
in :mod:`engine.claim_rules`). Anyone else is told the claim does not exist (:class:`NotFound`),
never that it belongs to someone else.

Storage: ``claims.sqlite`` beside the catalog's ``meta.sqlite`` (its own file: claims are not
versioned by catalog generations). WAL, ``synchronous=FULL``, one SQLite transaction per
change holding the claim, its history entry and its webhook events (:mod:`engine.outbox`), so
a crash at any point loses nothing committed and leaves nothing half-written. A claim recorded
from a media file with video evidence keeps a few small pictures of the upload's matched
keyframes (:mod:`engine.thumbnails`, table ``claim_thumbnails``, the same transaction; an
added table that earlier readers of this version ignore). Format version in
``PRAGMA user_version`` (:data:`CLAIMS_VERSION`); a newer one is refused.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from nanhu.engine import thumbnails as thumbs
from nanhu.engine.claim_rules import (  # noqa: F401 - the rules are part of this module's API
    LOCAL_ADMIN,
    PLATFORM,
    RIGHTS_HOLDER,
    STATUSES,
    TRANSITIONS,
    Viewer,
    allowed_changes,
    parse_status,
)
from nanhu.engine.errors import (
    CatalogCorrupt,
    CatalogLocked,
    InvalidArgument,
    InvalidState,
    NotFound,
    PermissionDenied,
    VersionMismatch,
)
from nanhu.engine.policy import NO_ACTION
from nanhu.engine.thumbnails import Thumbnail
from nanhu.engine.verdict import Match

log = logging.getLogger(__name__)

FILE_NAME = "claims.sqlite"
CLAIMS_VERSION = 1
#: a claim's action when its work's matches ask for several (one policy gives one, normally)
_SEVERITY = ("block", "monetize", "review", "track")
MAX_NOTE_CHARS = 2000
MAX_UPLOAD_ID_CHARS = 200

_SCHEMA = """
CREATE TABLE IF NOT EXISTS claims (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    claim_id TEXT NOT NULL UNIQUE,
    status TEXT NOT NULL,
    action TEXT NOT NULL,
    reference_id TEXT NOT NULL,
    title TEXT NOT NULL DEFAULT '',
    owner TEXT NOT NULL DEFAULT '',
    tenant TEXT NOT NULL DEFAULT '',
    upload_id TEXT NOT NULL DEFAULT '',
    request_id TEXT NOT NULL DEFAULT '',
    filename TEXT NOT NULL DEFAULT '',
    duration_s REAL NOT NULL DEFAULT 0,
    matches TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS claims_owner ON claims(owner, seq);
CREATE INDEX IF NOT EXISTS claims_tenant ON claims(tenant, seq);
CREATE UNIQUE INDEX IF NOT EXISTS claims_upload ON claims(tenant, upload_id, reference_id)
    WHERE upload_id != '';
CREATE TABLE IF NOT EXISTS claim_history (
    claim_seq INTEGER NOT NULL,
    at REAL NOT NULL,
    who TEXT NOT NULL,
    party TEXT NOT NULL,
    from_status TEXT NOT NULL,
    to_status TEXT NOT NULL,
    note TEXT NOT NULL DEFAULT '',
    request_id TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS claim_history_claim ON claim_history(claim_seq);
"""


def claims_path(catalog_dir: str | Path) -> Path:
    return Path(catalog_dir) / FILE_NAME


def _new_claim_id() -> str:
    return "clm_" + uuid.uuid4().hex[:20]


_COLUMNS = ("seq, claim_id, status, action, reference_id, title, owner, tenant, upload_id, "
            "request_id, filename, duration_s, matches, created_at, updated_at")


def _row_to_claim(row: tuple) -> dict:
    names = [c.strip() for c in _COLUMNS.split(",")]
    claim = dict(zip(names, row))
    claim["matches"] = json.loads(claim["matches"])
    return claim


class ClaimStore:
    """``claims.sqlite`` of a catalog directory; thread-safe (one connection, one lock).

    ``outbox`` (an :class:`engine.outbox.Outbox` on the same connection) receives a webhook
    event per new claim and status change, in the same transaction.
    """

    def __init__(self, path: str | Path) -> None:
        from nanhu.engine.outbox import Outbox

        self.path = Path(path)
        if self.path.is_dir():
            self.path = claims_path(self.path)
        if not self.path.parent.is_dir():
            raise NotFound(f"{self.path.parent}: no catalog here (claims live beside one)")
        if not self.path.exists():
            # Webhook secrets live here: readable by the service's user only.
            os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
        self._lock = threading.RLock()
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=5.0,
                                       isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version > CLAIMS_VERSION:
                raise VersionMismatch(
                    f"{self.path}: claims format version {version} was written by a newer Nanhu "
                    f"(this one reads up to {CLAIMS_VERSION}); upgrade Nanhu")
            # Every statement is idempotent (IF NOT EXISTS); executescript commits as it goes.
            self._db.executescript(_SCHEMA)
            self._db.executescript(thumbs.SCHEMA)
            self.outbox = Outbox(self._db, self._transaction, self._lock)
            self.outbox.create_tables()
            self._db.execute(f"PRAGMA user_version = {CLAIMS_VERSION}")
        except sqlite3.DatabaseError as exc:
            raise CatalogCorrupt(f"{self.path}: unreadable claims ({exc})") from exc

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def __enter__(self) -> ClaimStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (``BEGIN IMMEDIATE``: the write lock up front, so two writers
        never both read a status and then both change it)."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                if "locked" in str(exc) or "busy" in str(exc):
                    raise CatalogLocked(f"{self.path}: claims are being written by another "
                                        "process; retry") from exc
                raise
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # --- recording -----------------------------------------------------------------------
    def record(self, matches: Iterable[Match], *, tenant: str, request_id: str = "",
               upload_id: str = "", filename: str = "", duration_s: float = 0.0,
               thumbnails: Iterable[Thumbnail] = (), now: float | None = None) -> dict[str, str]:
        """Record a claim per work with an acting match (action not ``none``) of one screening,
        set ``claim_id`` on those matches, and return ``{reference_id: claim_id}``.

        With an ``upload_id``, a work the same tenant already has a claim on for that upload
        keeps its claim (a retried or repeated screening does not claim twice). Nothing is
        written when no match acts. ``thumbnails`` (pictures of the upload) go with the claims
        whose video matches span them, at most :data:`engine.thumbnails.PER_CLAIM` each."""
        upload_id = str(upload_id or "")
        if len(upload_id) > MAX_UPLOAD_ID_CHARS:
            raise InvalidArgument(f"upload_id is {len(upload_id)} characters long; at most "
                                  f"{MAX_UPLOAD_ID_CHARS}")
        by_work: dict[str, list[Match]] = {}
        for match in matches:
            if match.action != NO_ACTION:
                by_work.setdefault(match.reference_id, []).append(match)
        if not by_work:
            return {}
        now = time.time() if now is None else now
        thumbnails = list(thumbnails)
        ids: dict[str, str] = {}
        created: list[dict] = []
        with self._transaction() as db:
            for reference_id, group in by_work.items():
                if upload_id:
                    row = db.execute("SELECT claim_id FROM claims WHERE tenant = ? AND upload_id = ?"
                                     " AND reference_id = ?", (tenant, upload_id, reference_id)
                                     ).fetchone()
                    if row is not None:
                        ids[reference_id] = row[0]
                        continue
                claim_id = _new_claim_id()
                actions = {m.action for m in group}
                action = next((a for a in _SEVERITY if a in actions), group[0].action)
                # the exact score: to_dict's rounded one would lose expected_false_matches
                stored = [{**m.to_dict(), "score": m.score, "claim_id": claim_id} for m in group]
                cursor = db.execute(
                    f"INSERT INTO claims ({_COLUMNS.split(', ', 1)[1]}) "
                    "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (claim_id, "open", action, reference_id, group[0].title, group[0].owner,
                     tenant, upload_id, request_id, filename, float(duration_s),
                     json.dumps(stored), now, now))
                note = f"recorded by screening request {request_id}" if request_id else \
                    "recorded by a screening"
                db.execute("INSERT INTO claim_history VALUES (?,?,?,?,?,?,?,?)",
                           (cursor.lastrowid, now, tenant or "local", "system", "", "open", note,
                            request_id))
                if thumbnails:
                    thumbs.store(db, cursor.lastrowid, thumbs.for_matches(thumbnails, group))
                ids[reference_id] = claim_id
                created.append(self._get(db, claim_id))
            for claim in created:
                self.outbox.announce("claim.created", shown(claim), now=now)
        for match in (m for group in by_work.values() for m in group):
            match.claim_id = ids[match.reference_id]
        if created:
            log.info("claims recorded claims=%s request_id=%s", ",".join(c["claim_id"] for c in created),
                     request_id or "-")
        return ids

    # --- reading -------------------------------------------------------------------------
    def _get(self, db: sqlite3.Connection, claim_id: str) -> dict | None:
        row = db.execute(f"SELECT {_COLUMNS} FROM claims WHERE claim_id = ?",
                         (str(claim_id),)).fetchone()
        if row is None:
            return None
        claim = _row_to_claim(row)
        claim["history"] = [
            {"at": at, "who": who, "party": party, "from": old, "to": new, "note": note,
             "request_id": request_id}
            for at, who, party, old, new, note, request_id in db.execute(
                "SELECT at, who, party, from_status, to_status, note, request_id FROM "
                "claim_history WHERE claim_seq = ? ORDER BY rowid", (claim["seq"],))]
        return claim

    def get(self, viewer: Viewer, claim_id: str) -> dict:
        """The claim, if ``viewer`` is one of its parties; else NotFound, as for no claim."""
        with self._lock:
            claim = self._get(self._db, claim_id)
        if claim is None or not viewer.parties(claim):
            raise NotFound(f"no claim with id {claim_id!r}")
        return public(claim)

    def list(self, viewer: Viewer, *, status: str | None = None, reference_id: str | None = None,
             upload_id: str | None = None, action: str | None = None, modality: str | None = None,
             limit: int = 100, before: int | None = None) -> tuple[list[dict], int | None]:
        """The claims ``viewer`` is a party of, newest first: one page of at most ``limit`` and
        the cursor of the next page (``before=``; None on the last page). ``modality``: claims
        with at least one match of it (``audio``, ``video``, ``audio+video``)."""
        where, args = [], []
        if not viewer.admin:
            sides = []
            if viewer.rights_holder and viewer.tenant:
                sides.append("owner = ?")
                args.append(viewer.tenant)
            if viewer.platform and viewer.tenant:
                sides.append("tenant = ?")
                args.append(viewer.tenant)
            if not sides:
                return [], None
            where.append("(" + " OR ".join(sides) + ")")
        for column, value in (("status", status and parse_status(status)),
                              ("reference_id", reference_id), ("upload_id", upload_id),
                              ("action", action)):
            if value:
                where.append(f"{column} = ?")
                args.append(value)
        if modality:
            where.append("EXISTS (SELECT 1 FROM json_each(claims.matches) "
                         "WHERE json_extract(value, '$.modality') = ?)")
            args.append(modality)
        if before is not None:
            where.append("seq < ?")
            args.append(int(before))
        limit = min(max(int(limit or 100), 1), 1000)
        sql = f"SELECT claim_id FROM claims {'WHERE ' + ' AND '.join(where) if where else ''} " \
              "ORDER BY seq DESC LIMIT ?"
        with self._lock:
            ids = [r[0] for r in self._db.execute(sql, (*args, limit + 1)).fetchall()]
            claims = [self._get(self._db, claim_id) for claim_id in ids[:limit]]
        more = len(ids) > limit
        return [public(c) for c in claims], claims[-1]["seq"] if more else None

    def thumbnails(self, viewer: Viewer, claim_id: str) -> list[Thumbnail]:
        """The pictures of the upload kept with the claim (as :meth:`get`, NotFound for a
        claim the viewer is no party of)."""
        with self._lock:
            claim = self._get(self._db, claim_id)
            if claim is None or not viewer.parties(claim):
                raise NotFound(f"no claim with id {claim_id!r}")
            return thumbs.load(self._db, claim["seq"])

    # --- resolving -----------------------------------------------------------------------
    def resolve(self, viewer: Viewer, claim_id: str, status: str, *, note: str = "",
                request_id: str = "", now: float | None = None) -> dict:
        """Move the claim to ``status`` as ``viewer``; returns the claim after the change.

        NotFound for a claim the viewer is no party of; PermissionDenied for a change that is
        the other party's to make; InvalidState for a change the claim's status does not allow.
        """
        status = parse_status(status)
        note = str(note or "")
        if len(note) > MAX_NOTE_CHARS:
            raise InvalidArgument(f"note is {len(note)} characters long; at most {MAX_NOTE_CHARS}")
        now = time.time() if now is None else now
        with self._transaction() as db:
            claim = self._get(db, claim_id)
            parties = viewer.parties(claim) if claim is not None else set()
            if not parties:
                raise NotFound(f"no claim with id {claim_id!r}")
            current = claim["status"]
            party = TRANSITIONS.get((current, status))
            if party is None:
                allowed = sorted(to for (old, to) in TRANSITIONS if old == current)
                then = f"it can become {' or '.join(allowed)}" if allowed else "that is final"
                raise InvalidState(f"claim {claim_id} is {current}; {then} (not {status})")
            if party not in parties:
                who = ("the rights holder of the work" if party == RIGHTS_HOLDER
                       else "the platform that screened the upload")
                raise PermissionDenied(f"claim {claim_id}: only {who} can make it {status}")
            db.execute("UPDATE claims SET status = ?, updated_at = ? WHERE seq = ?",
                       (status, now, claim["seq"]))
            db.execute("INSERT INTO claim_history VALUES (?,?,?,?,?,?,?,?)",
                       (claim["seq"], now, viewer.who, "admin" if viewer.admin else party, current,
                        status, note, request_id))
            after = self._get(db, claim_id)
            self.outbox.announce("claim.status_changed", shown(after), now=now,
                                 change=after["history"][-1])
        log.info("claim resolved claim=%s from=%s to=%s who=%s", claim_id, current, status,
                 viewer.who)
        return public(after)

    def counts(self) -> dict[str, int]:
        """Claims per status (every tenant's)."""
        with self._lock:
            rows = self._db.execute("SELECT status, COUNT(*) FROM claims GROUP BY status").fetchall()
        return {status: 0 for status in STATUSES} | dict(rows)


def public(claim: dict) -> dict:
    """A claim without its storage sequence number; its matches keep their exact scores (for
    :meth:`Match.from_dict`)."""
    return {k: v for k, v in claim.items() if k != "seq"}


def shown(claim: dict) -> dict:
    """A claim as people and scripts see it: its matches in :meth:`Match.to_dict`'s form, as
    the screening returned them (``nanhu claims --json``, webhook bodies)."""
    return {**public(claim), "matches": [Match.from_dict(m).to_dict() for m in claim["matches"]]}

