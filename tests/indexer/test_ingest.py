"""`nanhu ingest` end to end on generated clips: outcomes, reports, exit codes, determinism."""

from __future__ import annotations

import json
import shutil
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from nanhu.cli import main
from nanhu.engine.catalog import Catalog
from nanhu.indexer import executors
from nanhu.indexer.ingest import EXIT_PARTIAL, IngestOptions, run_ingest
from nanhu.indexer.worker import fingerprint_file


def run(*args) -> int:
    return main(["ingest", *map(str, args)])


def test_a_bad_batch_registers_the_good_files_and_reports_the_bad(tmp_path, clip_bank, helpers,
                                                                  capsys):
    media = tmp_path / "media"
    media.mkdir()
    for clip in clip_bank[:3]:
        shutil.copy(clip, media)
    shutil.copy(clip_bank[0], media / "copy-of-0.wav")
    (media / "corrupt.mp3").write_bytes(b"ID3\x03\x00" + bytes(range(256)) * 8)
    (media / "empty.wav").write_bytes(b"")
    manifest = helpers.write_csv(tmp_path / "m.csv", ["path", "id", "title", "label"], [
        ["media/clip00.wav", "c0", "Clip 0", "Acme"],
        ["media/corrupt.mp3", "bad", "", ""],
        ["media/clip01.wav", "c1", "Clip 1", ""],
        ["media/missing.wav", "gone", "", ""],
        ["media/empty.wav", "empty", "", ""],
        ["media/copy-of-0.wav", "c0-copy", "", ""],
        ["media/clip02.wav", "c2", "", ""],
    ])
    catalog, report = tmp_path / "catalog", tmp_path / "report.jsonl"
    assert run("--catalog", catalog, "--report", report, "--workers", 2, "--skip-invalid",
               manifest) == EXIT_PARTIAL
    out = capsys.readouterr()
    assert f"{manifest}:5: missing file" in out.err
    assert "7 files: 3 registered, 1 skipped-duplicate, 0 skipped-existing, 3 failed" in out.out
    rows = {row["id"]: row for row in helpers.read_report(report)}
    assert {k: rows[k]["status"] for k in rows} == {
        "c0": "registered", "c1": "registered", "c2": "registered",
        "c0-copy": "skipped-duplicate", "bad": "failed", "gone": "failed", "empty": "failed"}
    assert rows["gone"]["line"] == 5 and rows["gone"]["reason"].startswith("invalid: missing")
    assert "not a media file" in rows["bad"]["reason"] and "empty" in rows["empty"]["reason"]
    assert rows["c0-copy"]["reason"] == "same content as 'c0'"
    assert rows["c0"]["digest"] == rows["c0-copy"]["digest"] and rows["c0"]["duration_s"] > 2
    with Catalog(catalog) as opened:
        assert [r.ref_id for r in opened.list()] == ["c0", "c1", "c2"]
        assert opened.get("c0").metadata == {"label": "Acme"}
        assert opened.get("c0").title == "Clip 0" and opened.get("c2").title == "clip02"


def test_rerun_after_success_does_nothing_and_says_so(tmp_path, clip_bank, helpers, capsys):
    media = tmp_path / "media"
    media.mkdir()
    for clip in clip_bank[:4]:
        shutil.copy(clip, media)
    shutil.copy(clip_bank[0], media / "dup.wav")
    catalog, report = tmp_path / "catalog", tmp_path / "report.jsonl"
    assert run("--catalog", catalog, "--report", report, "--workers", 1, media) == 0
    before = helpers.catalog_contents(catalog)
    capsys.readouterr()
    assert run("--catalog", catalog, "--report", report, "--json", media) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["registered"] == 0 and summary["failed"] == 0
    assert summary["skipped-existing"] == 4 and summary["skipped-duplicate"] == 1
    assert helpers.catalog_contents(catalog) == before
    (media / "dup.wav").unlink()
    assert run("--catalog", catalog, "--report", report, media) == 0
    assert "nothing to do: all 4 files are already registered" in capsys.readouterr().out
    assert {r["status"] for r in helpers.read_report(report)} == {"skipped-existing"}


