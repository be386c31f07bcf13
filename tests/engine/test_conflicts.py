"""Reference hygiene: a registration is screened against the catalog; material overlapping
another owner's work is a conflict held out of screening until resolved, same-owner overlaps are
reported and allowed, and owners can be assigned and transferred under the commit rules."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import pytest

from nanhu.benchmarks.synth import music_like
from nanhu.engine.catalog import Catalog
from nanhu.engine.conflicts import describe, find_overlaps
from nanhu.engine.errors import InvalidArgument, NotFound
from nanhu.engine.fingerprint import fingerprint_media
from nanhu.engine.matcher import Matcher


class SimulatedCrash(Exception):
    pass


@pytest.fixture
def labelled(tmp_path, reference_fps) -> Path:
    """A fresh catalog: song-0 .. song-3, owned by label-a."""
    path = tmp_path / "catalog"
    with Catalog(path, writable=True, create=True) as catalog:
        for ref_id, fp in reference_fps.items():
            catalog.add(ref_id, fp, title=f"Title of {ref_id}", owner="label-a")
        catalog.commit()
    return path


@pytest.fixture(scope="module")
def excerpt_fp(songs, kit):
    """12 s of song-0 (its 10-22 s), as a file of its own would be registered."""
    return fingerprint_media(kit.write_clip("excerpt-0.flac", kit.excerpt(songs["song-0"], 10, 22)),
                             video=False)


def register(path: Path, ref_id: str, fp, owner: str) -> list:
    with Catalog(path, writable=True) as catalog:
        overlaps = find_overlaps(catalog, fp)
        catalog.add(ref_id, fp, title=ref_id, owner=owner, overlaps=overlaps)
        catalog.commit()
    return overlaps


def screen(path: Path, kit, samples: np.ndarray, name: str) -> list:
    fp = fingerprint_media(kit.write_clip(name, samples), query=True, video=False)
    with Catalog(path) as catalog:
        return Matcher(catalog).match(fp)


def test_an_excerpt_under_another_owner_is_a_conflict_kept_out_of_screening(labelled, excerpt_fp,
                                                                             songs, kit):
    (overlap,) = register(labelled, "excerpt", excerpt_fp, owner="label-b")
    assert (overlap.other_ref_id, overlap.other_owner) == ("song-0", "label-a")
    assert overlap.start_s == pytest.approx(0, abs=0.6) and overlap.end_s == pytest.approx(12, abs=0.6)
    assert overlap.other_start_s == pytest.approx(10, abs=0.6)
    assert overlap.other_end_s == pytest.approx(22, abs=0.6)
    (line,) = describe("excerpt", "label-b", [overlap])
    assert line.startswith("excerpt: CONFLICT with song-0 (owner label-a): 0.") and "held" in line
    with Catalog(labelled) as catalog:
        (conflict,) = catalog.conflicts()
        assert (conflict.kind, conflict.status, conflict.held) == ("conflict", "held", True)
        shown = conflict.to_dict()
        assert (shown["reference_id"], shown["owner"], shown["other_reference_id"],
                shown["other_owner"]) == ("excerpt", "label-b", "song-0", "label-a")
        assert shown["ranges"] == [overlap.to_dict()]
        assert catalog.stats()["held_conflicts"] == 1
    # An upload copying song-0's 12-20 s: the excerpt holds that material too, but is held.
    matches = screen(labelled, kit, kit.excerpt(songs["song-0"], 12, 20), "copy-12-20.wav")
    assert {m.reference_id for m in matches} == {"song-0"}


def test_a_same_owner_excerpt_is_allowed_with_a_note(labelled, excerpt_fp, songs, kit):
    (overlap,) = register(labelled, "excerpt", excerpt_fp, owner="label-a")
    (line,) = describe("excerpt", "label-a", [overlap])
    assert line.startswith("excerpt: note: overlaps song-0 of the same owner") and "allowed" in line
    with Catalog(labelled) as catalog:
        (conflict,) = catalog.conflicts()
        assert (conflict.kind, conflict.status, conflict.held) == ("same-owner", "allowed", False)
        assert catalog.held_ranges() == {} and catalog.stats()["held_conflicts"] == 0
    matches = screen(labelled, kit, kit.excerpt(songs["song-0"], 12, 20), "copy-12-20b.wav")
    assert {m.reference_id for m in matches} == {"song-0", "excerpt"}


def test_an_unrelated_work_has_no_conflict(labelled, kit):
    other = fingerprint_media(kit.write_clip("unrelated.flac", music_like(30.0, seed=907,
                                                                          sample_rate=kit.rate)),
                              video=False)
    assert register(labelled, "unrelated", other, owner="label-b") == []
    with Catalog(labelled) as catalog:
        assert catalog.conflicts(include_resolved=True) == []


def test_a_60_s_edit_holds_only_the_borrowed_stretch(labelled, songs, kit):
    own = music_like(48.0, seed=908, sample_rate=kit.rate)
    edit = np.concatenate([kit.excerpt(songs["song-1"], 5, 17), own])
    fp = fingerprint_media(kit.write_clip("edit.flac", edit), video=False)
    (overlap,) = register(labelled, "edit", fp, owner="label-b")
    assert overlap.other_ref_id == "song-1" and overlap.end_s == pytest.approx(12, abs=0.6)
    with Catalog(labelled) as catalog:
        ((start, end),) = catalog.held_ranges()[catalog.get("edit").ordinal]
    assert end == pytest.approx(12, abs=0.6)
    # Its own material screens as usual; the borrowed stretch answers for song-1 only.
    (own_match,) = screen(labelled, kit, kit.excerpt(edit, 30, 40), "edit-30-40.wav")
    assert own_match.reference_id == "edit" and "held" not in own_match.reason
    borrowed = screen(labelled, kit, kit.excerpt(edit, 2, 10), "edit-2-10.wav")
    assert {m.reference_id for m in borrowed} == {"song-1"}
    # A copy across the seam is cut at the held stretch, and says so.
    across = [m for m in screen(labelled, kit, kit.excerpt(edit, 6, 20), "edit-6-20.wav")
              if m.reference_id == "edit"]
    assert across and all(m.reference_start_s >= end - 0.01 for m in across)
    assert "held" in across[0].reason and "reference conflict" in across[0].reason


def test_owner_set_assigns_transfers_and_settles_conflicts(labelled, excerpt_fp, songs, kit):
    register(labelled, "excerpt", excerpt_fp, owner="")
    with Catalog(labelled) as catalog:
        assert catalog.stats()["unowned_references"] == 1
        assert catalog.conflicts()[0].held  # no owner is not the same owner
    with Catalog(labelled, writable=True) as catalog:
        catalog.set_owner("excerpt", "label-a")
        with pytest.raises(InvalidArgument):
            catalog.set_owner("song-1", "bad owner!")
        with pytest.raises(NotFound):
            catalog.set_owner("no-such-work", "label-a")
        catalog.commit()
    with Catalog(labelled) as catalog:
        assert catalog.get("excerpt").owner == "label-a" and catalog.stats()["unowned_references"] == 0
        assert catalog.conflicts()[0].kind == "same-owner" and catalog.held_ranges() == {}
    matches = screen(labelled, kit, kit.excerpt(songs["song-0"], 12, 20), "copy-12-20c.wav")
    assert {m.reference_id for m in matches} == {"song-0", "excerpt"}


def test_resolving_or_deleting_releases_the_held_material(labelled, excerpt_fp):
    register(labelled, "excerpt", excerpt_fp, owner="label-b")
    with Catalog(labelled, writable=True) as catalog:
        (conflict,) = catalog.conflicts()
        with pytest.raises(NotFound):
            catalog.resolve_conflict(conflict.conflict_id + 1)
        catalog.resolve_conflict(conflict.conflict_id, by="label-a", note="licensed to label-b")
        catalog.commit()
    with Catalog(labelled) as catalog:
        assert catalog.conflicts() == [] and catalog.held_ranges() == {}
        (resolved,) = catalog.conflicts(include_resolved=True)
        assert (resolved.status, resolved.resolved_by, resolved.note) == (
            "resolved", "label-a", "licensed to label-b")
    register(labelled, "excerpt-2", dataclasses.replace(excerpt_fp, digest="other-bytes"),
             owner="label-c")
    with Catalog(labelled, writable=True) as catalog:
        assert {c.reference.ref_id for c in catalog.conflicts()} == {"excerpt-2"}
        catalog.delete("excerpt-2")
        catalog.commit()
        assert catalog.conflicts() == []
        catalog.compact()
    with Catalog(labelled) as catalog:
        assert [c.reference.ref_id for c in catalog.conflicts(include_resolved=True)] == ["excerpt"]


def test_a_crash_before_the_manifest_swap_rolls_back_conflicts_and_owner_changes(
        labelled, excerpt_fp, monkeypatch):
    writer = Catalog(labelled, writable=True)
    writer.add("excerpt", excerpt_fp, owner="label-b", overlaps=find_overlaps(writer, excerpt_fp))
    writer.set_owner("song-1", "label-z")
    real_replace = os.replace

    def replace(src, dst, *args, **kwargs):
        if Path(dst).name == "manifest.json":
            raise SimulatedCrash("power cut before the manifest swap")
        return real_replace(src, dst, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr("nanhu.engine.store.catalog_segments.os.replace", replace)
        with pytest.raises(SimulatedCrash):
            writer.commit()
    writer.close()
    with Catalog(labelled, writable=True) as recovered:
        assert recovered.conflicts(include_resolved=True) == []
        assert recovered.get("song-1").owner == "label-a"
        assert recovered._db.execute("SELECT COUNT(*) FROM conflicts").fetchone()[0] == 0


def test_works_of_one_batch_are_checked_against_each_other(catalog_dir, reference_fps,
                                                           excerpt_fp):
    from nanhu.engine.conflicts import BatchScreen

    with Catalog(catalog_dir, writable=True, create=True) as catalog, BatchScreen(catalog) as screen:
        for ref_id, fp, owner in (("song-0", reference_fps["song-0"], "label-a"),
                                  ("excerpt", excerpt_fp, "label-b"),
                                  ("excerpt-a", dataclasses.replace(excerpt_fp, digest="x"),
                                   "label-a")):
            overlaps = screen.overlaps(fp)
            catalog.add(ref_id, fp, owner=owner, overlaps=overlaps)
            screen.added(ref_id, fp, owner)
        assert catalog.commit() == 1  # one commit for the batch, as before
        found = {(c.reference.ref_id, c.other.ref_id): c.kind for c in catalog.conflicts()}
    assert found == {("excerpt", "song-0"): "conflict", ("excerpt-a", "song-0"): "same-owner",
                     ("excerpt-a", "excerpt"): "conflict"}


def test_a_killed_batchs_scratch_catalog_is_removed_by_the_next_writer(catalog_dir, reference_fps):
    from nanhu.engine.conflicts import BatchScreen

    with Catalog(catalog_dir, writable=True, create=True) as catalog:
        screen = BatchScreen(catalog)
        catalog.add("song-0", reference_fps["song-0"], overlaps=screen.overlaps(reference_fps["song-0"]))
        screen.added("song-0", reference_fps["song-0"], "")
        (scratch,) = catalog_dir.glob("batch-*.tmp")
        assert (scratch / "catalog" / "manifest.json").exists()
        # killed here: no close, no commit
    with Catalog(catalog_dir, writable=True):
        assert list(catalog_dir.glob("batch-*.tmp")) == []
