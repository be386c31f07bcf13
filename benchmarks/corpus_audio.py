"""Real-music audio corpus for the audio recall benchmark, built from Debian packages.

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

Selection: music tracks of at least ``MIN_MUSIC_S`` seconds, exact copies (same sha256) and
near-duplicates removed, are split deterministically (sorted inputs, ``seed``): a share of
every package, by largest remainders, becomes never-registered ``negatives`` (at least
``min_negatives``), the rest ``references``. Speech (``speech``) is a seeded sample of at most
``max_speech_per_package`` files per package, for babble noise and fillers, never references.

Near-duplicates (the same music in two packages, remasters, edits) are found in two stages.
Candidates, cheaply: every track is decoded at 8 kHz mono and reduced to 12-bin log-chroma blocks
(0.576 s long, one every 0.256 s). A window is 16 blocks 0.512 s apart (8.3 s), centred per bin
over time (removing EQ and static drones) and unit-normalised, so that the dot product of two
windows is a normalised cross-correlation. Query windows of each track, one every 8.2 s, meet the
windows of every other track at every 0.256 s offset; a pair is a candidate when ``MIN_VOTES``
query windows reach ``DUPLICATE_SIMILARITY`` at one lag (within ``LAG_TOLERANCE`` blocks). Chroma
alone cannot tell a copy from a re-arrangement of the same notes (on this corpus a remaster scored
0.81 and two tracks sharing no audio 0.87), so a candidate lag is confirmed on what a landmark
fingerprint sees: the spectral peaks (16 ms x 15.6 Hz, local maxima over 9x9) of 8-s segments of
one track, searched +-0.64 s around the lag in the other; a segment is shared when ``SHARED_PEAKS``
of its peaks reappear within one frame and one bin (copies keep 0.4-0.7, unrelated music about
0.1). Two tracks are duplicates when ``MIN_VOTES`` segments (16 s) are shared. Duplicates are
grouped transitively and one track per group is kept, the one with the most distinct material (loop
period if it loops, else its length; then the smaller id); the others are listed under ``dropped``
with the id they duplicate.

Loops: game music often repeats itself. The same chroma windows are matched within each track
at lags over ``MIN_LOOP_S`` (threshold ``REPEAT_SIMILARITY``), and each candidate lag is
confirmed with spectral peaks as above: a repeat is a lag at which ``MIN_VOTES`` query windows
reappear. Its lag is refined to the sample by waveform cross-correlation when the repeat is an
exact copy (else to 16 ms), and its coverage is the share of the track's windows that reappear
there. ``repeat_lags_s`` lists every repeat, best covered first, and ``loop_period_s`` is the
best covered lag if it covers ``LOOP_COVERAGE`` of the track (the track is essentially one
phrase played over and over), else null. A benchmark should accept a match at reference offset
``t + k * loop_period_s`` (any integer k) for a query cut at ``t``, and may likewise accept
``t +- lag`` for the local repeats in ``repeat_lags_s``: the audio there is the same.

Manifest ``<cache>/audio-corpus.json`` (``MANIFEST_VERSION``)::

    {"version": 1, "seed": 0,
     "packages": [{"name", "version", "sha256"}],
     "references" | "negatives" | "speech": [{"id", "path", "package", "member", "sha256",
                                              "duration_s", "loop_period_s", "repeat_lags_s"}],
     "dropped": [{"id", "package", "member", "reason", "duplicate_of", "shared_s"}]}

``path`` is absolute, into the cache; ``id`` is unique and filesystem-safe (``wz2100-track25``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import subprocess
import sys
import zipfile
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import NamedTuple

import av
import numpy as np
from scipy import fft as sp_fft
from scipy import ndimage
from scipy import signal as sps

from engine.errors import NanhuError

log = logging.getLogger(__name__)

MANIFEST_VERSION = 1
MANIFEST_NAME = "audio-corpus.json"
MIN_MUSIC_S = 20.0
MIN_SPEECH_S = 1.0
ANALYSIS_RATE = 8000  # Hz
FRAME_LEN = 1024  # samples: 128 ms
FRAME_HOP = 512  # samples: 64 ms
BLOCK_FRAMES = 8  # frames summed per chroma block (0.576 s)
BLOCK_STEP = 4  # frames between blocks
BLOCK_HOP = FRAME_HOP * BLOCK_STEP  # samples between blocks: 2048 = 0.256 s
BLOCK_S = BLOCK_HOP / ANALYSIS_RATE
WINDOW_BLOCKS = 16  # blocks per window
WINDOW_STRIDE = 2  # blocks between a window's blocks: span 31 blocks, 8.3 s
QUERY_STEP = 32  # blocks between query windows: 8.2 s
MIN_WINDOW_NORM = 2.0  # centred log-chroma; flatter windows (silence, drones) never match
DUPLICATE_SIMILARITY = 0.75  # chroma candidates; spectral peaks decide
CANDIDATE_LAGS = 3  # best-supported chroma lags verified per candidate pair
REPEAT_SIMILARITY = 0.85
MIN_VOTES = 2
LAG_TOLERANCE = 2  # blocks
MIN_LOOP_S = 10.0
PEAK_FRAME_LEN = 512  # samples: 64 ms
PEAK_HOP = 128  # samples: 16 ms
PEAK_S = PEAK_HOP / ANALYSIS_RATE
FRAMES_PER_BLOCK = BLOCK_HOP // PEAK_HOP
PEAK_NEIGHBOURHOOD = (9, 9)  # frames, bins
PEAK_RANGE_DB = 60.0
SEGMENT_FRAMES = 500  # peak frames per compared segment: 8 s
PEAK_SEARCH = 40  # frames (0.64 s) searched either side of a chroma lag
SHARED_PEAKS = 0.3  # share of a segment's peaks found again in a copy; unrelated music ~0.1
LOOP_COVERAGE = 0.5  # share of a track repeating at one lag for that lag to be its loop

Progress = Callable[[str, int, int], None]


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


def cache_dir() -> Path:
    """The media cache: ``$NANHU_CACHE``, else ``~/.cache/nanhu``."""
    return Path(os.environ.get("NANHU_CACHE") or Path.home() / ".cache" / "nanhu")


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


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


_CHROMA: np.ndarray | None = None


def chroma_blocks(samples: np.ndarray) -> np.ndarray:
    """Log-chroma blocks of an 8 kHz mono signal.

    samples : float32 [shape=(n,)] at ANALYSIS_RATE.
    Returns float32 [shape=(n_blocks, 12)]: natural-log chroma energy of 0.576-s blocks, one
    every BLOCK_S = 0.256 s, centred over the 12 bins; silent blocks are all zero.
    """
    global _CHROMA
    if _CHROMA is None:
        import librosa  # slow import, needed only here

        _CHROMA = librosa.filters.chroma(sr=ANALYSIS_RATE, n_fft=FRAME_LEN).astype(np.float32)
    if len(samples) < FRAME_LEN + (BLOCK_FRAMES - 1) * FRAME_HOP:
        return np.zeros((0, 12), np.float32)
    frames = np.lib.stride_tricks.sliding_window_view(samples, FRAME_LEN)[::FRAME_HOP]
    power = np.abs(sp_fft.rfft(frames * np.hanning(FRAME_LEN).astype(np.float32), axis=1)) ** 2
    chroma = (power.astype(np.float32) @ _CHROMA.T).astype(np.float64)  # (n_frames, 12)
    total = np.concatenate([np.zeros((1, 12)), np.cumsum(chroma, axis=0)])
    starts = np.arange(0, len(chroma) - BLOCK_FRAMES + 1, BLOCK_STEP)
    blocks = total[starts + BLOCK_FRAMES] - total[starts]
    energy = blocks.sum(axis=1)
    floor = 1e-3 * energy.mean() / 12 + 1e-12
    logs = np.log(blocks + floor)
    logs -= logs.mean(axis=1, keepdims=True)
    logs[energy < 1e-4 * energy.mean()] = 0.0
    return logs.astype(np.float32)


def window_vectors(blocks: np.ndarray, *, start_step: int) -> tuple[np.ndarray, np.ndarray]:
    """Unit-norm, per-bin-centred windows of WINDOW_BLOCKS blocks WINDOW_STRIDE apart.

    blocks : float32 [shape=(n_blocks, 12)] from chroma_blocks.
    Returns (starts int64[k] in blocks, vectors float32[k, 12 * WINDOW_BLOCKS]); windows too
    flat to mean anything (norm < MIN_WINDOW_NORM) are left out.
    """
    span = (WINDOW_BLOCKS - 1) * WINDOW_STRIDE + 1
    starts = np.arange(0, len(blocks) - span + 1, start_step)
    if not len(starts):
        return starts, np.zeros((0, 12 * WINDOW_BLOCKS), np.float32)
    windows = blocks[starts[:, None] + WINDOW_STRIDE * np.arange(WINDOW_BLOCKS)]  # (k, W, 12)
    windows = (windows - windows.mean(axis=1, keepdims=True)).reshape(len(starts), -1)
    norms = np.linalg.norm(windows, axis=1)
    keep = norms >= MIN_WINDOW_NORM
    return starts[keep], (windows[keep] / norms[keep, None]).astype(np.float32)


def lag_clusters(queries: np.ndarray, lags: np.ndarray) -> list[tuple[int, int]]:
    """Cluster matched lags: neighbours within LAG_TOLERANCE blocks join one cluster.

    queries, lags : int [shape=(n,)], the matching query window and its lag in blocks.
    Returns (median lag in blocks, distinct query windows) per cluster, most supported first.
    """
    order = np.argsort(lags, kind="stable")
    cuts = np.flatnonzero(np.diff(lags[order]) > LAG_TOLERANCE) + 1
    clusters = [(round(float(np.median(lags[m]))), len(np.unique(queries[m])))
                for m in np.split(order, cuts) if len(m)]
    return sorted(clusters, key=lambda c: (-c[1], c[0]))


def spectral_peaks(samples: np.ndarray) -> np.ndarray:
    """Constellation of an 8 kHz mono signal, as a landmark fingerprint would see it.

    samples : float32 [shape=(n,)] at ANALYSIS_RATE.
    Returns bool [shape=(n_frames, PEAK_FRAME_LEN // 2 + 1)], one frame every PEAK_HOP samples
    (16 ms): local maxima over PEAK_NEIGHBOURHOOD of the dB spectrogram, within PEAK_RANGE_DB
    of its maximum.
    """
    if len(samples) < PEAK_FRAME_LEN:
        return np.zeros((0, PEAK_FRAME_LEN // 2 + 1), bool)
    frames = np.lib.stride_tricks.sliding_window_view(samples, PEAK_FRAME_LEN)[::PEAK_HOP]
    window = np.hanning(PEAK_FRAME_LEN).astype(np.float32)
    spec = np.concatenate([  # chunked to bound memory on long tracks
        20 * np.log10(np.abs(sp_fft.rfft(frames[i: i + 8192] * window, axis=1)) + 1e-6)
        for i in range(0, len(frames), 8192)]).astype(np.float32)
    return (spec == ndimage.maximum_filter(spec, size=PEAK_NEIGHBOURHOOD)) & (
        spec > spec.max() - PEAK_RANGE_DB)


def near_peaks(peaks: np.ndarray) -> np.ndarray:
    """Peaks widened by one frame and one bin each way: bool, same shape as ``peaks``."""
    return ndimage.binary_dilation(peaks, structure=np.ones((3, 3), bool))


def shared_peaks(peaks_a: np.ndarray, near_b: np.ndarray, starts: np.ndarray, lag: int, *,
                 search: int = PEAK_SEARCH) -> tuple[np.ndarray, np.ndarray]:
    """How much of each segment of a reappears in b at ``lag`` frames (+-search).

    peaks_a : bool [shape=(n_frames, n_bins)] from spectral_peaks; near_b : near_peaks of b.
    starts : int [shape=(k,)], segment starts (frames) in a; segments are SEGMENT_FRAMES long.
    Returns (share float64[k]: best share of the segment's peaks that b has within one frame
    and one bin, NaN where b has no such segment or a's has under 20 peaks; offset int64[k]:
    the lag in frames that achieved it).
    """
    shares = np.full(len(starts), np.nan)
    offsets = np.full(len(starts), lag, np.int64)
    for n, start in enumerate(starts):
        segment = peaks_a[start: start + SEGMENT_FRAMES]
        frame, bin_ = np.nonzero(segment)
        tries = lag + np.arange(-search, search + 1)
        tries = tries[(start + tries >= 0) & (start + tries + len(segment) <= len(near_b))]
        if len(frame) < 20 or not len(tries):
            continue
        found = near_b[start + frame[:, None] + tries[None, :], bin_[:, None]].mean(axis=0)
        shares[n], offsets[n] = found.max(), tries[np.argmax(found)]
    return shares, offsets


class Repeat(NamedTuple):
    """A lag at which a track repeats itself, and the share of its windows that recur there."""

    lag_s: float
    coverage: float


def find_repeats(samples: np.ndarray, blocks: np.ndarray | None = None,
                 peaks: np.ndarray | None = None) -> list[Repeat]:
    """Lags at which a track repeats its own audio, highest coverage first.

    samples : float32 [shape=(n,)] at ANALYSIS_RATE; blocks, peaks : its chroma_blocks and
    spectral_peaks (computed when not given).
    Candidate lags over MIN_LOOP_S come from query windows matching at REPEAT_SIMILARITY;
    a lag counts when MIN_VOTES query windows share SHARED_PEAKS of their peaks there.
    coverage: the share of query windows with a partner at that lag inside the track that
    share it (1.0 for a track that is one phrase played over and over).
    """
    blocks = chroma_blocks(samples) if blocks is None else blocks
    q_starts, queries = window_vectors(blocks, start_step=QUERY_STEP)
    d_starts, windows = window_vectors(blocks, start_step=1)
    if not len(q_starts) or not len(d_starts):
        return []
    peaks = spectral_peaks(samples) if peaks is None else peaks
    sim = queries @ windows.T
    lag = d_starts[None, :] - q_starts[:, None]
    rows, cols = np.nonzero((sim >= REPEAT_SIMILARITY) & (np.abs(lag) >= MIN_LOOP_S / BLOCK_S))
    segments = q_starts * FRAMES_PER_BLOCK
    near = near_peaks(peaks)
    repeats = []
    for centre, votes in lag_clusters(rows, np.abs(lag[rows, cols])):
        if votes < MIN_VOTES:
            break
        ahead, ahead_lag = shared_peaks(peaks, near, segments, centre * FRAMES_PER_BLOCK)
        behind, behind_lag = shared_peaks(peaks, near, segments, -centre * FRAMES_PER_BLOCK)
        share = np.fmax(ahead, behind)  # NaN only where neither partner exists
        shared = np.nan_to_num(share) >= SHARED_PEAKS
        if shared.sum() < MIN_VOTES:
            continue
        best = int(np.nanargmax(share))
        offset = ahead_lag[best] if share[best] == ahead[best] else behind_lag[best]
        earlier, later = sorted((int(segments[best]), int(segments[best] + offset)))
        coverage = round(float(shared.sum() / np.count_nonzero(~np.isnan(share))), 3)
        lag_s = refine_lag(samples, earlier * PEAK_HOP, later * PEAK_HOP)
        if all(abs(lag_s - r.lag_s) > 2 * PEAK_S for r in repeats):  # neighbouring clusters
            repeats.append(Repeat(lag_s, coverage))
    return sorted(repeats, key=lambda r: (-r.coverage, r.lag_s))


def refine_lag(samples: np.ndarray, earlier: int, later: int, *, slack: int = 400) -> float:
    """Lag (s) between two repeats of a segment, sample-exact when the repeat is exact.

    earlier, later : approximate start samples of the two repeats (8 kHz mono samples).
    Searches +-slack samples by normalised waveform cross-correlation; keeps the given lag when
    the best correlation is under 0.5 (a re-rendered rather than copied repeat).
    """
    length = SEGMENT_FRAMES * PEAK_HOP
    a = samples[earlier: earlier + length].astype(np.float64)
    low = max(later - slack, 0)
    b = samples[low: later + length + slack].astype(np.float64)
    coarse = (later - earlier) / ANALYSIS_RATE
    if len(b) <= len(a) or not a.any():
        return round(coarse, 3)
    corr = sps.correlate(b, a, mode="valid", method="fft")
    energy = np.concatenate([[0.0], np.cumsum(b * b)])
    local = energy[len(a):] - energy[: len(energy) - len(a)]
    ncc = corr / np.sqrt(np.maximum(local, 1e-12) * (a @ a))
    k = int(np.argmax(ncc))
    return round((low + k - earlier) / ANALYSIS_RATE if ncc[k] >= 0.5 else coarse, 3)


@dataclass(frozen=True)
class DuplicatePair:
    """Two tracks sharing audio (indexes into the analysed list, first < second).

    shared_s: seconds of first found in second; peak_share: median share of spectral peaks
    kept in those segments; lag_s: offset of the shared audio in second minus that in first.
    """

    first: int
    second: int
    shared_s: float
    peak_share: float
    lag_s: float


def duplicate_candidates(block_seqs: Sequence[np.ndarray], *,
                         chunk: int = 64) -> dict[tuple[int, int], list[int]]:
    """Pairs of tracks whose chroma windows match at DUPLICATE_SIMILARITY on MIN_VOTES windows.

    block_seqs : per track, float32 [shape=(n_blocks, 12)] from chroma_blocks.
    Query windows of each track meet every window of every other track (exhaustive, chunked
    matrix products). Returns {(first, second): lags in blocks (offset in second minus offset
    in first), most supported first}.
    """
    q_parts, d_parts = [], []
    for track, blocks in enumerate(block_seqs):
        for parts, step in ((q_parts, QUERY_STEP), (d_parts, 1)):
            starts, vectors = window_vectors(blocks, start_step=step)
            parts.append((np.full(len(starts), track), starts, vectors))
    if not q_parts:
        return {}
    q_track, q_start, queries = (np.concatenate(x) for x in zip(*q_parts, strict=True))
    d_track, d_start, windows = (np.concatenate(x) for x in zip(*d_parts, strict=True))
    hits = [np.zeros((0, 4), np.int64)]  # rows: first, second, query window, lag (blocks)
    for low in range(0, len(queries), chunk):
        rows, cols = np.nonzero(queries[low: low + chunk] @ windows.T >= DUPLICATE_SIMILARITY)
        query = low + rows
        a, b, lag = q_track[query], d_track[cols], d_start[cols] - q_start[query]
        other = a != b
        flip = a > b
        hits.append(np.stack([np.where(flip, b, a), np.where(flip, a, b), query,
                              np.where(flip, -lag, lag)], axis=1)[other])
    table = np.concatenate(hits)
    candidates = {}
    for first, second in np.unique(table[:, :2], axis=0):
        sel = table[(table[:, 0] == first) & (table[:, 1] == second)]
        lags = [lag for lag, votes in lag_clusters(sel[:, 2], sel[:, 3]) if votes >= MIN_VOTES]
        if lags:
            candidates[(int(first), int(second))] = lags[:CANDIDATE_LAGS]
    return candidates


def find_duplicates(block_seqs: Sequence[np.ndarray],
                    load: Callable[[int], np.ndarray]) -> list[DuplicatePair]:
    """Pairs of tracks sharing at least MIN_VOTES segments (8 s) of audio at one lag.

    block_seqs : per track, chroma_blocks; load(i) : track i's samples (float32, 8 kHz mono),
    called only for candidate pairs. A candidate lag is confirmed when segments of the first
    track keep SHARED_PEAKS of their spectral peaks in the second (unrelated music: ~0.1).
    """
    cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def peaks_of(track: int) -> tuple[np.ndarray, np.ndarray]:
        if track not in cache:
            if len(cache) >= 16:
                cache.pop(next(iter(cache)))
            peaks = spectral_peaks(load(track))
            cache[track] = peaks, near_peaks(peaks)
        return cache[track]

    candidates = duplicate_candidates(block_seqs)
    log.info("verifying %d duplicate candidates", len(candidates))
    pairs = []
    for (first, second), lags in sorted(candidates.items()):
        peaks_a, near_b = peaks_of(first)[0], peaks_of(second)[1]
        starts = np.arange(0, len(peaks_a) - SEGMENT_FRAMES + 1, SEGMENT_FRAMES)
        for lag in lags:
            share, offset = shared_peaks(peaks_a, near_b, starts, lag * FRAMES_PER_BLOCK)
            shared = np.nan_to_num(share) >= SHARED_PEAKS
            if shared.sum() >= MIN_VOTES:
                pairs.append(DuplicatePair(
                    first, second, round(float(shared.sum() * SEGMENT_FRAMES * PEAK_S), 1),
                    round(float(np.median(share[shared])), 3),
                    round(float(np.median(offset[shared]) * PEAK_S), 3)))
                break
    return pairs


def duplicate_groups(n_tracks: int, pairs: Sequence[DuplicatePair]) -> list[list[int]]:
    """Connected components (sorted lists of track indexes) of the duplicate graph, size > 1."""
    parent = list(range(n_tracks))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for pair in pairs:
        parent[root(pair.second)] = root(pair.first)
    groups: dict[int, list[int]] = {}
    for i in range(n_tracks):
        groups.setdefault(root(i), []).append(i)
    return [g for g in groups.values() if len(g) > 1]


def split_tracks(tracks: Sequence[dict], *, seed: int, negative_fraction: float = 0.15,
                 min_negatives: int = 30) -> tuple[list[dict], list[dict]]:
    """Deterministic (references, negatives) split, stratified by package.

    Each package gives negatives in proportion to its track count (largest remainders, ties
    by package name) but keeps at least one reference. Both lists come sorted by id.
    """
    by_package: dict[str, list[dict]] = {}
    for track in sorted(tracks, key=lambda t: t["id"]):
        by_package.setdefault(track["package"], []).append(track)
    wanted = min(max(min_negatives, round(negative_fraction * len(tracks))),
                 len(tracks) - len(by_package))
    names = sorted(by_package)
    exact = {n: wanted * len(by_package[n]) / max(len(tracks), 1) for n in names}
    quota = {n: min(math.floor(exact[n]), len(by_package[n]) - 1) for n in names}
    for name in sorted(names, key=lambda n: (-(exact[n] - math.floor(exact[n])), n)):
        if sum(quota.values()) >= wanted:
            break
        quota[name] = min(quota[name] + 1, len(by_package[name]) - 1)
    rng = np.random.default_rng(seed)
    references, negatives = [], []
    for name in names:
        chosen = set(rng.permutation(len(by_package[name]))[: quota[name]].tolist())
        for n, track in enumerate(by_package[name]):
            (negatives if n in chosen else references).append(track)
    return (sorted(references, key=lambda t: t["id"]), sorted(negatives, key=lambda t: t["id"]))


def probe_duration(path: Path) -> float | None:
    """Duration (s) from the container, None if PyAV cannot open it."""
    try:
        with av.open(str(path)) as container:
            if container.duration:
                return container.duration / 1e6
            stream = container.streams.audio[0]
            return float(stream.duration * stream.time_base) if stream.duration else None
    except (av.FFmpegError, IndexError):
        return None


def loop_period(repeats: Sequence[Repeat]) -> float | None:
    """Lag (s) of the best-covered repeat if it spans LOOP_COVERAGE of the track, else None."""
    loops = [r for r in repeats if r.coverage >= LOOP_COVERAGE]
    return min(loops, key=lambda r: (-r.coverage, r.lag_s)).lag_s if loops else None


def _entry(candidate: Candidate, duration_s: float, repeats: Sequence[Repeat] = (),
           sha256: str | None = None) -> dict:
    return {"id": candidate.id, "path": str(candidate.path.resolve()),
            "package": candidate.package, "member": candidate.member,
            "sha256": sha256 or sha256_file(candidate.path), "duration_s": round(duration_s, 3),
            "loop_period_s": loop_period(repeats),
            "repeat_lags_s": [r.lag_s for r in repeats]}


def select_speech(candidates: Sequence[Candidate], *, seed: int, limit: int) -> list[dict]:
    """A seeded sample of at most ``limit`` decodable speech files of MIN_SPEECH_S or more."""
    out = []
    for n in np.random.default_rng(seed).permutation(len(candidates)):
        duration = probe_duration(candidates[n].path)
        if duration is not None and duration >= MIN_SPEECH_S:
            out.append(_entry(candidates[n], duration))
            if len(out) == limit:
                break
    return sorted(out, key=lambda e: e["id"])


def write_manifest(manifest: dict, path: Path) -> None:
    """Write the manifest atomically (temporary file, then rename)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=1, sort_keys=False) + "\n")
    os.replace(tmp, path)


