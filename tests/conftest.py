"""Shared fixtures: generated songs as files in several codecs, catalogs, and the CLI.

Media is generated once per session (``benchmarks.synth``) and written under pytest's
session temporary directory; nothing is read from the network or the repository. Tests run
with ``--import-mode=importlib``, so helpers reach them as fixtures (``kit``), not imports.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import sqlite3
import struct
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from hypothesis import settings
from scipy import signal

from nanhu import cli as nanhu_cli
from nanhu.benchmarks.synth import music_like, write_audio, write_video
from nanhu.engine.audio.keys import Landmarks
from nanhu.engine.audio.params import AudioParams
from nanhu.engine.catalog import Catalog
from nanhu.engine.fingerprint import Fingerprint, fingerprint_media

# No wall-clock limits in tests: the machines are shared and noisy. Hypothesis' per-example
# deadline is one, so it is off for every property test.
settings.register_profile("nanhu", deadline=None)
settings.load_profile("nanhu")

#: sample rate of the generated signals (Hz)
RATE = 22050
#: length of each generated song (s)
SONG_S = 40.0
#: reference id -> (generator seed, file suffix it is registered from)
SONG_SPECS: dict[str, tuple[int, str]] = {
    "song-0": (101, ".mp3"),
    "song-1": (102, ".flac"),
    "song-2": (103, ".ogg"),
    "song-3": (104, ".m4a"),
}


def excerpt(samples: np.ndarray, start_s: float, end_s: float) -> np.ndarray:
    """samples[start_s:end_s] of a signal at :data:`RATE`."""
    return samples[int(round(start_s * RATE)) : int(round(end_s * RATE))]


def speed_change(samples: np.ndarray, speed: float) -> np.ndarray:
    """Resampling-style speed change: the result plays ``speed`` times faster at the same rate
    (tempo and pitch together), as a sped-up upload does."""
    up = 200
    down = int(round(up * speed))
    return signal.resample_poly(samples.astype(np.float64), up, down).astype(np.float32)


@pytest.fixture(autouse=True)
def _root_log_handlers_restored():
    """Each test leaves the root logger's handlers as it found them. An in-process CLI call
    (``logging.basicConfig``, ``configure_logging``) under pytest's capture would otherwise
    leave a handler writing to a capture stream that is closed once the test ends, and a later
    test's log line (say from the review server's thread) prints a "Logging error"."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    for handler in handlers:
        if handler not in root.handlers:
            root.addHandler(handler)
    root.setLevel(level)


@pytest.fixture(scope="session")
def songs() -> dict[str, np.ndarray]:
    """Reference id -> 40 s of generated music, float32 at :data:`RATE`."""
    return {ref_id: music_like(SONG_S, seed=seed, sample_rate=RATE)
            for ref_id, (seed, _) in SONG_SPECS.items()}


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="session")
def song_files(songs, media_dir) -> dict[str, Path]:
    """Reference id -> the song as a file, each in another codec (mp3, flac, vorbis, aac)."""
    return {ref_id: write_audio(media_dir / f"{ref_id}{SONG_SPECS[ref_id][1]}", songs[ref_id], RATE)
            for ref_id in songs}


@pytest.fixture(scope="session")
def reference_fps(song_files) -> dict[str, Fingerprint]:
    """Reference id -> its fingerprint (computed once; add it to any catalog)."""
    return {ref_id: fingerprint_media(path, video=False) for ref_id, path in song_files.items()}


@pytest.fixture(scope="session")
def registered_catalog(tmp_path_factory, reference_fps) -> Path:
    """A catalog holding every song of :func:`songs`. Read it; never write to it."""
    path = tmp_path_factory.mktemp("registered") / "catalog"
    with Catalog(path, writable=True, create=True) as catalog:
        for ref_id, fp in reference_fps.items():
            catalog.add(ref_id, fp, title=f"Title of {ref_id}")
        catalog.commit()
    return path


@pytest.fixture
def catalog_dir(tmp_path) -> Path:
    """Where a fresh catalog goes (not created yet)."""
    return tmp_path / "catalog"


