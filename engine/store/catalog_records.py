"""What the catalog hands out: a registered work (:class:`Reference`), an overlap found at
registration (:class:`Overlap`) and a stored reference conflict (:class:`Conflict`); the rule
for reference ids and the mapping of a ``refs`` row to a Reference."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from nanhu.engine.policy import Policy

ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@+\-]{0,199}$")


def is_valid_reference_id(ref_id: str) -> bool:
    """1-200 letters, digits and ``._:@+-``, starting with a letter or digit."""
    return bool(ID_PATTERN.match(ref_id or ""))


@dataclass(frozen=True)
class Reference:
    """A registered work as the catalog describes it."""

    ordinal: int
    ref_id: str
    title: str
    owner: str
    duration_s: float
    digest: str
    metadata: dict = field(default_factory=dict)
    policy: dict = field(default_factory=dict)
    n_hashes: int = 0
    n_keyframes: int = 0
    created_at: float = 0.0

    @property
    def match_policy(self) -> Policy | None:
        """The work's own policy (None when it has none; its owner's default may apply)."""
        return Policy.from_stored(self.policy)

    @property
    def modalities(self) -> str:
        parts = [name for name, n in (("audio", self.n_hashes), ("video", self.n_keyframes)) if n]
        return "+".join(parts) or "none"

    def to_dict(self) -> dict:
        return {
            "reference_id": self.ref_id, "title": self.title, "owner": self.owner,
            "duration_s": round(self.duration_s, 3), "digest": self.digest,
            "modalities": self.modalities, "metadata": self.metadata, "policy": self.policy,
            "audio_hashes": self.n_hashes, "keyframes": self.n_keyframes,
            "created_at": self.created_at,
        }


@dataclass(frozen=True)
class Overlap:
    """Material a new work shares with a registered one, found when it is registered
    (:func:`engine.conflicts.find_overlaps`): seconds of the new work and of the other work.
    ``other_ordinal`` -1: the other work is staged in the same commit, named by its id."""

    other_ordinal: int
    other_ref_id: str
    other_owner: str
    start_s: float
    end_s: float
    other_start_s: float
    other_end_s: float
    score: float

    def to_dict(self) -> dict:
        return {"start_s": round(self.start_s, 3), "end_s": round(self.end_s, 3),
                "other_start_s": round(self.other_start_s, 3),
                "other_end_s": round(self.other_end_s, 3), "score": round(self.score, 6)}


@dataclass(frozen=True)
class Conflict:
    """A stored overlap between a work (registered later) and another (registered before).

    ``kind`` is ``conflict`` while their owners differ (the work's overlapping stretches are
    held out of screening), ``same-owner`` when they are the same (reported, allowed); owners
    are read now, so assigning both works to one owner settles a conflict. ``resolved`` when
    someone accepted it (``nanhu conflicts resolve``): the held stretches match again.
    """

    conflict_id: int
    reference: Reference
    other: Reference
    ranges: tuple[dict, ...]
    created_at: float
    resolved: bool = False
    resolved_by: str = ""
    note: str = ""

    @property
    def kind(self) -> str:
        return "same-owner" if self.reference.owner == self.other.owner else "conflict"

    @property
    def held(self) -> bool:
        """The work's overlapping stretches are kept out of screening."""
        return self.kind == "conflict" and not self.resolved

    @property
    def status(self) -> str:
        return "resolved" if self.resolved else "held" if self.held else "allowed"

    def to_dict(self) -> dict:
        return {"conflict_id": self.conflict_id, "kind": self.kind, "status": self.status,
                "reference_id": self.reference.ref_id, "title": self.reference.title,
                "owner": self.reference.owner, "other_reference_id": self.other.ref_id,
                "other_title": self.other.title, "other_owner": self.other.owner,
                "ranges": list(self.ranges), "created_at": self.created_at,
                "resolved_by": self.resolved_by, "note": self.note}


COLUMNS = (
    "ordinal, ref_id, title, owner, duration_s, digest, metadata, policy, n_hashes, "
    "n_keyframes, created_at"
)


def row_to_reference(row: tuple) -> Reference:
    return Reference(
        ordinal=row[0], ref_id=row[1], title=row[2], owner=row[3], duration_s=row[4],
        digest=row[5], metadata=json.loads(row[6]), policy=json.loads(row[7]), n_hashes=row[8],
        n_keyframes=row[9], created_at=row[10],
    )
