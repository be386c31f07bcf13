"""Assembling the gRPC server: servicers, health checking, reflection, TLS, limits, metrics,
shutdown.

``create_server(catalog_dir, "127.0.0.1:0")`` returns a bound but not yet started server and its
port (tests bind port 0). Without a keys file the server refuses to bind anything but loopback;
with one on a non-loopback address without TLS, it warns loudly: the keys travel in clear.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from nanhu.engine.errors import InvalidArgument
from nanhu.proto.gen.nanhu.v1 import nanhu_pb2 as pb
from nanhu.proto.gen.nanhu.v1 import nanhu_pb2_grpc as pb_grpc
from nanhu.server.auth import Authenticator
from nanhu.server.metrics import Metrics
from nanhu.server.service import Core, Limits
from nanhu.server.servicers import CatalogServicer, ClaimsServicer, ScreeningServicer, Shared
from nanhu.server.status import log_event
from nanhu.server.webhooks import WebhookSender, WebhookSettings
from nanhu.server.work import JobBudget, Limiter, Spool, WorkerPool

log = logging.getLogger("nanhu.server")

SERVICE_NAMES = tuple(s.full_name for s in pb.DESCRIPTOR.services_by_name.values())
_LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]", "ip6-localhost"}


def split_address(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise InvalidArgument(f"listen address {address!r} is not HOST:PORT")
    return host, int(port)


def is_loopback(host: str) -> bool:
    return host in _LOOPBACK or host.startswith("127.")


class NanhuServer:
    """A gRPC server with Nanhu's state; :meth:`stop` drains calls, then frees workers and spool."""

    def __init__(self, grpc_server: grpc.Server, shared: Shared, health_servicer, *,
                 address: str, port: int, tls: bool, mutual_tls: bool = False,
                 metrics_address: str | None = None, review=None) -> None:
        self.grpc_server = grpc_server
        self.shared = shared
        self.health = health_servicer
        self.address = address
        self.port = port
        self.tls = tls
        self.mutual_tls = mutual_tls
        self.metrics_address = metrics_address
        #: the port ``/metrics`` is served on once started (None without ``metrics_address``)
        self.metrics_port: int | None = None
        #: the review page (:class:`server.review_app.ReviewServer`; None without ``http``)
        self.review = review
        #: the port the review page is served on (None without one)
        self.http_port: int | None = review.port if review is not None else None
        self._stopped = threading.Event()
        self._stopping = threading.Lock()
        self._stop_started = False

    @property
    def limiter(self) -> Limiter:
        return self.shared.limiter

    @property
    def spool(self) -> Spool:
        return self.shared.spool

    @property
    def metrics(self) -> Metrics:
        return self.shared.metrics

    def start(self) -> NanhuServer:
        self.shared.pool.warm()
        if self.shared.webhooks is not None:
            self.shared.webhooks.start()
        if self.metrics_address is not None:
            host, port = split_address(self.metrics_address)
            self.metrics_port = self.shared.metrics.serve(host, port)
            log_event(log, logging.INFO, event="metrics", address=f"{host}:{self.metrics_port}",
                      path="/metrics")
        self.grpc_server.start()
        if self.review is not None:
            self.review.start()
            log_event(log, logging.INFO, event="review page", port=self.http_port,
                      tls=self.review.review.secure)
        for name in ("", *SERVICE_NAMES):
            self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        log_event(log, logging.INFO, event="listening", address=self.address, port=self.port,
                  tls=self.tls, mutual_tls=self.mutual_tls, auth=self.shared.auth.enabled,
                  workers=self.shared.pool.workers, catalog=self.shared.core.catalog_dir)
        return self

    def stop(self, grace: float | None = 5.0) -> threading.Event:
        """Refuse new calls, let calls in flight finish for up to ``grace`` seconds, then release
        the worker processes and the spool. Returns an event set when all of that is done."""
        with self._stopping:
            if self._stop_started:
                return self._stopped
            self._stop_started = True
        self.health.enter_graceful_shutdown()
        drained = self.grpc_server.stop(grace)
        if self.review is not None:
            self.review.stop()
        log_event(log, logging.INFO, event="stopping", grace_s=grace, in_flight=self.limiter.in_flight)

        def finish() -> None:
            drained.wait()
            if self.shared.webhooks is not None:
                self.shared.webhooks.stop()
            self.shared.pool.shutdown(wait=True)
            self.shared.spool.close()
            self.shared.metrics.close()
            log_event(log, logging.INFO, event="stopped")
            self._stopped.set()

        threading.Thread(target=finish, name="nanhu-stop", daemon=True).start()
        return self._stopped

    def wait_for_termination(self, timeout: float | None = None) -> bool:
        self.grpc_server.wait_for_termination(timeout)
        return self._stopped.wait(timeout)


