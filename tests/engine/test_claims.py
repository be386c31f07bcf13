"""Claims: recorded per acting match, moved through the allowed transitions by the right party,
hidden from everyone else, and durable across a crash mid-write; webhook events queued with
the change that caused them."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nanhu.engine.claims import (
    LOCAL_ADMIN,
    PLATFORM,
    RIGHTS_HOLDER,
    STATUSES,
    TRANSITIONS,
    ClaimStore,
    Viewer,
)
from nanhu.engine.errors import InvalidArgument, InvalidState, NotFound, PermissionDenied, VersionMismatch
from nanhu.engine.outbox import signature, verify
from nanhu.engine.verdict import Match

LABEL = Viewer("label-a", rights_holder=True, name="key-a")
TUBE = Viewer("tube", platform=True, name="key-t")
STRANGER = Viewer("label-b", rights_holder=True, platform=True)


def match(ref_id: str = "song-1", action: str = "block", owner: str = "label-a", start: float = 0.0,
          **extra) -> Match:
    return Match(ref_id, f"Title of {ref_id}", "audio", 0.99, start, start + 10, 20, 30, 1.0,
                 owner=owner, action=action, **extra)


@pytest.fixture
def store(tmp_path) -> ClaimStore:
    with ClaimStore(tmp_path) as claims:
        yield claims


def recorded(store: ClaimStore, *matches: Match, **kwargs) -> dict[str, str]:
    kwargs.setdefault("tenant", "tube")
    return store.record(list(matches), **kwargs)


def test_a_screening_records_one_claim_per_work_with_an_acting_match(store):
    acting, second_piece, idle = match(), match(start=15), match("song-2", "none")
    other_work = match("song-3", "track", owner="label-c")
    ids = recorded(store, acting, second_piece, idle, other_work, request_id="req-1",
                   upload_id="up-9", filename="clip.mp4", duration_s=40.0)
    assert set(ids) == {"song-1", "song-3"} and len(set(ids.values())) == 2
    assert acting.claim_id == second_piece.claim_id == ids["song-1"] and idle.claim_id == ""
    claim = store.get(LOCAL_ADMIN, ids["song-1"])
    assert {k: claim[k] for k in ("status", "action", "reference_id", "owner", "tenant", "upload_id",
                                  "request_id", "filename", "duration_s")} == {
        "status": "open", "action": "block", "reference_id": "song-1", "owner": "label-a",
        "tenant": "tube", "upload_id": "up-9", "request_id": "req-1", "filename": "clip.mp4",
        "duration_s": 40.0}
    assert [m["query_start_s"] for m in claim["matches"]] == [0.0, 15.0]
    assert all(m["claim_id"] == claim["claim_id"] for m in claim["matches"])
    (entry,) = claim["history"]
    assert (entry["from"], entry["to"], entry["who"], entry["request_id"]) == ("", "open", "tube", "req-1")
    assert acting.to_dict()["claim_id"] == claim["claim_id"] and "claim_id" not in idle.to_dict()


def test_nothing_is_written_when_no_match_acts(store):
    assert recorded(store, match(action="none")) == {}
    assert store.list(LOCAL_ADMIN) == ([], None)


def test_the_same_upload_screened_again_keeps_its_claim(store):
    first = recorded(store, match(), upload_id="up-1")
    again = match()
    assert recorded(store, again, upload_id="up-1") == first and again.claim_id == first["song-1"]
    assert recorded(store, match(), upload_id="up-2") != first  # another upload: another claim
    assert recorded(store, match(), upload_id="up-1", tenant="vids") != first  # another platform
    assert len(store.list(LOCAL_ADMIN)[0]) == 3


def test_each_party_sees_its_own_claims_and_nobody_else_sees_any(store):
    (mine,) = recorded(store, match()).values()
    (theirs,) = recorded(store, match("song-5", owner="label-b"), tenant="vids").values()
    assert [c["claim_id"] for c in store.list(LABEL)[0]] == [mine]
    assert [c["claim_id"] for c in store.list(TUBE)[0]] == [mine]
    assert [c["claim_id"] for c in store.list(STRANGER)[0]] == [theirs]
    # the platform's tenant with only the register role sees nothing of its screenings
    assert store.list(Viewer("tube", rights_holder=True))[0] == []
    for viewer in (Viewer("label-c", rights_holder=True, platform=True), Viewer("tube")):
        with pytest.raises(NotFound) as refused:
            store.get(viewer, mine)
        assert str(refused.value) == f"no claim with id {mine!r}"  # as for no claim at all
        with pytest.raises(NotFound):
            store.resolve(viewer, mine, "released")
    with pytest.raises(NotFound):
        store.get(LOCAL_ADMIN, "clm_nonexistent")
    assert store.get(STRANGER, theirs)["owner"] == "label-b"


@pytest.mark.parametrize(("old", "new"), sorted(TRANSITIONS))
def test_every_allowed_transition_is_made_by_its_party_only(store, old, new):
    (claim_id,) = recorded(store, match()).values()
    path = {"open": [], "confirmed": [("confirmed", LABEL)], "disputed": [("disputed", TUBE)],
            "reinstated": [("disputed", TUBE), ("reinstated", LABEL)]}[old]
    for status, viewer in path:
        store.resolve(viewer, claim_id, status)
    right, wrong = (LABEL, TUBE) if TRANSITIONS[(old, new)] == RIGHTS_HOLDER else (TUBE, LABEL)
    with pytest.raises(PermissionDenied, match=f"only the .* can make it {new}"):
        store.resolve(wrong, claim_id, new)
    after = store.resolve(right, claim_id, new, note="checked by hand", request_id="req-7")
    assert after["status"] == new
    last = after["history"][-1]
    assert (last["from"], last["to"], last["who"], last["note"], last["request_id"]) == (
        old, new, right.tenant, "checked by hand", "req-7")
    assert [e["to"] for e in after["history"]] == ["open", *[s for s, _ in path], new]


@pytest.mark.parametrize(("old", "new"), [(o, n) for o in STATUSES for n in STATUSES
                                          if (o, n) not in TRANSITIONS and o != "reinstated"])
def test_transitions_outside_the_table_are_refused_naming_the_allowed_ones(store, old, new):
    (claim_id,) = recorded(store, match()).values()
    steps = {"open": [], "confirmed": ["confirmed"], "released": ["released"],
             "disputed": ["disputed"]}[old]
    for status in steps:
        store.resolve(LOCAL_ADMIN, claim_id, status)
    with pytest.raises(InvalidState, match=f"claim {claim_id} is {old}; .*not {new}"):
        store.resolve(LOCAL_ADMIN, claim_id, new)
    assert store.get(LOCAL_ADMIN, claim_id)["status"] == old


def test_bad_statuses_notes_and_upload_ids_are_invalid_arguments(store):
    (claim_id,) = recorded(store, match()).values()
    with pytest.raises(InvalidArgument, match="status 'closed' is not one of open, confirmed"):
        store.resolve(LABEL, claim_id, "closed")
    with pytest.raises(InvalidArgument, match="note is 2001 characters long"):
        store.resolve(LABEL, claim_id, "confirmed", note="x" * 2001)
    with pytest.raises(InvalidArgument, match="upload_id"):
        recorded(store, match(), upload_id="u" * 201)
    with pytest.raises(InvalidArgument):
        store.list(LABEL, status="closed")


@given(st.lists(st.tuples(st.sampled_from(["owner", "platform", "stranger"]),
                          st.sampled_from(STATUSES)), max_size=12))
def test_any_sequence_of_requests_follows_the_table(tmp_path_factory, requests):
    viewers = {"owner": LABEL, "platform": TUBE, "stranger": STRANGER}
    parties = {"owner": RIGHTS_HOLDER, "platform": PLATFORM}
    with ClaimStore(tmp_path_factory.mktemp("claims")) as store:
        (claim_id,) = recorded(store, match()).values()
        status = "open"
        for who, wanted in requests:
            allowed = who in parties and TRANSITIONS.get((status, wanted)) == parties[who]
            try:
                store.resolve(viewers[who], claim_id, wanted)
            except (InvalidState, PermissionDenied, NotFound):
                assert not allowed
            else:
                assert allowed
                status = wanted
        history = store.get(LOCAL_ADMIN, claim_id)["history"]
    assert history[-1]["to"] == status
    assert all(a["to"] == b["from"] for a, b in zip(history, history[1:]))


def test_claims_are_kept_in_their_own_wal_file_beside_the_catalog(store, tmp_path):
    assert store.path == tmp_path / "claims.sqlite"
    assert (tmp_path / "claims.sqlite").stat().st_mode & 0o077 == 0  # webhook secrets inside
    db = sqlite3.connect(store.path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.execute("PRAGMA user_version = 99")
    db.commit()
    db.close()
    with pytest.raises(VersionMismatch, match="newer Nanhu"):
        ClaimStore(tmp_path)


def test_a_crash_mid_write_loses_nothing_committed_and_leaves_nothing_half_written(tmp_path):
    with ClaimStore(tmp_path) as store:
        (kept,) = recorded(store, match(), upload_id="before").values()
    # A process that dies between writing a claim's row and its history entry (os._exit: no
    # cleanup, no rollback, as kill -9), with a webhook queued for it too.
    script = textwrap.dedent(f"""
        import os, sqlite3
        from nanhu.engine.claims import ClaimStore
        from nanhu.engine.verdict import Match
        store = ClaimStore({str(tmp_path)!r})
        store.outbox.set_webhook("label-a", "http://127.0.0.1:9/hook")
        real = store._db
        class Dying:
            def __getattr__(self, name):
                return getattr(real, name)
            def execute(self, sql, *args):
                if sql.startswith("INSERT INTO claim_history"):
                    os._exit(9)
                return real.execute(sql, *args)
        store._db = Dying()
        store.record([Match("song-1", "t", "audio", 0.99, 0, 10, 0, 10, 1.0, owner="label-a",
                            action="block")], tenant="tube", upload_id="during")
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=Path(__file__).parents[2],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 9, done.stderr
    with ClaimStore(tmp_path) as store:
        claims, _ = store.list(LOCAL_ADMIN)
        assert [c["claim_id"] for c in claims] == [kept]
        assert len(claims[0]["history"]) == 1
        assert store.outbox.pending() == 0  # no event for the claim that never was
        assert store.outbox.webhook("label-a")["url"] == "http://127.0.0.1:9/hook"


