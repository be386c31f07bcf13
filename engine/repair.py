"""``nanhu repair``: drop what cannot be read, as one ordinary catalog commit.

It acts on the same inspection as ``nanhu check`` (:func:`engine.check.survey`):

- a segment file that is missing or damaged (truncated, not a segment, of another version), or a
  vector segment of another dimension than the catalog's, leaves the manifest; so do compact
  video segments that cannot be read (all of them, and their quantiser, when the quantiser
  cannot be read); compact segments are never rewritten (``nanhu compact`` re-codes);
- unusable keyframe rows (non-unit or non-finite vectors, impossible times) and rows or postings
  of references the metadata does not know are dropped: their segment is written again without
  them;
- a reference that lost fingerprint data this way (its postings or keyframes were in a dropped
  segment, or some of its keyframe rows were unusable), and a reference whose row does not
  parse, is dropped whole (a tombstone, as ``nanhu delete`` makes): half a fingerprint would
  match worse without anyone noticing, while registering the work again restores it exactly.
  The report lists them.

Crash safety is the catalog's own commit protocol (:meth:`engine.catalog.Catalog.commit`): the
rewritten segments are written and fsynced under names no manifest names, the tombstones go into
SQLite tagged with the next generation, and the manifest swap makes it all visible at once; a
``kill -9`` before the swap leaves the last commit (the next writer rolls the rest back), after
it the repaired catalog. The replaced files are removed after the swap. Problems that dropping
cannot fix (unreadable metadata, parameters this Nanhu does not know) are reported and left.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nanhu.engine.audio.keys import KEY_BITS
from nanhu.engine.catalog import Catalog
from nanhu.engine.check import SegmentState, Survey, check_catalog, survey
from nanhu.engine.store.postings_write import merge_segments

log = logging.getLogger(__name__)


#: a segment a repair keeps (its manifest entry) or writes again (its new name, and the writer
#: that writes it and returns its entry, or None when no row is left)
Planned = dict | tuple[str, Callable[[str], dict | None]]


@dataclass
class Plan:
    """What a repair changes: the new segment lists (in the manifest's order) and the
    references to tombstone (ordinal -> why)."""

    audio: list[Planned] = field(default_factory=list)
    video: list[Planned] = field(default_factory=list)
    drop: dict[int, str] = field(default_factory=dict)
    dropped_segments: list[str] = field(default_factory=list)
    dropped_rows: int = 0
    #: the compact video segments kept (None: unchanged), and whether the quantiser goes too
    compact: list[dict] | None = None
    drop_quantiser: bool = False
    #: the reference-peak segments to keep, when a damaged one leaves (None: unchanged)
    peaks: list[dict] | None = None

    @property
    def changes(self) -> bool:
        rewrites = [item for item in self.audio + self.video if isinstance(item, tuple)]
        return bool(self.drop or rewrites or self.dropped_segments)


def plan_repair(catalog: Catalog, found: Survey) -> Plan:
    """Decide what to drop from what :func:`engine.check.survey` found (nothing is written).
    Without readable reference rows there is nothing to judge the segments by: no plan."""
    plan = Plan()
    if not found.rows_readable:
        return plan
    g = found.generation + 1
    live = {o: row for o, row in found.rows.items() if row.live}
    for ordinal, row in live.items():
        if not row.readable:
            plan.drop[ordinal] = "its metadata or policy is not JSON"
    audio_kept: set[int] = set()
    for number, state in enumerate(found.audio):
        if state.status != "ok":
            plan.dropped_segments.append(state.file)
            continue
        audio_kept.update(int(o) for o in state.ordinals)
        if state.unknown:
            plan.audio.append((f"audio/seg-{g:08d}-r{number:03d}.pst",
                               _audio_rewrite(catalog, state)))
        else:
            plan.audio.append(state.entry)
    video_kept: set[int] = set()
    for number, state in enumerate(found.video):
        if state.status != "ok":
            plan.dropped_segments.append(state.file)
            continue
        bad = state.ordinals[~state.usable]
        for ordinal in sorted({int(o) for o in np.unique(bad)} & set(live)):
            plan.drop.setdefault(ordinal, f"{int((bad == ordinal).sum())} unusable keyframe "
                                          f"row(s) in {state.file}")
        keep = state.usable & np.isin(state.ordinals, list(found.rows))
        keep &= ~np.isin(state.ordinals, np.unique(bad))
        video_kept.update(int(o) for o in np.unique(state.ordinals[keep]))
        if keep.all() and len(state.segment) == state.entry.get("count", len(state.segment)):
            plan.video.append(state.entry)
            continue
        plan.dropped_rows += int((~keep).sum())
        plan.video.append((f"video/seg-{g:08d}-r{number:03d}.vec",
                           _video_rewrite(catalog, state, keep)))
    # Compact segments are kept or dropped whole (their rows are codes of the catalog's
    # quantiser; `nanhu compact` re-codes): a missing or damaged one, or all of them when the
    # quantiser cannot be read, leaves the manifest, with the quantiser if none is left.
    compact = [state.entry for state in found.compact if state.status == "ok"]
    for state in found.compact:
        if state.status == "ok":
            video_kept.update(int(o) for o in np.unique(state.ordinals))
        else:
            plan.dropped_segments.append(state.file)
    if len(compact) != len(found.compact):
        plan.compact = compact
        plan.drop_quantiser = not compact
    # Peaks are evidence for the peak check only: a damaged file leaves the manifest and its
    # references are matched on votes alone (no reference is dropped for it).
    if any(state.status != "ok" for state in found.peaks):
        plan.peaks = [state.entry for state in found.peaks if state.status == "ok"]
        plan.dropped_segments += [state.file for state in found.peaks if state.status != "ok"]
    lost_audio = any(s.status != "ok" for s in found.audio)
    lost_video = any(s.status != "ok" for s in found.video + found.compact)
    for ordinal, row in live.items():
        if ordinal in plan.drop:
            continue
        if lost_audio and row.n_hashes and ordinal not in audio_kept:
            plan.drop[ordinal] = "its audio postings were in a missing or damaged segment"
        elif lost_video and row.n_keyframes and ordinal not in video_kept:
            plan.drop[ordinal] = ("its keyframes were in a missing, damaged or wrong-dimension "
                                  "segment")
    return plan


def _audio_rewrite(catalog: Catalog, state: SegmentState) -> Callable[[str], dict | None]:
    def write(name: str) -> dict | None:
        info: dict = {}

        def merge(path: Path) -> int:
            info.update(merge_segments([catalog.path / state.file], path, key_bits=KEY_BITS,
                                       drop_ordinals=np.array(state.unknown, np.uint32)))
            return info["bytes"]

        size = catalog._write_file(name, merge)  # the writer's own protocol: tmp, fsync, rename
        if not info["count"]:
            (catalog.path / name).unlink()
            return None
        return {"file": name, "count": info["count"], "bytes": size}

    return write


def _video_rewrite(catalog: Catalog, state: SegmentState,
                   keep: np.ndarray) -> Callable[[str], dict | None]:
    def write(name: str) -> dict | None:
        if not keep.any():
            return None
        segment = state.segment
        return catalog._write_vector_segment(name, segment.vectors[keep], segment.ordinals[keep],
                                             segment.times_s[keep])

    return write


def _written(items: list[Planned]) -> list[dict]:
    """The segment list for the manifest: kept entries as they are, rewrites written now."""
    out = []
    for item in items:
        entry = item if isinstance(item, dict) else item[1](item[0])
        if entry is not None:
            out.append(entry)
    return out


def repair_catalog(path: str | Path, *, dry_run: bool = False,
                   on_commit: Callable[[int], None] | None = None) -> dict:
    """Repair the catalog at ``path`` (takes the writer lock); a report.

    ``{"catalog", "generation_before", "generation", "repaired", "dropped": {"references":
    [{"reference_id", "reason"}], "segments": [file], "keyframe_rows": n}, "unrepairable":
    [str], "ok", "problems"}``: ``ok`` and ``problems`` are ``check``'s verdict afterwards.
    ``dry_run`` plans and reports without writing. ``on_commit(generation)`` is called just
    before the rewritten files are written (progress for the command line).
    """
    with Catalog(path, writable=True) as catalog:
        before = catalog.generation
        found = survey(catalog)
        plan = plan_repair(catalog, found)
        names = {o: found.rows[o].ref_id for o in plan.drop}
        if plan.changes and not dry_run:
            if on_commit is not None:
                on_commit(before + 1)
            audio, video = _written(plan.audio), _written(plan.video)
            replace = {"audio_segments": audio, "video_segments": video}
            if plan.peaks is not None:
                replace["audio_peaks"] = plan.peaks
            if plan.compact is not None:
                replace["video_compact"] = plan.compact
                if plan.drop_quantiser:
                    replace["video_quantiser"] = None
            catalog.commit(replace_segments=replace, drop_ordinals=sorted(plan.drop))
            log.warning("%s: repaired at generation %d: dropped %d reference(s), %d segment(s), "
                        "%d keyframe row(s)", catalog.path, catalog.generation, len(plan.drop),
                        len(plan.dropped_segments), plan.dropped_rows)
        after = catalog.generation
    verdict = check_catalog(path) if not dry_run else {"ok": not found.problems,
                                                       "problems": found.problems}
    return {
        "catalog": str(Path(path)), "generation_before": before, "generation": after,
        "repaired": after != before, "dry_run": dry_run,
        "dropped": {"references": [{"reference_id": names[o], "reason": plan.drop[o]}
                                   for o in sorted(plan.drop)],
                    "segments": plan.dropped_segments, "keyframe_rows": plan.dropped_rows},
        "unrepairable": found.unrepairable, "ok": verdict["ok"], "problems": verdict["problems"],
    }
