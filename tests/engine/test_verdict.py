"""What a match tells a moderator: action and why, band, shares, trimming; the precedence of the
screening call's floor, the work's own policy and its owner's default."""

from __future__ import annotations

from pathlib import Path

import pytest

from nanhu.engine.catalog import Catalog, Reference
from nanhu.engine.fingerprint import fingerprint_media
from nanhu.engine.matcher import Matcher
from nanhu.engine.policy import Policy, ScreenFloor
from nanhu.engine.segments import Segment, score_from_log10_expected
from nanhu.engine.verdict import Match, judge


def segment(**overrides) -> Segment:
    """The upload's 0-20 s copies the work's 10-30 s; E = 1e-12 (band high)."""
    fields = dict(reference=1, modality="audio", query_start_s=0.0, query_end_s=20.0,
                  reference_start_s=10.0, reference_end_s=30.0, speed=1.0,
                  score=score_from_log10_expected(-12), evidence={"aligned_hashes": 41})
    return Segment(**{**fields, **overrides})


def work(policy: Policy | None = None, owner: str = "label-a") -> Reference:
    return Reference(ordinal=1, ref_id="song-1", title="Song One", owner=owner, duration_s=100.0,
                     digest="d", policy=policy.to_dict() if policy else {})


def judged(seg=None, *, own=None, default=None, upload_s=40.0, floor=None) -> list[Match]:
    return judge(seg or segment(), work(own), default, upload_duration_s=upload_s,
                 floor=floor or ScreenFloor())


def test_a_match_carries_action_band_reason_and_shares():
    (match,) = judged(own=Policy("block"))
    assert (match.action, match.policy, match.policy_source, match.band) == (
        "block", "block", "reference", "high")
    assert match.reason == "audio 20.0 s aligned (41 hashes); block by the work's own policy"
    assert (match.matched_s, match.upload_share, match.reference_share) == (20.0, 0.5, 0.2)
    out = match.to_dict()
    for old in ("reference_id", "title", "modality", "score", "query_start_s", "query_end_s",
                "reference_start_s", "reference_end_s", "speed", "expected_false_matches",
                "evidence", "policy"):
        assert old in out  # older scripts keep working
    assert {k: out[k] for k in ("action", "band", "reason", "matched_s", "upload_share",
                                "reference_share", "policy_source")} == {
        "action": "block", "band": "high", "reason": match.reason, "matched_s": 20.0,
        "upload_share": 0.5, "reference_share": 0.2, "policy_source": "reference"}
    assert "trimmed" not in out and "owner" not in out


@pytest.mark.parametrize(("log10_e", "band"), [(-30, "high"), (-10, "high"), (-9.5, "medium"),
                                                (-5, "medium"), (-4.5, "low"), (-3, "low")])
def test_bands_follow_expected_false_matches(log10_e, band):
    assert Match("r", "t", "audio", score_from_log10_expected(log10_e), 0, 1, 0, 1, 1.0).band == band


def test_without_any_policy_the_match_is_reported_with_action_none():
    (match,) = judged()
    assert (match.action, match.policy, match.policy_source) == ("none", "", "")
    assert match.reason.endswith("no action: no policy for the work or its owner")
    assert "policy" not in match.to_dict()


def test_the_owners_default_applies_to_works_without_their_own():
    (match,) = judged(default=Policy("monetize"))
    assert (match.action, match.policy_source) == ("monetize", "owner")
    assert match.reason.endswith("monetize by owner label-a's default policy")
    (match,) = judged(own=Policy("review"), default=Policy("monetize"))
    assert (match.action, match.policy_source) == ("review", "reference")


def test_a_disabled_own_policy_means_no_action_and_no_trimming_even_with_a_default():
    (match,) = judged(own=Policy("block", excluded_ranges=((0, 100),), enabled=False),
                      default=Policy("monetize"))
    assert (match.action, match.policy_source) == ("none", "reference")
    assert match.reason.endswith("no action: the work's own policy (block) is disabled")
    assert not match.trimmed


def test_unmet_owner_conditions_report_the_match_without_the_action():
    (match,) = judged(own=Policy("block", min_match_s=30))
    assert match.action == "none" and match.policy == ""
    assert match.reason.endswith("no action: the work's own policy (block) needs 30 s matched, "
                                 "has 20.0 s")
    (match,) = judged(default=Policy("block", modality="video"))
    assert match.reason.endswith("owner label-a's default policy (block) needs video evidence, "
                                 "has audio")
    assert judged(own=Policy("block", min_upload_share=0.5))[0].action == "block"
    assert judged(own=Policy("block", min_upload_share=0.6))[0].action == "none"


def test_the_platforms_floor_wins_over_a_more_lenient_owner():
    # The owner would act on 5 s; the call asks 25 s: the match is not reported at all.
    assert judged(own=Policy("block", min_match_s=5),
                  floor=ScreenFloor(min_matched_duration_s=25)) == []
    # A stricter owner can still say "no action" on what the floor lets through.
    (match,) = judged(own=Policy("block", min_match_s=30), floor=ScreenFloor(min_matched_duration_s=10))
    assert match.action == "none"
    assert judged(floor=ScreenFloor(min_upload_share=0.6)) == []
    assert judged(floor=ScreenFloor(min_reference_share=0.25)) == []


