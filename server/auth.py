"""API keys: stored hashed in a JSON file, each bound to one tenant and a set of roles.

A key is ``nanhu_<key_id>_<secret>`` and is shown once, when ``nanhu keys add`` makes it. The
file keeps only ``sha256(salt || key)`` with a random per-file salt (keys are 256-bit random,
so a slow hash buys nothing), plus the key id, tenant, roles and dates::

    {"format": "nanhu-keys", "version": 1, "salt": "<hex>",
     "keys": [{"key_id": "3f9a0c1d", "tenant": "acme", "roles": ["register"],
               "sha256": "<hex>", "created_at": 1700000000.0, "revoked_at": null, "note": ""}]}

The server re-reads the file when it changes, so added and revoked keys take effect at once.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from nanhu.engine.errors import CatalogCorrupt, InvalidArgument, NotFound, PermissionDenied, Unauthenticated

log = logging.getLogger(__name__)

FORMAT = "nanhu-keys"
FORMAT_VERSION = 1
#: screen: Screening/*; register: Catalog/* on the tenant's own works; admin: everything.
ROLES = ("screen", "register", "admin")


@dataclass(frozen=True)
class Principal:
    """Who is calling: a tenant and its roles."""

    tenant: str
    roles: frozenset
    key_id: str = ""

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles

    def require(self, role: str) -> Principal:
        if role not in self.roles and not self.is_admin:
            raise PermissionDenied(
                f"key {self.key_id or '-'} of tenant {self.tenant!r} lacks the {role!r} role"
            )
        return self

    def require_owner(self, owner: str, what: str) -> None:
        if not self.is_admin and owner != self.tenant:
            raise PermissionDenied(f"{what} belongs to another tenant")


#: Who calls when the server runs without a keys file (it then binds loopback only).
LOCAL = Principal(tenant="", roles=frozenset(ROLES), key_id="local")


def _hash(salt: str, key: str) -> str:
    return hashlib.sha256(bytes.fromhex(salt) + key.encode()).hexdigest()


class KeyFile:
    """The keys file: load, add, revoke, verify. Writes are atomic (temp file + rename)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.data = self._read() if self.path.exists() else {
            "format": FORMAT, "version": FORMAT_VERSION, "salt": secrets.token_hex(16), "keys": []
        }
        self._by_hash = {k["sha256"]: k for k in self.data["keys"] if not k.get("revoked_at")}

    def _read(self) -> dict:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError) as exc:
            raise CatalogCorrupt(f"{self.path}: unreadable keys file ({exc})") from exc
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise CatalogCorrupt(f"{self.path}: not a Nanhu keys file")
        if data.get("version") != FORMAT_VERSION:
            raise CatalogCorrupt(f"{self.path}: keys file version {data.get('version')} is not supported")
        return data

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(self.data, handle, indent=1)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.path)

    def add(self, tenant: str, roles: list[str], *, note: str = "") -> tuple[str, str]:
        """Make a key; returns ``(key_id, key)``. Only the hash is kept: show the key now."""
        bad = sorted(set(roles) - set(ROLES))
        if bad or not roles:
            raise InvalidArgument(f"roles must be some of {', '.join(ROLES)} (got {roles})")
        if not tenant or not tenant.replace("-", "").replace("_", "").replace(".", "").isalnum():
            raise InvalidArgument(f"tenant {tenant!r}: use letters, digits and -_.")
        key_id = secrets.token_hex(4)
        key = f"nanhu_{key_id}_{secrets.token_urlsafe(32)}"
        entry = {"key_id": key_id, "tenant": tenant, "roles": sorted(set(roles)),
                 "sha256": _hash(self.data["salt"], key), "created_at": time.time(),
                 "revoked_at": None, "note": note}
        self.data["keys"].append(entry)
        self._by_hash[entry["sha256"]] = entry
        return key_id, key

    def revoke(self, key_id: str) -> dict:
        for entry in self.data["keys"]:
            if entry["key_id"] == key_id and not entry.get("revoked_at"):
                entry["revoked_at"] = time.time()
                self._by_hash.pop(entry["sha256"], None)
                return entry
        raise NotFound(f"{self.path}: no active key with id {key_id!r}")

    def entries(self) -> list[dict]:
        return [{k: v for k, v in e.items() if k != "sha256"} for e in self.data["keys"]]

    def verify(self, key: str) -> Principal | None:
        digest = _hash(self.data["salt"], key)
        entry = self._by_hash.get(digest)
        if entry is None or not hmac.compare_digest(entry["sha256"], digest):
            return None
        return Principal(tenant=entry["tenant"], roles=frozenset(entry["roles"]), key_id=entry["key_id"])


def key_from_metadata(metadata) -> str | None:
    """The key of ``x-api-key: KEY`` or ``authorization: Bearer KEY``, if any."""
    for name, value in metadata or ():
        if name == "x-api-key" and value:
            return value.strip()
        if name == "authorization" and value.lower().startswith("bearer "):
            return value[7:].strip()
    return None


class Authenticator:
    """Resolves a call's metadata to a :class:`Principal`; None as the file means no auth."""

    def __init__(self, key_file: str | Path | None) -> None:
        self.path = Path(key_file) if key_file is not None else None
        self._lock = threading.Lock()
        self._stamp = None
        self._keys: KeyFile | None = None
        if self.path is not None:
            if not self.path.exists():
                raise NotFound(f"{self.path}: no keys file (make one with `nanhu keys add --file "
                               f"{self.path} --tenant NAME --role screen`)")
            self._reload()

    @property
    def enabled(self) -> bool:
        return self.path is not None

    def _reload(self) -> None:
        try:
            st = self.path.stat()
        except OSError as exc:
            log.warning("keys file %s unreadable, keeping the loaded keys (%s)", self.path, exc)
            return
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        if stamp == self._stamp:
            return
        try:
            keys = KeyFile(self.path)
        except CatalogCorrupt as exc:
            if self._keys is None:
                raise
            log.warning("%s; keeping the loaded keys", exc)
            return
        self._keys, self._stamp = keys, stamp
        log.info("keys loaded file=%s active=%d", self.path, len(keys._by_hash))

    def principal(self, context) -> Principal:
        """Who calls; raises Unauthenticated for a missing, unknown or revoked key."""
        if self.path is None:
            return LOCAL
        key = key_from_metadata(context.invocation_metadata())
        if not key:
            raise Unauthenticated("no API key: send it as 'x-api-key' or 'authorization: Bearer' metadata")
        return self.verify(key)

    def _current(self) -> KeyFile:
        with self._lock:
            self._reload()
            return self._keys

    def verify(self, key: str) -> Principal:
        """The principal of ``key`` (any caller: gRPC metadata, the review page's login form or
        its ``Authorization`` header); Unauthenticated for an unknown or revoked one."""
        if self.path is None:
            return LOCAL
        principal = self._current().verify(key)
        if principal is None:
            raise Unauthenticated("unknown or revoked API key")
        return principal

    def active(self, key_id: str) -> Principal | None:
        """The principal of the active key ``key_id`` as the keys file says now (None once it is
        revoked): a review-page session holds only a key id and is checked with this."""
        if self.path is None:
            return LOCAL if key_id == LOCAL.key_id else None
        for entry in self._current().data["keys"]:
            if entry["key_id"] == key_id and not entry.get("revoked_at"):
                return Principal(tenant=entry["tenant"], roles=frozenset(entry["roles"]),
                                 key_id=key_id)
        return None
