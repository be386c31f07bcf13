"""Reference hygiene over gRPC: a registration reports its conflicts, the held material stays
out of screening, each owner sees the conflicts of its works, the earlier work's owner accepts
one, admins assign owners; and the CLI's ``conflicts`` and ``owner set`` through the server."""

from __future__ import annotations

import json

import grpc
import pytest

from nanhu import cli as nanhu_cli
from nanhu.engine.catalog import Catalog

RATE = 22050


def rpc_error(call, *args, **kwargs) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as excinfo:
        call(*args, **kwargs)
    return excinfo.value


@pytest.fixture(scope="module")
def original(env):
    samples = env.song(701, 30)
    env.client("label_a").register_fingerprint(env.fingerprint(env.write("s701.wav", samples)),
                                               "song-701", title="Song 701")
    return samples


def test_an_excerpt_of_another_owners_work_is_reported_and_held(env, original, capsys):
    excerpt = env.fingerprint(env.write("x701.wav", original[10 * RATE : 22 * RATE]))
    registered = env.client("label_b").register_fingerprint(excerpt, "excerpt-701", title="Excerpt")
    (conflict,) = registered["conflicts"]
    assert (conflict["kind"], conflict["status"], conflict["reference_id"], conflict["owner"],
            conflict["other_reference_id"], conflict["other_owner"]) == (
        "conflict", "held", "excerpt-701", "label-b", "song-701", "label-a")
    (stretch,) = conflict["ranges"]
    assert stretch["other_start_s"] == pytest.approx(10, abs=0.6)
    assert stretch["end_s"] - stretch["start_s"] == pytest.approx(12, abs=1.2)
    assert env.client("label_b").get("excerpt-701")["conflicts"] == [conflict]
    # Screening a copy of that material answers for the original only.
    upload = env.fingerprint(env.write("q701.wav", original[12 * RATE : 20 * RATE]), query=True)
    found = {m["reference_id"] for m in env.client("platform").screen_fingerprint(upload)["matches"]}
    assert found == {"song-701"}
    # Both owners see it; a tenant with no work in it does not; a platform key may not ask.
    for who in ("label_a", "label_b", "admin"):
        listed = env.client(who).list_conflicts()
        assert conflict["conflict_id"] in [c["conflict_id"] for c in listed]
    assert conflict["conflict_id"] not in [c["conflict_id"] for c in env.client("label_c").list_conflicts()]
    assert rpc_error(env.client("platform").list_conflicts).code() == grpc.StatusCode.PERMISSION_DENIED
    # Only the earlier work's owner (or an admin) can accept it.
    error = rpc_error(env.client("label_b").resolve_conflict, conflict["conflict_id"])
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED and "song-701" in error.details()
    assert rpc_error(env.client("label_c").resolve_conflict,
                     conflict["conflict_id"]).code() == grpc.StatusCode.NOT_FOUND
    capsys.readouterr()
    assert nanhu_cli.main(["conflicts", "--json", "--server", env.address, "--key",
                           env.keys["label_a"]]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert conflict["conflict_id"] in [c["conflict_id"] for c in lines]
    assert nanhu_cli.main(["conflicts", "resolve", str(conflict["conflict_id"]), "--note", "licensed",
                           "--server", env.address, "--key", env.keys["label_a"]]) == 0
    assert "resolved" in capsys.readouterr().out
    resolved = env.client("label_b").list_conflicts(include_resolved=True)
    (mine,) = [c for c in resolved if c["conflict_id"] == conflict["conflict_id"]]
    assert (mine["status"], mine["resolved_by"], mine["note"]) == ("resolved", "label-a", "licensed")
    found = {m["reference_id"] for m in env.client("platform").screen_fingerprint(upload)["matches"]}
    assert found == {"song-701", "excerpt-701"}


def test_an_unrelated_work_reports_nothing_and_same_owner_overlaps_are_allowed(env, original):
    other = env.fingerprint(env.write("s702.wav", env.song(702, 20)))
    assert "conflicts" not in env.client("label_a").register_fingerprint(other, "song-702")
    edit = env.fingerprint(env.write("x701b.wav", original[2 * RATE : 14 * RATE]))
    registered = env.client("label_a").register_fingerprint(edit, "edit-701")
    assert [(c["kind"], c["status"], c["other_reference_id"]) for c in registered["conflicts"]] == [
        ("same-owner", "allowed", "song-701")]


def test_owners_are_assigned_by_admins(env, original, capsys):
    orphan = env.fingerprint(env.write("s703.wav", env.song(703, 20)))
    with Catalog(env.catalog, writable=True) as catalog:  # as `nanhu register` without --owner
        catalog.add("song-703", orphan)
        catalog.commit()
    assert env.client("admin").stats()["unowned_references"] >= 1
    error = rpc_error(env.client("label_a").set_owner, "song-703", "label-a")
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    capsys.readouterr()
    code = nanhu_cli.main(["owner", "set", "song-703", "label-c", "--server", env.address,
                           "--key", env.keys["admin"]])
    assert (code, capsys.readouterr().out.strip()) == (0, "song-703: owner label-c")
    assert env.client("label_c").get("song-703")["owner"] == "label-c"