def write_test_video(path: Path, seconds: float, *, audio: np.ndarray | None,
                     codec: str = "libx264", audio_codec: str = "aac",
                     size: tuple[int, int] = (64, 64)) -> Path:
    """A small video of moving gradients at 4 fps, with ``audio`` (at :data:`RATE`) or none."""
    fps = 4
    n = max(1, int(seconds * fps))
    height, width = size
    y, x = np.mgrid[0:height, 0:width]
    frames = np.stack([
        np.stack([(x * 4 + 9 * i) % 256, (y * 4 + 5 * i) % 256, ((x + y) * 2 + 3 * i) % 256], -1)
        for i in range(n)
    ]).astype(np.uint8)
    return write_video(path, frames, fps, audio=audio, sample_rate=RATE, codec=codec,
                       audio_codec=audio_codec)


@dataclass(frozen=True)
class Kit:
    """Helpers for tests: the signal rate and ways to cut, speed up and encode signals."""

    rate: int
    media_dir: Path

    def excerpt(self, samples: np.ndarray, start_s: float, end_s: float) -> np.ndarray:
        return excerpt(samples, start_s, end_s)

    def speed_change(self, samples: np.ndarray, speed: float) -> np.ndarray:
        return speed_change(samples, speed)

    def path(self, target: str | Path) -> Path:
        """An absolute path as it is; a bare name goes into the session's media folder."""
        return Path(target) if Path(target).is_absolute() else self.media_dir / target

    def write_clip(self, target: str | Path, samples: np.ndarray) -> Path:
        """Encode a signal at ``rate`` (the suffix picks container and codec)."""
        return write_audio(self.path(target), np.asarray(samples, np.float32), RATE)

    def write_video(self, target: str | Path, seconds: float, *, audio: np.ndarray | None,
                    **options) -> Path:
        """A small moving-gradient video, with ``audio`` (at ``rate``) as its soundtrack."""
        return write_test_video(self.path(target), seconds, audio=audio, **options)

    @staticmethod
    def unsupported_codec_wav(path: Path) -> Path:
        """A well-formed WAV file whose audio codec (format tag 0x7777) no decoder knows."""
        data = np.random.default_rng(0).bytes(16000)
        fmt = struct.pack("<HHIIHH", 0x7777, 1, 8000, 16000, 2, 16)
        body = (b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
                + b"data" + struct.pack("<I", len(data)) + data)
        path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
        return path

    @staticmethod
    def catalog_state(path: Path) -> tuple[bytes, dict]:
        return catalog_state(path)

    @staticmethod
    def fingerprint(hashes, frames, *, digest: str, duration_s: float = 60.0) -> Fingerprint:
        """A reference fingerprint made of given landmarks (no media behind it)."""
        hashes = np.asarray(hashes, np.uint32)
        landmarks = Landmarks(hashes, np.asarray(frames, np.int32),
                              np.zeros(hashes.size, np.uint8), np.ones(1, np.float32),
                              np.ones(1, np.float32))
        return Fingerprint(duration_s=duration_s, digest=digest, audio=landmarks,
                           audio_params_tag=AudioParams().tag())


@pytest.fixture(scope="session")
def kit(media_dir) -> Kit:
    return Kit(rate=RATE, media_dir=media_dir)


# --- the command line ------------------------------------------------------------------------
@dataclass
class CliResult:
    code: int
    out: str
    err: str

    @property
    def json_lines(self) -> list[dict]:
        return [json.loads(line) for line in self.out.splitlines() if line.strip()]

    @property
    def err_lines(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.strip()]


@pytest.fixture
def run_cli(capsys) -> Callable[..., CliResult]:
    """run_cli(*argv) -> CliResult: ``nanhu argv`` in-process, stdout/stderr captured."""

    def run(*argv: str | Path) -> CliResult:
        capsys.readouterr()  # drop whatever the test printed before
        code = nanhu_cli.main([str(a) for a in argv])
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


