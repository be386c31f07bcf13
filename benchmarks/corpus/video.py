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

Sources and inventory: :mod:`benchmarks.corpus.video_sources`; rendering and encoding:
:mod:`benchmarks.corpus.video_render`.

Run ``python -m nanhu.benchmarks.corpus.video`` to build into ``$NANHU_CACHE`` (or ~/.cache/nanhu).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np

from nanhu.benchmarks.corpus.cache import cache_dir
from nanhu.benchmarks.corpus.video_render import (
    RENDER_VERSION,
    Box,
    camera_path,
    encode_mp4,
    read_image,
    read_music,
    render_footage_shot,
    render_photo_shot,
)
from nanhu.benchmarks.corpus.video_sources import (
    FOOTAGE_PACKAGES,
    MIN_DURATION_S,
    NEGATIVE_MUSIC,
    PHOTO_PACKAGES,
    PYPI_FOOTAGE,
    REFERENCE_MUSIC,
    Clip,
    PhotoTile,
    Track,
    fetch_debian,
    fetch_pypi_footage,
    find_footage,
    find_photos,
    find_tracks,
)

log = logging.getLogger(__name__)

MANIFEST_VERSION = 1
MANIFEST_NAME = "video-corpus.json"


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

    Raises FileNotFoundError (build it with ``python -m nanhu.benchmarks.corpus.video``) and
    ValueError for another manifest version.
    """
    cache = Path(cache) if cache is not None else cache_dir()
    manifest = json.loads((cache / MANIFEST_NAME).read_text())
    if manifest.get("version") != MANIFEST_VERSION:
        raise ValueError(f"video corpus manifest version {manifest.get('version')} is not "
                         f"{MANIFEST_VERSION}; rebuild with python -m nanhu.benchmarks.corpus.video")
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
