"""The review page over plain HTTP: who sees which claim (the tenancy rules of the Claims RPCs),
sign-in sessions and their CSRF checks, the pictures kept with a claim, the JSON form for
scripts. The browser-driven walk through the page is tests/server/test_review_browser.py."""

from __future__ import annotations

import http.client
import json
import re
import sqlite3
import urllib.parse

import pytest

from nanhu.engine.errors import InvalidArgument
from nanhu.engine.thumbnails import MAX_BYTES, PER_CLAIM
from nanhu.server.app import create_server
from nanhu.server.auth import KeyFile


def request(review, method: str, path: str, *, key: str | None = None, form: dict | None = None,
            cookies: dict | None = None, headers: dict | None = None, json_: bool = False):
    """``(status, headers, body bytes)`` of one request; redirects are not followed."""
    connection = http.client.HTTPConnection("127.0.0.1", review.server.http_port, timeout=30)
    sent = dict(headers or {})
    if key is not None:
        sent["Authorization"] = f"Bearer {key}"
    if cookies:
        sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
    if json_:
        sent["Accept"] = "application/json"
    body = None
    if form is not None:
        body = urllib.parse.urlencode(form)
        sent["Content-Type"] = "application/x-www-form-urlencoded"
    try:
        connection.request(method, path, body=body, headers=sent)
        response = connection.getresponse()
        return response.status, response, response.read()
    finally:
        connection.close()


def cookies_of(response) -> dict:
    out = {}
    for name, value in response.getheaders():
        if name.lower() == "set-cookie":
            pair = value.split(";", 1)[0]
            out[pair.split("=", 1)[0]] = pair.split("=", 1)[1].strip('"')
    return out


def sign_in(review, who: str) -> tuple[dict, str]:
    """Log in through the form as a browser does; returns (cookies, the pages' CSRF token)."""
    status, response, body = request(review, "GET", "/login")
    assert status == 200
    login = cookies_of(response)
    token = re.search(rb'name="csrf" value="([^"]+)"', body).group(1).decode()
    status, response, _ = request(review, "POST", "/login", form={"key": review.keys[who],
                                                                  "csrf": token}, cookies=login)
    assert status == 303 and response.getheader("location") == "/claims"
    session = cookies_of(response)
    assert "HttpOnly" in response.getheader("set-cookie")
    assert not review.keys[who] or review.keys[who] not in str(session)  # an id, not the key
    status, _, body = request(review, "GET", "/claims", cookies=session)
    assert status == 200
    return session, re.search(rb'name="csrf" value="([^"]+)"', body).group(1).decode()


def stored_status(review, claim_id: str) -> str:
    with sqlite3.connect(review.catalog / "claims.sqlite") as db:
        return db.execute("SELECT status FROM claims WHERE claim_id = ?", (claim_id,)).fetchone()[0]


def test_without_a_key_every_page_sends_you_to_sign_in(review):
    status, response, _ = request(review, "GET", "/claims")
    assert status == 303 and response.getheader("location") == "/login"
    status, _, _ = request(review, "GET", "/claims", key="nanhu_00000000_not-a-key")
    assert status == 401
    status, _, _ = request(review, "POST", f"/claims/{review.claims['film_tube']}/resolve",
                           form={"status": "confirmed"})
    assert status == 401
    assert stored_status(review, review.claims["film_tube"]) == "open"


@pytest.mark.parametrize(("who", "sees"), [
    ("label_a", {"film_tube", "film_vids"}), ("label_b", {"song_tube"}),
    ("tube", {"film_tube", "song_tube"}), ("vids", {"film_vids"})])
def test_each_tenant_lists_only_the_claims_it_is_a_party_of(review, who, sees):
    status, _, body = request(review, "GET", "/claims", key=review.keys[who], json_=True)
    assert status == 200
    assert {c["claim_id"] for c in json.loads(body)["claims"]} == {review.claims[n] for n in sees}


def test_filters_narrow_the_list(review):
    def listed(query: str) -> set[str]:
        status, _, body = request(review, "GET", f"/claims?{query}", key=review.keys["tube"],
                                  json_=True)
        assert status == 200, body
        return {c["claim_id"] for c in json.loads(body)["claims"]}

    film, song = review.claims["film_tube"], review.claims["song_tube"]
    assert listed("modality=audio%2Bvideo") == {film}
    assert listed("modality=audio") == {song}
    assert listed("action=track") == {song} and listed("action=block") == {film}
    assert listed("reference=film-a") == {film} and listed("upload=up-2") == {song}
    assert listed("status=released") == set()
    status, _, _ = request(review, "GET", "/claims?status=nonsense", key=review.keys["tube"])
    assert status == 400


def test_another_tenants_claim_is_not_found_and_cannot_be_changed(review):
    film_vids, film_tube = review.claims["film_vids"], review.claims["film_tube"]
    before = stored_status(review, film_vids), stored_status(review, film_tube)
    for who in ("label_b", "tube"):
        for path in (f"/claims/{film_vids}", f"/claims/{film_vids}/thumbnails/0"):
            status, _, _ = request(review, "GET", path, key=review.keys[who])
            assert status == 404, (who, path)
        status, _, body = request(review, "POST", f"/claims/{film_vids}/resolve",
                                  key=review.keys[who], form={"status": "released"})
        assert status == 404 and b"no claim" in body
    # the platform may not make the rights holder's change: 403, as PERMISSION_DENIED over gRPC
    status, _, body = request(review, "POST", f"/claims/{film_tube}/resolve",
                              key=review.keys["tube"], form={"status": "confirmed"})
    assert status == 403 and b"rights holder" in body
    assert (stored_status(review, film_vids), stored_status(review, film_tube)) == before


