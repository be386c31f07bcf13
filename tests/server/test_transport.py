"""Transport: TLS, mutual TLS, the plaintext-keys warning, and the client's retries and waiting."""

from __future__ import annotations

import logging
import socket
import threading
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest

from nanhu.proto.gen.nanhu.v1 import nanhu_pb2 as pb
from nanhu.proto.gen.nanhu.v1 import nanhu_pb2_grpc as pb_grpc
from nanhu.server import convert
from nanhu.server.app import PLAINTEXT_KEYS_WARNING, create_server
from nanhu.server.auth import KeyFile
from nanhu.server.client import NanhuClient


def rpc_error(call, *args, **kwargs) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as excinfo:
        call(*args, **kwargs)
    return excinfo.value


def no_wait(address: str, **kwargs) -> NanhuClient:
    """A client that fails at once when the connection fails (no waiting, no retries)."""
    return NanhuClient(address, timeout=10, wait_for_ready=False, attempts=1, **kwargs)


@pytest.fixture
def served(tmp_path):
    """serve(**create_server options) -> (server, port); every server is stopped afterwards."""
    started = []

    def serve(address: str = "127.0.0.1:0", **options):
        server, port = create_server(tmp_path / f"catalog{len(started)}", address, workers=1,
                                     **options)
        started.append(server)
        return server.start(), port

    yield serve
    for server in started:
        assert server.stop(0).wait(30)


def test_tls_call_and_a_plaintext_client_refused(served, pki):
    _, port = served(tls_cert=pki.server_cert, tls_key=pki.server_key)
    with NanhuClient(f"localhost:{port}", root_certificates=pki.ca.read_bytes(), timeout=10) as tls:
        assert tls.stats()["references"] == 0
    with no_wait(f"localhost:{port}") as plaintext:
        assert rpc_error(plaintext.stats).code() == grpc.StatusCode.UNAVAILABLE
    # The server's certificate is checked: a client trusting another CA does not talk to it.
    with no_wait(f"localhost:{port}", root_certificates=pki.rogue_cert.read_bytes()) as wrong_ca:
        assert rpc_error(wrong_ca.stats).code() == grpc.StatusCode.UNAVAILABLE


def test_mutual_tls_requires_a_client_certificate_of_the_ca(served, pki):
    server, port = served(tls_cert=pki.server_cert, tls_key=pki.server_key, tls_client_ca=pki.ca)
    assert server.mutual_tls
    ca = pki.ca.read_bytes()
    with NanhuClient(f"localhost:{port}", root_certificates=ca, timeout=10,
                     certificate_chain=pki.client_cert.read_bytes(),
                     private_key=pki.client_key.read_bytes()) as client:
        assert client.stats()["references"] == 0
    with no_wait(f"localhost:{port}", root_certificates=ca) as anonymous:
        assert rpc_error(anonymous.stats).code() == grpc.StatusCode.UNAVAILABLE
    with no_wait(f"localhost:{port}", root_certificates=ca, certificate_chain=pki.rogue_cert.read_bytes(),
                 private_key=pki.rogue_key.read_bytes()) as rogue:
        assert rpc_error(rogue.stats).code() == grpc.StatusCode.UNAVAILABLE
    # The refused clients never got as far as an RPC.
    assert server.metrics.sample("nanhu_rpc_requests_total", rpc="Stats", code="OK") == 1


def test_keys_over_plaintext_on_a_public_address_warn_loudly(tmp_path, pki, caplog):
    keys = KeyFile(tmp_path / "keys.json")
    keys.add("tube", ["screen"])
    keys.save()

    def warnings(**options) -> list[str]:
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="nanhu.server"):
            server, _ = create_server(tmp_path / "catalog", "0.0.0.0:0", workers=1,
                                      auth=tmp_path / "keys.json", **options)
        assert server.stop(0).wait(30)
        return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]

    (plaintext,) = warnings()
    assert "event=insecure" in plaintext and PLAINTEXT_KEYS_WARNING.split(":")[0] in plaintext
    assert warnings(tls_cert=pki.server_cert, tls_key=pki.server_key) == []


# --- retries --------------------------------------------------------------------------------------
class FlakyCatalog(pb_grpc.CatalogServicer):
    """Stats answers ``code`` for its first ``failures`` calls, then 3 references."""

    def __init__(self, code: grpc.StatusCode, failures: int, pushback: str | None = None) -> None:
        self.code, self.failures, self.pushback = code, failures, pushback
        self.calls = 0

    def Stats(self, request, context):
        self.calls += 1
        if self.calls <= self.failures:
            if self.pushback is not None:
                context.set_trailing_metadata((("grpc-retry-pushback-ms", self.pushback),))
            context.abort(self.code, "not now")
        return pb.StatsResponse(references=3)


