"""The fingerprint speed benchmark: per-codec groups whose figures add up (no timing asserts)."""

from __future__ import annotations

import pytest

from nanhu.benchmarks.fingerprint_speed import main, run_fingerprint_speed
from nanhu.engine.errors import MediaError


def test_groups_files_by_codec_and_sums_them(song_files):
    files = list(song_files.values())
    result = run_fingerprint_speed(files, repeats=1)
    assert [row["path"] for row in result["files"]] == [str(f) for f in files]
    assert sum(group["files"] for group in result["codecs"].values()) == len(files)
    assert "mp3" in result["codecs"]  # the format's name, not the decoder's ("mp3float")
    for group in [*result["codecs"].values(), result["overall"]]:
        assert group["media_s"] > 0 and group["cpu_s"] > 0
        assert group["x_realtime"] == pytest.approx(group["media_s"] / group["cpu_s"], rel=0.01)
    assert result["overall"]["media_s"] == pytest.approx(
        sum(row["media_s"] for row in result["files"]), abs=0.01)


def test_command_line_prints_a_line_per_codec_and_writes_json(song_files, tmp_path, capsys):
    out = tmp_path / "speed.json"
    assert main([str(song_files["song-0"]), "--repeats", "1", "--json", str(out)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[-1].split()[0] == "all" and "x real time" in printed[-1]
    assert out.read_text().startswith("{")


def test_video_is_fingerprinted_only_when_asked(kit, tmp_path):
    mute = kit.write_video(tmp_path / "mute.mp4", 6.0, audio=None)
    with pytest.raises(MediaError, match="no audio track"):
        run_fingerprint_speed([mute], repeats=1)
    result = run_fingerprint_speed([mute], repeats=1, video=True)
    assert result["files"][0]["media_s"] == pytest.approx(6.0, abs=0.5)
    assert result["files"][0]["codec"] == "?"  # no audio stream
