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

from nanhu.engine.audio.keys import Landmarks
from nanhu.engine.audio.peaks import Peaks
from nanhu.engine.catalog import Conflict, Reference
from nanhu.engine.errors import InvalidArgument, MediaError, VersionMismatch
from nanhu.engine.fingerprint import (
    READABLE_VERSIONS,
    Fingerprint,
    VideoPrint,
    query_peak_arrays,
    query_peaks_from_arrays,
)
from nanhu.engine.matcher import Match
from nanhu.engine.policy import Policy, Stretch
from nanhu.engine.validate import check_local_tag
from nanhu.engine.video.local import DESCRIPTOR_BYTES, LocalFeatures, LocalParams
from nanhu.proto.gen.nanhu.v1 import nanhu_pb2 as pb
from nanhu.server.service import public_digest


# --- fingerprints ----------------------------------------------------------------------------
def fingerprint_to_proto(fp: Fingerprint) -> pb.Fingerprint:
    msg = pb.Fingerprint(format_version=fp.format_version, duration_s=fp.duration_s,
                         digest=fp.digest)
    if fp.audio_peaks is not None:  # a query keyed on demand travels as its peaks
        arrays = query_peak_arrays(fp.audio_peaks)
        msg.audio_peaks.params_tag = fp.audio_params_tag
        msg.audio_peaks.frames.extend(arrays["query_peak_frames"].tolist())
        msg.audio_peaks.log_freq.extend(arrays["query_peak_log_freq"].tolist())
        msg.audio_peaks.prominence.extend(arrays["query_peak_prominence"].tolist())
        msg.audio_peaks.warp_speeds.extend(arrays["query_warps"][:, 0].tolist())
        msg.audio_peaks.warp_pitches.extend(arrays["query_warps"][:, 1].tolist())
    if fp.reference_peaks is not None:
        msg.reference_peaks.params_tag = fp.audio_params_tag
        msg.reference_peaks.frames.extend(np.asarray(fp.reference_peaks.frame, np.int64).tolist())
        msg.reference_peaks.log_freq.extend(
            np.asarray(fp.reference_peaks.log_freq, np.float32).tolist())
    if fp.audio is not None:
        msg.audio.params_tag = fp.audio_params_tag
        msg.audio.hashes.extend(fp.audio.hashes.tolist())
        msg.audio.frames.extend(fp.audio.frames.tolist())
        msg.audio.speed_index.extend(fp.audio.speed_index.tolist())
        msg.audio.speeds.extend(fp.audio.speeds.tolist())
        msg.audio.pitches.extend(fp.audio.pitches.tolist())
    if fp.video is not None:
        # The message has no view tags: a query's extra views (engine.video.framing) stay on
        # the side that made them, and the whole-frame rows travel.
        video = fp.video.primary()
        vectors = np.asarray(video.vectors, np.float32)
        msg.video.params_tag = video.params_tag
        msg.video.dim = vectors.shape[1] if vectors.ndim == 2 else 0
        msg.video.vectors.extend(vectors.reshape(-1).tolist())
        msg.video.times_s.extend(video.times_s.tolist())
        if video.local is not None:
            _local_to_proto(video.local, msg.video.local)
    return msg


def _local_to_proto(local: LocalFeatures, msg: pb.LocalFeatures) -> None:
    msg.params_tag = LocalParams().tag()
    msg.width, msg.height = (int(v) for v in local.size)
    msg.times_s.extend(np.asarray(local.times_s, np.float32).tolist())
    msg.counts.extend(np.asarray(local.counts, np.int64).tolist())
    msg.xy = np.ascontiguousarray(local.xy, np.uint8).tobytes()
    msg.descriptors = np.ascontiguousarray(local.descriptors, np.uint8).tobytes()
    if local.flipped is not None:
        msg.flipped.extend(np.asarray(local.flipped, bool).tolist())


