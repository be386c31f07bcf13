"""The embedded catalog under crashes: power cuts mid-commit and mid-compaction, and
large vector segments whose graphs must survive reopen and crashes."""

from __future__ import annotations

import dataclasses
import os
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from nanhu.engine.catalog import Catalog
from nanhu.engine.errors import (
    NotFound,
)


class SimulatedCrash(BaseException):
    """Raised by monkeypatched file operations in place of a power cut: not an Exception, so
    no handler in the engine runs, as none would in a killed process."""



# --- crashes --------------------------------------------------------------------------------
def crash_on_manifest_swap(monkeypatch) -> None:
    """os.replace works for segment files and raises for manifest.json: the process dies after
    writing its segments and committing SQLite, before the manifest names them."""
    real_replace = os.replace

    def replace(src, dst, *args, **kwargs):
        if Path(dst).name == "manifest.json":
            raise SimulatedCrash("power cut before the manifest swap")
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr("nanhu.engine.store.catalog_segments.os.replace", replace)


def crash_in_write_manifest(monkeypatch) -> None:
    def write_manifest(self, manifest):
        raise SimulatedCrash("power cut in _write_manifest")

    monkeypatch.setattr(Catalog, "_write_manifest", write_manifest)


@pytest.mark.parametrize("crash", [crash_on_manifest_swap, crash_in_write_manifest])
def test_crash_before_the_manifest_swap_leaves_the_last_commit(two_refs, make_fp, monkeypatch,
                                                               crash, kit, lookup_ordinals, rows,
                                                               segment_files):
    manifest_before, state_before = kit.catalog_state(two_refs)
    files_before = segment_files(two_refs)
    writer = Catalog(two_refs, writable=True)
    writer.add("ref-c", make_fp(3))
    writer.delete("ref-b")
    with monkeypatch.context() as patch:
        crash(patch)
        with pytest.raises(SimulatedCrash):
            writer.commit()
    # The segment is on disk and SQLite committed its rows, but no manifest names them.
    assert segment_files(two_refs) > files_before
    assert ("ref-c", 2, None) in rows(two_refs) and ("ref-b", 1, 2) in rows(two_refs)
    with Catalog(two_refs) as reader:  # readers see exactly the last commit
        assert kit.catalog_state(two_refs) == (manifest_before, state_before)
        with pytest.raises(NotFound):
            reader.get("ref-c")
        assert reader.get("ref-b").title == "B"
        assert reader.find_digest("digest-3") is None
        with sqlite3.connect(two_refs / "meta.sqlite") as db:
            (ordinal_c,), = db.execute("SELECT ordinal FROM refs WHERE ref_id = 'ref-c'")
        assert ordinal_c not in lookup_ordinals(reader, make_fp(3))
        assert len(reader.postings()) == 800
    writer.close()  # the crashed process lets go of the lock

    with Catalog(two_refs, writable=True) as recovering:  # the next writer cleans up
        assert segment_files(two_refs) == files_before
        assert not list(two_refs.glob("*.tmp")) and not list(two_refs.glob("*/*.tmp"))
        assert rows(two_refs) == [("ref-a", 1, None), ("ref-b", 1, None)]
        recovering.add("ref-c", make_fp(3))  # the rolled-back id and content are free again
        assert recovering.commit() == 2
    with Catalog(two_refs) as reader:
        assert [r.ref_id for r in reader.list()] == ["ref-a", "ref-b", "ref-c"]
        assert reader.get("ref-c").ordinal in lookup_ordinals(reader, make_fp(3))


def disk_full(self, manifest):
    raise OSError(28, "disk full")


def test_failed_manifest_write_is_undone_at_once_and_can_be_retried(two_refs, make_fp,
                                                                    monkeypatch, kit, rows, segment_files):
    before = kit.catalog_state(two_refs)
    files_before = segment_files(two_refs)
    with Catalog(two_refs, writable=True) as writer:
        writer.add("ref-c", make_fp(3))
        writer.delete("ref-b")
        with monkeypatch.context() as patch:
            patch.setattr(Catalog, "_write_manifest", disk_full)
            with pytest.raises(OSError, match="disk full"):
                writer.commit()
        assert kit.catalog_state(two_refs) == before
        assert rows(two_refs) == [("ref-a", 1, None), ("ref-b", 1, None)]
        assert segment_files(two_refs) == files_before
        assert writer.commit() == 2  # the staged work is still there and now goes through
    with Catalog(two_refs) as reader:
        assert [r.ref_id for r in reader.list()] == ["ref-a", "ref-c"]


