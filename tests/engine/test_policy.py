"""Policies: the model (actions, conditions, ranges), trimming, and how the catalog stores them
(staged, committed, undone by a crash, migrated from older catalogs)."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from nanhu.engine.catalog import META_VERSION, Catalog
from nanhu.engine.errors import InvalidArgument, VersionMismatch
from nanhu.engine.policy import (
    ACTIONS,
    MIN_TRIMMED_PIECE_S,
    Policy,
    ScreenFloor,
    Stretch,
    effective,
    parse_ranges,
    trim,
    unmet_condition,
)


class SimulatedCrash(BaseException):
    """A power cut: not an Exception, so no handler in the engine runs."""


def crash_on_manifest_swap(monkeypatch) -> None:
    real_replace = os.replace

    def replace(src, dst, *args, **kwargs):
        if Path(dst).name == "manifest.json":
            raise SimulatedCrash("power cut before the manifest swap")
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr("nanhu.engine.store.catalog_segments.os.replace", replace)


@pytest.fixture
def two_refs(catalog_dir, kit) -> Path:
    with Catalog(catalog_dir, writable=True, create=True) as catalog:
        for seed, (ref_id, owner) in enumerate((("ref-a", "label-1"), ("ref-b", "")), 1):
            rng = np.random.default_rng(seed)
            catalog.add(ref_id, kit.fingerprint(rng.integers(0, 1 << 22, 400),
                                                np.sort(rng.integers(0, 3000, 400)),
                                                digest=f"digest-{seed}"), owner=owner)
        catalog.commit()
    return catalog_dir


# --- the model ----------------------------------------------------------------------------------
@pytest.mark.parametrize("action", ["blok", "monitor", "x" * 5000, "", "licensed"])
def test_an_action_outside_the_fixed_set_is_refused_naming_the_allowed_ones(action):
    with pytest.raises(InvalidArgument, match="block, monetize, track, review") as excinfo:
        Policy.from_dict({"action": action, "min_match_s": 5}) if not action else Policy(action)
    assert len(str(excinfo.value)) < 200  # a 5,000-character label is not echoed back whole


@pytest.mark.parametrize(("fields", "complaint"), [
    ({"modality": "smell"}, "modality 'smell' is not one of audio, video, both, any"),
    ({"min_upload_share": 1.5}, "min_upload_share 1.5 is out of range"),
    ({"min_reference_share": -0.1}, "min_reference_share -0.1 is out of range"),
    ({"min_match_s": float("nan")}, "min_match_s nan is out of range"),
    ({"min_match_s": True}, "min_match_s True is not a number"),
    ({"excluded_ranges": [[10, 5]]}, "excluded range 10-5 s is not a time range"),
    ({"excluded_ranges": [[0, 1]] * 101}, "at most 100"),
    ({"colour": "red"}, "unknown field"),
    ({"action": "track", "label": "block"}, "both label 'block' and action 'track'"),
])
def test_bad_policy_fields_are_refused_with_the_field_named(fields, complaint):
    with pytest.raises(InvalidArgument, match=complaint.replace("(", r"\(")):
        Policy.from_dict({"action": "block", **fields})


def test_a_policy_round_trips_and_normalises_its_ranges():
    policy = Policy.from_dict({"action": "Monetize", "modality": "both", "min_match_s": "10",
                               "excluded_ranges": [[30, 40], "0-12.5", [35, 50]],
                               "enabled": "no"})
    assert policy == Policy("monetize", "both", 10.0, 0.0, 0.0, ((0.0, 12.5), (30.0, 50.0)), False)
    assert Policy.from_dict(policy.to_dict()) == policy
    assert json.loads(json.dumps(policy.to_dict())) == policy.to_dict()
    assert Policy.from_dict({}) is None
    assert Policy.from_dict({"label": "block"}) == Policy("block")  # older clients' field
    assert "(disabled)" in policy.describe() and "0-12.5 s" in policy.describe()


def test_range_text_is_parsed_with_a_clear_error():
    assert parse_ranges("0-12.5; 30-40,50-60") == ((0, 12.5), (30, 40), (50, 60))
    assert parse_ranges("") == ()
    with pytest.raises(InvalidArgument, match="'12' is not START-END"):
        parse_ranges("12")


def test_a_works_own_policy_replaces_the_owners_default_entirely():
    own, default = Policy("block", min_match_s=30), Policy("track", excluded_ranges=((0, 10),))
    assert effective(own, default) == (own, "reference")
    assert effective(None, default) == (default, "owner")
    assert effective(None, None) == (None, "")
    disabled = Policy("block", enabled=False)
    assert effective(disabled, default) == (disabled, "reference")  # "no action on this work"


@pytest.mark.parametrize(("policy_modality", "match_modality", "met"), [
    ("any", "video", True), ("audio", "audio", True), ("audio", "audio+video", True),
    ("audio", "video", False), ("video", "audio+video", True), ("both", "audio", False),
    ("both", "audio+video", True),
])
def test_modality_conditions(policy_modality, match_modality, met):
    unmet = unmet_condition(Policy("block", modality=policy_modality), modality=match_modality,
                            matched_s=10, upload_share=1, reference_share=1)
    assert (unmet is None) == met


def test_conditions_say_what_they_needed():
    policy = Policy("block", min_match_s=10, min_upload_share=0.5, min_reference_share=0.2)
    words = {"modality": "audio", "matched_s": 12, "upload_share": 0.6, "reference_share": 0.3}
    assert unmet_condition(policy, **words) is None
    assert unmet_condition(policy, **{**words, "matched_s": 4.2}) == "needs 10 s matched, has 4.2 s"
    assert unmet_condition(policy, **{**words, "upload_share": 0.1}) == \
        "needs 50% of the upload, has 10%"
    assert unmet_condition(policy, **{**words, "reference_share": 0.1}) == \
        "needs 20% of the work, has 10%"


def test_the_floor_refuses_out_of_range_thresholds():
    with pytest.raises(InvalidArgument, match="min_upload_share = 1.5"):
        ScreenFloor(min_upload_share=1.5)
    assert ScreenFloor(min_matched_duration_s=5).failure(4.0, 1, 1).startswith("4.0 s matched")


# --- trimming -----------------------------------------------------------------------------------
def test_trimming_cuts_the_excluded_stretch_out_and_maps_upload_time_by_speed():
    # upload 0-20 s copies the work's 10-30 s... at speed 1: a range 15-20 s splits it in two
    whole = Stretch(0.0, 20.0, 10.0, 30.0)
    kept, removed = trim(whole, [(15.0, 20.0)])
    assert kept == [Stretch(0.0, 5.0, 10.0, 15.0), Stretch(10.0, 20.0, 20.0, 30.0)]
    assert removed == [Stretch(5.0, 10.0, 15.0, 20.0)]
    # at speed 2 (upload plays twice as fast: 10 s of upload is 20 s of the work)
    kept, removed = trim(Stretch(0.0, 10.0, 10.0, 30.0), [(0.0, 20.0)])
    assert kept == [Stretch(5.0, 10.0, 20.0, 30.0)] and removed == [Stretch(0.0, 5.0, 10.0, 20.0)]
    assert trim(whole, [(40.0, 50.0)]) == ([whole], [])
    assert trim(whole, [(0.0, 100.0)]) == ([], [whole])  # entirely inside: dropped


def test_slivers_left_by_a_trim_go_with_it():
    kept, removed = trim(Stretch(0.0, 20.0, 10.0, 30.0), [(10.5, 29.0)])
    assert kept == [Stretch(19.0, 20.0, 29.0, 30.0)]  # exactly the minimum is kept
    assert [r.reference_start_s for r in removed] == [10.0, 10.5]


@given(start=st.floats(0, 100), length=st.floats(0.5, 100), speed=st.floats(0.8, 1.25),
       ranges=st.lists(st.tuples(st.floats(0, 200), st.floats(0.01, 50)), max_size=5))
def test_trimmed_pieces_and_removed_stretches_tile_the_match(start, length, speed, ranges):
    ranges = [(s, s + w) for s, w in ranges]
    whole = Stretch(3.0, 3.0 + length / speed, start, start + length)
    kept, removed = trim(whole, ranges)
    pieces = sorted(kept + removed, key=lambda p: p.reference_start_s)
    assert sum(p.reference_end_s - p.reference_start_s for p in pieces) == pytest.approx(length)
    if not removed:
        assert kept == [whole]  # untouched, however short
    for piece in kept:
        assert not removed or piece.query_end_s - piece.query_start_s >= MIN_TRIMMED_PIECE_S - 1e-9
        assert not any(s < piece.reference_end_s - 1e-9 and e > piece.reference_start_s + 1e-9
                       for s, e in ranges)
        # upload time follows work time along the match's own speed
        assert piece.query_start_s == pytest.approx(
            3.0 + (piece.reference_start_s - start) / speed, abs=1e-6)


# --- in the catalog -------------------------------------------------------------------------------
def test_a_policy_is_validated_staged_and_committed(two_refs):
    with Catalog(two_refs, writable=True) as writer:
        with pytest.raises(InvalidArgument, match="'blok' is not one of"):
            writer.set_policy("ref-a", {"action": "blok"})
        writer.set_policy("ref-a", {"action": "track", "excluded_ranges": [[0, 10]]})
        with Catalog(two_refs) as reader:
            assert reader.get("ref-a").policy == {}
        writer.commit()
    with Catalog(two_refs) as reader:
        reference = reader.get("ref-a")
        assert reference.match_policy == Policy("track", excluded_ranges=((0, 10),))
        assert reference.policy == Policy("track", excluded_ranges=((0, 10),)).to_dict()
    with Catalog(two_refs, writable=True) as writer:
        writer.set_policy("ref-a", None)
        writer.commit()
    with Catalog(two_refs) as reader:
        assert reader.get("ref-a").match_policy is None


def test_owner_defaults_are_versioned_by_generation(two_refs):
    with Catalog(two_refs, writable=True) as writer:
        with pytest.raises(InvalidArgument, match="needs the owner"):
            writer.set_owner_policy("", {"action": "block"})
        writer.set_owner_policy("label-1", {"action": "block", "min_match_s": 10})
        old = Catalog(two_refs)
        writer.commit()
        assert old.owner_policies() == {}  # a reader keeps the generation it opened
        new = Catalog(two_refs)
        assert new.owner_policy("label-1") == Policy("block", min_match_s=10)
        writer.set_owner_policy("label-1", {"action": "review"})
        writer.set_owner_policy("label-2", {"action": "track"})
        writer.commit()
        assert new.owner_policy("label-1") == Policy("block", min_match_s=10)
        assert new.refresh() and new.owner_policy("label-1") == Policy("review")
        writer.set_owner_policy("label-1", None)
        writer.commit()
        assert new.refresh() and set(new.owner_policies()) == {"label-2"}
        assert new.owner_policy("") is None
        writer.compact()  # replaced rows are purged; the live ones stay
    with sqlite3.connect(two_refs / "meta.sqlite") as db:
        assert db.execute("SELECT owner FROM owner_policies").fetchall() == [("label-2",)]
    old.close()
    new.close()


def test_a_crash_before_the_manifest_swap_undoes_policy_changes(two_refs, monkeypatch):
    with Catalog(two_refs, writable=True) as writer:
        writer.set_policy("ref-a", {"action": "track"})
        writer.set_owner_policy("label-1", {"action": "monetize"})
        writer.commit()
    writer = Catalog(two_refs, writable=True)
    writer.set_policy("ref-a", {"action": "block", "excluded_ranges": [[5, 9]]})
    writer.set_owner_policy("label-1", {"action": "block"})
    writer.set_owner_policy("label-2", {"action": "review"})
    with monkeypatch.context() as patch:
        crash_on_manifest_swap(patch)
        with pytest.raises(SimulatedCrash):
            writer.commit()
    writer.close()
    with Catalog(two_refs, writable=True) as recovering:
        assert recovering.get("ref-a").match_policy == Policy("track")
        assert recovering.owner_policies() == {"label-1": Policy("monetize")}
        recovering.set_owner_policy("label-1", {"action": "block"})  # and it can be redone
        recovering.commit()
    with Catalog(two_refs) as reader:
        assert reader.owner_policies() == {"label-1": Policy("block")}


def downgrade_to_label_policies(path: Path, policies: dict[str, dict]) -> None:
    """Make the catalog's metadata look like one written before actions existed."""
    with sqlite3.connect(path / "meta.sqlite") as db:
        for ref_id, policy in policies.items():
            db.execute("UPDATE refs SET policy = ? WHERE ref_id = ?", (json.dumps(policy), ref_id))
        db.execute("DROP TABLE owner_policies")
        db.execute("PRAGMA user_version = 0")


