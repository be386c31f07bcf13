"""The review commands on a local catalog: conflicts reported by ``register`` and listed by
``conflicts``, ``owner set``, unowned works called out by ``list`` and ``stats``, and claims
recorded by ``query --record-claims`` then listed, shown and resolved."""

from __future__ import annotations

import json

import pytest


@pytest.fixture
def excerpt_file(songs, kit):
    return kit.write_clip("cli-excerpt-0.flac", kit.excerpt(songs["song-0"], 10, 22))


@pytest.fixture
def catalog(run_cli, song_files, catalog_dir):
    assert run_cli("register", "--catalog", catalog_dir, "--owner", "label-a",
                   song_files["song-0"], song_files["song-1"]).code == 0
    return catalog_dir


def test_register_reports_a_conflict_and_conflicts_lists_it(run_cli, catalog, excerpt_file):
    result = run_cli("register", "--catalog", catalog, "--owner", "label-b", "--id", "excerpt",
                     excerpt_file)
    assert result.code == 0, result.err
    registered, conflict = result.out.splitlines()
    assert registered.startswith("registered excerpt: 12.0 s")
    assert conflict.startswith("excerpt: CONFLICT with song-0 (owner label-a): 0.")
    (listed,) = run_cli("conflicts", "--catalog", catalog, "--json").json_lines
    assert (listed["reference_id"], listed["owner"], listed["other_reference_id"],
            listed["status"]) == ("excerpt", "label-b", "song-0", "held")
    text = run_cli("conflicts", "--catalog", catalog).out.splitlines()
    assert text[0].split()[:2] == ["ID", "STATUS"] and "excerpt (label-b)" in text[1]
    assert "1 (material held out of screening" in run_cli("stats", "--catalog", catalog).out
    resolved = run_cli("conflicts", "resolve", "--catalog", catalog, str(listed["conflict_id"]),
                       "--note", "licensed")
    assert resolved.code == 0 and "resolved" in resolved.out
    assert run_cli("conflicts", "--catalog", catalog, "--json").out == ""
    (after,) = run_cli("conflicts", "--catalog", catalog, "--all", "--json").json_lines
    assert (after["status"], after["note"]) == ("resolved", "licensed")
    assert run_cli("conflicts", "resolve", "--catalog", catalog, "99").code == 4


def test_a_same_owner_excerpt_is_allowed_with_a_note(run_cli, catalog, excerpt_file):
    result = run_cli("register", "--catalog", catalog, "--owner", "label-a", "--id", "excerpt",
                     excerpt_file)
    assert "excerpt: note: overlaps song-0 of the same owner" in result.out
    assert run_cli("conflicts", "--catalog", catalog, "--json").out == ""
    (allowed,) = run_cli("conflicts", "--catalog", catalog, "--all", "--json").json_lines
    assert (allowed["kind"], allowed["status"]) == ("same-owner", "allowed")


def test_unowned_works_are_called_out_and_owner_set_assigns_them(run_cli, catalog, song_files):
    assert run_cli("register", "--catalog", catalog, song_files["song-2"]).code == 0
    listing = run_cli("list", "--catalog", catalog)
    assert "1 work(s) without an owner (song-2)" in listing.err and "nanhu owner set" in listing.err
    assert "without owner        1 (no tenant sees them" in run_cli("stats", "--catalog", catalog).out
    result = run_cli("owner", "set", "--catalog", catalog, "song-2", "label-b")
    assert (result.code, result.out.strip()) == (0, "song-2: owner label-b")
    assert run_cli("list", "--catalog", catalog).err == ""
    assert run_cli("owner", "set", "--catalog", catalog, "nope", "label-b").code == 4
    assert run_cli("owner", "set", "--catalog", catalog, "song-2", "bad owner").code == 2


def test_query_records_claims_that_claims_lists_shows_and_resolves(run_cli, catalog, songs, kit):
    assert run_cli("policy", "set", "--catalog", catalog, "song-0", "--action", "block").code == 0
    upload = kit.write_clip("cli-upload-0.wav", kit.excerpt(songs["song-0"], 5, 15))
    plain = run_cli("query", "--catalog", catalog, "--json", upload).json_lines[0]
    assert "claim_id" not in plain["matches"][0]
    assert run_cli("claims", "list", "--catalog", catalog, "--json").out == ""
    recorded = run_cli("query", "--catalog", catalog, "--json", "--record-claims", "--upload-id",
                       "up-1", upload).json_lines[0]
    claim_id = recorded["matches"][0]["claim_id"]
    (claim,) = run_cli("claims", "list", "--catalog", catalog, "--json").json_lines
    assert (claim["claim_id"], claim["status"], claim["upload_id"], claim["action"]) == (
        claim_id, "open", "up-1", "block")
    assert claim["matches"] == recorded["matches"]
    text = run_cli("claims", "list", "--catalog", catalog).out.splitlines()
    assert text[0].split()[:3] == ["CLAIM", "STATUS", "ACTION"] and claim_id in text[1]
    result = run_cli("claims", "resolve", "--catalog", catalog, claim_id, "--status", "confirmed",
                     "--note", "checked")
    assert (result.code, result.out.strip()) == (0, f"{claim_id}: open -> confirmed")
    refused = run_cli("claims", "resolve", "--catalog", catalog, claim_id, "--status", "reinstated")
    assert refused.code == 11 and "is confirmed; it can become disputed or released" in refused.err
    with pytest.raises(SystemExit) as usage:  # argparse's error: exit 2 naming the statuses
        run_cli("claims", "resolve", "--catalog", catalog, claim_id, "--status", "closed")
    assert usage.value.code == 2
    shown = run_cli("claims", "show", "--catalog", catalog, claim_id)
    assert "open -> confirmed" in shown.out and "checked" in shown.out
    assert json.loads(run_cli("claims", "show", "--catalog", catalog, "--json", claim_id).out)[
        "status"] == "confirmed"
    assert run_cli("claims", "list", "--catalog", catalog, "--status", "open").out == ""
    assert run_cli("claims", "show", "--catalog", catalog, "clm_nope").code == 4
    assert run_cli("query", "--catalog", catalog, "--upload-id", "x", upload).code == 2