def create_server(
    catalog_dir: str | Path,
    address: str = "127.0.0.1:0",
    *,
    workers: int = 2,
    auth: str | Path | None = None,
    limits: Limits | None = None,
    tls_cert: str | Path | None = None,
    tls_key: str | Path | None = None,
    tls_client_ca: str | Path | None = None,
    metrics: str | None = None,
    threads: int | None = None,
    webhooks: WebhookSettings | None = None,
    http: str | None = None,
    cluster: str | None = None,
) -> tuple[NanhuServer, int]:
    """Build the server on ``catalog_dir`` (created if missing) and bind ``address``.

    ``auth`` is a keys file (see :mod:`server.auth`); without one only loopback addresses are
    accepted. ``tls_cert``/``tls_key`` (PEM files) switch the port to TLS; ``tls_client_ca``
    (PEM, the CA that signs client certificates) makes it mutual TLS: a client without a
    certificate signed by that CA is refused during the handshake. ``metrics`` is a
    ``HOST:PORT`` to serve Prometheus' ``/metrics`` on once started (port 0: any free one, see
    :attr:`NanhuServer.metrics_port`). ``workers`` is the number of processes that fingerprint
    and match; ``threads`` the gRPC handler threads (default: enough for
    ``limits.max_concurrent`` heavy calls plus cheap ones). ``webhooks``: how claim events
    are delivered (timeouts, backoff, attempts; :class:`server.webhooks.WebhookSettings`).
    ``http`` is a ``HOST:PORT`` to serve the review page on (:mod:`server.review_app`; port 0:
    any free one, see :attr:`NanhuServer.http_port`), behind the same keys, over TLS when the
    gRPC port has it (the same certificate; client certificates are not asked for there).

    A ``catalog_dir`` holding a cluster catalog (``cluster.json``, ``nanhu cluster init``) is
    served as one catalog (:class:`server.cluster_core.ClusterCore`): its shards opened here,
    or, with ``cluster`` (a Ray address), the shard actors ``nanhu cluster start`` runs there.

    The workers are started with multiprocessing's forkserver, so, as with any multiprocessing
    code, a script that starts the server must guard its entry point with
    ``if __name__ == "__main__":``.
    """
    limits = limits or Limits()
    host, _ = split_address(address)
    if metrics is not None:
        split_address(metrics)
    http_host, http_port = split_address(http) if http is not None else (None, None)
    for listen, where in ((host, address), (http_host, http)):
        if listen is not None and auth is None and not is_loopback(listen):
            raise InvalidArgument(
                f"refusing to listen on {where} without an auth file: anyone could register and "
                "delete works. Pass --auth FILE (see `nanhu keys add`) or listen on 127.0.0.1")
    if (tls_cert is None) != (tls_key is None):
        raise InvalidArgument("TLS needs both a certificate and a key")
    if tls_client_ca is not None and tls_cert is None:
        raise InvalidArgument("a client CA (mutual TLS) needs the server's own certificate and key")
    credentials = _server_credentials(tls_cert, tls_key, tls_client_ca)
    budget = JobBudget(cpu_s=limits.job_cpu_s, memory_mb=limits.job_memory_mb)
    authenticator = Authenticator(auth)
    from nanhu.engine.cluster.layout import is_cluster

    if is_cluster(catalog_dir):
        from nanhu.server.cluster_core import ClusterCore

        core = ClusterCore(Path(catalog_dir), limits, address=cluster)
    elif cluster is not None:
        raise InvalidArgument(f"{catalog_dir}: not a cluster catalog (no cluster.json); make "
                              "one with `nanhu cluster init DIR --shards N`")
    else:
        core = Core(Path(catalog_dir), limits)
    pool = WorkerPool(workers, str(core.catalog_dir), budget=budget)
    shared = Shared(core, authenticator, pool, Limiter(limits.max_concurrent), Spool(),
                    webhooks=WebhookSender(core.claims, webhooks))
    shared.metrics.watch(shared)
    threads = threads or limits.max_concurrent + 8
    server = grpc.server(
        ThreadPoolExecutor(max_workers=threads, thread_name_prefix="nanhu-rpc"),
        maximum_concurrent_rpcs=4 * threads,
        options=[("grpc.max_receive_message_length", limits.max_message_bytes),
                 ("grpc.max_send_message_length", limits.max_message_bytes),
                 ("grpc.so_reuseport", 0)],
    )
    pb_grpc.add_ScreeningServicer_to_server(ScreeningServicer(shared), server)
    pb_grpc.add_CatalogServicer_to_server(CatalogServicer(shared), server)
    pb_grpc.add_ClaimsServicer_to_server(ClaimsServicer(shared), server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (*SERVICE_NAMES, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
         reflection.SERVICE_NAME), server)
    try:
        if credentials is not None:
            port = server.add_secure_port(address, credentials)
        else:
            port = server.add_insecure_port(address)
    except RuntimeError as exc:
        shared.pool.shutdown(wait=False)
        shared.spool.close()
        raise InvalidArgument(f"cannot listen on {address} ({exc})") from exc
    if not port:
        shared.pool.shutdown(wait=False)
        shared.spool.close()
        raise InvalidArgument(f"cannot listen on {address}")
    review = None
    if http is not None:
        from nanhu.server.review_app import ReviewServer, bind

        try:
            sock = bind(http_host, http_port)
        except InvalidArgument:
            shared.pool.shutdown(wait=False)
            shared.spool.close()
            raise
        review = ReviewServer(shared, sock, tls_cert=tls_cert, tls_key=tls_key)
    if authenticator.enabled:
        log_event(log, logging.INFO, event="auth", keys_file=auth)
        if credentials is None and not is_loopback(host):
            log_event(log, logging.WARNING, event="insecure", address=address,
                      note=PLAINTEXT_KEYS_WARNING)
    else:
        log_event(log, logging.WARNING, event="auth", keys_file="none",
                  note="no auth file: every local caller is admin; loopback only")
    return NanhuServer(server, shared, health_servicer, address=address, port=port,
                       tls=credentials is not None, mutual_tls=tls_client_ca is not None,
                       metrics_address=metrics, review=review), port


PLAINTEXT_KEYS_WARNING = (
    "API KEYS OVER PLAINTEXT: this address is reachable from other machines and the port has no "
    "TLS, so every key (and every upload) crosses the network in clear, readable by anyone on "
    "the path. Pass --tls-cert and --tls-key (or put a TLS proxy in front and listen on loopback)"
)


def _server_credentials(cert: str | Path | None, key: str | Path | None,
                        client_ca: str | Path | None) -> grpc.ServerCredentials | None:
    """TLS credentials from PEM files (None: plaintext); with ``client_ca``, mutual TLS."""
    if cert is None:
        return None
    try:
        pair = (Path(key).read_bytes(), Path(cert).read_bytes())
        ca = Path(client_ca).read_bytes() if client_ca is not None else None
    except OSError as exc:
        raise InvalidArgument(f"TLS: cannot read {exc.filename} ({exc.strerror})") from exc
    return grpc.ssl_server_credentials([pair], root_certificates=ca,
                                       require_client_auth=ca is not None)
