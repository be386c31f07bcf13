"""The ``nanhu`` command's contract, end to end on generated audio.

Flags, exit codes, ``query --json`` lines and catalog resolution are what scripts depend on.
Every refused input must leave one line on stderr naming the file and the reason, a non-zero
exit code, and the catalog exactly as it was.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from nanhu.benchmarks.synth import music_like

MATCH_KEYS = {"reference_id", "title", "modality", "score", "query_start_s", "query_end_s",
              "reference_start_s", "reference_end_s", "speed", "expected_false_matches",
              "evidence",
              # what a moderator acts on (issue 13); "policy" and "trimmed" only when there are
              "action", "band", "reason", "matched_s", "upload_share", "reference_share",
              "policy_source"}
CORPUS = Path.home() / ".cache" / "nanhu" / "audio-corpus.json"



@pytest.fixture
def excerpt_file(songs, kit, tmp_path) -> Path:
    """8 s of song-1 from 20.3 s, as a WAV file."""
    return kit.write_clip(tmp_path / "excerpt.wav", kit.excerpt(songs["song-1"], 20.3, 28.3))


@pytest.fixture
def unrelated_file(kit, tmp_path) -> Path:
    return kit.write_clip(tmp_path / "unrelated.wav", music_like(10.0, seed=4242,
                                                                  sample_rate=kit.rate))



# --- register, list, stats, delete ------------------------------------------------------------
def test_register_one_file_then_list_and_stats(run_cli, song_files, catalog_dir, reference_fps,
                                                listed, stats):
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


def test_register_with_id_and_title(run_cli, song_files, catalog_dir, listed):
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


def test_register_several_files(run_cli, song_files, catalog_dir, listed, stats):
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


def test_delete_then_compact(run_cli, song_files, catalog_dir, excerpt_file, listed, stats):
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


def test_deleting_an_unknown_id_is_not_found(run_cli, song_files, catalog_dir, listed):
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
                                                         monkeypatch, listed):
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
        pytest.skip(f"no real-audio corpus at {CORPUS} (build it: python -m nanhu.benchmarks.corpus.audio)")
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
    from nanhu.engine.media import load_audio

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


