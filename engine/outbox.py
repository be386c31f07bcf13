"""Webhooks for claims: each tenant's URL and secret, and the outbox of events to deliver.

A tenant may register one webhook URL (``nanhu webhook set``, gRPC ``SetWebhook``). Every new
claim and every status change is an event for both parties of the claim (the work's owner and
the platform that screened), queued for those of them with a webhook in the *same* SQLite
transaction as the change itself (:class:`engine.claims.ClaimStore`): an event is never lost
once its change commits, nor sent for a change that did not. ``nanhu serve`` delivers them off
the request path (``server.webhooks``), with retries and backoff; deliveries survive a restart.

The body is JSON::

    {"event": "claim.created" | "claim.status_changed", "delivery_id": "...",
     "recipient": TENANT, "created_at": EPOCH_S, "claim": {...}, "change": {...} | null}

signed with the tenant's secret: ``X-Nanhu-Signature: sha256=HEX`` where ``HEX`` is
HMAC-SHA256(secret, ``TIMESTAMP + "." + BODY``) and ``TIMESTAMP`` is the ``X-Nanhu-Timestamp``
header (epoch seconds of the attempt; refuse old ones to stop replays). :func:`verify` checks
both.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from nanhu.engine.errors import InvalidArgument

log = logging.getLogger(__name__)

#: events waiting for delivery, at most; beyond, new events are dropped (and logged)
MAX_PENDING = 10_000
#: failed deliveries are kept this long for inspection (seconds), then purged
KEEP_FAILED_S = 7 * 86_400.0
MAX_URL_CHARS = 2048
MIN_SECRET_CHARS = 16
SIGNATURE_HEADER = "X-Nanhu-Signature"
TIMESTAMP_HEADER = "X-Nanhu-Timestamp"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS webhooks (
    tenant TEXT PRIMARY KEY,
    url TEXT NOT NULL,
    secret TEXT NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS outbox (
    delivery_id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    event TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at REAL NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    last_error TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox(state, next_at);
"""


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """``sha256=HEX``: HMAC-SHA256 of ``timestamp + "." + body`` under ``secret``."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(secret: str, timestamp: str, body: bytes, signed: str, *,
           max_age_s: float = 300.0, now: float | None = None) -> bool:
    """True when ``signed`` (the signature header) is ``body``'s under ``secret`` and the
    timestamp is at most ``max_age_s`` old: what a receiver checks."""
    try:
        age = (time.time() if now is None else now) - float(timestamp)
    except ValueError:
        return False
    return abs(age) <= max_age_s and hmac.compare_digest(signature(secret, timestamp, body), signed)


def check_url(url: str) -> str:
    """An http(s) URL with a host, at most :data:`MAX_URL_CHARS`."""
    url = str(url or "").strip()
    parts = urlsplit(url)
    if len(url) > MAX_URL_CHARS or parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidArgument(f"webhook URL {url[:80]!r} is not an http:// or https:// URL with a "
                              f"host (at most {MAX_URL_CHARS} characters)")
    return url


@dataclass(frozen=True)
class Delivery:
    """One attempt to make: the event, and where and how to send it."""

    delivery_id: str
    tenant: str
    event: str
    body: bytes
    attempts: int
    url: str
    secret: str


class Outbox:
    """The webhook tables of a claims database: ``db`` is the claim store's connection,
    ``lock`` guards every use of it, ``transaction`` opens a write transaction on it;
    :meth:`announce` runs inside the caller's."""

    def __init__(self, db: sqlite3.Connection, transaction: Callable,
                 lock: threading.RLock) -> None:
        self._db = db
        self._transaction = transaction
        self._lock = lock

    def create_tables(self) -> None:
        self._db.executescript(_SCHEMA)

    # --- the tenants' webhooks -----------------------------------------------------------
    def set_webhook(self, tenant: str, url: str, secret: str | None = None) -> dict:
        """Set ``tenant``'s webhook; a new random secret unless one is given. Returns
        ``{"tenant", "url", "secret"}``: the only time the secret is shown."""
        url = check_url(url)
        if secret is not None and len(secret) < MIN_SECRET_CHARS:
            raise InvalidArgument(f"a webhook secret needs at least {MIN_SECRET_CHARS} characters")
        secret = secret or secrets.token_hex(32)
        with self._transaction() as db:
            db.execute("INSERT INTO webhooks VALUES (?,?,?,?) ON CONFLICT(tenant) DO UPDATE SET "
                       "url = excluded.url, secret = excluded.secret, updated_at = excluded.updated_at",
                       (tenant, url, secret, time.time()))
        log.info("webhook set tenant=%s url=%s", tenant or "-", url)
        return {"tenant": tenant, "url": url, "secret": secret}

    def webhook(self, tenant: str) -> dict | None:
        """``{"tenant", "url", "pending", "failed"}`` (never the secret), or None."""
        with self._lock:
            row = self._db.execute("SELECT url FROM webhooks WHERE tenant = ?", (tenant,)).fetchone()
            if row is None:
                return None
            counts = dict(self._db.execute("SELECT state, COUNT(*) FROM outbox WHERE tenant = ? "
                                           "GROUP BY state", (tenant,)).fetchall())
        return {"tenant": tenant, "url": row[0], "pending": counts.get("pending", 0),
                "failed": counts.get("failed", 0)}

    def clear_webhook(self, tenant: str) -> bool:
        """Remove the webhook and its undelivered events; False when there was none."""
        with self._transaction() as db:
            gone = db.execute("DELETE FROM webhooks WHERE tenant = ?", (tenant,)).rowcount
            db.execute("DELETE FROM outbox WHERE tenant = ?", (tenant,))
        return bool(gone)

    # --- events --------------------------------------------------------------------------
    def announce(self, event: str, claim: dict, *, now: float, change: dict | None = None) -> int:
        """Queue ``event`` about ``claim`` for each of its parties with a webhook (inside the
        caller's transaction); returns how many were queued."""
        recipients = sorted({claim["owner"], claim["tenant"]} - {""})
        if not recipients:
            return 0
        marks = ",".join("?" * len(recipients))
        hooked = [r[0] for r in self._db.execute(
            f"SELECT tenant FROM webhooks WHERE tenant IN ({marks})", recipients)]
        if not hooked:
            return 0
        pending = self._db.execute("SELECT COUNT(*) FROM outbox WHERE state = 'pending'").fetchone()[0]
        queued = 0
        for tenant in hooked:
            if pending + queued >= MAX_PENDING:
                log.warning("webhook event dropped: %d deliveries already pending (the limit) "
                            "event=%s claim=%s tenant=%s", pending, event, claim["claim_id"], tenant)
                continue
            delivery_id = "dlv_" + uuid.uuid4().hex[:20]
            body = json.dumps({"event": event, "delivery_id": delivery_id, "recipient": tenant,
                               "created_at": now, "claim": {k: v for k, v in claim.items()
                                                            if k != "seq"},
                               "change": change}, sort_keys=True)
            self._db.execute("INSERT INTO outbox (delivery_id, tenant, event, body, created_at, "
                             "next_at) VALUES (?,?,?,?,?,?)",
                             (delivery_id, tenant, event, body, now, now))
            queued += 1
        return queued

    def due(self, *, now: float | None = None, limit: int = 20, lease_s: float = 60.0) -> list[Delivery]:
        """Up to ``limit`` deliveries due now, leased for ``lease_s`` (another sender on the
        same file skips them meanwhile); events of tenants whose webhook is gone are dropped."""
        now = time.time() if now is None else now
        with self._transaction() as db:
            db.execute("DELETE FROM outbox WHERE state = 'failed' AND created_at < ?",
                       (now - KEEP_FAILED_S,))
            rows = db.execute(
                "SELECT o.delivery_id, o.tenant, o.event, o.body, o.attempts, w.url, w.secret "
                "FROM outbox o LEFT JOIN webhooks w ON w.tenant = o.tenant "
                "WHERE o.state = 'pending' AND o.next_at <= ? ORDER BY o.next_at LIMIT ?",
                (now, int(limit))).fetchall()
            out = []
            for delivery_id, tenant, event, body, attempts, url, secret in rows:
                if url is None:
                    db.execute("DELETE FROM outbox WHERE delivery_id = ?", (delivery_id,))
                    continue
                db.execute("UPDATE outbox SET next_at = ? WHERE delivery_id = ?",
                           (now + lease_s, delivery_id))
                out.append(Delivery(delivery_id, tenant, event, body.encode(), attempts, url, secret))
        return out

    def next_due_at(self) -> float | None:
        """When the next pending delivery is due (epoch seconds), or None."""
        with self._lock:
            return self._db.execute(
                "SELECT MIN(next_at) FROM outbox WHERE state = 'pending'").fetchone()[0]

    def delivered(self, delivery_id: str) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM outbox WHERE delivery_id = ?", (delivery_id,))

    def retry_later(self, delivery_id: str, error: str, next_at: float | None) -> None:
        """Count a failed attempt; try again at ``next_at``, or give up (None)."""
        with self._transaction() as db:
            db.execute("UPDATE outbox SET attempts = attempts + 1, last_error = ?, next_at = ?, "
                       "state = ? WHERE delivery_id = ?",
                       (error[:500], next_at if next_at is not None else time.time(),
                        "pending" if next_at is not None else "failed", delivery_id))

    def pending(self) -> int:
        with self._lock:
            return self._db.execute(
                "SELECT COUNT(*) FROM outbox WHERE state = 'pending'").fetchone()[0]
