"""The audio recall benchmark: real music, pirates' attacks, false matches, speed, size.

``run_audio_bench(out_dir, quick=...)`` builds (or reuses) a catalog of the corpus references,
cuts excerpts at seeded random offsets, attacks them (:mod:`benchmarks.audio_attacks`), and
screens each through the same path the CLI uses (``fingerprint_media`` on the query's bytes,
then ``Matcher.match``). It writes ``audio-results.json`` and returns the summary dict that
:mod:`benchmarks.report` renders.

A query counts as a top-1 hit when the best match names the excerpt's reference. The reference
offset error is ``|(reference_start_s - query_start_s * speed) - true_offset|``, modulo the
track's loop period when the corpus found it loops (a loop repeats the same audio, so either
position is right).
"""

from __future__ import annotations

import json
import logging
import resource
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from nanhu.benchmarks import audio_attacks as attacks
from nanhu.engine.audio.align import AudioMatchParams
from nanhu.engine.audio.params import AudioParams
from nanhu.engine.catalog import Catalog
from nanhu.engine.errors import EmptyMediaError
from nanhu.engine.fingerprint import fingerprint_media
from nanhu.engine.matcher import Matcher
from nanhu.engine.media import load_audio

log = logging.getLogger(__name__)

ATTACK_RATE = 16000  # Hz: excerpts are cut and attacked at this rate, then handed over as WAV


@dataclass
class QueryResult:
    condition: str
    length_s: float
    reference_id: str
    true_offset_s: float
    found_id: str | None
    correct: bool
    offset_error_s: float | None
    speed: float | None
    score: float | None
    n_matches: int
    fingerprint_ms: float
    match_ms: float


def _progress(done: int, total: int, what: str, started: float) -> None:
    rate = done / max(time.perf_counter() - started, 1e-9)
    eta = (total - done) / rate if rate > 0 else 0
    log.info("%s: %d/%d (%.1f/s, ETA %.0f s)", what, done, total, rate, eta)


def build_catalog(corpus: dict, directory: Path, params: AudioParams) -> dict:
    """Register every corpus reference (audio only); returns fingerprinting speed figures.

    Speed is media seconds per CPU second of this process (one core), decode included.
    """
    directory.mkdir(parents=True, exist_ok=True)
    media_s = 0.0
    cpu_s = 0.0
    wall0 = time.perf_counter()
    with Catalog(directory, writable=True, create=True, audio_params=params) as catalog:
        for number, ref in enumerate(corpus["references"], 1):
            cpu0 = time.process_time()
            fp = fingerprint_media(ref["path"], audio_params=params, video=False)
            cpu_s += time.process_time() - cpu0
            media_s += fp.duration_s
            catalog.add(ref["id"], fp, title=ref["id"], metadata={"package": ref["package"]})
            if number % 25 == 0:
                catalog.commit()
                _progress(number, len(corpus["references"]), "registering references", wall0)
        catalog.commit()
        catalog.compact()
        stats = catalog.stats()
    return {
        "media_hours": media_s / 3600, "fingerprint_cpu_s": cpu_s,
        "fingerprint_x_realtime_per_core": media_s / max(cpu_s, 1e-9),
        "index_bytes": stats["audio_index_bytes"], "references": stats["references"],
        "index_bytes_per_hour": stats["audio_index_bytes"] / max(media_s / 3600, 1e-9),
        "postings": stats["audio_hashes"],
    }


def _offset_error(est: float, truth: float, ref: dict) -> float:
    error = abs(est - truth)
    for lag in [ref.get("loop_period_s")] + list(ref.get("repeat_lags_s") or []):
        if lag:
            error = min(error, abs(((est - truth) + lag / 2) % lag - lag / 2))
    return error


