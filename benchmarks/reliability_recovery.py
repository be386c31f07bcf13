"""Two classes of ``nanhu bench reliability``: what happens when a job or a catalog goes bad.

- **job budgets**: a server whose workers have a small CPU-time and memory budget gets jobs
  that burn CPU without end and allocate without end, and an upload that takes more CPU than
  the budget, while another caller's job is in flight on the other worker. Passed: each
  over-budget job ends with BudgetExceeded (the upload with RESOURCE_EXHAUSTED naming it), the
  other caller's job finishes, and the next call works.
- **repair**: a catalog with a truncated postings segment, NaN keyframe vectors, a cut vector
  segment and an unreadable reference row; ``nanhu repair`` is killed (``kill -9``) at a random
  moment. Passed: the catalog is at the last commit (the damage, as ``check`` saw it) or the
  repaired one (``check`` passes), never in between; a second repair finishes it and the
  undamaged works still match.
"""

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

from nanhu.benchmarks.synth import music_like, write_audio

RATE = 22050
ROOT = Path(__file__).resolve().parents[1]
_REPAIR = "import sys; from nanhu import cli as nanhu_cli; sys.exit(nanhu_cli.main(sys.argv[1:]))"


def _outcome(label: str, ok: bool, why: str = "") -> tuple[str, bool, str]:
    return label, bool(ok), why


def job_budgets(work: Path, seed: int, rounds: int) -> list[tuple[str, bool, str]]:
    import grpc

    from nanhu.engine.errors import BudgetExceeded
    from nanhu.server.app import create_server
    from nanhu.server.client import NanhuClient
    from nanhu.server.service import Limits

    server, port = create_server(work / "budget-catalog", workers=2,
                                 limits=Limits(job_cpu_s=0.5, job_memory_mb=150.0))
    server.start()
    pool = server.shared.pool
    gate = work / "gate"
    os.mkfifo(gate)
    long_upload = write_audio(work / "long-upload.wav",
                              music_like(300.0, seed=seed, sample_rate=RATE), RATE)
    short = write_audio(work / "short.wav", music_like(4.0, seed=seed + 1, sample_rate=RATE), RATE)
    client = NanhuClient(f"127.0.0.1:{port}", timeout=120)
    outcomes = []
    try:
        for number in range(rounds):
            waiting = pool.submit_as("other.wav", Path.read_text, gate)  # another caller's job
            for label, fn, args, budget in (("CPU burner", sum, (range(10**14),), "cpu"),
                                            ("memory hog", bytearray, (2**31,), "memory")):
                try:
                    pool.submit_as(f"{label}.bin", fn, *args).result(timeout=300)
                    outcomes.append(_outcome(f"round {number}: {label}", False, "finished"))
                except BudgetExceeded as exc:
                    outcomes.append(_outcome(f"round {number}: {label}", exc.budget == budget
                                             and label in str(exc), str(exc)))
            try:
                fd = os.open(gate, os.O_WRONLY | os.O_NONBLOCK)
                os.write(fd, b"unaffected")
                os.close(fd)
                ok = waiting.result(timeout=300) == "unaffected"
                outcomes.append(_outcome(f"round {number}: other caller's job", ok))
            except OSError as exc:  # ENXIO: its job was not running any more
                outcomes.append(_outcome(f"round {number}: other caller's job", False, str(exc)))
                waiting.cancel()
        try:
            client.screen_file(long_upload)
            outcomes.append(_outcome("upload over the CPU budget", False, "answered OK"))
        except grpc.RpcError as exc:
            ok = exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "long-upload.wav" in \
                exc.details() and "budget" in exc.details()
            outcomes.append(_outcome("upload over the CPU budget", ok,
                                     f"{exc.code().name}: {exc.details()}"))
        answer = client.screen_file(short)
        outcomes.append(_outcome("the next call", abs(answer["duration_s"] - 4.0) < 0.1))
    finally:
        client.close()
        server.stop(0).wait(30)
    return outcomes


