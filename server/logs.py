"""The server's log lines: timestamps, text or JSON, and the request id of the call they belong to.

Every RPC runs with a request id (the caller's ``x-request-id`` metadata when it is a sane token,
else a new one) held in a :data:`contextvars.ContextVar`, so every line logged while the call
runs carries it, whichever module logs it. Worker processes get the id with each job (see
:func:`server.jobs.timed`) and log in the same format as the server.

Text lines (the default)::

    2026-12-01T10:00:00.123Z INFO nanhu.server.rpc: rpc=Screen tenant=tube code=OK ms=231.4 request_id=9c1f...

JSON lines (``nanhu serve --log-format json``), one object per line::

    {"time": "2026-12-01T10:00:00.123Z", "level": "INFO", "logger": "nanhu.server.rpc",
     "message": "rpc=Screen ...", "request_id": "9c1f...", "rpc": "Screen", "code": "OK", ...}

A line that carries structured fields (``extra={"fields": {...}}``, as the per-call line does)
has them as keys of its JSON object; they never overwrite the keys above.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
import time
import uuid
from collections.abc import Iterable
from typing import TextIO

#: the request id of the call this code runs for ("" outside a call)
REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("nanhu_request_id", default="")
#: what a caller's request id may look like; anything else is replaced by a fresh id
_GOOD_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
FORMATS = ("text", "json")
_RESERVED = ("time", "level", "logger", "message", "request_id")

_configured_format: str | None = None


def new_request_id() -> str:
    return uuid.uuid4().hex


def request_id_from(metadata: Iterable[tuple[str, str | bytes]] | None) -> str:
    """The caller's ``x-request-id`` when it is a plain token (letters, digits, ``._:-``, at most
    128), else a new id: a client may pick its id, but not forge log lines with it."""
    for name, value in metadata or ():
        if name == "x-request-id" and isinstance(value, str) and _GOOD_ID.fullmatch(value):
            return value
    return new_request_id()


def _timestamp(created: float) -> str:
    """ISO 8601 in UTC with milliseconds: ``2026-12-01T10:00:00.123Z``."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created)) + f".{int(created % 1 * 1000):03d}Z"


class RequestIdFilter(logging.Filter):
    """Puts the current call's request id on every record as ``record.request_id``."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "request_id", ""):
            record.request_id = REQUEST_ID.get()
        return True


class TextFormatter(logging.Formatter):
    """``TIME LEVEL LOGGER: MESSAGE request_id=ID`` (the id only inside a call)."""

    def format(self, record: logging.LogRecord) -> str:
        line = f"{_timestamp(record.created)} {record.levelname} {record.name}: {record.getMessage()}"
        request_id = getattr(record, "request_id", "")
        if request_id:
            line += f" request_id={request_id}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per record (see the module docstring)."""

    def format(self, record: logging.LogRecord) -> str:
        out = {"time": _timestamp(record.created), "level": record.levelname,
               "logger": record.name, "message": record.getMessage()}
        request_id = getattr(record, "request_id", "")
        if request_id:
            out["request_id"] = request_id
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            for key, value in fields.items():
                key = str(key)
                if key not in _RESERVED and value is not None and value != "":
                    out.setdefault(key, value if isinstance(value, int | float | bool) else str(value))
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out)


def make_handler(stream: TextIO | None = None, fmt: str = "text") -> logging.Handler:
    """A stream handler writing ``fmt`` lines ("text" or "json") with request ids."""
    if fmt not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)} (got {fmt!r})")
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(RequestIdFilter())
    return handler


def configure_logging(fmt: str = "text", *, level: int = logging.INFO,
                      stream: TextIO | None = None) -> logging.Handler:
    """Make this process log ``fmt`` lines to ``stream`` (stderr): the root logger's handlers are
    replaced, the ``server`` loggers log at ``level`` or below. Worker processes started after
    this call log the same way (:func:`configured_format`)."""
    global _configured_format
    handler = make_handler(stream, fmt)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    server_log = logging.getLogger("nanhu.server")
    if server_log.getEffectiveLevel() > level:
        server_log.setLevel(level)
    _configured_format = fmt
    return handler


def configured_format() -> str | None:
    """The format :func:`configure_logging` set in this process, or None if it was not called."""
    return _configured_format
