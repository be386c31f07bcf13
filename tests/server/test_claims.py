"""Claims over gRPC: screenings record them (each match says which), rights holders and
platforms see and resolve theirs, everyone else is told there is no such claim; the CLI's
``claims`` commands through the server; webhooks delivered signed, retried after a failure."""

from __future__ import annotations

import json
import queue
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
import numpy as np
import pytest

from nanhu import cli as nanhu_cli
from nanhu.engine.outbox import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from nanhu.proto.gen.nanhu.v1 import nanhu_pb2 as pb
from nanhu.server import convert

RATE = 22050
NOT_FOUND = grpc.StatusCode.NOT_FOUND


def rpc_error(call, *args, **kwargs) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as excinfo:
        call(*args, **kwargs)
    return excinfo.value


@pytest.fixture(scope="module")
def work(env):
    """Song 601 (label-a, block) and song 602 (label-a, no policy), and an upload copying both."""
    admin = env.client("admin")
    one, two = env.song(601, 20), env.song(602, 20)
    admin.register_fingerprint(env.fingerprint(env.write("s601.wav", one)), "song-601",
                               title="Song 601", owner="label-a", policy={"action": "block"})
    admin.register_fingerprint(env.fingerprint(env.write("s602.wav", two)), "song-602",
                               title="Song 602", owner="label-a")
    upload = env.write("u601.wav", np.concatenate([one[2 * RATE : 12 * RATE], two[0 : 8 * RATE]]))
    return env.fingerprint(upload, query=True)


def screen(env, fp, who: str = "platform", *, upload_id: str, request_id: str):
    """ScreenFingerprint with our own request id; returns (response dict, trailing request id)."""
    channel, screening, _ = env.stubs()
    try:
        response, call = screening.ScreenFingerprint.with_call(
            pb.ScreenFingerprintRequest(fingerprint=convert.fingerprint_to_proto(fp),
                                        filename="u601.wav", upload_id=upload_id),
            metadata=(*env.metadata(who), ("x-request-id", request_id)), timeout=60)
    finally:
        channel.close()
    return convert.screen_response_to_dict(response), dict(call.trailing_metadata())["x-request-id"]


def test_a_screening_records_a_claim_and_each_acting_match_names_it(env, work):
    result, request_id = screen(env, work, upload_id="up-601", request_id="req-601")
    assert request_id == "req-601"
    by_work = {m["reference_id"]: m for m in result["matches"]}
    assert by_work["song-601"]["action"] == "block" and by_work["song-602"]["action"] == "none"
    claim_id = by_work["song-601"]["claim_id"]
    assert claim_id.startswith("clm_") and "claim_id" not in by_work["song-602"]
    claim = env.client("label_a").get_claim(claim_id)
    assert {k: claim[k] for k in ("status", "action", "reference_id", "title", "owner", "tenant",
                                  "upload_id", "request_id", "filename")} == {
        "status": "open", "action": "block", "reference_id": "song-601", "title": "Song 601",
        "owner": "label-a", "tenant": "tube", "upload_id": "up-601", "request_id": "req-601",
        "filename": "u601.wav"}
    assert claim["matches"] == [by_work["song-601"]]  # the match as the screening returned it
    assert [(e["from"], e["to"], e["who"]) for e in claim["history"]] == [("", "open", "tube")]
    # The same upload screened again keeps its claim.
    again, _ = screen(env, work, upload_id="up-601", request_id="req-601b")
    assert {m.get("claim_id") for m in again["matches"]} == {claim_id, None}


def test_each_party_sees_the_claim_and_nobody_else_does(env, work):
    result, _ = screen(env, work, upload_id="up-602", request_id="req-602")
    (claim_id,) = {m["claim_id"] for m in result["matches"] if "claim_id" in m}
    for who in ("label_a", "platform", "admin"):
        assert claim_id in [c["claim_id"] for c in env.client(who).list_claims(upload_id="up-602")]
    for who in ("label_b", "vids"):  # another rights holder, another platform
        client = env.client(who)
        assert client.list_claims(upload_id="up-602") == []
        error = rpc_error(client.get_claim, claim_id)
        assert error.code() == NOT_FOUND and "no claim with id" in error.details()
        assert rpc_error(client.resolve_claim, claim_id, "released").code() == NOT_FOUND
    assert rpc_error(env.client("label_b").get_claim, "clm_00000000000000000000").code() == NOT_FOUND
    statuses = {c["status"] for c in env.client("platform").list_claims(status="open")}
    assert statuses <= {"open"}


