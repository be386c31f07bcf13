"""The review page: a small web UI for claims beside the gRPC service (``nanhu serve --http``).

Starlette routes over the same state as the gRPC servicers (:class:`server.servicers.Shared`):
the claims are read and changed only through :class:`engine.claims.ClaimStore` with the
caller's :func:`server.service.viewer_for` viewer, so a page shows and allows exactly what the
``Claims`` RPCs and ``nanhu claims`` do. Sign-in and CSRF: :mod:`server.review_auth`.

    GET  /login, POST /login, POST /logout
    GET  /claims?status=&action=&modality=&reference=&upload=&before=   the list, newest first
    GET  /claims/{id}                                                    one claim
    GET  /claims/{id}/thumbnails/{n}                                     a picture of the upload
    POST /claims/{id}/resolve   (status, note, csrf)                     as `nanhu claims resolve`

A request with ``Accept: application/json`` gets the list or the claim as JSON (the objects
``nanhu claims list|show --json`` print). Served by uvicorn in a thread of the server process
(:class:`ReviewServer`).
"""

from __future__ import annotations

import logging
import secrets
import socket
import threading
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from nanhu.engine.claims import STATUSES, allowed_changes, shown
from nanhu.engine.cli_text import iso_time
from nanhu.engine.errors import (
    CatalogLocked,
    InvalidArgument,
    InvalidState,
    NanhuError,
    NotFound,
    PermissionDenied,
    Unauthenticated,
)
from nanhu.server import review_auth
from nanhu.server.review_auth import COOKIE, LOGIN_COOKIE, Sessions
from nanhu.server.review_draw import evidence_words, timelines
from nanhu.server.service import viewer_for
from nanhu.server.status import public_message

log = logging.getLogger(__name__)

TEMPLATES = Path(__file__).parent / "templates" / "review"
ACTIONS = ("block", "monetize", "track", "review")
MODALITIES = ("audio", "video", "audio+video")
#: the one table from engine error to HTTP status for the page
HTTP_STATUS = {Unauthenticated: 401, PermissionDenied: 403, NotFound: 404, InvalidState: 409,
               InvalidArgument: 400, CatalogLocked: 503}
_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; "
                               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def http_status(exc: NanhuError) -> int:
    return next((code for kind, code in HTTP_STATUS.items() if isinstance(exc, kind)), 500)


