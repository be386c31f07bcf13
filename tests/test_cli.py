"""The ``nanhu`` command's contract, end to end on generated audio.

Flags, exit codes, ``query --json`` lines and catalog resolution are what scripts depend on.
Every refused input must leave one line on stderr naming the file and the reason, a non-zero
exit code, and the catalog exactly as it was.
"""

from __future__ import annotations

import argparse
import calendar
import importlib.util
import json
import logging
import os
import re
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from benchmarks.synth import music_like
from engine.catalog import Catalog

MATCH_KEYS = {"reference_id", "title", "modality", "score", "query_start_s", "query_end_s",
              "reference_start_s", "reference_end_s", "speed", "expected_false_matches",
              "evidence",
              # what a moderator acts on (issue 13); "policy" and "trimmed" only when there are
              "action", "band", "reason", "matched_s", "upload_share", "reference_share",
              "policy_source"}
CORPUS = Path.home() / ".cache" / "nanhu" / "audio-corpus.json"


def listed(run_cli, catalog: Path) -> dict[str, dict]:
    result = run_cli("list", "--json", "--catalog", catalog)
    assert result.code == 0, result.err
    return {ref["reference_id"]: ref for ref in result.json_lines}


def stats(run_cli, catalog: Path) -> dict:
    result = run_cli("stats", "--json", "--catalog", catalog)
    assert result.code == 0, result.err
    (line,) = result.json_lines
    return line


@pytest.fixture
def excerpt_file(songs, kit, tmp_path) -> Path:
    """8 s of song-1 from 20.3 s, as a WAV file."""
    return kit.write_clip(tmp_path / "excerpt.wav", kit.excerpt(songs["song-1"], 20.3, 28.3))


@pytest.fixture
def unrelated_file(kit, tmp_path) -> Path:
    return kit.write_clip(tmp_path / "unrelated.wav", music_like(10.0, seed=4242,
                                                                  sample_rate=kit.rate))


# --- register, list, stats, delete ------------------------------------------------------------
def test_register_one_file_then_list_and_stats(run_cli, song_files, catalog_dir, reference_fps):
    result = run_cli("register", "--catalog", catalog_dir, song_files["song-1"])
    assert result.code == 0, result.err
    hashes = len(reference_fps["song-1"].audio)
    assert result.out.strip() == f"registered song-1: 40.0 s, {hashes} audio hashes"
    refs = listed(run_cli, catalog_dir)
    assert list(refs) == ["song-1"]
    assert refs["song-1"]["title"] == "song-1"  # the file's stem
    assert refs["song-1"]["modalities"] == "audio"
    assert refs["song-1"]["duration_s"] == pytest.approx(40.0, abs=0.05)
    assert refs["song-1"]["metadata"] == {"source": "song-1.flac"}
    info = stats(run_cli, catalog_dir)
    assert (info["references"], info["generation"], info["audio_hashes"]) == (1, 1, hashes)
    assert info["catalog"] == str(catalog_dir) and info["files_present"]


def test_register_with_id_and_title(run_cli, song_files, catalog_dir):
    result = run_cli("register", "--catalog", catalog_dir, "--id", "isrc-0001",
                     "--title", "A Song, Its Title", "--owner", "label-1", song_files["song-2"])
    assert result.code == 0, result.err
    refs = listed(run_cli, catalog_dir)
    assert refs["isrc-0001"]["title"] == "A Song, Its Title"
    assert refs["isrc-0001"]["owner"] == "label-1"
    header, row = run_cli("list", "--catalog", catalog_dir).out.splitlines()
    assert header.split() == ["ID", "DURATION", "MODALITIES", "OWNER", "POLICY", "CREATED", "TITLE"]
    assert row.split()[:6] == ["isrc-0001", "40.0", "s", "audio", "label-1", "-"]
    assert row.endswith("  A Song, Its Title")


def test_register_several_files(run_cli, song_files, catalog_dir):
    files = [song_files[ref_id] for ref_id in ("song-0", "song-2", "song-3")]
    result = run_cli("register", "--catalog", catalog_dir, *files)
    assert result.code == 0, result.err
    assert [line.split(":")[0] for line in result.out.splitlines()] == [
        "registered song-0", "registered song-2", "registered song-3"]
    assert sorted(listed(run_cli, catalog_dir)) == ["song-0", "song-2", "song-3"]
    assert stats(run_cli, catalog_dir)["generation"] == 1  # one commit for the batch


