"""The one table from engine exceptions to gRPC status codes, and the wrapper every RPC runs in.

Servicer methods raise :class:`engine.errors.NanhuError` subclasses (or the call-state
exceptions below); :func:`rpc` turns them into a status code with the error's message and writes
one structured log line per call (``key=value`` pairs). It also gives the call its request id
(:mod:`server.logs`; sent back as ``x-request-id`` trailing metadata), counts it in the
server's metrics (:mod:`server.metrics`), and takes server paths out of the messages callers get
(:func:`public_message`): the engine's messages name the catalog's folder for the CLI's users,
a remote caller is told the reference or file instead.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import time
from collections.abc import Mapping
from pathlib import PurePosixPath

import grpc

from nanhu.engine import errors
from nanhu.server.logs import REQUEST_ID, request_id_from

log = logging.getLogger("nanhu.server.rpc")


class CallCancelled(Exception):
    """The client cancelled or disconnected; nothing is sent back."""


class DeadlinePassed(Exception):
    """The call's deadline passed while the server was still working on it."""


class WorkerCrashed(Exception):
    """A fingerprinting worker process died while working on the call's media."""


class ServerBusy(errors.LimitExceeded):
    """Every concurrency slot is taken: unlike an upload over a size limit, worth retrying."""


#: status code per exception type (first match in order wins)
STATUS_CODES: list[tuple[type[BaseException], grpc.StatusCode]] = [
    (errors.Unauthenticated, grpc.StatusCode.UNAUTHENTICATED),
    (errors.PermissionDenied, grpc.StatusCode.PERMISSION_DENIED),
    (errors.InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.MediaError, grpc.StatusCode.INVALID_ARGUMENT),  # EmptyMediaError included
    (errors.NotFound, grpc.StatusCode.NOT_FOUND),
    (errors.AlreadyExists, grpc.StatusCode.ALREADY_EXISTS),
    (errors.BudgetExceeded, grpc.StatusCode.RESOURCE_EXHAUSTED),  # a job's CPU time or memory
    (errors.LimitExceeded, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (errors.VersionMismatch, grpc.StatusCode.FAILED_PRECONDITION),
    (errors.InvalidState, grpc.StatusCode.FAILED_PRECONDITION),
    (errors.CatalogLocked, grpc.StatusCode.UNAVAILABLE),  # retry once the other writer is done
    (errors.ShardUnavailable, grpc.StatusCode.UNAVAILABLE),  # retry once Ray restarted it
    # the matcher re-runs a query whose catalog moved under it; past its tries, a retry will do
    (errors.CatalogMoved, grpc.StatusCode.UNAVAILABLE),
    (errors.CatalogCorrupt, grpc.StatusCode.DATA_LOSS),
    (errors.NanhuError, grpc.StatusCode.INTERNAL),
    (DeadlinePassed, grpc.StatusCode.DEADLINE_EXCEEDED),
    (CallCancelled, grpc.StatusCode.CANCELLED),
    (WorkerCrashed, grpc.StatusCode.INTERNAL),
]


#: errors of a retryable code (UNAVAILABLE, RESOURCE_EXHAUSTED) that a retry may cure; for the
#: others the server tells gRPC's client-side retries to stop (``grpc-retry-pushback-ms: -1``)
RETRYABLE: tuple[type[BaseException], ...] = (ServerBusy, errors.CatalogLocked,
                                               errors.ShardUnavailable, errors.CatalogMoved)
_RETRY_CODES = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED)


class ServerUnusable(errors.NanhuError):
    """A client could not use the server at all: unreachable, or the call's deadline passed."""


def engine_error(exc: grpc.RpcError, *, server: str = "server") -> errors.NanhuError:
    """A client's view of a failed call as the engine's error (the inverse of
    :data:`STATUS_CODES`, first match per code), so a front end maps it to its exit code as it
    does a local error; the message is the server's, with its request id when it sent one."""
    code, detail = exc.code(), exc.details() or str(exc)
    request_id = dict(exc.trailing_metadata() or ()).get("x-request-id")
    suffix = f" (request id {request_id})" if request_id else ""
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        return ServerUnusable(f"{server}: {code.name}: {detail}{suffix}")
    kind = next((k for k, c in STATUS_CODES if c == code and issubclass(k, errors.NanhuError)),
                errors.NanhuError)
    return kind(f"{server}: {detail}{suffix}")


def status_for(exc: BaseException) -> grpc.StatusCode:
    for kind, code in STATUS_CODES:
        if isinstance(exc, kind):
            return code
    return grpc.StatusCode.UNKNOWN