def _local_from_proto(msg: pb.LocalFeatures) -> LocalFeatures:
    """The message's arrays as they are (engine.validate checks that they fit together and
    stay within the limits); only the byte fields' framing is checked here."""
    check_local_tag(msg.params_tag)
    if len(msg.xy) % 2:
        raise InvalidArgument(f"fingerprint: video.local.xy must be 2 bytes (x, y) a keypoint "
                              f"(got {len(msg.xy)} bytes)")
    if len(msg.descriptors) % DESCRIPTOR_BYTES:
        raise InvalidArgument(f"fingerprint: video.local.descriptors must be {DESCRIPTOR_BYTES} "
                              f"bytes (an ORB descriptor) a keypoint (got {len(msg.descriptors)} "
                              "bytes)")
    return LocalFeatures(
        np.array(msg.times_s, np.float32), np.array(msg.counts, np.int64),
        np.frombuffer(msg.xy, np.uint8).reshape(-1, 2),
        np.frombuffer(msg.descriptors, np.uint8).reshape(-1, DESCRIPTOR_BYTES),
        (msg.width, msg.height), np.array(msg.flipped, bool) if len(msg.flipped) else None)


def fingerprint_from_proto(msg: pb.Fingerprint) -> Fingerprint:
    """Raises InvalidArgument for inconsistent arrays, VersionMismatch for another format."""
    if msg.format_version not in READABLE_VERSIONS:
        raise VersionMismatch(
            f"fingerprint format version {msg.format_version} is not supported "
            f"(this server reads versions {', '.join(map(str, READABLE_VERSIONS))})"
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
                           np.array(v.times_s, np.float32), v.params_tag,
                           local=_local_from_proto(v.local) if v.HasField("local") else None)
    peaks = None
    if msg.HasField("audio_peaks"):
        p = msg.audio_peaks
        if audio is not None:
            raise InvalidArgument("fingerprint: audio and audio_peaks are both set (a query's "
                                  "audio travels as one or the other)")
        if len(p.warp_speeds) != len(p.warp_pitches):
            raise InvalidArgument("fingerprint audio_peaks: warp_speeds and warp_pitches differ "
                                  "in length")
        try:
            peaks = query_peaks_from_arrays(
                np.array(p.frames, np.int32), np.array(p.log_freq, np.float32),
                np.array(p.prominence, np.float32),
                np.stack([np.array(p.warp_speeds, np.float64),
                          np.array(p.warp_pitches, np.float64)], axis=1), p.params_tag)
        except MediaError as exc:
            raise InvalidArgument(f"fingerprint audio_peaks: {exc}") from exc
    reference_peaks = None
    if msg.HasField("reference_peaks"):
        r = msg.reference_peaks
        if audio is None or r.params_tag != msg.audio.params_tag:
            raise InvalidArgument("fingerprint reference_peaks: sent without audio landmarks of "
                                  "the same params_tag")
        if len(r.frames) != len(r.log_freq):
            raise InvalidArgument("fingerprint reference_peaks: frames and log_freq differ in "
                                  "length")
        reference_peaks = Peaks(np.array(r.frames, np.int64), np.array(r.log_freq, np.float32),
                                np.zeros(len(r.frames), np.float32))
    tag = msg.audio.params_tag if audio is not None else (
        msg.audio_peaks.params_tag if peaks is not None else "")
    return Fingerprint(duration_s=msg.duration_s, digest=msg.digest, audio=audio,
                       audio_params_tag=tag, video=video, audio_peaks=peaks,
                       reference_peaks=reference_peaks)


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
        action=match.action, band=match.band, reason=match.reason, matched_s=match.matched_s,
        upload_share=match.upload_share, reference_share=match.reference_share,
        policy_source=match.policy_source,
        trimmed=[pb.Stretch(query_start_s=t.query_start_s, query_end_s=t.query_end_s,
                            reference_start_s=t.reference_start_s, reference_end_s=t.reference_end_s)
                 for t in match.trimmed],
        claim_id=match.claim_id,
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


