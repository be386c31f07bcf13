"""``nanhu check``: verify a catalog without changing it.

Opens the catalog read-only (no writer lock, so it is safe next to a running server and safe to
interrupt) and reports what would break screening or compaction: segment files the manifest
names that are missing, truncated or of another format; vector segments of another dimension
than the catalog's video parameters; keyframe rows that are not unit vectors or have impossible
times; rows (postings, keyframes) of references the metadata does not know; reference rows and
policies that do not parse.

:func:`survey` is the inspection itself, segment by segment and row by row; ``nanhu repair``
(:mod:`engine.repair`) acts on the same survey, so it drops exactly what ``check`` reports.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nanhu.engine.catalog import Catalog
from nanhu.engine.errors import NanhuError
from nanhu.engine.policy import Policy
from nanhu.engine.store import vectors as vector_store
from nanhu.engine.store.audio_peaks import PeakSegment
from nanhu.engine.store.postings import Segment
from nanhu.engine.validate import known_video_dims


@dataclass
class Row:
    """One reference row committed at the catalog's generation."""

    ordinal: int
    ref_id: str
    live: bool
    readable: bool
    n_hashes: int
    n_keyframes: int


@dataclass
class SegmentState:
    """A segment the manifest names, as found: ``ok``, ``missing``, ``damaged`` or (video)
    ``wrong-dim``. For readable ones, ``ordinals`` are those of its rows (postings or keyframes),
    ``unknown`` those the metadata does not know; for vector segments ``usable`` marks the rows
    that pass :func:`engine.store.vectors.sane_rows`."""

    entry: dict
    status: str
    error: str = ""
    ordinals: np.ndarray | None = None
    unknown: list[int] = field(default_factory=list)
    usable: np.ndarray | None = None
    segment: object = None

    @property
    def file(self) -> str:
        return self.entry["file"]


@dataclass
class Survey:
    """What :func:`survey` found; ``problems`` are the messages ``check`` prints."""

    generation: int
    rows: dict[int, Row]
    audio: list[SegmentState]
    video: list[SegmentState]
    video_dim: int | None
    problems: list[str]
    #: problems no repair can fix by dropping data (unreadable metadata, unknown parameters)
    unrepairable: list[str]
    checked: dict
    #: False when the reference rows could not be read (then nothing can be judged by them)
    rows_readable: bool = True
    #: compact video segments (their ``segment`` a CompactSegment) and whether the quantiser
    #: that decodes them could be read (when not, every compact segment is ``damaged``)
    compact: list[SegmentState] = field(default_factory=list)
    quantiser_readable: bool = True
    #: reference-peak segments (the peak check's evidence, engine.store.audio_peaks)
    peaks: list[SegmentState] = field(default_factory=list)


