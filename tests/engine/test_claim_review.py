"""What the review page asks of claims: the pictures of the upload kept with a claim (chosen
inside its video matches, bounded, stored in the claim's transaction, hidden like the claim),
the list's action and modality filters, and the changes a viewer may make next."""

from __future__ import annotations

import numpy as np
import pytest

from nanhu.engine import thumbnails
from nanhu.engine.claims import LOCAL_ADMIN, TRANSITIONS, ClaimStore, Viewer, allowed_changes
from nanhu.engine.errors import NotFound
from nanhu.engine.thumbnails import PER_CLAIM, Thumbnail
from nanhu.engine.verdict import Match

LABEL = Viewer("label-a", rights_holder=True)
TUBE = Viewer("tube", platform=True)
STRANGER = Viewer("label-b", rights_holder=True, platform=True)


def match(ref_id: str, modality: str = "audio+video", action: str = "block", start: float = 0.0,
          end: float = 10.0) -> Match:
    return Match(ref_id, ref_id, modality, 0.99, start, end, 0, end - start, 1.0, owner="label-a",
                 action=action)


@pytest.fixture
def store(tmp_path) -> ClaimStore:
    with ClaimStore(tmp_path) as claims:
        yield claims


def test_pictures_are_picked_inside_acting_video_matches_only():
    times = np.arange(0, 30, 0.5, dtype=np.float32)
    picked = thumbnails.pick_times([match("a", start=2, end=8), match("b", "audio", start=10, end=20),
                                    match("c", action="none", start=20, end=30)], times)
    assert len(picked) == PER_CLAIM and picked[0] == 2.0 and picked[-1] == 8.0
    assert thumbnails.pick_times([match("b", "audio")], times) == []
    many = [match(str(n), start=3 * n, end=3 * n + 2) for n in range(9)]
    assert len(thumbnails.pick_times(many, times)) == thumbnails.PER_SCREENING


def test_pictures_of_a_real_upload_are_small_jpegs(kit, tmp_path):
    path = kit.write_video(tmp_path / "clip.mp4", 6.0, audio=None, size=(90, 160))
    pictures = thumbnails.extract(path, [0.0, 2.5, 5.5])
    assert [p.at_s for p in pictures] == [0.0, 2.5, 5.5]
    assert all(p.data[:2] == b"\xff\xd8" and len(p.data) <= thumbnails.MAX_BYTES for p in pictures)
    assert len({p.data for p in pictures}) == 3  # three different frames, not one thrice
    # inside a match, key frames come first (x264 put one at 0 s only): one picture, cheaply;
    # a match without a key frame gets the frame at its first time
    assert [p.at_s for p in thumbnails.extract(path, [0.0, 2.5, 5.5], within=[(0.0, 6.0)])] == [0.0]
    assert [p.at_s for p in thumbnails.extract(path, [2.5, 5.5], within=[(1.0, 6.0)])] == [2.5]
    audio_only = kit.write_clip(tmp_path / "a.wav", np.zeros(22050, np.float32))
    assert thumbnails.extract(audio_only, [0.0]) == []
    (tmp_path / "broken.mp4").write_bytes(b"not media")
    assert thumbnails.extract(tmp_path / "broken.mp4", [0.0]) == []


def test_each_claim_keeps_the_pictures_inside_its_own_matches(store):
    pictures = [Thumbnail(at_s=float(t), data=bytes([t])) for t in (1, 3, 5, 7, 9, 12, 14)]
    ids = store.record([match("a", start=0, end=10), match("b", start=11, end=15)], tenant="tube",
                       thumbnails=pictures)
    assert [p.at_s for p in store.thumbnails(LABEL, ids["a"])] == [1, 3, 5, 7]  # at most 4
    assert [p.at_s for p in store.thumbnails(TUBE, ids["b"])] == [12, 14]
    with pytest.raises(NotFound):
        store.thumbnails(STRANGER, ids["a"])
    plain = store.record([match("c", "audio")], tenant="tube", thumbnails=pictures)
    assert store.thumbnails(LOCAL_ADMIN, plain["c"]) == []


def test_the_list_filters_by_action_and_modality(store):
    ids = {**store.record([match("a")], tenant="tube"),
           **store.record([match("b", "audio", action="track")], tenant="tube"),
           **store.record([match("c", "video", action="review"),
                           match("c", "audio", action="review", start=20, end=25)], tenant="tube")}

    def listed(**filters) -> set[str]:
        page, _ = store.list(TUBE, **filters)
        return {c["reference_id"] for c in page}

    assert listed(action="track") == {"b"} and listed(action="monetize") == set()
    assert listed(modality="audio") == {"b", "c"} and listed(modality="audio+video") == {"a"}
    assert listed(modality="video", action="review") == {"c"}
    assert listed(modality="audio", status="open") == {"b", "c"} and set(ids) == {"a", "b", "c"}
    assert store.list(STRANGER, modality="audio") == ([], None)


def test_allowed_changes_follow_the_transitions_and_the_viewers_party(store):
    claim_id = store.record([match("a")], tenant="tube")["a"]
    claim = store.get(LOCAL_ADMIN, claim_id)
    assert allowed_changes(LABEL, claim) == ["confirmed", "released"]
    assert allowed_changes(TUBE, claim) == ["disputed"]
    assert allowed_changes(STRANGER, claim) == []
    assert sorted(allowed_changes(LOCAL_ADMIN, claim)) == sorted(
        to for (old, to) in TRANSITIONS if old == "open")
    released = store.resolve(LABEL, claim_id, "released")
    assert allowed_changes(LOCAL_ADMIN, released) == []
