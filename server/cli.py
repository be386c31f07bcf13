"""The server's subcommands: ``nanhu serve`` and ``nanhu keys add/list/revoke``; and the
``--server`` mode of the engine's ``policy`` and ``query`` (:mod:`server.remote`)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from nanhu.engine.cli import default_catalog
from nanhu.engine.cli_text import iso_time, text_table

DEFAULT_LISTEN = "127.0.0.1:50051"


def default_keys_file() -> Path:
    return Path(os.environ.get("NANHU_KEYS") or "var/keys.json")


def add_commands(subparsers) -> None:
    p = subparsers.add_parser("serve", help="run the gRPC service (screening and catalog)")
    p.add_argument("--catalog", type=Path, default=None,
                   help="catalog directory (default: $NANHU_CATALOG, else ./var/catalog)")
    p.add_argument("--listen", default=DEFAULT_LISTEN, metavar="HOST:PORT",
                   help="address to listen on (loopback only without --auth)")
    p.add_argument("--cluster", default=None, metavar="ADDRESS",
                   help="Ray address (HOST:PORT, auto) whose shard actors serve the cluster "
                        "catalog --catalog names (`nanhu cluster start`); without it a cluster "
                        "catalog's shards are opened in this process")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 2,
                   help="processes that decode, fingerprint and match (default: one per core)")
    p.add_argument("--auth", type=Path, default=None, metavar="FILE",
                   help="API keys file (see `nanhu keys`); without it only loopback is served")
    p.add_argument("--tls-cert", type=Path, default=None, metavar="FILE", help="PEM certificate chain")
    p.add_argument("--tls-key", type=Path, default=None, metavar="FILE", help="PEM private key")
    p.add_argument("--tls-client-ca", type=Path, default=None, metavar="FILE",
                   help="PEM CA certificates: require client certificates signed by them (mutual TLS)")
    p.add_argument("--metrics", default=None, metavar="HOST:PORT",
                   help="serve Prometheus metrics at http://HOST:PORT/metrics (no auth: bind it "
                        "where only your monitoring reaches)")
    p.add_argument("--http", default=None, metavar="HOST:PORT",
                   help="also serve the review web page for claims at http://HOST:PORT/ (same "
                        "keys; TLS with --tls-cert; loopback only without --auth)")
    p.add_argument("--log-format", choices=("text", "json"), default="text",
                   help="log lines on stderr: timestamped text, or one JSON object per line")
    p.add_argument("--max-upload-mb", type=float, default=512.0, help="largest upload (MiB)")
    p.add_argument("--max-duration-s", type=float, default=3 * 3600.0, help="longest media (s)")
    p.add_argument("--max-concurrent", type=int, default=64,
                   help="screening/registration calls at once; beyond: RESOURCE_EXHAUSTED")
    p.add_argument("--job-cpu-s", type=float, default=1800.0, metavar="SECONDS",
                   help="CPU time one decode/fingerprint/match job may use; a job over it is "
                        "stopped (RESOURCE_EXHAUSTED) and its worker replaced; 0: no bound")
    p.add_argument("--job-memory-mb", type=float, default=4096.0, metavar="MIB",
                   help="private memory a worker may hold while it runs one job; over it, as "
                        "--job-cpu-s; 0: no bound")
    p.add_argument("--grace", type=float, default=10.0,
                   help="seconds calls in flight get to finish on SIGTERM/SIGINT")
    p.set_defaults(func=cmd_serve)

    p = subparsers.add_parser("keys", help="manage API keys (add, list, revoke)")
    keys = p.add_subparsers(dest="keys_command", metavar="ACTION")
    k = keys.add_parser("add", help="make a key for a tenant; it is printed once")
    _keys_file_arg(k)
    k.add_argument("--tenant", required=True, help="tenant the key acts for (owner of its works)")
    k.add_argument("--role", dest="roles", action="append", required=True,
                   choices=("screen", "register", "admin"), help="role; repeat for several")
    k.add_argument("--note", default="", help="free text shown by `keys list`")
    k.set_defaults(func=cmd_keys_add)
    k = keys.add_parser("list", help="list keys (never the keys themselves)")
    _keys_file_arg(k)
    k.add_argument("--json", action="store_true", help="one JSON object per key (epoch times)")
    k.set_defaults(func=cmd_keys_list)
    k = keys.add_parser("revoke", help="revoke a key by id; the server stops accepting it at once")
    _keys_file_arg(k)
    k.add_argument("key_id", metavar="KEY_ID")
    k.set_defaults(func=cmd_keys_revoke)
    p.set_defaults(func=lambda args: p.print_help() or 2)

    from nanhu.server.remote import add_remote_options

    add_remote_options(subparsers)  # `policy` and `query` through a server: --server, --key


def _keys_file_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--file", type=Path, default=None,
                        help="keys file (default: $NANHU_KEYS, else ./var/keys.json)")


def cmd_keys_add(args: argparse.Namespace) -> int:
    from nanhu.server.auth import KeyFile

    keys = KeyFile(args.file or default_keys_file())
    key_id, key = keys.add(args.tenant, args.roles, note=args.note)
    keys.save()
    print(key)
    print(f"nanhu: key {key_id} for tenant {args.tenant!r} ({', '.join(sorted(set(args.roles)))}) saved "
          f"to {keys.path}; the key is shown only now", file=sys.stderr)
    return 0


def cmd_keys_list(args: argparse.Namespace) -> int:
    from nanhu.server.auth import KeyFile

    rows = []
    for entry in KeyFile(args.file or default_keys_file()).entries():
        if args.json:
            print(json.dumps(entry))
            continue
        state = f"revoked {iso_time(entry['revoked_at'])}" if entry.get("revoked_at") else "active"
        rows.append((entry["key_id"], state, entry["tenant"], ",".join(entry["roles"]),
                     iso_time(entry["created_at"]), entry.get("note", "")))
    if rows:
        for line in text_table(("KEY_ID", "STATE", "TENANT", "ROLES", "CREATED", "NOTE"), rows):
            print(line)
    return 0


def cmd_keys_revoke(args: argparse.Namespace) -> int:
    from nanhu.server.auth import KeyFile

    keys = KeyFile(args.file or default_keys_file())
    entry = keys.revoke(args.key_id)
    keys.save()
    print(f"revoked {entry['key_id']} (tenant {entry['tenant']})")
    return 0


def how_to_try(host: str, port: int, *, auth: bool, tls: bool) -> list[str]:
    """The lines ``serve`` prints: a grpcurl call and a Python client call."""
    target = f"{host}:{port}"
    flags = "-insecure" if tls else "-plaintext"
    header = " -H 'x-api-key: KEY'" if auth else ""
    key = ", key='KEY'" if auth else ""
    tls_arg = ", tls=True" if tls else ""
    return [
        f"  grpcurl {flags} {target} list",
        f"  grpcurl {flags}{header} -d '{{}}' {target} nanhu.v1.Catalog/Stats",
        f"  python -c \"from nanhu.server.client import NanhuClient; "
        f"print(NanhuClient('{target}'{key}{tls_arg}).screen_file('clip.mp3'))\"",
    ]


def cmd_serve(args: argparse.Namespace) -> int:
    from nanhu.server.app import create_server, split_address
    from nanhu.server.logs import configure_logging
    from nanhu.server.service import Limits

    configure_logging(args.log_format,
                      level=logging.DEBUG if getattr(args, "verbose", False) else logging.INFO)
    limits = Limits(max_upload_bytes=int(args.max_upload_mb * 2**20),
                    max_duration_s=args.max_duration_s, max_concurrent=args.max_concurrent,
                    job_cpu_s=args.job_cpu_s or None, job_memory_mb=args.job_memory_mb or None)
    catalog = args.catalog or default_catalog()
    server, port = create_server(catalog, args.listen, workers=args.workers, auth=args.auth,
                                 limits=limits, tls_cert=args.tls_cert, tls_key=args.tls_key,
                                 tls_client_ca=args.tls_client_ca, metrics=args.metrics,
                                 http=args.http, cluster=args.cluster)
    server.start()
    host, _ = split_address(args.listen)
    transport = "mutual TLS" if args.tls_client_ca else "TLS" if args.tls_cert else "plaintext"
    print(f"nanhu: serving catalog {catalog} on {host}:{port} "
          f"({transport}, {args.workers} worker processes)", flush=True)
    if server.metrics_port is not None:
        metrics_host, _ = split_address(args.metrics)
        print(f"nanhu: metrics at http://{metrics_host}:{server.metrics_port}/metrics", flush=True)
    if server.http_port is not None:
        http_host, _ = split_address(args.http)
        scheme = "https" if args.tls_cert else "http"
        print(f"nanhu: review page at {scheme}://{http_host}:{server.http_port}/", flush=True)
    if args.auth is None:
        print("nanhu: no --auth file: listening on loopback only; every local caller acts as admin",
              flush=True)
    print("try it:", *how_to_try(host, port, auth=args.auth is not None, tls=args.tls_cert is not None),
          sep="\n", flush=True)
    stopped = threading.Event()

    def on_signal(signum, _frame) -> None:
        print(f"nanhu: {signal.Signals(signum).name}: finishing calls in flight (up to {args.grace:g} s)",
              file=sys.stderr, flush=True)
        server.stop(args.grace).wait()
        stopped.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda s, f: threading.Thread(target=on_signal, args=(s, f)).start())
    while not stopped.wait(3600):
        pass
    return 0
