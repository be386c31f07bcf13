"""Engine objects <-> ``nanhu.v1`` messages, both ways; used by the servicers and the client.

Conversions are exact: a fingerprint survives the round trip bit for bit (floats are float32 on
both sides, times and scores are doubles), so screening a fingerprint over gRPC gives the same
matches as screening it in process.
"""

from __future__ import annotations

import json
import math

import numpy as np
from google.protobuf import json_format, struct_pb2

from engine.audio.keys import Landmarks
from engine.catalog import Reference
from engine.errors import InvalidArgument, VersionMismatch
from engine.fingerprint import FORMAT_VERSION, Fingerprint, VideoPrint
from engine.matcher import Match
from proto.gen.nanhu.v1 import nanhu_pb2 as pb
from server.service import public_digest


# --- fingerprints ----------------------------------------------------------------------------
def fingerprint_to_proto(fp: Fingerprint) -> pb.Fingerprint:
    msg = pb.Fingerprint(format_version=FORMAT_VERSION, duration_s=fp.duration_s, digest=fp.digest)
    if fp.audio is not None:
        msg.audio.params_tag = fp.audio_params_tag
        msg.audio.hashes.extend(fp.audio.hashes.tolist())
        msg.audio.frames.extend(fp.audio.frames.tolist())
        msg.audio.speed_index.extend(fp.audio.speed_index.tolist())
        msg.audio.speeds.extend(fp.audio.speeds.tolist())
        msg.audio.pitches.extend(fp.audio.pitches.tolist())
    if fp.video is not None:
        vectors = np.asarray(fp.video.vectors, np.float32)
        msg.video.params_tag = fp.video.params_tag
        msg.video.dim = vectors.shape[1] if vectors.ndim == 2 else 0
        msg.video.vectors.extend(vectors.reshape(-1).tolist())
        msg.video.times_s.extend(fp.video.times_s.tolist())
    return msg


def fingerprint_from_proto(msg: pb.Fingerprint) -> Fingerprint:
    """Raises InvalidArgument for inconsistent arrays, VersionMismatch for another format."""
    if msg.format_version != FORMAT_VERSION:
        raise VersionMismatch(
            f"fingerprint format version {msg.format_version} is not supported "
            f"(this server reads version {FORMAT_VERSION})"
        )
    if not math.isfinite(msg.duration_s) or msg.duration_s < 0:
        raise InvalidArgument(f"fingerprint duration_s {msg.duration_s} is not a duration")
    audio = None
    if msg.HasField("audio"):
        a = msg.audio
        n = len(a.hashes)
        if len(a.frames) != n or len(a.speed_index) != n:
            raise InvalidArgument("fingerprint audio: hashes, frames and speed_index differ in length")
        speed_index = np.array(a.speed_index, np.uint32)
        if len(a.speeds) > 256:
            raise InvalidArgument("fingerprint audio: more than 256 candidate speeds")
        if n and (not len(a.speeds) or int(speed_index.max()) >= len(a.speeds)):
            raise InvalidArgument("fingerprint audio: speed_index points past speeds")
        if a.pitches and len(a.pitches) != len(a.speeds):
            raise InvalidArgument("fingerprint audio: pitches and speeds differ in length")
        speeds = np.array(a.speeds, np.float32)
        audio = Landmarks(np.array(a.hashes, np.uint32), np.array(a.frames, np.int32),
                          speed_index.astype(np.uint8), speeds,
                          np.array(a.pitches, np.float32) if a.pitches else speeds.copy())
    video = None
    if msg.HasField("video"):
        v = msg.video
        n = len(v.times_s)
        if (v.dim == 0 and n) or len(v.vectors) != n * v.dim:
            raise InvalidArgument("fingerprint video: vectors is not times_s x dim floats")
        video = VideoPrint(np.array(v.vectors, np.float32).reshape(n, v.dim),
                           np.array(v.times_s, np.float32), v.params_tag)
    return Fingerprint(duration_s=msg.duration_s, digest=msg.digest, audio=audio,
                       audio_params_tag=msg.audio.params_tag if audio is not None else "",
                       video=video)