def test_crash_while_writing_a_segment_rolls_back_sqlite(two_refs, make_fp, monkeypatch, kit, rows,
                                                         segment_files):
    before = kit.catalog_state(two_refs)
    files_before = segment_files(two_refs)

    def half_written_segment(path, keys, ordinals, frames, *, key_bits):
        Path(path).write_bytes(b"NANHUPST" + b"\0" * 100)
        raise SimulatedCrash("disk full")

    writer = Catalog(two_refs, writable=True)
    writer.add("ref-c", make_fp(3))
    monkeypatch.setattr("nanhu.engine.store.catalog_segments.write_segment", half_written_segment)
    with pytest.raises(SimulatedCrash):
        writer.commit()
    monkeypatch.undo()
    assert kit.catalog_state(two_refs) == before
    assert [row[0] for row in rows(two_refs)] == ["ref-a", "ref-b"]  # the transaction rolled back
    writer.close()
    with Catalog(two_refs, writable=True):
        assert segment_files(two_refs) == files_before  # the temporary file is gone


def test_crash_during_compaction_keeps_the_old_segments(two_refs, make_fp, monkeypatch, kit, segment_files):
    with Catalog(two_refs, writable=True) as writer:
        writer.delete("ref-a")
        writer.commit()
    before = kit.catalog_state(two_refs)
    files_before = segment_files(two_refs)
    writer = Catalog(two_refs, writable=True)
    with monkeypatch.context() as patch:
        crash_in_write_manifest(patch)
        with pytest.raises(SimulatedCrash):
            writer.compact()
    assert kit.catalog_state(two_refs) == before
    with Catalog(two_refs) as reader:
        assert len(reader.postings()) == 800 and reader.deleted_ordinals().size == 1
    writer.close()
    with Catalog(two_refs, writable=True) as writer:
        assert segment_files(two_refs) == files_before  # the merged orphan is removed
        assert writer.compact()["purged_references"] == 1
    with Catalog(two_refs) as reader:
        assert [r.ref_id for r in reader.list()] == ["ref-b"] and len(reader.postings()) == 400


# --- large vector segments ---------------------------------------------------------------------
def with_keyframes(fp, seed: int, n: int = 120):
    """``fp`` with ``n`` random unit keyframe vectors (2 per second) added."""
    from nanhu.engine.fingerprint import VideoPrint
    from nanhu.engine.video import VideoParams

    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((n, 248)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    video = VideoPrint(vectors, (np.arange(n) * 0.5).astype(np.float32), VideoParams().tag())
    return dataclasses.replace(fp, video=video)


def test_a_large_vector_segment_gets_a_graph_that_survives_reopen_and_crashes(
        catalog_dir, make_fp, monkeypatch, segment_files):
    monkeypatch.setattr("nanhu.engine.store.vectors.HNSW_MIN_VECTORS", 200)
    fps = [with_keyframes(make_fp(i), seed=i) for i in range(3)]
    with Catalog(catalog_dir, writable=True, create=True) as catalog:
        for i, fp in enumerate(fps[:2]):
            catalog.add(f"ref-{i}", fp)
            catalog.commit()  # two small segments (120 vectors each): exact search only
        assert not any(s.get("graph") for s in catalog.manifest["video_segments"])
        catalog.compact()  # one segment of 240 vectors: it gets its graph
        [entry] = catalog.manifest["video_segments"]
        assert entry["graph"] == entry["file"].replace(".vec", ".hnsw")
        assert (catalog_dir / entry["graph"]).exists()
        assert catalog.stats()["video_index_bytes"] == entry["bytes"] + entry["graph_bytes"]
    # A compaction that dies before the manifest swap leaves a new graph behind: recovery
    # removes it, and the catalog is exactly its last commit.
    writer = Catalog(catalog_dir, writable=True)
    writer.add("ref-2", fps[2])
    writer.commit()
    committed = segment_files(catalog_dir)
    with monkeypatch.context() as patch:
        crash_on_manifest_swap(patch)
        with pytest.raises(SimulatedCrash):
            writer.compact()
    assert any(f.endswith(".hnsw") for f in segment_files(catalog_dir) - committed)
    del writer
    with Catalog(catalog_dir, writable=True):
        assert segment_files(catalog_dir) == committed
    with Catalog(catalog_dir) as catalog:
        index = catalog.vectors()
        assert sorted(type(p.index).__name__ for p in index.parts) == ["IndexFlatIP", "IndexHNSWFlat"]
        ordinals, times, sims = index.search(fps[1].video.vectors[:20], 1)
        assert (ordinals[:, 0] == catalog.get("ref-1").ordinal).all()
        np.testing.assert_allclose(times[:, 0], fps[1].video.times_s[:20])


