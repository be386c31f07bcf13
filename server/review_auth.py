"""Who is using the review page: the same API keys as gRPC (:class:`server.auth.Authenticator`).

Two ways in:

- a browser logs in with its key once (``POST /login``); the server keeps a session in memory
  and the browser gets a cookie holding only a random session id (``HttpOnly``,
  ``SameSite=Strict``, ``Secure`` on TLS). The session keeps the key's *id*, never the key, and
  every request checks that key id is still active in the keys file, so revoking a key ends
  its sessions at once. Sessions end after :data:`IDLE_S` unused and at logout.
- a script sends the key itself (``Authorization: Bearer KEY`` or ``X-Api-Key: KEY``) on each
  request, as with gRPC.

Every state-changing request made with a session cookie must carry the session's CSRF token
(a hidden form field), and a request whose ``Origin`` is another site is refused; requests
that carry the key in a header need neither (a browser never adds that header by itself).
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field

from nanhu.engine.errors import PermissionDenied, Unauthenticated
from nanhu.server.auth import Authenticator, Principal

#: the session cookie, and the login form's own CSRF cookie (before there is a session)
COOKIE = "nanhu_review"
LOGIN_COOKIE = "nanhu_review_login"
#: a session unused this long ends (seconds)
IDLE_S = 8 * 3600.0
#: sessions kept at once; past it the least recently used one ends
MAX_SESSIONS = 10_000


@dataclass
class Session:
    session_id: str
    key_id: str
    csrf: str
    last_used: float = field(default_factory=time.monotonic)


class Sessions:
    """The review page's sessions, in memory (a restart logs everyone out)."""

    def __init__(self, auth: Authenticator, *, idle_s: float = IDLE_S,
                 max_sessions: int = MAX_SESSIONS) -> None:
        self.auth = auth
        self.idle_s = idle_s
        self.max_sessions = max_sessions
        self._lock = threading.Lock()
        self._sessions: OrderedDict[str, Session] = OrderedDict()

    def login(self, key: str) -> tuple[Principal, Session]:
        """A new session for ``key``; Unauthenticated for an unknown or revoked key."""
        key = (key or "").strip()
        if self.auth.enabled and not key:
            raise Unauthenticated("give your API key")
        principal = self.auth.verify(key)
        session = Session(session_id=secrets.token_urlsafe(32), key_id=principal.key_id,
                          csrf=secrets.token_urlsafe(32))
        with self._lock:
            self._sessions[session.session_id] = session
            while len(self._sessions) > self.max_sessions:
                self._sessions.popitem(last=False)
        return principal, session

    def resume(self, session_id: str | None) -> tuple[Principal, Session] | None:
        """The principal and session of a cookie's id, while both live; else None."""
        if not session_id:
            return None
        now = time.monotonic()
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None:
                return None
            if now - session.last_used > self.idle_s:
                del self._sessions[session_id]
                return None
            session.last_used = now
            self._sessions.move_to_end(session_id)
        principal = self.auth.active(session.key_id)
        if principal is None:  # the key was revoked: so is every session made with it
            self.logout(session_id)
            return None
        return principal, session

    def logout(self, session_id: str | None) -> None:
        with self._lock:
            self._sessions.pop(session_id or "", None)


def key_from_headers(headers) -> str | None:
    """The key of ``Authorization: Bearer KEY`` or ``X-Api-Key: KEY``, if any."""
    value = headers.get("authorization", "")
    if value.lower().startswith("bearer ") and value[7:].strip():
        return value[7:].strip()
    return (headers.get("x-api-key") or "").strip() or None


def check_csrf(expected: str, given: str | None) -> None:
    """PermissionDenied unless the form's token is the session's."""
    if not given or not hmac.compare_digest(expected.encode(), str(given).encode()):
        raise PermissionDenied("this form is stale or was not sent by this page (CSRF token "
                               "missing or wrong); reload the page and try again")


def check_origin(headers, scheme: str) -> None:
    """PermissionDenied for a request a page of another site sent (its ``Origin``)."""
    origin = headers.get("origin")
    if origin and origin != f"{scheme}://{headers.get('host', '')}":
        raise PermissionDenied(f"requests from {origin} are not accepted")