def test_a_signed_in_post_without_the_csrf_token_is_refused(review):
    session, token = sign_in(review, "label_b")
    song = review.claims["song_tube"]
    path = f"/claims/{song}/resolve"
    for form, headers in (({"status": "confirmed"}, {}),
                          ({"status": "confirmed", "csrf": "forged"}, {}),
                          ({"status": "confirmed", "csrf": token},
                           {"Origin": "http://evil.example"})):
        status, _, body = request(review, "POST", path, form=form, cookies=session, headers=headers)
        assert status == 403, (form, headers, body)
        assert stored_status(review, song) == "open"
    # a login form posted from elsewhere (no login cookie) signs nobody in
    status, response, _ = request(review, "POST", "/login", form={"key": review.keys["label_b"],
                                                                  "csrf": "x"})
    assert status == 403 and "nanhu_review=" not in (response.getheader("set-cookie") or "")
    # with the token, the same change goes through and lands in claims.sqlite
    status, response, _ = request(review, "POST", path, form={"status": "confirmed", "csrf": token,
                                                               "note": "ours"}, cookies=session)
    assert status == 303 and response.getheader("location") == f"/claims/{song}?done=confirmed"
    assert stored_status(review, song) == "confirmed"
    status, _, _ = request(review, "POST", "/logout", form={"csrf": token}, cookies=session)
    assert status == 303
    status, response, _ = request(review, "GET", "/claims", cookies=session)
    assert status == 303 and response.getheader("location") == "/login"


def test_the_pictures_of_the_upload_are_kept_with_its_claim(review):
    film = review.claims["film_tube"]
    status, _, body = request(review, "GET", f"/claims/{film}", key=review.keys["label_a"])
    assert status == 200 and b'id="upload-timeline"' in body and b'id="reference-timeline"' in body
    count = body.count(b'class="thumbnail"')
    assert 1 <= count <= PER_CLAIM
    for number in range(count):
        status, response, image = request(review, "GET", f"/claims/{film}/thumbnails/{number}",
                                          key=review.keys["label_a"])
        assert status == 200 and response.getheader("content-type") == "image/jpeg"
        assert image[:2] == b"\xff\xd8" and len(image) <= MAX_BYTES
    status, _, _ = request(review, "GET", f"/claims/{film}/thumbnails/{count}",
                           key=review.keys["label_a"])
    assert status == 404
    status, _, body = request(review, "GET", f"/claims/{review.claims['song_tube']}",
                              key=review.keys["tube"])
    assert status == 200 and b'id="no-video"' in body


def test_pages_forbid_framing_and_scripts(review):
    status, response, _ = request(review, "GET", "/login")
    policy = response.getheader("content-security-policy")
    assert "frame-ancestors 'none'" in policy and "script-src" not in policy  # default-src 'none'


def test_revoking_a_key_ends_its_sessions(review):
    keys = KeyFile(review.catalog.parent / "keys.json")
    key_id, key = keys.add("label-b", ["register"])
    keys.save()
    review.keys["label_b_2"] = key
    session, _ = sign_in(review, "label_b_2")
    keys.revoke(key_id)
    keys.save()
    status, response, _ = request(review, "GET", "/claims", cookies=session)
    assert status == 303 and response.getheader("location") == "/login"


def test_the_review_page_needs_a_keys_file_off_loopback(tmp_path):
    with pytest.raises(InvalidArgument, match="without an auth file"):
        create_server(tmp_path / "catalog", http="0.0.0.0:0")


def test_with_tls_the_page_is_https_and_its_cookies_are_secure(tmp_path, pki):
    import ssl

    server, _ = create_server(tmp_path / "catalog", workers=1, http="127.0.0.1:0",
                              tls_cert=pki.server_cert, tls_key=pki.server_key)
    server.start()
    try:
        context = ssl.create_default_context(cafile=str(pki.ca))
        connection = http.client.HTTPSConnection("127.0.0.1", server.http_port, context=context,
                                                 timeout=30)
        connection.request("GET", "/login")
        response = connection.getresponse()
        assert response.status == 200 and "Secure" in response.getheader("set-cookie")
        connection.close()
    finally:
        assert server.stop(0).wait(30)


def test_without_a_keys_file_signing_in_makes_you_the_local_admin(tmp_path):
    server, _ = create_server(tmp_path / "catalog", workers=1, http="127.0.0.1:0")
    server.start()
    try:
        local = type("Local", (), {"server": server, "keys": {"local": ""}})()
        session, _ = sign_in(local, "local")
        status, _, body = request(local, "GET", "/claims", cookies=session)
        assert status == 200 and b"local admin" in body and b'id="empty"' in body
    finally:
        assert server.stop(0).wait(30)
