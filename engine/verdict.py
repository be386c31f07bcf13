"""What a match means to a moderator: the public :class:`Match`, and how a work's policy is
applied to an aligned segment (:func:`judge`).

Each match says what to do (``action``, from the policy that applies, or ``none``), how surely
(``band`` on the shared score scale, :func:`engine.segments.band`), why in one line
(``reason``: the evidence, what was trimmed, which policy decided), and how much matched
(``matched_s`` of the upload, ``upload_share``, ``reference_share``). Precedence between the
screening call's floor and the owner's policy is :mod:`engine.policy`'s.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from nanhu.engine.catalog import Reference
from nanhu.engine.errors import NanhuError
from nanhu.engine.policy import (
    NO_ACTION,
    Policy,
    ScreenFloor,
    Stretch,
    effective,
    format_ranges,
    merge_ranges,
    trim,
    unmet_condition,
)
from nanhu.engine.segments import Segment, band, expected_false_matches

log = logging.getLogger(__name__)


@dataclass
class Match:
    """One copied stretch: the public result shape (CLI JSON, gRPC).

    ``policy`` is kept for older clients: the action that applies, empty when none does.
    ``trimmed`` lists the stretches cut out of this copy because they lie in the work's
    excluded ranges (the same list on every piece of a copy split by a range). ``claim_id``
    names the claim a screening recorded for this match (:mod:`engine.claims`), when one was.
    """

    reference_id: str
    title: str
    modality: str
    score: float
    query_start_s: float
    query_end_s: float
    reference_start_s: float
    reference_end_s: float
    speed: float
    evidence: dict = field(default_factory=dict)
    policy: str = ""
    owner: str = ""
    action: str = NO_ACTION
    band: str = ""
    reason: str = ""
    matched_s: float = 0.0
    upload_share: float = 0.0
    reference_share: float = 0.0
    policy_source: str = ""
    trimmed: list[Stretch] = field(default_factory=list)
    claim_id: str = ""

    def __post_init__(self) -> None:
        if not self.band:
            self.band = band(self.score)

    def to_dict(self) -> dict:
        out = {
            "reference_id": self.reference_id, "title": self.title, "modality": self.modality,
            "score": round(self.score, 6),
            "query_start_s": round(self.query_start_s, 3), "query_end_s": round(self.query_end_s, 3),
            "reference_start_s": round(self.reference_start_s, 3),
            "reference_end_s": round(self.reference_end_s, 3),
            "speed": round(self.speed, 4),
            "expected_false_matches": float(f"{expected_false_matches(self.score):.3g}"),
            "evidence": self.evidence,
        }
        if self.policy:
            out["policy"] = self.policy
        out.update({
            "action": self.action, "band": self.band, "reason": self.reason,
            "matched_s": round(self.matched_s, 3), "upload_share": round(self.upload_share, 4),
            "reference_share": round(self.reference_share, 4), "policy_source": self.policy_source,
        })
        if self.trimmed:
            out["trimmed"] = [t.to_dict() for t in self.trimmed]
        if self.claim_id:
            out["claim_id"] = self.claim_id
        return out

    @classmethod
    def from_dict(cls, data: dict) -> Match:
        """A match from :meth:`to_dict`'s form (as claims store them); ``owner`` when present."""
        return cls(
            reference_id=data["reference_id"], title=data.get("title", ""),
            modality=data["modality"], score=float(data["score"]),
            query_start_s=data["query_start_s"], query_end_s=data["query_end_s"],
            reference_start_s=data["reference_start_s"], reference_end_s=data["reference_end_s"],
            speed=data["speed"], evidence=dict(data.get("evidence") or {}),
            policy=data.get("policy", ""), owner=data.get("owner", ""),
            action=data.get("action", NO_ACTION), band=data.get("band", ""),
            reason=data.get("reason", ""), matched_s=data.get("matched_s", 0.0),
            upload_share=data.get("upload_share", 0.0),
            reference_share=data.get("reference_share", 0.0),
            policy_source=data.get("policy_source", ""),
            trimmed=[Stretch(t["query_start_s"], t["query_end_s"], t["reference_start_s"],
                             t["reference_end_s"]) for t in data.get("trimmed", ())],
            claim_id=data.get("claim_id", ""),
        )


def evidence_line(modality: str, evidence: dict, matched_s: float) -> str:
    """``audio 9.6 s aligned (41 hashes), video 8 of 9 keyframes in line``."""
    if modality == "audio+video":
        audio, video = evidence.get("audio", {}), evidence.get("video", {})
        return (f"{_audio_words(audio, audio.get('matched_s'))}, {_video_words(video)}")
    if modality == "video":
        return _video_words(evidence)
    return _audio_words(evidence, matched_s)