def match_from_proto(msg: pb.Match) -> Match:
    return Match(
        reference_id=msg.reference_id, title=msg.title, modality=msg.modality, score=msg.score,
        query_start_s=msg.query_start_s, query_end_s=msg.query_end_s,
        reference_start_s=msg.reference_start_s, reference_end_s=msg.reference_end_s,
        speed=msg.speed, evidence=_ints(json_format.MessageToDict(msg.evidence)),
        policy=msg.policy, action=msg.action or "none", band=msg.band, reason=msg.reason,
        matched_s=msg.matched_s, upload_share=msg.upload_share,
        reference_share=msg.reference_share, policy_source=msg.policy_source,
        trimmed=[Stretch(t.query_start_s, t.query_end_s, t.reference_start_s, t.reference_end_s)
                 for t in msg.trimmed],
        claim_id=msg.claim_id,
    )


def match_to_dict(msg: pb.Match) -> dict:
    """The same dict as ``engine.matcher.Match.to_dict`` (and ``nanhu query --json``)."""
    return match_from_proto(msg).to_dict()


def screen_response_to_dict(msg: pb.ScreenResponse) -> dict:
    out = {"duration_s": round(msg.duration_s, 3), "digest": msg.digest,
           "matches": [match_to_dict(m) for m in msg.matches]}
    if msg.partial:  # a cluster catalog some of whose shards did not answer
        out.update(partial=True, missing_shards=list(msg.missing_shards))
    return out


# --- policies and references -----------------------------------------------------------------
def policy_from_proto(msg: pb.Policy) -> dict:
    """The stored form of a policy message (``{}`` for an empty one: no policy); raises
    InvalidArgument for an action outside the fixed set, a bad range or share."""
    if msg == pb.Policy():
        return {}
    data: dict = {"excluded_ranges": [[r.start_s, r.end_s] for r in msg.excluded_ranges]}
    if msg.label:
        data["label"] = msg.label
    if msg.action:
        data["action"] = msg.action
    if msg.modality:
        data["modality"] = msg.modality
    for name in ("min_match_s", "min_upload_share", "min_reference_share"):
        if getattr(msg, name):
            data[name] = getattr(msg, name)
    if msg.disabled:
        data["enabled"] = False
    policy = Policy.from_dict(data)
    return policy.to_dict() if policy is not None else {}


def policy_to_proto(policy: dict | Policy | None) -> pb.Policy:
    """A stored policy (or a Policy) as a message; ``{}``/None is the empty message."""
    if isinstance(policy, dict):
        policy = Policy.from_stored(policy)
    if policy is None:
        return pb.Policy()
    return pb.Policy(
        action=policy.action, modality=policy.modality, min_match_s=policy.min_match_s,
        min_upload_share=policy.min_upload_share, min_reference_share=policy.min_reference_share,
        disabled=not policy.enabled,
        excluded_ranges=[pb.TimeRange(start_s=s, end_s=e) for s, e in policy.excluded_ranges])


def owner_policy_to_proto(owner: str, policy: Policy | None) -> pb.OwnerPolicy:
    message = pb.OwnerPolicy(owner=owner)
    if policy is not None:
        message.policy.CopyFrom(policy_to_proto(policy))
    return message


def owner_policy_to_dict(msg: pb.OwnerPolicy) -> dict:
    """``{"owner": ..., "policy": stored form or {}}``."""
    return {"owner": msg.owner,
            "policy": policy_from_proto(msg.policy) if msg.HasField("policy") else {}}


def reference_to_proto(ref: Reference, conflicts: list[Conflict] = ()) -> pb.Reference:
    return pb.Reference(
        reference_id=ref.ref_id, title=ref.title, owner=ref.owner, duration_s=ref.duration_s,
        digest=public_digest(ref), modalities=ref.modalities,
        metadata={str(k): v if isinstance(v, str) else json.dumps(v) for k, v in ref.metadata.items()},
        policy=policy_to_proto(ref.policy), audio_hashes=ref.n_hashes, keyframes=ref.n_keyframes,
        created_at_unix_s=ref.created_at, conflicts=[conflict_to_proto(c) for c in conflicts],
    )