def test_excluded_ranges_trim_and_the_floor_judges_what_is_left():
    own = Policy("block", excluded_ranges=((0, 15), (25, 26)))
    first, second = judged(own=own)
    assert (first.reference_start_s, first.reference_end_s) == (15.0, 25.0)
    assert (first.query_start_s, first.query_end_s) == (5.0, 15.0)
    assert (second.reference_start_s, second.reference_end_s) == (26.0, 30.0)
    assert first.matched_s == 10.0 and second.matched_s == 4.0
    assert [(t.reference_start_s, t.reference_end_s) for t in first.trimmed] == [(10, 15), (25, 26)]
    assert first.to_dict()["trimmed"] == [
        {"query_start_s": 0.0, "query_end_s": 5.0, "reference_start_s": 10.0, "reference_end_s": 15.0},
        {"query_start_s": 15.0, "query_end_s": 16.0, "reference_start_s": 25.0, "reference_end_s": 26.0}]
    assert "trimmed 10-15 s, 25-26 s of the work (excluded ranges)" in first.reason
    # the floor is applied to each trimmed piece: 5 s drops the 4 s piece
    assert [m.matched_s for m in judged(own=own, floor=ScreenFloor(min_matched_duration_s=5))] == [10.0]
    # and the owner's conditions too: the 4 s piece gets no action
    own = Policy("block", min_match_s=5, excluded_ranges=((0, 15), (25, 26)))
    assert [m.action for m in judged(own=own)] == ["block", "none"]
    assert judged(own=Policy("block", excluded_ranges=((5, 35),))) == []  # entirely inside


def test_an_owner_default_can_exclude_a_range_of_every_work():
    (match,) = judged(default=Policy("track", excluded_ranges=((0, 12),)))
    assert (match.reference_start_s, match.query_start_s) == (12.0, 2.0)


def test_the_reason_of_a_fused_match_names_both_sides():
    seg = segment(modality="audio+video", evidence={
        "audio": {"aligned_hashes": 41, "matched_s": 9.6},
        "video": {"aligned_keyframes": 8, "query_keyframes": 9}})
    (match,) = judged(seg, own=Policy("block", modality="both"))
    assert match.reason == ("audio 9.6 s aligned (41 hashes), video 8 of 9 keyframes in line; "
                            "block by the work's own policy")
    video = segment(modality="video", evidence={"aligned_keyframes": 8, "query_keyframes": 8})
    assert judged(video)[0].reason.startswith("video 8 keyframes in line; ")


# --- through the matcher, on real alignments ----------------------------------------------------------
@pytest.fixture
def owned_catalog(catalog_dir, reference_fps) -> Path:
    with Catalog(catalog_dir, writable=True, create=True) as catalog:
        catalog.add("song-1", reference_fps["song-1"], title="One", owner="label-a")
        catalog.add("song-2", reference_fps["song-2"], title="Two", owner="label-a")
        catalog.set_owner_policy("label-a", {"action": "track", "min_match_s": 5})
        catalog.commit()
    return catalog_dir


def test_owner_default_and_own_policy_through_the_matcher(owned_catalog, songs, kit, tmp_path):
    clip = kit.write_clip(tmp_path / "s1.wav", kit.excerpt(songs["song-1"], 20, 28))
    matcher = Matcher(Catalog(owned_catalog))
    fp = fingerprint_media(clip, query=True, video=False)
    (match,) = matcher.match(fp)
    assert (match.action, match.policy_source, match.band) == ("track", "owner", "high")
    assert match.matched_s == pytest.approx(8.0, abs=1.0)
    assert match.upload_share == pytest.approx(match.matched_s / fp.duration_s)
    assert match.reference_share == pytest.approx(
        (match.reference_end_s - match.reference_start_s) / 40.0, abs=0.01)  # 40 s songs
    assert match.reason.startswith(f"audio {match.query_end_s - match.query_start_s:.1f} s aligned (")
    with Catalog(owned_catalog, writable=True) as writer:
        writer.set_policy("song-1", Policy("block", min_reference_share=0.5))
        writer.commit()
    assert matcher.refresh()
    (match,) = matcher.match(fp)
    assert (match.action, match.policy_source) == ("none", "reference")
    assert "needs 50% of the work" in match.reason
    assert matcher.match(fp, floor=ScreenFloor(min_matched_duration_s=20)) == []


def test_a_hand_broken_stored_policy_sends_matches_to_review_and_check_reports_it(owned_catalog):
    import sqlite3

    from nanhu.engine.check import check_catalog

    with sqlite3.connect(owned_catalog / "meta.sqlite") as db:
        db.execute("""UPDATE refs SET policy = '{"action": "blok"}' WHERE ref_id = 'song-1'""")
    report = check_catalog(owned_catalog)
    assert not report["ok"]
    assert report["problems"] == ["reference 'song-1': unusable policy (action 'blok' is not one of "
                                  "block, monetize, track, review); set it again with `nanhu policy "
                                  "set` or `nanhu policy clear`"]
    broken = Catalog(owned_catalog).get("song-1")
    (match,) = judge(segment(), broken, None, upload_duration_s=40.0, floor=ScreenFloor())
    assert match.action == "review"