def run_audio_bench(
    out_dir: Path, *, quick: bool = False, seed: int = 0, queries_per_condition: int | None = None,
    negatives: int | None = None, conditions: list[str] | None = None,
    corpus: dict | None = None, catalog_dir: Path | None = None,
    params: AudioParams | None = None, match: AudioMatchParams | None = None,
    peer: bool = False,
) -> dict:
    """Run the benchmark; writes ``out_dir/audio-results.json`` and returns the summary.

    ``peer=True`` also screens every query's WAV bytes with audfprint (defaults and tuned,
    :mod:`benchmarks.peer_audfprint`) and adds the side-by-side figures as ``summary["peer"]``.
    """
    from nanhu.benchmarks.corpus.audio import cache_dir, load_audio_corpus

    out_dir.mkdir(parents=True, exist_ok=True)
    corpus = corpus or load_audio_corpus()
    params = params or AudioParams()
    match = match or AudioMatchParams()
    n_queries = queries_per_condition or (25 if quick else 200)
    n_negatives = negatives or (100 if quick else 1000)
    conditions = conditions or list(attacks.CONDITIONS)
    if quick:
        conditions = [c for c in conditions if c in QUICK_CONDITIONS]
    catalog_dir = catalog_dir or (
        cache_dir() / "bench" / f"audio-catalog-{params.tag()}-{_corpus_key(corpus)}"
    )
    if (catalog_dir / "manifest.json").exists() and (catalog_dir / "build.json").exists():
        build = json.loads((catalog_dir / "build.json").read_text())
    else:
        if catalog_dir.exists():
            import shutil

            shutil.rmtree(catalog_dir)
        build = build_catalog(corpus, catalog_dir, params)
        (catalog_dir / "build.json").write_text(json.dumps(build))
    catalog = Catalog(catalog_dir)
    matcher = Matcher(catalog, audio_match=match)
    peer_run = None
    if peer:
        from nanhu.benchmarks.peers.audfprint_comparison import AudioPeerComparison

        peer_run = AudioPeerComparison(corpus["references"])
    rng = np.random.default_rng(seed)
    refs = [r for r in corpus["references"] if r["duration_s"] >= 15]
    speech = [load_audio(s["path"], sample_rate=ATTACK_RATE) for s in corpus["speech"][:40]]
    fillers = corpus["negatives"]
    decoded: dict[str, np.ndarray] = {}

    def excerpt_of(ref: dict, offset: float, length: float) -> np.ndarray:
        if ref["id"] not in decoded:
            decoded[ref["id"]] = load_audio(ref["path"], sample_rate=ATTACK_RATE)
        x = decoded[ref["id"]]
        start = int(offset * ATTACK_RATE)
        return x[start : start + int(length * ATTACK_RATE)]

    results: list[QueryResult] = []
    total = len(conditions) * 2 * n_queries
    started = time.perf_counter()
    for length in (5.0, 10.0):
        picks = [
            (refs[i], float(rng.uniform(0, refs[i]["duration_s"] - length - 10.0 * 1.2)))
            for i in rng.integers(0, len(refs), n_queries)
        ]
        # an excerpt of silence copies nothing: drawn again (its own seed, so every other
        # pick stays the one earlier runs used)
        picks = [(ref, attacks.audible_offset(
            excerpt_of(ref, 0.0, ref["duration_s"]), ATTACK_RATE, offset, length * 1.2,
            ref["duration_s"] - length - 10.0 * 1.2, np.random.default_rng([seed, 97, int(length), k])))
            for k, (ref, offset) in enumerate(picks)]
        for condition in conditions:
            crng = np.random.default_rng([seed, int(length), conditions.index(condition)])
            for ref, offset in picks:
                # Speed changes need a longer source excerpt to fill `length` after stretching.
                speed = attacks.speed_of(condition)
                source = excerpt_of(ref, offset, length * speed)
                query, query_start = _attack(condition, source, crng, speech, fillers)
                results.append(_screen(matcher, params, query, condition, length, ref, offset,
                                       query_start, peer=peer_run))
                if len(results) % 200 == 0:
                    _progress(len(results), total, "positive queries", started)
    negatives_out = _negatives(matcher, params, corpus, n_negatives, seed, speech, peer=peer_run)
    calibration = _calibrate(catalog, params, corpus, refs, excerpt_of, seed, quick)
    summary = summarise(results, negatives_out, build, catalog)
    summary["calibration"] = calibration
    summary["config"] = {"queries_per_condition": n_queries, "negatives": n_negatives,
                         "seed": seed, "quick": quick, "params": params.to_dict(),
                         "match": asdict(match)}
    if peer_run is not None:
        summary["peer"] = peer_run.summary()
        peer_run.close()
    summary["max_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    (out_dir / "audio-results.json").write_text(json.dumps(
        {"summary": summary, "queries": [asdict(r) for r in results],
         "negatives": negatives_out,
         "peer_queries": peer_run.rows if peer_run else None}, indent=1))
    catalog.close()
    return summary


QUICK_CONDITIONS = {"clean", "mp3-128k", "amr-nb-12.2k", "pink-snr5", "pink-snr0", "babble-snr5",
                    "speed-0.8", "speed-0.9", "speed-1.1", "speed-1.2", "tempo-0.95",
                    "tempo-1.05", "pitch-1", "pitch+1", "pitch-2", "pitch+2", "speech-over-0dB",
                    "song-under-0dB", "embedded-60s"}


