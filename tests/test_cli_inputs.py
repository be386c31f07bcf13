"""The ``nanhu`` command refusing bad input: every refused file leaves one line on stderr
naming the file and the reason, a non-zero exit code, and the catalog exactly as it was.
"""

from __future__ import annotations

import importlib.util
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nanhu.benchmarks.synth import music_like
from nanhu.engine.catalog import Catalog


# --- every bad input ---------------------------------------------------------------------------
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


def test_video_without_audio_track(run_cli, populated, kit, tmp_path, listed):
    path = kit.write_video(tmp_path / "mute.mp4", 8.0, audio=None)
    before = kit.catalog_state(populated)
    result = run_cli("register", "--catalog", populated, path)
    if importlib.util.find_spec("nanhu.engine.video") is None:
        # No video fingerprints yet: a clear refusal, not a crash.
        assert_refused(result, path, 3, "no audio track")
        assert kit.catalog_state(populated) == before
    else:
        assert result.code == 0, result.err
        assert listed(run_cli, populated)["mute"]["modalities"] == "video"


def test_catalog_locked_by_another_writer(run_cli, populated, song_files, kit, listed):
    before = kit.catalog_state(populated)
    with Catalog(populated, writable=True):
        result = run_cli("register", "--catalog", populated, song_files["song-2"])
        assert result.code == 6
        assert result.err_lines == [f"nanhu: {populated}: another process is writing to this "
                                    "catalog (writer.lock is held)"]
        assert listed(run_cli, populated).keys() == {"song-1"}  # readers are not blocked
    assert kit.catalog_state(populated) == before


def test_several_files_with_a_bad_one_register_the_good_ones(run_cli, populated, song_files,
                                                             tmp_path, listed):
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
                                                              tmp_path, caplog, listed):
    # Decided behaviour (see engine.media._warn_if_short): the first half of an MP3 is a valid
    # MP3, so it registers with the duration it really has, and the user is warned.
    path = truncated(song_files["song-0"], tmp_path / "half.mp3")
    with caplog.at_level(logging.WARNING):
        result = run_cli("register", "--catalog", catalog_dir, path)
    assert result.code == 0, result.err
    assert any(str(path) in r.getMessage() and "truncated" in r.getMessage()
               for r in caplog.records)
    assert listed(run_cli, catalog_dir)["half"]["duration_s"] == pytest.approx(20.0, abs=1.0)


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