class ReviewApp:
    """The routes; ``secure``: served over TLS (the cookies get ``Secure``)."""

    def __init__(self, shared, *, secure: bool = False) -> None:
        self.s = shared
        self.secure = secure
        self.sessions = Sessions(shared.auth)
        self.templates = Jinja2Templates(directory=str(TEMPLATES))
        self.templates.env.filters["isotime"] = iso_time
        self.app = Starlette(routes=[
            Route("/", self.home), Route("/login", self.login_form, methods=["GET"]),
            Route("/login", self.login, methods=["POST"]),
            Route("/logout", self.logout, methods=["POST"]),
            Route("/claims", self.claims), Route("/claims/{claim_id}", self.claim),
            Route("/claims/{claim_id}/thumbnails/{number:int}", self.thumbnail),
            Route("/claims/{claim_id}/resolve", self.resolve, methods=["POST"]),
        ])

    # --- plumbing ----------------------------------------------------------------------------
    def _page(self, request: Request, name: str, status_code: int = 200, **context) -> Response:
        response = self.templates.TemplateResponse(request, name, context, status_code=status_code)
        response.headers.update(_HEADERS)
        return response

    def _caller(self, request: Request):
        """``(principal, session or None)``; Unauthenticated when neither a key header nor a live
        session cookie says who this is."""
        key = review_auth.key_from_headers(request.headers)
        if key is not None:
            return self.s.auth.verify(key), None
        resumed = self.sessions.resume(request.cookies.get(COOKIE))
        if resumed is None:
            raise Unauthenticated("sign in with your API key")
        return resumed

    async def _guarded(self, request: Request, work):
        """Run ``work(principal, session)`` in a worker thread (claims.sqlite reads and fsyncs
        stay off the event loop), turning engine errors into pages (or JSON)."""
        try:
            principal, session = await run_in_threadpool(self._caller, request)
        except Unauthenticated as exc:
            if (request.method == "GET" and not _wants_json(request)
                    and review_auth.key_from_headers(request.headers) is None):
                return RedirectResponse("/login", status_code=303)
            return self._error(request, exc, None, None)
        try:
            return await run_in_threadpool(work, principal, session)
        except NanhuError as exc:
            return self._error(request, exc, principal, session)

    def _error(self, request: Request, exc: NanhuError, principal, session) -> Response:
        code = http_status(exc)
        if code == 500:
            log.error("review page: %s", exc)
        # as over gRPC: no server path in what a caller reads (the log keeps the full message)
        message = public_message(str(exc), self.s.places)
        if _wants_json(request) or (session is None and principal is not None):
            return JSONResponse({"error": message}, status_code=code, headers=_HEADERS)
        return self._page(request, "error.html", code, message=message, code=code,
                          principal=principal, csrf=session.csrf if session else "")

    # --- sign-in -----------------------------------------------------------------------------
    async def home(self, request: Request) -> Response:
        return RedirectResponse("/claims", status_code=303)

    async def login_form(self, request: Request, *, message: str = "", code: int = 200) -> Response:
        token = secrets.token_urlsafe(24)
        response = self._page(request, "login.html", code, message=message, login_csrf=token,
                              auth=self.s.auth.enabled, principal=None)
        response.set_cookie(LOGIN_COOKIE, token, httponly=True, samesite="strict",
                            secure=self.secure, path="/login", max_age=3600)
        return response

    async def login(self, request: Request) -> Response:
        form = await request.form()
        try:
            review_auth.check_origin(request.headers, request.url.scheme)
            review_auth.check_csrf(request.cookies.get(LOGIN_COOKIE, ""), form.get("csrf"))
            principal, session = await run_in_threadpool(self.sessions.login,
                                                         str(form.get("key", "")))
        except (PermissionDenied, Unauthenticated) as exc:
            return await self.login_form(request, message=str(exc), code=http_status(exc))
        log.info("review page: signed in tenant=%s key=%s", principal.tenant, principal.key_id)
        response = RedirectResponse("/claims", status_code=303)
        response.set_cookie(COOKIE, session.session_id, httponly=True, samesite="strict",
                            secure=self.secure, path="/")
        response.delete_cookie(LOGIN_COOKIE, path="/login")
        return response

    async def logout(self, request: Request) -> Response:
        form = await request.form()

        def work(principal, session):
            if session is not None:
                review_auth.check_origin(request.headers, request.url.scheme)
                review_auth.check_csrf(session.csrf, form.get("csrf"))
                self.sessions.logout(session.session_id)
            response = RedirectResponse("/login", status_code=303)
            response.delete_cookie(COOKIE, path="/")
            return response

        return await self._guarded(request, work)

    # --- claims ------------------------------------------------------------------------------
    async def claims(self, request: Request) -> Response:
        query = request.query_params
        filters = {name: query.get(name, "").strip() for name in
                   ("status", "action", "modality", "reference", "upload")}

        def work(principal, session):
            before = query.get("before", "")
            if before and not before.isdigit():
                raise InvalidArgument("before= is not a cursor this page gave out")
            page, more = self.s.core.claims.list(
                viewer_for(principal), status=filters["status"] or None,
                action=filters["action"] or None, modality=filters["modality"] or None,
                reference_id=filters["reference"] or None, upload_id=filters["upload"] or None,
                limit=50, before=int(before) if before else None)
            page = [shown(c) for c in page]
            if _wants_json(request):
                return JSONResponse({"claims": page, "before": more}, headers=_HEADERS)
            return self._page(request, "claims.html", principal=principal, claims=page,
                              filters=filters, more=more, statuses=STATUSES, actions=ACTIONS,
                              modalities=MODALITIES, csrf=session.csrf if session else "")

        return await self._guarded(request, work)

    async def claim(self, request: Request) -> Response:
        claim_id = request.path_params["claim_id"]

        def work(principal, session):
            viewer = viewer_for(principal)
            claim = shown(self.s.core.claims.get(viewer, claim_id))
            if _wants_json(request):
                return JSONResponse(claim, headers=_HEADERS)
            pictures = self.s.core.claims.thumbnails(viewer, claim_id)
            return self._page(
                request, "claim.html", principal=principal, claim=claim,
                csrf=session.csrf if session else "", allowed=allowed_changes(viewer, claim),
                drawing=timelines(claim, self._reference_duration(claim["reference_id"])),
                evidence=[evidence_words(m) for m in claim["matches"]], pictures=pictures,
                has_video=any("video" in m["modality"] for m in claim["matches"]),
                done=request.query_params.get("done", ""))

        return await self._guarded(request, work)

    def _reference_duration(self, reference_id: str) -> float | None:
        try:
            return self.s.core.snapshots.current().get(reference_id).duration_s
        except NotFound:  # deleted since: the drawing spans the matches only
            return None

    async def thumbnail(self, request: Request) -> Response:
        claim_id, number = request.path_params["claim_id"], request.path_params["number"]

        def work(principal, session):
            pictures = self.s.core.claims.thumbnails(viewer_for(principal), claim_id)
            if not 0 <= number < len(pictures):
                raise NotFound(f"claim {claim_id} has no picture {number}")
            headers = {**_HEADERS, "Cache-Control": "private, max-age=3600"}
            return Response(pictures[number].data, media_type=pictures[number].mime,
                            headers=headers)

        return await self._guarded(request, work)

    async def resolve(self, request: Request) -> Response:
        claim_id = request.path_params["claim_id"]
        form = await request.form()

        def work(principal, session):
            if session is not None:  # a browser: the form must be this page's
                review_auth.check_origin(request.headers, request.url.scheme)
                review_auth.check_csrf(session.csrf, form.get("csrf"))
            claim = self.s.core.claims.resolve(viewer_for(principal), claim_id,
                                               str(form.get("status", "")),
                                               note=str(form.get("note", "")),
                                               request_id=f"web-{secrets.token_hex(8)}")
            if self.s.webhooks is not None:
                self.s.webhooks.wake()
            if session is None or _wants_json(request):
                return JSONResponse(shown(claim), headers=_HEADERS)
            return RedirectResponse(f"/claims/{claim_id}?done={claim['status']}", status_code=303)

        return await self._guarded(request, work)


def _wants_json(request: Request) -> bool:
    return "application/json" in request.headers.get("accept", "")


class ReviewServer:
    """uvicorn serving :class:`ReviewApp` on an already bound socket, in a daemon thread."""

    def __init__(self, shared, sock: socket.socket, *, tls_cert: str | Path | None = None,
                 tls_key: str | Path | None = None) -> None:
        self.sock = sock
        self.port = sock.getsockname()[1]
        self.review = ReviewApp(shared, secure=tls_cert is not None)
        config = uvicorn.Config(self.review.app, log_level="warning", lifespan="off",
                                access_log=False, server_header=False,
                                ssl_certfile=str(tls_cert) if tls_cert else None,
                                ssl_keyfile=str(tls_key) if tls_key else None)
        self.server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]},
                                        name="nanhu-review", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
        self.sock.close()


def bind(host: str, port: int) -> socket.socket:
    """A listening socket for the review page (errors now, not in the server thread)."""
    try:
        family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
        return socket.create_server((host.strip("[]"), port), family=family, backlog=128)
    except OSError as exc:
        raise InvalidArgument(f"cannot listen on {host}:{port} for --http ({exc.strerror})") from exc
