"""The Debian packages that hold the audio corpus's music and speech: fetched, unpacked and
listed as candidate files (:mod:`benchmarks.corpus.audio` analyses and selects them).

Sources (DESIGN.md, "Real media for tests and benchmarks"): the game-music packages in
``MUSIC_SOURCES`` and the speech packages in ``SPEECH_SOURCES`` are fetched with
``apt-get download`` into ``<cache>/debs`` and unpacked with ``dpkg -x`` into
``<cache>/debs/<package>/`` (both skipped when already there). Music inside Quake-style ``.pk3``
zip archives (ufoai-music, nexuiz-music) is extracted next to its archive, into
``<archive>.d/``; its ``member`` reads ``<archive path>!<path inside>``. Files PyAV cannot decode
(tracker modules, a few broken Ogg files) and symlinks (drascula's per-language links) are skipped.

Stems: Frets on Fire songs ship as stems (``song.ogg`` is the backing track, ``guitar.ogg``,
sometimes ``rhythm.ogg``/``drums.ogg``), near-duplicates of each other. Each song becomes one
track, the full mix: all stems summed (peak-normalised only if the sum clips), written as 16-bit
FLAC under ``<cache>/derived/<package>/``; its ``member`` lists the stems joined by ``+``.
"""

from __future__ import annotations

import os
import re
import subprocess
import zipfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import av
import numpy as np

from nanhu.benchmarks.corpus.audio_similarity import ANALYSIS_RATE
from nanhu.benchmarks.corpus.cache import sha256_file
from nanhu.engine.errors import NanhuError


class CorpusError(NanhuError):
    """The audio corpus cannot be fetched, built or read."""


@dataclass(frozen=True)
class Source:
    """Where one Debian package keeps its audio.

    pattern: regex searched in each member path (inside ``archive`` members when set).
    archive: regex of zip archives (``.pk3``) in the package that hold the audio.
    stems: ``pattern`` matches one file per song directory; the directory's ``*.ogg`` are mixed.
    """

    package: str
    prefix: str
    pattern: str
    archive: str | None = None
    stems: bool = False


MUSIC_SOURCES: tuple[Source, ...] = (
    Source("warzone2100-music", "wz2100", r"/music/.*\.opus$"),
    Source("singularity-music", "singularity", r"/music/.*\.ogg$"),
    Source("drascula-music", "drascula", r"/drascula/audio/track\d+\.ogg$"),
    Source("flare-game", "flare", r"/music/.*\.ogg$"),
    Source("freedroidrpg-data", "freedroid", r"/sound/music/.*\.ogg$"),
    Source("hedgewars-data", "hedgewars", r"/Data/Music/.*\.ogg$"),
    Source("fretsonfire-songs-muldjord", "fof-muldjord", r"/songs/.*/song\.ogg$", stems=True),
    Source("fretsonfire-songs-sectoid", "fof-sectoid", r"/songs/.*/song\.ogg$", stems=True),
    Source("wesnoth-1.16-music", "wesnoth", r"/music/.*\.ogg$"),
    Source("ufoai-music", "ufoai", r"^music/.*\.ogg$", archive=r"\.pk3$"),
    Source("nexuiz-music", "nexuiz", r"^sound/cdtracks/.*\.ogg$", archive=r"\.pk3$"),
    Source("colobot-common-sounds", "colobot", r"/music/.*\.ogg$"),
    Source("planetblupi-music-ogg", "blupi", r"/music/.*\.ogg$"),
    Source("pushover-data", "pushover", r"/themes/.*\.ogg$"),
    Source("fillets-ng-data", "fillets", r"/music/.*\.ogg$"),
    Source("hyperrogue-music", "hyperrogue", r"/music/.*\.ogg$"),
    Source("asc-music", "asc", r"/music/.*\.mp3$"),
)
SPEECH_SOURCES: tuple[Source, ...] = (
    Source("festvox-ru", "festvox-ru", r"/wav/.*\.wav$"),
    Source("fillets-ng-data-cs", "fillets-cs", r"/cs/.*\.ogg$"),
    Source("tuxpaint-stamps-default", "tuxpaint", r"_desc(_[a-z]+)?\.ogg$"),
)


@dataclass(frozen=True)
class Candidate:
    """One audio file (or mixed song) offered by a source, before analysis."""

    id: str
    path: Path
    package: str
    member: str

def fetch_package(name: str, cache: Path) -> tuple[dict, Path]:
    """Download (once) and unpack (once) a Debian package; returns its record and root."""
    debs = cache / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    found = sorted(debs.glob(f"{name}_*.deb"))
    if not found:
        run = subprocess.run(["apt-get", "download", name], cwd=debs, capture_output=True,
                             text=True, check=False)
        found = sorted(debs.glob(f"{name}_*.deb"))
        if run.returncode != 0 or not found:
            raise CorpusError(f"apt-get download {name} failed: {run.stderr.strip()[-500:]}")
    deb = found[-1]
    version = subprocess.run(["dpkg-deb", "-f", str(deb), "Version"], capture_output=True,
                             text=True, check=True).stdout.strip()
    record = {"name": name, "version": version, "sha256": sha256_file(deb)}
    root = debs / name
    marker = root / ".nanhu-unpacked"
    if not marker.exists() or marker.read_text() != record["sha256"]:
        root.mkdir(exist_ok=True)
        subprocess.run(["dpkg", "-x", str(deb), str(root)], check=True)
        marker.write_text(record["sha256"])
    return record, root


