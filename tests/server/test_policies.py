"""Policies over gRPC: set, read and clear them (own and owner defaults), tenancy, validation,
and matches that carry the action, band, reason, shares and trims, as the CLI prints them."""

from __future__ import annotations

import json

import grpc
import pytest

from nanhu import cli as nanhu_cli
from nanhu.engine.policy import Policy

RATE = 22050
PERMISSION_DENIED = grpc.StatusCode.PERMISSION_DENIED
INVALID_ARGUMENT = grpc.StatusCode.INVALID_ARGUMENT


def rpc_error(call, *args, **kwargs) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as excinfo:
        call(*args, **kwargs)
    return excinfo.value


def test_a_policy_round_trips_over_grpc(env):
    owner = env.client("label_a")
    fp = env.fingerprint(env.write("s401.wav", env.song(401, 8)))
    reference = owner.register_fingerprint(fp, "song-401", policy={
        "action": "block", "min_match_s": 5, "excluded_ranges": [(0, 3)]})
    assert reference["policy"] == Policy("block", min_match_s=5, excluded_ranges=((0, 3),)).to_dict()
    full = owner.set_policy("song-401", "monetize", modality="both", min_match_s=12.5,
                            min_upload_share=0.25, min_reference_share=0.1,
                            excluded_ranges=[(30, 40), (0, 12)], enabled=False)
    expected = Policy("monetize", "both", 12.5, 0.25, 0.1, ((0, 12), (30, 40)), False)
    assert full["policy"] == expected.to_dict()
    assert owner.get("song-401")["policy"] == expected.to_dict()
    assert owner.clear_policy("song-401")["policy"] == {}


@pytest.mark.parametrize(("fields", "complaint"), [
    ({"action": "blok"}, "action 'blok' is not one of block, monetize, track, review"),
    ({"label": "x" * 5000}, "is not one of block, monetize, track, review"),
    ({"action": "block", "modality": "smell"}, "modality 'smell' is not one of audio, video"),
    ({"action": "block", "min_upload_share": 2.0}, "min_upload_share 2.0 is out of range"),
    ({"min_match_s": 5.0}, "a policy needs an action"),
])
def test_bad_policies_are_invalid_argument_with_the_reason(env, fields, complaint):
    error = rpc_error(env.client("admin").set_policy, "song-401", **fields)
    assert error.code() == INVALID_ARGUMENT
    assert complaint in error.details() and len(error.details()) < 300
    error = rpc_error(env.client("admin").set_owner_policy, "label-a", **fields)
    assert error.code() == INVALID_ARGUMENT


def test_owner_defaults_are_the_tenants_own(env):
    label_a, label_b, admin = env.client("label_a"), env.client("label_b"), env.client("admin")
    try:
        assert label_a.get_owner_policy() == {"owner": "label-a", "policy": {}}
        set_ = label_a.set_owner_policy("", "review", min_match_s=8)
        assert set_ == {"owner": "label-a", "policy": Policy("review", min_match_s=8).to_dict()}
        assert admin.get_owner_policy("label-a") == set_
        assert rpc_error(label_b.get_owner_policy, "label-a").code() == PERMISSION_DENIED
        assert rpc_error(label_b.set_owner_policy, "label-a", "block").code() == PERMISSION_DENIED
        assert rpc_error(env.client("platform").get_owner_policy).code() == PERMISSION_DENIED
        assert admin.set_owner_policy("label-a", "track")["policy"]["action"] == "track"
    finally:
        assert label_a.clear_owner_policy() == {"owner": "label-a", "policy": {}}