def load_head(path: str, seconds: float) -> np.ndarray:
    """The first ``seconds`` of a file at ``ATTACK_RATE`` (decoding stops there)."""
    from nanhu.engine.media import decode_audio

    chunks, total = [], 0
    for chunk in decode_audio(path, sample_rate=ATTACK_RATE):
        chunks.append(chunk)
        total += chunk.size
        if total >= seconds * ATTACK_RATE:
            break
    return np.concatenate(chunks)[: int(seconds * ATTACK_RATE)]


def _corpus_key(corpus: dict) -> str:
    import hashlib

    ids = ",".join(sorted(r["sha256"] for r in corpus["references"]))
    return hashlib.sha256(ids.encode()).hexdigest()[:10]


def _attack(condition, source, rng, speech, fillers):
    function, kwargs = attacks.CONDITIONS[condition]
    if function is None:
        return source, 0.0
    if function == "babble":
        noise = attacks.babble(speech, source.size, rng)
        return attacks.mix_at_snr(source, noise, kwargs["snr_db"]), 0.0
    if function == "speech-over":
        talk = speech[int(rng.integers(len(speech)))]
        talk = np.resize(talk, source.size)  # loop a short utterance over the whole excerpt
        return attacks.mix_at_snr(source, talk, kwargs["snr_db"]), 0.0
    if function == "song-under":
        filler = load_head(fillers[int(rng.integers(len(fillers)))]["path"], 70.0)
        start = int(rng.integers(0, max(1, filler.size - source.size)))
        return attacks.mix_at_snr(source, np.resize(filler[start:], source.size),
                                  kwargs["snr_db"]), 0.0
    if function == "embed":
        filler_ref = fillers[int(rng.integers(len(fillers)))]
        filler = load_head(filler_ref["path"], 70.0)
        return attacks.embed(source, ATTACK_RATE, rng, filler=filler)
    return function(source, ATTACK_RATE, rng, **kwargs), 0.0


def query_fingerprint(data: bytes, params: AudioParams):
    """The query's fingerprint, or None when it holds nothing (a silent excerpt: no match)."""
    try:
        return fingerprint_media(data, audio_params=params, query=True, video=False,
                                 keys_on_demand=True)
    except EmptyMediaError:
        return None


def _screen(matcher, params, query, condition, length, ref, offset, query_start,
            peer=None) -> QueryResult:
    data = attacks.to_wav_bytes(query, ATTACK_RATE)
    t0 = time.perf_counter()
    fp = query_fingerprint(data, params)
    t1 = time.perf_counter()
    matches = matcher.match(fp) if fp is not None else []
    t2 = time.perf_counter()
    if peer is not None:
        from nanhu.benchmarks.peers.audfprint_comparison import PeerQuery

        peer.query(PeerQuery(data, condition, length, ref, offset, query_start,
                             nanhu_ms=(t2 - t0) * 1000))
    best = matches[0] if matches else None
    correct = best is not None and best.reference_id == ref["id"]
    error = None
    if correct:
        estimate = best.reference_start_s - (best.query_start_s - query_start) * best.speed
        error = _offset_error(estimate, offset, ref)
    return QueryResult(
        condition=condition, length_s=length, reference_id=ref["id"], true_offset_s=offset,
        found_id=best.reference_id if best else None, correct=correct, offset_error_s=error,
        speed=best.speed if best else None, score=best.score if best else None,
        n_matches=len(matches), fingerprint_ms=(t1 - t0) * 1000, match_ms=(t2 - t1) * 1000,
    )


NEGATIVE_CONDITIONS = ["clean", "mp3-128k", "pink-snr5", "speed-1.05", "speed-0.9", "clipping",
                       "gain-20dB", "babble-snr10"]


def _negatives(matcher, params, corpus, n, seed, speech, peer=None) -> dict:
    """Never-registered music, excerpted and attacked: every match returned is a false one."""
    rng = np.random.default_rng([seed, 99])
    negatives = [r for r in corpus["negatives"] if r["duration_s"] >= 15]
    decoded = {}
    false_matches = []
    match_ms = []
    for i in range(n):
        ref = negatives[i % len(negatives)]
        if ref["id"] not in decoded:
            decoded[ref["id"]] = load_audio(ref["path"], sample_rate=ATTACK_RATE)
        x = decoded[ref["id"]]
        length = 5.0 if i % 2 == 0 else 10.0
        start = int(rng.uniform(0, max(1.0, x.size / ATTACK_RATE - length - 1)) * ATTACK_RATE)
        condition = NEGATIVE_CONDITIONS[i % len(NEGATIVE_CONDITIONS)]
        query, _ = _attack(condition, x[start : start + int(length * ATTACK_RATE * 1.2)], rng,
                           speech, [])
        data = attacks.to_wav_bytes(query, ATTACK_RATE)
        fp = query_fingerprint(data, params)
        t0 = time.perf_counter()
        matches = matcher.match(fp) if fp is not None else []
        match_ms.append((time.perf_counter() - t0) * 1000)
        if peer is not None:
            peer.negative(data, condition)
        for m in matches:
            false_matches.append({"query": ref["id"], "condition": condition,
                                  "reference_id": m.reference_id, "score": m.score,
                                  "evidence": m.evidence})
    return {"queries": n, "false_matches": len(false_matches),
            "false_match_list": false_matches[:50],
            "queries_with_false_match": len({(f["query"], f["condition"]) for f in false_matches}),
            "match_ms_p50": float(np.percentile(match_ms, 50)) if match_ms else None}


