"""Nothing a caller sends may break the catalog for others (issue 15): poisoned edge
fingerprints, claimed digests, log injection through hints."""

from __future__ import annotations

import logging

import grpc
import numpy as np
import pytest

from nanhu.proto.gen.nanhu.v1 import nanhu_pb2 as pb
from nanhu.server import convert


def rpc_error(call, *args, **kwargs) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as excinfo:
        call(*args, **kwargs)
    return excinfo.value


@pytest.fixture(scope="module")
def video_work(env, kit, tmp_path_factory):
    """A video-only work registered by label-a, and a query that copies it."""
    path = kit.write_video(tmp_path_factory.mktemp("boundary") / "film.mp4", 12.0, audio=None)
    env.client("label_a").register_file(path, "boundary-film")
    return path


def poisoned(env, path, change) -> pb.Fingerprint:
    message = convert.fingerprint_to_proto(env.fingerprint(path))
    change(message.video)
    return message


def _dimension_3(video):
    n = len(video.times_s)
    del video.vectors[:]
    video.vectors.extend([0.5773503] * (3 * n))
    video.dim = 3


def _norm_1e6(video):
    values = np.array(video.vectors, np.float32) * 1e6
    del video.vectors[:]
    video.vectors.extend(values.tolist())


def _nan_time(video):
    video.times_s[1] = float("nan")


def _negative_time(video):
    video.times_s[0] = -1e9


POISONS = {"dimension 3": (_dimension_3, "video.dim"), "norm 1e6": (_norm_1e6, "video.vectors"),
           "NaN time": (_nan_time, "video.times_s"),
           "very negative time": (_negative_time, "video.times_s")}


@pytest.mark.parametrize("name", sorted(POISONS))
def test_poisoned_edge_fingerprints_are_invalid_and_screening_goes_on(env, video_work, kit,
                                                                      tmp_path, name):
    change, field = POISONS[name]
    other = kit.write_video(tmp_path / "other.mp4", 8.0, audio=None, size=(96, 64))
    message = poisoned(env, other, change)
    error = rpc_error(env.client("label_b").register_fingerprint, message, f"poison-{len(name)}")
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert f"fingerprint: {field}" in error.details()
    error = rpc_error(env.client("platform").screen_fingerprint, message)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert f"fingerprint: {field}" in error.details()
    # Everyone else's video screening still finds the copy.
    matches = env.client("platform").screen_file(video_work)["matches"]
    assert [m["reference_id"] for m in matches][:1] == ["boundary-film"]


def test_a_claimed_digest_never_refuses_another_tenants_media(env):
    path = env.write("claimed.wav", env.song(801, 10))
    real = env.fingerprint(path)
    # Tenant B registers some other print carrying the digest of A's file...
    fake = env.fingerprint(env.write("fake.wav", env.song(802, 10)))
    fake_message = convert.fingerprint_to_proto(fake)
    fake_message.digest = real.digest
    env.client("label_b").register_fingerprint(fake_message, "b-squatter")
    # ...A's real upload is still accepted, and B's id is named nowhere.
    reference = env.client("label_a").register_file(path, "a-real-work")
    assert reference["digest"] == real.digest
    # A claim still refuses the same tenant's own duplicate prints.
    error = rpc_error(env.client("label_b").register_fingerprint, fake_message, "b-again")
    assert error.code() == grpc.StatusCode.ALREADY_EXISTS and "b-squatter" in error.details()


def test_a_duplicate_of_another_tenants_work_does_not_name_it(env):
    path = env.write("dup.wav", env.song(803, 10))
    env.client("label_a").register_file(path, "a-secret-id")
    error = rpc_error(env.client("label_b").register_file, path, "b-copy")
    assert error.code() == grpc.StatusCode.ALREADY_EXISTS
    assert "a-secret-id" not in error.details() and "another owner" in error.details()


def test_a_newline_in_a_hint_key_cannot_forge_a_log_line(env, caplog):
    data = env.write("hint.wav", env.song(804, 4)).read_bytes()
    header = pb.ScreenHeader(filename="hint.wav",
                             hints={"x\nrpc=Forged code=OK tenant=admin": "1"})
    channel, screening, _ = env.stubs()
    with caplog.at_level(logging.INFO, logger="nanhu.server.rpc"):
        screening.Screen(env.chunks(pb.ScreenChunk, header, data), timeout=30,
                         metadata=env.metadata("platform"))
    channel.close()
    lines = [r.getMessage() for r in caplog.records if r.name == "nanhu.server.rpc"]
    assert lines and all("\n" not in line for line in lines)
    assert not any(line.startswith("rpc=Forged") for line in lines)


def test_a_bug_is_internal_with_a_message_not_unknown_and_empty(small_server, monkeypatch):
    from nanhu.server import service

    env = small_server()

    def broken(self):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(service.Core, "stats", broken)
    error = rpc_error(env.client().stats)
    assert error.code() == grpc.StatusCode.INTERNAL
    assert "internal error (ZeroDivisionError)" in error.details()