def test_an_id_taken_by_other_content_fails_that_file_only(tmp_path, clip_bank, helpers):
    catalog, report = tmp_path / "catalog", tmp_path / "report.jsonl"
    first = helpers.write_csv(tmp_path / "a.csv", ["path", "id"], [[clip_bank[0], "song"]])
    assert run("--catalog", catalog, "--report", report, first) == 0
    second = helpers.write_csv(tmp_path / "b.csv", ["path", "id"],
                               [[clip_bank[1], "song"], [clip_bank[2], "other"]])
    assert run("--catalog", catalog, "--report", report, second) == EXIT_PARTIAL
    rows = {row["id"]: row for row in helpers.read_report(report)}
    assert rows["song"]["status"] == "failed" and "other content" in rows["song"]["reason"]
    assert rows["other"]["status"] == "registered"


def test_one_or_two_workers_build_the_same_catalog_bit_for_bit(tmp_path, clip_bank, helpers):
    manifest = helpers.write_csv(tmp_path / "m.csv", ["path", "id"],
                                 [[clip, f"ref-{i}"] for i, clip in enumerate(clip_bank[:8])])
    for workers, batch in ((1, 3), (2, 2)):
        assert run("--catalog", tmp_path / f"w{workers}", "--workers", workers, "--batch", batch,
                   "--report", tmp_path / f"r{workers}.jsonl", manifest) == 0
    one, two = helpers.catalog_contents(tmp_path / "w1"), helpers.catalog_contents(tmp_path / "w2")
    assert one["postings"] > 0 and one == two


class _CrashingPool:
    """Stands in for the process pool: 'killer' files take every unfinished task down with them.

    Tasks run in submission order on one thread; a killer fails every task of the same pool
    generation not yet finished (itself and those queued after it), as a dying worker would.
    """

    name, restartable, broken, startup_s = "local", True, BrokenProcessPool, 0.0

    def __init__(self) -> None:
        self.workers = 2
        self.generation = 0
        self.runner = ThreadPoolExecutor(1)
        self.pending: list[tuple[int, Future]] = []
        self.lock = threading.Lock()
        self.restarts = 0

    def submit(self, path: str, audio_params: dict, video: bool) -> Future:
        future: Future = Future()
        generation = self.generation
        with self.lock:
            self.pending.append((generation, future))

        def work():
            if future.done():
                return
            if "killer" in path:
                with self.lock:
                    for g, other in self.pending:
                        if g == generation and not other.done():
                            other.set_exception(BrokenProcessPool("a worker died"))
                return
            future.set_result(fingerprint_file(path, audio_params, video))

        self.runner.submit(work)
        return future

    def restart(self) -> None:
        self.restarts += 1
        self.generation += 1

    def shutdown(self, *, cancel: bool = False) -> None:
        self.runner.shutdown(wait=True)


def test_a_file_that_kills_workers_fails_alone_and_the_others_are_retried(
        tmp_path, clip_bank, helpers, monkeypatch):
    pool = _CrashingPool()
    monkeypatch.setattr(executors, "make_executor", lambda **_: pool)
    media = tmp_path / "media"
    media.mkdir()
    for clip in clip_bank[:5]:
        shutil.copy(clip, media)
    shutil.copy(clip_bank[5], media / "clip02-killer.wav")
    result = run_ingest(IngestOptions(source=media, catalog=tmp_path / "catalog", workers=2,
                                      report=tmp_path / "r.jsonl"))
    assert result.counts == {"registered": 5, "failed": 1} and result.exit_code == EXIT_PARTIAL
    assert pool.restarts >= 2
    rows = {row["id"]: row for row in helpers.read_report(tmp_path / "r.jsonl")}
    assert "worker process died" in rows["clip02-killer"]["reason"]
    with Catalog(tmp_path / "catalog") as catalog:
        assert [r.ref_id for r in catalog.list()] == [f"clip0{i}" for i in range(5)]
