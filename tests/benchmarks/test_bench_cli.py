"""``nanhu bench all --tiny`` end to end: every section runs and the report is whole.

The tiny size generates its own media (no download), so this is the benchmark tooling's
smoke test on a fresh machine; the numbers it prints are not asserted (no timing asserts),
only that each section measured something and wrote it where the report says.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def tiny_report(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bench")
    env = {k: v for k, v in os.environ.items() if k != "NANHU_CACHE"}
    done = subprocess.run(
        [sys.executable, "-m", "nanhu", "bench", "all", "--tiny", "--out", str(out)],
        capture_output=True, text=True, env=env, timeout=1800,
        cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, done.stderr[-3000:]
    assert "tiny (generated media" in done.stderr  # the size is stated up front
    (out / "stderr.txt").write_text(done.stderr)
    return out


@pytest.mark.slow
def test_every_section_is_in_the_report(tiny_report):
    text = (tiny_report / "report.md").read_text()
    assert (tiny_report / "summary.md").read_text() in text  # the headline table, also alone
    for heading in ("# Nanhu benchmark report", "## Summary", "## Audio", "## Video", "## Server",
                    "## Ingest", "## Audio at catalog scale", "## Scale and size", "## Corpus"):
        assert heading in text, heading
    assert "Command: `nanhu bench all --tiny" in text
    assert "Machine: " in text and "cores" in text


@pytest.mark.slow
def test_progress_is_logged_at_info_not_as_warnings(tiny_report):
    lines = (tiny_report / "stderr.txt").read_text().splitlines()
    progress = [line for line in lines if "registering references:" in line
                or "query fingerprints in" in line or "scale: {" in line]
    assert len(progress) >= 3, lines[-40:]  # the audio bench and the scale bench both said where they are
    assert not [line for line in progress if "WARNING" in line], progress


@pytest.mark.slow
def test_every_plot_the_report_links_is_a_png(tiny_report):
    text = (tiny_report / "report.md").read_text()
    linked = [line.split("(")[1].rstrip(")") for line in text.splitlines()
              if line.startswith("![")]
    assert {"recall-vs-snr.png", "recall-vs-speed.png", "video-recall-per-attack.png",
            "latency-vs-catalog-size.png", "index-bytes-per-hour.png", "calibration.png"
            } <= set(linked)
    for name in linked:
        assert (tiny_report / name).read_bytes()[:8] == PNG_MAGIC, name


@pytest.mark.slow
def test_raw_results_hold_each_measurement_and_the_corpus(tiny_report):
    raw = json.loads((tiny_report / "results.json").read_text())
    audio, video = raw["audio"], raw["video"]
    # Generated music, clean 10 s excerpts: the engine finds them (the tiny run still screens).
    clean = [r for r in audio["rows"] if r["condition"] == "clean"]
    assert clean and all(r["top1_recall"] == 1.0 for r in clean)
    scale = raw["scale"]["audio"]  # the real catalog alone, then with 2 h of decoys
    assert [round(s["synthetic_hours"]) for s in scale] == [0, 2]
    assert scale[1]["hours"] > scale[0]["hours"] and scale[1]["add_one_hour_s"] > 0
    assert all(s["queries"] == 8 and s["negatives"] == 8 for s in scale)
    assert all(s["match_cpu_ms_p50"] > 0 and s["match_ms_p50_positives"] > 0
               and s["match_ms_p99_negatives"] >= s["match_ms_p50_negatives"] > 0 for s in scale)
    assert set(raw["scale"]["null_log10_chance"]) and all(
        len(v) == 8 for v in raw["scale"]["null_log10_chance"].values())
    assert video["config"]["negatives"] == 2 and video["rows"]
    assert video["scale"]["keyframes"] == 5_000
    assert raw["server"]["stream"]["10s x1"]["errors"] == 0
    claims = raw["server"]["claims"]  # screening with and without claims, 5 rounds each way
    assert "error" in claims or claims["claims"]["n"] == claims["no_claims"]["n"] == 10
    assert raw["ingest"]["runs"] and all(r["failed"] == 0 for r in raw["ingest"]["runs"])
    files = {f["id"] for f in raw["corpus_audio"]["files"]}
    assert "tiny-ref-0" in files and all(len(f["sha256"]) == 64 for f in raw["corpus_audio"]["files"])
    assert {f["id"] for f in raw["corpus_video"]["files"]} >= {"tiny-ref-0", "tiny-neg-0"}


def test_a_failing_section_is_reported_and_the_others_kept(tmp_path, monkeypatch):
    import argparse

    from nanhu.benchmarks import cli

    def fine(out, size, seed, args):
        return "## Fine\n\nmeasured\n", {"value": 1}

    def broken(out, size, seed, args):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(cli, "RUNS", {"audio": broken, "video": broken, "server": fine,
                                      "ingest": fine, "scale": fine})
    monkeypatch.setattr(cli, "_corpus_manifests", lambda raw: {})
    args = argparse.Namespace(kind="all", tiny=False, quick=True, out=tmp_path, seed=0,
                              queries=None, scale_hours=None)
    assert cli.cmd_bench(args) == 1
    text = (tmp_path / "report.md").read_text()
    assert text.count("This section failed: RuntimeError: disk on fire") == 2
    assert text.count("measured") == 3
    assert json.loads((tmp_path / "results.json").read_text()) == {
        "server": {"value": 1}, "ingest": {"value": 1}, "scale": {"value": 1}}
