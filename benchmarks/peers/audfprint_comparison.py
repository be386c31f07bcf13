"""audfprint beside Nanhu: the benchmark's own queries screened by every peer setting
(:class:`AudioPeerComparison`, ``summary["peer"]``), and the search that chose
:data:`~benchmarks.peers.audfprint.TUNED` (:func:`tune`). The peer itself:
:mod:`benchmarks.peers.audfprint`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from nanhu.benchmarks.peers.audfprint import (
    DEFAULTS,
    PACKAGE,
    TUNED,
    AudfprintPeer,
    PeerSettings,
    build_databases,
    package_version,
)
from nanhu.engine.media import load_audio


@dataclass
class PeerQuery:
    """One positive query as the benchmark made it: WAV bytes and the truth behind them."""

    data: bytes
    condition: str
    length_s: float
    reference: dict                  # the corpus reference (id, loop_period_s, repeat_lags_s)
    offset_s: float                  # true reference time of the excerpt's start
    query_start_s: float = 0.0       # where the excerpt starts inside the query (embedding)
    nanhu_ms: float | None = None    # Nanhu's fingerprint + match time for the same bytes


@dataclass
class AudioPeerComparison:
    """Screens the benchmark's queries with every peer setting as they are made.

    ``query`` and ``negative`` are called from :func:`benchmarks.audio_bench.run_audio_bench`
    with the very WAV bytes Nanhu screened; ``summary`` gives ``summary["peer"]``.
    """

    references: Sequence[dict]
    settings: Sequence[PeerSettings] = (DEFAULTS, TUNED)
    cache: Path | None = None
    peers: dict[str, AudfprintPeer] = field(init=False, default_factory=dict)
    builds: dict[str, dict] = field(init=False, default_factory=dict)
    rows: list[dict] = field(init=False, default_factory=list)
    negatives: list[dict] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        for name, (table, build) in build_databases(self.references, self.settings,
                                                    cache=self.cache).items():
            setting = next(s for s in self.settings if s.name == name)
            self.peers[name] = AudfprintPeer(setting, table)
            self.builds[name] = build

    def query(self, q: PeerQuery) -> dict:
        """Screen one positive query with every setting; returns and keeps its row."""
        from nanhu.benchmarks.audio_bench import _offset_error

        row: dict[str, Any] = {"condition": q.condition, "length_s": q.length_s,
                               "reference_id": q.reference["id"], "nanhu_ms": q.nanhu_ms}
        for name, peer in self.peers.items():
            m = peer.match(q.data)
            correct = m.reference_id == q.reference["id"]
            error = None
            if correct and m.offset_s is not None:
                error = _offset_error(m.offset_s + q.query_start_s, q.offset_s, q.reference)
            row[name] = {**asdict(m), "correct": correct, "offset_error_s": error}
        self.rows.append(row)
        return row

    def negative(self, data: bytes, condition: str) -> dict:
        """Screen one never-registered query; any match is a false one."""
        row: dict[str, Any] = {"condition": condition}
        for name, peer in self.peers.items():
            row[name] = asdict(peer.match(data))
        self.negatives.append(row)
        return row

    def summary(self) -> dict:
        return summarise_peer(self.rows, self.negatives, self.builds, self.settings)

    def close(self) -> None:
        for peer in self.peers.values():
            peer.close()


def summarise_peer(rows: Sequence[dict], negatives: Sequence[dict], builds: dict[str, dict],
                   settings: Sequence[PeerSettings]) -> dict:
    """Per condition and length: each setting's top-1 recall; then per setting its false
    matches, speed, latency and size."""
    names = [s.name for s in settings]
    keys = list(dict.fromkeys((r["condition"], r["length_s"]) for r in rows))
    table = []
    for condition, length in keys:
        group = [r for r in rows if r["condition"] == condition and r["length_s"] == length]
        table.append({"condition": condition, "length_s": length, "queries": len(group),
                      "top1_recall": {n: float(np.mean([r[n]["correct"] for r in group]))
                                      for n in names}})
    per_setting = {}
    for n in names:
        fp = np.array([r[n]["fingerprint_ms"] for r in rows]) if rows else np.zeros(1)
        mt = np.array([r[n]["match_ms"] for r in rows]) if rows else np.zeros(1)
        errors = [r[n]["offset_error_s"] for r in rows
                  if r[n]["correct"] and r[n]["offset_error_s"] is not None]
        false = [x for x in negatives if x[n]["reference_id"] is not None]
        per_setting[n] = {
            "settings": asdict(next(s for s in settings if s.name == n)),
            "build": builds[n],
            "top1_recall_all": float(np.mean([r[n]["correct"] for r in rows])) if rows else None,
            "offset_within_0.1s_all": (float(np.mean(np.array(errors) <= 0.1)) if errors else None),
            "query_hashes_p50": float(np.median([r[n]["query_hashes"] for r in rows])) if rows
            else None,
            "query_fingerprint_ms_p50": float(np.percentile(fp, 50)),
            "query_match_ms_p50": float(np.percentile(mt, 50)),
            "query_match_ms_p99": float(np.percentile(mt, 99)),
            "query_total_ms_p50": float(np.percentile(fp + mt, 50)),
            "query_total_ms_p99": float(np.percentile(fp + mt, 99)),
            "negatives": {"queries": len(negatives), "false_matches": len(false),
                          "false_match_examples": [{"condition": x["condition"],
                                                    "reference_id": x[n]["reference_id"],
                                                    "aligned_hashes": x[n]["aligned_hashes"]}
                                                   for x in false[:10]]},
        }
    nanhu_ms = np.array([r["nanhu_ms"] for r in rows if r.get("nanhu_ms") is not None])
    return {
        "package": f"{PACKAGE} {package_version()}", "settings": names, "rows": table,
        "by_setting": per_setting,
        "nanhu_total_ms_p50": float(np.percentile(nanhu_ms, 50)) if nanhu_ms.size else None,
        "nanhu_total_ms_p99": float(np.percentile(nanhu_ms, 99)) if nanhu_ms.size else None,
    }


def compare_audio_peer(corpus: dict, refs: Sequence[dict], queries: Iterable[PeerQuery],
                       negatives: Iterable[tuple[bytes, str]] = (), *,
                       settings: Sequence[PeerSettings] = (DEFAULTS, TUNED),
                       cache: Path | None = None) -> dict:
    """Run the peer on given queries: a database of ``refs`` (default: all corpus references),
    each positive ``PeerQuery`` and each ``(wav_bytes, condition)`` negative screened by every
    setting. Returns the dict ``summary["peer"]`` holds (see :func:`summarise_peer`).

    The audio benchmark does the same thing incrementally (``run_audio_bench(peer=True)``), so
    that its queries need not be kept in memory.
    """
    comparison = AudioPeerComparison(list(refs or corpus["references"]), settings, cache)
    try:
        for q in queries:
            comparison.query(q)
        for data, condition in negatives:
            comparison.negative(data, condition)
        return comparison.summary()
    finally:
        comparison.close()


# ------------------------------------------------------------------------------------------
# Choosing TUNED


TUNING_CONDITIONS = ("clean", "amr-nb-12.2k", "pink-snr5", "pink-snr0", "babble-snr5",
                     "tempo-1.05", "pitch+1")


def tune(corpus: dict, candidates: Sequence[PeerSettings], *, n_refs: int | None = 30,
         per_condition: int = 8, n_negatives: int = 40, seed: int = 1,
         thresholds: Sequence[int] = (4, 5, 6, 8, 10), cache: Path | None = None) -> dict:
    """Recall and chance matches of candidate settings on ``n_refs`` references (None: all),
    away from the benchmark's own queries (another seed). Every candidate matches with
    ``min_count=2`` and the aligned count of its best answer is kept, so each ``--min-count``
    in ``thresholds`` is read off afterwards. Returns {candidate: {"recall": {threshold:
    {(condition, length): share}}, "null_aligned": [best aligned count per negative],
    "query_hashes_p50", "hashes_per_s", "x_realtime_per_core"}}.
    """
    from nanhu.benchmarks import audio_attacks as attacks
    from nanhu.benchmarks.audio_bench import ATTACK_RATE, _attack

    rng = np.random.default_rng(seed)
    pool = [r for r in corpus["references"] if r["duration_s"] >= 30]
    order = rng.permutation(len(pool))
    refs = corpus["references"] if n_refs is None else [pool[i] for i in order[:n_refs]]
    speech = [load_audio(s["path"], sample_rate=ATTACK_RATE) for s in corpus["speech"][:20]]
    queries: list[tuple[bytes, str, float, dict]] = []
    for ref in [pool[i] for i in order[:per_condition]]:
        x = load_audio(ref["path"], sample_rate=ATTACK_RATE)
        for length in (5.0, 10.0):
            start = int(rng.uniform(0, ref["duration_s"] - 13) * ATTACK_RATE)
            for condition in TUNING_CONDITIONS:
                n = int(length * attacks.speed_of(condition) * ATTACK_RATE)
                q, _ = _attack(condition, x[start : start + n], rng, speech, [])
                queries.append((attacks.to_wav_bytes(q, ATTACK_RATE), condition, length, ref))
    negs = []
    for i in range(n_negatives):
        ref = corpus["negatives"][i % len(corpus["negatives"])]
        x = load_audio(ref["path"], sample_rate=ATTACK_RATE)
        length = 5.0 if i % 2 == 0 else 10.0
        start = int(rng.uniform(0, max(1.0, x.size / ATTACK_RATE - length - 1)) * ATTACK_RATE)
        q = x[start : start + int(length * ATTACK_RATE)]
        if i % 4 == 1:
            q = attacks.add_pink_noise(q, ATTACK_RATE, rng, snr_db=5)
        negs.append(attacks.to_wav_bytes(q, ATTACK_RATE))
    tables = build_databases(refs, candidates, cache=cache)
    out = {}
    for s in candidates:
        table, build = tables[s.name]
        peer = AudfprintPeer(replace(s, min_count=2), table)
        answers = [(peer.match(data), condition, length, ref)
                   for data, condition, length, ref in queries]
        null = [peer.match(data).aligned_hashes for data in negs]
        peer.close()
        recall = {}
        for t in thresholds:
            cells: dict[tuple[str, float], list[bool]] = {}
            for m, condition, length, ref in answers:
                cells.setdefault((condition, length), []).append(
                    m.reference_id == ref["id"] and m.aligned_hashes > t)
            recall[t] = {k: float(np.mean(v)) for k, v in cells.items()}
        out[s.name] = {"recall": recall, "null_aligned": null,
                       "query_hashes_p50": float(np.median([a[0].query_hashes for a in answers])),
                       "hashes_per_s": build["hashes_per_s"],
                       "x_realtime_per_core": build["fingerprint_x_realtime_per_core"]}
    return out
