"""Screening for the video benchmark: each attacked query file fingerprinted once and matched
three ways (Nanhu fused, Nanhu video only, vPDQ), the clips drawn for the positives, and the
never-registered negatives.
"""

from __future__ import annotations

import dataclasses
import logging
import time

import numpy as np

from nanhu.benchmarks.attacks.video import ATTACKS, MAX_SPEED
from nanhu.benchmarks.attacks.video_clips import Clip, read_window
from nanhu.benchmarks.peers import pdq
from nanhu.engine.errors import MediaError
from nanhu.engine.fingerprint import fingerprint_media
from nanhu.engine.matcher import Match, Matcher

log = logging.getLogger(__name__)

#: attacks applied to the never-registered negatives, cycled; composites take their other
#: footage from another never-registered video. The framing and layout edits are here because
#: the query side tries extra views (regions, rotations) of exactly these kinds of video, and
#: every extra view is an extra chance of a false match.
NEGATIVE_ATTACKS = ("360p", "low-bitrate-150k", "hflip", "crop-10%", "caption", "logo",
                    "speed-1.25", "speed-0.8", "fps-15", "grayscale", "blur-3px", "240p",
                    "pip-40%", "side-by-side", "top-bottom", "rotate-90", "blurred-background",
                    "letterbox-1:1", "crop-30%-off-centre", "rotate-5+zoom", "zoom-1.3x")


def _progress(done: int, total: int, what: str, started: float) -> None:
    rate = done / max(time.perf_counter() - started, 1e-9)
    eta = (total - done) / rate if rate > 0 else 0
    log.info("%s: %d/%d (%.2f/s, ETA %.0f s)", what, done, total, rate, eta)



def _strength(evidence: dict) -> float:
    """``-log10_chance`` of a segment's evidence (summed over modalities for fused ones)."""
    if "log10_chance" in evidence:
        return -float(evidence["log10_chance"])
    return sum(_strength(v) for v in evidence.values() if isinstance(v, dict))


def _prediction(m: Match) -> dict:
    return {"reference_id": m.reference_id, "modality": m.modality, "score": m.score,
            "strength": _strength(m.evidence), "query_start_s": m.query_start_s,
            "query_end_s": m.query_end_s, "reference_start_s": m.reference_start_s,
            "reference_end_s": m.reference_end_s, "speed": m.speed, "evidence": m.evidence}


class Screener:
    """Screens one query file three ways and keeps the timings."""

    def __init__(self, matcher: Matcher, baseline: dict[str, pdq.VpdqIndex] | None,
                 keep_vectors: int = 200) -> None:
        self.matcher = matcher
        self.baseline = baseline
        self.keep_vectors = keep_vectors
        self.query_vectors: list[tuple[np.ndarray, np.ndarray]] = []

    def screen(self, data: bytes, *, keep_vectors: bool = True) -> dict:
        """Fused, video-only and vPDQ results for one query file, with timings (ms).

        ``keep_vectors``: keep the query's keyframe vectors for the scale test (positives)."""
        t0 = time.perf_counter()
        try:
            fp = fingerprint_media(data, query=True)
        except MediaError as exc:
            log.warning("query not fingerprinted: %s", exc)
            fp = None
        t1 = time.perf_counter()
        fused = self.matcher.match(fp) if fp is not None else []
        t2 = time.perf_counter()
        video_fp = None
        if fp is not None and fp.video is not None and len(fp.video):
            video_fp = dataclasses.replace(fp, audio=None, audio_params_tag="")
        video = self.matcher.match(video_fp) if video_fp is not None else []
        t3 = time.perf_counter()
        baseline = dense = None
        if self.baseline is not None:
            frames = pdq.hash_video(data)
            baseline, dense = (
                [{"reference_id": m.reference_id, "query_percent": m.query_match_percent}
                 for m in self.baseline[kind].match(frames)[:5]] for kind in ("1fps", "5fps"))
        t4 = time.perf_counter()
        if keep_vectors and video_fp is not None and len(self.query_vectors) < self.keep_vectors:
            self.query_vectors.append((video_fp.video.vectors, video_fp.video.times_s))
        return {
            "fused": [_prediction(m) for m in fused], "video": [_prediction(m) for m in video],
            "pdq": baseline, "pdq_5fps": dense, "keyframes": len(fp.video) if video_fp is not None else 0,
            "fingerprint_ms": (t1 - t0) * 1000, "match_ms": (t2 - t1) * 1000,
            "match_video_ms": (t3 - t2) * 1000, "pdq_ms": (t4 - t3) * 1000,
        }