def reference_to_dict(msg: pb.Reference) -> dict:
    return {
        "reference_id": msg.reference_id, "title": msg.title, "owner": msg.owner,
        "duration_s": round(msg.duration_s, 3), "digest": msg.digest, "modalities": msg.modalities,
        "metadata": dict(msg.metadata), "policy": policy_from_proto(msg.policy),
        "audio_hashes": msg.audio_hashes, "keyframes": msg.keyframes,
        "created_at": msg.created_at_unix_s,
        **({"conflicts": [conflict_to_dict(c) for c in msg.conflicts]} if msg.conflicts else {}),
    }


# --- reference conflicts -----------------------------------------------------------------------
def conflict_to_proto(conflict: Conflict) -> pb.Conflict:
    data = conflict.to_dict()
    return pb.Conflict(
        conflict_id=data["conflict_id"], kind=data["kind"], status=data["status"],
        reference_id=data["reference_id"], title=data["title"], owner=data["owner"],
        other_reference_id=data["other_reference_id"], other_title=data["other_title"],
        other_owner=data["other_owner"], created_at_unix_s=data["created_at"],
        resolved_by=data["resolved_by"], note=data["note"],
        ranges=[pb.OverlapRange(**{k: r[k] for k in _RANGE_FIELDS}) for r in data["ranges"]])


_RANGE_FIELDS = ("start_s", "end_s", "other_start_s", "other_end_s", "score")


def conflict_to_dict(msg: pb.Conflict) -> dict:
    """The same dict as :meth:`engine.catalog.Conflict.to_dict` (``nanhu conflicts --json``)."""
    return {
        "conflict_id": msg.conflict_id, "kind": msg.kind, "status": msg.status,
        "reference_id": msg.reference_id, "title": msg.title, "owner": msg.owner,
        "other_reference_id": msg.other_reference_id, "other_title": msg.other_title,
        "other_owner": msg.other_owner,
        "ranges": [{k: round(getattr(r, k), 6 if k == "score" else 3) for k in _RANGE_FIELDS}
                   for r in msg.ranges],
        "created_at": msg.created_at_unix_s, "resolved_by": msg.resolved_by, "note": msg.note,
    }


# --- claims ------------------------------------------------------------------------------------
def claim_to_proto(claim: dict) -> pb.Claim:
    """A claim of :class:`engine.claims.ClaimStore` as a message."""
    return pb.Claim(
        claim_id=claim["claim_id"], status=claim["status"], action=claim["action"],
        reference_id=claim["reference_id"], title=claim["title"], owner=claim["owner"],
        tenant=claim["tenant"], upload_id=claim["upload_id"], request_id=claim["request_id"],
        filename=claim["filename"], duration_s=claim["duration_s"],
        matches=[match_to_proto(Match.from_dict(m)) for m in claim["matches"]],
        history=[pb.ClaimEvent(at_unix_s=e["at"], who=e["who"], party=e["party"],
                               from_status=e["from"], to_status=e["to"], note=e["note"],
                               request_id=e["request_id"]) for e in claim["history"]],
        created_at_unix_s=claim["created_at"], updated_at_unix_s=claim["updated_at"])


def claim_to_dict(msg: pb.Claim) -> dict:
    """The same dict as the claim store's (``nanhu claims list --json`` prints it)."""
    return {
        "claim_id": msg.claim_id, "status": msg.status, "action": msg.action,
        "reference_id": msg.reference_id, "title": msg.title, "owner": msg.owner,
        "tenant": msg.tenant, "upload_id": msg.upload_id, "request_id": msg.request_id,
        "filename": msg.filename, "duration_s": msg.duration_s,
        "matches": [match_to_dict(m) for m in msg.matches],
        "created_at": msg.created_at_unix_s, "updated_at": msg.updated_at_unix_s,
        "history": [{"at": e.at_unix_s, "who": e.who, "party": e.party, "from": e.from_status,
                     "to": e.to_status, "note": e.note, "request_id": e.request_id}
                    for e in msg.history],
    }


def webhook_to_dict(msg: pb.Webhook) -> dict:
    out = {"tenant": msg.tenant, "url": msg.url, "pending": msg.pending, "failed": msg.failed}
    if msg.secret:
        out["secret"] = msg.secret
    return out
