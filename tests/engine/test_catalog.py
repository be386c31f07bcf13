"""The embedded catalog: commits, readers, tombstones, compaction, crashes and the writer lock."""

from __future__ import annotations

import dataclasses
import json
import os
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from engine.audio.params import AudioParams
from engine.catalog import Catalog
from engine.errors import (
    AlreadyExists,
    CatalogCorrupt,
    CatalogLocked,
    InvalidArgument,
    NotFound,
    VersionMismatch,
)
from engine.matcher import Matcher


class SimulatedCrash(BaseException):
    """Raised by monkeypatched file operations in place of a power cut: not an Exception, so
    no handler in the engine runs, as none would in a killed process."""


@pytest.fixture
def make_fp(kit):
    """make_fp(seed) -> a reference fingerprint of 400 random landmarks, its own digest."""

    def make(seed: int, n: int = 400):
        rng = np.random.default_rng(seed)
        return kit.fingerprint(rng.integers(0, 1 << 22, n), np.sort(rng.integers(0, 3000, n)),
                               digest=f"digest-{seed}")

    return make


def lookup_ordinals(catalog: Catalog, fp) -> set[int]:
    """Ordinals whose postings answer the fingerprint's hashes (tombstones not applied)."""
    _, ordinals, _ = catalog.postings().lookup(np.unique(fp.audio.hashes))
    return set(ordinals.tolist())


def rows(path: Path) -> list[tuple]:
    """Every row of the metadata table, committed or not, as SQLite has it."""
    with sqlite3.connect(path / "meta.sqlite") as db:
        return db.execute(
            "SELECT ref_id, generation, deleted_generation FROM refs ORDER BY ordinal").fetchall()


def segment_files(path: Path) -> set[str]:
    return {f"{p.parent.name}/{p.name}" for p in path.glob("*/*") if p.is_file()}


@pytest.fixture
def two_refs(catalog_dir, make_fp) -> Path:
    """A catalog at generation 1 holding ref-a and ref-b."""
    with Catalog(catalog_dir, writable=True, create=True) as catalog:
        catalog.add("ref-a", make_fp(1), title="A", owner="label-1")
        catalog.add("ref-b", make_fp(2), title="B")
        assert catalog.commit() == 1
    return catalog_dir


def test_commit_then_reopen_sees_everything(two_refs, make_fp):
    with Catalog(two_refs) as reader:
        assert reader.generation == 1
        assert [r.ref_id for r in reader.list()] == ["ref-a", "ref-b"]
        a = reader.get("ref-a")
        assert (a.title, a.owner, a.n_hashes, a.duration_s, a.digest) == (
            "A", "label-1", 400, 60.0, "digest-1")
        assert a.modalities == "audio"
        assert [r.ref_id for r in reader.list(owner="label-1")] == ["ref-a"]
        assert lookup_ordinals(reader, make_fp(1)) >= {a.ordinal}
        stats = reader.stats()
        assert (stats["references"], stats["audio_hashes"], stats["audio_segments"],
                stats["tombstones"], stats["files_present"]) == (2, 800, 1, 0, True)
        assert stats["hours"] == pytest.approx(120 / 3600, abs=1e-4)
    manifest = json.loads((two_refs / "manifest.json").read_text())
    assert (manifest["format"], manifest["version"], manifest["generation"]) == (
        "nanhu-catalog", 2, 1)
    assert segment_files(two_refs) == {s["file"] for s in manifest["audio_segments"]}


def test_staged_changes_are_invisible_until_commit_and_lost_without_it(two_refs, make_fp):
    with Catalog(two_refs, writable=True) as writer:
        writer.add("ref-c", make_fp(3))
        writer.delete("ref-a")
        with Catalog(two_refs) as reader:
            assert [r.ref_id for r in reader.list()] == ["ref-a", "ref-b"]
    with Catalog(two_refs) as reader:
        assert [r.ref_id for r in reader.list()] == ["ref-a", "ref-b"] and reader.generation == 1


def test_commit_with_nothing_staged_writes_nothing(two_refs):
    before = (two_refs / "manifest.json").read_bytes()
    with Catalog(two_refs, writable=True) as writer:
        assert writer.commit() == 1
    assert (two_refs / "manifest.json").read_bytes() == before