def read_manifest(path: Path) -> dict:
    """Read a manifest, refusing other versions."""
    manifest = json.loads(path.read_text())
    if manifest.get("version") != MANIFEST_VERSION:
        raise CorpusError(f"{path}: audio corpus version {manifest.get('version')!r}, expected "
                          f"{MANIFEST_VERSION}; delete it to rebuild")
    return manifest


def _analyse(candidates: Sequence[Candidate], progress: Progress | None
             ) -> tuple[list[dict], list[np.ndarray], list[dict]]:
    """Decode every candidate; drop undecodable, short and exact copies; find repeats."""
    kept, blocks, dropped, by_digest = [], [], [], {}
    for n, cand in enumerate(candidates):
        if progress:
            progress("analyse", n, len(candidates))
        digest = sha256_file(cand.path)
        if digest in by_digest:
            dropped.append({"id": cand.id, "package": cand.package, "member": cand.member,
                            "reason": "exact copy", "duplicate_of": by_digest[digest],
                            "shared_s": None})
            continue
        by_digest[digest] = cand.id
        try:
            samples = decode(cand.path)
        except av.FFmpegError as exc:
            log.warning("skipping %s: PyAV cannot decode it (%s)", cand.path, exc)
            continue
        if len(samples) < MIN_MUSIC_S * ANALYSIS_RATE:
            continue
        seq = chroma_blocks(samples)
        kept.append(_entry(cand, len(samples) / ANALYSIS_RATE, find_repeats(samples, seq),
                           digest))
        blocks.append(seq)
    return kept, blocks, dropped


