"""Where the time goes while one piece of media is worked on: decode, fingerprint, match.

A front end that wants the split opens :func:`measure` around the work and reads the seconds per
stage from the dict it yields (the server puts them in its Prometheus histograms). The engine
marks its stages with :func:`stage` and :func:`timed_iter`; outside a :func:`measure` they cost
one context-variable lookup.

Decoding is streamed into fingerprinting (chunks of samples, batches of frames), so ``decode``
is the time spent producing the decoded items and ``fingerprint`` the time around it, without
the decoding (:func:`stage` with ``exclude``).
"""

from __future__ import annotations

import contextlib
import contextvars
import time
from collections.abc import Iterable, Iterator

_CURRENT: contextvars.ContextVar[dict[str, float] | None] = contextvars.ContextVar(
    "nanhu_stages", default=None)


@contextlib.contextmanager
def measure() -> Iterator[dict[str, float]]:
    """Collect the stage times of the code run inside: ``{stage name: seconds}``."""
    stages: dict[str, float] = {}
    token = _CURRENT.set(stages)
    try:
        yield stages
    finally:
        _CURRENT.reset(token)


def add(name: str, seconds: float) -> None:
    """Count ``seconds`` for stage ``name`` (nothing outside :func:`measure`)."""
    stages = _CURRENT.get()
    if stages is not None:
        stages[name] = stages.get(name, 0.0) + seconds


@contextlib.contextmanager
def stage(name: str, *, exclude: tuple[str, ...] = ()) -> Iterator[None]:
    """Count the time inside as stage ``name``, less what the stages in ``exclude`` counted
    meanwhile (nested in it)."""
    stages = _CURRENT.get()
    if stages is None:
        yield
        return
    before = sum(stages.get(other, 0.0) for other in exclude)
    started = time.perf_counter()
    try:
        yield
    finally:
        nested = sum(stages.get(other, 0.0) for other in exclude) - before
        add(name, max(0.0, time.perf_counter() - started - nested))


def timed_iter(name: str, items: Iterable) -> Iterator:
    """The items of ``items``, counting the time spent producing each one as stage ``name``."""
    if _CURRENT.get() is None:
        yield from items
        return
    iterator = iter(items)
    try:
        while True:
            started = time.perf_counter()
            try:
                item = next(iterator)
            except StopIteration:
                return
            finally:
                add(name, time.perf_counter() - started)
            yield item
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            close()
