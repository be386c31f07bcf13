"""``nanhu check`` reports what would break screening, and changes nothing."""

from __future__ import annotations

import numpy as np

from nanhu.engine import catalog as catalog_module
from nanhu.engine.catalog import Catalog
from nanhu.engine.check import check_catalog
from nanhu.engine.fingerprint import Fingerprint, VideoPrint
from nanhu.engine.video import VideoParams


def video_fp(seed: int, *, scale: float = 1.0, dim: int | None = None) -> Fingerprint:
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((12, dim or VideoParams().dim)).astype(np.float32)
    vectors *= scale / np.linalg.norm(vectors, axis=1, keepdims=True)
    video = VideoPrint(vectors, np.arange(12, dtype=np.float32) * 0.5, VideoParams().tag())
    return Fingerprint(duration_s=6.5, digest=f"d{seed}", video=video)


def test_check_finds_poison_that_compaction_then_removes(catalog_dir, monkeypatch, run_cli):
    with Catalog(catalog_dir, writable=True, create=True) as writer:
        writer.add("good", video_fp(1))
        writer.commit()
        assert check_catalog(catalog_dir)["ok"]
        with monkeypatch.context() as patched:  # written before validation existed
            patched.setattr(catalog_module, "validate_fingerprint", lambda fp, **_: fp)
            writer.add("huge", video_fp(2, scale=1e6))
            writer.commit()
            writer.add("tiny", video_fp(3, dim=3))
            writer.commit()
    manifest = (catalog_dir / "manifest.json").read_bytes()
    result = run_cli("check", "--catalog", catalog_dir)
    assert result.code == 7
    report = result.json_lines[0]
    assert not report["ok"] and report["checked"]["unusable_keyframes"] == 12
    assert any("dimension 3" in p for p in report["problems"])
    assert any("12 unusable keyframe row(s)" in p for p in report["problems"])
    assert (catalog_dir / "manifest.json").read_bytes() == manifest  # read-only
    assert run_cli("compact", "--catalog", catalog_dir).code == 0
    assert run_cli("check", "--catalog", catalog_dir).code == 0