def _drop_duplicates(tracks: list[dict], blocks: Sequence[np.ndarray],
                     dropped: list[dict]) -> list[dict]:
    """Keep one track per duplicate group: the most distinct material, then the smaller id."""
    pairs = find_duplicates(blocks, lambda i: decode(Path(tracks[i]["path"])))
    for pair in pairs:
        log.info("duplicate: %s ~ %s (%.0f s shared, %.0f%% of peaks, lag %.2f s)",
                 tracks[pair.first]["id"], tracks[pair.second]["id"], pair.shared_s,
                 100 * pair.peak_share, pair.lag_s)
    shared = {(p.first, p.second): p.shared_s for p in pairs}
    drop = set()
    for group in duplicate_groups(len(tracks), pairs):
        def material(i: int) -> tuple[float, str]:
            return (-(tracks[i]["loop_period_s"] or tracks[i]["duration_s"]), tracks[i]["id"])

        keep = min(group, key=material)
        for i in sorted(set(group) - {keep}):
            drop.add(i)
            dropped.append({"id": tracks[i]["id"], "package": tracks[i]["package"],
                            "member": tracks[i]["member"], "reason": "near duplicate",
                            "duplicate_of": tracks[keep]["id"],
                            "shared_s": shared.get((min(i, keep), max(i, keep)))})
    return [t for i, t in enumerate(tracks) if i not in drop]


