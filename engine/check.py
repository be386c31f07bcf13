"""``nanhu check``: verify a catalog without changing it.

Opens the catalog read-only (no writer lock, so it is safe next to a running server and safe to
interrupt) and reports what would break screening or compaction: segment files the manifest
names that are missing, truncated or of another format; vector segments of another dimension
than the catalog's video parameters; keyframe rows that are not unit vectors or have impossible
times; rows of references the metadata does not know; reference rows and policies that do
not parse.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np

from engine import vectors as vector_store
from engine.catalog import Catalog
from engine.errors import CatalogCorrupt, NanhuError
from engine.policy import Policy
from engine.validate import known_video_dims


def check_catalog(path: str | Path) -> dict:
    """A report: ``{"catalog", "generation", "ok", "problems": [str], "checked": {...}}``.

    Raises NotFound / CatalogCorrupt / VersionMismatch only when the catalog cannot be opened at
    all (no manifest, unreadable manifest or metadata); everything else is reported.
    """
    problems: list[str] = []
    checked = {"references": 0, "audio_segments": 0, "video_segments": 0, "keyframes": 0,
               "unusable_keyframes": 0}
    with Catalog(path) as catalog:
        manifest = catalog.manifest
        known: set[int] = set()
        try:
            rows = catalog._db.execute("SELECT ordinal, ref_id, metadata, policy FROM refs "
                                       "WHERE generation <= ?", (catalog.generation,)).fetchall()
        except sqlite3.Error as exc:
            problems.append(f"meta.sqlite: cannot read references ({exc})")
            rows = []
        for ordinal, ref_id, metadata, policy in rows:
            known.add(int(ordinal))
            try:
                json.loads(metadata), json.loads(policy)
            except ValueError:
                problems.append(f"reference {ref_id!r}: metadata or policy is not JSON")
                continue
            try:
                Policy.from_stored(json.loads(policy))
            except NanhuError as exc:  # matching would fail on this work's every match
                problems.append(f"reference {ref_id!r}: unusable policy ({exc})")
        checked["references"] = len(rows)
        for entry in manifest.get("audio_segments", []):
            file = catalog.path / entry["file"]
            checked["audio_segments"] += 1
            if not file.exists():
                problems.append(f"{entry['file']}: missing")
        try:
            catalog.postings()
        except (CatalogCorrupt, OSError) as exc:
            problems.append(f"audio postings: {exc}")
        tag = manifest.get("video_params_tag") or ""
        dim = known_video_dims().get(tag)
        if tag and dim is None:
            problems.append(f"manifest: video parameters {tag!r} are not known to this Nanhu")
        for entry in manifest.get("video_segments", []):
            checked["video_segments"] += 1
            problems += _check_vector_segment(catalog.path, entry, dim, known, checked)
    return {"catalog": str(Path(path)), "generation": int(manifest["generation"]),
            "ok": not problems, "problems": problems, "checked": checked}


def _check_vector_segment(root: Path, entry: dict, dim: int | None, known: set[int],
                          checked: dict) -> list[str]:
    name = entry["file"]
    try:
        segment = vector_store.VectorSegment(root / name)
    except NanhuError as exc:
        return [str(exc)]
    out = []
    if segment.dim != dim and dim is not None:
        out.append(f"{name}: vectors of dimension {segment.dim}, the catalog's are {dim} "
                   "(compaction drops them)")
    if len(segment) != entry.get("count", len(segment)):
        out.append(f"{name}: holds {len(segment)} vectors, the manifest says {entry['count']}")
    good = vector_store.sane_rows(segment.vectors, segment.times_s)
    checked["keyframes"] += len(segment)
    checked["unusable_keyframes"] += int((~good).sum())
    if not good.all():
        refs = sorted({int(o) for o in np.unique(segment.ordinals[~good])})
        out.append(f"{name}: {int((~good).sum())} unusable keyframe row(s) (non-unit vector or "
                   f"bad time) of reference ordinals {refs[:10]} (skipped when matching, "
                   "dropped by compaction)")
    unknown = sorted({int(o) for o in np.unique(segment.ordinals)} - known)
    if unknown:
        out.append(f"{name}: rows of reference ordinals the metadata does not know: {unknown[:10]}")
    return out
