"""Real-media video corpus for the video recall benchmark.

References and never-registered negatives are rendered from real photographs (Ken Burns camera
motion, hard cuts every few seconds) and a little real footage, with real music as the
soundtrack, all taken from Debian packages (and PyPI's ``iscc-samples``) cached outside the repo.

Separation rules that keep the benchmark honest:

- every photograph is cut into disjoint tiles; a tile is shown in exactly one video, and
  references and negatives draw on disjoint sets of photographs. A large photograph does lend
  different tiles to several references (up to ~25 for a 5x5 grid), see ``PhotoTile``;
- every music track is the soundtrack of at most one video; references use the game-music
  packages, negatives use Wesnoth's orchestral music;
- every footage clip is used once, never looped; ``Megamind_bugy.avi`` (a damaged copy of
  ``Megamind.avi``) and ``realshort.mp4`` (1.2 s) are left out.

Run ``python -m benchmarks.corpus_video`` to build into ``$NANHU_CACHE`` (or ~/.cache/nanhu).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import subprocess
import sys
import tarfile
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np

from benchmarks.corpus.cache import cache_dir, sha256_file

log = logging.getLogger(__name__)

MANIFEST_VERSION = 1
MANIFEST_NAME = "video-corpus.json"
SAMPLE_RATE = 48_000
PHOTO_PACKAGES: dict[str, tuple[str, ...]] = {
    "mate-backgrounds": ("usr/share/backgrounds/mate/*/*",),
    "plasma-workspace-wallpapers": ("usr/share/wallpapers/*/contents/images/*",),
    "kphotoalbum": ("usr/share/kphotoalbum/demo/*",),
    "lomiri-wallpapers-16.04": ("usr/share/backgrounds/*",),
    "lomiri-wallpapers-20.04": ("usr/share/backgrounds/*",),
    "ukui-wallpapers": ("usr/share/backgrounds/*",),
    "lxqt-themes": ("usr/share/lxqt/wallpapers/*",),
}
REFERENCE_MUSIC: dict[str, tuple[str, ...]] = {
    "warzone2100-music": ("usr/share/games/warzone2100/music/**/*.opus",),
    "singularity-music": ("usr/share/games/singularity/music/**/*.ogg",),
    "drascula-music": ("usr/share/scummvm/drascula/audio/*.ogg",),
    "flare-game": ("usr/share/games/flare/mods/*/music/*.ogg",),
    "hedgewars-data": ("usr/share/games/hedgewars/Data/Music/*.ogg",),
    "freedroidrpg-data": ("usr/share/freedroidrpg/data/sound/music/*.ogg",),
    "fretsonfire-songs-muldjord": ("usr/share/games/fretsonfire/data/songs/*/*/song.ogg",),
    "fretsonfire-songs-sectoid": ("usr/share/games/fretsonfire/data/songs/*/*/song.ogg",),
}
# Near-duplicates of other tracks kept here (16 s or more of the same audio), as found by the
# chroma matcher of benchmarks.corpus.audio_similarity; file names alone do not reveal them.
NEAR_DUPLICATE_TRACKS = frozenset({
    "drascula-music/usr/share/scummvm/drascula/audio/track1.ogg",  # ~ track30.ogg
    "drascula-music/usr/share/scummvm/drascula/audio/track14.ogg",  # ~ track9.ogg
    "freedroidrpg-data/usr/share/freedroidrpg/data/sound/music/HellFortressTwo.ogg",
    "freedroidrpg-data/usr/share/freedroidrpg/data/sound/music/TechBattle.ogg",  # ~ AmbientBattle
    "warzone2100-music/usr/share/games/warzone2100/music/albums/legacy_soundtrack/track15.opus",
})
NEGATIVE_MUSIC: dict[str, tuple[str, ...]] = {
    "wesnoth-1.16-music": ("usr/share/games/wesnoth/*/data/core/music/*.ogg",),
}
FOOTAGE_PACKAGES: dict[str, tuple[str, ...]] = {
    "opencv-doc": ("usr/share/doc/opencv-doc/examples/data/vtest.avi",
                   "usr/share/doc/opencv-doc/examples/data/Megamind.avi",
                   "usr/share/doc/opencv-doc/examples/data/tree.avi"),
    "python3-imageio": ("usr/lib/python3/dist-packages/imageio/resources/images/cockatoo.mp4",),
}
PYPI_FOOTAGE = ("iscc-samples", "iscc_samples/files/video/demo.mp4")
MIN_TILE = (800, 450)          # smallest tile cut from a photograph, px
MAX_GRID = 5                   # at most 5 x 5 tiles per photograph
MIN_TEXTURE = 0.005            # tile_texture below this is a flat sky or a smooth gradient
MIN_DURATION_S = 40.0
RENDER_VERSION = 1  # bump when rendering changes pixels or sound: outputs are then rebuilt

Box = tuple[int, int, int, int]  # x, y, width, height in source pixels


# ---------------------------------------------------------------------------- fetching


def fetch_debian(cache: Path, packages: Iterable[str]) -> list[dict]:
    """Download (``apt-get download``) and unpack (``dpkg -x``) each package under cache/debs.

    Present .deb files and unpacked trees are reused. Returns one
    ``{"name", "version", "sha256", "source": "debian"}`` record per package, sorted by name.
    """
    debs = cache / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    records = []
    for name in sorted(set(packages)):
        found = sorted(debs.glob(f"{name}_*.deb"))
        if not found:
            log.info("apt-get download %s", name)
            subprocess.run(["apt-get", "download", name], cwd=debs, check=True,
                           stdout=subprocess.DEVNULL)
            found = sorted(debs.glob(f"{name}_*.deb"))
        deb = found[-1]
        tree = debs / name
        if not tree.is_dir():
            partial = debs / f".{name}.partial"
            subprocess.run(["rm", "-rf", str(partial)], check=True)
            subprocess.run(["dpkg", "-x", str(deb), str(partial)], check=True)
            partial.rename(tree)
        version = subprocess.run(["dpkg-deb", "-f", str(deb), "Version"], check=True,
                                 capture_output=True, text=True).stdout.strip()
        records.append({"name": name, "version": version, "sha256": sha256_file(deb),
                        "source": "debian"})
    return records


def fetch_pypi_footage(cache: Path) -> tuple[dict, Path] | None:
    """``pip download`` iscc-samples into cache/pypi and unpack its demo clip.

    Returns (package record, clip path), or None when the download fails (offline).
    """
    name, member = PYPI_FOOTAGE
    pypi = cache / "pypi"
    pypi.mkdir(parents=True, exist_ok=True)
    found = sorted(pypi.glob("iscc_samples-*.tar.gz"))
    if not found:
        done = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps",
                               "--no-binary", ":all:", "-d", str(pypi), name],
                              check=False, capture_output=True, text=True)
        found = sorted(pypi.glob("iscc_samples-*.tar.gz"))
        if done.returncode != 0 or not found:
            log.warning("pip download %s failed; corpus built without it", name)
            return None
    sdist = found[-1]
    version = sdist.name.removeprefix("iscc_samples-").removesuffix(".tar.gz")
    clip = pypi / name / member
    if not clip.exists():
        with tarfile.open(sdist) as archive:
            entry = archive.getmember(f"iscc_samples-{version}/{member}")
            clip.parent.mkdir(parents=True, exist_ok=True)
            clip.write_bytes(archive.extractfile(entry).read())  # type: ignore[union-attr]
    record = {"name": name, "version": version, "sha256": sha256_file(sdist), "source": "pypi"}
    return record, clip


# ---------------------------------------------------------------------------- inventory
@dataclass(frozen=True)
class PhotoTile:
    """A disjoint region of one photograph; each tile appears in exactly one video.

    Tiles of one photograph are disjoint in pixels but alike in light and texture, so two
    references that hold tiles of the same photograph are a realistic hard negative pair.
    """

    member: str  # "<package>/<path inside the package>"
    box: Box


@dataclass(frozen=True)
class Track:
    member: str
    duration_s: float


@dataclass(frozen=True)
class Clip:
    member: str
    duration_s: float
    width: int
    height: int


def read_image(path: Path) -> np.ndarray:
    """Decode a still image with PyAV. Returns uint8 [shape=(height, width, 3)] RGB."""
    with av.open(str(path)) as container:
        return next(container.decode(video=0)).to_ndarray(format="rgb24")


def _resize(image: np.ndarray, width: int, height: int, *, interpolation: str = "AREA",
            fmt: str = "rgb24") -> np.ndarray:
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format=fmt)
    return frame.reformat(width=width, height=height, interpolation=interpolation).to_ndarray()


def _name_key(path: str) -> str:
    """Stem with size, dark/light and remaster suffixes removed: variants share a key."""
    stem = Path(path).stem.lower()
    return re.sub(r"([_-](\d+x\d+|dark|light|bright|enhanced|sd|d|l|portrait))+$", "", stem)


def tile_grid(width: int, height: int, *, min_tile: tuple[int, int] = MIN_TILE,
              max_grid: int = MAX_GRID) -> list[Box]:
    """Disjoint boxes covering a width x height image, each at least min_tile (or the whole
    image), at most max_grid per axis. Returns (x, y, width, height) boxes, row by row."""
    cols = int(np.clip(width // min_tile[0], 1, max_grid))
    rows = int(np.clip(height // min_tile[1], 1, max_grid))
    xs = np.linspace(0, width, cols + 1).astype(int)
    ys = np.linspace(0, height, rows + 1).astype(int)
    return [(int(xs[c]), int(ys[r]), int(xs[c + 1] - xs[c]), int(ys[r + 1] - ys[r]))
            for r in range(rows) for c in range(cols)]


def photo_signature(image: np.ndarray) -> np.ndarray:
    """Two standardised 32x32 grey thumbnails of an RGB image, float32 [shape=(2, 1024)]:
    the picture, and its detail (the picture minus a 5x5 box blur). Natural photographs with a
    similar layout (sky over land) share the first; variants of one picture share the second.
    """
    grey = _resize(image, 32, 32).mean(axis=2)
    padded = np.pad(grey, 2, mode="edge")
    sums = np.pad(padded.cumsum(axis=0).cumsum(axis=1), ((1, 0), (1, 0)))
    blurred = (sums[5:, 5:] - sums[:-5, 5:] - sums[5:, :-5] + sums[:-5, :-5]) / 25.0
    rows = np.stack([grey.ravel(), (grey - blurred).ravel()])
    rows = (rows - rows.mean(axis=1, keepdims=True)) / (rows.std(axis=1, keepdims=True) + 1e-6)
    return rows.astype(np.float32)


def tile_texture(image: np.ndarray, box: Box) -> float:
    """Mean absolute grey-level step (0..1) of a box of ``image`` seen at 160x90 px.

    image : uint8 [shape=(h, w, 3)] RGB. Smooth gradients and flat skies score below ~0.005.
    """
    x, y, w, h = box
    grey = _resize(image[y:y + h, x:x + w], 160, 90).mean(axis=2) / 255.0
    return 0.5 * float(np.abs(np.diff(grey, axis=0)).mean() + np.abs(np.diff(grey, axis=1)).mean())


def find_photos(debs: Path) -> dict[str, list[PhotoTile]]:
    """Textured tiles of the distinct photographs in PHOTO_PACKAGES, keyed by member.

    Variants of one picture (other sizes, dark/light or logo versions, the same file twice)
    are dropped by name key, by file hash and by photo_signature: detail correlation above
    0.7, or picture correlation above 0.95 with detail above 0.3. Photographs under 640x360
    and tiles under MIN_TEXTURE are left out.
    """
    candidates: dict[tuple[str, str], Path] = {}
    for package, patterns in PHOTO_PACKAGES.items():
        for pattern in patterns:
            for path in sorted((debs / package).glob(pattern)):
                if path.suffix.lower() not in {".jpg", ".jpeg", ".png", ".webp"}:
                    continue
                rel = path.relative_to(debs / package).as_posix()
                group = rel.split("/")[3] if package == "plasma-workspace-wallpapers" else \
                    _name_key(rel)
                candidates.setdefault((package, group), path)
                if path.stat().st_size > candidates[(package, group)].stat().st_size:
                    candidates[(package, group)] = path
    photos: dict[str, list[PhotoTile]] = {}
    hashes: set[str] = set()
    thumbs: list[np.ndarray] = []
    members: list[str] = []
    for (package, _), path in sorted(candidates.items()):
        digest = sha256_file(path)
        image = read_image(path)
        height, width = image.shape[:2]
        if digest in hashes or width < 640 or height < 360:
            continue
        thumb = photo_signature(image)
        if thumbs:
            coarse, detail = np.einsum("nkd,kd->kn", np.stack(thumbs), thumb) / thumb.shape[1]
            alike = (np.abs(detail) > 0.7) | ((coarse > 0.95) & (np.abs(detail) > 0.3))
            if alike.any():
                log.info("near-duplicate photograph skipped: %s (like %s)", path,
                         members[int(np.argmax(alike))])
                continue
        member = f"{package}/{path.relative_to(debs / package).as_posix()}"
        hashes.add(digest)
        thumbs.append(thumb)
        members.append(member)
        tiles = [PhotoTile(member, box) for box in tile_grid(width, height)
                 if tile_texture(image, box) >= MIN_TEXTURE]
        if tiles:
            photos[member] = tiles
    return photos


def _media_duration(path: Path) -> float:
    with av.open(str(path)) as container:
        return float(container.duration or 0) / 1e6


def find_tracks(debs: Path, packages: dict[str, tuple[str, ...]]) -> list[Track]:
    """Distinct music tracks of at least MIN_DURATION_S, sorted by member.

    Copies (same hash, or the same name in another language folder), remasters or
    sudden-death variants (``_enhanced``, ``_sd``) of a kept track and NEAR_DUPLICATE_TRACKS
    are dropped.
    """
    tracks, seen = [], set()
    for package, patterns in sorted(packages.items()):
        for pattern in patterns:
            for path in sorted((debs / package).glob(pattern)):
                rel = path.relative_to(debs / package).as_posix()
                key = (package, path.parent.name if path.name == "song.ogg" else _name_key(rel))
                digest = sha256_file(path)
                if key in seen or digest in seen or f"{package}/{rel}" in NEAR_DUPLICATE_TRACKS:
                    continue
                seen.update({key, digest})
                duration = _media_duration(path)
                if duration >= MIN_DURATION_S + 1.0:
                    tracks.append(Track(f"{package}/{rel}", duration))
    return sorted(tracks, key=lambda track: track.member)


def find_footage(debs: Path, extra: Iterable[tuple[str, Path]] = ()) -> list[Clip]:
    """Real footage clips from FOOTAGE_PACKAGES plus ``extra`` (member, path) pairs."""
    items = [(f"{package}/{rel}", debs / package / rel)
             for package, rels in FOOTAGE_PACKAGES.items() for rel in rels]
    clips = []
    for member, path in sorted([*items, *extra]):
        if not path.exists():
            log.warning("footage missing: %s", path)
            continue
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            frames = sum(1 for _ in container.decode(video=0))
            duration = frames / float(stream.average_rate)
            clips.append(Clip(member, duration, stream.width, stream.height))
    return clips


# ---------------------------------------------------------------------------- rendering
def camera_path(box: Box, n_frames: int, *, aspect: float, motion: str,
                rng: np.random.Generator) -> np.ndarray:
    """Ken Burns crop windows inside ``box`` for one shot.

    box : (x, y, width, height) of the tile, source px.
    motion : "zoom_in", "zoom_out", "pan" or "drift".
    Returns float64 [shape=(n_frames, 4)]: x, y, width, height per frame, source px, every
    window of the given aspect (width / height) and inside the box; eased start and stop.
    """
    x, y, w, h = box
    fit_w = min(w, h * aspect)
    if motion == "zoom_in":
        scales = (1.0, rng.uniform(0.72, 0.85))
    elif motion == "zoom_out":
        scales = (rng.uniform(0.72, 0.85), 1.0)
    elif motion == "pan":
        scales = (rng.uniform(0.7, 0.82),) * 2
    elif motion == "drift":
        scales = (rng.uniform(0.86, 0.94),) * 2
    else:
        raise ValueError(f"unknown camera motion {motion!r}")
    across = rng.uniform(0.0, 1.0)
    where = rng.uniform(0.0, 1.0, size=2)  # window position within the slack, per axis
    ends = []
    for k, scale in enumerate(scales):
        win_w = fit_w * scale
        win_h = win_w / aspect
        slack = np.array([w - win_w, h - win_h])
        if k == 1:  # a drift slides a little from where it starts; zooms go anywhere
            where = np.clip(where + rng.uniform(-0.2, 0.2, size=2), 0.0, 1.0) \
                if motion == "drift" else rng.uniform(0.0, 1.0, size=2)
        if motion == "pan":  # sweep along the axis with more room, from one side to the other
            axis = int(slack[1] > slack[0])
            where[axis], where[1 - axis] = (0.03, 0.97)[k], across
        ends.append([x + slack[0] * where[0], y + slack[1] * where[1], win_w, win_h])
    if motion == "pan" and rng.uniform() < 0.5:
        ends.reverse()
    start, stop = np.array(ends[0]), np.array(ends[1])
    t = np.linspace(0.0, 1.0, n_frames) if n_frames > 1 else np.zeros(1)
    eased = 0.5 * t + 0.5 * t * t * (3.0 - 2.0 * t)  # half linear, half smoothstep
    return start + (stop - start) * eased[:, None]


def render_photo_shot(image: np.ndarray, boxes: np.ndarray, *, width: int,
                      height: int) -> Iterator[av.VideoFrame]:
    """Frames of one shot: each crop window of ``image`` scaled to width x height.

    image : uint8 [shape=(h, w, 3)] RGB.  boxes : float [shape=(n, 4)] from camera_path.
    Yields n yuv420p frames. The region the shot sweeps is first reduced once (area filter)
    to about the output scale, so the per-frame work is a small crop and a bilinear scale.
    """
    x0, y0 = np.floor(boxes[:, :2].min(axis=0)).astype(int)
    x1 = int(np.ceil((boxes[:, 0] + boxes[:, 2]).max()))
    y1 = int(np.ceil((boxes[:, 1] + boxes[:, 3]).max()))
    region = image[max(y0, 0):min(y1, image.shape[0]), max(x0, 0):min(x1, image.shape[1])]
    scale = min(1.0, 1.1 * width / float(boxes[:, 2].max()))
    if scale < 1.0:
        region = _resize(region, max(2, round(region.shape[1] * scale)),
                         max(2, round(region.shape[0] * scale)))
    scaled = (boxes - np.array([max(x0, 0), max(y0, 0), 0.0, 0.0])) * scale
    whole = np.rint(scaled).astype(int)
    whole[:, 2] = np.clip(whole[:, 2], 2, region.shape[1])
    whole[:, 3] = np.clip(whole[:, 3], 2, region.shape[0])
    whole[:, 0] = np.clip(whole[:, 0], 0, region.shape[1] - whole[:, 2])
    whole[:, 1] = np.clip(whole[:, 1], 0, region.shape[0] - whole[:, 3])
    for cx, cy, cw, ch in whole:
        crop = np.ascontiguousarray(region[cy:cy + ch, cx:cx + cw])
        frame = av.VideoFrame.from_ndarray(crop, format="rgb24")
        yield frame.reformat(width=width, height=height, format="yuv420p",
                             interpolation="BILINEAR")


def render_footage_shot(path: Path, *, n_frames: int, fps: int, width: int,
                        height: int) -> Iterator[av.VideoFrame]:
    """Exactly n_frames of a real clip at ``fps`` (nearest earlier source frame; the last
    frame holds if the clip is shorter), fitted into width x height with black bars.
    Yields yuv420p frames."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        scale = min(width / stream.width, height / stream.height)
        fit_w, fit_h = 2 * round(stream.width * scale / 2), 2 * round(stream.height * scale / 2)
        left, top = (width - fit_w) // 2, (height - fit_h) // 2
        canvas = np.zeros((height, width, 3), np.uint8)
        decoded = container.decode(video=0)
        current = next(decoded)
        origin = current.time or 0.0
        upcoming = next(decoded, None)
        for k in range(n_frames):
            while upcoming is not None and (upcoming.time or 0.0) - origin <= k / fps + 1e-6:
                current, upcoming = upcoming, next(decoded, None)
            canvas[top:top + fit_h, left:left + fit_w] = current.to_ndarray(
                width=fit_w, height=fit_h, format="rgb24", interpolation="BILINEAR")
            yield av.VideoFrame.from_ndarray(canvas, format="rgb24").reformat(format="yuv420p")


