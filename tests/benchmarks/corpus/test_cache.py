"""Where the corpora are cached."""

from __future__ import annotations

from nanhu.benchmarks.corpus.cache import cache_dir


def test_cache_dir_follows_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("NANHU_CACHE", str(tmp_path))
    assert cache_dir() == tmp_path
    monkeypatch.delenv("NANHU_CACHE")
    assert cache_dir().parts[-2:] == (".cache", "nanhu")