def build_audio_corpus(cache: Path | None = None, *, seed: int = 0,
                       progress: Progress | None = None, negative_fraction: float = 0.15,
                       min_negatives: int = 30, max_speech_per_package: int = 200) -> dict:
    """Fetch the packages, analyse and split the music, write and return the manifest.

    progress(stage, done, total) is called as work advances (stages: fetch, analyse, speech).
    """
    cache = Path(cache) if cache is not None else cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    packages, music, speech_candidates = [], [], []
    sources = MUSIC_SOURCES + SPEECH_SOURCES
    for n, source in enumerate(sources):
        if progress:
            progress("fetch", n, len(sources))
        record, root = fetch_package(source.package, cache)
        packages.append(record)
        found = list_candidates(source, root, cache)
        (music if source in MUSIC_SOURCES else speech_candidates).append(found)
    candidates = sorted((c for found in music for c in found), key=lambda c: c.id)
    tracks, blocks, dropped = _analyse(candidates, progress)
    tracks = _drop_duplicates(tracks, blocks, dropped)
    references, negatives = split_tracks(tracks, seed=seed, negative_fraction=negative_fraction,
                                         min_negatives=min_negatives)
    speech = []
    for n, found in enumerate(speech_candidates):
        if progress:
            progress("speech", n, len(speech_candidates))
        speech += select_speech(found, seed=seed + n, limit=max_speech_per_package)
    hours = sum(t["duration_s"] for t in references) / 3600
    if len(references) < 150 or hours < 8 or len(negatives) < 30:
        log.warning("audio corpus is short: %d references (%.2f h), %d negatives available; "
                    "wanted >= 150 references, >= 8 h, >= 30 negatives",
                    len(references), hours, len(negatives))
    manifest = {"version": MANIFEST_VERSION, "seed": seed, "packages": packages,
                "references": references, "negatives": negatives, "speech": speech,
                "dropped": sorted(dropped, key=lambda d: d["id"])}
    write_manifest(manifest, cache / MANIFEST_NAME)
    return manifest


