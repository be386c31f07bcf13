"""API keys, roles and tenancy: every case the issue names, and `nanhu keys`."""

from __future__ import annotations

import json

import grpc
import pytest

from nanhu import cli as nanhu_cli
from nanhu.engine.audio.params import AudioParams
from nanhu.engine.errors import InvalidArgument
from nanhu.proto.gen.nanhu.v1 import nanhu_pb2 as pb
from nanhu.server.app import create_server
from nanhu.server.auth import KeyFile

UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED
PERMISSION_DENIED = grpc.StatusCode.PERMISSION_DENIED


def status(call, *args, **kwargs) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as excinfo:
        call(*args, **kwargs)
    return excinfo.value.code()


def test_missing_wrong_and_revoked_keys_are_unauthenticated(env):
    channel, screening, catalog = env.stubs()
    request = pb.ScreenFingerprintRequest()
    assert status(screening.ScreenFingerprint, request, timeout=10) == UNAUTHENTICATED
    assert status(catalog.Stats, pb.StatsRequest(), timeout=10) == UNAUTHENTICATED
    for key in ("nanhu_00000000_guess", env.keys["revoked"], env.keys["admin"] + "x"):
        assert status(catalog.Stats, pb.StatsRequest(), timeout=10,
                      metadata=(("x-api-key", key),)) == UNAUTHENTICATED
    # The key works as a bearer token as well.
    stats = catalog.Stats(pb.StatsRequest(), timeout=10,
                          metadata=(("authorization", f"Bearer {env.keys['platform']}"),))
    assert stats.audio_params == AudioParams().tag()
    channel.close()


def test_unauthenticated_upload_is_refused_before_it_is_read(env):
    channel, screening, _ = env.stubs()
    data = env.write("anon.wav", env.song(201, 4)).read_bytes()
    stream = env.chunks(pb.ScreenChunk, pb.ScreenHeader(filename="anon.wav"), data)
    assert status(screening.Screen, stream, timeout=10) == UNAUTHENTICATED
    assert env.server.spool.files() == []
    channel.close()


def test_roles_gate_every_service(env):
    fp = env.fingerprint(env.write("s202.wav", env.song(202, 8)))
    platform, label_a = env.client("platform"), env.client("label_a")
    # A platform key screens but cannot register, list, get or delete.
    assert status(platform.register_fingerprint, fp, "song-202") == PERMISSION_DENIED
    assert status(platform.register_file, env.media / "s202.wav", "song-202") == PERMISSION_DENIED
    assert status(platform.list) == PERMISSION_DENIED
    assert status(platform.get, "song-202") == PERMISSION_DENIED
    assert status(platform.delete, "song-202") == PERMISSION_DENIED
    # A rights holder registers but cannot screen with a register-only key.
    label_a.register_fingerprint(fp, "song-202")
    query = env.fingerprint(env.media / "s202.wav", query=True)
    assert status(label_a.screen_fingerprint, query) == PERMISSION_DENIED
    matches = env.client("label_a_screen").screen_fingerprint(query)["matches"]
    assert [m["reference_id"] for m in matches] == ["song-202"]


def test_rights_holders_see_and_delete_only_their_own_works(env):
    label_a, label_b, admin = env.client("label_a"), env.client("label_b"), env.client("admin")
    fp = env.fingerprint(env.write("s203.wav", env.song(203, 8)))
    reference = label_a.register_fingerprint(fp, "song-203", metadata={"isrc": "SECRET-203"})
    assert reference["owner"] == "label-a" and reference["metadata"] == {"isrc": "SECRET-203"}

    assert label_a.get("song-203")["owner"] == "label-a"
    assert status(label_b.get, "song-203") == PERMISSION_DENIED
    assert status(label_b.delete, "song-203") == PERMISSION_DENIED
    assert status(label_b.set_policy, "song-203", label="block") == PERMISSION_DENIED
    assert "song-203" not in [r["reference_id"] for r in label_b.list()]
    assert status(label_b.list, owner="label-a") == PERMISSION_DENIED
    assert {r["owner"] for r in label_a.list()} == {"label-a"}
    # Only admins register on behalf of another tenant.
    other = env.fingerprint(env.write("s204.wav", env.song(204, 8)))
    assert status(label_b.register_fingerprint, other, "song-204", owner="label-a") == PERMISSION_DENIED
    assert admin.register_fingerprint(other, "song-204", owner="label-b")["owner"] == "label-b"
    assert "song-204" in [r["reference_id"] for r in label_b.list()]
    assert "song-203" in [r["reference_id"] for r in admin.list()]
    assert label_b.delete("song-204")["reference_id"] == "song-204"


def test_screening_does_not_leak_another_tenants_metadata(env):
    ref = env.song(205)
    env.client("label_b").register_fingerprint(
        env.fingerprint(env.write("s205.wav", ref)), "song-205", title="Track 205",
        metadata={"contract": "SECRET-CONTRACT-205"}, policy_label="track")
    _, screening, _ = env.stubs()
    query = env.fingerprint(env.write("q205.wav", ref[2 * 22050 : 12 * 22050]), query=True)
    from nanhu.server import convert

    response = screening.ScreenFingerprint(
        pb.ScreenFingerprintRequest(fingerprint=convert.fingerprint_to_proto(query)),
        timeout=30, metadata=env.metadata("platform"))
    (match,) = response.matches
    assert (match.reference_id, match.title, match.policy, match.action) == (
        "song-205", "Track 205", "track", "track")
    wire = response.SerializeToString()
    assert b"SECRET-CONTRACT-205" not in wire and b"label-b" not in wire


def test_without_auth_file_only_loopback_is_served(tmp_path):
    with pytest.raises(InvalidArgument, match="without an auth file"):
        create_server(tmp_path / "catalog", "0.0.0.0:0")
    assert not (tmp_path / "catalog").exists()


def test_keys_command_adds_lists_and_revokes(tmp_path, capsys):
    path = tmp_path / "keys.json"
    assert nanhu_cli.main(["keys", "add", "--file", str(path), "--tenant", "acme",
                           "--role", "screen", "--role", "register"]) == 0
    key = capsys.readouterr().out.strip()
    principal = KeyFile(path).verify(key)
    assert principal.tenant == "acme" and principal.roles == {"screen", "register"}
    assert key not in path.read_text(), "only the hash is stored"
    assert nanhu_cli.main(["keys", "list", "--file", str(path), "--json"]) == 0
    (entry,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert entry["tenant"] == "acme" and entry["revoked_at"] is None and "sha256" not in entry
    assert nanhu_cli.main(["keys", "revoke", "--file", str(path), entry["key_id"]]) == 0
    assert KeyFile(path).verify(key) is None
    assert nanhu_cli.main(["keys", "revoke", "--file", str(path), entry["key_id"]]) == 4


def test_keys_added_and_revoked_take_effect_without_restart(env):
    keys_file = KeyFile(env.server.shared.auth.path)
    key_id, key = keys_file.add("late-comer", ["screen"])
    keys_file.save()
    _, _, catalog = env.stubs()
    assert catalog.Stats(pb.StatsRequest(), timeout=10, metadata=(("x-api-key", key),)).references >= 0
    keys_file.revoke(key_id)
    keys_file.save()
    assert status(catalog.Stats, pb.StatsRequest(), timeout=10,
                  metadata=(("x-api-key", key),)) == UNAUTHENTICATED
