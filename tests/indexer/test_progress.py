"""Ingest progress: counted as each file's work ends, plain lines off a terminal, a tqdm bar on one."""

from __future__ import annotations

import io
import shutil
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from types import SimpleNamespace

from nanhu.indexer import executors
from nanhu.indexer import progress as P
from nanhu.indexer.ingest import IngestOptions, run_ingest
from nanhu.indexer.worker import fingerprint_file


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_off_a_terminal_progress_is_plain_lines_with_x_real_time_and_an_eta_from_work(monkeypatch):
    clock = _Clock()
    monkeypatch.setattr(P, "time", SimpleNamespace(monotonic=clock.monotonic))
    log = io.StringIO()
    progress = P.Progress(total_files=4, total_bytes=400, stream=log, interval_s=5.0)
    clock.now += 1
    progress.settled(100)  # already registered: no work, so no rate to promise an ETA on
    progress.update(force=True)
    clock.now += 9
    progress.worked(100, media_s=3600.0)  # one hour of media in the 10 s since the start
    progress.update()  # 9 s since the last line: due
    clock.now += 1
    progress.worked(100, media_s=0.0)  # a file that failed in its worker: work, no media
    progress.update()  # 1 s since the last line: not yet
    clock.now += 1
    progress.settled(100)
    progress.finish()  # the last figures, whatever the interval
    assert log.getvalue().splitlines() == [
        "ingest: 1/4 files (25 %), 0.00 h of media, 0.0x real time, 1.0 files/s, ETA ?",
        # 200 bytes left at the 100 bytes per 10 s workers managed; the skipped file's 100
        # bytes do not make it look twice as fast
        "ingest: 2/4 files (50 %), 1.00 h of media, 360x real time, 0.2 files/s, ETA 20s",
        "ingest: 4/4 files (100 %), 1.00 h of media, 300x real time, 0.3 files/s, ETA 0s",
    ]
    assert "\r" not in log.getvalue() and "\033" not in log.getvalue()


def test_without_byte_sizes_the_share_and_eta_count_files(monkeypatch):
    clock = _Clock()
    monkeypatch.setattr(P, "time", SimpleNamespace(monotonic=clock.monotonic))
    log = io.StringIO()
    progress = P.Progress(total_files=3, total_bytes=0, stream=log, interval_s=0.0)
    clock.now += 30
    progress.worked(0, media_s=60.0)
    progress.update()
    assert log.getvalue() == ("ingest: 1/3 files (33 %), 0.02 h of media, 2.0x real time, "
                              "0.0 files/s, ETA 1m00s\n")


def test_on_a_terminal_it_is_a_bar_that_messages_do_not_draw_over():
    terminal = _Terminal()
    bar = P.Progress(total_files=4, total_bytes=400, stream=terminal, interval_s=0.0)
    bar.worked(100, media_s=60.0)
    bar.update()
    bar.message("nanhu: a.wav: file is empty")
    bar.settled(100)
    bar.update()
    bar.finish()
    text = terminal.getvalue()
    assert "\r" in text and "ingest:  50%|" in text and "2/4 files (50 %)" in text
    assert "x real time" in text and "h/h" not in text
    assert "nanhu: a.wav: file is empty\n" in text
    message_at = text.index("nanhu: a.wav")
    assert text[message_at - 1] in "\r\n"  # on a line of its own, not appended to the bar
    assert text.endswith("\n")  # the bar stays above what follows


class _HeldFirstPool:
    """Runs tasks on threads, holding the first file until the others are done: the writer,
    which takes results in source order, can commit nothing meanwhile."""

    name, restartable, broken, startup_s = "local", True, (), 0.0

    def __init__(self) -> None:
        self.workers = 2
        self.runner = ThreadPoolExecutor(3)
        self.futures: list[Future] = []
        self.others_done = threading.Event()

    def submit(self, path: str, audio_params: dict, video: bool) -> Future:
        first = not self.futures

        def work() -> dict:
            if first:
                self.others_done.wait(30)
            return fingerprint_file(path, audio_params, video)

        future = self.runner.submit(work)
        self.futures.append(future)
        if len(self.futures) == 3:
            rest = self.futures[1:]
            threading.Thread(target=lambda: (wait_futures(rest), self.others_done.set())).start()
        return future

    def restart(self) -> None:
        raise AssertionError("no worker dies here")

    def shutdown(self, *, cancel: bool = False) -> None:
        self.runner.shutdown(wait=True)


def test_files_count_as_their_work_finishes_not_when_committed(tmp_path, clip_bank, helpers,
                                                               monkeypatch):
    monkeypatch.setattr(executors, "make_executor", lambda **_: _HeldFirstPool())
    media = tmp_path / "media"
    media.mkdir()
    for clip in clip_bank[:3]:
        shutil.copy(clip, media)
    log = io.StringIO()
    result = run_ingest(IngestOptions(source=media, catalog=tmp_path / "catalog", workers=2,
                                      report=tmp_path / "r.jsonl", progress_interval_s=0.0),
                        stream=log)
    assert result.counts == {"registered": 3}
    lines = log.getvalue().splitlines()
    # the first file was still running, so nothing was committed yet, and the other two show
    assert any(line.startswith("ingest: 2/3 files (") for line in lines), lines
    assert lines[-1].startswith("ingest: 3/3 files (100 %), 0.00 h of media, ")
    assert lines[-1].endswith("ETA 0s") and "x real time" in lines[-1]