@pytest.fixture(scope="session")
def installed_nanhu() -> Callable[..., CliResult]:
    """run(*argv, cwd=..., env=...) -> CliResult: the installed ``nanhu`` console script, in a
    subprocess (the real entry point, as a user runs it)."""
    script = Path(sys.executable).parent / "nanhu"
    if not script.exists():
        pytest.skip(f"no installed nanhu console script next to {sys.executable}")

    def run(*argv: str | Path, cwd: Path | None = None, env: dict | None = None) -> CliResult:
        environment = {**os.environ, **(env or {})}
        done = subprocess.run([str(script), *map(str, argv)], capture_output=True, text=True,
                              cwd=cwd, env=environment, timeout=120, check=False)
        return CliResult(done.returncode, done.stdout, done.stderr)

    return run


def catalog_state(path: Path) -> tuple[bytes, dict]:
    """What must not change when a command fails: manifest bytes and the catalog's stats."""
    with Catalog(path) as catalog:
        stats = catalog.stats()
        listing = [r.to_dict() for r in catalog.list()]
    return (path / "manifest.json").read_bytes(), {"stats": stats, "list": listing}


# --- catalog tests (tests/engine/test_catalog*.py) ---------------------------------------------
@pytest.fixture
def make_fp(kit):
    """make_fp(seed) -> a reference fingerprint of 400 random landmarks, its own digest."""

    def make(seed: int, n: int = 400):
        rng = np.random.default_rng(seed)
        return kit.fingerprint(rng.integers(0, 1 << 22, n), np.sort(rng.integers(0, 3000, n)),
                               digest=f"digest-{seed}")

    return make


@pytest.fixture
def two_refs(catalog_dir, make_fp) -> Path:
    """A catalog at generation 1 holding ref-a and ref-b."""
    with Catalog(catalog_dir, writable=True, create=True) as catalog:
        catalog.add("ref-a", make_fp(1), title="A", owner="label-1")
        catalog.add("ref-b", make_fp(2), title="B")
        assert catalog.commit() == 1
    return catalog_dir


@pytest.fixture
def lookup_ordinals() -> Callable[[Catalog, Fingerprint], set[int]]:
    def lookup_ordinals(catalog: Catalog, fp) -> set[int]:
        """Ordinals whose postings answer the fingerprint's hashes (tombstones not applied)."""
        _, ordinals, _ = catalog.postings().lookup(np.unique(fp.audio.hashes))
        return set(ordinals.tolist())

    return lookup_ordinals


@pytest.fixture
def rows() -> Callable[[Path], list[tuple]]:
    def rows(path: Path) -> list[tuple]:
        """Every row of the metadata table, committed or not, as SQLite has it."""
        with sqlite3.connect(path / "meta.sqlite") as db:
            return db.execute(
                "SELECT ref_id, generation, deleted_generation FROM refs ORDER BY ordinal").fetchall()

    return rows


@pytest.fixture
def segment_files() -> Callable[[Path], set[str]]:
    def segment_files(path: Path) -> set[str]:
        return {f"{p.parent.name}/{p.name}" for p in path.glob("*/*") if p.is_file()}

    return segment_files


# --- CLI tests (tests/test_cli*.py) ---------------------------------------------------------------
@pytest.fixture
def listed() -> Callable[..., dict[str, dict]]:
    def listed(run_cli, catalog: Path) -> dict[str, dict]:
        result = run_cli("list", "--json", "--catalog", catalog)
        assert result.code == 0, result.err
        return {ref["reference_id"]: ref for ref in result.json_lines}

    return listed


@pytest.fixture
def stats() -> Callable[..., dict]:
    def stats(run_cli, catalog: Path) -> dict:
        result = run_cli("stats", "--json", "--catalog", catalog)
        assert result.code == 0, result.err
        (line,) = result.json_lines
        return line

    return stats


@pytest.fixture
def populated(catalog_dir, reference_fps) -> Path:
    """A catalog holding song-1 (registered through the engine, quickly)."""
    with Catalog(catalog_dir, writable=True, create=True) as catalog:
        catalog.add("song-1", reference_fps["song-1"], title="song-1")
        catalog.commit()
    return catalog_dir