@pytest.fixture
def flaky():
    servers = []

    def start(servicer: FlakyCatalog) -> str:
        server = grpc.server(ThreadPoolExecutor(max_workers=2))
        pb_grpc.add_CatalogServicer_to_server(servicer, server)
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        servers.append(server)
        return f"127.0.0.1:{port}"

    yield start
    for server in servers:
        server.stop(0)


@pytest.mark.parametrize("code", [grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED])
def test_the_client_retries_unavailable_and_resource_exhausted(flaky, code):
    servicer = FlakyCatalog(code, failures=2)
    with NanhuClient(flaky(servicer), timeout=30) as client:
        assert client.stats()["references"] == 3
    assert servicer.calls == 3


def test_the_client_does_not_retry_other_codes_or_when_told_not_to(flaky):
    servicer = FlakyCatalog(grpc.StatusCode.INVALID_ARGUMENT, failures=1)
    with NanhuClient(flaky(servicer), timeout=30) as client:
        assert rpc_error(client.stats).code() == grpc.StatusCode.INVALID_ARGUMENT
    assert servicer.calls == 1
    servicer = FlakyCatalog(grpc.StatusCode.RESOURCE_EXHAUSTED, failures=1, pushback="-1")
    with NanhuClient(flaky(servicer), timeout=30) as client:
        assert rpc_error(client.stats).code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert servicer.calls == 1


def test_the_server_stops_retries_that_cannot_help_and_not_those_that_can(small_server, kit):
    env = small_server(max_duration_s=10.0, max_concurrent=1)
    client = env.client()
    long_fp = env.fingerprint(env.write("long.wav", env.song(901, 14)), query=True)
    assert rpc_error(client.screen_fingerprint, long_fp).code() == grpc.StatusCode.RESOURCE_EXHAUSTED

    def exhausted() -> float:
        return env.server.metrics.sample("nanhu_rpc_requests_total", rpc="ScreenFingerprint",
                                         code="RESOURCE_EXHAUSTED")

    assert exhausted() == 1  # tried once
    # Busy: worth retrying, so the client tries again (here: 3 times, the slot stays taken).
    channel, screening, _ = env.stubs()
    data = env.write("hold.wav", env.song(902, 4)).read_bytes()
    gate = threading.Event()
    held = screening.Screen.future(
        env.chunks(pb.ScreenChunk, pb.ScreenHeader(filename="hold.wav"), data, gate=gate), timeout=30)
    assert env.server.limiter.wait_until(lambda n: n == 1, timeout=30)
    short_fp = env.fingerprint(env.media / "hold.wav", query=True)
    # Bigger than gRPC's default retry buffer (256 KiB), past which gRPC would not retry at all:
    # the client's own buffer has to hold it (as it does a real, longer query fingerprint).
    assert convert.fingerprint_to_proto(short_fp).ByteSize() > 256 * 1024
    error = rpc_error(env.client(attempts=3).screen_fingerprint, short_fp)
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "busy" in error.details()
    gate.set()
    held.result()
    channel.close()
    assert exhausted() == 1 + 3


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_call_waits_for_a_server_that_starts_late(tmp_path):
    port = free_port()
    client = NanhuClient(f"127.0.0.1:{port}", timeout=60)
    failed_to_connect = threading.Event()

    def on_state(state: grpc.ChannelConnectivity) -> None:
        if state == grpc.ChannelConnectivity.TRANSIENT_FAILURE:
            failed_to_connect.set()

    client.channel.subscribe(on_state, try_to_connect=True)
    with ThreadPoolExecutor(max_workers=1) as pool:
        call = pool.submit(client.stats)
        assert failed_to_connect.wait(30)  # nobody listens yet: the call is waiting
        assert not call.done()
        server, _ = create_server(tmp_path / "catalog", f"127.0.0.1:{port}", workers=1)
        server.start()
        try:
            assert call.result(timeout=60)["references"] == 0
        finally:
            client.channel.unsubscribe(on_state)
            client.close()
            assert server.stop(0).wait(30)


def test_the_client_reads_its_key_from_the_environment(env, monkeypatch):
    monkeypatch.setenv("NANHU_API_KEY", env.keys["platform"])
    with NanhuClient(env.address, timeout=10) as client:
        assert client.metadata == (("x-api-key", env.keys["platform"]),)
        assert client.stats()["references"] >= 0
    monkeypatch.delenv("NANHU_API_KEY")
    with NanhuClient(env.address, timeout=10) as client:
        assert rpc_error(client.stats).code() == grpc.StatusCode.UNAUTHENTICATED