def _video(seed: int, n: int = 12):
    from nanhu.engine.fingerprint import Fingerprint, VideoPrint
    from nanhu.engine.video import VideoParams

    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((n, VideoParams().dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    video = VideoPrint(vectors, np.arange(n, dtype=np.float32) * 0.5, VideoParams().tag())
    return Fingerprint(duration_s=n * 0.5 + 0.5, digest=f"bench-video-{seed}", video=video)


def _damaged_catalog(path: Path, songs: dict[str, Path]) -> None:
    from nanhu.engine.catalog import Catalog
    from nanhu.engine.fingerprint import fingerprint_media
    from nanhu.engine.video import VideoParams

    generations = {}
    with Catalog(path, writable=True, create=True) as writer:
        for ref_id, song in songs.items():
            writer.add(ref_id, fingerprint_media(song, video=False))
            generations[ref_id] = writer.commit()
        for seed, ref_id in enumerate(("v-good", "v-nan", "v-cut")):
            writer.add(ref_id, _video(seed))
            generations[ref_id] = writer.commit()
    segment = path / f"audio/seg-{generations['song-1']:08d}.pst"
    segment.write_bytes(segment.read_bytes()[:-100])
    vectors = path / f"video/seg-{generations['v-nan']:08d}.vec"
    data = bytearray(vectors.read_bytes())
    dim = VideoParams().dim
    data[24 : 24 + 12 * dim * 4] = np.full(12 * dim, np.nan, np.float32).tobytes()
    vectors.write_bytes(bytes(data))
    cut = path / f"video/seg-{generations['v-cut']:08d}.vec"
    cut.write_bytes(cut.read_bytes()[:1000])
    with sqlite3.connect(path / "meta.sqlite") as db:
        db.execute("UPDATE refs SET metadata = '{not json' WHERE ref_id = 'song-3'")


def _repair(catalog: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", _REPAIR, "repair", "--catalog", str(catalog)],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})


def repair_trials(work: Path, seed: int, trials: int) -> list[tuple[str, bool, str]]:
    from nanhu.engine.catalog import Catalog
    from nanhu.engine.check import check_catalog
    from nanhu.engine.errors import NanhuError
    from nanhu.engine.fingerprint import fingerprint_media
    from nanhu.engine.matcher import Matcher
    from nanhu.engine.store.catalog_schema import segment_files

    songs = {f"song-{n}": write_audio(work / f"song-{n}.wav",
                                      music_like(8.0, seed=seed + n, sample_rate=RATE), RATE)
             for n in range(4)}
    template = work / "template"
    _damaged_catalog(template, songs)
    damaged = check_catalog(template)
    queries = {ref: fingerprint_media(songs[ref], query=True, video=False)
               for ref in ("song-0", "song-2")}
    rng = np.random.default_rng(seed)
    outcomes = [_outcome("check finds the damage", not damaged["ok"]
                         and len(damaged["problems"]) == 4, "; ".join(damaged["problems"]))]
    for trial in range(trials):
        catalog = work / f"repair-{trial}"
        shutil.copytree(template, catalog)
        label = f"trial {trial}"
        process = _repair(catalog)
        for line in process.stderr:
            if "writing the repaired catalog" in line:
                break
        try:  # a random moment inside or after the commit to kill at (not a sync)
            process.wait(timeout=float(rng.uniform(0.0, 0.08)))
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)
            process.wait()
        try:
            with Catalog(catalog, writable=True):  # the next writer settles what the kill left
                pass
            report = check_catalog(catalog)
            if report["generation"] == damaged["generation"]:
                state, ok = "last commit", report["problems"] == damaged["problems"]
            else:
                state = "repaired"
                ok = report["generation"] == damaged["generation"] + 1 and report["ok"]
            manifest = json.loads((catalog / "manifest.json").read_text())
            named = set(segment_files(manifest))
            stray = {f"{p.parent.name}/{p.name}" for p in
                     [*catalog.glob("audio/*"), *catalog.glob("video/*")]} - named
            finish = _repair(catalog)
            finish.communicate(timeout=300)
            with Catalog(catalog) as reader:
                ids = sorted(r.ref_id for r in reader.list())
                matcher = Matcher(reader)
                found = {ref: [m.reference_id for m in matcher.match(q)][:1] == [ref]
                         for ref, q in queries.items()}
            ok = ok and not stray and finish.returncode == 0 and check_catalog(catalog)["ok"] \
                and ids == ["song-0", "song-2", "v-good"] and all(found.values())
            outcomes.append(_outcome(label, ok, f"killed at the {state}; stray files {sorted(stray)}; "
                                                f"after a second repair {ids}, matched {found}"))
        except NanhuError as exc:
            outcomes.append(_outcome(label, False, str(exc)))
    return outcomes