def test_events_are_queued_for_the_parties_with_a_webhook_in_the_same_transaction(store):
    store.outbox.set_webhook("label-a", "https://hooks.example/label-a")
    (claim_id,) = recorded(store, match(), request_id="req-1").values()
    store.resolve(TUBE, claim_id, "disputed", note="licensed")
    deliveries = store.outbox.due()
    assert [d.tenant for d in deliveries] == ["label-a", "label-a"]  # tube has no webhook
    created, changed = (json.loads(d.body) for d in deliveries)
    assert (created["event"], created["claim"]["status"], created["change"]) == (
        "claim.created", "open", None)
    assert (changed["event"], changed["claim"]["status"]) == ("claim.status_changed", "disputed")
    assert changed["change"]["from"] == "open" and changed["change"]["note"] == "licensed"
    assert store.outbox.due() == []  # leased: not handed out twice
    store.outbox.retry_later(deliveries[0].delivery_id, "HTTP 500", None)
    store.outbox.delivered(deliveries[1].delivery_id)
    assert store.outbox.webhook("label-a") == {"tenant": "label-a", "url": "https://hooks.example/label-a",
                                               "pending": 0, "failed": 1}
    assert store.outbox.clear_webhook("label-a") and store.outbox.webhook("label-a") is None


@pytest.mark.parametrize("url", ["ftp://x/y", "hooks.example/x", "http:///path", "", "h" * 3000])
def test_webhook_urls_must_be_http_with_a_host(store, url):
    with pytest.raises(InvalidArgument, match="webhook URL"):
        store.outbox.set_webhook("tube", url)


def test_signatures_cover_the_timestamp_and_the_body():
    body = b'{"event": "claim.created"}'
    signed = signature("s" * 32, "1700000000", body)
    assert signed.startswith("sha256=") and len(signed) == 7 + 64
    assert verify("s" * 32, "1700000000", body, signed, now=1700000010)
    assert not verify("s" * 32, "1700000000", body + b" ", signed, now=1700000010)
    assert not verify("t" * 32, "1700000000", body, signed, now=1700000010)
    assert not verify("s" * 32, "1700000001", body, signed, now=1700000010)
    assert not verify("s" * 32, "1700000000", body, signed, now=1700009999)  # a replay
