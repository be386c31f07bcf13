"""Real keyframes for the video scale run: the cached corpus videos fingerprinted as references,
and attacked 10 s clips of them (and of held-out videos, never registered) as queries.

Everything is cached under ``<cache>/bench`` keyed by the video parameters, so a rerun of
``nanhu bench scale --video-hours ...`` decodes nothing.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

#: attacks the scale queries take (the mild and middle ones of ``nanhu bench video``): the scale
#: run measures what the index loses at size, not what the descriptor cannot see
QUERY_ATTACKS = ("360p", "crop-10%", "hflip", "brightness+20%", "blur-3px", "logo",
                 "crop10+flip+bright", "caption")
QUERY_LENGTH_S = 10.0
#: this many corpus videos (the last ones) are never registered: their clips are negatives
HELD_OUT = 3


def corpus_videos(cache: Path) -> list[Path]:
    return sorted((cache / "video").glob("ref-*.mp4"))


def real_video_set(bench: Path, cache: Path, *, positives: int, negatives: int,
                   seed: int = 0) -> dict:
    """{"refs": [(id, vectors, times)], "positives": [(id, start_s, attack, vectors, times)],
    "negatives": [(source, attack, vectors, times)]}, built once and cached (npz, no pickle)."""
    from nanhu.engine.video import VideoParams

    tag = VideoParams().tag()
    videos = corpus_videos(cache)
    if len(videos) <= HELD_OUT:
        raise FileNotFoundError(f"{cache / 'video'}: the video corpus is not built "
                                "(python -m nanhu.benchmarks.corpus.video)")
    path = bench / f"video-scale-real-{tag}-{len(videos)}-{seed}-{positives}-{negatives}.npz"
    if not path.exists():
        _build(path, videos, positives=positives, negatives=negatives, seed=seed)
    return _load(path)


def _build(path: Path, videos: list[Path], *, positives: int, negatives: int, seed: int) -> None:
    from nanhu.benchmarks.attacks.video import ATTACKS
    from nanhu.benchmarks.attacks.video_clips import read_window
    from nanhu.engine.video.keyframes import fingerprint_video

    arrays: dict[str, np.ndarray] = {}
    registered, held = videos[:-HELD_OUT], videos[-HELD_OUT:]
    durations = {}
    for i, video in enumerate(registered):
        fp = fingerprint_video(video)
        arrays[f"ref{i}_v"], arrays[f"ref{i}_t"] = fp.vectors, fp.times_s
        durations[i] = float(fp.times_s[-1])
        log.info("video scale: reference %s, %d keyframes", video.name, len(fp.times_s))
    rng = np.random.default_rng([seed, 77])

    def clip_print(video: Path, start: float, attack_name: str):
        attack = ATTACKS[attack_name]
        clip = read_window(video, start, QUERY_LENGTH_S, audio=False)
        data = attack.encode(attack.apply(clip, rng))
        return fingerprint_video(data)

    meta_pos, meta_neg = [], []
    for q in range(positives):
        i = int(rng.integers(len(registered)))
        start = float(rng.uniform(0, max(0.0, durations[i] - QUERY_LENGTH_S)))
        name = QUERY_ATTACKS[q % len(QUERY_ATTACKS)]
        fp = clip_print(registered[i], start, name)
        if fp is None:
            continue
        arrays[f"pos{len(meta_pos)}_v"], arrays[f"pos{len(meta_pos)}_t"] = fp.vectors, fp.times_s
        meta_pos.append((i, start, q % len(QUERY_ATTACKS)))
        if q % 10 == 9:
            log.info("video scale: %d / %d positive clips", q + 1, positives)
    for q in range(negatives):
        j = int(rng.integers(len(held)))
        start = float(rng.uniform(0, 40.0))
        fp = clip_print(held[j], start, QUERY_ATTACKS[q % len(QUERY_ATTACKS)])
        if fp is None:
            continue
        arrays[f"neg{len(meta_neg)}_v"], arrays[f"neg{len(meta_neg)}_t"] = fp.vectors, fp.times_s
        meta_neg.append((j, start, q % len(QUERY_ATTACKS)))
        if q % 10 == 9:
            log.info("video scale: %d / %d negative clips", q + 1, negatives)
    arrays["meta_pos"] = np.array(meta_pos, np.float64).reshape(-1, 3)
    arrays["meta_neg"] = np.array(meta_neg, np.float64).reshape(-1, 3)
    arrays["n_refs"] = np.array([len(registered)])
    arrays["ref_names"] = np.array([v.stem for v in registered])
    tmp = path.with_name(path.name + ".tmp.npz")
    path.parent.mkdir(parents=True, exist_ok=True)  # a fresh cache has no bench/ yet
    np.savez(tmp, **arrays)
    tmp.replace(path)


def _load(path: Path) -> dict:
    with np.load(path, allow_pickle=False) as z:
        n = int(z["n_refs"][0])
        refs = [(str(z["ref_names"][i]), z[f"ref{i}_v"], z[f"ref{i}_t"]) for i in range(n)]
        pos = [(int(m[0]), float(m[1]), QUERY_ATTACKS[int(m[2])], z[f"pos{k}_v"], z[f"pos{k}_t"])
               for k, m in enumerate(z["meta_pos"])]
        neg = [(int(m[0]), QUERY_ATTACKS[int(m[2])], z[f"neg{k}_v"], z[f"neg{k}_t"])
               for k, m in enumerate(z["meta_neg"])]
    return {"refs": refs, "positives": pos, "negatives": neg}