def slug(text: str) -> str:
    """Lower-case, filesystem-safe token: runs of other characters become one '-'."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def unique_ids(prefix: str, keys: Sequence[str]) -> list[str]:
    """``prefix-<file stem>``, with parent folders added only where stems collide."""
    parts = [[slug(p) for p in PurePosixPath(key.split("!")[-1]).with_suffix("").parts]
             for key in keys]
    parts = [[p for p in ps if p] or ["track"] for ps in parts]
    depth = [1] * len(keys)
    while True:
        ids = [f"{prefix}-" + "-".join(ps[-d:]) for ps, d in zip(parts, depth, strict=True)]
        counts = Counter(ids)
        grow = [n for n, i in enumerate(ids) if counts[i] > 1 and depth[n] < len(parts[n])]
        if not grow:
            break
        for n in grow:
            depth[n] += 1
    used = set(ids)
    for n, i in enumerate(ids):
        if counts[i] > 1:  # same path twice: number them in order
            k = 1
            while f"{i}-{k}" in used:
                k += 1
            ids[n] = f"{i}-{k}"
            used.add(ids[n])
    return ids


def _archive_members(root: Path, source: Source) -> list[tuple[str, Path]]:
    """Extract (once) the audio members of the package's zip archives; (member, path) pairs."""
    out = []
    archives = (p for p in root.rglob("*") if p.is_file() and re.search(source.archive, p.name))
    for archive in sorted(archives):
        target = archive.with_name(archive.name + ".d")
        with zipfile.ZipFile(archive) as zipped:
            for info in sorted(zipped.infolist(), key=lambda i: i.filename):
                inner = PurePosixPath(info.filename)
                if info.is_dir() or ".." in inner.parts or not re.search(source.pattern,
                                                                          info.filename):
                    continue
                path = target / inner
                if not path.exists() or path.stat().st_size != info.file_size:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_bytes(zipped.read(info))
                out.append((f"{archive.relative_to(root).as_posix()}!{info.filename}", path))
    return out


def mix_stems(stems: Sequence[Path], out: Path) -> None:
    """Sum stems at 44.1 kHz stereo into a 16-bit FLAC (peak-normalised only if it clips)."""
    rate = 44100
    tracks = [decode(p, sample_rate=rate, channels=2) for p in stems]
    mix = np.zeros((max(t.shape[0] for t in tracks), 2), np.float32)
    for track in tracks:
        mix[: track.shape[0]] += track
    mix /= max(1.0, float(np.abs(mix).max()) / 0.999)
    pcm = np.round(mix * 32767).astype(np.int16).reshape(1, -1)
    tmp = out.with_name(out.name + ".tmp")
    out.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(tmp), "w", format="flac") as container:
        stream = container.add_stream("flac", rate=rate, layout="stereo")
        stream.format = "s16"
        for start in range(0, mix.shape[0], 4608):
            chunk = np.ascontiguousarray(pcm[:, 2 * start: 2 * (start + 4608)])
            frame = av.AudioFrame.from_ndarray(chunk, format="s16", layout="stereo")
            frame.sample_rate = rate
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    os.replace(tmp, out)


def list_candidates(source: Source, root: Path, cache: Path) -> list[Candidate]:
    """Audio offered by one unpacked package, sorted by member path, ids assigned."""
    if source.archive:
        pairs = _archive_members(root, source)
    else:
        pairs = [(p.relative_to(root).as_posix(), p) for p in sorted(root.rglob("*"))
                 if p.is_file() and not p.is_symlink()
                 and re.search(source.pattern, p.relative_to(root).as_posix())]
    if source.stems:
        mixed = []
        for member, path in pairs:
            stems = sorted(path.parent.glob("*.ogg"))
            out = cache / "derived" / source.package / f"{slug(path.parent.name)}.flac"
            if not out.exists():
                mix_stems(stems, out)
            names = "+".join(s.name for s in stems)
            mixed.append((f"{PurePosixPath(member).parent}/{names}", out))
        pairs = mixed
    keys = [m.rsplit("/", 1)[0] if source.stems else m for m, _ in pairs]
    ids = unique_ids(source.prefix, keys)
    return [Candidate(i, p, source.package, m) for i, (m, p) in zip(ids, pairs, strict=True)]


def decode(path: Path, *, sample_rate: int = ANALYSIS_RATE, channels: int = 1) -> np.ndarray:
    """Decode a file's first audio stream with PyAV.

    Returns float32 [shape=(n,)] for mono, else [shape=(n, channels)], in [-1, 1], at sample_rate.
    Raises av.FFmpegError (e.g. InvalidDataError) when PyAV cannot decode it.
    """
    layout = "mono" if channels == 1 else "stereo"
    resampler = av.AudioResampler(format="flt", layout=layout, rate=sample_rate)
    parts = []
    with av.open(str(path)) as container:
        for frame in container.decode(audio=0):
            parts.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(frame))
    parts.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(None))
    samples = np.concatenate(parts) if parts else np.zeros(0, np.float32)
    return samples.astype(np.float32) if channels == 1 else samples.reshape(-1, channels)