# --- cluster catalogs (tests/engine/cluster, tests/server/test_cluster_ray.py) -------------


@dataclass
class ClusterCorpus:
    """References (songs, tunes, films), queries of them and negatives, and a catalog holding
    every reference unsplit: the twin a cluster's answers are compared with."""

    references: dict[str, Fingerprint]
    queries: dict[str, Fingerprint]
    single: Path


@pytest.fixture(scope="session")
def cluster_corpus(tmp_path_factory, reference_fps, songs) -> ClusterCorpus:
    from nanhu.benchmarks.synth import write_film

    media = tmp_path_factory.mktemp("cluster-media")
    refs: dict[str, Fingerprint] = dict(reference_fps)
    extra = {f"tune-{i}": music_like(30.0, seed=300 + i, sample_rate=RATE) for i in range(6)}
    for ref_id, samples in extra.items():
        refs[ref_id] = fingerprint_media(write_audio(media / f"{ref_id}.flac", samples, RATE),
                                         video=False)
    films = {f"film-{i}": write_film(media / f"film-{i}.mp4", 24.0, seed=40 + i, scale=1)
             for i in range(3)}
    for ref_id, path in films.items():
        refs[ref_id] = fingerprint_media(path)
    queries: dict[str, Fingerprint] = {}
    rng = np.random.default_rng(7)
    every = {**songs, **extra}
    for ref_id, samples in every.items():
        clip = excerpt(samples, 8.0, 16.0)
        noisy = clip + 0.3 * float(np.std(clip)) * rng.standard_normal(clip.size)
        for name, samples_q in (("clean", clip), ("noisy", noisy)):
            path = write_audio(media / f"q-{ref_id}-{name}.mp3", samples_q.astype(np.float32), RATE)
            queries[f"{ref_id}/{name}"] = fingerprint_media(path, query=True, video=False)
    for i in range(4):  # never registered
        path = write_audio(media / f"neg-{i}.mp3", music_like(8.0, seed=900 + i,
                                                               sample_rate=RATE), RATE)
        queries[f"negative-{i}"] = fingerprint_media(path, query=True, video=False)
    for ref_id, path in films.items():
        whole = fingerprint_media(path, query=True)
        queries[f"{ref_id}/fused"] = whole
        queries[f"{ref_id}/video-only"] = dataclasses.replace(whole, audio=None, audio_peaks=None)
    single = tmp_path_factory.mktemp("cluster-single") / "catalog"
    with Catalog(single, writable=True, create=True) as catalog:
        for ref_id, fp in refs.items():
            catalog.add(ref_id, fp, title=ref_id, owner="label")
        catalog.commit()
    return ClusterCorpus(refs, queries, single)


def build_cluster(root: Path, corpus: ClusterCorpus, n_shards: int):
    """The corpus' references registered into a new cluster, each on its placement shard."""
    from nanhu.engine.cluster.layout import init_cluster

    layout = init_cluster(root, n_shards)
    per_shard: dict[int, list[str]] = {}
    for ref_id in corpus.references:
        per_shard.setdefault(layout.shard_for(ref_id), []).append(ref_id)
    for shard, ids in per_shard.items():
        with Catalog(layout.shard_dir(shard), writable=True) as catalog:
            for ref_id in ids:
                catalog.add(ref_id, corpus.references[ref_id], title=ref_id, owner="label")
            catalog.commit()
    return layout


@pytest.fixture(scope="session")
def cluster_kit():
    """(build_cluster, match_rows): make a cluster of the corpus; a matcher's answers as
    comparable tuples (ids, modality, ranges, speed, score, evidence, verdict)."""

    def match_rows(matcher, fp) -> list[tuple]:
        return [(m.reference_id, m.modality, m.query_start_s, m.query_end_s,
                 m.reference_start_s, m.reference_end_s, m.speed, m.score, m.evidence, m.band,
                 m.action, m.matched_s, m.upload_share, m.reference_share)
                for m in matcher.match(fp)]

    return build_cluster, match_rows
