"""What operators see: request ids, log lines (text and JSON), Prometheus metrics, and error
messages that never show the server's paths."""

from __future__ import annotations

import io
import json
import logging
import re
import urllib.request

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from nanhu.benchmarks.synth import music_like
from nanhu.engine.catalog import Catalog
from nanhu.proto.gen.nanhu.v1 import nanhu_pb2 as pb
from nanhu.server.app import create_server
from nanhu.server.client import NanhuClient
from nanhu.server.logs import make_handler


def rpc_error(call, *args, **kwargs) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as excinfo:
        call(*args, **kwargs)
    return excinfo.value


@pytest.fixture
def log_lines():
    """lines(fmt) -> a function returning the lines the ``server`` loggers wrote since, in
    ``fmt`` ("json" or "text"), as a real server's handler formats them."""
    installed = []
    logger = logging.getLogger("nanhu.server")
    level = logger.level

    def capture(fmt: str):
        stream = io.StringIO()
        handler = make_handler(stream, fmt)
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        installed.append(handler)
        return lambda: stream.getvalue().splitlines()

    yield capture
    for handler in installed:
        logger.removeHandler(handler)
    logger.setLevel(level)


def test_every_log_line_of_a_call_carries_its_request_id(env, log_lines):
    lines = log_lines("json")
    path = env.write("rid.wav", env.song(1001, 8))
    header = pb.RegisterHeader(reference_id="rid-1001", filename="rid.wav")
    channel, _, catalog = env.stubs()
    _, call = catalog.Register.with_call(
        env.chunks(pb.RegisterChunk, header, path.read_bytes()), timeout=30,
        metadata=(*env.metadata("label_a"), ("x-request-id", "upload-42")))
    assert dict(call.trailing_metadata())["x-request-id"] == "upload-42"
    channel.close()
    records = [json.loads(line) for line in lines()]
    mine = [r for r in records if r.get("request_id") == "upload-42"]
    # The call's line, and the service's own line about the registration, both carry the id.
    (call_line,) = [r for r in mine if r["logger"] == "nanhu.server.rpc"]
    assert (call_line["rpc"], call_line["code"], call_line["reference"]) == ("Register", "OK", "rid-1001")
    assert call_line["tenant"] == "label-a" and call_line["ms"] > 0
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", call_line["time"])
    assert any(r["logger"] == "nanhu.server.service" and "registered reference=rid-1001" in r["message"]
               for r in mine)
    assert all(r.get("request_id") != "upload-42" for r in records if r not in mine)


