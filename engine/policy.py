"""Match policies: what a rights holder wants done with the matches of its works.

A :class:`Policy` has an action from :data:`ACTIONS`, conditions a match must meet for the
action to apply (its modality, matched seconds, share of the upload, share of the work),
excluded ranges of the work (reference time) that are cut out of every match, and an enabled
flag. A work has its own policy or none; an owner has one default policy or none.

Precedence (docs/policies.md):

1. The screening call's thresholds (:class:`ScreenFloor`) are the platform's floor: a match
   below them is not reported, whatever the owner's policy says. An owner's conditions can only
   be stricter than the floor, never let through what it dropped.
2. A work's own policy replaces its owner's default entirely (no merging field by field); a
   disabled own policy therefore means "no action on this work". Without one, the owner's
   default applies; without either, nothing applies (action ``none``).
3. The policy that applies, when enabled, first trims its excluded ranges out of the match
   (a match entirely inside them is dropped), then the floor is applied to what is left, then
   its conditions decide between its action and ``none``.

Every reported match carries the action that applies and a one-line reason saying why.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from nanhu.engine.errors import InvalidArgument

#: what an owner may ask for; anything else is refused
ACTIONS = ("block", "monetize", "track", "review")
#: which evidence a match must have for a policy to act on it
MODALITIES = ("audio", "video", "both", "any")
#: the action reported when no policy applies (none set, disabled, or conditions not met)
NO_ACTION = "none"
#: excluded ranges per policy, at most (they are checked against every match of the work)
MAX_EXCLUDED_RANGES = 100
#: longest minimum match an owner may ask for (seconds): a day
MAX_MIN_MATCH_S = 86_400.0
#: a piece of a trimmed match shorter than this (upload seconds) is dropped with the trim
MIN_TRIMMED_PIECE_S = 1.0
_FIELDS = ("action", "modality", "min_match_s", "min_upload_share", "min_reference_share",
           "excluded_ranges", "enabled")
_RANGE = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*-\s*([0-9]*\.?[0-9]+)\s*$")


def parse_action(text: str, *, what: str = "action") -> str:
    """``text`` as an action, or InvalidArgument naming the allowed values."""
    action = str(text).strip().lower()
    if action not in ACTIONS:
        shown = repr(text) if len(str(text)) <= 40 else repr(str(text)[:40]) + "..."
        raise InvalidArgument(f"{what} {shown} is not one of {', '.join(ACTIONS)}")
    return action


def parse_range(text: str, *, what: str = "excluded range") -> tuple[float, float]:
    """``"12.5-30"`` (seconds of the work) as ``(12.5, 30.0)``."""
    found = _RANGE.match(str(text))
    if not found:
        raise InvalidArgument(f"{what} {text!r} is not START-END in seconds (e.g. 0-12.5)")
    return check_range(float(found.group(1)), float(found.group(2)), what=what)


def parse_ranges(text: str, *, what: str = "excluded ranges") -> tuple[tuple[float, float], ...]:
    """``"0-12.5;30-40"`` (``;`` or ``,`` between ranges) as ranges; empty text: none."""
    parts = [p for p in re.split(r"[;,]", str(text)) if p.strip()]
    return tuple(parse_range(p, what=what.removesuffix("s")) for p in parts)


def check_range(start_s: float, end_s: float, *, what: str = "excluded range") -> tuple[float, float]:
    try:
        start_s, end_s = float(start_s), float(end_s)
    except (TypeError, ValueError):
        raise InvalidArgument(f"{what} {start_s!r}-{end_s!r} is not a pair of numbers") from None
    if not (math.isfinite(start_s) and math.isfinite(end_s)) or start_s < 0 or end_s <= start_s:
        raise InvalidArgument(f"{what} {start_s:g}-{end_s:g} s is not a time range "
                              "(0 <= start < end, seconds of the work)")
    return start_s, end_s


def merge_ranges(ranges: Iterable[tuple[float, float]]) -> tuple[tuple[float, float], ...]:
    """Sorted, overlapping and touching ranges merged."""
    out: list[list[float]] = []
    for start, end in sorted((float(s), float(e)) for s, e in ranges):
        if out and start <= out[-1][1]:
            out[-1][1] = max(out[-1][1], end)
        else:
            out.append([start, end])
    return tuple((s, e) for s, e in out)


def format_ranges(ranges: Iterable[tuple[float, float]]) -> str:
    return ", ".join(f"{s:g}-{e:g} s" for s, e in ranges) or "-"


def _number(value: object, name: str, *, upper: float) -> float:
    if isinstance(value, bool):
        raise InvalidArgument(f"{name} {value!r} is not a number")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InvalidArgument(f"{name} {value!r} is not a number") from None
    if not math.isfinite(number) or number < 0 or number > upper:
        raise InvalidArgument(f"{name} {value!r} is out of range (0 to {upper:g})")
    return number


def parse_bool(value: object, *, what: str) -> bool:
    """``true/false``, ``yes/no``, ``1/0``, ``on/off`` (any case) or a JSON boolean."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "yes", "1", "on"):
        return True
    if text in ("false", "no", "0", "off"):
        return False
    raise InvalidArgument(f"{what} {value!r} is not true or false")


