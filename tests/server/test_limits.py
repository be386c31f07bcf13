"""Status codes, limits, cancelled and timed-out uploads, graceful shutdown."""

from __future__ import annotations

import os
import signal
import threading

import grpc
import pytest

from nanhu.proto.gen.nanhu.v1 import nanhu_pb2 as pb
from nanhu.server import convert

RATE = 22050


def rpc_error(call, *args, **kwargs) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as excinfo:
        call(*args, **kwargs)
    return excinfo.value


def test_status_codes(env, tmp_path):
    admin = env.client("admin")
    # Undecodable media: INVALID_ARGUMENT with the reason, naming the upload (not a server path).
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(os.urandom(50_000))
    error = rpc_error(env.client("platform").screen_file, junk)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "junk.mp4" in error.details() and "nanhu-uploads" not in error.details()
    assert rpc_error(admin.register_file, junk, "junk").code() == grpc.StatusCode.INVALID_ARGUMENT
    # Unknown id: NOT_FOUND.
    assert rpc_error(admin.get, "no-such-work").code() == grpc.StatusCode.NOT_FOUND
    assert rpc_error(admin.delete, "no-such-work").code() == grpc.StatusCode.NOT_FOUND
    assert rpc_error(admin.set_policy, "no-such-work", "block").code() == grpc.StatusCode.NOT_FOUND
    # Duplicate id or duplicate content: ALREADY_EXISTS.
    path = env.write("s301.wav", env.song(301, 8))
    fp = env.fingerprint(path)
    admin.register_fingerprint(fp, "song-301")
    assert rpc_error(admin.register_fingerprint, fp, "song-301").code() == grpc.StatusCode.ALREADY_EXISTS
    assert rpc_error(admin.register_file, path, "song-301").code() == grpc.StatusCode.ALREADY_EXISTS
    error = rpc_error(admin.register_fingerprint, fp, "song-301-again")
    assert error.code() == grpc.StatusCode.ALREADY_EXISTS and "song-301" in error.details()
    # Bad ids, and fingerprints of other parameters.
    assert rpc_error(admin.register_fingerprint, fp, "../x").code() == grpc.StatusCode.INVALID_ARGUMENT
    message = convert.fingerprint_to_proto(env.fingerprint(path, query=True))
    message.audio.params_tag = "audio-v999"
    error = rpc_error(env.client("platform").screen_fingerprint, message)
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    message.format_version = 99
    error = rpc_error(env.client("platform").screen_fingerprint, message)
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION


def test_oversized_and_overlong_media_are_resource_exhausted(small_server):
    env = small_server(max_upload_bytes=200_000, max_duration_s=20.0)
    client = env.client()
    big = env.write("big.wav", env.song(302, 8))  # ~350 kB of PCM
    error = rpc_error(client.screen_file, big)
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "200000 bytes" in error.details()
    assert rpc_error(client.register_file, big, "big").code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    long_fp = env.fingerprint(env.write("long.mp3", env.song(303, 25)), query=True)
    assert rpc_error(client.screen_fingerprint, long_fp).code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert rpc_error(client.register_file, env.media / "long.mp3", "long").code() == \
        grpc.StatusCode.RESOURCE_EXHAUSTED
    assert env.server.spool.files() == [] and client.list() == []


def test_concurrency_bound_is_resource_exhausted(small_server):
    env = small_server(max_concurrent=1)
    channel, screening, _ = env.stubs()
    data = env.write("c.wav", env.song(304, 6)).read_bytes()
    gate = threading.Event()
    first = screening.Screen.future(
        env.chunks(pb.ScreenChunk, pb.ScreenHeader(filename="c.wav"), data, gate=gate), timeout=30)
    assert env.server.limiter.wait_until(lambda n: n == 1, timeout=30)
    error = rpc_error(env.client(attempts=1).screen_file, env.media / "c.wav")  # no retries
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "limit 1" in error.details()
    gate.set()
    assert first.result().duration_s == pytest.approx(6.0, abs=0.1)
    assert env.server.limiter.wait_until(lambda n: n == 0, timeout=30)
    env.client().screen_file(env.media / "c.wav")  # a free slot again
    channel.close()


def test_cancelled_upload_leaves_nothing_behind(small_server):
    env = small_server()
    channel, _, catalog = env.stubs()
    data = env.write("r.wav", env.song(305, 8)).read_bytes()
    gate = threading.Event()
    header = pb.RegisterHeader(reference_id="song-305", filename="r.wav")
    call = catalog.Register.future(env.chunks(pb.RegisterChunk, header, data, gate=gate), timeout=30)
    assert env.server.spool.wait_until(lambda n: n == 1, timeout=30)  # mid-upload
    call.cancel()
    gate.set()
    assert env.server.spool.wait_until(lambda n: n == 0, timeout=30)
    assert env.server.limiter.wait_until(lambda n: n == 0, timeout=30)
    assert env.server.spool.files() == []
    client = env.client()
    assert rpc_error(client.get, "song-305").code() == grpc.StatusCode.NOT_FOUND
    assert client.register_file(env.media / "r.wav", "song-305")["reference_id"] == "song-305"
    channel.close()