def _calibrate(catalog, params, corpus, refs, excerpt_of, seed, quick) -> dict:
    """Null and true distributions of the best bin, with thresholds disabled.

    Negatives give the votes and chance scores coincidences reach; the defaults in
    ``AudioMatchParams`` must sit above every one of them.
    """
    loose = Matcher(catalog, audio_match=AudioMatchParams(min_votes=3, min_score=0.0))
    rng = np.random.default_rng([seed, 7])
    negatives = [r for r in corpus["negatives"] if r["duration_s"] >= 15]
    null_votes, null_log10 = [], []
    decoded: dict[str, np.ndarray] = {}
    for i in range(60 if quick else 300):
        ref = negatives[i % len(negatives)]
        if ref["id"] not in decoded:
            decoded[ref["id"]] = load_audio(ref["path"], sample_rate=ATTACK_RATE)
        x = decoded[ref["id"]]
        start = int(rng.uniform(0, max(1.0, x.size / ATTACK_RATE - 6)) * ATTACK_RATE)
        query = x[start : start + 5 * ATTACK_RATE]
        if i % 2:
            query = attacks.add_pink_noise(query, ATTACK_RATE, rng, snr_db=5)
        fp = query_fingerprint(attacks.to_wav_bytes(query, ATTACK_RATE), params)
        segs = loose.segments(fp) if fp is not None else []
        best = max(segs, key=lambda s: s.evidence["aligned_hashes"], default=None)
        null_votes.append(best.evidence["aligned_hashes"] if best else 0)
        null_log10.append(best.evidence["log10_chance"] if best else 0.0)
    return {
        "null_queries": len(null_votes),
        "null_votes_max": int(max(null_votes)), "null_votes_p99": float(np.percentile(null_votes, 99)),
        "null_votes_hist": np.bincount(null_votes).tolist(),
        "null_log10_chance_min": float(min(null_log10)),
        "defaults": asdict(AudioMatchParams()),
    }


def summarise(results: list[QueryResult], negatives: dict, build: dict, catalog: Catalog) -> dict:
    """Per condition and length: recall, offset accuracy, latency."""
    rows = []
    keys = sorted({(r.condition, r.length_s) for r in results},
                  key=lambda k: (list(attacks.CONDITIONS).index(k[0]), k[1]))
    for condition, length in keys:
        group = [r for r in results if r.condition == condition and r.length_s == length]
        hits = [r for r in group if r.correct]
        errors = [r.offset_error_s for r in hits if r.offset_error_s is not None]
        rows.append({
            "condition": condition, "length_s": length, "queries": len(group),
            "top1_recall": len(hits) / len(group),
            "offset_within_0.1s": (sum(e <= 0.1 for e in errors) / len(errors)) if errors else None,
            "median_offset_error_s": float(np.median(errors)) if errors else None,
            "wrong_top1": sum(1 for r in group if r.found_id and not r.correct),
            "median_speed_estimate": float(np.median([r.speed for r in hits])) if hits else None,
        })
    match_ms = np.array([r.match_ms for r in results])
    fp_ms = np.array([r.fingerprint_ms for r in results])
    all_errors = [r.offset_error_s for r in results if r.correct and r.offset_error_s is not None]
    return {
        "rows": rows, "build": build, "negatives": {k: v for k, v in negatives.items()
                                                    if k != "false_match_list"},
        "false_match_examples": negatives.get("false_match_list", [])[:10],
        "query_match_ms_p50": float(np.percentile(match_ms, 50)),
        "query_match_ms_p99": float(np.percentile(match_ms, 99)),
        "query_fingerprint_ms_p50": float(np.percentile(fp_ms, 50)),
        "offset_within_0.1s_all": sum(e <= 0.1 for e in all_errors) / max(1, len(all_errors)),
        "catalog": catalog.stats(),
    }