def survey(catalog: Catalog) -> Survey:
    """Inspect every reference row and every segment of ``catalog`` (changes nothing)."""
    problems: list[str] = []
    unrepairable: list[str] = []
    checked = {"references": 0, "audio_segments": 0, "video_segments": 0, "keyframes": 0,
               "unusable_keyframes": 0}
    manifest, g = catalog.manifest, catalog.generation
    rows: dict[int, Row] = {}
    rows_readable = True
    try:
        raw = catalog._db.execute(
            "SELECT ordinal, ref_id, metadata, policy, n_hashes, n_keyframes, deleted_generation "
            "FROM refs WHERE generation <= ?", (g,)).fetchall()
    except sqlite3.Error as exc:
        message = f"meta.sqlite: cannot read references ({exc})"
        problems.append(message)
        unrepairable.append(message)
        raw, rows_readable = [], False
    for ordinal, ref_id, metadata, policy, n_hashes, n_keyframes, deleted in raw:
        live = deleted is None or deleted > g
        try:
            json.loads(metadata), json.loads(policy)
            readable = True
        except (TypeError, ValueError):
            readable = False
            if live:  # a tombstoned row is never parsed again: only compaction's to purge
                problems.append(f"reference {ref_id!r}: metadata or policy is not JSON")
        if live and readable:
            try:
                Policy.from_stored(json.loads(policy))
            except NanhuError as exc:  # its matches are routed to review, not acted on
                message = (f"reference {ref_id!r}: unusable policy ({exc}); set it again with "
                           f"`nanhu policy set` or `nanhu policy clear`")
                problems.append(message)
                unrepairable.append(message)
        rows[int(ordinal)] = Row(int(ordinal), str(ref_id), live, readable, int(n_hashes or 0),
                                 int(n_keyframes or 0))
    checked["references"] = sum(row.live for row in rows.values())
    known = set(rows)
    audio = [_audio_state(catalog.path, entry, known) for entry in manifest.get("audio_segments", [])]
    checked["audio_segments"] = len(audio)
    for state in audio:
        if state.status != "ok":
            problems.append(f"{state.file}: {state.error}")
        elif state.unknown:
            problems.append(f"{state.file}: postings of reference ordinals the metadata does not "
                            f"know: {state.unknown[:10]}")
    tag = manifest.get("video_params_tag") or ""
    dim = known_video_dims().get(tag)
    if tag and dim is None:
        message = f"manifest: video parameters {tag!r} are not known to this Nanhu"
        problems.append(message)
        unrepairable.append(message)
    video = []
    for entry in manifest.get("video_segments", []):
        state = _video_state(catalog.path, entry, dim, known)
        video.append(state)
        problems += _video_problems(state, dim, checked)
    checked["video_segments"] = len(video)
    compact, quantiser_readable, compact_problems = _compact_states(catalog.path, manifest,
                                                                    known, checked)
    problems += compact_problems
    peaks = [_peak_state(catalog.path, entry) for entry in manifest.get("audio_peaks", [])]
    checked["peak_segments"] = len(peaks)
    problems += [f"{state.file}: {state.error} (the peak check is off until `nanhu repair` "
                 "drops it; its references are then matched on votes alone)"
                 for state in peaks if state.status != "ok"]
    return Survey(g, rows, audio, video, dim, problems, unrepairable, checked, rows_readable,
                  compact, quantiser_readable, peaks)


def _opened(root: Path, entry: dict, open_segment) -> tuple[object, SegmentState | None]:
    """(segment, None) for the file ``entry`` names, or (None, its missing or damaged state)."""
    path = root / entry["file"]
    if not path.exists():
        return None, SegmentState(entry, "missing", "missing")
    try:
        return open_segment(path), None
    except (NanhuError, OSError) as exc:  # CatalogCorrupt, VersionMismatch
        return None, SegmentState(entry, "damaged", str(exc).replace(f"{path}: ", ""))


def _audio_state(root: Path, entry: dict, known: set[int]) -> SegmentState:
    segment, failed = _opened(root, entry, Segment)
    if failed is not None:
        return failed
    ordinals = np.asarray(segment.ordinals, np.int64)
    unknown = sorted({int(o) for o in ordinals} - known)
    return SegmentState(entry, "ok", ordinals=ordinals, unknown=unknown, segment=segment)


def _peak_state(root: Path, entry: dict) -> SegmentState:
    segment, failed = _opened(root, entry, PeakSegment)
    if failed is not None:
        return failed
    return SegmentState(entry, "ok", ordinals=np.asarray(segment.ordinals, np.int64))


def _video_state(root: Path, entry: dict, dim: int | None, known: set[int]) -> SegmentState:
    segment, failed = _opened(root, entry, vector_store.VectorSegment)
    if failed is not None:
        return failed
    ordinals = np.asarray(segment.ordinals, np.int64)
    unknown = sorted({int(o) for o in np.unique(ordinals)} - known)
    status = "wrong-dim" if dim is not None and segment.dim != dim else "ok"
    return SegmentState(entry, status, ordinals=ordinals, unknown=unknown,
                        usable=vector_store.sane_rows(segment.vectors, segment.times_s),
                        segment=segment)


