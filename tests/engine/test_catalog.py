"""The embedded catalog: commits, readers, tombstones, compaction and the writer lock."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from nanhu.engine.audio.params import AudioParams
from nanhu.engine.catalog import Catalog
from nanhu.engine.errors import (
    AlreadyExists,
    CatalogCorrupt,
    CatalogLocked,
    InvalidArgument,
    NotFound,
    VersionMismatch,
)
from nanhu.engine.matcher import Matcher


def test_commit_then_reopen_sees_everything(two_refs, make_fp, lookup_ordinals, segment_files):
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


def test_delete_hides_at_commit_and_compaction_purges(two_refs, make_fp, lookup_ordinals, rows,
                                                       segment_files):
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


def test_reference_frames_are_the_visible_references_lengths(two_refs):
    """The matcher's table of reference lengths (read once per generation) holds what
    ``by_ordinals`` gives, and a deletion takes its reference out at its commit."""
    with Catalog(two_refs, writable=True) as writer:
        fps = writer.audio_params.frames_per_second
        refs = {r.ordinal: r for r in writer.list()}
        ordinals, frames = writer.reference_frames()
        assert ordinals.tolist() == sorted(refs)
        assert frames.tolist() == [int(refs[o].duration_s * fps) for o in sorted(refs)]
        gone = writer.delete("ref-a").ordinal
        writer.commit()
        assert gone not in writer.reference_frames()[0].tolist()


def test_deleted_id_and_content_can_be_registered_again(two_refs, make_fp):
    with Catalog(two_refs, writable=True) as writer:
        writer.delete("ref-a")
        writer.commit()
        writer.add("ref-a", make_fp(1), title="A again")
        writer.commit()
    with Catalog(two_refs) as reader:
        assert reader.get("ref-a").title == "A again"
        assert reader.stats()["references"] == 2


def test_compaction_merges_segments_and_keeps_every_live_posting(two_refs, make_fp, lookup_ordinals):
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
    from nanhu.engine.fingerprint import fingerprint_media

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
    from nanhu.engine.fingerprint import fingerprint_media

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
    with pytest.raises(VersionMismatch, match="version 99 was written by a newer Nanhu"):
        Catalog(two_refs)
    (two_refs / "manifest.json").write_text(json.dumps({**manifest, "version": None}))
    with pytest.raises(CatalogCorrupt, match="version None is not supported"):
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


def test_small_commits_merge_by_tier_and_old_files_go(catalog_dir, make_fp, lookup_ordinals):
    """Eight one-reference commits fill tier 0 and are merged into one segment in the eighth
    commit; the replaced files are removed and every posting is still found."""
    from nanhu.engine.catalog import TIER_FANOUT

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