def test_the_status_changes_through_grpc_by_the_right_party(env, work):
    result, _ = screen(env, work, upload_id="up-603", request_id="req-603")
    (claim_id,) = {m["claim_id"] for m in result["matches"] if "claim_id" in m}
    owner, platform = env.client("label_a"), env.client("platform")
    error = rpc_error(owner.resolve_claim, claim_id, "disputed")
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED and "platform" in error.details()
    assert platform.resolve_claim(claim_id, "disputed", note="licensed")["status"] == "disputed"
    assert rpc_error(platform.resolve_claim, claim_id, "released").code() == \
        grpc.StatusCode.PERMISSION_DENIED
    error = rpc_error(owner.resolve_claim, claim_id, "confirmed")
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "is disputed; it can become reinstated or released" in error.details()
    assert owner.resolve_claim(claim_id, "reinstated")["status"] == "reinstated"
    final = owner.resolve_claim(claim_id, "released", note="settled")
    assert [(e["from"], e["to"], e["who"], e["party"]) for e in final["history"]] == [
        ("", "open", "tube", "system"), ("open", "disputed", "tube", "platform"),
        ("disputed", "reinstated", "label-a", "rights holder"),
        ("reinstated", "released", "label-a", "rights holder")]
    assert final["history"][-1]["request_id"]  # the resolving call's id
    error = rpc_error(owner.resolve_claim, claim_id, "reinstated")
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION and "final" in error.details()
    error = rpc_error(owner.resolve_claim, claim_id, "closed")
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_claims_from_the_command_line_through_the_server(env, work, capsys, song_upload):
    def nanhu(*argv: str, who: str = "platform") -> tuple[int, str, str]:
        capsys.readouterr()
        code = nanhu_cli.main([*argv, "--server", env.address, "--key", env.keys[who]])
        out = capsys.readouterr()
        return code, out.out, out.err

    code, out, _ = nanhu("query", "--json", "--upload-id", "up-604", str(song_upload))
    assert code == 0, out
    (line,) = [json.loads(x) for x in out.splitlines()]
    (claim_id,) = {m["claim_id"] for m in line["matches"] if "claim_id" in m}
    code, out, _ = nanhu("claims", "list", "--json", who="label_a")
    listed = [json.loads(x) for x in out.splitlines()]
    assert code == 0 and claim_id in [c["claim_id"] for c in listed]
    assert all(c["owner"] == "label-a" for c in listed)
    code, out, _ = nanhu("claims", "resolve", claim_id, "--status", "disputed", "--note", "fair use")
    assert (code, out.strip()) == (0, f"{claim_id}: open -> disputed")
    code, _, err = nanhu("claims", "resolve", claim_id, "--status", "confirmed", who="label_a")
    assert code == 11 and "it can become reinstated or released" in err
    code, _, err = nanhu("claims", "show", claim_id, who="label_b")
    assert code == 4 and "no claim with id" in err
    code, out, _ = nanhu("claims", "show", claim_id, who="label_a")
    assert code == 0 and "open -> disputed" in out and "fair use" in out
    code, out, _ = nanhu("claims", "list", "--status", "disputed", "--json")
    assert claim_id in out and all(json.loads(x)["status"] == "disputed" for x in out.splitlines())
    # On the server's machine, --catalog reads the same claims as an admin.
    capsys.readouterr()
    assert nanhu_cli.main(["claims", "show", "--catalog", str(env.catalog), "--json", claim_id]) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "disputed"


@pytest.fixture(scope="module")
def song_upload(env):
    return env.write("u601-copy.wav", env.song(601, 20)[4 * RATE : 14 * RATE])


# --- webhooks ----------------------------------------------------------------------------------
class Receiver:
    """A loopback HTTP listener: answers 500 to the first ``fail_first`` POSTs, then 200."""

    def __init__(self, fail_first: int = 1) -> None:
        self.received: queue.Queue = queue.Queue()
        self.failures_left = fail_first
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                failing = receiver.failures_left > 0
                receiver.failures_left -= 1
                receiver.received.put((dict(self.headers), body, failing))
                self.send_response(500 if failing else 204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}/nanhu"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def next(self, timeout: float = 30.0):
        return self.received.get(timeout=timeout)

    def close(self) -> None:
        self.http.shutdown()
        self.http.server_close()


def test_webhooks_are_signed_retried_after_a_failure_and_sent_on_status_changes(env, work):
    receiver = Receiver(fail_first=1)
    secret = "label-a-webhook-secret-0123456789"
    owner = env.client("label_a")
    try:
        hook = owner.set_webhook(receiver.url, secret=secret)
        assert (hook["tenant"], hook["url"], hook["secret"]) == ("label-a", receiver.url, secret)
        assert "secret" not in owner.get_webhook() and owner.get_webhook()["url"] == receiver.url
        assert rpc_error(env.client("label_b").get_webhook, tenant="label-a").code() == \
            grpc.StatusCode.PERMISSION_DENIED
        result, _ = screen(env, work, upload_id="up-605", request_id="req-605")
        (claim_id,) = {m["claim_id"] for m in result["matches"] if "claim_id" in m}
        first_headers, first_body, failed = receiver.next()
        assert failed  # answered 500: the sender must try again
        headers, body, failed = receiver.next()
        assert not failed and body == first_body
        assert headers[SIGNATURE_HEADER] != "" and verify(secret, headers[TIMESTAMP_HEADER], body,
                                                          headers[SIGNATURE_HEADER])
        event = json.loads(body)
        assert (event["event"], event["recipient"], event["claim"]["claim_id"]) == (
            "claim.created", "label-a", claim_id)
        assert event["claim"]["upload_id"] == "up-605" and event["claim"]["status"] == "open"
        assert headers["X-Nanhu-Event"] == "claim.created"
        env.client("platform").resolve_claim(claim_id, "disputed", note="cover version")
        headers, body, failed = receiver.next()
        event = json.loads(body)
        assert not failed and event["event"] == "claim.status_changed"
        assert (event["change"]["from"], event["change"]["to"], event["change"]["note"]) == (
            "open", "disputed", "cover version")
        assert verify(secret, headers[TIMESTAMP_HEADER], body, headers[SIGNATURE_HEADER])
        assert not verify("another-secret-0123456789", headers[TIMESTAMP_HEADER], body,
                          headers[SIGNATURE_HEADER])
    finally:
        owner.clear_webhook()
        receiver.close()
    assert rpc_error(owner.get_webhook).code() == NOT_FOUND
