"""Container health probe: asks the server's standard gRPC health service whether it serves.

Exits 0 when the answer is SERVING and 1 otherwise (NOT_SERVING while draining on SIGTERM,
unreachable, too slow, refused), which is what Docker's ``HEALTHCHECK`` and an exec probe in
Kubernetes expect. It is a standalone script on purpose: it needs only ``grpcio`` and
``grpcio-health-checking``, not the nanhu packages, so it starts fast (a probe runs every 30 s)
and does not care how the packages are laid out. The health service needs no API key.

Settings come from options or, so that the image's ``HEALTHCHECK`` line stays fixed, from the
environment::

    NANHU_HEALTH_ADDRESS    host:port to ask (default 127.0.0.1:50051)
    NANHU_HEALTH_SERVICE    service to ask about ("": the whole server, the default)
    NANHU_HEALTH_TLS_CA     PEM CA certificates: talk TLS and verify the server with them
    NANHU_HEALTH_TLS_NAME   name the server certificate must carry (default: the address' host)
    NANHU_HEALTH_TLS_CERT   PEM client certificate and ...
    NANHU_HEALTH_TLS_KEY    ... its key, for a server that requires mutual TLS
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

DEFAULT_ADDRESS = "127.0.0.1:50051"


def _channel(address: str, *, ca: Path | None, cert: Path | None, key: Path | None,
             server_name: str | None) -> grpc.Channel:
    if ca is None:
        return grpc.insecure_channel(address)
    credentials = grpc.ssl_channel_credentials(
        root_certificates=ca.read_bytes(),
        private_key=key.read_bytes() if key is not None else None,
        certificate_chain=cert.read_bytes() if cert is not None else None)
    options = [("grpc.ssl_target_name_override", server_name)] if server_name else []
    return grpc.secure_channel(address, credentials, options=options)


def check(address: str = DEFAULT_ADDRESS, *, service: str = "", timeout_s: float = 3.0,
          ca: Path | None = None, cert: Path | None = None, key: Path | None = None,
          server_name: str | None = None) -> tuple[bool, str]:
    """(serving, what was seen) for one Health/Check call to ``address``."""
    try:
        channel = _channel(address, ca=ca, cert=cert, key=key, server_name=server_name)
    except OSError as exc:
        return False, f"cannot read {exc.filename} ({exc.strerror})"
    with channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=timeout_s)
        except grpc.RpcError as exc:
            return False, f"{exc.code().name}: {exc.details()}"
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    return reply.status == health_pb2.HealthCheckResponse.SERVING, status


def _path(value: str | None) -> Path | None:
    return Path(value) if value else None


def main(argv: list[str] | None = None) -> int:
    env = os.environ.get
    parser = argparse.ArgumentParser(description="Exit 0 if the Nanhu server at ADDRESS is serving.")
    parser.add_argument("--address", default=env("NANHU_HEALTH_ADDRESS") or DEFAULT_ADDRESS)
    parser.add_argument("--service", default=env("NANHU_HEALTH_SERVICE", ""))
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds (default 3)")
    parser.add_argument("--tls-ca", default=env("NANHU_HEALTH_TLS_CA"))
    parser.add_argument("--tls-name", default=env("NANHU_HEALTH_TLS_NAME"))
    parser.add_argument("--tls-cert", default=env("NANHU_HEALTH_TLS_CERT"))
    parser.add_argument("--tls-key", default=env("NANHU_HEALTH_TLS_KEY"))
    args = parser.parse_args(argv)
    serving, seen = check(args.address, service=args.service, timeout_s=args.timeout,
                          ca=_path(args.tls_ca), cert=_path(args.tls_cert), key=_path(args.tls_key),
                          server_name=args.tls_name)
    print(f"nanhu health {args.address}: {seen}", file=sys.stdout if serving else sys.stderr)
    return 0 if serving else 1


if __name__ == "__main__":
    sys.exit(main())
