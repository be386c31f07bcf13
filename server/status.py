"""The one table from engine exceptions to gRPC status codes, and the wrapper every RPC runs in.

Servicer methods raise :class:`engine.errors.NanhuError` subclasses (or the two call-state
exceptions below); :func:`rpc` turns them into a status code with the error's message and writes
one structured log line per call (``key=value`` pairs).
"""

from __future__ import annotations

import functools
import json
import logging
import time

import grpc

from engine import errors

log = logging.getLogger("server.rpc")


class CallCancelled(Exception):
    """The client cancelled or disconnected; nothing is sent back."""


class DeadlinePassed(Exception):
    """The call's deadline passed while the server was still working on it."""


class WorkerCrashed(Exception):
    """A fingerprinting worker process died while working on the call's media."""


#: status code per exception type (first match in order wins)
STATUS_CODES: list[tuple[type[BaseException], grpc.StatusCode]] = [
    (errors.Unauthenticated, grpc.StatusCode.UNAUTHENTICATED),
    (errors.PermissionDenied, grpc.StatusCode.PERMISSION_DENIED),
    (errors.InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.MediaError, grpc.StatusCode.INVALID_ARGUMENT),  # EmptyMediaError included
    (errors.NotFound, grpc.StatusCode.NOT_FOUND),
    (errors.AlreadyExists, grpc.StatusCode.ALREADY_EXISTS),
    (errors.LimitExceeded, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (errors.VersionMismatch, grpc.StatusCode.FAILED_PRECONDITION),
    (errors.CatalogLocked, grpc.StatusCode.UNAVAILABLE),  # retry once the other writer is done
    (errors.CatalogCorrupt, grpc.StatusCode.DATA_LOSS),
    (errors.NanhuError, grpc.StatusCode.INTERNAL),
    (DeadlinePassed, grpc.StatusCode.DEADLINE_EXCEEDED),
    (CallCancelled, grpc.StatusCode.CANCELLED),
    (WorkerCrashed, grpc.StatusCode.INTERNAL),
]


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


class CallLog:
    """What one call reports in its log line; servicers add fields as they learn them."""

    def __init__(self, method: str) -> None:
        self.fields: dict = {"rpc": method}

    def note(self, **fields) -> None:
        self.fields.update(fields)


def rpc(method):
    """Wrap a servicer method ``(self, request, context, call)`` as a gRPC handler."""
    name = method.__name__

    @functools.wraps(method)
    def handler(self, request, context: grpc.ServicerContext):
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
            context.abort(code, message)
        except Exception as exc:  # a bug: logged with its traceback, INTERNAL with its kind
            code = grpc.StatusCode.INTERNAL
            message = f"internal error ({type(exc).__name__}); the server logged it"
            log.exception("%s", kv(**call.fields, code=code.name))
            if not context.is_active():
                return None
            context.abort(code, message)
        finally:
            level = logging.WARNING if code in (grpc.StatusCode.INTERNAL, grpc.StatusCode.DATA_LOSS) \
                else logging.INFO
            log.log(level, "%s", kv(**call.fields, code=code.name,
                                    ms=(time.perf_counter() - started) * 1000.0, error=message))

    return handler