def test_delete_hides_at_commit_and_compaction_purges(two_refs, make_fp):
    with Catalog(two_refs) as reader:
        ordinal_a = reader.get("ref-a").ordinal
        old_files = segment_files(two_refs)
    with Catalog(two_refs, writable=True) as writer:
        assert writer.delete("ref-a").ordinal == ordinal_a
        assert writer.commit() == 2
        with Catalog(two_refs) as reader:
            with pytest.raises(NotFound, match="ref-a"):
                reader.get("ref-a")
            assert [r.ref_id for r in reader.list()] == ["ref-b"]
            assert reader.by_ordinals(np.array([ordinal_a])) == {}
            # The postings stay until compaction; the tombstone tells readers to skip them.
            assert ordinal_a in lookup_ordinals(reader, make_fp(1))
            assert reader.deleted_ordinals().tolist() == [ordinal_a]
            assert (reader.stats()["references"], reader.stats()["tombstones"]) == (1, 1)
        report = writer.compact()
        assert report == {"generation": 3, "purged_references": 1, "audio_postings": 400,
                          "video_vectors": 0}
    with Catalog(two_refs) as reader:
        assert ordinal_a not in lookup_ordinals(reader, make_fp(1))
        assert len(reader.postings()) == 400
        assert reader.deleted_ordinals().size == 0 and reader.stats()["tombstones"] == 0
        assert [r.ref_id for r in reader.list()] == ["ref-b"]
    assert [row[0] for row in rows(two_refs)] == ["ref-b"]  # the row itself is gone
    assert not (segment_files(two_refs) & old_files)  # merged away
    assert len(segment_files(two_refs)) == 1


def test_deleted_id_and_content_can_be_registered_again(two_refs, make_fp):
    with Catalog(two_refs, writable=True) as writer:
        writer.delete("ref-a")
        writer.commit()
        writer.add("ref-a", make_fp(1), title="A again")
        writer.commit()
    with Catalog(two_refs) as reader:
        assert reader.get("ref-a").title == "A again"
        assert reader.stats()["references"] == 2


def test_compaction_merges_segments_and_keeps_every_live_posting(two_refs, make_fp):
    with Catalog(two_refs, writable=True) as writer:
        for seed in (3, 4, 5):
            writer.add(f"ref-{seed}", make_fp(seed))
            writer.commit()
        assert writer.stats()["audio_segments"] == 4
        writer.compact()
        assert writer.stats()["audio_segments"] == 1
    with Catalog(two_refs) as reader:
        for ref_id, seed in (("ref-a", 1), ("ref-b", 2), ("ref-3", 3), ("ref-5", 5)):
            assert reader.get(ref_id).ordinal in lookup_ordinals(reader, make_fp(seed))
        assert len(reader.postings()) == 5 * 400


# --- crashes --------------------------------------------------------------------------------
def crash_on_manifest_swap(monkeypatch) -> None:
    """os.replace works for segment files and raises for manifest.json: the process dies after
    writing its segments and committing SQLite, before the manifest names them."""
    real_replace = os.replace

    def replace(src, dst, *args, **kwargs):
        if Path(dst).name == "manifest.json":
            raise SimulatedCrash("power cut before the manifest swap")
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr("engine.store.catalog_segments.os.replace", replace)


def crash_in_write_manifest(monkeypatch) -> None:
    def write_manifest(self, manifest):
        raise SimulatedCrash("power cut in _write_manifest")

    monkeypatch.setattr(Catalog, "_write_manifest", write_manifest)


@pytest.mark.parametrize("crash", [crash_on_manifest_swap, crash_in_write_manifest])
def test_crash_before_the_manifest_swap_leaves_the_last_commit(two_refs, make_fp, monkeypatch,
                                                               crash, kit):
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
                                                                    monkeypatch, kit):
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


def test_crash_while_writing_a_segment_rolls_back_sqlite(two_refs, make_fp, monkeypatch, kit):
    before = kit.catalog_state(two_refs)
    files_before = segment_files(two_refs)

    def half_written_segment(path, keys, ordinals, frames, *, key_bits):
        Path(path).write_bytes(b"NANHUPST" + b"\0" * 100)
        raise SimulatedCrash("disk full")

    writer = Catalog(two_refs, writable=True)
    writer.add("ref-c", make_fp(3))
    monkeypatch.setattr("engine.store.catalog_segments.write_segment", half_written_segment)
    with pytest.raises(SimulatedCrash):
        writer.commit()
    monkeypatch.undo()
    assert kit.catalog_state(two_refs) == before
    assert [row[0] for row in rows(two_refs)] == ["ref-a", "ref-b"]  # the transaction rolled back
    writer.close()
    with Catalog(two_refs, writable=True):
        assert segment_files(two_refs) == files_before  # the temporary file is gone