def read_music(path: Path, *, start_s: float, duration_s: float,
               sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Decode ``duration_s`` of a track from ``start_s``, with a 0.5 s fade-in and 1.5 s
    fade-out. Returns float32 [shape=(2, round(duration_s * sample_rate))], stereo, [-1, 1]."""
    total = round(duration_s * sample_rate)
    first = round(start_s * sample_rate)
    out = np.zeros((2, total), np.float32)
    resampler = av.AudioResampler(format="fltp", layout="stereo", rate=sample_rate)
    position = 0
    with av.open(str(path)) as container:
        for frame in container.decode(audio=0):
            for chunk in resampler.resample(frame):
                samples = chunk.to_ndarray()
                lo, hi = max(first - position, 0), min(first + total - position, samples.shape[1])
                if hi > lo:
                    out[:, position + lo - first:position + hi - first] = samples[:, lo:hi]
                position += samples.shape[1]
            if position >= first + total:
                break
    ramp_in, ramp_out = int(0.5 * sample_rate), int(1.5 * sample_rate)
    out[:, :ramp_in] *= np.linspace(0.0, 1.0, ramp_in, dtype=np.float32)
    out[:, -ramp_out:] *= np.linspace(1.0, 0.0, ramp_out, dtype=np.float32)
    return out


def encode_mp4(path: Path, frames: Iterable[av.VideoFrame], audio: np.ndarray, *, fps: int,
               width: int, height: int, crf: int = 23, preset: str = "ultrafast",
               comment: str = "") -> int:
    """Write H.264 (yuv420p) + AAC (128 kb/s, 48 kHz stereo) to ``path``.

    audio : float32 [shape=(2, n_samples)] at SAMPLE_RATE; interleaved with the video as it
    goes. comment : stored as the container's "comment" tag. Returns the video frame count.
    """
    n_frames, sent = 0, 0
    with av.open(str(path), "w", format="mp4") as out:
        if comment:
            out.metadata["comment"] = comment
        video = out.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.options = {"preset": preset, "crf": str(crf)}
        video.codec_context.thread_count = 1  # one worker per core; also keeps output stable
        sound = out.add_stream("aac", rate=SAMPLE_RATE, layout="stereo")
        sound.bit_rate = 128_000

        def push_audio(until: int) -> None:
            nonlocal sent
            while sent < until:
                size = min(1024, until - sent)
                frame = av.AudioFrame.from_ndarray(
                    np.ascontiguousarray(audio[:, sent:sent + size]), format="fltp",
                    layout="stereo")
                frame.sample_rate, frame.pts = SAMPLE_RATE, sent
                out.mux(sound.encode(frame))
                sent += size

        for frame in frames:
            frame.pts = n_frames
            out.mux(video.encode(frame))
            n_frames += 1
            push_audio(min(audio.shape[1], (n_frames * SAMPLE_RATE // fps) // 1024 * 1024))
        push_audio(min(audio.shape[1], n_frames * SAMPLE_RATE // fps))
        out.mux(video.encode())
        out.mux(sound.encode())
    return n_frames


# ---------------------------------------------------------------------------- planning
@dataclass(frozen=True)
class Shot:
    kind: str  # "photo" or "footage"
    member: str
    n_frames: int
    box: Box | None = None  # photo tile
    motion: str | None = None  # camera_path motion


@dataclass
class VideoPlan:
    id: str
    split: str  # "reference" or "negative"
    width: int
    height: int
    fps: int
    music: Track
    music_start_s: float
    shots: list[Shot] = field(default_factory=list)
    rng_key: tuple[int, ...] = ()

    @property
    def n_frames(self) -> int:
        return sum(shot.n_frames for shot in self.shots)

    @property
    def duration_s(self) -> float:
        return self.n_frames / self.fps


def _draw_format(rng: np.random.Generator) -> tuple[int, int, int]:
    """(width, height, fps): a quarter at 1080p, the rest 720p (cheaper to render); 25 or 30."""
    width, height = (1920, 1080) if rng.uniform() < 0.25 else (1280, 720)
    return width, height, int(rng.choice([25, 30]))


def _photo_shots(tiles: list[PhotoTile], n_frames: int, fps: int,
                 rng: np.random.Generator) -> list[Shot]:
    """Hard cuts every 2.5-6.5 s, cycling through ``tiles`` in shuffled rounds (no tile
    twice in a row), each visit with its own camera motion."""
    lengths = []
    while sum(lengths) < n_frames:
        lengths.append(int(rng.uniform(2.5, 6.5) * fps))
    lengths[-1] -= sum(lengths) - n_frames
    if len(lengths) > 1 and lengths[-1] < int(1.5 * fps):
        lengths[-2] += lengths.pop()
    order: list[PhotoTile] = []
    while len(order) < len(lengths):
        batch = [tiles[i] for i in rng.permutation(len(tiles))]
        if order and len(batch) > 1 and batch[0] == order[-1]:
            batch.append(batch.pop(0))
        order.extend(batch)
    motions = ("zoom_in", "zoom_out", "pan", "pan", "drift")
    return [Shot("photo", tile.member, length, tile.box, str(rng.choice(motions)))
            for tile, length in zip(order, lengths)]


def _allocate_tiles(photos: dict[str, list[PhotoTile]], counts: list[int],
                    rng: np.random.Generator) -> list[list[PhotoTile]]:
    """Give video i counts[i] tiles, each from a different photograph while possible,
    taking first from the photographs with the most tiles left. No tile is given twice."""
    supply = sum(len(tiles) for tiles in photos.values())
    if sum(counts) > supply:
        counts = [max(3, c * supply // sum(counts)) if c else 0 for c in counts]
        if sum(counts) > supply:
            raise RuntimeError(f"{supply} photo tiles cannot cover {len(counts)} videos")
        log.warning("photo tiles are scarce: %d videos get fewer tiles", len(counts))
    left = {member: [tiles[i] for i in rng.permutation(len(tiles))]
            for member, tiles in sorted(photos.items())}
    tiebreak = {member: float(rng.uniform()) for member in left}
    given = []
    for count in counts:
        chosen: list[PhotoTile] = []
        while len(chosen) < count:
            order = sorted((m for m in left if left[m]), key=lambda m: (-len(left[m]), tiebreak[m]))
            chosen += [left[m].pop() for m in order[:count - len(chosen)]]
        given.append(chosen)
    return given


def plan_corpus(photos: dict[str, list[PhotoTile]], reference_music: list[Track],
                negative_music: list[Track], footage: list[Clip], *, n_references: int = 100,
                n_negatives: int = 30, seed: int = 0) -> list[VideoPlan]:
    """Deterministic plan of every video: format, shots (tiles, motions, footage), soundtrack.

    Photographs are split between references and negatives (negatives get about a fifth of
    the tiles); each track scores one video. Clips of 40 s or more become footage-only
    references; shorter clips are cut, once each, into one reference between photo shots.
    """
    rng = np.random.default_rng(seed)
    members = sorted(photos)
    share, negative_photos = 0, {}
    for index in rng.permutation(len(members)):
        if share >= 0.2 * sum(map(len, photos.values())):
            break
        negative_photos[members[index]] = photos[members[index]]
        share += len(photos[members[index]])
    reference_photos = {m: t for m, t in photos.items() if m not in negative_photos}
    long_clips = [clip for clip in footage if clip.duration_s >= MIN_DURATION_S]
    short_clips = [clip for clip in footage if clip.duration_s < MIN_DURATION_S]
    plans: list[VideoPlan] = []
    for split, count, music, pool, span in (
            ("reference", n_references, reference_music, reference_photos, (48.0, 108.0)),
            ("negative", n_negatives, negative_music, negative_photos, (40.0, 80.0))):
        tracks = [music[i] for i in rng.permutation(len(music))]
        if len(tracks) < count:
            raise RuntimeError(f"{len(tracks)} {split} tracks for {count} videos")
        videos, tile_counts = [], []
        for index in range(count):
            width, height, fps = _draw_format(rng)
            clips, footage_only = [], split == "reference" and index < len(long_clips)
            if footage_only:
                clips, (width, height, fps) = [long_clips[index]], (1280, 720, 25)
                seconds = float(int(clips[0].duration_s))
            else:
                if split == "reference" and index == len(long_clips):
                    clips = short_clips
                seconds = float(rng.uniform(*span))
            need = seconds if footage_only else min(seconds, 60.0)
            track = next(t for t in tracks if t.duration_s >= need + 1.0)
            tracks.remove(track)
            seconds = min(seconds, track.duration_s - 1.0)
            start_s = round(float(rng.uniform(0.0, track.duration_s - seconds - 0.5)), 3)
            plan = VideoPlan(f"{split[:3]}-{index:03d}", split, width, height, fps, track,
                             start_s, rng_key=(seed, len(plans) + len(videos)))
            footage_frames = [int(clip.duration_s * fps) for clip in clips]
            if footage_only:
                footage_frames = [int(seconds * fps)]
            photo_frames = 0 if footage_only else int(seconds * fps) - sum(footage_frames)
            videos.append((plan, clips, footage_frames, photo_frames))
            tile_counts.append(int(np.clip(round(photo_frames / fps / 16), 3, 6))
                               if photo_frames else 0)
        given = _allocate_tiles(pool, tile_counts, rng)
        for (plan, clips, footage_frames, photo_frames), tiles in zip(videos, given):
            if photo_frames:
                plan.shots = _photo_shots(tiles, photo_frames, plan.fps, rng)
            for clip, n_frames in zip(clips, footage_frames):
                at = int(rng.integers(0, len(plan.shots) + 1))
                plan.shots.insert(at, Shot("footage", clip.member, n_frames))
            plans.append(plan)
    return plans


# ---------------------------------------------------------------------------- building
def _member_path(cache: Path, member: str) -> Path:
    """Where a source member lives: cache/debs/<package>/... or cache/pypi/<package>/..."""
    path = cache / "debs" / member
    return path if path.exists() else cache / "pypi" / member


def render_video(plan: VideoPlan, path: Path, cache: Path) -> None:
    """Render, encode and atomically move one planned video to ``path``."""
    images: dict[str, np.ndarray] = {}

    def frames() -> Iterator[av.VideoFrame]:
        for index, shot in enumerate(plan.shots):
            source = _member_path(cache, shot.member)
            if shot.kind == "footage":
                yield from render_footage_shot(source, n_frames=shot.n_frames, fps=plan.fps,
                                               width=plan.width, height=plan.height)
                continue
            if shot.member not in images:
                images[shot.member] = read_image(source)
            assert shot.box is not None and shot.motion is not None
            rng = np.random.default_rng([*plan.rng_key, index])
            boxes = camera_path(shot.box, shot.n_frames, aspect=plan.width / plan.height,
                                motion=shot.motion, rng=rng)
            yield from render_photo_shot(images[shot.member], boxes, width=plan.width,
                                         height=plan.height)

    audio = read_music(_member_path(cache, plan.music.member), start_s=plan.music_start_s,
                       duration_s=plan.duration_s)
    partial = path.with_name(f".{path.stem}.partial.mp4")
    written = encode_mp4(partial, frames(), audio, fps=plan.fps, width=plan.width,
                         height=plan.height, comment=_plan_digest(plan))
    if written != plan.n_frames:
        raise RuntimeError(f"{plan.id}: wrote {written} frames, planned {plan.n_frames}")
    os.replace(partial, path)


def _plan_digest(plan: VideoPlan) -> str:
    """Names everything that decides a video's content; stored in the file as its comment."""
    text = repr((RENDER_VERSION, plan.width, plan.height, plan.fps, plan.music,
                 plan.music_start_s, plan.shots, plan.rng_key))
    return "nanhu-plan:" + hashlib.sha256(text.encode()).hexdigest()[:20]


def _is_complete(path: Path, plan: VideoPlan) -> bool:
    """True when ``path`` holds this plan's video, whole (the plan digest, size, frames)."""
    if not path.exists():
        return False
    try:
        with av.open(str(path)) as container:
            video = container.streams.video[0]
            return container.metadata.get("comment") == _plan_digest(plan) and (
                video.width, video.height, video.frames) == (plan.width, plan.height,
                                                               plan.n_frames)
    except (av.FFmpegError, IndexError):
        return False


def _entry(plan: VideoPlan) -> dict:
    sources, seen, starts, at = [], set(), [], 0
    for shot in plan.shots:
        starts.append(round(at / plan.fps, 3))
        if shot.kind == "footage":
            sources.append({"kind": "footage", "member": shot.member, "start_s": 0.0,
                            "duration_s": round(shot.n_frames / plan.fps, 3)})
        elif (shot.member, shot.box) not in seen:
            seen.add((shot.member, shot.box))
            sources.append({"kind": "photo", "member": shot.member, "box": list(shot.box)})
        at += shot.n_frames
    sources.append({"kind": "music", "member": plan.music.member, "start_s": plan.music_start_s,
                    "duration_s": round(plan.duration_s, 3)})
    content = {shot.kind for shot in plan.shots}
    return {"id": plan.id, "path": f"video/{plan.id}.mp4", "width": plan.width,
            "height": plan.height, "fps": plan.fps, "duration_s": round(plan.duration_s, 3),
            "n_frames": plan.n_frames,
            "content": "mixed" if len(content) == 2 else next(iter(content)),
            "shot_starts_s": starts, "sources": sources}


def build_video_corpus(cache: Path | None = None, *, seed: int = 0,
                       progress: Callable[[int, int, str], None] | None = None,
                       n_references: int = 100, n_negatives: int = 30,
                       workers: int | None = None) -> dict:
    """Fetch the sources, plan and render every missing video, write cache/video-corpus.json.

    Resumable: a video already on disk with the planned size, fps and frame count is kept.
    Deterministic for a given seed and package set. progress(done, total, video_id) is called
    after each rendered video. workers defaults to min(2, CPU count) processes.
    Returns the manifest as load_video_corpus gives it (absolute paths).
    """
    cache = Path(cache) if cache is not None else cache_dir()
    names = [*PHOTO_PACKAGES, *REFERENCE_MUSIC, *NEGATIVE_MUSIC, *FOOTAGE_PACKAGES]
    packages = fetch_debian(cache, names)
    extra = []
    fetched = fetch_pypi_footage(cache)
    if fetched is not None:
        packages.append(fetched[0])
        extra.append((f"{PYPI_FOOTAGE[0]}/{PYPI_FOOTAGE[1]}", fetched[1]))
    debs = cache / "debs"
    plans = plan_corpus(find_photos(debs), find_tracks(debs, REFERENCE_MUSIC),
                        find_tracks(debs, NEGATIVE_MUSIC), find_footage(debs, extra),
                        n_references=n_references, n_negatives=n_negatives, seed=seed)
    out = cache / "video"
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob(".*.partial.mp4"):  # left by an interrupted build
        stale.unlink()
    todo = [plan for plan in plans if not _is_complete(out / f"{plan.id}.mp4", plan)]
    log.info("%d videos planned, %d to render", len(plans), len(todo))
    workers = workers or min(2, os.cpu_count() or 1)
    with ProcessPoolExecutor(max_workers=workers) as pool:
        jobs = {pool.submit(render_video, plan, out / f"{plan.id}.mp4", cache): plan.id
                for plan in todo}
        for done, job in enumerate(as_completed(jobs), start=1):
            job.result()
            log.info("rendered %s (%d/%d)", jobs[job], done, len(todo))
            if progress is not None:
                progress(done, len(todo), jobs[job])
    manifest = {"version": MANIFEST_VERSION, "seed": seed, "packages": packages,
                "references": [_entry(p) for p in plans if p.split == "reference"],
                "negatives": [_entry(p) for p in plans if p.split == "negative"]}
    partial = cache / f".{MANIFEST_NAME}.partial"
    partial.write_text(json.dumps(manifest, indent=1))
    os.replace(partial, cache / MANIFEST_NAME)
    return load_video_corpus(cache)


def load_video_corpus(cache: Path | None = None) -> dict:
    """Read cache/video-corpus.json; each entry's "path" is made absolute.

    Raises FileNotFoundError (build it with ``python -m benchmarks.corpus_video``) and
    ValueError for another manifest version.
    """
    cache = Path(cache) if cache is not None else cache_dir()
    manifest = json.loads((cache / MANIFEST_NAME).read_text())
    if manifest.get("version") != MANIFEST_VERSION:
        raise ValueError(f"video corpus manifest version {manifest.get('version')} is not "
                         f"{MANIFEST_VERSION}; rebuild with python -m benchmarks.corpus_video")
    for entry in (*manifest["references"], *manifest["negatives"]):
        entry["path"] = str(cache / entry["path"])
    return manifest


def other_footage(corpus: dict | None = None) -> list[Path]:
    """Never-registered videos to use as the background of picture-in-picture and
    side-by-side attacks: the negatives (own photographs and music, so a composite can only
    match the reference pasted into it)."""
    corpus = corpus if corpus is not None else load_video_corpus()
    return [Path(entry["path"]) for entry in corpus["negatives"]]


def _summary(corpus: dict) -> str:
    lines = []
    for split in ("references", "negatives"):
        entries = corpus[split]
        formats: dict[str, int] = {}
        for entry in entries:
            key = f"{entry['height']}p{entry['fps']}"
            formats[key] = formats.get(key, 0) + 1
        hours = sum(entry["duration_s"] for entry in entries) / 3600
        size = sum(Path(entry["path"]).stat().st_size for entry in entries) / 2**30
        lines.append(f"{split}: {len(entries)} videos, {hours:.2f} h, {size:.2f} GiB, "
                     f"formats {dict(sorted(formats.items()))}")
    return "\n".join(lines)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    print(_summary(build_video_corpus()))
