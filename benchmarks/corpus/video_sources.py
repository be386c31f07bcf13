"""Where the video corpus comes from: Debian packages (and PyPI's ``iscc-samples``) fetched
and unpacked under the cache, and the inventory taken from them: textured tiles of distinct
photographs, distinct music tracks and real footage clips (:mod:`benchmarks.corpus.video`
plans and renders the videos from it).
"""

from __future__ import annotations

import logging
import re
import subprocess
import sys
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from nanhu.benchmarks.corpus.cache import sha256_file
from nanhu.benchmarks.corpus.video_render import Box, _resize, read_image

log = logging.getLogger(__name__)

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