def _video_problems(state: SegmentState, dim: int | None, checked: dict) -> list[str]:
    name = state.file
    if state.status in ("missing", "damaged"):
        return [f"{name}: {state.error}"]
    segment = state.segment
    out = []
    if state.status == "wrong-dim":
        out.append(f"{name}: vectors of dimension {segment.dim}, the catalog's are {dim} "
                   "(compaction drops them)")
    if len(segment) != state.entry.get("count", len(segment)):
        out.append(f"{name}: holds {len(segment)} vectors, the manifest says {state.entry['count']}")
    good = state.usable
    checked["keyframes"] += len(segment)
    checked["unusable_keyframes"] += int((~good).sum())
    if not good.all():
        refs = sorted({int(o) for o in np.unique(state.ordinals[~good])})
        out.append(f"{name}: {int((~good).sum())} unusable keyframe row(s) (non-unit vector or "
                   f"bad time) of reference ordinals {refs[:10]} (skipped when matching, "
                   "dropped by compaction)")
    if state.unknown:
        out.append(f"{name}: rows of reference ordinals the metadata does not know: "
                   f"{state.unknown[:10]}")
    return out


def _compact_states(root: Path, manifest: dict, known: set[int], checked: dict
                    ) -> tuple[list[SegmentState], bool, list[str]]:
    """Compact video segments (``engine.store.vectors_compact``): the quantiser readable, every
    segment readable and coded by it, its row count the manifest's, its ordinals known and its
    times plausible (:func:`engine.store.vectors.sane_times`). Returns (states, quantiser
    readable, problems)."""
    entries = manifest.get("video_compact", [])
    q_entry = manifest.get("video_quantiser")
    checked["video_compact_segments"] = len(entries)
    if not entries:
        return [], True, []
    if not q_entry:
        return ([SegmentState(e, "damaged", "no vector quantiser") for e in entries], False,
                ["manifest: compact video segments but no vector quantiser"])
    from nanhu.engine.store.vectors_compact import Quantiser
    from nanhu.engine.store.vectors_compact_segment import CompactSegment

    q_path = root / q_entry["file"]
    try:
        quantiser = Quantiser.read(q_path)
    except (NanhuError, OSError) as exc:
        reason = str(exc).replace(f"{q_path}: ", "")
        return ([SegmentState(e, "damaged", "its quantiser cannot be read") for e in entries],
                False, [f"{q_entry['file']}: {reason} ({len(entries)} compact video segment(s) "
                        "cannot be read without it)"])
    states, out = [], []
    for entry in entries:
        path = root / entry["file"]
        if not path.exists():
            states.append(SegmentState(entry, "missing", "missing"))
            out.append(f"{entry['file']}: missing")
            continue
        try:
            segment = CompactSegment(path, quantiser)
        except (NanhuError, OSError) as exc:
            states.append(SegmentState(entry, "damaged", str(exc).replace(f"{path}: ", "")))
            out.append(f"{entry['file']}: {states[-1].error}")
            continue
        ordinals = np.asarray(segment.ordinals, np.int64)
        unknown = sorted({int(o) for o in np.unique(ordinals)} - known)
        states.append(SegmentState(entry, "ok", ordinals=ordinals, unknown=unknown,
                                   segment=segment))
        if len(segment) != entry.get("count", len(segment)):
            out.append(f"{entry['file']}: holds {len(segment)} keyframes, the manifest says "
                       f"{entry['count']}")
        checked["keyframes"] += len(segment)
        bad = ~vector_store.sane_times(segment.times_s)
        if bad.any():
            checked["unusable_keyframes"] += int(bad.sum())
            out.append(f"{entry['file']}: {int(bad.sum())} keyframe row(s) with a bad time")
        if unknown:
            out.append(f"{entry['file']}: rows of reference ordinals the metadata does not "
                       f"know: {unknown[:10]}")
    return states, True, out


def check_catalog(path: str | Path) -> dict:
    """A report: ``{"catalog", "generation", "ok", "problems": [str], "checked": {...}}``.

    Raises NotFound / CatalogCorrupt / VersionMismatch only when the catalog cannot be opened at
    all (no manifest, unreadable manifest or metadata); everything else is reported.
    """
    with Catalog(path) as catalog:
        found = survey(catalog)
    return {"catalog": str(Path(path)), "generation": found.generation, "ok": not found.problems,
            "problems": found.problems, "checked": found.checked}
