"""``nanhu repair`` drops what ``nanhu check`` finds unreadable, as one commit; the rest still
matches, and a repair killed at any moment leaves the last commit or the repaired catalog."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nanhu.engine.catalog import Catalog
from nanhu.engine.check import check_catalog
from nanhu.engine.fingerprint import Fingerprint, VideoPrint, fingerprint_media
from nanhu.engine.matcher import Matcher
from nanhu.engine.store.catalog_schema import segment_files
from nanhu.engine.video import VideoParams

ROOT = Path(__file__).resolve().parents[2]
#: what the damaged catalog must lose, and why (the reason's start)
DROPPED = {"song-1": "its audio postings", "song-3": "its metadata", "v-nan": "12 unusable",
           "v-cut": "its keyframes"}


def video_fp(seed: int, n: int = 12) -> Fingerprint:
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((n, VideoParams().dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    times = np.arange(n, dtype=np.float32) * 0.5
    video = VideoPrint(vectors, times, VideoParams().tag())
    return Fingerprint(duration_s=n * 0.5 + 0.5, digest=f"video-{seed}", video=video)


def damaged_catalog(path: Path, reference_fps: dict[str, Fingerprint]) -> dict[str, int]:
    """Songs 0-3 and videos v-good, v-nan, v-cut, one commit each; then song-1's postings
    segment truncated, v-nan's vectors overwritten with NaN, v-cut's segment cut short and
    song-3's metadata made unreadable. Returns each reference's commit generation."""
    generations = {}
    with Catalog(path, writable=True, create=True) as writer:
        for ref_id in ("song-0", "song-1", "song-2", "song-3"):
            writer.add(ref_id, reference_fps[ref_id])
            generations[ref_id] = writer.commit()
        for seed, ref_id in enumerate(("v-good", "v-nan", "v-cut")):
            writer.add(ref_id, video_fp(seed))
            generations[ref_id] = writer.commit()
    segment = path / f"audio/seg-{generations['song-1']:08d}.pst"
    segment.write_bytes(segment.read_bytes()[:-100])
    vectors = path / f"video/seg-{generations['v-nan']:08d}.vec"
    data = bytearray(vectors.read_bytes())
    data[24 : 24 + 12 * VideoParams().dim * 4] = np.full(12 * VideoParams().dim, np.nan,
                                                         np.float32).tobytes()
    vectors.write_bytes(bytes(data))
    cut = path / f"video/seg-{generations['v-cut']:08d}.vec"
    cut.write_bytes(cut.read_bytes()[:1000])
    with sqlite3.connect(path / "meta.sqlite") as db:
        db.execute("UPDATE refs SET metadata = '{not json' WHERE ref_id = 'song-3'")
    return generations


def named_files(path: Path) -> tuple[set[str], set[str]]:
    """(files the manifest names, segment files on disk)."""
    manifest = json.loads((path / "manifest.json").read_text())
    named = set(segment_files(manifest))
    on_disk = {f"{p.parent.name}/{p.name}" for p in [*path.glob("audio/*"), *path.glob("video/*")]}
    return named, on_disk


def test_repair_drops_the_damage_and_the_rest_still_matches(catalog_dir, reference_fps,
                                                            song_files, run_cli):
    damaged_catalog(catalog_dir, reference_fps)
    before = run_cli("check", "--catalog", catalog_dir)
    assert before.code == 7 and len(before.json_lines[0]["problems"]) == 4
    manifest = (catalog_dir / "manifest.json").read_bytes()
    dry = run_cli("repair", "--catalog", catalog_dir, "--dry-run")
    assert dry.code == 7 and not dry.json_lines[0]["repaired"]
    assert (catalog_dir / "manifest.json").read_bytes() == manifest  # changed nothing

    result = run_cli("repair", "--catalog", catalog_dir)
    assert result.code == 0, result.err
    report = result.json_lines[0]
    assert report["repaired"] and report["ok"] and report["problems"] == []
    assert report["generation"] == report["generation_before"] + 1
    dropped = {d["reference_id"]: d["reason"] for d in report["dropped"]["references"]}
    assert dropped.keys() == DROPPED.keys()
    assert all(dropped[ref].startswith(why) for ref, why in DROPPED.items()), dropped
    assert len(report["dropped"]["segments"]) == 2  # the truncated postings and vectors
    assert report["dropped"]["keyframe_rows"] == 12
    assert any("register it again" in line and "song-1" in line for line in result.err_lines)

    assert run_cli("check", "--catalog", catalog_dir).code == 0
    named, on_disk = named_files(catalog_dir)
    assert on_disk == named  # the replaced and dropped files are gone
    with Catalog(catalog_dir) as reader:
        assert sorted(r.ref_id for r in reader.list()) == ["song-0", "song-2", "v-good"]
        assert len(reader.vectors()) == 12  # v-good's keyframes, nothing else
        matcher = Matcher(reader)
        for ref_id in ("song-0", "song-2"):
            query = fingerprint_media(song_files[ref_id], query=True, video=False)
            assert [m.reference_id for m in matcher.match(query)][:1] == [ref_id]
    again = run_cli("repair", "--catalog", catalog_dir)
    assert again.code == 0 and not again.json_lines[0]["repaired"]
    assert "nothing to repair" in again.err


def test_repair_of_a_sound_catalog_changes_nothing(registered_catalog, tmp_path, run_cli):
    copy = tmp_path / "catalog"
    shutil.copytree(registered_catalog, copy)
    manifest = (copy / "manifest.json").read_bytes()
    result = run_cli("repair", "--catalog", copy)
    assert result.code == 0 and result.json_lines[0]["dropped"]["references"] == []
    assert (copy / "manifest.json").read_bytes() == manifest


def test_repair_refuses_while_another_process_writes(registered_catalog, tmp_path, run_cli):
    copy = tmp_path / "catalog"
    shutil.copytree(registered_catalog, copy)
    with Catalog(copy, writable=True):
        assert run_cli("repair", "--catalog", copy).code == 6


_REPAIR = "import sys; from nanhu import cli as nanhu_cli; sys.exit(nanhu_cli.main(sys.argv[1:]))"


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="kill -9")
def test_a_killed_repair_leaves_the_last_commit_or_the_repaired_catalog(
        tmp_path, reference_fps):
    template = tmp_path / "template"
    damaged_catalog(template, reference_fps)
    damaged = check_catalog(template)
    rng = np.random.default_rng(15)
    for trial in range(8):
        catalog = tmp_path / f"trial-{trial}"
        shutil.copytree(template, catalog)
        process = subprocess.Popen([sys.executable, "-c", _REPAIR, "repair", "--catalog",
                                    str(catalog)], cwd=ROOT, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE, text=True,
                                   env={**os.environ, "PYTHONPATH": str(ROOT)})
        for line in process.stderr:  # the commit starts now
            if "writing the repaired catalog" in line:
                break
        try:  # a random moment inside or after the commit window to kill at (not a sync)
            process.wait(timeout=float(rng.uniform(0.0, 0.08)))
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)
            process.wait()
        with Catalog(catalog, writable=True):  # the next writer settles what the kill left
            pass
        report = check_catalog(catalog)
        if report["generation"] == damaged["generation"]:
            assert report["problems"] == damaged["problems"], trial
        else:
            assert report["generation"] == damaged["generation"] + 1, trial
            assert report["ok"], (trial, report["problems"])
        named, on_disk = named_files(catalog)
        assert on_disk == named, trial  # no half-written or replaced file left behind
        finish = subprocess.run([sys.executable, "-c", _REPAIR, "repair", "--catalog",
                                 str(catalog)], cwd=ROOT, capture_output=True, text=True,
                                env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert finish.returncode == 0, finish.stderr
        assert check_catalog(catalog)["ok"]
        with Catalog(catalog) as reader:
            assert sorted(r.ref_id for r in reader.list()) == ["song-0", "song-2", "v-good"]
    # Which outcomes occur depends on timing (both did in trials here); each is checked above.
