"""The video recall benchmark: real footage, pirates' attacks, a PDQ baseline, false matches,
localisation, µAP, speed, latency at corpus size and at a million keyframes, index size.

``run_video_bench(out_dir, quick=...)`` builds (or reuses, under ``<cache>/bench``) a catalog of
the video corpus references (audio + video, ``fingerprint_media``) and the vPDQ baseline's
reference hashes, cuts clips of 5, 10 and 30 s at seeded random offsets, attacks them
(:mod:`benchmarks.attacks.video`), encodes each to H.264 mp4 and screens the file's bytes three
ways: Nanhu fused (``fingerprint_media(query=True)`` + ``Matcher.match``), Nanhu video only (the
same fingerprint with ``audio=None``, so the soundtrack cannot carry recall) and vPDQ
(:mod:`benchmarks.peers.pdq`). Never-registered negative videos, excerpted and attacked the
same way, count false matches.

Definitions
-----------
- *hit*: the best (first) match names the clip's reference. For vPDQ, the best reference that
  passes vPDQ's rule.
- *localisation error* of a hit: the four absolute differences between the match's
  ``query_start_s, query_end_s, reference_start_s, reference_end_s`` and the truth (the query
  copies ``[0, query duration]`` of itself from ``[offset, offset + length * speed]`` of the
  reference); a hit is localised when all four are within 1 s.
- *µAP* (segment level, VSC22-style, pooled): every match Nanhu returns for every query,
  positives and negatives, is one prediction ``(query, reference, segment, score)``. A
  prediction is correct when it names the query's reference and its segment overlaps the true
  segment in query time and in reference time (positive overlap); a second correct prediction
  for the same query counts as a false one. Predictions are ranked by score, ties broken by
  the evidence's ``-log10_chance`` (summed over audio and video for fused matches); µAP is
  ``sum over correct predictions of precision at its rank / number of positive queries``,
  so clips that produce no correct prediction lower it. (VSC22's official metric credits
  overlap by area; here a correct overlapping prediction counts once.)
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import resource
import shutil
import time
from pathlib import Path

import av
import numpy as np

from benchmarks.attacks.video import ATTACKS, MAX_SPEED
from benchmarks.attacks.video_clips import WORK_SIZE, Clip, read_window
from benchmarks.peers import pdq
from engine.catalog import Catalog
from engine.errors import MediaError
from engine.fingerprint import fingerprint_media
from engine.matcher import Match, Matcher

log = logging.getLogger(__name__)

LENGTHS = (5.0, 10.0, 30.0)
#: attacks applied to the never-registered negatives, cycled (no composites: they need a second video)
NEGATIVE_ATTACKS = ("360p", "low-bitrate-150k", "hflip", "crop-10%", "caption", "logo",
                    "speed-1.25", "speed-0.8", "fps-15", "grayscale", "blur-3px", "240p")
PDQ_REFERENCE_SIZE = (640, 360)


def _progress(done: int, total: int, what: str, started: float) -> None:
    rate = done / max(time.perf_counter() - started, 1e-9)
    eta = (total - done) / rate if rate > 0 else 0
    log.warning("%s: %d/%d (%.2f/s, ETA %.0f s)", what, done, total, rate, eta)


def _file_key(entries: list[dict]) -> str:
    stats = [(e["id"], Path(e["path"]).stat().st_size, Path(e["path"]).stat().st_mtime_ns)
             for e in entries]
    return hashlib.sha256(json.dumps(stats).encode()).hexdigest()[:12]


def _params_key() -> str:
    """The fingerprint parameter versions (a catalog is only reused for the same ones)."""
    from engine.audio.params import AudioParams
    from engine.video import VideoParams

    return f"{AudioParams().tag()}-{VideoParams().tag()}"


def catalog_matches_code(directory: Path, ref: dict) -> bool:
    """True when fingerprinting ``ref`` now gives what the cached catalog holds for it: the same
    number of audio hashes and the same keyframe vectors and times (the engine may change
    without a version bump while it is developed; then the catalog is rebuilt)."""
    from engine.vectors import VectorSegment

    fp = fingerprint_media(ref["path"])
    with Catalog(directory) as catalog:
        stored = catalog.get(ref["id"])
        n_video = len(fp.video) if fp.video is not None else 0
        if stored.n_hashes != (len(fp.audio) if fp.audio is not None else 0) or (
                stored.n_keyframes != n_video):
            return False
        if n_video == 0:
            return True
        rows = [(s.vectors[s.ordinals == stored.ordinal], s.times_s[s.ordinals == stored.ordinal])
                for s in (VectorSegment(directory / f["file"])
                          for f in catalog.manifest["video_segments"])]
    vectors = np.concatenate([r[0] for r in rows])
    times = np.concatenate([r[1] for r in rows])
    return (vectors.shape == fp.video.vectors.shape
            and np.allclose(vectors, fp.video.vectors, atol=1e-5)
            and np.allclose(times, fp.video.times_s, atol=1e-4))


# ---------------------------------------------------------------------------- building
def build_catalog(refs: list[dict], directory: Path) -> dict:
    """Register every reference (audio + video); returns build figures (times are wall, s)."""
    if directory.exists():
        shutil.rmtree(directory)
    media_s = fingerprint_s = 0.0
    started = time.perf_counter()
    with Catalog(directory, writable=True, create=True) as catalog:
        for number, ref in enumerate(refs, 1):
            t0 = time.perf_counter()
            fp = fingerprint_media(ref["path"])
            fingerprint_s += time.perf_counter() - t0
            media_s += ref["duration_s"]
            catalog.add(ref["id"], fp, title=ref["id"])
            if number % 10 == 0:
                catalog.commit()
                _progress(number, len(refs), "registering video references", started)
        catalog.commit()
        catalog.compact()
        stats = catalog.stats()
    build = {
        "references": stats["references"], "media_hours": media_s / 3600,
        "fingerprint_s": fingerprint_s, "x_realtime": media_s / max(fingerprint_s, 1e-9),
        "keyframes": stats["keyframes"], "video_index_bytes": stats["video_index_bytes"],
        "audio_index_bytes": stats["audio_index_bytes"], "video_params": stats["video_params"],
    }
    (directory / "build.json").write_text(json.dumps(build))
    return build


def pdq_indexes(refs: list[dict], cache: Path) -> tuple[dict[str, pdq.VpdqIndex], dict]:
    """vPDQ reference hashes at 5 fps (cached per file), loaded into two brute-force indexes:
    ``"1fps"`` (the standard sampling, taken from the 5 fps hashes) and ``"5fps"``."""
    cache.mkdir(parents=True, exist_ok=True)
    indexes = {"1fps": pdq.VpdqIndex(), "5fps": pdq.VpdqIndex()}
    hashed_s = media_s = 0.0
    for ref in refs:
        path = cache / f"{ref['id']}-{_file_key([ref])}-5fps.npz"
        if path.exists():
            frames = pdq.load_frames(path)
        else:
            t0 = time.perf_counter()
            frames = pdq.hash_video(ref["path"], every_s=0.2, size=PDQ_REFERENCE_SIZE)
            hashed_s += time.perf_counter() - t0
            media_s += ref["duration_s"]
            pdq.save_frames(path, frames)
        indexes["5fps"].add(ref["id"], frames)
        indexes["1fps"].add(ref["id"], pdq.subsample(frames, every_s=1.0))
    return indexes, {"frames": indexes["1fps"].frame_count,
                     "frames_5fps": indexes["5fps"].frame_count, "hashed_now_s": hashed_s,
                     "x_realtime_5fps": media_s / hashed_s if hashed_s else None}


def speed_ratio(refs: list[dict]) -> dict:
    """Time of ``fingerprint_video`` over a plain decode of every frame of the same file (PyAV,
    threaded like the engine, frames left in the decoder's format), on each of ``refs``: wall
    time and CPU time of this process (all threads)."""
    from engine.video import fingerprint_video

    rows = []
    for ref in refs:
        t0, c0 = time.perf_counter(), time.process_time()
        with av.open(ref["path"]) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            frames = sum(1 for _ in container.decode(stream))
        decode_s, decode_cpu = time.perf_counter() - t0, time.process_time() - c0
        t0, c0 = time.perf_counter(), time.process_time()
        fingerprint_video(ref["path"])
        fingerprint_s, fingerprint_cpu = time.perf_counter() - t0, time.process_time() - c0
        rows.append({"id": ref["id"], "size": f"{ref['width']}x{ref['height']}",
                     "frames": frames, "decode_s": decode_s, "fingerprint_s": fingerprint_s,
                     "ratio": fingerprint_s / decode_s, "cpu_ratio": fingerprint_cpu / decode_cpu})
    return {"files": rows, "ratio_median": float(np.median([r["ratio"] for r in rows])),
            "cpu_ratio_median": float(np.median([r["cpu_ratio"] for r in rows])),
            "decode_fps_median": float(np.median([r["frames"] / r["decode_s"] for r in rows]))}


# ---------------------------------------------------------------------------- screening
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
        data = attack.encode(attack.apply(clip, rng))
        records.append({"attack": name, "length_s": length, "negative_id": video["id"],
                        "offset_s": offset, **screener.screen(data, keep_vectors=False)})
        if (i + 1) % 25 == 0:
            _progress(i + 1, n, "negative video queries", started)
    return records


# ---------------------------------------------------------------------------- measures
def _hit(predictions: list[dict] | None, reference_id: str) -> bool:
    return bool(predictions) and predictions[0]["reference_id"] == reference_id


def _errors(prediction: dict, truth: dict) -> list[float]:
    return [abs(prediction[k] - truth[k]) for k in
            ("query_start_s", "query_end_s", "reference_start_s", "reference_end_s")]


def _overlaps(prediction: dict, truth: dict) -> bool:
    return (min(prediction["query_end_s"], truth["query_end_s"])
            > max(prediction["query_start_s"], truth["query_start_s"])
            and min(prediction["reference_end_s"], truth["reference_end_s"])
            > max(prediction["reference_start_s"], truth["reference_start_s"]))


def micro_ap(positives: list[dict], negatives: list[dict], key: str) -> float:
    """Segment-level µAP over the pooled predictions ``record[key]`` (see module docstring)."""
    ranked = []  # (score, strength, correct)
    for record in positives:
        claimed = False
        for p in sorted(record[key], key=lambda p: (-p["score"], -p["strength"])):
            correct = (not claimed and p["reference_id"] == record["reference_id"]
                       and _overlaps(p, record["truth"]))
            claimed |= correct
            ranked.append((p["score"], p["strength"], correct))
    for record in negatives:
        ranked.extend((p["score"], p["strength"], False) for p in record[key])
    if not positives:
        return 0.0
    ranked.sort(key=lambda r: (-r[0], -r[1]))
    correct = np.array([r[2] for r in ranked], bool)
    if not correct.any():
        return 0.0
    precision = np.cumsum(correct) / np.arange(1, correct.size + 1)
    return float(precision[correct].sum() / len(positives))


def _localisation(records: list[dict], key: str) -> dict:
    errors = [_errors(r[key][0], r["truth"]) for r in records if _hit(r[key], r["reference_id"])]
    if not errors:
        return {"hits": 0}
    worst = np.array([max(e) for e in errors])
    e = np.array(errors)
    return {"hits": len(errors), "within_1s": float(np.mean(worst <= 1.0)),
            "median_worst_error_s": float(np.median(worst)),
            "median_query_start_error_s": float(np.median(e[:, 0])),
            "median_query_end_error_s": float(np.median(e[:, 1])),
            "median_reference_start_error_s": float(np.median(e[:, 2])),
            "median_reference_end_error_s": float(np.median(e[:, 3]))}


def _rate(flags: list[bool]) -> float | None:
    return float(np.mean(flags)) if flags else None


def summarise(positives: list[dict], negatives: list[dict], attack_names: list[str]) -> dict:
    rows = []
    for name in attack_names:
        for length in [*sorted({r["length_s"] for r in positives}), None]:
            group = [r for r in positives if r["attack"] == name
                     and (length is None or r["length_s"] == length)]
            if not group:
                continue
            fused_hits = [r for r in group if _hit(r["fused"], r["reference_id"])]
            modality = {m: sum(1 for r in fused_hits if r["fused"][0]["modality"] == m)
                        for m in ("video", "audio", "audio+video")}
            rows.append({
                "attack": name, "length_s": length, "queries": len(group),
                "recall_video": _rate([_hit(r["video"], r["reference_id"]) for r in group]),
                "recall_fused": len(fused_hits) / len(group),
                "recall_pdq": (_rate([_hit(r["pdq"], r["reference_id"]) for r in group])
                               if group[0]["pdq"] is not None else None),
                "recall_pdq_5fps": (_rate([_hit(r["pdq_5fps"], r["reference_id"]) for r in group])
                                    if group[0]["pdq_5fps"] is not None else None),
                "fused_modality": modality,
                "wrong_top1_fused": sum(1 for r in group if r["fused"]
                                        and r["fused"][0]["reference_id"] != r["reference_id"]),
                "wrong_top1_video": sum(1 for r in group if r["video"]
                                        and r["video"][0]["reference_id"] != r["reference_id"]),
            })

    def false(key: str) -> dict:
        flagged = [r for r in negatives if r[key]]
        return {"queries": len(negatives), "queries_with_false_match": len(flagged),
                "false_matches": sum(len(r[key]) for r in flagged),
                "examples": [{"attack": r["attack"], "negative_id": r["negative_id"],
                              "length_s": r["length_s"], "top": r[key][0]} for r in flagged[:10]]}

    def pct(key: str, q: float) -> float | None:
        values = [r[key] for r in positives]
        return float(np.percentile(values, q)) if values else None

    return {
        "rows": rows,
        "false_matches": {"fused": false("fused"), "video": false("video"),
                          "pdq": false("pdq") if negatives and negatives[0]["pdq"] is not None
                          else None,
                          "pdq_5fps": false("pdq_5fps") if negatives
                          and negatives[0]["pdq_5fps"] is not None else None},
        "localisation": {"fused": _localisation(positives, "fused"),
                         "video": _localisation(positives, "video")},
        "micro_ap": {"fused": micro_ap(positives, negatives, "fused"),
                     "video": micro_ap(positives, negatives, "video")},
        "latency": {"match_ms_p50": pct("match_ms", 50), "match_ms_p99": pct("match_ms", 99),
                    "match_video_ms_p50": pct("match_video_ms", 50),
                    "match_video_ms_p99": pct("match_video_ms", 99),
                    "fingerprint_ms_p50": pct("fingerprint_ms", 50),
                    "pdq_ms_p50": pct("pdq_ms", 50)},
    }


# ---------------------------------------------------------------------------- scale
@dataclasses.dataclass
class _ArraySegment:
    """In-memory stand-in for a vector segment (what FaissVectorIndex reads)."""

    vectors: np.ndarray
    ordinals: np.ndarray
    times_s: np.ndarray

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def __len__(self) -> int:
        return int(self.ordinals.size)


def scale_test(catalog: Catalog, queries: list[tuple[np.ndarray, np.ndarray]], *,
               total_keyframes: int, seed: int = 0, ef_search: tuple[int, ...] = (64, 128)) -> dict:
    """Video search + alignment latency, flat vs HNSW, over the real keyframes plus random unit
    vectors up to ``total_keyframes``; HNSW's recall@k against flat on the real query vectors."""
    from engine import video_align
    from engine.vectors import FaissVectorIndex, VectorSegment

    params = video_align.default_params()
    real = [VectorSegment(catalog.path / s["file"]) for s in catalog.manifest["video_segments"]]
    dim = real[0].dim
    n_real = sum(len(s) for s in real)
    n_synthetic = max(0, total_keyframes - n_real)
    rng = np.random.default_rng([seed, 1_000_003])
    synthetic = np.empty((n_synthetic, dim), np.float32)
    for start in range(0, n_synthetic, 100_000):
        block = rng.standard_normal((min(100_000, n_synthetic - start), dim), dtype=np.float32)
        synthetic[start:start + block.shape[0]] = block / np.linalg.norm(block, axis=1, keepdims=True)
    per_ref = 400  # synthetic references of 400 keyframes each, ordinals past the real ones
    segments = [*real, _ArraySegment(
        synthetic, (10_000_000 + np.arange(n_synthetic) // per_ref).astype(np.uint32),
        ((np.arange(n_synthetic) % per_ref) * 0.5).astype(np.float32))]
    result: dict = {"keyframes": n_real + n_synthetic, "real_keyframes": n_real, "dim": dim,
                    "k": params.k, "queries": len(queries)}
    rows: dict[str, np.ndarray] = {}
    top: dict[str, list] = {}
    for kind in ("flat", "hnsw"):
        t0 = time.perf_counter()
        # One segment (the synthetic keyframes) is large enough for a graph; the real ones stay
        # exact, as in a catalog after compaction of the synthetic part.
        index = FaissVectorIndex(segments, hnsw_threshold=1 if kind == "hnsw" else 1 << 62)
        build_s = time.perf_counter() - t0
        latencies, best = [], []
        for vectors, times in queries:
            t0 = time.perf_counter()
            ordinals, ref_times, sims = index.search(vectors, params.k)
            segs = video_align.align_video(times, ordinals, ref_times, sims, params=params,
                                           query_vectors=vectors,
                                           catalog_keyframes=n_real + n_synthetic)
            latencies.append((time.perf_counter() - t0) * 1000)
            best.append(segs[0].reference if segs else None)
        top[kind] = best
        stacked = np.concatenate([v for v, _ in queries]) if queries else np.zeros((0, dim), np.float32)
        entry = {"build_s": build_s,
                 "latency_ms_p50": float(np.percentile(latencies, 50)) if latencies else None,
                 "latency_ms_p99": float(np.percentile(latencies, 99)) if latencies else None,
                 "memory_bytes_estimate": (n_real + n_synthetic) * dim * 4
                 + (int(n_real + n_synthetic) * 32 * 2 * 4 if kind == "hnsw" else 0)}
        if kind == "flat":
            rows["flat"] = index.search_rows(stacked, params.k)[1]
        else:
            entry["recall_at_k"] = {}
            for ef in ef_search:
                index.set_ef_search(ef)
                found = index.search_rows(stacked, params.k)[1]
                entry["recall_at_k"][str(ef)] = _overlap_recall(found, rows["flat"])
            index.set_ef_search(ef_search[0])
        result[kind] = entry
        del index
    agree = [a == b for a, b in zip(top["flat"], top["hnsw"])]
    result["top1_agreement"] = float(np.mean(agree)) if agree else None
    return result


def _overlap_recall(found: np.ndarray, exact: np.ndarray) -> float | None:
    """Mean share of each row's exact neighbours that ``found`` also returned."""
    shares = []
    for f, e in zip(found, exact):
        e = e[e >= 0]
        if e.size:
            shares.append(np.isin(e, f).mean())
    return float(np.mean(shares)) if shares else None


# ---------------------------------------------------------------------------- run
def run_video_bench(
    out_dir: Path, *, quick: bool = False, seed: int = 0, references: int | None = None,
    clips_per_length: int | dict[float, int] | None = None, negatives: int | None = None,
    negative_lengths: tuple[float, ...] = LENGTHS, synthetic_keyframes: int | None = None,
    attack_names: list[str] | None = None, corpus: dict | None = None,
    time_budget_s: float | None = None, baseline: bool = True,
) -> dict:
    """Run the benchmark; writes ``out_dir/video-results.json`` and returns the summary.

    quick: 20 references, clips per attack 2 x 5 s, 2 x 10 s, 1 x 30 s, 30 negatives, 100k
    synthetic keyframes. Full: every reference, ``clips_per_length`` (default 20 of each of
    5, 10 and 30 s; an int applies to every length, a dict gives the count per length) clips
    per attack, 300 negatives, 1,000,000 synthetic keyframes. ``time_budget_s`` stops the
    positive clips after the round in progress once spent (every attack then still has the
    same clips); the counts actually run are in the summary.
    """
    from benchmarks.corpus.cache import cache_dir

    wall0 = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    corpus = corpus or load_or_build_corpus()
    refs = corpus["references"][: references or (20 if quick else len(corpus["references"]))]
    negative_videos = corpus["negatives"]
    attack_names = attack_names or list(ATTACKS)
    n_negatives = negatives if negatives is not None else (30 if quick else 300)
    n_synthetic = synthetic_keyframes or (100_000 if quick else 1_000_000)
    if clips_per_length is None:
        clips_per_length = {5.0: 2, 10.0: 2, 30.0: 1} if quick else 20
    counts = (dict(clips_per_length) if isinstance(clips_per_length, dict)
              else dict.fromkeys(LENGTHS, clips_per_length))

    bench = cache_dir() / "bench"
    catalog_dir = bench / f"video-catalog-{_file_key(refs)}-{_params_key()}"
    probe = min(refs, key=lambda r: r["duration_s"])
    if ((catalog_dir / "build.json").exists() and (catalog_dir / "manifest.json").exists()
            and catalog_matches_code(catalog_dir, probe)):
        build = json.loads((catalog_dir / "build.json").read_text())
    else:
        log.warning("building the video benchmark catalog (%d references)", len(refs))
        build = build_catalog(refs, catalog_dir)
    baseline_info = {"available": pdq.available()}
    index = None
    if baseline and baseline_info["available"] is None:
        index, info = pdq_indexes(refs, bench / "pdq")
        baseline_info.update(info)
    speed = speed_ratio(refs[:3 if quick else 5])

    catalog = Catalog(catalog_dir)
    screener = Screener(Matcher(catalog), index, keep_vectors=60 if quick else 100)
    picks = _picks(refs, negative_videos, counts, seed)
    # Negatives first: a time budget then only trims the positive rounds.
    negative_records = screen_negatives(screener, negative_videos, n_negatives, seed,
                                        negative_lengths)
    deadline = None if time_budget_s is None else wall0 + time_budget_s
    positives = screen_positives(screener, picks, attack_names, seed, deadline)
    summary = summarise(positives, negative_records, attack_names)
    results_path = out_dir / "video-results.json"
    # Written now and again at the end: the scale test is long and must not lose the queries.
    results_path.write_text(json.dumps({"summary": summary, "positives": positives,
                                        "negatives": negative_records}, indent=1, default=float))
    summary["scale"] = scale_test(catalog, screener.query_vectors, total_keyframes=n_synthetic,
                                  seed=seed)
    hours = build["media_hours"]
    summary.update({
        "build": build, "baseline": baseline_info, "speed": speed,
        "bytes_per_hour": {"video": build["video_index_bytes"] / hours,
                           "audio": build["audio_index_bytes"] / hours,
                           "keyframes_per_hour": build["keyframes"] / hours},
        "config": {"quick": quick, "seed": seed, "references": len(refs),
                   "clips_per_attack": {f"{L:g}": sum(1 for p in positives if p["length_s"] == L
                                                    and p["attack"] == attack_names[0])
                                        for L in sorted(counts)},
                   "negatives": len(negative_records), "attacks": attack_names,
                   "synthetic_keyframes": n_synthetic, "work_size": list(WORK_SIZE)},
        "wall_s": time.perf_counter() - wall0,
        "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    })
    results_path.write_text(json.dumps(
        {"summary": summary, "positives": positives, "negatives": negative_records},
        indent=1, default=float))
    catalog.close()
    return summary


# ---------------------------------------------------------------------------- report
def _pct(value: float | None, digits: int = 0) -> str:
    return "–" if value is None else f"{100 * value:.{digits}f}"


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}"


def video_markdown(summary: dict) -> str:
    """The video section of the benchmark report."""
    cfg = summary["config"]
    lengths = sorted(float(k) for k in cfg["clips_per_attack"])
    by = {(r["attack"], r["length_s"]): r for r in summary["rows"]}
    head = " / ".join(f"{L:.0f} s" for L in lengths) + " / all"
    lines = [
        "## Video", "",
        f"References: {cfg['references']} ({summary['build']['media_hours']:.2f} h); clips per "
        f"attack: {', '.join(f'{n} x {L} s' for L, n in cfg['clips_per_attack'].items())}; "
        f"negatives: {cfg['negatives']}; queries decoded at {cfg['work_size'][0]}x"
        f"{cfg['work_size'][1]} before attacking, then H.264 (x264 ultrafast, CRF 23 unless "
        "stated) + AAC. Top-1 recall in %; vPDQ = PDQ per frame at 1 fps with threatexchange's "
        "rule (quality >= 50, distance <= 31, >= 80 % of query frames).", "",
        f"| attack | Nanhu video only ({head}) | Nanhu fused ({head}) | vPDQ ({head}) | "
        "vPDQ, refs at 5 fps (all) | fused hits: video / audio / a+v |",
        "|---|---|---|---|---|---|",
    ]
    for name in cfg["attacks"]:
        cells = []
        for key in ("recall_video", "recall_fused", "recall_pdq"):
            cells.append(" / ".join(_pct(by[(name, L)][key]) if (name, L) in by else "–"
                                    for L in [*lengths, None]))
        cells.append(_pct(by[(name, None)]["recall_pdq_5fps"]) if (name, None) in by else "–")
        modality = by[(name, None)]["fused_modality"] if (name, None) in by else {}
        cells.append(" / ".join(str(modality.get(m, 0)) for m in ("video", "audio", "audio+video")))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    fm, loc, ap, lat = (summary["false_matches"], summary["localisation"], summary["micro_ap"],
                        summary["latency"])
    pdq_fm, dense_fm = fm.get("pdq"), fm.get("pdq_5fps")
    scale, speed, bph = summary["scale"], summary["speed"], summary["bytes_per_hour"]

    def loc_cell(entry: dict) -> str:
        if not entry.get("hits"):
            return "no hits"
        return (f"{_pct(entry['within_1s'])} % of {entry['hits']} hits within 1 s; median worst "
                f"error {entry['median_worst_error_s']:.2f} s (reference start "
                f"{entry['median_reference_start_error_s']:.2f} s)")

    lines += [
        "", "| measure | value |", "|---|---|",
        f"| false matches on never-registered video (queries flagged / matches) | fused "
        f"{fm['fused']['queries_with_false_match']} / {fm['fused']['false_matches']}, video only "
        f"{fm['video']['queries_with_false_match']} / {fm['video']['false_matches']}, vPDQ "
        f"{pdq_fm['queries_with_false_match'] if pdq_fm else '–'} (refs at 5 fps: "
        f"{dense_fm['queries_with_false_match'] if dense_fm else '–'}), of "
        f"{fm['fused']['queries']} queries |",
        f"| localisation, fused | {loc_cell(loc['fused'])} |",
        f"| localisation, video only | {loc_cell(loc['video'])} |",
        f"| segment µAP (pooled, VSC22-style) | fused {ap['fused']:.3f}, video only "
        f"{ap['video']:.3f} |",
        f"| fingerprint_video time / plain decode time | {speed['ratio_median']:.2f}x wall, "
        f"{speed['cpu_ratio_median']:.2f}x CPU (median of {len(speed['files'])} references; "
        f"plain decode {speed['decode_fps_median']:.0f} frames/s) |",
        f"| reference registration (audio + video, decode included) | "
        f"{summary['build']['x_realtime']:.1f}x real time |",
        f"| query fingerprinting p50 (audio + video) | {_ms(lat['fingerprint_ms_p50'])} ms |",
        f"| match latency at corpus size ({summary['build']['keyframes']:,} keyframes) p50 / p99 | "
        f"fused {_ms(lat['match_ms_p50'])} / {_ms(lat['match_ms_p99'])} ms, video only "
        f"{_ms(lat['match_video_ms_p50'])} / {_ms(lat['match_video_ms_p99'])} ms |",
        f"| video search + alignment at {scale['keyframes']:,} keyframes (d={scale['dim']}), "
        f"p50 / p99 | flat {_ms(scale['flat']['latency_ms_p50'])} / "
        f"{_ms(scale['flat']['latency_ms_p99'])} ms; HNSW (M=32, efSearch 64) "
        f"{_ms(scale['hnsw']['latency_ms_p50'])} / {_ms(scale['hnsw']['latency_ms_p99'])} ms "
        f"(build {scale['hnsw']['build_s']:.0f} s) |",
        f"| HNSW recall@{scale['k']} vs flat on real query vectors | "
        + ", ".join(f"efSearch {ef}: {_pct(r, 1)} %" for ef, r in scale["hnsw"]["recall_at_k"].items())
        + f"; same best reference after alignment: {_pct(scale['top1_agreement'])} % |",
        f"| video index size | {bph['video'] / 2**20:.2f} MiB per hour "
        f"({bph['keyframes_per_hour']:.0f} keyframes per hour); audio {bph['audio'] / 2**20:.2f} "
        "MiB per hour |",
        f"| vPDQ baseline | {summary['baseline'].get('frames', 0):,} reference frames at 1 fps "
        f"({summary['baseline'].get('frames_5fps', 0):,} at 5 fps); "
        f"query hashing + matching p50 {_ms(lat['pdq_ms_p50'])} ms |",
    ]
    if summary["baseline"]["available"]:
        lines.append(f"| vPDQ baseline unavailable | {summary['baseline']['available']} |")
    return "\n".join(lines) + "\n"


def video_plots(summary: dict, out_dir: Path) -> list[str]:
    """video-recall-per-attack.png: recall per attack (all lengths) for Nanhu and vPDQ."""
    from benchmarks.report import pyplot

    plt = pyplot()

    names = summary["config"]["attacks"]
    pooled = {r["attack"]: r for r in summary["rows"] if r["length_s"] is None}
    series = [("recall_video", "Nanhu video only"), ("recall_fused", "Nanhu fused"),
              ("recall_pdq", "vPDQ (PDQ 1 fps)"), ("recall_pdq_5fps", "vPDQ, refs at 5 fps")]
    fig, ax = plt.subplots(figsize=(14, 4.8))
    x = np.arange(len(names))
    width = 0.21
    for i, (key, label) in enumerate(series):
        values = [100 * (pooled[n][key] or 0) if n in pooled else 0 for n in names]
        ax.bar(x + (i - 1.5) * width, values, width=width, label=label)
    ax.set_xticks(x, names, rotation=60, ha="right", fontsize=8)
    ax.set_ylabel("top-1 recall (%)")
    ax.set_ylim(0, 118)
    ax.set_yticks(range(0, 101, 20))
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="upper center", ncol=4, fontsize=8)
    ax.set_title("Video recall per attack (5, 10 and 30 s clips pooled)")
    fig.tight_layout()
    fig.savefig(out_dir / "video-recall-per-attack.png", dpi=110)
    plt.close(fig)
    return ["video-recall-per-attack.png"]


#: the full run stops starting rounds of positive clips this long after it began (s)
FULL_TIME_BUDGET_S = 3600.0


def load_or_build_corpus() -> dict:
    """The cached video corpus, built first (about an hour on 2 cores) when it is missing."""
    from benchmarks.corpus.video import build_video_corpus, load_video_corpus

    try:
        return load_video_corpus()
    except FileNotFoundError:
        log.warning("building the video corpus (100 references, 30 negatives; about an hour "
                    "on 2 cores, once)")
        return build_video_corpus(progress=lambda done, total, what: log.warning(
            "video corpus: %d/%d (%s)", done, total, what))


#: ``nanhu bench --tiny``: a smoke run of every step on the tiny generated corpus
TINY = {"references": 3, "clips_per_length": {5.0: 1, 10.0: 1}, "negatives": 2,
        "negative_lengths": (5.0,), "synthetic_keyframes": 5_000,
        "attack_names": ["360p", "hflip", "speed-1.25", "pip-50%"]}


def run_video_bench_section(out_dir: Path, *, quick: bool, seed: int,
                            tiny: bool = False) -> tuple[str, dict]:
    """What ``nanhu bench video`` calls: (Markdown section with plots, summary dict).

    The full run takes as many rounds of positive clips (up to 20 per attack and length) as
    fit in :data:`FULL_TIME_BUDGET_S`; the report states the counts.
    """
    sizes = TINY if tiny else {}
    summary = run_video_bench(Path(out_dir), quick=quick or tiny, seed=seed,
                              time_budget_s=None if quick or tiny else FULL_TIME_BUDGET_S,
                              **sizes)
    plots = video_plots(summary, Path(out_dir))
    return video_markdown(summary) + "".join(f"\n![{p}]({p})\n" for p in plots), summary
