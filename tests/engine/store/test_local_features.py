"""Local-feature segments: round trip, refusal of other versions and of torn or damaged files,
and the catalog's commit rules for them (reopen; a crash leaves the last commit)."""

from __future__ import annotations

import dataclasses
import os
import struct
from pathlib import Path

import numpy as np
import pytest

from nanhu.engine.catalog import Catalog
from nanhu.engine.errors import CatalogCorrupt, VersionMismatch
from nanhu.engine.fingerprint import Fingerprint, VideoPrint
from nanhu.engine.store.local_features import read_local_segment, write_local_segment
from nanhu.engine.video.local import LocalFeatures


def features(seed: int, keyframes: int = 3) -> LocalFeatures:
    rng = np.random.default_rng(seed)
    counts = rng.integers(5, 48, keyframes).astype(np.int32)
    total = int(counts.sum())
    return LocalFeatures(np.sort(rng.uniform(0, 10, keyframes)).astype(np.float32), counts,
                         rng.integers(0, 256, (total, 2), dtype=np.uint8),
                         rng.integers(0, 256, (total, 32), dtype=np.uint8), (320, 180))


def same(a: LocalFeatures, b: LocalFeatures) -> bool:
    return (np.array_equal(a.times_s, b.times_s) and np.array_equal(a.counts, b.counts)
            and np.array_equal(a.xy, b.xy) and np.array_equal(a.descriptors, b.descriptors)
            and tuple(a.size) == tuple(b.size))


def test_round_trip(tmp_path):
    items = [(3, features(1)), (7, features(2, 5))]
    size = write_local_segment(tmp_path / "s.vlf", items, params_version=1)
    assert size == (tmp_path / "s.vlf").stat().st_size
    back = read_local_segment(tmp_path / "s.vlf", params_version=1)
    assert sorted(back) == [3, 7]
    assert same(back[3], items[0][1]) and same(back[7], items[1][1])


def test_other_versions_are_refused_with_a_message(tmp_path):
    path = tmp_path / "s.vlf"
    write_local_segment(path, [(1, features(1))], params_version=1)
    with pytest.raises(VersionMismatch, match="re-register"):
        read_local_segment(path, params_version=2)
    data = bytearray(path.read_bytes())
    data[4:8] = struct.pack("<I", 99)
    path.write_bytes(bytes(data))
    with pytest.raises(VersionMismatch, match="format version 99 is not supported"):
        read_local_segment(path, params_version=1)


