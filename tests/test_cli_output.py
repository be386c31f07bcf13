"""The ``nanhu`` command's output for people, for scripts and for pipes; its help and
global options; and ``ingest`` of folders with nothing to take."""

from __future__ import annotations

import argparse
import calendar
import os
import re
import time
from pathlib import Path

import pytest

from nanhu.engine.catalog import Catalog


# --- output for people, for scripts and for pipes -----------------------------------------------
def test_list_has_a_header_and_owner_policy_and_iso_time_columns(run_cli, populated, song_files):
    assert run_cli("register", "--catalog", populated, "--owner", "label-1",
                   song_files["song-2"]).code == 0
    with Catalog(populated, writable=True) as catalog:
        catalog.set_policy("song-2", {"label": "block"})  # older callers' field name
        catalog.set_owner_policy("label-1", {"action": "track"})
        catalog.commit()
        created = catalog.get("song-2").created_at
    lines = run_cli("list", "--catalog", populated).out.splitlines()
    assert lines[0].split() == ["ID", "DURATION", "MODALITIES", "OWNER", "POLICY", "CREATED", "TITLE"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert rows["song-1"][3:6] == ["audio", "-", "-"]  # no owner, no policy
    assert rows["song-2"][3:6] == ["audio", "label-1", "block"]
    iso = rows["song-2"][6]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", iso)
    assert abs(calendar.timegm(time.strptime(iso, "%Y-%m-%dT%H:%M:%SZ")) - created) < 1.0
    # Columns line up: each header word starts where its cells start.
    starts = [lines[0].index(word) for word in ("DURATION", "OWNER", "CREATED", "TITLE")]
    for line in lines[1:]:
        assert all(line[start - 2 : start] == "  " and line[start] != " " for start in starts)
    assert run_cli("list", "--catalog", populated, "--owner", "nobody").out == ""


def test_stats_in_human_units_and_raw_with_json(run_cli, populated, stats):
    raw = stats(run_cli, populated)
    text = run_cli("stats", "--catalog", populated)
    assert text.code == 0
    fields = dict(re.split(r"\s{2,}", line.strip(), maxsplit=1) for line in text.out.splitlines())
    assert fields["references"] == "1 (1 with audio, 0 with video)"
    assert fields["media"] == f"{raw['hours'] * 3600:.0f} s"  # 40 s, not 0.0111 h
    assert re.fullmatch(r"[\d.]+ (KiB|MiB) audio, 0 B video \([\d.]+ (KiB|MiB) per hour of media\)",
                        fields["index"]), fields["index"]
    assert fields["audio hashes"] == f"{raw['audio_hashes']:,}"
    assert isinstance(raw["audio_index_bytes"], int) and raw["audio_index_bytes"] > 1024


def test_human_units():
    from nanhu.engine.cli_text import human_bytes, human_hours, iso_time

    assert [human_bytes(n) for n in (0, 1023, 1024, 1_468_006, 3 * 2**30)] == [
        "0 B", "1023 B", "1 KiB", "1.4 MiB", "3 GiB"]
    assert [human_hours(h) for h in (1018.5, 1.0, 0.5, 40 / 3600)] == [
        "1,018.5 h", "1.0 h", "30.0 min", "40 s"]
    assert iso_time(0) == "-" and iso_time(1_764_583_200.7) == "2025-12-01T10:00:00Z"


def _every_subparser(parser: argparse.ArgumentParser, path=()):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*path, name), sub
                yield from _every_subparser(sub, (*path, name))


def test_every_help_shows_the_defaults():
    from nanhu import cli as nanhu_cli

    parser = nanhu_cli.build_parser()
    checked = 0
    for path, sub in _every_subparser(parser):
        text = " ".join(sub.format_help().split())
        for action in sub._actions:
            if not action.option_strings or action.default in (None, False, [], argparse.SUPPRESS):
                continue
            assert "default" in (action.help or "") or f"(default: {action.default})" in text, \
                (path, action.option_strings)
            checked += 1
    assert checked >= 10
    serve = " ".join(dict(_every_subparser(parser))[("serve",)].format_help().split())
    assert "largest upload (MiB) (default: 512.0)" in serve
    assert "(default: 127.0.0.1:50051)" in serve


@pytest.mark.parametrize("argv", [["-v", "list"], ["list", "-v"], ["list", "--verbose"],
                                  ["keys", "list", "-v"]])
def test_global_options_before_or_after_the_subcommand(argv):
    from nanhu import cli as nanhu_cli

    assert nanhu_cli.build_parser().parse_args(argv).verbose is True
    assert nanhu_cli.build_parser().parse_args([a for a in argv if not a.startswith("-")]).verbose \
        is False


def test_list_into_a_closed_pipe_ends_quietly(installed_nanhu, registered_catalog):
    """``nanhu list | head -1``: the reader goes away; no BrokenPipeError traceback."""
    import subprocess
    import sys

    script = Path(sys.executable).parent / "nanhu"
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is already gone: the first write fails with EPIPE
    try:
        done = subprocess.run([str(script), "list", "--catalog", str(registered_catalog)],
                              stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=120,
                              check=False)
    finally:
        os.close(write_end)
    assert done.returncode == 141, done.stderr
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr
    assert done.stderr == ""


@pytest.mark.parametrize("case", ["empty folder", "folder of other files", "mistyped folder"])
def test_ingest_of_a_folder_with_nothing_to_take_warns_and_fails(case, run_cli, tmp_path):
    folder = tmp_path / "music"
    if case != "mistyped folder":
        folder.mkdir()
    if case == "folder of other files":
        (folder / "notes.txt").write_text("not media")
        (folder / "cover.png").write_bytes(b"\x89PNG")
    result = run_cli("ingest", "--catalog", tmp_path / "catalog", "--report", tmp_path / "r.jsonl",
                     folder)
    assert result.code == 2 and result.out == ""
    (line,) = result.err_lines
    assert line.startswith(f"nanhu: {folder}: ")
    if case == "mistyped folder":
        assert "no such folder or manifest" in line
    else:
        assert "no media files found" in line and ".mp3" in line and ".wav" in line and ".mkv" in line
        assert "--include" in line
    assert not (tmp_path / "catalog").exists() and not (tmp_path / "r.jsonl").exists()