# --- matches ---------------------------------------------------------------------------------
def match_to_proto(match: Match) -> pb.Match:
    """The public fields only: never the owner or the work's metadata."""
    evidence = struct_pb2.Struct()
    evidence.update(json.loads(json.dumps(match.evidence)))
    return pb.Match(
        reference_id=match.reference_id, title=match.title, modality=match.modality,
        score=match.score, query_start_s=match.query_start_s, query_end_s=match.query_end_s,
        reference_start_s=match.reference_start_s, reference_end_s=match.reference_end_s,
        speed=match.speed, evidence=evidence, policy=match.policy,
        expected_false_matches=match.to_dict()["expected_false_matches"],
    )


def _ints(value):
    """Struct numbers are doubles: give integral ones back as ints (as the CLI JSON has them)."""
    if isinstance(value, dict):
        return {k: _ints(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_ints(v) for v in value]
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value


def match_to_dict(msg: pb.Match) -> dict:
    """The same dict as ``engine.matcher.Match.to_dict`` (and ``nanhu query --json``)."""
    out = {
        "reference_id": msg.reference_id, "title": msg.title, "modality": msg.modality,
        "score": round(msg.score, 6),
        "query_start_s": round(msg.query_start_s, 3), "query_end_s": round(msg.query_end_s, 3),
        "reference_start_s": round(msg.reference_start_s, 3),
        "reference_end_s": round(msg.reference_end_s, 3),
        "speed": round(msg.speed, 4),
        "expected_false_matches": msg.expected_false_matches,
        "evidence": _ints(json_format.MessageToDict(msg.evidence)),
    }
    if msg.policy:
        out["policy"] = msg.policy
    return out


def screen_response_to_dict(msg: pb.ScreenResponse) -> dict:
    return {"duration_s": round(msg.duration_s, 3), "digest": msg.digest,
            "matches": [match_to_dict(m) for m in msg.matches]}


# --- policies and references -----------------------------------------------------------------
def policy_from_proto(msg: pb.Policy) -> dict:
    """``{"label": ..., "excluded_ranges": [[start_s, end_s], ...]}`` as the catalog stores it."""
    ranges = []
    for r in msg.excluded_ranges:
        if not (math.isfinite(r.start_s) and math.isfinite(r.end_s)) or r.start_s < 0 or (
                r.end_s <= r.start_s):
            raise InvalidArgument(f"excluded range {r.start_s:g}..{r.end_s:g} s is not a time range")
        ranges.append([r.start_s, r.end_s])
    policy: dict = {}
    if msg.label:
        policy["label"] = msg.label
    if ranges:
        policy["excluded_ranges"] = ranges
    return policy


def policy_to_proto(policy: dict) -> pb.Policy:
    return pb.Policy(label=str(policy.get("label", "")), excluded_ranges=[
        pb.TimeRange(start_s=float(s), end_s=float(e)) for s, e in policy.get("excluded_ranges", [])
    ])


def reference_to_proto(ref: Reference) -> pb.Reference:
    return pb.Reference(
        reference_id=ref.ref_id, title=ref.title, owner=ref.owner, duration_s=ref.duration_s,
        digest=public_digest(ref), modalities=ref.modalities,
        metadata={str(k): v if isinstance(v, str) else json.dumps(v) for k, v in ref.metadata.items()},
        policy=policy_to_proto(ref.policy), audio_hashes=ref.n_hashes, keyframes=ref.n_keyframes,
        created_at_unix_s=ref.created_at,
    )


def reference_to_dict(msg: pb.Reference) -> dict:
    return {
        "reference_id": msg.reference_id, "title": msg.title, "owner": msg.owner,
        "duration_s": round(msg.duration_s, 3), "digest": msg.digest, "modalities": msg.modalities,
        "metadata": dict(msg.metadata), "policy": policy_from_proto(msg.policy),
        "audio_hashes": msg.audio_hashes, "keyframes": msg.keyframes,
        "created_at": msg.created_at_unix_s,
    }
