"""``nanhu policy set|show|clear`` on a local catalog, as the contract in issue 13 writes them, and
what ``query`` and ``list`` then show."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nanhu import cli as nanhu_cli
from nanhu.engine.catalog import Catalog
from nanhu.engine.policy import Policy


@pytest.fixture
def cli(capsys):
    """cli(*argv) -> (exit code, stdout, stderr); argparse's own errors give their exit code."""

    def run(*argv) -> tuple[int, str, str]:
        capsys.readouterr()
        try:
            code = nanhu_cli.main([str(a) for a in argv])
        except SystemExit as exc:
            code = int(exc.code or 0)
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture
def owned(catalog_dir, reference_fps) -> Path:
    with Catalog(catalog_dir, writable=True, create=True) as catalog:
        catalog.add("song-1", reference_fps["song-1"], title="One", owner="label-a")
        catalog.add("song-2", reference_fps["song-2"], title="Two", owner="label-a")
        catalog.add("song-3", reference_fps["song-3"], title="Three")
        catalog.commit()
    return catalog_dir


def test_policy_set_with_every_flag_then_show(cli, owned):
    code, out, err = cli("policy", "set", "--catalog", owned, "song-1", "--action", "monetize",
                         "--modality", "both", "--min-match-s", "12.5", "--min-upload-share", "0.25",
                         "--min-reference-share", "0.1", "--exclude", "30-40", "0-12",
                         "--exclude", "50-55", "--disabled")
    assert code == 0, err
    expected = Policy("monetize", "both", 12.5, 0.25, 0.1, ((0, 12), (30, 40), (50, 55)), False)
    assert out.strip() == f"song-1: policy: {expected.describe()}"
    code, out, _ = cli("policy", "show", "--catalog", owned, "--json", "song-1")
    shown = json.loads(out)
    assert code == 0 and shown == {
        "reference_id": "song-1", "title": "One", "owner": "label-a", "policy": expected.to_dict(),
        "owner_policy": {}, "applies": expected.to_dict(), "source": "reference"}
    code, out, _ = cli("policy", "show", "--catalog", owned, "song-1")
    lines = dict(line.split(None, 1) if not line.startswith(("own ", "owner d"))
                 else (line[:16].strip(), line[16:]) for line in out.splitlines())
    assert lines["reference"] == "song-1 (One)" and lines["owner"] == "label-a"
    assert lines["own policy"] == expected.describe() and lines["owner default"] == "-"
    assert lines["applies"] == f"its own policy: {expected.describe()}"


@pytest.mark.parametrize(("argv", "complaint"), [
    (["song-1", "--action", "blok"], "action 'blok' is not one of block, monetize, track, review"),
    (["song-1", "--action", "b" * 5000], "is not one of block, monetize, track, review"),
    (["song-1", "--action", "block", "--modality", "smell"], "invalid choice: 'smell'"),
    (["song-1", "--action", "block", "--min-upload-share", "1.5"], "1.5 is out of range (0 to 1)"),
    (["song-1", "--action", "block", "--min-match-s", "-3"], "-3 is out of range"),
    (["song-1", "--action", "block", "--exclude", "12"], "'12' is not START-END"),
    (["song-1", "--action", "block", "--exclude", "20-10"], "20-10 s is not a time range"),
    (["song-1"], "the following arguments are required: --action"),
    (["--action", "block"], "give a reference ID or --owner TENANT"),
    (["song-1", "--owner", "label-a", "--action", "block"], "give a reference ID or --owner TENANT"),
    (["song-1", "--action", "block", "--key", "k"], "--key is used with --server only"),
])
def test_bad_policy_arguments_exit_2_naming_what_is_allowed(cli, owned, kit, argv, complaint):
    before = kit.catalog_state(owned)
    code, _, err = cli("policy", "set", "--catalog", owned, *argv)
    assert code == 2 and complaint in err, err
    assert len(err) < 1000  # a 5,000-character label is not echoed back
    assert kit.catalog_state(owned) == before


def test_an_unknown_work_is_not_found(cli, owned):
    assert cli("policy", "set", "--catalog", owned, "nope", "--action", "block")[0] == 4
    assert cli("policy", "show", "--catalog", owned, "nope")[0] == 4
    assert cli("policy", "clear", "--catalog", owned, "nope")[0] == 4


def test_owner_defaults_from_the_command_line(cli, owned):
    assert cli("policy", "set", "--catalog", owned, "--owner", "label-a", "--action", "track",
               "--min-match-s", "5")[:2] == (0, "owner label-a: default policy: track when >= 5 s "
                                                 "matched\n")
    code, out, _ = cli("policy", "show", "--catalog", owned, "--owner", "label-a", "--json")
    assert json.loads(out) == {"owner": "label-a", "policy": Policy("track", min_match_s=5).to_dict()}
    shown = json.loads(cli("policy", "show", "--catalog", owned, "--json", "song-2")[1])
    assert (shown["source"], shown["applies"]["action"], shown["policy"]) == ("owner", "track", {})
    # A work's own policy wins; clearing it gives the default back.
    cli("policy", "set", "--catalog", owned, "song-2", "--action", "block")
    assert json.loads(cli("policy", "show", "--catalog", owned, "--json", "song-2")[1])["source"] == \
        "reference"
    code, out, _ = cli("policy", "clear", "--catalog", owned, "song-2")
    assert (code, out) == (0, "song-2: own policy cleared; owner label-a's default applies: track "
                              "when >= 5 s matched\n")
    assert cli("policy", "clear", "--catalog", owned, "--owner", "label-a")[:2] == (
        0, "owner label-a: default policy cleared\n")
    assert json.loads(cli("policy", "show", "--catalog", owned, "--json", "song-2")[1])["source"] == ""
    assert cli("policy", "clear", "--catalog", owned, "song-3")[1] == \
        "song-3: own policy cleared; no policy applies\n"


def test_list_and_query_show_the_policy_that_applies(cli, owned, songs, kit, tmp_path):
    cli("policy", "set", "--catalog", owned, "--owner", "label-a", "--action", "track")
    cli("policy", "set", "--catalog", owned, "song-2", "--action", "block", "--exclude", "24-26")
    cli("policy", "set", "--catalog", owned, "song-3", "--action", "review", "--disabled")
    rows = {line.split()[0]: line.split() for line in cli("list", "--catalog", owned)[1].splitlines()}
    assert [rows[r][5] for r in ("song-1", "song-2", "song-3")] == ["track(owner)", "block", "review(off)"]

    upload = kit.write_clip(tmp_path / "copy.wav", kit.excerpt(songs["song-2"], 20, 30))
    code, out, _ = cli("query", "--catalog", owned, "--json", upload)
    pieces = sorted(json.loads(out)["matches"], key=lambda m: m["query_start_s"])
    assert code == 0 and [m["action"] for m in pieces] == ["block", "block"]
    assert all(m["trimmed"][0]["reference_start_s"] == 24.0 for m in pieces)
    assert "owner" not in pieces[0]  # the JSON never carries the owner
    code, out, _ = cli("query", "--catalog", owned, upload)
    lines = out.splitlines()
    assert lines[0].startswith(f"{upload}: 2 match(es)")
    assert lines[1].split()[:4] == ["BLOCK", "Two", "(song-2,", "owner"]
    assert "label-a)" in lines[1] and "band high" in lines[1]
    assert "= work 2" in lines[2] and "s matched" in lines[2]
    assert "trimmed 24-26 s of the work (excluded ranges); block by the work's own policy" in lines[3]