def kv(**fields) -> str:
    """``key=value`` pairs for a log line; values with spaces or quotes are JSON-quoted."""
    parts = []
    for key, value in fields.items():
        if value is None or value == "":
            continue
        text = f"{value:.1f}" if isinstance(value, float) else _quoted(str(value))
        # Keys can come from clients too (hints): quoted the same way, so no line is forged.
        parts.append(f"{_quoted(str(key))}={text}")
    return " ".join(parts)


def _quoted(text: str) -> str:
    """``text`` as is when it is plain, else JSON-quoted (spaces, quotes, =, control chars)."""
    if text and text.isprintable() and not any(c in text for c in ' "='):
        return text
    return json.dumps(text)


#: an absolute POSIX path in a message (not the tail of a URL or of a relative path)
_ABSOLUTE_PATH = re.compile(r"(?<![\w.~:/-])/[^\s'\",;()]+")


def public_message(message: str, places: Mapping[str, str] | None = None) -> str:
    """``message`` as a remote caller may see it: each of ``places`` (a server path -> the name
    to show, e.g. the catalog folder -> ``catalog``) replaced, longest first, and any other
    absolute path cut to its last component (``/srv/nanhu/x/meta.sqlite`` -> ``meta.sqlite``)."""
    for path, name in sorted((places or {}).items(), key=lambda item: -len(item[0])):
        if path:  # the whole path only: a catalog folder named "cat" leaves "catalog" alone
            pattern = rf"(?<![\w./~-]){re.escape(path)}(?![\w.~-])"
            message = re.sub(pattern, name.replace("\\", r"\\"), message)
    return _ABSOLUTE_PATH.sub(lambda m: PurePosixPath(m.group()).name or "/", message)


class CallLog:
    """What one call reports in its log line; servicers add fields as they learn them."""

    def __init__(self, method: str) -> None:
        self.fields: dict = {"rpc": method}

    def note(self, **fields) -> None:
        self.fields.update(fields)


def log_event(logger: logging.Logger, level: int, **fields) -> None:
    """One ``key=value`` line; the fields also travel on the record, as keys of a JSON line."""
    logger.log(level, "%s", kv(**fields), extra={"fields": fields})


def _log_call(level: int, fields: dict, *, exc_info: bool = False) -> None:
    log.log(level, "%s", kv(**fields), extra={"fields": fields}, exc_info=exc_info)


def rpc(method):
    """Wrap a servicer method ``(self, request, context, call)`` as a gRPC handler.

    The servicer's ``self.s`` (:class:`server.servicers.Shared`) may provide ``metrics``
    (:class:`server.metrics.Metrics`) and ``places`` (server paths to hide, see
    :func:`public_message`).
    """
    name = method.__name__

    @functools.wraps(method)
    def handler(self, request, context: grpc.ServicerContext):
        shared = getattr(self, "s", None)
        request_id = request_id_from(context.invocation_metadata())
        token = REQUEST_ID.set(request_id)
        # Sent with the status, whatever it is (abort keeps the trailing metadata set here).
        context.set_trailing_metadata((("x-request-id", request_id),))
        call = CallLog(name)
        started = time.perf_counter()
        code = grpc.StatusCode.OK
        message = ""
        try:
            return method(self, request, context, call)
        except grpc.RpcError:
            # Reading the request stream failed: the client went away mid-upload.
            code = grpc.StatusCode.CANCELLED
            message = "client cancelled or disconnected"
            return None
        except (errors.NanhuError, CallCancelled, DeadlinePassed, WorkerCrashed) as exc:
            code, message = status_for(exc), str(exc)
            if not context.is_active():  # nobody to tell
                return None
            if code in _RETRY_CODES and not isinstance(exc, RETRYABLE):
                context.set_trailing_metadata((("x-request-id", request_id),
                                               ("grpc-retry-pushback-ms", "-1")))
            context.abort(code, public_message(message, getattr(shared, "places", None)))
        except Exception as exc:  # a bug: logged with its traceback, INTERNAL with its kind
            code = grpc.StatusCode.INTERNAL
            message = f"internal error ({type(exc).__name__}); the server logged it"
            _log_call(logging.ERROR, {**call.fields, "code": code.name}, exc_info=True)
            if not context.is_active():
                return None
            context.abort(code, f"{message} (request id {request_id})")
        finally:
            seconds = time.perf_counter() - started
            level = logging.WARNING if code in (grpc.StatusCode.INTERNAL, grpc.StatusCode.DATA_LOSS) \
                else logging.INFO
            _log_call(level, {**call.fields, "code": code.name, "ms": seconds * 1000.0,
                              "error": message})
            metrics = getattr(shared, "metrics", None)
            if metrics is not None:
                metrics.observe_rpc(name, code.name, seconds)
            REQUEST_ID.reset(token)

    return handler