def test_crash_during_compaction_keeps_the_old_segments(two_refs, make_fp, monkeypatch, kit):
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


# --- one writer, many readers ---------------------------------------------------------------
def test_second_writer_is_locked_out_while_readers_read(two_refs, make_fp):
    with Catalog(two_refs, writable=True) as writer:
        writer.add("ref-c", make_fp(3))
        with pytest.raises(CatalogLocked, match="another process is writing"):
            Catalog(two_refs, writable=True)
        with Catalog(two_refs) as reader:
            assert [r.ref_id for r in reader.list()] == ["ref-a", "ref-b"]
            assert len(reader.postings()) == 800
        writer.commit()
    with Catalog(two_refs, writable=True) as second:  # the lock is released on close
        assert second.stats()["references"] == 3


def test_refresh_sees_another_writers_commit(two_refs, make_fp):
    with Catalog(two_refs) as reader:
        assert reader.refresh() is False
        postings_before = len(reader.postings())
        with Catalog(two_refs, writable=True) as writer:
            writer.add("ref-c", make_fp(3))
            writer.commit()
        assert reader.generation == 1  # a reader keeps its snapshot...
        with pytest.raises(NotFound):
            reader.get("ref-c")
        assert reader.refresh() is True  # ...until it refreshes
        assert reader.generation == 2 and reader.get("ref-c").n_hashes == 400
        assert len(reader.postings()) == postings_before + 400
        assert reader.refresh() is False


def test_matcher_refresh_sees_new_references(two_refs, reference_fps, song_files):
    from engine.fingerprint import fingerprint_media

    query = fingerprint_media(song_files["song-1"], query=True, video=False)
    matcher = Matcher(Catalog(two_refs))
    assert matcher.match(query) == []
    with Catalog(two_refs, writable=True) as writer:
        writer.add("song-1", reference_fps["song-1"])
        writer.commit()
    assert matcher.refresh() is True
    assert [m.reference_id for m in matcher.match(query)] == ["song-1"]


# --- what add refuses -----------------------------------------------------------------------
def test_same_content_twice_names_the_existing_reference(two_refs, make_fp):
    with Catalog(two_refs, writable=True) as writer:
        with pytest.raises(AlreadyExists, match="'ref-a'") as caught:
            writer.add("other-id", make_fp(1))  # committed earlier as ref-a
        assert caught.value.existing_id == "ref-a"
        writer.add("ref-c", make_fp(3))
        with pytest.raises(AlreadyExists, match="'ref-c'") as caught:
            writer.add("ref-d", make_fp(3))  # staged in this very batch
        assert caught.value.existing_id == "ref-c"


def test_duplicate_id_is_refused(two_refs, make_fp):
    with Catalog(two_refs, writable=True) as writer:
        with pytest.raises(AlreadyExists, match="'ref-a' already exists") as caught:
            writer.add("ref-a", make_fp(9))
        assert caught.value.existing_id == "ref-a"
        writer.add("ref-c", make_fp(3))
        with pytest.raises(AlreadyExists, match="'ref-c' already exists"):
            writer.add("ref-c", make_fp(4))


@pytest.mark.parametrize("ref_id", ["", "-starts-with-dash", "has space", "a/b", "x" * 201,
                                    "ünïcode", ".hidden", "new\nline"])
def test_invalid_ids_are_refused(catalog_dir, make_fp, ref_id):
    with Catalog(catalog_dir, writable=True, create=True) as writer:
        with pytest.raises(InvalidArgument, match="invalid reference id"):
            writer.add(ref_id, make_fp(1))
        for good in ("a", "x" * 200, "Album:01_track-2.flac", "isrc@label+1"):
            writer.add(good, dataclasses.replace(make_fp(1), digest=good))


def test_fingerprint_of_another_parameter_version_is_refused(two_refs, make_fp):
    foreign = dataclasses.replace(make_fp(7), audio_params_tag="audio-v999")
    with Catalog(two_refs, writable=True) as writer:
        with pytest.raises(VersionMismatch, match="audio-v999"):
            writer.add("ref-x", foreign)
    with pytest.raises(VersionMismatch, match="audio-v999"):
        Matcher(Catalog(two_refs)).match(foreign)