def load_audio_corpus(cache: Path | None = None) -> dict:
    """The manifest from the cache, built first if it is not there yet."""
    cache = Path(cache) if cache is not None else cache_dir()
    path = cache / MANIFEST_NAME
    return read_manifest(path) if path.exists() else build_audio_corpus(cache)


def summary(manifest: dict) -> str:
    """Counts and hours per split and per package, as text."""
    lines = []
    for split in ("references", "negatives", "speech"):
        entries = manifest[split]
        hours = sum(e["duration_s"] for e in entries) / 3600
        looped = sum(e["loop_period_s"] is not None for e in entries)
        lines.append(f"{split}: {len(entries)} files, {hours:.2f} h, {looped} looping")
        per_package: dict[str, list[float]] = {}
        for e in entries:
            per_package.setdefault(e["package"], []).append(e["duration_s"])
        lines += [f"  {name:28s} {len(d):4d} files {sum(d) / 3600:6.2f} h"
                  for name, d in sorted(per_package.items())]
    reasons = Counter(d["reason"] for d in manifest["dropped"])
    lines.append("dropped: " + ", ".join(f"{n} {r}" for r, n in sorted(reasons.items())))
    return "\n".join(lines)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    print(summary(build_audio_corpus(seed=int(sys.argv[1]) if len(sys.argv) > 1 else 0)))