def test_torn_or_damaged_files_are_refused(tmp_path):
    path = tmp_path / "s.vlf"
    write_local_segment(path, [(1, features(1))], params_version=1)
    data = path.read_bytes()
    (tmp_path / "torn.vlf").write_bytes(data[: len(data) // 2])
    with pytest.raises(CatalogCorrupt, match="torn"):
        read_local_segment(tmp_path / "torn.vlf", params_version=1)
    flipped = bytearray(data)
    flipped[60] ^= 0xFF
    (tmp_path / "bad.vlf").write_bytes(bytes(flipped))
    with pytest.raises(CatalogCorrupt, match="checksum"):
        read_local_segment(tmp_path / "bad.vlf", params_version=1)
    (tmp_path / "other.vlf").write_bytes(b"PK\x03\x04" + data[4:])
    with pytest.raises(CatalogCorrupt, match="not a Nanhu"):
        read_local_segment(tmp_path / "other.vlf", params_version=1)


def video_fp(seed: int) -> Fingerprint:
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((20, 248)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    times = np.arange(20, dtype=np.float32) * 0.5
    return Fingerprint(duration_s=10.5, digest=f"v-{seed}",
                       video=VideoPrint(vectors, times, "video-v1", local=features(seed)))


def test_catalog_commits_reopens_and_survives_a_torn_write(tmp_path, monkeypatch):
    path = tmp_path / "cat"
    with Catalog(path, writable=True, create=True) as catalog:
        catalog.add("a", video_fp(1))
        catalog.commit()
    with Catalog(path) as reader:  # reopen
        index = reader.local_index()
        (ordinal,) = index.features
        assert same(index.features[ordinal], features(1)) and len(index) == 3
    before = sorted(p.name for p in (path / "video").iterdir())

    class Crash(BaseException):
        pass

    real_write = write_local_segment

    def torn(p: Path, items, *, params_version):  # half the bytes reach the disk, then power cut
        real_write(p, items, params_version=params_version)
        data = Path(p).read_bytes()
        Path(p).write_bytes(data[: len(data) // 2])
        raise Crash()

    writer = Catalog(path, writable=True)
    writer.add("b", video_fp(2))
    monkeypatch.setattr("nanhu.engine.store.local_features.write_local_segment", torn)
    with pytest.raises(Crash):
        writer.commit()
    monkeypatch.undo()
    writer.close()
    with Catalog(path) as reader:  # readers see the last commit: one reference, its features
        assert [r.ref_id for r in reader.list()] == ["a"]
        assert len(reader.local_index()) == 3
    with Catalog(path, writable=True) as recovering:  # the next writer removes the torn file
        assert sorted(p.name for p in (path / "video").iterdir()) == before
        recovering.add("b", video_fp(2))
        recovering.commit()
    with Catalog(path) as reader:
        assert len(reader.local_index()) == 6
        assert not any(name.endswith(".tmp") for name in os.listdir(path / "video"))


def test_fingerprint_bytes_carry_local_features():
    fp = video_fp(5)
    back = Fingerprint.from_bytes(fp.to_bytes())
    assert same(back.video.local, fp.video.local)
    assert Fingerprint.from_bytes(dataclasses.replace(
        fp, video=dataclasses.replace(fp.video, local=None)).to_bytes()).video.local is None


def test_compaction_keeps_live_features_and_purges_deleted(tmp_path):
    path = tmp_path / "cat"
    with Catalog(path, writable=True, create=True) as catalog:
        catalog.add("a", video_fp(1))
        catalog.commit()
        catalog.add("b", video_fp(2))
        catalog.commit()
        catalog.delete("a")
        catalog.commit()
        catalog.compact()
    with Catalog(path) as reader:
        index = reader.local_index()
        assert list(index.features) == [reader.get("b").ordinal]
        assert same(index.features[reader.get("b").ordinal], features(2))
        assert len(list((path / "video").glob("*.vlf"))) == 1


def test_a_reference_with_local_features_that_do_not_fit_is_refused(tmp_path):
    from nanhu.engine.errors import InvalidArgument

    fp = video_fp(3)
    local = fp.video.local
    bad = dataclasses.replace(local, counts=local.counts + 1)  # more keypoints than stored
    with Catalog(tmp_path / "cat", writable=True, create=True) as catalog:
        with pytest.raises(InvalidArgument, match="video.local"):
            catalog.add("a", dataclasses.replace(fp, video=dataclasses.replace(fp.video, local=bad)))


# --- the manifest's format version (engine.store.catalog_schema.manifest_version) -------------
def test_a_catalog_with_local_features_is_written_at_version_4_and_one_without_keeps_2(tmp_path):
    import json

    from nanhu.engine.errors import NotFound

    path = tmp_path / "cat"
    with Catalog(path, writable=True, create=True) as catalog:
        plain = video_fp(1)
        catalog.add("plain", dataclasses.replace(plain, video=dataclasses.replace(
            plain.video, local=None)))
        catalog.commit()
    assert json.loads((path / "manifest.json").read_text())["version"] == 2
    with Catalog(path, writable=True) as catalog:
        catalog.add("local", video_fp(2))
        catalog.commit()
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["version"] == 4 and manifest["video_local"]
    with Catalog(path) as reader:  # reopened at version 4: the features are there
        assert reader.stats()["format_version"] == 4
        assert len(reader.local_index()) == len(features(2))
    with Catalog(path, writable=True) as catalog:  # the features gone, the version goes back
        catalog.delete("local")
        catalog.commit()
        catalog.compact()
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["version"] == 2 and not manifest.get("video_local")
    with Catalog(path) as reader:
        assert [r.ref_id for r in reader.list()] == ["plain"]
        with pytest.raises(NotFound):
            reader.get("local")


def test_a_newer_format_is_refused_with_a_message_and_a_misfit_version_as_corrupt(tmp_path):
    import json

    path = tmp_path / "cat"
    with Catalog(path, writable=True, create=True) as catalog:
        catalog.add("a", video_fp(1))
        catalog.commit()
    manifest_path = path / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest_path.write_text(json.dumps({**manifest, "version": 6}))
    with pytest.raises(VersionMismatch, match="version 6 was written by a newer Nanhu .*reads "
                                              "versions 2, 3, 4, 5"):
        Catalog(path)
    # version 3 claims compact keyframes, which this catalog does not have
    manifest_path.write_text(json.dumps({**manifest, "version": 3}))
    with pytest.raises(CatalogCorrupt, match="does not fit its contents"):
        Catalog(path)
    # version 4 without local features is no catalog a Nanhu writes
    manifest_path.write_text(json.dumps({**manifest, "version": 4, "video_local": []}))
    with pytest.raises(CatalogCorrupt, match="does not fit its contents"):
        Catalog(path)


def test_a_catalog_written_with_local_features_at_version_2_opens_and_its_next_commit_is_4(
        tmp_path):
    """Catalogs of 2026-12-02 (local segments before format 4) stay readable."""
    import json

    path = tmp_path / "cat"
    with Catalog(path, writable=True, create=True) as catalog:
        catalog.add("a", video_fp(1))
        catalog.commit()
    manifest_path = path / "manifest.json"
    manifest_path.write_text(json.dumps({**json.loads(manifest_path.read_text()), "version": 2}))
    with Catalog(path) as reader:
        assert len(reader.local_index()) == len(features(1))
    with Catalog(path, writable=True) as catalog:
        catalog.add("b", video_fp(2))
        catalog.commit()
    assert json.loads(manifest_path.read_text())["version"] == 4
    with Catalog(path) as reader:
        assert len(reader.local_index()) == len(features(1)) + len(features(2))