@dataclass(frozen=True)
class Policy:
    """An owner's policy for one work or for all its works (see the module docstring).

    Shares are fractions in 0..1; ``excluded_ranges`` are seconds of the work, sorted and merged.
    """

    action: str
    modality: str = "any"
    min_match_s: float = 0.0
    min_upload_share: float = 0.0
    min_reference_share: float = 0.0
    excluded_ranges: tuple[tuple[float, float], ...] = field(default=())
    enabled: bool = True

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "action", parse_action(self.action))
        modality = str(self.modality).strip().lower()
        if modality not in MODALITIES:
            raise InvalidArgument(f"modality {self.modality!r} is not one of {', '.join(MODALITIES)}")
        set_(self, "modality", modality)
        set_(self, "min_match_s", _number(self.min_match_s, "min_match_s", upper=MAX_MIN_MATCH_S))
        for name in ("min_upload_share", "min_reference_share"):
            set_(self, name, _number(getattr(self, name), name, upper=1.0))
        ranges = list(self.excluded_ranges or ())
        if len(ranges) > MAX_EXCLUDED_RANGES:
            raise InvalidArgument(f"{len(ranges)} excluded ranges: at most {MAX_EXCLUDED_RANGES}")
        checked = []
        for item in ranges:
            if isinstance(item, str):
                checked.append(parse_range(item))
                continue
            try:
                start, end = item
            except (TypeError, ValueError):
                raise InvalidArgument(f"excluded range {item!r} is not [start_s, end_s]") from None
            checked.append(check_range(start, end))
        set_(self, "excluded_ranges", merge_ranges(checked))
        if not isinstance(self.enabled, bool):
            set_(self, "enabled", parse_bool(self.enabled, what="enabled"))

    @classmethod
    def from_dict(cls, data: Mapping, *, strict: bool = True) -> Policy | None:
        """A policy from its dict form; ``{}`` is no policy (None).

        ``label`` (the free-text field of older catalogs and clients) is read as the action.
        ``strict``: refuse unknown keys (input from users); stored policies are read with
        ``strict=False``, so a catalog written by a newer Nanhu still opens.
        """
        if not isinstance(data, Mapping):
            raise InvalidArgument(f"policy {data!r} is not an object")
        data = dict(data)
        label = data.pop("label", None)
        if label not in (None, ""):
            if data.get("action") not in (None, "", label):
                raise InvalidArgument(f"policy has both label {label!r} and action "
                                      f"{data['action']!r}; give the action only")
            data["action"] = label
        unknown = sorted(set(data) - set(_FIELDS))
        if unknown and strict:
            raise InvalidArgument(f"policy has unknown field(s) {', '.join(unknown)} "
                                  f"(known: {', '.join(_FIELDS)})")
        if not any(data.get(k) not in (None, "", [], ()) for k in _FIELDS):
            return None
        if data.get("action") in (None, ""):
            raise InvalidArgument(f"a policy needs an action: one of {', '.join(ACTIONS)}")
        return cls(**{k: data[k] for k in _FIELDS if k in data and data[k] is not None})

    @classmethod
    def from_stored(cls, data: Mapping) -> Policy | None:
        """A policy as a catalog row holds it, including the label policies of catalogs made
        before actions existed (``{"label": free text, "excluded_ranges": [...]}``): a label
        that is an action is that action, any other label becomes ``track`` (report, do
        nothing to the upload: what a free label did). ``legacy_label`` keeps the old text."""
        if not data:
            return None
        data = {k: v for k, v in dict(data).items() if k != "legacy_label"}
        label = data.get("label")
        if "action" not in data and (label or data.get("excluded_ranges")):
            data.pop("label", None)
            data["action"] = label if label in ACTIONS else "track"
        return cls.from_dict(data, strict=False)

    def to_dict(self) -> dict:
        return {
            "action": self.action, "modality": self.modality, "min_match_s": self.min_match_s,
            "min_upload_share": self.min_upload_share,
            "min_reference_share": self.min_reference_share,
            "excluded_ranges": [[s, e] for s, e in self.excluded_ranges], "enabled": self.enabled,
        }

    def describe(self) -> str:
        """One line for people: ``block when audio, >= 10 s, excluding 0-12 s``."""
        conditions = []
        if self.modality != "any":
            conditions.append(f"modality {self.modality}")
        if self.min_match_s:
            conditions.append(f">= {self.min_match_s:g} s matched")
        if self.min_upload_share:
            conditions.append(f">= {self.min_upload_share:.0%} of the upload")
        if self.min_reference_share:
            conditions.append(f">= {self.min_reference_share:.0%} of the work")
        text = self.action + (" when " + ", ".join(conditions) if conditions else " on any match")
        if self.excluded_ranges:
            text += f"; excluding {format_ranges(self.excluded_ranges)} of the work"
        return text + ("" if self.enabled else " (disabled)")