def test_an_older_catalogs_label_policies_are_read_and_migrated(two_refs, caplog):
    downgrade_to_label_policies(two_refs, {"ref-a": {"label": "monitor", "excluded_ranges": [[0, 5]]},
                                           "ref-b": {"label": "block"}})
    with Catalog(two_refs) as reader:  # readers read the old form as the new one
        assert reader.get("ref-a").match_policy == Policy("track", excluded_ranges=((0, 5),))
        assert reader.get("ref-b").match_policy == Policy("block")
        assert reader.owner_policies() == {}
    with Catalog(two_refs, writable=True) as writer:
        assert writer.get("ref-a").policy == {**Policy("track", excluded_ranges=((0, 5),)).to_dict(),
                                              "legacy_label": "monitor"}
        assert writer.get("ref-b").policy == Policy("block").to_dict()
        writer.set_owner_policy("label-1", {"action": "track"})
        writer.commit()
    assert "'monitor' is not an action; migrated as action 'track'" in caplog.text
    with sqlite3.connect(two_refs / "meta.sqlite") as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == META_VERSION


def test_metadata_of_a_newer_nanhu_is_refused(two_refs):
    with sqlite3.connect(two_refs / "meta.sqlite") as db:
        db.execute(f"PRAGMA user_version = {META_VERSION + 1}")
    for writable in (False, True):
        with pytest.raises(VersionMismatch, match="newer Nanhu"):
            Catalog(two_refs, writable=writable)


def test_every_action_is_accepted(two_refs):
    with Catalog(two_refs, writable=True) as writer:
        for action in ACTIONS:
            writer.set_policy("ref-a", Policy(action))
        writer.commit()
        assert writer.get("ref-a").match_policy == Policy(ACTIONS[-1])