def test_id_with_several_files_is_a_usage_error(run_cli, song_files, catalog_dir):
    result = run_cli("register", "--catalog", catalog_dir, "--id", "x", song_files["song-0"],
                     song_files["song-1"])
    assert result.code == 2
    assert len(result.err_lines) == 1 and "--id" in result.err
    assert not catalog_dir.exists()


def test_delete_then_compact(run_cli, song_files, catalog_dir, excerpt_file):
    assert run_cli("register", "--catalog", catalog_dir, song_files["song-1"],
                   song_files["song-2"]).code == 0
    result = run_cli("delete", "--catalog", catalog_dir, "song-1")
    assert (result.code, result.out.strip()) == (0, "deleted song-1")
    assert list(listed(run_cli, catalog_dir)) == ["song-2"]
    query = run_cli("query", "--json", "--catalog", catalog_dir, excerpt_file)
    assert query.json_lines[0]["matches"] == []
    assert stats(run_cli, catalog_dir)["tombstones"] == 1
    compact = run_cli("compact", "--catalog", catalog_dir)
    assert compact.code == 0
    assert compact.out.startswith("compacted to generation 3: purged 1 deleted reference(s);")
    assert stats(run_cli, catalog_dir)["tombstones"] == 0
    assert run_cli("delete", "--catalog", catalog_dir, "song-2").code == 0
    compact = run_cli("compact", "--json", "--catalog", catalog_dir)
    assert compact.code == 0 and json.loads(compact.out)["purged_references"] == 1


def test_deleting_an_unknown_id_is_not_found(run_cli, song_files, catalog_dir):
    assert run_cli("register", "--catalog", catalog_dir, song_files["song-1"]).code == 0
    result = run_cli("delete", "--catalog", catalog_dir, "no-such-id", "song-1")
    assert result.code == 4
    assert result.err_lines == [f"nanhu: no reference with id 'no-such-id' in {catalog_dir}"]
    assert result.out.strip() == "deleted song-1"  # the other id is still deleted
    assert listed(run_cli, catalog_dir) == {}


# --- query ------------------------------------------------------------------------------------
def test_query_json_contract(run_cli, registered_catalog, excerpt_file):
    result = run_cli("query", "--json", "--catalog", registered_catalog, excerpt_file)
    assert result.code == 0, result.err
    (line,) = result.json_lines
    assert set(line) == {"query", "duration_s", "matches"}
    assert line["query"] == str(excerpt_file)
    assert line["duration_s"] == pytest.approx(8.0, abs=0.01)
    (match,) = line["matches"]
    assert set(match) == MATCH_KEYS
    assert (match["reference_id"], match["title"], match["modality"]) == (
        "song-1", "Title of song-1", "audio")
    assert 0.9 <= match["score"] <= 1.0 and match["expected_false_matches"] <= 1e-10
    assert match["query_start_s"] < 0.5 and match["query_end_s"] == pytest.approx(8.0, abs=1.0)
    assert match["reference_start_s"] - match["query_start_s"] == pytest.approx(20.3, abs=0.1)
    assert match["speed"] == pytest.approx(1.0, abs=0.03)
    assert match["evidence"]["aligned_hashes"] >= 10
    assert (match["action"], match["band"], match["policy_source"]) == ("none", "high", "")
    assert match["matched_s"] == pytest.approx(match["query_end_s"] - match["query_start_s"], abs=2e-3)
    assert match["upload_share"] == pytest.approx(match["matched_s"] / line["duration_s"], abs=1e-3)
    assert match["reason"] == (f"audio {match['matched_s']:.1f} s aligned ("
                               f"{match['evidence']['aligned_hashes']} hashes); no action: no "
                               "policy for the work or its owner")


def test_query_without_match_prints_an_empty_list(run_cli, registered_catalog, unrelated_file):
    result = run_cli("query", "--json", "--catalog", registered_catalog, unrelated_file)
    assert result.code == 0
    assert result.json_lines == [{"query": str(unrelated_file), "duration_s": 10.0,
                                  "matches": []}]


def test_query_answers_every_file_and_reports_the_bad_one(run_cli, registered_catalog,
                                                          excerpt_file, unrelated_file, tmp_path):
    broken = tmp_path / "broken.mp3"
    broken.write_bytes(np.random.default_rng(3).bytes(30_000))
    result = run_cli("query", "--json", "--catalog", registered_catalog, excerpt_file, broken,
                     unrelated_file)
    assert result.code == 3
    first, error, last = result.json_lines
    assert [m["reference_id"] for m in first["matches"]] == ["song-1"]
    assert set(error) == {"query", "error"} and error["query"] == str(broken)
    assert "not a media file" in error["error"]
    assert last["query"] == str(unrelated_file) and last["matches"] == []
    assert len(result.err_lines) == 1 and str(broken) in result.err


