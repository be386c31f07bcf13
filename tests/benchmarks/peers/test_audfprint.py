"""The audfprint peer of the audio benchmark, on generated music: a 4-reference database in its
default settings finds a clean 10 s excerpt with the right id and offset, and finds nothing in
an unrelated signal. The report's peer table is checked on a made-up summary."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nanhu.benchmarks.audio_attacks import to_wav_bytes
from nanhu.benchmarks.peers import audfprint as pa
from nanhu.benchmarks.peers import audfprint_comparison as pac
from nanhu.benchmarks.report import audio_peer_markdown
from nanhu.benchmarks.synth import music_like, write_audio

needs_peer = pytest.mark.skipif(not pa.available(), reason="audfprint2 is not installed")

RATE = 22050
SONG_S = 40.0
SEEDS = {"song-a": 11, "song-b": 12, "song-c": 13, "song-d": 14}


@pytest.fixture(scope="module")
def references(tmp_path_factory) -> list[dict]:
    tmp = tmp_path_factory.mktemp("peer-refs")
    refs = []
    for ref_id, seed in SEEDS.items():
        path = write_audio(tmp / f"{ref_id}.flac", music_like(SONG_S, seed=seed, sample_rate=RATE),
                           RATE)
        refs.append({"id": ref_id, "path": str(path), "duration_s": SONG_S})
    return refs


@pytest.fixture(scope="module")
def peer(references, tmp_path_factory):
    cache = tmp_path_factory.mktemp("peer-db")
    table, build = pa.build_databases(references, [pa.DEFAULTS], cache=cache)["defaults"]
    assert build["references"] == len(references)
    assert build["index_bytes"] == (pa.database_dir(pa.DEFAULTS, references, cache)
                                    / "db.hdf").stat().st_size
    p = pa.AudfprintPeer(pa.DEFAULTS, table)
    yield p
    p.close()


def _excerpt(seed: int, start_s: float, length_s: float, rate: int = 16000) -> bytes:
    x = music_like(SONG_S, seed=seed, sample_rate=rate)
    return to_wav_bytes(x[int(start_s * rate) : int((start_s + length_s) * rate)], rate)


@needs_peer
def test_clean_excerpt_found_with_offset(peer):
    match = peer.match(_excerpt(SEEDS["song-c"], 12.3, 10.0))
    assert match.reference_id == "song-c"
    assert abs(match.offset_s - 12.3) < 1.0
    assert match.aligned_hashes > peer.settings.min_count
    assert match.query_hashes >= match.aligned_hashes


@needs_peer
def test_unrelated_signal_not_found(peer):
    match = peer.match(_excerpt(99, 5.0, 10.0))
    assert match.reference_id is None
    assert match.offset_s is None


@needs_peer
def test_silence_not_found(peer):
    match = peer.match(to_wav_bytes(np.zeros(16000 * 5, np.float32), 16000))
    assert match.reference_id is None


@needs_peer
def test_comparison_summary(references, tmp_path: Path):
    ref = references[1]
    query = pac.PeerQuery(_excerpt(SEEDS[ref["id"]], 20.0, 10.0), "clean", 10.0, ref, 20.0,
                          nanhu_ms=5.0)
    summary = pac.compare_audio_peer({"references": references}, references, [query],
                                     [(_excerpt(98, 0.0, 5.0), "clean")],
                                     settings=[pa.DEFAULTS], cache=tmp_path)
    assert summary["rows"] == [{"condition": "clean", "length_s": 10.0, "queries": 1,
                                "top1_recall": {"defaults": 1.0}}]
    defaults = summary["by_setting"]["defaults"]
    assert defaults["negatives"] == {"queries": 1, "false_matches": 0, "false_match_examples": []}
    assert defaults["build"]["fingerprint_x_realtime_per_core"] > 0
    assert summary["nanhu_total_ms_p50"] == 5.0


def test_peer_markdown():
    setting = {"density": 20.0, "fanout": 3, "query_shifts": 0, "min_count": 5, "maxtimebits": 14}
    per = {"settings": setting, "top1_recall_all": 0.5,
           "build": {"fingerprint_x_realtime_per_core": 100.0, "index_bytes_per_hour": 2**20,
                     "table_bytes_in_memory": 400 * 2**20},
           "query_total_ms_p50": 40.0, "query_total_ms_p99": 80.0, "query_match_ms_p50": 2.0,
           "query_match_ms_p99": 4.0, "negatives": {"queries": 10, "false_matches": 1}}
    summary = {
        "rows": [{"condition": "clean", "length_s": 5.0, "queries": 4, "top1_recall": 1.0},
                 {"condition": "clean", "length_s": 10.0, "queries": 4, "top1_recall": 1.0}],
        "build": {"fingerprint_x_realtime_per_core": 200.0, "index_bytes_per_hour": 2 * 2**20},
        "negatives": {"queries": 10, "false_matches": 2},
        "query_match_ms_p50": 1.0, "query_match_ms_p99": 2.0,
        "peer": {"package": "audfprint2 0.1.2", "settings": ["defaults"],
                 "rows": [{"condition": "clean", "length_s": 5.0, "queries": 4,
                           "top1_recall": {"defaults": 0.25}}],
                 "by_setting": {"defaults": per},
                 "nanhu_total_ms_p50": 20.0, "nanhu_total_ms_p99": 40.0},
    }
    text = audio_peer_markdown(summary)
    assert "| clean | 100.0 % | 25.0 % | 100.0 % | – |" in text
    assert "| false matches in 10 negative queries | 2 | 1 | 0.50× |" in text
    assert "| fingerprinting, × real time per core (decode included) | 200 | 100 | 0.50× |" in text
    assert "| index on disk, MiB per hour of audio | 2.00 | 1.00 | 0.50× |" in text
    assert "| matching only p50 / p99 (ms) | 1.0 / 2.0 | 2.0 / 4.0 | 2.00× (p99) |" in text