def test_deadline_passing_mid_upload_is_cleaned_up(small_server):
    env = small_server()
    channel, screening, _ = env.stubs()
    data = env.write("d.wav", env.song(306, 6)).read_bytes()
    gate = threading.Event()
    call = screening.Screen.future(
        env.chunks(pb.ScreenChunk, pb.ScreenHeader(filename="d.wav"), data, gate=gate), timeout=1.0)
    assert rpc_error(call.result).code() == grpc.StatusCode.DEADLINE_EXCEEDED
    gate.set()
    assert env.server.spool.wait_until(lambda n: n == 0, timeout=30)
    assert env.server.limiter.wait_until(lambda n: n == 0, timeout=30)
    assert env.server.spool.files() == []
    channel.close()


def test_graceful_shutdown_finishes_the_call_in_flight(small_server):
    env = small_server()
    ref = env.song(307)
    client = env.client()
    client.register_fingerprint(env.fingerprint(env.write("s307.wav", ref)), "song-307")
    data = env.write("q307.wav", ref[4 * RATE : 14 * RATE]).read_bytes()
    channel, screening, catalog = env.stubs()
    gate = threading.Event()
    call = screening.Screen.future(
        env.chunks(pb.ScreenChunk, pb.ScreenHeader(filename="q307.wav"), data, gate=gate), timeout=60)
    try:
        assert env.server.spool.wait_until(lambda n: n == 1, timeout=30)
        stopped = env.server.stop(grace=60)
        # New calls are refused (gRPC answers UNAVAILABLE, or CANCELLED while it drains).
        refused = rpc_error(catalog.Stats, pb.StatsRequest(), timeout=10).code()
        assert refused in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED)
    finally:
        gate.set()
    response = call.result()
    assert [m.reference_id for m in response.matches] == ["song-307"]
    assert stopped.wait(30)
    assert not env.server.spool.path.exists()
    channel.close()


def test_a_dead_worker_is_replaced(small_server):
    env = small_server()
    client = env.client()
    query = env.write("w.wav", env.song(308, 5))
    (pid,) = env.server.shared.pool.pids
    os.kill(pid, signal.SIGKILL)
    try:  # the pool may or may not have noticed the death before this call is queued
        client.screen_file(query)
    except grpc.RpcError as error:
        assert error.code() == grpc.StatusCode.INTERNAL and "worker process died" in error.details()
    assert client.screen_file(query)["duration_s"] == pytest.approx(5.0, abs=0.1)
    assert env.server.metrics.sample("nanhu_worker_restarts_total") == 1


def test_a_stalled_upload_is_ended_and_frees_its_slot_and_spool(small_server):
    """Three stalled streams without deadlines used to block all screening (issue 15)."""
    env = small_server(max_concurrent=2, upload_idle_s=0.5)
    channel, screening, catalog = env.stubs()
    data = env.write("stall.wav", env.song(307, 6)).read_bytes()
    gate = threading.Event()  # never set while the calls run: the client stops sending
    stalled = [screening.Screen.future(env.chunks(pb.ScreenChunk, pb.ScreenHeader(filename="s.wav"),
                                                  data, gate=gate)),
               catalog.Register.future(env.chunks(
                   pb.RegisterChunk, pb.RegisterHeader(reference_id="stalled", filename="r.wav"),
                   data, gate=gate))]
    for call in stalled:
        error = rpc_error(call.result)
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "stalled" in error.details()
    gate.set()
    assert env.server.limiter.wait_until(lambda n: n == 0, timeout=30)
    assert env.server.spool.wait_until(lambda n: n == 0, timeout=30)
    assert env.server.spool.files() == []
    assert env.client().screen_file(env.media / "stall.wav")["duration_s"] == pytest.approx(6.0, abs=0.1)
    channel.close()


def test_spool_folders_of_dead_servers_are_removed_at_start_up(tmp_path):
    import subprocess
    import sys

    from nanhu.server.work import Spool

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    leftover = tmp_path / "nanhu-uploads-dead"
    leftover.mkdir()
    (leftover / "owner.pid").write_text(dead.stdout.strip())
    (leftover / "tmp123.upload").write_bytes(b"half an upload")
    alive = Spool(tmp_path)  # a running server's spool is kept
    (alive.path / "x.upload").write_bytes(b"in progress")
    second = Spool(tmp_path)
    assert not leftover.exists()
    assert alive.path.exists() and alive.files() == [alive.path / "x.upload"]
    second.close()
    alive.close()
