"""A query's calls to a replica actor over a direct connection, beside Ray's actor tasks
(:class:`ChannelServer` in the actor, :class:`Channels` in the front door).

**Why.** On this project's 2-core machines an empty Ray actor task costs 1.1-2.6 ms of CPU and
wall time (the driver's and the actor's core workers about evenly), and in the cluster
bench's queries a trip cost 2.5-7 ms more than the same call in process; a screening makes
2-3 calls to each replica, one per look. Measured on the same machine, a pickled request and
answer between two processes over a socket take 0.04-0.08 ms, and a Ray Compiled Graph
0.14-0.17 ms (docs/results/cluster-2026-12-03b/). Compiled Graphs were not taken: an actor
runs one compiled graph at a time and only the process that compiled it may call it, while
any number of front doors, each with many client threads, screen against the same replicas.

**What stays Ray's.** Ray places the actors, restarts them, names them, and carries every
other call (writes, the state of a cluster, a call whose connection failed). The connection's
address and its key come from the actor itself, through an ordinary (authenticated) Ray call.
A call that the connection does not answer, because the actor died or restarted or the
connection broke, goes through Ray as before, so faults are handled exactly as without it
(:class:`~nanhu.server.cluster_ray.RayFanout`).

**The wire.** :mod:`multiprocessing.connection` (standard library): a challenge-response
handshake on the actor's random 32-byte key (HMAC) before anything is read from the caller,
then length-prefixed pickled messages, as Ray's own calls are pickled. Without the key a
caller is refused at the handshake, and nothing it sent is unpickled. Requests on one
connection are answered in order; an actor answers one request at a time (its lock), as Ray
runs a synchronous actor's tasks, so the shard objects see the calls they saw before.
"""

from __future__ import annotations

import logging
import secrets
import socket
import threading
import time
from collections.abc import Callable
from multiprocessing import AuthenticationError
from multiprocessing.connection import (
    Client,
    Connection,
    Listener,
    answer_challenge,
    deliver_challenge,
)
from typing import Any

log = logging.getLogger("nanhu.server.cluster")

#: how long a front door waits before it asks again for a replica's connection that it could
#: not open (the actor dead or restarting: its calls go through Ray meanwhile)
RETRY_S = 1.0


def _no_delay(conn: Connection) -> None:
    """Send each message at once: a large message goes as a header and a body, and with
    Nagle's algorithm the body waits for the header's delayed acknowledgement (~40 ms)."""
    with socket.socket(fileno=socket.dup(conn.fileno())) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class ChannelServer:
    """In a replica actor: accepts connections on ``host`` (a free port), and answers each
    request ``(method, calls)`` with ``answer(method, calls)`` under ``lock``:
    ``("ok", answer)`` or ``("error", exception)``."""

    def __init__(self, answer: Callable[[str, list], Any], lock: threading.Lock,
                 host: str) -> None:
        self.answer = answer
        self.lock = lock
        self.authkey = secrets.token_bytes(32)
        # no authkey here: the handshake runs in each connection's own thread, so a caller
        # that connects and sends nothing holds up only itself
        self._listener = Listener((host, 0), family="AF_INET")
        self.address: tuple[str, int] = self._listener.address
        self._open: set[Connection] = set()
        threading.Thread(target=self._accept, name="nanhu-channel", daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn = self._listener.accept()
            except OSError:  # the listener closed
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: Connection) -> None:
        self._open.add(conn)
        with conn:
            try:
                _no_delay(conn)
                deliver_challenge(conn, self.authkey)
                answer_challenge(conn, self.authkey)
            except (AuthenticationError, EOFError, OSError) as exc:
                log.warning("refused a connection to the replica's channel: %s",
                            type(exc).__name__)
                return
            while True:
                try:
                    method, calls = conn.recv()
                except (EOFError, OSError):  # the front door closed it, or close()
                    self._open.discard(conn)
                    return
                try:
                    with self.lock:
                        reply: tuple = ("ok", self.answer(method, calls))
                except Exception as exc:  # the shard's own error, raised at the caller
                    reply = ("error", exc)
                try:
                    conn.send(reply)
                except (EOFError, OSError):
                    return
                except Exception as exc:  # an answer that does not pickle: say so, go on
                    conn.send(("error", RuntimeError(f"{method}: answer not sendable: {exc}")))

    def close(self) -> None:
        """Stop accepting, and end every open connection (their callers go through Ray)."""
        self._listener.close()
        for conn in list(self._open):
            try:
                with socket.socket(fileno=socket.dup(conn.fileno())) as sock:
                    sock.shutdown(socket.SHUT_RDWR)
            except OSError:  # closed meanwhile
                pass


class Failed(Exception):
    """The connection did not answer (closed, broken, or past the deadline): ask through Ray."""


class Channels:
    """In a front door: one connection per (actor, thread), opened on first use with the
    address and key that ``open_info(actor)`` (a Ray call to the actor) returns."""

    def __init__(self, open_info: Callable[[Any], tuple[tuple[str, int], bytes]]) -> None:
        self._open_info = open_info
        self._local = threading.local()
        self._down: dict[Any, float] = {}  # actor -> when to try to open its connection again
        #: requests answered over a connection, and those that went through Ray instead
        self.direct_calls = 0
        self.fallbacks = 0

    def _conns(self) -> dict:
        if not hasattr(self._local, "conns"):
            self._local.conns = {}
        return self._local.conns

    def send(self, actor: Any, method: str, calls: list) -> Connection | None:
        """Send a request to ``actor``: its connection, to :meth:`receive` from, or None when
        there is none (the call goes through Ray)."""
        conns = self._conns()
        conn = conns.get(actor)
        if conn is None:
            if time.monotonic() < self._down.get(actor, 0.0):
                return None
            try:
                address, key = self._open_info(actor)
                conn = Client(tuple(address), family="AF_INET", authkey=key)
                _no_delay(conn)
            except Exception as exc:  # dead, restarting, or no channel: Ray answers
                log.info("no direct connection to a replica (%s); its calls go through Ray",
                         type(exc).__name__)
                self._down[actor] = time.monotonic() + RETRY_S
                self.fallbacks += 1
                return None
            conns[actor] = conn
        try:
            conn.send((method, calls))
        except Exception:
            self.drop(actor)
            self.fallbacks += 1
            return None
        return conn

    def receive(self, actor: Any, conn: Connection, deadline: float) -> Any:
        """The answer to the request :meth:`send` sent; raises the shard's own error, or
        :class:`Failed` (the connection is dropped)."""
        try:
            if not conn.poll(max(0.0, deadline - time.monotonic())):
                raise Failed("no answer before the deadline")
            status, value = conn.recv()
        except (EOFError, OSError, Failed) as exc:
            self.drop(actor)
            self.fallbacks += 1
            raise Failed(str(exc) or type(exc).__name__) from None
        if status == "error":
            raise value
        self.direct_calls += 1
        return value

    def drop(self, actor: Any) -> None:
        conn = self._conns().pop(actor, None)
        if conn is not None:
            try:
                conn.close()
            except OSError:
                pass

    def close(self) -> None:
        for actor in list(self._conns()):
            self.drop(actor)
