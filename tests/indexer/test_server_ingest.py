"""`nanhu ingest --server`: fingerprint here, register over gRPC, resumable the same way."""

from __future__ import annotations

import pytest

from nanhu.cli import main
from nanhu.engine.catalog import Catalog

pytest.importorskip("nanhu.server.client", reason="the gRPC client (server/client.py) is not there")
from nanhu.server.app import create_server  # noqa: E402
from nanhu.server.auth import KeyFile  # noqa: E402


@pytest.fixture
def server(tmp_path):
    """A Nanhu server on a loopback port with one register key and one screen-only key."""
    keys = KeyFile(tmp_path / "keys.json")
    _, register_key = keys.add("label-a", ["register"])
    _, screen_key = keys.add("tube", ["screen"])
    keys.save()
    srv, port = create_server(tmp_path / "served", workers=1, auth=tmp_path / "keys.json")
    srv.start()
    yield {"address": f"127.0.0.1:{port}", "key": register_key, "screen_key": screen_key,
           "catalog": tmp_path / "served"}
    srv.stop(0).wait(30)


def test_ingest_over_grpc_registers_like_the_local_path_and_resumes(tmp_path, clip_bank, helpers,
                                                                   server, capsys):
    (tmp_path / "bad.wav").write_bytes(b"RIFF" + bytes(100))
    rows = [[clip, f"ref-{i}", f"Title {i}", "EU"] for i, clip in enumerate(clip_bank[:4])]
    rows += [[clip_bank[0], "ref-0-copy", "", ""], [tmp_path / "bad.wav", "bad", "", ""]]
    manifest = helpers.write_csv(tmp_path / "m.csv", ["path", "id", "title", "territory"], rows)
    report = tmp_path / "report.jsonl"
    args = ["ingest", "--server", server["address"], "--key", server["key"], "--workers", "2",
            "--report", str(report), str(manifest)]
    assert main(args) == 10
    statuses = {r["id"]: r["status"] for r in helpers.read_report(report)}
    assert statuses == {"ref-0": "registered", "ref-1": "registered", "ref-2": "registered",
                        "ref-3": "registered", "ref-0-copy": "skipped-duplicate", "bad": "failed"}
    with Catalog(server["catalog"]) as served:
        ref = served.get("ref-1")
        assert ref.owner == "label-a" and ref.title == "Title 1"
        assert ref.metadata["territory"] == "EU"
    assert (tmp_path / f"ingest-journal-{server['address'].replace(':', '_')}.jsonl").exists()

    local = tmp_path / "local"
    good = helpers.write_csv(tmp_path / "good.csv", ["path", "id"], [r[:2] for r in rows[:4]])
    assert main(["ingest", "--catalog", str(local), "--report", str(tmp_path / "l.jsonl"),
                 str(good)]) == 0
    assert helpers.postings_by_id(server["catalog"]) == helpers.postings_by_id(local)

    (tmp_path / "bad.wav").unlink()
    manifest = helpers.write_csv(tmp_path / "m.csv", ["path", "id", "title", "territory"], rows[:5])
    capsys.readouterr()
    assert main(args) == 0
    assert "0 registered, 1 skipped-duplicate, 4 skipped-existing, 0 failed" in capsys.readouterr().out


def test_a_key_without_the_register_role_fails_each_file_and_a_refused_key_stops(
        tmp_path, clip_bank, helpers, server, capsys, monkeypatch):
    manifest = helpers.write_csv(tmp_path / "m.csv", ["path", "id"], [[clip_bank[0], "a"]])
    report = str(tmp_path / "r.jsonl")
    monkeypatch.setenv("NANHU_API_KEY", server["screen_key"])  # --key's default
    assert main(["ingest", "--server", server["address"], "--report", report,
                 str(manifest)]) == 10
    assert "lacks the 'register' role" in helpers.read_report(tmp_path / "r.jsonl")[0]["reason"]
    assert main(["ingest", "--server", server["address"], "--key", "nanhu_nope_nope",
                 "--report", report, str(manifest)]) == 9
    assert "refused the key" in capsys.readouterr().err


def test_ingest_retries_until_a_server_that_starts_late_answers(tmp_path, clip_bank, helpers,
                                                              capsys):
    import logging
    import socket
    import threading

    with socket.socket() as probe:  # a port nobody listens on (yet)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    keys = KeyFile(tmp_path / "keys.json")
    _, key = keys.add("label-a", ["register"])
    keys.save()
    started: list = []
    retried = threading.Event()

    def start_server() -> None:
        srv, _ = create_server(tmp_path / "served", f"127.0.0.1:{port}", workers=1,
                               auth=tmp_path / "keys.json")
        started.append(srv.start())

    class StartOnRetry(logging.Handler):
        """Starts the server once the ingest has found it missing and said it retries."""

        def emit(self, record: logging.LogRecord) -> None:
            if "retrying" in record.getMessage() and not retried.is_set():
                retried.set()
                threading.Thread(target=start_server).start()

    handler = StartOnRetry(logging.WARNING)
    sinks_log = logging.getLogger("nanhu.indexer.sinks")
    sinks_log.addHandler(handler)
    manifest = helpers.write_csv(tmp_path / "m.csv", ["path", "id"],
                                 [[clip_bank[5], "late-5"], [clip_bank[6], "late-6"]])
    try:
        code = main(["ingest", "--server", f"127.0.0.1:{port}", "--key", key, "--workers", "1",
                     "--report", str(tmp_path / "r.jsonl"), str(manifest)])
    finally:
        sinks_log.removeHandler(handler)
        for srv in started:
            srv.stop(0).wait(30)
    assert retried.is_set() and code == 0
    assert "2 registered" in capsys.readouterr().out
    with Catalog(tmp_path / "served") as served:
        assert sorted(r.ref_id for r in served.list()) == ["late-5", "late-6"]


def test_policy_columns_travel_over_grpc(tmp_path, clip_bank, helpers, server):
    from nanhu.engine.policy import Policy

    manifest = helpers.write_csv(tmp_path / "m.csv", ["path", "id", "policy", "policy_min_match_s",
                                                      "policy_exclude", "policy_disabled"],
                                 [[clip_bank[0], "p0", "monetize", "3", "0-1;2-2.5", "yes"],
                                  [clip_bank[1], "p1", "", "", "", ""]])
    assert main(["ingest", "--server", server["address"], "--key", server["key"], "--report",
                 str(tmp_path / "r.jsonl"), str(manifest)]) == 0
    with Catalog(server["catalog"]) as served:
        assert served.get("p0").match_policy == Policy(
            "monetize", min_match_s=3, excluded_ranges=((0, 1), (2, 2.5)), enabled=False)
        assert served.get("p1").match_policy is None
