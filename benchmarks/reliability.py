"""``nanhu bench reliability``: the issue-15 probe's classes, repeated with counts.

Each class tries many hostile inputs and counts how many were handled as they must be:

- **poisoned fingerprints**: edge prints with a wrong dimension, huge or zero norms, NaN,
  infinite, negative or unsorted times, inconsistent audio arrays. Passed: refused with a
  ``NanhuError`` and the catalog's good work is still found afterwards.
- **mutated files**: bit flips, truncations and fourcc changes of generated mp4, mkv, mp3,
  flac, ogg and wav files. Passed: a fingerprint or a ``NanhuError`` (never another exception).
- **hostile timestamps**: tiny mkvs whose frames claim far-apart times. Passed: finished with
  keyframes bounded by the frames decoded.
- **stalled streams**: uploads that stop sending, against a server with a short idle limit.
  Passed: the call ends with RESOURCE_EXHAUSTED and the slot and spool are free again.
- **kill -9 during register**: a process registering works is killed at a random moment.
  Passed: the catalog opens and ``nanhu check`` finds nothing wrong.
- **job budgets** and **repair (kill -9 mid-repair)**: see :mod:`benchmarks.reliability_recovery`.

Generated media only (no download): minutes on 2 cores. Times are reported, never asserted.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from nanhu.benchmarks.synth import music_like, write_audio, write_video

log = logging.getLogger(__name__)
RATE = 22050


def _frames(n: int, seed: int, size: int = 64) -> np.ndarray:
    y, x = np.mgrid[0:size, 0:size]
    rng = np.random.default_rng(seed)
    a, b = rng.integers(2, 9, 2)
    return np.stack([np.stack([(x * a + 9 * i) % 256, (y * b + 5 * i) % 256,
                               ((x + y) * 2 + 3 * i) % 256], -1)
                     for i in range(n)]).astype(np.uint8)


def _count(name: str, outcomes: list[tuple[str, bool, str]]) -> dict:
    failed = [f"{label}: {why}" for label, ok, why in outcomes if not ok]
    return {"class": name, "tried": len(outcomes), "passed": len(outcomes) - len(failed),
            "failed": len(failed), "failures": failed[:20]}


def poisoned_fingerprints(work: Path, seed: int) -> dict:
    from nanhu.engine.catalog import Catalog
    from nanhu.engine.errors import NanhuError
    from nanhu.engine.fingerprint import fingerprint_media
    from nanhu.engine.matcher import Matcher

    path = write_video(work / "good.mp4", _frames(48, seed), 4,
                       audio=music_like(12.0, seed=seed, sample_rate=RATE))
    good = fingerprint_media(path)
    catalog_dir = work / "poison-catalog"
    with Catalog(catalog_dir, writable=True, create=True) as writer:
        writer.add("good", good)
        writer.commit()
    v, a = good.video, good.audio

    def video(**changes):
        return dataclasses.replace(good, digest="", video=dataclasses.replace(v, **changes))

    def audio(**changes):
        return dataclasses.replace(good, digest="", audio=dataclasses.replace(a, **changes))

    def times(index, value):
        t = v.times_s.copy()
        t[index] = value
        return video(times_s=t)

    rng = np.random.default_rng(seed)
    poisons = {
        "dimension 3": video(vectors=np.full((len(v), 3), 0.57735, np.float32)),
        "dimension 247": video(vectors=np.ascontiguousarray(v.vectors[:, :-1])),
        "norm 1e6": video(vectors=v.vectors * np.float32(1e6)),
        "norm 0": video(vectors=np.zeros_like(v.vectors)),
        "NaN vector": video(vectors=np.where(rng.random(v.vectors.shape) < 0.01, np.nan,
                                             v.vectors).astype(np.float32)),
        "NaN time": times(1, np.nan), "inf time": times(1, np.inf),
        "time -1e9": times(0, -1e9), "time past duration": times(-1, 1e7),
        "unsorted times": video(times_s=v.times_s[::-1].copy()),
        "NaN duration": dataclasses.replace(good, digest="", duration_s=float("nan")),
        "frames past duration": audio(frames=a.frames + np.int32(10**8)),
        "negative frames": audio(frames=a.frames - np.int32(10**8)),
        "speed_index 7": audio(speed_index=np.full(len(a), 7, np.uint8)),
        "speed NaN": audio(speeds=np.array([np.nan], np.float32)),
        "hashes 2**31": audio(hashes=np.full(len(a), 1 << 31, np.uint32)),
        "unknown video tag": video(params_tag="video-v99"),
    }
    outcomes = []
    query = fingerprint_media(path, query=True)
    for label, fp in poisons.items():
        try:
            with Catalog(catalog_dir, writable=True) as writer:
                writer.add(f"poison-{len(outcomes)}", fp)
                writer.commit()
            outcomes.append((label, False, "accepted"))
            continue
        except NanhuError:
            pass
        with Catalog(catalog_dir) as reader:
            found = [m.reference_id for m in Matcher(reader).match(query)][:1]
        outcomes.append((label, found == ["good"], f"best match {found}"))
    return _count("poisoned fingerprints", outcomes)


def _mutations(data: bytes, rng: np.random.Generator, n: int):
    for i in range(n):
        if i % 5 == 4:
            yield f"cut-{i}", data[: int(rng.integers(1, len(data)))]
            continue
        mutated = bytearray(data)
        for _ in range(int(rng.integers(1, 9))):
            pos = int(rng.integers(0, len(data)))
            if i % 2:
                pos = min(pos, 4095) if rng.random() < 0.5 else max(len(data) - 1 - pos % 4096, 0)
            mutated[pos] ^= 1 << int(rng.integers(0, 8))
        yield f"flip-{i}", bytes(mutated)
    for tag in (b"avc1", b"mp4a", b"OggS", b"fLaC", b"RIFF", b"A_OPUS", b"V_MPEG4"):
        at = data.find(tag)
        if at >= 0:
            mutated = bytearray(data)
            mutated[at] = (mutated[at] + 1) % 256
            yield f"tag-{tag.decode()}", bytes(mutated)


def mutated_files(work: Path, seed: int, per_file: int) -> dict:
    from nanhu.engine.errors import NanhuError
    from nanhu.engine.fingerprint import fingerprint_media

    sound = music_like(3.0, seed=seed, sample_rate=RATE)
    files = {name: write_audio(work / name, sound, RATE)
             for name in ("m.mp3", "m.flac", "m.ogg", "m.wav", "m.m4a")}
    files["v.mp4"] = write_video(work / "v.mp4", _frames(12, seed), 4, audio=sound)
    files["v.mkv"] = write_video(work / "v.mkv", _frames(12, seed), 4, audio=sound,
                                 audio_codec="libopus")
    rng = np.random.default_rng(seed)
    outcomes, slowest = [], (0.0, "")
    # ru_maxrss only grows: the mutation that raised it most is the worst file for memory
    peak, rise = _peak_mb(), (0.0, "")
    for name, path in files.items():
        for label, data in _mutations(path.read_bytes(), rng, per_file):
            started = time.perf_counter()
            try:
                fingerprint_media(data, query=True, max_duration_s=3 * 3600.0)
                outcomes.append((f"{name} {label}", True, ""))
            except NanhuError:
                outcomes.append((f"{name} {label}", True, ""))
            except Exception as exc:  # noqa: BLE001 - counting exactly these is the point
                outcomes.append((f"{name} {label}", False, f"{type(exc).__name__}: {exc}"))
            seconds = time.perf_counter() - started
            slowest = max(slowest, (seconds, f"{name} {label}"))
            now = _peak_mb()
            rise, peak = max(rise, (now - peak, f"{name} {label}")), now
    result = _count("mutated files", outcomes)
    result["slowest_s"], result["slowest"] = round(slowest[0], 3), slowest[1]
    result["peak_mb"], result["largest_rise_mb"] = round(peak, 1), round(rise[0], 1)
    result["largest_rise"] = rise[1]
    return result


def _peak_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def hostile_timestamps(work: Path, seed: int) -> dict:
    from nanhu.benchmarks.video_probe import Footage, encode
    from nanhu.engine.errors import NanhuError
    from nanhu.engine.video import MAX_HOLD_S, VideoParams, fingerprint_video

    frames = Footage(seed + 3, duration_s=2.0).at_fps(2.0)[0][:4]
    outcomes = []
    for far in (60.0, 3600.0, 10_700.0, 1e5, 1e6, 1e7):
        for times in ((0.0, 0.5, far, far + 0.5), (0.0, 0.5, far)):
            label = f"frame at {far:g} s ({len(times)} frames)"
            path = encode(work / "gap.mkv", frames[: len(times)], np.array(times), fps=2.0)
            bound = len(times) * (MAX_HOLD_S * VideoParams().sample_fps + 1)
            try:
                video = fingerprint_video(path)
                n = 0 if video is None else len(video)
                outcomes.append((label, n <= bound, f"{n} keyframes (bound {bound:g})"))
            except NanhuError as exc:
                outcomes.append((label, True, str(exc)))
    return _count("hostile timestamps", outcomes)


def stalled_streams(work: Path, seed: int, streams: int) -> dict:
    import grpc

    from nanhu.proto.gen.nanhu.v1 import nanhu_pb2 as pb
    from nanhu.proto.gen.nanhu.v1 import nanhu_pb2_grpc as pb_grpc
    from nanhu.server.app import create_server
    from nanhu.server.service import Limits

    server, port = create_server(work / "stall-catalog", workers=1,
                                 limits=Limits(max_concurrent=streams, upload_idle_s=1.0))
    server.start()
    data = write_audio(work / "stall.wav", music_like(4.0, seed=seed, sample_rate=RATE),
                       RATE).read_bytes()
    gate = threading.Event()

    def chunks():
        yield pb.ScreenChunk(header=pb.ScreenHeader(filename="stall.wav"))
        yield pb.ScreenChunk(data=data[:4096])
        gate.wait(120)  # the client stops sending

    outcomes = []
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        stub = pb_grpc.ScreeningStub(channel)
        calls = [stub.Screen.future(chunks()) for _ in range(streams)]
        for number, call in enumerate(calls):
            try:
                call.result()
                outcomes.append((f"stream {number}", False, "answered OK"))
            except grpc.RpcError as exc:
                ok = exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                outcomes.append((f"stream {number}", ok, f"{exc.code().name}: {exc.details()}"))
        gate.set()
        freed = server.limiter.wait_until(lambda n: n == 0, timeout=60) and \
            server.spool.wait_until(lambda n: n == 0, timeout=60)
        outcomes.append(("slots and spool freed", bool(freed) and not server.spool.files(), ""))

        def whole():
            yield pb.ScreenChunk(header=pb.ScreenHeader(filename="stall.wav"))
            yield pb.ScreenChunk(data=data)
        answer = stub.Screen(whole(), timeout=60)
        outcomes.append(("screening afterwards", answer.duration_s > 0, ""))
    finally:
        gate.set()
        channel.close()
        server.stop(0).wait(30)
    return _count("stalled streams", outcomes)


_REGISTER = """
import sys
from pathlib import Path
from nanhu.engine.catalog import Catalog
from nanhu.engine.fingerprint import Fingerprint
catalog, prints = Path(sys.argv[1]), sorted(Path(sys.argv[2]).glob("*.fp"))
with Catalog(catalog, writable=True, create=True) as writer:
    for round_ in range(1000):
        for path in prints:
            writer.add(f"{path.stem}-{round_}", Fingerprint.from_bytes(path.read_bytes()))
            writer.commit()
        if round_ == 0:
            print("committing", flush=True)
