"""Crashes and interruptions: an ingest killed mid-run resumes to exactly the right catalog."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nanhu.cli import main
from nanhu.engine.catalog import Catalog

N_FILES = 16


@pytest.fixture(scope="module")
def manifest(tmp_path_factory, clip_bank) -> Path:
    path = tmp_path_factory.mktemp("resume") / "m.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "id"])
        writer.writerows([clip, f"ref-{i:02d}"] for i, clip in enumerate(clip_bank[:N_FILES]))
    return path


@pytest.fixture(scope="module")
def clean_postings(manifest) -> Path:
    """A catalog of the same files, ingested in one uninterrupted run."""
    clean = manifest.parent / "clean"
    assert main(["ingest", "--catalog", str(clean), "--workers", "2", "--report",
                 str(manifest.parent / "clean.jsonl"), str(manifest)]) == 0
    return clean


def _start(args: list, log: Path) -> subprocess.Popen:
    with open(log, "w") as handle:
        return subprocess.Popen(
            [sys.executable, "-m", "nanhu", "ingest", *map(str, args)],
            stdout=handle, stderr=subprocess.STDOUT, start_new_session=True,
        )


def _wait_for_commits(catalog: Path, proc: subprocess.Popen, log: Path, helpers, *,
                      at_least: int, limit_s: float = 120.0) -> None:
    """Poll the catalog manifest (bounded) until ``at_least`` commits are on disk."""
    deadline = time.monotonic() + limit_s
    while helpers.generation(catalog) < at_least:
        if proc.poll() is not None:
            pytest.fail(f"ingest ended (rc {proc.returncode}) before {at_least} commits:\n"
                        f"{log.read_text()}")
        if time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            pytest.fail(f"no {at_least} commits within {limit_s} s:\n{log.read_text()}")
        time.sleep(0.01)


def _ingest_args(tmp_path: Path, manifest: Path, catalog: Path) -> list:
    return ["--catalog", catalog, "--workers", 1, "--batch", 1,
            "--report", tmp_path / "report.jsonl", manifest]


def _assert_complete(catalog: Path, clean: Path, helpers) -> None:
    expected_ids = [f"ref-{i:02d}" for i in range(N_FILES)]
    with Catalog(catalog) as opened:
        refs = opened.list()
        assert [r.ref_id for r in refs] == expected_ids  # nothing lost, nothing twice
        assert opened.stats()["files_present"]
    # no orphaned or doubled postings: the same (hash, id, frame) triplets as a clean run
    assert helpers.postings_by_id(catalog) == helpers.postings_by_id(clean)


def test_kill_9_mid_run_then_resume_gives_exactly_the_right_catalog(tmp_path, manifest, helpers,
                                                                   clean_postings):
    catalog, log = tmp_path / "catalog", tmp_path / "ingest.log"
    proc = _start(_ingest_args(tmp_path, manifest, catalog), log)
    _wait_for_commits(catalog, proc, log, helpers, at_least=2)
    os.killpg(proc.pid, signal.SIGKILL)  # the ingest and its workers, mid-run
    proc.wait()
    with Catalog(catalog) as opened:
        committed = len(opened.list())
    assert 2 <= committed < N_FILES, "the kill should land mid-run"

    resumed = main(["ingest", *map(str, _ingest_args(tmp_path, manifest, catalog))])
    assert resumed == 0
    rows = helpers.read_report(tmp_path / "report.jsonl")
    statuses = [row["status"] for row in rows]
    assert statuses.count("skipped-existing") >= committed
    assert statuses.count("registered") + statuses.count("skipped-existing") == N_FILES
    _assert_complete(catalog, clean_postings, helpers)


def test_ctrl_c_commits_what_is_done_and_a_rerun_finishes(tmp_path, manifest, helpers,
                                                         clean_postings):
    catalog, log = tmp_path / "catalog", tmp_path / "ingest.log"
    proc = _start(_ingest_args(tmp_path, manifest, catalog), log)
    _wait_for_commits(catalog, proc, log, helpers, at_least=1)
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C sends to the process group
    assert proc.wait(timeout=120) == 130, log.read_text()
    assert "interrupted" in log.read_text()
    rows = helpers.read_report(tmp_path / "report.jsonl")
    with Catalog(catalog) as opened:
        committed = {r.ref_id for r in opened.list()}
    assert {row["id"] for row in rows if row["status"] == "registered"} == committed

    assert main(["ingest", *map(str, _ingest_args(tmp_path, manifest, catalog))]) == 0
    _assert_complete(catalog, clean_postings, helpers)
