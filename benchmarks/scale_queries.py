"""The query sets of the audio scale benchmark (:mod:`benchmarks.scale_audio`): attacked 5 s
excerpts of registered references and of never-registered music, cached once per seed, and
the negative tracks that match a registered reference whole."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from nanhu.benchmarks import audio_attacks as attacks
from nanhu.engine.audio.params import AudioParams
from nanhu.engine.catalog import Catalog
from nanhu.engine.fingerprint import Fingerprint, fingerprint_media
from nanhu.engine.matcher import Matcher
from nanhu.engine.media import load_audio

ATTACK_RATE = 16000
QUERY_CONDITIONS = ("clean", "mp3-128k", "pink-5dB", "speed-1.1")


def queries_file(cache: Path, corpus: dict, params: AudioParams, *, positives: int,
                 negatives: int, seed: int, keys_on_demand: bool = False) -> Path:
    from nanhu.benchmarks.audio_bench import _corpus_key

    return cache / (f"scale-queries-{params.tag()}-f{params.query_fanout}-p{params.query_probe:g}-"
                    f"{_corpus_key(corpus)}-"
                    f"{seed}-{positives}-{negatives}{'-od' if keys_on_demand else ''}.npz")


def cached_query_set(cache: Path, corpus: dict, params: AudioParams, *, positives: int,
                     negatives: int, seed: int, keys_on_demand: bool = False
                     ) -> tuple[list, list]:
    """:func:`query_set`, stored once in ``cache`` (fingerprint bytes and labels in one npz,
    no pickle): the same seeds give the same queries, so reruns skip the fingerprinting.
    ``keys_on_demand``: the queries keep their peaks, as the server's screenings do (the peak
    check runs on them); a separate file."""

    path = queries_file(cache, corpus, params, positives=positives, negatives=negatives,
                        seed=seed, keys_on_demand=keys_on_demand)
    if path.exists():
        with np.load(path) as data:
            blob, bounds = data["blob"], data["bounds"]
            labels = json.loads(data["labels"].tobytes().decode())
        fps = [Fingerprint.from_bytes(blob[a:b].tobytes()) for a, b in zip(bounds[:-1], bounds[1:])]
        n = len(labels["positives"])
        return ([(r, c, fp) for (r, c), fp in zip(labels["positives"], fps[:n])],
                list(zip(labels["negatives"], fps[n:])))
    pos, neg = query_set(corpus, params, positives=positives, negatives=negatives, seed=seed,
                         keys_on_demand=keys_on_demand)
    parts = [fp.to_bytes() for _, _, fp in pos] + [fp.to_bytes() for _, fp in neg]
    bounds = np.cumsum([0] + [len(p) for p in parts])
    labels = {"positives": [(r, c) for r, c, _ in pos], "negatives": [src for src, _ in neg]}
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(path, blob=np.frombuffer(b"".join(parts), np.uint8), bounds=bounds,
             labels=np.frombuffer(json.dumps(labels).encode(), np.uint8))
    return pos, neg


def related_negatives(corpus: dict, catalog_dir: Path, params: AudioParams) -> dict[str, dict]:
    """Negative tracks that match a registered reference when screened whole against the real
    catalog at the default thresholds, with the match. They are *flagged, not removed*: some
    may share material (a quoted motif, a reused stock loop), others are false matches of a
    4-minute query; no listening test tells them apart here, so the report gives the false
    matches and the null distribution with and without them."""
    out = {}
    with Catalog(catalog_dir) as catalog:
        matcher = Matcher(catalog)
        for entry in corpus["negatives"]:
            # screened as the server screens an upload (keyed on demand: the peak check runs)
            fp = fingerprint_media(entry["path"], audio_params=params, query=True, video=False,
                                   keys_on_demand=True)
            matches = matcher.match(fp)
            if matches:
                best = matches[0]
                out[entry["id"]] = {
                    "reference_id": best.reference_id,
                    "seconds": round(best.query_end_s - best.query_start_s, 1),
                    "aligned_hashes": best.evidence.get("aligned_hashes"),
                    "log10_chance": best.evidence.get("log10_chance")}
    return out


def query_set(corpus: dict, params: AudioParams, *, positives: int, negatives: int,
              seed: int, length_s: float = 5.0, keys_on_demand: bool = False
              ) -> tuple[list, list]:
    """([(reference id, condition, fingerprint)], [(source id, fingerprint)]) of attacked 5 s
    excerpts of registered references and of never-registered music (``keys_on_demand``:
    the same excerpts, keeping their peaks)."""
    rng = np.random.default_rng([seed, 11])
    decoded: dict[str, np.ndarray] = {}

    def excerpt(entry: dict, length: float) -> np.ndarray | None:
        if entry["id"] not in decoded:
            decoded[entry["id"]] = load_audio(entry["path"], sample_rate=ATTACK_RATE)
        x = decoded[entry["id"]]
        if x.size < (length + 2) * ATTACK_RATE:
            return None
        start = int(rng.uniform(0, x.size / ATTACK_RATE - length - 1) * ATTACK_RATE)
        return x[start: start + int(length * ATTACK_RATE)]

    def attack(x: np.ndarray, condition: str) -> np.ndarray:
        if condition == "pink-5dB":
            return attacks.add_pink_noise(x, ATTACK_RATE, rng, snr_db=5)
        if condition == "speed-1.1":
            return attacks.change_speed(x, ATTACK_RATE, rng, speed=1.1)
        if condition == "mp3-128k":
            return attacks.reencode(x, ATTACK_RATE, rng, suffix=".mp3", bit_rate=128_000)
        return x

    def fingerprint(x: np.ndarray):
        try:
            return fingerprint_media(attacks.to_wav_bytes(x, ATTACK_RATE), audio_params=params,
                                     query=True, video=False, keys_on_demand=keys_on_demand)
        except Exception:  # noqa: BLE001 - a silent excerpt holds nothing: skipped
            return None

    refs = [r for r in corpus["references"] if r["duration_s"] >= 20]
    out_pos, out_neg = [], []
    while len(out_pos) < positives:
        ref = refs[int(rng.integers(len(refs)))]
        condition = QUERY_CONDITIONS[len(out_pos) % len(QUERY_CONDITIONS)]
        x = excerpt(ref, length_s * (1.1 if condition == "speed-1.1" else 1.0))
        fp = fingerprint(attack(x, condition)) if x is not None else None
        if fp is not None:
            out_pos.append((ref["id"], condition, fp))
    pool = corpus["negatives"]
    while len(out_neg) < negatives:
        source = pool[int(rng.integers(len(pool)))]
        x = excerpt(source, length_s)
        condition = QUERY_CONDITIONS[len(out_neg) % len(QUERY_CONDITIONS)]
        fp = fingerprint(attack(x, condition)) if x is not None else None
        if fp is not None:
            out_neg.append((source["id"], fp))
    return out_pos, out_neg
