"""Delivering the claims' webhook events (:mod:`engine.outbox`), off the request path.

One daemon thread of ``nanhu serve`` takes due events from the outbox in ``claims.sqlite``
(leasing them, so a second server on the same catalog does not send them too), POSTs each
to its tenant's URL signed with the tenant's secret, and deletes it on a 2xx answer. Anything
else (an error status, a refused connection, a timeout, a redirect) is retried after a backoff
that doubles from ``backoff_s`` up to ``max_backoff_s``, ``attempts`` times in all; then the
event is marked failed (kept 7 days, counted in ``GetWebhook``). The queue is bounded
(:data:`engine.outbox.MAX_PENDING`), and a slow receiver costs at most ``timeout_s`` per
attempt. Events written by the command line (``nanhu claims resolve --catalog``) are picked up
within ``poll_s``.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

from nanhu.engine.claims import ClaimStore
from nanhu.engine.errors import NanhuError
from nanhu.engine.outbox import SIGNATURE_HEADER, TIMESTAMP_HEADER, Delivery, signature

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WebhookSettings:
    """How hard the sender tries: seconds per attempt, backoff, attempts in all."""

    timeout_s: float = 5.0
    backoff_s: float = 1.0
    max_backoff_s: float = 300.0
    attempts: int = 8
    #: how often the outbox is checked for events other processes queued (seconds)
    poll_s: float = 1.0
    #: events taken from the outbox at once
    batch: int = 20

    def backoff(self, failures: int) -> float:
        """Seconds to wait after the ``failures``-th failed attempt (1, 2, ...)."""
        return min(self.max_backoff_s, self.backoff_s * 2 ** max(0, failures - 1))


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None  # a 3xx is an answer, not a place to send a signed body to


_OPENER = urllib.request.build_opener(_NoRedirects)


class WebhookSender:
    """The delivery thread: :meth:`start`, :meth:`wake` after queueing, :meth:`stop`."""

    def __init__(self, claims: ClaimStore, settings: WebhookSettings | None = None) -> None:
        self.claims = claims
        self.settings = settings or WebhookSettings()
        self._wake = threading.Condition()
        self._woken = False
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        #: attempts made and deliveries done since start (for tests and logs)
        self.attempts = 0
        self.delivered = 0

    def start(self) -> WebhookSender:
        self._thread = threading.Thread(target=self._run, name="nanhu-webhooks", daemon=True)
        self._thread.start()
        return self

    def wake(self) -> None:
        with self._wake:
            self._woken = True
            self._wake.notify()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop after the attempt in progress; undelivered events stay queued for next time."""
        self._stopping.set()
        self.wake()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                due = self.claims.outbox.due(limit=self.settings.batch,
                                             lease_s=2 * self.settings.timeout_s + 5.0)
                for delivery in due:
                    if self._stopping.is_set():
                        break
                    self._attempt(delivery)
                pause = 0.0 if due else self._pause()
            except (NanhuError, sqlite3.Error) as exc:  # the claims file busy for a moment
                log.warning("event=webhooks-paused reason=%r", str(exc))
                pause = self.settings.poll_s
            except Exception:  # a bug: logged with its traceback; the sender must not die of it
                log.exception("event=webhooks-error")
                pause = self.settings.poll_s
            if pause > 0:
                with self._wake:
                    if not self._woken:
                        self._wake.wait(pause)
                    self._woken = False

    def _pause(self) -> float:
        next_at = self.claims.outbox.next_due_at()
        until = self.settings.poll_s if next_at is None else next_at - time.time()
        return max(0.0, min(self.settings.poll_s, until))

    def _attempt(self, delivery: Delivery) -> None:
        self.attempts += 1
        timestamp = str(int(time.time()))
        request = urllib.request.Request(delivery.url, data=delivery.body, method="POST", headers={
            "Content-Type": "application/json", "User-Agent": "nanhu-webhooks/1",
            "X-Nanhu-Event": delivery.event, "X-Nanhu-Delivery": delivery.delivery_id,
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: signature(delivery.secret, timestamp, delivery.body)})
        try:
            with _OPENER.open(request, timeout=self.settings.timeout_s) as response:
                status = response.status
        except urllib.error.HTTPError as exc:
            status, error = exc.code, f"HTTP {exc.code}"
        except (urllib.error.URLError, OSError, ValueError) as exc:
            status, error = None, f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}"
        else:
            error = f"HTTP {status}"
        if status is not None and 200 <= status < 300:
            self.claims.outbox.delivered(delivery.delivery_id)
            self.delivered += 1
            log.info("event=webhook-delivered tenant=%s delivery=%s event=%s attempt=%d",
                     delivery.tenant, delivery.delivery_id, delivery.event, delivery.attempts + 1)
            return
        failures = delivery.attempts + 1
        if failures >= self.settings.attempts:
            log.warning("event=webhook-failed tenant=%s delivery=%s attempts=%d error=%r (given up)",
                        delivery.tenant, delivery.delivery_id, failures, error)
            self.claims.outbox.retry_later(delivery.delivery_id, error, None)
            return
        wait_s = self.settings.backoff(failures)
        log.info("event=webhook-retry tenant=%s delivery=%s attempt=%d error=%r retry_in_s=%.2f",
                 delivery.tenant, delivery.delivery_id, failures, error, wait_s)
        self.claims.outbox.retry_later(delivery.delivery_id, error, time.time() + wait_s)