def test_query_text_output(run_cli, registered_catalog, excerpt_file):
    result = run_cli("query", "--catalog", registered_catalog, excerpt_file)
    assert result.code == 0
    header, what, where, why = result.out.splitlines()
    assert header.startswith(f"{excerpt_file}: 1 match(es)")
    # action, title, id and owner (none here), modality, band
    assert what.split()[:7] == ["NONE", "Title", "of", "song-1", "(song-1)", "[audio]", "band"]
    assert what.split()[7] == "high,"
    assert where.split()[:4] == ["upload", where.split()[1], "s", "="]
    assert "of the upload" in where and "of the work" in where
    assert why.strip().startswith("audio ") and why.strip().endswith("no policy for the work or its owner")


def test_query_on_a_missing_catalog_is_not_found(run_cli, tmp_path, excerpt_file):
    result = run_cli("query", "--json", "--catalog", tmp_path / "none", excerpt_file)
    assert result.code == 4
    assert result.err_lines == [f"nanhu: {tmp_path / 'none'}: no catalog here "
                                "(register something to create one)"]


# --- which catalog -----------------------------------------------------------------------------
def test_catalog_from_flag_then_environment_then_default(run_cli, song_files, tmp_path,
                                                         monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("NANHU_CATALOG", raising=False)
    assert run_cli("register", song_files["song-0"]).code == 0
    assert (tmp_path / "var" / "catalog" / "manifest.json").exists()

    monkeypatch.setenv("NANHU_CATALOG", str(tmp_path / "from-env"))
    assert run_cli("register", song_files["song-1"]).code == 0
    assert list(listed(run_cli, tmp_path / "from-env")) == ["song-1"]
    assert run_cli("list", "--json").json_lines[0]["reference_id"] == "song-1"

    assert run_cli("register", "--catalog", tmp_path / "from-flag", song_files["song-2"]).code == 0
    assert list(listed(run_cli, tmp_path / "from-flag")) == ["song-2"]
    assert list(listed(run_cli, tmp_path / "var" / "catalog")) == ["song-0"]  # untouched
    assert list(listed(run_cli, tmp_path / "from-env")) == ["song-1"]


# --- every bad input ---------------------------------------------------------------------------
@pytest.fixture
def populated(catalog_dir, reference_fps) -> Path:
    """A catalog holding song-1 (registered through the engine, quickly)."""
    with Catalog(catalog_dir, writable=True, create=True) as catalog:
        catalog.add("song-1", reference_fps["song-1"], title="song-1")
        catalog.commit()
    return catalog_dir


def png(path: Path) -> Path:
    Image.fromarray(np.full((32, 32, 3), 90, np.uint8)).save(path, "PNG")
    return path


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def truncated(source: Path, path: Path) -> Path:
    data = source.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


# name -> (make(folder, kit) -> path, exit code, reason the message gives)
BAD_INPUTS = {
    "empty file": (lambda d, kit: _write(d / "empty.mp3", b""), 3, "file is empty"),
    "random bytes": (lambda d, kit: _write(d / "noise.mp3", np.random.default_rng(5)
                                           .bytes(60_000)), 3, "not a media file"),
    "truncated mp4": (lambda d, kit: truncated(
        kit.write_video(d / "whole.mp4", 6.0, audio=music_like(6.0, seed=7, sample_rate=kit.rate)),
        d / "half.mp4"), 3, "not a media file"),
    "text file": (lambda d, kit: _write(d / "notes.txt", b"lyrics, not audio\n" * 40), 3,
                  "not an audio or video file"),
    "png image": (lambda d, kit: png(d / "cover.png"), 3, "not an audio or video file"),
    "unsupported codec": (lambda d, kit: kit.unsupported_codec_wav(d / "odd.wav"), 3,
                          "audio codec is not supported"),
    "silence": (lambda d, kit: kit.write_clip(d / "silence.wav", np.zeros(5 * kit.rate)), 3,
                "nothing to fingerprint"),
    "missing file": (lambda d, kit: d / "not-there.wav", 4, "no such file"),  # README: 4
    "directory": (lambda d, kit: d, 3, "is a directory"),
    # Registered, these could never be matched (issue 15): refused with the reason.
    "one-frame video": (lambda d, kit: kit.write_video(d / "one.mp4", 0.25, audio=None), 2,
                        "matched"),
    "1.5 s clip": (lambda d, kit: kit.write_clip(d / "short.wav", music_like(
        1.5, seed=8, sample_rate=kit.rate)), 2, "shorter than the shortest reference"),
}



def assert_refused(result, path: Path, code: int, reason: str) -> None:
    assert result.code == code, (result.out, result.err)
    assert len(result.err_lines) == 1, result.err
    line = result.err_lines[0]
    assert line.startswith(f"nanhu: {path}") and reason in line, line
    assert result.out == ""


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_refused_and_the_catalog_is_unchanged(case, run_cli, populated, kit,
                                                           tmp_path):
    make, code, reason = BAD_INPUTS[case]
    folder = tmp_path / "inputs"
    folder.mkdir()
    path = make(folder, kit)
    before = kit.catalog_state(populated)
    assert_refused(run_cli("register", "--catalog", populated, path), path, code, reason)
    assert kit.catalog_state(populated) == before


def test_existing_id_is_refused(run_cli, populated, song_files, kit):
    before = kit.catalog_state(populated)
    result = run_cli("register", "--catalog", populated, "--id", "song-1", song_files["song-2"])
    assert_refused(result, song_files["song-2"], 5, "reference id 'song-1' already exists")
    assert kit.catalog_state(populated) == before


def test_same_bytes_under_another_name_names_the_existing_reference(run_cli, populated,
                                                                    song_files, kit, tmp_path):
    copy = tmp_path / "copy-of-song-1.flac"
    shutil.copy(song_files["song-1"], copy)
    before = kit.catalog_state(populated)
    result = run_cli("register", "--catalog", populated, copy)
    assert_refused(result, copy, 5, "same content is already registered as 'song-1'")
    assert kit.catalog_state(populated) == before


def test_video_without_audio_track(run_cli, populated, kit, tmp_path):
    path = kit.write_video(tmp_path / "mute.mp4", 8.0, audio=None)
    before = kit.catalog_state(populated)
    result = run_cli("register", "--catalog", populated, path)
    if importlib.util.find_spec("engine.video") is None:
        # No video fingerprints yet: a clear refusal, not a crash.
        assert_refused(result, path, 3, "no audio track")
        assert kit.catalog_state(populated) == before
    else:
        assert result.code == 0, result.err
        assert listed(run_cli, populated)["mute"]["modalities"] == "video"


def test_catalog_locked_by_another_writer(run_cli, populated, song_files, kit):
    before = kit.catalog_state(populated)
    with Catalog(populated, writable=True):
        result = run_cli("register", "--catalog", populated, song_files["song-2"])
        assert result.code == 6
        assert result.err_lines == [f"nanhu: {populated}: another process is writing to this "
                                    "catalog (writer.lock is held)"]
        assert listed(run_cli, populated).keys() == {"song-1"}  # readers are not blocked
    assert kit.catalog_state(populated) == before


def test_several_files_with_a_bad_one_register_the_good_ones(run_cli, populated, song_files,
                                                             tmp_path):
    bad = _write(tmp_path / "bad.ogg", b"OggS" + bytes(2000))
    result = run_cli("register", "--catalog", populated, song_files["song-0"], bad,
                     song_files["song-3"])
    assert result.code == 3
    assert [line.split(":")[0] for line in result.out.splitlines()] == [
        "registered song-0", "registered song-3"]
    refused = [line for line in result.err_lines if str(bad) in line]
    assert len(refused) == 1 and "nanhu: " in refused[0]
    assert sorted(listed(run_cli, populated)) == ["song-0", "song-1", "song-3"]


def test_truncated_mp3_registers_the_audio_it_holds_and_warns(run_cli, catalog_dir, song_files,
                                                              tmp_path, caplog):
    # Decided behaviour (see engine.media._warn_if_short): the first half of an MP3 is a valid
    # MP3, so it registers with the duration it really has, and the user is warned.
    path = truncated(song_files["song-0"], tmp_path / "half.mp3")
    with caplog.at_level(logging.WARNING):
        result = run_cli("register", "--catalog", catalog_dir, path)
    assert result.code == 0, result.err
    assert any(str(path) in r.getMessage() and "truncated" in r.getMessage()
               for r in caplog.records)
    assert listed(run_cli, catalog_dir)["half"]["duration_s"] == pytest.approx(20.0, abs=1.0)


def test_no_command_prints_help(run_cli):
    result = run_cli()
    assert result.code == 2 and "register" in result.out and "query" in result.out


# --- the installed entry point ----------------------------------------------------------------
def test_installed_console_script(installed_nanhu, registered_catalog, excerpt_file, tmp_path):
    missing = tmp_path / "missing.wav"
    result = installed_nanhu("query", "--json", "--catalog", registered_catalog, excerpt_file,
                             missing)
    assert result.code == 4, result.err
    found, error = (json.loads(line) for line in result.out.splitlines())
    assert [m["reference_id"] for m in found["matches"]] == ["song-1"]
    assert error == {"query": str(missing), "error": f"{missing}: no such file"}
    assert result.err.strip() == f"nanhu: {missing}: no such file"


# --- real recordings ---------------------------------------------------------------------------
def corpus() -> dict:
    if not CORPUS.exists():
        pytest.skip(f"no real-audio corpus at {CORPUS} (build it: python -m benchmarks.corpus.audio)")
    manifest = json.loads(CORPUS.read_text())
    usable = [t for t in manifest["references"] if t["loop_period_s"] is None
              and not t["repeat_lags_s"] and 60 <= t["duration_s"] <= 240
              and Path(t["path"]).exists()]
    if not usable or not manifest["negatives"]:
        pytest.skip(f"{CORPUS} lists no usable non-looping 1-4 minute references")
    return {"reference": min(usable, key=lambda t: (t["duration_s"], t["id"])),
            "negative": next(t for t in manifest["negatives"] if Path(t["path"]).exists()),
            "speech": [t for t in manifest["speech"] if Path(t["path"]).exists()][:3]}


@pytest.mark.real_media
def test_real_recording_excerpt_matches_and_real_negatives_do_not(run_cli, catalog_dir, tmp_path,
                                                                  kit):
    from engine.media import load_audio

    picked = corpus()
    reference = picked["reference"]
    result = run_cli("register", "--catalog", catalog_dir, "--id", reference["id"],
                     reference["path"])
    assert result.code == 0, result.err
    samples = load_audio(reference["path"], sample_rate=kit.rate)
    start_s = round(reference["duration_s"] / 3, 1)
    excerpt = kit.write_clip(tmp_path / "excerpt.mp3", kit.excerpt(samples, start_s, start_s + 8))
    negative = load_audio(picked["negative"]["path"], sample_rate=kit.rate)
    negative_clip = kit.write_clip(tmp_path / "negative.mp3", kit.excerpt(negative, 20, 40))
    speech = [t["path"] for t in picked["speech"]]
    result = run_cli("query", "--json", "--catalog", catalog_dir, excerpt, negative_clip, *speech)
    assert result.code == 0, result.err
    found, *others = result.json_lines
    assert [m["reference_id"] for m in found["matches"]] == [reference["id"]]
    match = found["matches"][0]
    assert match["reference_start_s"] - match["query_start_s"] == pytest.approx(start_s, abs=0.1)
    assert all(line["matches"] == [] for line in others), others


def test_a_garbage_metadata_file_is_a_corrupt_catalog_not_a_traceback(run_cli, populated,
                                                                     song_files):
    (populated / "meta.sqlite").write_bytes(np.random.default_rng(3).bytes(8192))
    for argv in (("list",), ("stats",), ("query", song_files["song-1"]),
                 ("register", song_files["song-2"])):
        result = run_cli(*argv[:1], "--catalog", populated, *argv[1:])
        assert result.code == 7, (argv, result.err)
        assert "meta.sqlite: unreadable metadata" in result.err and "Traceback" not in result.err


@pytest.mark.parametrize("ref_id", ["", " ", "a/b"])
def test_an_empty_or_invalid_id_is_an_error_not_ignored(run_cli, populated, song_files, kit,
                                                        ref_id):
    before = kit.catalog_state(populated)
    result = run_cli("register", "--catalog", populated, "--id", ref_id, song_files["song-2"])
    assert result.code == 2 and "--id" in result.err and "is not a reference id" in result.err
    assert kit.catalog_state(populated) == before


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


def test_stats_in_human_units_and_raw_with_json(run_cli, populated):
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
    from engine.cli import human_bytes, human_hours, iso_time

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
    import nanhu_cli

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
    import nanhu_cli

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