def _head(clip: Clip, seconds: float) -> Clip:
    n = int(round(seconds * clip.fps))
    audio = None if clip.audio is None else clip.audio[: int(round(seconds * clip.sample_rate))]
    return dataclasses.replace(clip, frames=clip.frames[:n], audio=audio)


def _picks(refs: list[dict], negatives: list[dict], counts: dict[float, int],
           seed: int) -> list[dict]:
    """Seeded (reference, offset, background video, offset): ``counts[length]`` clips of each
    length, in rounds (round r holds the r-th clip of every length that has one). The draws do
    not depend on the counts, so a larger run extends a smaller one with the same clips."""
    rng = np.random.default_rng(seed)
    picks = []
    for round_index in range(max(counts.values(), default=0)):
        for length in sorted(counts):
            span = length * MAX_SPEED
            usable = [r for r in refs if r["duration_s"] >= span + 1.0]
            ref = usable[int(rng.integers(len(usable)))]
            other = negatives[int(rng.integers(len(negatives)))]
            offset = round(float(rng.uniform(0, ref["duration_s"] - span - 0.5)), 3)
            other_offset = round(float(rng.uniform(0, max(0.0, other["duration_s"] - length - 0.5))), 3)
            if round_index < counts[length]:
                picks.append({"round": round_index, "length_s": length, "ref": ref,
                              "offset_s": offset, "other": other, "other_offset_s": other_offset})
    return picks


def screen_positives(screener: Screener, picks: list[dict], attack_names: list[str], seed: int,
                     deadline: float | None) -> list[dict]:
    """Every attack on every pick; stops after the round in progress when past ``deadline``."""
    records: list[dict] = []
    started = time.perf_counter()
    total = len(picks) * len(attack_names)
    current_round = None
    for pick in picks:
        if pick["round"] != current_round:
            current_round = pick["round"]
            if deadline is not None and time.perf_counter() > deadline:
                log.warning("time budget spent: stopping before round %d", current_round)
                break
        length = pick["length_s"]
        window = read_window(pick["ref"]["path"], pick["offset_s"], length * MAX_SPEED)
        needs_other = any(ATTACKS[a].needs_other for a in attack_names)
        other = (read_window(pick["other"]["path"], pick["other_offset_s"], length)
                 if needs_other else None)
        for number, name in enumerate(attack_names):
            attack = ATTACKS[name]
            rng = np.random.default_rng([seed, pick["round"], int(length), number])
            query = attack.apply(_head(window, length * attack.speed), rng, other=other)
            data = attack.encode(query)
            result = screener.screen(data)
            records.append({
                "attack": name, "length_s": length, "reference_id": pick["ref"]["id"],
                "truth": {"query_start_s": 0.0, "query_end_s": query.duration_s,
                          "reference_start_s": pick["offset_s"],
                          "reference_end_s": pick["offset_s"] + length * attack.speed,
                          "speed": attack.speed},
                "query_bytes": len(data), **result,
            })
        del window, other
        _progress(len(records), total, "positive video queries", started)
    return records


def screen_negatives(screener: Screener, negatives: list[dict], n: int, seed: int,
                     lengths: tuple[float, ...]) -> list[dict]:
    """``n`` never-registered clips (cycling videos, lengths and attacks): every match is false."""
    rng = np.random.default_rng([seed, 99])
    records = []
    started = time.perf_counter()
    for i in range(n):
        video = negatives[i % len(negatives)]
        length = lengths[(i // len(negatives)) % len(lengths)]
        name = NEGATIVE_ATTACKS[i % len(NEGATIVE_ATTACKS)]
        attack = ATTACKS[name]
        span = length * attack.speed
        offset = float(rng.uniform(0, max(0.0, video["duration_s"] - span - 0.5)))
        clip = read_window(video["path"], offset, span)
        other = None
        if attack.needs_other:
            donor = negatives[(i + 1) % len(negatives)]
            other = read_window(donor["path"], 0.0, min(span, donor["duration_s"] - 0.5))
        data = attack.encode(attack.apply(clip, rng, other=other))
        records.append({"attack": name, "length_s": length, "negative_id": video["id"],
                        "offset_s": offset, **screener.screen(data, keep_vectors=False)})
        if (i + 1) % 25 == 0:
            _progress(i + 1, n, "negative video queries", started)
    return records