def test_catalog_keeps_the_parameters_it_was_created_with(catalog_dir, make_fp):
    params = dataclasses.replace(AudioParams(), version=AudioParams().version + 1)
    Catalog(catalog_dir, writable=True, create=True, audio_params=params).close()
    with Catalog(catalog_dir, writable=True) as writer:
        assert writer.audio_params == params
        with pytest.raises(VersionMismatch):
            writer.add("ref-a", make_fp(1))


def test_read_only_catalog_refuses_writes(two_refs, make_fp):
    with Catalog(two_refs) as reader:
        for attempt in (lambda: reader.add("ref-c", make_fp(3)), lambda: reader.delete("ref-a"),
                        reader.commit, reader.compact):
            with pytest.raises(InvalidArgument, match="read-only"):
                attempt()


def test_references_must_be_hashed_at_speed_one(catalog_dir, reference_fps, song_files):
    from engine.fingerprint import fingerprint_media

    query_fp = fingerprint_media(song_files["song-0"], query=True, video=False)
    with Catalog(catalog_dir, writable=True, create=True) as writer:
        with pytest.raises(InvalidArgument, match="speed 1.0"):
            writer.add("song-0", query_fp)


def test_missing_and_corrupt_catalogs(tmp_path, two_refs):
    with pytest.raises(NotFound, match="no catalog here"):
        Catalog(tmp_path / "nowhere")
    with pytest.raises(NotFound):
        Catalog(tmp_path / "nowhere", writable=True)  # without create
    assert not (tmp_path / "nowhere").exists()
    manifest = json.loads((two_refs / "manifest.json").read_text())
    (two_refs / "manifest.json").write_text(json.dumps({**manifest, "version": 99}))
    with pytest.raises(CatalogCorrupt, match="version 99"):
        Catalog(two_refs)
    (two_refs / "manifest.json").write_text(json.dumps({**manifest, "version": 1}))
    with pytest.raises(VersionMismatch, match="format version 1 .*audio-v2.*Rebuild it.*nanhu ingest"):
        Catalog(two_refs)
    (two_refs / "manifest.json").write_text('{"format": "nanhu-cat')
    with pytest.raises(CatalogCorrupt, match="unreadable manifest"):
        Catalog(two_refs)
    with pytest.raises(CatalogCorrupt):  # a failed open does not keep the writer lock
        Catalog(two_refs, writable=True)
    (two_refs / "manifest.json").write_text(json.dumps(manifest))
    Catalog(two_refs, writable=True).close()


# --- large vector segments ---------------------------------------------------------------------
def with_keyframes(fp, seed: int, n: int = 120):
    """``fp`` with ``n`` random unit keyframe vectors (2 per second) added."""
    from engine.fingerprint import VideoPrint
    from engine.video import VideoParams

    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((n, 248)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    video = VideoPrint(vectors, (np.arange(n) * 0.5).astype(np.float32), VideoParams().tag())
    return dataclasses.replace(fp, video=video)


def test_a_large_vector_segment_gets_a_graph_that_survives_reopen_and_crashes(
        catalog_dir, make_fp, monkeypatch):
    monkeypatch.setattr("engine.vectors.HNSW_MIN_VECTORS", 200)
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


def test_small_commits_merge_by_tier_and_old_files_go(catalog_dir, make_fp):
    """Eight one-reference commits fill tier 0 and are merged into one segment in the eighth
    commit; the replaced files are removed and every posting is still found."""
    from engine.catalog import TIER_FANOUT

    with Catalog(catalog_dir, writable=True, create=True) as catalog:
        for n in range(TIER_FANOUT):
            catalog.add(f"ref-{n}", make_fp(100 + n))
            catalog.commit()
            assert len(catalog.manifest["audio_segments"]) == (n + 1 if n + 1 < TIER_FANOUT else 1)
        files = sorted(p.name for p in (catalog_dir / "audio").iterdir())
        assert files == [Path(catalog.manifest["audio_segments"][0]["file"]).name]
        assert len(catalog.postings()) == 400 * TIER_FANOUT
        for n in range(TIER_FANOUT):
            assert catalog.get(f"ref-{n}").ordinal in lookup_ordinals(catalog, make_fp(100 + n))