def test_screening_returns_the_action_band_reason_and_trims_as_the_cli_does(env, capsys):
    admin, platform = env.client("admin"), env.client("platform")
    own, other = env.song(403), env.song(404)
    admin.register_fingerprint(env.fingerprint(env.write("s403.wav", own)), "song-403",
                               title="Song 403", owner="label-c",
                               policy={"action": "block", "excluded_ranges": [(12, 14)]})
    admin.register_fingerprint(env.fingerprint(env.write("s404.wav", other)), "song-404",
                               title="Song 404", owner="label-c")
    admin.set_owner_policy("label-c", "review", min_match_s=6)
    try:
        upload = env.write("q403.wav", own[5 * RATE : 20 * RATE])
        result = platform.screen_file(upload)
        first, second = sorted(result["matches"], key=lambda m: m["query_start_s"])
        for piece in (first, second):
            assert (piece["reference_id"], piece["action"], piece["policy_source"]) == (
                "song-403", "block", "reference")
            assert piece["band"] == "high"
            assert piece["trimmed"][0]["reference_start_s"] == 12.0
            assert piece["trimmed"][0]["reference_end_s"] == 14.0
            assert "trimmed 12-14 s of the work (excluded ranges)" in piece["reason"]
            assert piece["reason"].endswith("block by the work's own policy")
        assert first["reference_end_s"] == pytest.approx(12.0, abs=0.01)
        assert second["reference_start_s"] == pytest.approx(14.0, abs=0.01)
        assert first["matched_s"] + second["matched_s"] == pytest.approx(13.0, abs=1.0)
        assert first["upload_share"] == pytest.approx(first["matched_s"] / 15.0, abs=0.01)
        assert first["reference_share"] == pytest.approx(
            (first["reference_end_s"] - first["reference_start_s"]) / 30.0, abs=0.01)
        assert nanhu_cli.main(["query", "--json", "--catalog", str(env.catalog), str(upload)]) == 0
        by_cli = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        # the same matches; the server's acting ones name the claim it recorded
        assert by_cli["matches"] == [{k: v for k, v in m.items() if k != "claim_id"}
                                     for m in result["matches"]]
        assert all(m["claim_id"].startswith("clm_") for m in result["matches"]
                   if m["action"] != "none")

        # The owner's default decides for the work without its own: 10 s is enough, 4 s is not.
        (long_copy,) = platform.screen_file(env.write("q404.wav", other[:10 * RATE]))["matches"]
        assert (long_copy["action"], long_copy["policy_source"]) == ("review", "owner")
        (short,) = platform.screen_file(env.write("q404s.wav", other[:5 * RATE]))["matches"]
        assert short["action"] == "none" and "policy" not in short
        assert "owner label-c's default policy (review) needs 6 s matched" in short["reason"]
        # The platform's floor wins: what it drops is not reported at all.
        assert platform.screen_file(env.write("q404m.wav", other[:10 * RATE]),
                                    min_matched_duration_s=12)["matches"] == []
    finally:
        admin.clear_owner_policy("label-c")


def test_the_cli_sets_policies_and_queries_through_the_server(env, capsys):
    def cli(*argv) -> tuple[int, str, str]:
        capsys.readouterr()
        code = nanhu_cli.main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return code, out, err

    song = env.song(405)
    env.client("label_b").register_fingerprint(env.fingerprint(env.write("s405.wav", song)),
                                               "song-405", title="Song 405")
    server = ("--server", env.address, "--key", env.keys["label_b"])
    code, out, err = cli("policy", "set", *server, "song-405", "--action", "review",
                         "--min-match-s", "4", "--exclude", "0-2")
    assert code == 0, err
    shown = json.loads(cli("policy", "show", *server, "--json", "song-405")[1])
    assert shown["policy"] == Policy("review", min_match_s=4, excluded_ranges=((0, 2),)).to_dict()
    assert (shown["owner"], shown["source"]) == ("label-b", "reference")
    # another tenant's work, a bad key, --catalog with --server: the usual exit codes
    other = ("--server", env.address, "--key", env.keys["label_a"])
    assert cli("policy", "set", *other, "song-405", "--action", "block")[0] == 9  # permission
    assert cli("policy", "show", "--server", env.address, "--key", "nanhu_bad_key", "song-405")[0] == 9
    assert cli("policy", "show", *server, "--catalog", env.catalog, "song-405")[0] == 2

    upload = env.write("q405.wav", song[RATE : 11 * RATE])
    platform = ("--server", env.address, "--key", env.keys["platform"])
    code, out, err = cli("query", *platform, "--upload-id", "up-405", "--json", upload)
    assert code == 0, err
    remote = json.loads(out)
    local = json.loads(cli("query", "--catalog", env.catalog, "--json", upload)[1])
    claim_id = remote["matches"][0].pop("claim_id")  # recorded by the server's screening
    assert remote == local
    assert env.client("label_b").get_claim(claim_id)["upload_id"] == "up-405"
    (match,) = remote["matches"]
    assert (match["action"], match["policy_source"], match["band"]) == ("review", "reference", "high")
    assert match["trimmed"][0]["reference_end_s"] == 2.0
    code, out, _ = cli("query", *platform, upload)
    assert code == 0 and out.splitlines()[1].split()[:4] == ["REVIEW", "Song", "405", "(song-405)"]