def _audio_words(evidence: dict, matched_s: float | None) -> str:
    seconds = f" {matched_s:.1f} s" if matched_s is not None else ""
    return f"audio{seconds} aligned ({evidence.get('aligned_hashes', 0)} hashes)"


def _video_words(evidence: dict) -> str:
    aligned, spanned = evidence.get("aligned_keyframes", 0), evidence.get("query_keyframes")
    of = f" of {spanned}" if spanned and spanned != aligned else ""
    return f"video {aligned}{of} keyframes in line"


def _source_words(source: str, owner: str) -> str:
    return "the work's own policy" if source == "reference" else f"owner {owner}'s default policy"


def judge(seg: Segment, reference: Reference, owner_default: Policy | None, *,
          upload_duration_s: float, floor: ScreenFloor,
          held: tuple[tuple[float, float], ...] = ()) -> list[Match]:
    """The reported matches of one aligned segment: the stretches of the work ``held`` out of
    screening by reference conflicts (:mod:`engine.conflicts`) cut out first, then its
    policy's excluded ranges (none, one or more pieces), the platform's floor applied to each
    piece, then the policy's action or ``none``, with the reason. See :mod:`engine.policy` for
    the precedence."""
    try:
        own = reference.match_policy
    except NanhuError as exc:  # only a hand-edited catalog gets here (`nanhu check` says so)
        log.warning("reference %s: unusable stored policy (%s); its matches go to review",
                    reference.ref_id, exc)
        own = Policy("review")
    policy, source = effective(own, owner_default)
    active = policy is not None and policy.enabled
    whole = Stretch(seg.query_start_s, seg.query_end_s, seg.reference_start_s, seg.reference_end_s)
    free, withheld = trim(whole, held) if held else ([whole], [])
    if not free:
        log.debug("match of %s at %.1f-%.1f s dropped: held by a reference conflict",
                  reference.ref_id, seg.reference_start_s, seg.reference_end_s)
        return []
    pieces, removed = [], []
    for part in free:
        kept, cut = trim(part, policy.excluded_ranges) if active else ([part], [])
        pieces += kept
        removed += cut
    if not pieces:
        log.debug("match of %s at %.1f-%.1f s dropped: inside the excluded ranges %s",
                  reference.ref_id, seg.reference_start_s, seg.reference_end_s,
                  format_ranges(policy.excluded_ranges))
        return []
    evidence = evidence_line(seg.modality, seg.evidence, seg.query_duration_s)
    duration = reference.duration_s
    out = []
    for piece in pieces:
        ref_start = float(max(0.0, piece.reference_start_s))
        ref_end = float(min(duration, piece.reference_end_s) or piece.reference_end_s)
        matched_s = float(max(0.0, piece.query_end_s - piece.query_start_s))
        upload_share = min(1.0, matched_s / upload_duration_s) if upload_duration_s > 0 else 0.0
        reference_share = min(1.0, max(0.0, ref_end - ref_start) / duration) if duration > 0 else 0.0
        below = floor.failure(matched_s, upload_share, reference_share)
        if below is not None:
            log.debug("match of %s below the screening floor: %s", reference.ref_id, below)
            continue
        action, why = NO_ACTION, "no action: no policy for the work or its owner"
        if policy is not None:
            whose = _source_words(source, reference.owner)
            unmet = unmet_condition(policy, modality=seg.modality, matched_s=matched_s,
                                    upload_share=upload_share, reference_share=reference_share)
            if not policy.enabled:
                why = f"no action: {whose} ({policy.action}) is disabled"
            elif unmet is not None:
                why = f"no action: {whose} ({policy.action}) {unmet}"
            else:
                action, why = policy.action, f"{policy.action} by {whose}"
        parts = [evidence]
        if withheld:
            cut = merge_ranges((r.reference_start_s, r.reference_end_s) for r in withheld)
            parts.append(f"held {format_ranges(cut)} of the work (a reference conflict with "
                         "another owner's work)")
        if removed:
            cut = merge_ranges((r.reference_start_s, r.reference_end_s) for r in removed)
            parts.append(f"trimmed {format_ranges(cut)} of the work (excluded ranges)")
        parts.append(why)
        out.append(Match(
            reference_id=reference.ref_id, title=reference.title, modality=seg.modality,
            score=seg.score, query_start_s=piece.query_start_s, query_end_s=piece.query_end_s,
            reference_start_s=ref_start, reference_end_s=ref_end, speed=seg.speed,
            evidence=seg.evidence, policy="" if action == NO_ACTION else action,
            owner=reference.owner, action=action, reason="; ".join(parts), matched_s=matched_s,
            upload_share=upload_share, reference_share=reference_share,
            policy_source=source if policy is not None else "", trimmed=list(removed),
        ))
    return out