def migrate_stored(data: Mapping) -> dict | None:
    """The stored form of an older catalog's policy in this version's shape, or None when it is
    already in it. Labels that are not actions are kept as ``legacy_label``."""
    if not data or "action" in data:
        return None
    policy = Policy.from_stored(data)
    if policy is None:
        return {}
    out = policy.to_dict()
    label = data.get("label")
    if label and label != policy.action:
        out["legacy_label"] = label
    return out


def effective(own: Policy | None, owner_default: Policy | None) -> tuple[Policy | None, str]:
    """The policy that governs a work, and where it comes from: ``"reference"`` (its own),
    ``"owner"`` (its owner's default) or ``""`` (none)."""
    if own is not None:
        return own, "reference"
    if owner_default is not None:
        return owner_default, "owner"
    return None, ""


@dataclass(frozen=True)
class ScreenFloor:
    """The screening call's own thresholds: the platform's floor (each match judged on its own).

    Zero means no threshold. A match below any of them is not reported.
    """

    min_matched_duration_s: float = 0.0
    min_upload_share: float = 0.0
    min_reference_share: float = 0.0

    def __post_init__(self) -> None:
        for name in ("min_matched_duration_s", "min_upload_share", "min_reference_share"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0 or (name != "min_matched_duration_s" and value > 1):
                raise InvalidArgument(f"{name} = {value} is out of range")

    def failure(self, matched_s: float, upload_share: float, reference_share: float) -> str | None:
        """Why a match falls below the floor, or None when it passes."""
        if matched_s < self.min_matched_duration_s:
            return f"{matched_s:.1f} s matched, the call asks {self.min_matched_duration_s:g} s"
        if upload_share < self.min_upload_share:
            return f"{upload_share:.0%} of the upload, the call asks {self.min_upload_share:.0%}"
        if reference_share < self.min_reference_share:
            return f"{reference_share:.0%} of the work, the call asks {self.min_reference_share:.0%}"
        return None


def unmet_condition(policy: Policy, *, modality: str, matched_s: float, upload_share: float,
                    reference_share: float) -> str | None:
    """The first of the policy's conditions a match does not meet, in words (``needs 10 s
    matched, has 4.2 s``); None if it meets them all. ``modality`` is the match's: ``audio``,
    ``video`` or ``audio+video``; the policy's ``audio`` and ``video`` ask for that evidence
    (alone or fused), ``both`` for a fused match, ``any`` for none in particular."""
    sides = set(modality.split("+"))
    wanted = {"audio": {"audio"}, "video": {"video"}, "both": {"audio", "video"}, "any": set()}
    if not wanted[policy.modality] <= sides:
        need = "audio+video" if policy.modality == "both" else policy.modality
        return f"needs {need} evidence, has {modality}"
    if matched_s + 1e-9 < policy.min_match_s:
        return f"needs {policy.min_match_s:g} s matched, has {matched_s:.1f} s"
    if upload_share + 1e-9 < policy.min_upload_share:
        return f"needs {policy.min_upload_share:.0%} of the upload, has {upload_share:.0%}"
    if reference_share + 1e-9 < policy.min_reference_share:
        return f"needs {policy.min_reference_share:.0%} of the work, has {reference_share:.0%}"
    return None


@dataclass(frozen=True)
class Stretch:
    """A stretch of a match: upload and work times (seconds)."""

    query_start_s: float
    query_end_s: float
    reference_start_s: float
    reference_end_s: float

    def to_dict(self) -> dict:
        return {"query_start_s": round(self.query_start_s, 3), "query_end_s": round(self.query_end_s, 3),
                "reference_start_s": round(self.reference_start_s, 3),
                "reference_end_s": round(self.reference_end_s, 3)}


def trim(stretch: Stretch,
         ranges: Iterable[tuple[float, float]]) -> tuple[list[Stretch], list[Stretch]]:
    """Cut the excluded ``ranges`` (work time) out of a matched stretch.

    Returns ``(kept pieces, removed stretches)``; upload times follow the work times linearly
    along the match (its speed). A match that overlaps no range comes back whole with nothing
    removed; one entirely inside the ranges comes back with no pieces. Pieces shorter than
    :data:`MIN_TRIMMED_PIECE_S` of the upload are removed too (a sliver of a copy is not one).
    """
    r0, r1 = stretch.reference_start_s, stretch.reference_end_s
    q0, q1 = stretch.query_start_s, stretch.query_end_s
    overlapping = [(max(s, r0), min(e, r1)) for s, e in merge_ranges(ranges) if e > r0 and s < r1]
    if not overlapping or r1 <= r0:
        return [stretch], []
    rate = (q1 - q0) / (r1 - r0)

    def at(r0_: float, r1_: float) -> Stretch:
        return Stretch(q0 + (r0_ - r0) * rate, q0 + (r1_ - r0) * rate, r0_, r1_)

    removed = [at(s, e) for s, e in overlapping]
    kept: list[Stretch] = []
    cursor = r0
    for s, e in overlapping + [(r1, r1)]:
        if s > cursor:
            piece = at(cursor, s)
            if piece.query_end_s - piece.query_start_s >= MIN_TRIMMED_PIECE_S:
                kept.append(piece)
            else:
                removed.append(piece)
        cursor = max(cursor, e)
    removed.sort(key=lambda p: p.reference_start_s)
    return kept, removed
