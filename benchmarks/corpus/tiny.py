"""A tiny generated corpus for ``nanhu bench --tiny``: the whole benchmark pipeline in a minute.

The real corpora (:mod:`benchmarks.corpus.audio`, :mod:`benchmarks.corpus.video`) come from
gigabytes of Debian packages. ``--tiny`` instead writes a few generated files in the same
manifest formats into its own cache folder, so every section of ``nanhu bench all`` runs end
to end on a fresh machine with no download: a smoke test of the tooling, not a measurement.

- audio: ``music_like`` melodies (references 40 s, negatives 30 s, "speech" fillers 8 s);
- video: textured generated "photographs" filmed with the corpus builder's own camera moves
  (:func:`benchmarks.corpus.video_render.camera_path`) at 320x180, 25 fps, H.264 + AAC, with
  a generated melody as soundtrack.

Deterministic for a seed; files already present are kept.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from scipy import ndimage

from nanhu.benchmarks.corpus import audio as corpus_audio
from nanhu.benchmarks.corpus import video as corpus_video
from nanhu.benchmarks.corpus import video_render
from nanhu.benchmarks.corpus.cache import sha256_file
from nanhu.benchmarks.synth import music_like, write_audio

AUDIO_REFERENCES, AUDIO_NEGATIVES, AUDIO_SPEECH = 6, 4, 3
VIDEO_REFERENCES, VIDEO_NEGATIVES = 3, 2
VIDEO_SIZE, VIDEO_FPS, VIDEO_SECONDS, SHOT_SECONDS = (320, 180), 25, 24.0, 4.0


def _audio_entry(path: Path, entry_id: str, seconds: float) -> dict:
    return {"id": entry_id, "path": str(path), "package": "generated",
            "member": path.name, "sha256": sha256_file(path), "duration_s": seconds,
            "loop_period_s": None, "repeat_lags_s": []}


def build_tiny_audio(cache: Path, *, seed: int = 0) -> dict:
    """Write ``cache/audio-corpus.json`` and its generated files; returns the manifest."""
    folder = cache / "tiny-audio"
    folder.mkdir(parents=True, exist_ok=True)
    splits: dict[str, list[dict]] = {"references": [], "negatives": [], "speech": []}
    plan = ([("references", f"tiny-ref-{i}", 40.0) for i in range(AUDIO_REFERENCES)]
            + [("negatives", f"tiny-neg-{i}", 30.0) for i in range(AUDIO_NEGATIVES)]
            + [("speech", f"tiny-speech-{i}", 8.0) for i in range(AUDIO_SPEECH)])
    for number, (split, entry_id, seconds) in enumerate(plan):
        path = folder / f"{entry_id}.flac"
        if not path.exists():
            write_audio(path, music_like(seconds, seed=seed * 1000 + number), 22050)
        splits[split].append(_audio_entry(path, entry_id, seconds))
    manifest = {"version": corpus_audio.MANIFEST_VERSION, "seed": seed,
                "packages": [{"name": "generated", "version": "tiny", "sha256": ""}],
                **splits, "dropped": []}
    corpus_audio.write_manifest(manifest, cache / corpus_audio.MANIFEST_NAME)
    return manifest


def _photograph(rng: np.random.Generator, size: tuple[int, int] = (720, 480)) -> np.ndarray:
    """A textured colour image: smoothed noise at two scales plus a few bright discs.

    Returns ndarray [shape=(h, w, 3)], uint8 RGB.
    """
    width, height = size
    coarse = ndimage.gaussian_filter(rng.standard_normal((height, width, 3)), (24, 24, 0))
    fine = ndimage.gaussian_filter(rng.standard_normal((height, width, 3)), (3, 3, 0))
    image = coarse / coarse.std() + 0.35 * fine / fine.std()
    yy, xx = np.mgrid[:height, :width]
    for cx, cy, r in zip(rng.uniform(0, width, 4), rng.uniform(0, height, 4), rng.uniform(20, 70, 4)):
        image += 1.5 * ((xx - cx) ** 2 + (yy - cy) ** 2 < r * r)[..., None] * rng.uniform(-1, 1, 3)
    image = (image - image.min()) / np.ptp(image)
    return (255 * image).astype(np.uint8)


def _render(path: Path, rng: np.random.Generator, audio_seed: int) -> dict:
    width, height = VIDEO_SIZE
    n_shot = int(SHOT_SECONDS * VIDEO_FPS)
    n_shots = int(VIDEO_SECONDS / SHOT_SECONDS)
    motions = ("zoom_in", "pan", "zoom_out", "drift")

    def frames():
        for shot in range(n_shots):
            image = _photograph(rng)
            boxes = video_render.camera_path((0, 0, image.shape[1], image.shape[0]), n_shot,
                                             aspect=width / height,
                                             motion=motions[shot % len(motions)], rng=rng)
            yield from video_render.render_photo_shot(image, boxes, width=width, height=height)

    seconds = n_shots * SHOT_SECONDS
    melody = music_like(seconds, seed=audio_seed, sample_rate=video_render.SAMPLE_RATE)
    n_frames = video_render.encode_mp4(path, frames(), np.stack([melody, melody]),
                                       fps=VIDEO_FPS, width=width, height=height)
    return {"width": width, "height": height, "fps": VIDEO_FPS, "duration_s": seconds,
            "n_frames": n_frames, "content": "photo",
            "shot_starts_s": [round(i * SHOT_SECONDS, 3) for i in range(n_shots)],
            "sources": [{"kind": "generated", "member": path.name}]}


def build_tiny_video(cache: Path, *, seed: int = 0) -> dict:
    """Write ``cache/video-corpus.json`` and its generated videos; returns the manifest as
    :func:`benchmarks.corpus.video.load_video_corpus` reads it."""
    folder = cache / "video"
    folder.mkdir(parents=True, exist_ok=True)
    splits: dict[str, list[dict]] = {"references": [], "negatives": []}
    plan = ([("references", f"tiny-ref-{i}") for i in range(VIDEO_REFERENCES)]
            + [("negatives", f"tiny-neg-{i}") for i in range(VIDEO_NEGATIVES)])
    for number, (split, entry_id) in enumerate(plan):
        path = folder / f"{entry_id}.mp4"
        info_path = path.with_suffix(".json")
        if not (path.exists() and info_path.exists()):
            info = _render(path, np.random.default_rng([seed, number]), seed * 1000 + 500 + number)
            info_path.write_text(json.dumps(info))
        info = json.loads(info_path.read_text())
        splits[split].append({"id": entry_id, "path": f"video/{entry_id}.mp4", **info})
    manifest = {"version": corpus_video.MANIFEST_VERSION, "seed": seed,
                "packages": [{"name": "generated", "version": "tiny", "sha256": ""}], **splits}
    (cache / corpus_video.MANIFEST_NAME).write_text(json.dumps(manifest, indent=1))
    return corpus_video.load_video_corpus(cache)


def build_tiny_corpora(cache: Path, *, seed: int = 0) -> None:
    """Both tiny corpora under ``cache`` (use it as ``NANHU_CACHE``)."""
    cache.mkdir(parents=True, exist_ok=True)
    build_tiny_audio(cache, seed=seed)
    build_tiny_video(cache, seed=seed)
