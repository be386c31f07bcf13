"""Screening and registration over gRPC: same answers as the CLI, policies, live registration."""

from __future__ import annotations

import json

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from nanhu import cli as nanhu_cli
from nanhu.benchmarks.synth import music_like
from nanhu.engine.audio.params import AudioParams
from nanhu.proto.gen.nanhu.v1 import nanhu_pb2 as pb

RATE = 22050


def test_stream_fingerprint_and_cli_give_the_same_matches(env, capsys):
    ref = env.song(101)
    admin = env.client("admin")
    admin.register_file(env.write("song101.wav", ref), "song-101", title="Song 101")
    query = env.write("q101.mp3", ref[8 * RATE : 20 * RATE])

    by_stream = env.client("platform").screen_file(query)
    by_fingerprint = env.client("platform").screen_fingerprint(env.fingerprint(query, query=True))
    assert nanhu_cli.main(["query", "--json", "--catalog", str(env.catalog), str(query)]) == 0
    by_cli = json.loads(capsys.readouterr().out.strip().splitlines()[-1])

    assert by_stream["matches"], "the copied song is found"
    best = by_stream["matches"][0]
    assert best["reference_id"] == "song-101" and best["title"] == "Song 101"
    assert best["reference_start_s"] == pytest.approx(8.0, abs=0.3)
    assert by_stream["matches"] == by_cli["matches"] == by_fingerprint["matches"]
    assert by_stream["duration_s"] == by_cli["duration_s"] == by_fingerprint["duration_s"]
    assert by_stream["digest"] == by_fingerprint["digest"]


def test_fingerprint_round_trip_is_exact(env):
    from nanhu.server import convert

    fp = env.fingerprint(env.write("rt.wav", env.song(102, 6)), query=True)
    back = convert.fingerprint_from_proto(
        pb.Fingerprint.FromString(convert.fingerprint_to_proto(fp).SerializeToString()))
    for name in ("hashes", "frames", "speed_index", "speeds", "pitches"):
        np.testing.assert_array_equal(getattr(back.audio, name), getattr(fp.audio, name))
    assert (back.duration_s, back.digest, back.audio_params_tag) == (
        fp.duration_s, fp.digest, fp.audio_params_tag)


def test_registration_is_visible_to_screening_without_restart(env):
    ref = env.song(103)
    query = env.write("q103.wav", ref[3 * RATE : 13 * RATE])
    platform = env.client("platform")
    assert not [m for m in platform.screen_file(query)["matches"] if m["reference_id"] == "song-103"]
    env.client("label_a").register_fingerprint(env.fingerprint(env.write("s103.wav", ref)), "song-103")
    assert [m["reference_id"] for m in platform.screen_file(query)["matches"]] == ["song-103"]
    # A work registered by another process (the CLI) is picked up as well.
    other = env.song(104)
    assert nanhu_cli.main(["register", "--catalog", str(env.catalog), "--id", "song-104",
                           str(env.write("s104.wav", other))]) == 0
    query = env.write("q104.wav", other[:10 * RATE])
    assert [m["reference_id"] for m in platform.screen_file(query)["matches"]] == ["song-104"]
    # ... and a withdrawn work stops matching at once.
    env.client("admin").delete("song-104")
    assert platform.screen_file(query)["matches"] == []


def test_match_policy_filters_and_labels(env):
    ref = env.song(105)
    owner = env.client("label_a")
    owner.register_file(env.write("s105.wav", ref), "song-105", policy_label="block")
    # 10 s of the work (5-15 s) inside a 20 s upload: matched ~0.5 of the upload, ~1/3 of the work.
    upload = np.concatenate([ref[5 * RATE : 15 * RATE], music_like(10, seed=9105, sample_rate=RATE)])
    fp = env.fingerprint(env.write("q105.wav", upload), query=True)
    platform = env.client("platform")

    def ids(**options) -> list[str]:
        return [m["reference_id"] for m in platform.screen_fingerprint(fp, **options)["matches"]]

    (match,) = platform.screen_fingerprint(fp)["matches"]
    assert match["policy"] == "block" and match["reference_id"] == "song-105"
    assert ids(min_matched_duration_s=5) == ["song-105"]
    assert ids(min_matched_duration_s=12) == []
    assert ids(min_upload_share=0.3) == ["song-105"]
    assert ids(min_upload_share=0.7) == []
    assert ids(min_reference_share=0.2) == ["song-105"]
    assert ids(min_reference_share=0.5) == []
    with pytest.raises(grpc.RpcError) as excinfo:
        platform.screen_fingerprint(fp, min_upload_share=1.5)
    assert excinfo.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_excluded_ranges_are_stored_and_editable(env):
    ref = env.song(106)
    owner = env.client("label_a")
    owner.register_fingerprint(env.fingerprint(env.write("s106.wav", ref)), "song-106")
    fp = env.fingerprint(env.write("q106.wav", ref[5 * RATE : 15 * RATE]), query=True)
    platform = env.client("platform")
    assert [m["reference_id"] for m in platform.screen_fingerprint(fp)["matches"]] == ["song-106"]

    updated = owner.set_policy("song-106", label="track", excluded_ranges=[(0.0, 20.0)])
    assert updated["policy"] == {"action": "track", "modality": "any", "min_match_s": 0.0,
                                 "min_upload_share": 0.0, "min_reference_share": 0.0,
                                 "excluded_ranges": [[0.0, 20.0]], "enabled": True}
    assert owner.get("song-106")["policy"]["excluded_ranges"] == [[0.0, 20.0]]
    assert platform.screen_fingerprint(fp)["matches"] == []  # a licensed stretch never matches

    owner.set_policy("song-106", "track", excluded_ranges=[(25.0, 30.0)])
    (match,) = platform.screen_fingerprint(fp)["matches"]
    assert match["policy"] == match["action"] == "track"
    with pytest.raises(grpc.RpcError) as excinfo:
        owner.set_policy("song-106", "track", excluded_ranges=[(10.0, 5.0)])
    assert excinfo.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "excluded range 10-5 s is not a time range" in excinfo.value.details()


def test_list_pages_and_stats(env):
    admin = env.client("admin")
    for seed in (107, 108, 109):
        admin.register_fingerprint(env.fingerprint(env.write(f"s{seed}.wav", env.song(seed, 8))),
                                   f"page-{seed}", owner="label-page", metadata={"isrc": f"X{seed}"})
    listed = admin.list(owner="label-page", page_size=2)
    assert [r["reference_id"] for r in listed] == ["page-107", "page-108", "page-109"]
    assert listed[0]["metadata"] == {"isrc": "X107"} and listed[0]["owner"] == "label-page"
    stats = env.client("platform").stats()
    assert stats["references"] >= 3 and stats["audio_params"] == AudioParams().tag()


def test_health_and_reflection(env):
    channel, _, _ = env.stubs()
    health = health_pb2_grpc.HealthStub(channel)
    for service in ("", "nanhu.v1.Screening", "nanhu.v1.Catalog"):
        reply = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    database = ProtoReflectionDescriptorDatabase(channel)
    services = set(database.get_services())
    assert {"nanhu.v1.Screening", "nanhu.v1.Catalog", "grpc.health.v1.Health"} <= services
    file = database.FindFileContainingSymbol("nanhu.v1.Screening")
    assert file.name == "nanhu/v1/nanhu.proto"
    (screening,) = [s for s in file.service if s.name == "Screening"]
    (screen,) = [m for m in screening.method if m.name == "Screen"]
    assert screen.client_streaming and screen.output_type == ".nanhu.v1.ScreenResponse"
    channel.close()