def test_a_request_id_is_made_when_the_caller_sends_none_or_a_bad_one(env, log_lines):
    lines = log_lines("text")
    channel, _, catalog = env.stubs()
    ids = []
    for extra in ((), (("x-request-id", "not a token; rpc=Forged"),)):
        error = rpc_error(catalog.GetReference, pb.GetReferenceRequest(reference_id="nowhere"),
                          timeout=10, metadata=(*env.metadata("admin"), *extra))
        assert error.code() == grpc.StatusCode.NOT_FOUND
        ids.append(dict(error.trailing_metadata())["x-request-id"])
    channel.close()
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids) and ids[0] != ids[1]
    for request_id in ids:
        (line,) = [line for line in lines() if line.endswith(f"request_id={request_id}")]
        assert re.match(
            r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z INFO nanhu\.server\.rpc: rpc=GetReference ", line)
        assert "code=NOT_FOUND" in line and "Forged" not in line


def test_errors_name_the_reference_never_a_server_path(env):
    admin = env.client("admin")
    served = str(env.catalog)
    for call, args in ((admin.get, ("no-such-work",)), (admin.delete, ("no-such-work",)),
                       (admin.set_policy, ("no-such-work",))):
        error = rpc_error(call, *args)
        assert error.code() == grpc.StatusCode.NOT_FOUND
        assert error.details() == "no reference with id 'no-such-work' in catalog"
    fp = env.fingerprint(env.write("locked.wav", env.song(1002, 8)))
    with Catalog(env.catalog, writable=True):  # another writer holds the lock
        error = rpc_error(env.client("admin", attempts=1).register_fingerprint, fp, "locked")
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert error.details().startswith("catalog: another process is writing")
    assert served not in error.details() and "/" not in error.details()


def scrape(port: int) -> dict[tuple, float]:
    """``{(sample name, sorted label items): value}`` of the /metrics page."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        assert response.status == 200
        text = response.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_metrics_are_scraped_over_http(tmp_path, kit):
    server, port = create_server(tmp_path / "catalog", workers=1, metrics="127.0.0.1:0")
    server.start()
    try:
        client = NanhuClient(f"127.0.0.1:{port}", timeout=30)
        song = kit.write_clip(tmp_path / "m.wav", music_like(12.0, seed=1003, sample_rate=kit.rate))
        client.register_file(song, "m-1003")
        assert [m["reference_id"] for m in client.screen_file(song)["matches"]] == ["m-1003"]
        assert rpc_error(client.get, "absent").code() == grpc.StatusCode.NOT_FOUND
        stats = client.stats()
        metrics = scrape(server.metrics_port)
    finally:
        assert server.stop(0).wait(30)
    assert all(name.startswith("nanhu_") for name, _ in metrics)

    def value(name: str, **labels) -> float | None:
        return metrics.get((name, tuple(sorted(labels.items()))))

    assert value("nanhu_rpc_requests_total", rpc="Register", code="OK") == 1
    assert value("nanhu_rpc_requests_total", rpc="Screen", code="OK") == 1
    assert value("nanhu_rpc_requests_total", rpc="GetReference", code="NOT_FOUND") == 1
    assert value("nanhu_rpc_errors_total", rpc="GetReference", code="NOT_FOUND") == 1
    assert value("nanhu_rpc_errors_total", rpc="Register", code="OK") is None
    assert value("nanhu_rpc_duration_seconds_count", rpc="Screen") == 1
    assert value("nanhu_rpc_duration_seconds_sum", rpc="Screen") > 0
    # The upload of the registration and of the screening were decoded and fingerprinted; only
    # the screening was matched.
    assert value("nanhu_stage_duration_seconds_count", stage="decode") == 2
    assert value("nanhu_stage_duration_seconds_count", stage="fingerprint") == 2
    assert value("nanhu_stage_duration_seconds_count", stage="match") == 1
    assert all(value("nanhu_stage_duration_seconds_sum", stage=s) > 0
               for s in ("decode", "fingerprint", "match"))
    assert value("nanhu_catalog_references") == 1
    assert value("nanhu_catalog_generation") == stats["generation"]
    assert value("nanhu_catalog_hours") == pytest.approx(12.0 / 3600, abs=1e-3)
    assert value("nanhu_catalog_index_bytes", modality="audio") == stats["audio_index_bytes"] > 0
    assert value("nanhu_calls_in_flight") == 0 and value("nanhu_calls_limit") == 64
    assert value("nanhu_worker_processes") == 1 and value("nanhu_worker_jobs") == 0
    assert value("nanhu_worker_queue_depth") == 0 and value("nanhu_worker_restarts_total") == 0
    assert value("nanhu_uploads_open") == 0


def test_public_messages_replace_whole_server_paths_only():
    from nanhu.server.status import public_message

    places = {"cat": "catalog", "/srv/nanhu/cat": "catalog", "/tmp/nanhu-uploads-1": "upload"}
    assert public_message("cat: another process is writing to this catalog", places) == \
        "catalog: another process is writing to this catalog"
    assert public_message("no reference with id 'cat-1' in /srv/nanhu/cat", places) == \
        "no reference with id 'cat-1' in catalog"
    assert public_message("/srv/nanhu/cat/meta.sqlite: unreadable metadata", places) == \
        "catalog/meta.sqlite: unreadable metadata"
    # Paths the server did not name are cut to their last part; URLs and ratios are left alone.
    assert public_message("/var/lib/other/x.pst: truncated; see grpc://host:1 and 3/4", places) == \
        "x.pst: truncated; see grpc://host:1 and 3/4"
