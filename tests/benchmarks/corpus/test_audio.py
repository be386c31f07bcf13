"""The audio corpus builder's split and manifest (no network, no Debian packages)."""

from __future__ import annotations

import pytest

from nanhu.benchmarks.corpus import audio as ca
from nanhu.benchmarks.corpus.audio_sources import CorpusError


def fake_tracks() -> list[dict]:
    sizes = {"alpha": 40, "beta": 25, "gamma": 3}
    return [{"id": f"{name}-t{n:02d}", "package": name, "duration_s": 60.0 + n}
            for name, size in sizes.items() for n in range(size)]


def test_split_is_deterministic_stratified_and_complete():
    tracks = fake_tracks()
    refs, negs = ca.split_tracks(tracks, seed=7, min_negatives=10)
    again = ca.split_tracks(list(reversed(tracks)), seed=7, min_negatives=10)
    assert (refs, negs) == again
    assert ca.split_tracks(tracks, seed=8, min_negatives=10)[1] != negs
    assert len(negs) == 10
    assert {t["id"] for t in refs} | {t["id"] for t in negs} == {t["id"] for t in tracks}
    assert not {t["id"] for t in refs} & {t["id"] for t in negs}
    per_package = {name: sum(t["package"] == name for t in negs) for name in ("alpha", "beta")}
    assert per_package == {"alpha": 6, "beta": 4}
    assert all(any(t["package"] == name for t in refs) for name in ("alpha", "beta", "gamma"))


def test_split_never_takes_a_package_whole():
    tracks = fake_tracks()
    refs, negs = ca.split_tracks(tracks, seed=0, min_negatives=70)
    assert len(negs) == len(tracks) - 3
    assert {t["package"] for t in refs} == {"alpha", "beta", "gamma"}


def test_manifest_round_trip_and_version_check(tmp_path):
    entry = {"id": "wz2100-menu", "path": str(tmp_path / "menu.opus"), "package": "wz",
             "member": "usr/share/menu.opus", "sha256": "0" * 64, "duration_s": 180.0,
             "loop_period_s": 60.0, "repeat_lags_s": [60.0, 120.0]}
    manifest = {"version": ca.MANIFEST_VERSION, "seed": 0,
                "packages": [{"name": "wz", "version": "1", "sha256": "1" * 64}],
                "references": [entry], "negatives": [], "speech": [], "dropped": []}
    path = tmp_path / ca.MANIFEST_NAME
    ca.write_manifest(manifest, path)
    assert ca.read_manifest(path) == manifest
    assert ca.load_audio_corpus(tmp_path) == manifest
    ca.write_manifest({**manifest, "version": 99}, path)
    with pytest.raises(CorpusError, match="version 99"):
        ca.read_manifest(path)
