"""Local features over gRPC (issue 11): a work registered and a query screened as edge
fingerprints carry their ORB features, so a crop that only geometric verification finds is
found over gRPC exactly as in process; malformed features are INVALID_ARGUMENT naming the
field, and the server goes on serving everyone else."""

from __future__ import annotations

import dataclasses

import grpc
import numpy as np
import pytest

from nanhu.benchmarks.synth import still_shots
from nanhu.benchmarks.video_probe import crop, encode
from nanhu.engine.catalog import Catalog
from nanhu.engine.fingerprint import fingerprint_media
from nanhu.engine.matcher import Matcher
from nanhu.proto.gen.nanhu.v1 import nanhu_pb2 as pb
from nanhu.server import convert

FPS = 5.0
SEEDS = (71, 72, 73)


@pytest.fixture(scope="module")
def edge(env, tmp_path_factory):
    """Three still-shot films registered by label-a as edge fingerprints, and a video-only
    query: a 30 % off-centre crop of the last 10 s of the first."""
    media = tmp_path_factory.mktemp("edge-local")
    for seed in SEEDS:
        fp = fingerprint_media(encode(media / f"{seed}.mp4", still_shots(30.0, seed=seed),
                                      fps=FPS))
        assert fp.video.local is not None and len(fp.video.local)
        env.client("label_a").register_fingerprint(fp, f"edge-film-{seed}")
    frames = crop(still_shots(10.0, seed=SEEDS[0], start_s=20.0), 0.10, 0.20, 0.05, 0.25)
    query = fingerprint_media(encode(media / "query.mp4", frames, fps=FPS), query=True)
    return dataclasses.replace(query, video=query.video.primary())  # what the wire carries


def public(matches: list[dict]) -> list[dict]:
    return [{k: v for k, v in m.items() if k != "claim_id"} for m in matches]


def test_an_edge_query_with_local_features_matches_over_grpc_as_in_process(env, edge):
    by_grpc = env.client("platform").screen_fingerprint(edge)["matches"]
    with Catalog(env.catalog) as catalog:
        # the works registered over gRPC kept their ORB keyframes
        ordinals = [catalog.get(f"edge-film-{s}").ordinal for s in SEEDS]
        assert all(catalog.local_index().has_features(np.array(ordinals)))
        matcher = Matcher(catalog)
        in_process = [m.to_dict() for m in matcher.match(edge)]
        no_local = matcher.match(dataclasses.replace(edge, video=dataclasses.replace(
            edge.video, local=None)))
    assert by_grpc and by_grpc[0]["reference_id"] == f"edge-film-{SEEDS[0]}"
    assert "best_inliers" in by_grpc[0]["evidence"]  # found by verification ...
    assert f"edge-film-{SEEDS[0]}" not in [m.reference_id for m in no_local]  # ... alone
    assert public(by_grpc) == public(in_process)


def test_an_old_clients_fingerprint_without_local_features_still_screens(env, edge):
    message = convert.fingerprint_to_proto(edge)
    message.video.ClearField("local")
    old = pb.Fingerprint.FromString(message.SerializeToString())
    assert not old.video.HasField("local")
    assert convert.fingerprint_from_proto(old).video.local is None
    env.client("platform").screen_fingerprint(old)  # answered, by the embeddings alone


def _rows(local: pb.LocalFeatures, times: list[float], counts: list[int], xy: bytes,
          descriptors: bytes, flipped: list[bool]) -> None:
    del local.times_s[:], local.counts[:], local.flipped[:]
    local.times_s.extend(times)
    local.counts.extend(counts)
    local.flipped.extend(flipped)
    local.xy, local.descriptors = xy, descriptors


def _counts_off(local):
    local.counts[0] += 1


def _descriptor_width(local):
    local.descriptors = local.descriptors[:-16]


def _odd_xy(local):
    local.xy = local.xy + b"\x00"


def _nan_time(local):
    local.times_s[2] = float("nan")


def _too_many_frames(local):
    k = local.counts[0] + local.counts[1]
    row = (local.xy[:2 * k], local.descriptors[:32 * k])
    frames = 70  # 140 rows; a query holds at most 128
    _rows(local, [float(local.times_s[0])] * (2 * frames),
          [local.counts[0], local.counts[1]] * frames, row[0] * frames, row[1] * frames,
          [False, True] * frames)


def _too_many_keypoints(local):
    n = 5000
    _rows(local, [float(local.times_s[0])] * 2, [n, n], bytes(4 * n), bytes(64 * n),
          [False, True])


def _broken_mirror_rows(local):
    local.flipped[0] = True


def _tiny_frame(local):
    local.width, local.height = 2, 2  # every keypoint within RANSAC's 4 px of every other


POISONS = {"counts do not sum to the keypoints": (_counts_off, "video.local.xy"),
           "descriptors not 32 bytes": (_descriptor_width, "video.local.descriptors"),
           "odd xy bytes": (_odd_xy, "video.local.xy"),
           "NaN time": (_nan_time, "video.local.times_s"),
           "too many frames": (_too_many_frames, "video.local.times_s"),
           "too many keypoints a frame": (_too_many_keypoints, "video.local.counts"),
           "mirrored rows out of step": (_broken_mirror_rows, "video.local.flipped"),
           "a 2 x 2 frame": (_tiny_frame, "video.local.size")}


def rpc_error(call, *args) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as excinfo:
        call(*args)
    return excinfo.value


@pytest.mark.parametrize("name", sorted(POISONS))
def test_malformed_local_features_are_invalid_and_the_server_serves_others(env, edge, name):
    change, field = POISONS[name]
    message = convert.fingerprint_to_proto(edge)
    change(message.video.local)
    error = rpc_error(env.client("platform").screen_fingerprint, message)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
    assert f"fingerprint: {field}" in error.details()
    # a registration with the same features is refused too, and stores nothing
    message.video.local.ClearField("flipped")
    error = rpc_error(env.client("label_b").register_fingerprint, message, f"poison-{name}")
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
    assert "fingerprint: video.local." in error.details()
    # everyone else's screening still finds its copy, verified
    matches = env.client("platform").screen_fingerprint(edge)["matches"]
    assert [m["reference_id"] for m in matches][:1] == [f"edge-film-{SEEDS[0]}"]


def test_local_features_of_another_version_are_refused_as_a_precondition(env, edge):
    message = convert.fingerprint_to_proto(edge)
    message.video.local.params_tag = "orb-v9"
    error = rpc_error(env.client("platform").screen_fingerprint, message)
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "video.local.params_tag 'orb-v9'" in error.details()
    message.video.local.params_tag = "surf"
    error = rpc_error(env.client("platform").screen_fingerprint, message)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_a_reference_past_its_local_budget_is_refused(env, tmp_path):
    """A registrant cannot flood the chance model with ORB keyframes: a reference holds at
    most its byte budget an hour (plus the bucket's 4 keyframes)."""
    fp = fingerprint_media(encode(tmp_path / "r.mp4", still_shots(12.0, seed=79), fps=FPS))
    message = convert.fingerprint_to_proto(fp)
    local = message.video.local
    k = local.counts[0]
    xy, descriptors = local.xy[:2 * k], local.descriptors[:32 * k]
    frames = 12
    _rows(local, [float(t) for t in np.linspace(0, 11, frames)], [k] * frames, xy * frames,
          descriptors * frames, [])
    error = rpc_error(env.client("label_b").register_fingerprint, message, "budget-flood")
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "fingerprint: video.local.times_s: 12 frames; at most 4" in error.details()
