"""The committed generated code in proto/gen/ matches proto/nanhu/v1/*.proto."""

from __future__ import annotations

import pytest
from google.protobuf import descriptor_pb2

from nanhu.proto import generate
from nanhu.proto.gen import GENERATED_WITH
from nanhu.proto.gen.nanhu.v1 import nanhu_pb2


def _drop_json_names(message: descriptor_pb2.DescriptorProto) -> None:
    for field in message.field:
        field.ClearField("json_name")
    for nested in message.nested_type:
        _drop_json_names(nested)


def test_committed_descriptor_matches_the_proto(tmp_path):
    """Fails whenever a .proto changed without `python -m nanhu.proto.generate` (any tools version)."""
    from grpc_tools import protoc

    out = tmp_path / "set.pb"
    assert protoc.main(["grpc_tools.protoc", f"-I{generate.PROTO_ROOT}", f"-I{generate._include_dir()}",
                        f"--descriptor_set_out={out}", *map(str, generate.proto_files())]) == 0
    fresh = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file[0]
    for message in fresh.message_type:  # generated code leaves json_name out: compare without it
        _drop_json_names(message)
    committed = descriptor_pb2.FileDescriptorProto.FromString(nanhu_pb2.DESCRIPTOR.serialized_pb)
    assert committed == fresh, "proto/gen is stale: run `python -m nanhu.proto.generate` and commit it"


def test_committed_code_is_what_generate_writes(tmp_path):
    if GENERATED_WITH != f"grpcio-tools {generate.tools_version()}":
        pytest.skip(f"proto/gen was made with {GENERATED_WITH}; byte-for-byte check needs that version")
    written = generate.generate(tmp_path / "gen")
    fresh = {p.relative_to(tmp_path / "gen"): p.read_text() for p in written}
    committed = {p.relative_to(generate.GEN_DIR): p.read_text()
                 for p in generate.GEN_DIR.rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    assert committed == fresh, "proto/gen is stale: run `python -m nanhu.proto.generate` and commit it"