"""


def kill_trials(work: Path, seed: int, trials: int) -> dict:
    from nanhu.engine.catalog import Catalog
    from nanhu.engine.check import check_catalog
    from nanhu.engine.errors import NanhuError
    from nanhu.engine.fingerprint import fingerprint_media

    prints = work / "prints"
    prints.mkdir()
    for number in range(3):
        path = write_audio(work / f"k{number}.wav", music_like(6.0, seed=seed + number,
                                                                 sample_rate=RATE), RATE)
        fp = fingerprint_media(path, video=False)
        # a digest per round would be refused as a duplicate: registered without one
        (prints / f"k{number}.fp").write_bytes(dataclasses.replace(fp, digest="").to_bytes())
    script = work / "register.py"
    script.write_text(_REGISTER)
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root)}
    rng = np.random.default_rng(seed)
    outcomes = []
    for trial in range(trials):
        catalog = work / f"kill-{trial}"
        process = subprocess.Popen([sys.executable, str(script), str(catalog), str(prints)],
                                   stdout=subprocess.PIPE, text=True, env=env, cwd=root)
        process.stdout.readline()  # committing: now inside the commit loop
        time.sleep(float(rng.uniform(0.0, 0.5)))  # a random moment to kill at, not a sync
        process.send_signal(signal.SIGKILL)
        process.wait()
        try:
            report = check_catalog(catalog)
            with Catalog(catalog, writable=True) as writer:  # the next writer recovers
                writer.stats()
            outcomes.append((f"trial {trial}", report["ok"], "; ".join(report["problems"])))
        except NanhuError as exc:
            outcomes.append((f"trial {trial}", False, str(exc)))
    return _count("kill -9 during register", outcomes)


def run_reliability(*, seed: int = 0, quick: bool = False, tiny: bool = False) -> dict:
    """Every class; ``{"classes": [...], "seconds": ...}``."""
    from nanhu.benchmarks.reliability_memory import long_self_match
    from nanhu.benchmarks.reliability_recovery import job_budgets, repair_trials

    sizes = {"tiny": (8, 2, 2, 1, 1, 5), "quick": (30, 3, 6, 1, 3, 20),
             "full": (80, 3, 20, 3, 10, 120)}["tiny" if tiny else "quick" if quick else "full"]
    per_file, streams, trials, budget_rounds, repairs, minutes = sizes
    started = time.perf_counter()
    classes = []
    with tempfile.TemporaryDirectory(prefix="nanhu-reliability-") as folder:
        work = Path(folder)
        for step in (lambda w: poisoned_fingerprints(w, seed),
                     lambda w: mutated_files(w, seed, per_file),
                     lambda w: hostile_timestamps(w, seed),
                     lambda w: stalled_streams(w, seed, streams),
                     lambda w: kill_trials(w, seed, trials),
                     lambda w: _count("job budgets", job_budgets(w, seed, budget_rounds)),
                     lambda w: _count("repair (kill -9 mid-repair)",
                                      repair_trials(w, seed, repairs)),
                     lambda w: long_self_match(w, seed, minutes)):
            sub = Path(tempfile.mkdtemp(dir=work))
            classes.append(step(sub))
            log.info("reliability: %s: %d/%d passed", classes[-1]["class"],
                     classes[-1]["passed"], classes[-1]["tried"])
    return {"classes": classes, "seconds": round(time.perf_counter() - started, 1)}


def reliability_markdown(results: dict) -> str:
    lines = ["## Reliability", "", "| class | tried | passed | failed |", "|---|---|---|---|"]
    for c in results["classes"]:
        lines.append(f"| {c['class']} | {c['tried']} | {c['passed']} | {c['failed']} |")
    lines.append("")
    for c in results["classes"]:
        if "slowest" in c:
            lines.append(f"Slowest mutated file: {c['slowest']} ({c['slowest_s']} s); peak "
                         f"resident memory over them {c['peak_mb']} MB, the largest rise "
                         f"{c['largest_rise_mb']} MB ({c['largest_rise']}).")
        if "upload_s" in c:
            lines.append(f"Self-match of a {c['upload_s'] / 60:.0f}-minute upload: peak "
                         f"{c['peak_mb']} MB resident, {c['cpu_s']} s CPU.")
        for failure in c["failures"]:
            lines.append(f"- {c['class']}: {failure}")
    lines.append(f"\nRun time: {results['seconds']} s.")
    return "\n".join(lines) + "\n"


def run_reliability_section(out: Path, *, quick: bool, seed: int,
                            tiny: bool) -> tuple[str, dict]:
    results = run_reliability(seed=seed, quick=quick, tiny=tiny)
    return reliability_markdown(results), results
