"""The catalog's on-disk formats: the manifest's format version and the metadata schema.

- ``manifest.json`` carries :data:`FORMAT` and :data:`FORMAT_VERSION`; :func:`read_manifest`
  refuses other formats (older ones with a message that says how to rebuild).
- ``meta.sqlite`` has its own version (SQLite's ``user_version``, :data:`META_VERSION`):
  :data:`SCHEMA` is the DDL (idempotent, run by the writer on every open), :func:`migrate`
  brings an older catalog's metadata up to date in one SQLite transaction, and
  :func:`check_meta_version` refuses metadata of a newer Nanhu.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from pathlib import Path

from nanhu.engine.audio.params import AudioParams
from nanhu.engine.errors import CatalogCorrupt, NanhuError, VersionMismatch
from nanhu.engine.policy import migrate_stored

#: the catalog's one logger (these functions moved out of engine.catalog; its name stays)
log = logging.getLogger("nanhu.engine.catalog")

FORMAT = "nanhu-catalog"
FORMAT_VERSION = 2
#: format 3 is format 2 with compact (product-quantised) keyframe segments: a manifest naming
#: ``video_compact`` or ``video_quantiser`` is written as version 3, so that a Nanhu that
#: cannot read those segments refuses the catalog instead of silently matching without them;
#: a catalog without them stays version 2, readable by the Nanhu that made it
COMPACT_FORMAT_VERSION = 3
#: format 4 adds local-feature segments (``video_local``, the references' ORB keyframes that
#: verify video matches, engine.store.local_features), with or without compact keyframes: a
#: Nanhu that reads only 2 and 3 would match without them, and its next commit would write a
#: manifest without them (the references' local features lost), so it must refuse the catalog
LOCAL_FORMAT_VERSION = 4
#: format 5 adds reference-peak segments (``audio_peaks``, the references' spectral peaks that
#: verify audio alignments peak by peak, engine.store.audio_peaks): a Nanhu that reads only 2-4
#: would drop them at its next commit, so it must refuse the catalog
PEAKS_FORMAT_VERSION = 5
READABLE_VERSIONS = (FORMAT_VERSION, COMPACT_FORMAT_VERSION, LOCAL_FORMAT_VERSION,
                     PEAKS_FORMAT_VERSION)


def manifest_version(manifest: dict) -> int:
    """The format version a manifest is written with: the lowest that can hold what it names
    (:data:`LOCAL_FORMAT_VERSION` with local-feature segments, else
    :data:`COMPACT_FORMAT_VERSION` with compact keyframes, else :data:`FORMAT_VERSION`;
    :data:`PEAKS_FORMAT_VERSION` above them all with reference-peak segments)."""
    if manifest.get("audio_peaks"):
        return PEAKS_FORMAT_VERSION
    if manifest.get("video_local"):
        return LOCAL_FORMAT_VERSION
    compact = manifest.get("video_compact") or manifest.get("video_quantiser")
    return COMPACT_FORMAT_VERSION if compact else FORMAT_VERSION


def _fits(manifest: dict, version: int) -> bool:
    """True if ``version`` is the one :func:`manifest_version` gives, or one written between the
    local-feature segments and format 4 (2026-12-02: local segments in a version 2 or 3
    manifest, read as they are; their next commit writes version 4)."""
    if version == manifest_version(manifest):
        return True
    return bool(manifest.get("video_local")) and version == manifest_version(
        {k: v for k, v in manifest.items() if k != "video_local"})


#: what each older catalog format lacks, for the rebuild message
OLD_FORMATS = {1: "audio-v2 pair keys and version-1 postings segments"}
#: metadata schema version (``PRAGMA user_version``): 0 = label policies, no owner defaults;
#: 2 = policies with actions and conditions, owners' default policies; 3 = reference conflicts
#: and owner changes (an older Nanhu would screen works that are held)
META_VERSION = 3
SCHEMA = """
CREATE TABLE IF NOT EXISTS refs (
    ordinal INTEGER PRIMARY KEY AUTOINCREMENT,
    ref_id TEXT NOT NULL,
    title TEXT NOT NULL DEFAULT '',
    owner TEXT NOT NULL DEFAULT '',
    duration_s REAL NOT NULL,
    digest TEXT NOT NULL,
    metadata TEXT NOT NULL DEFAULT '{}',
    policy TEXT NOT NULL DEFAULT '{}',
    n_hashes INTEGER NOT NULL DEFAULT 0,
    n_keyframes INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    generation INTEGER NOT NULL,
    deleted_generation INTEGER
);
CREATE UNIQUE INDEX IF NOT EXISTS refs_live_id ON refs(ref_id) WHERE deleted_generation IS NULL;
CREATE INDEX IF NOT EXISTS refs_digest ON refs(digest);
CREATE INDEX IF NOT EXISTS refs_owner ON refs(owner);
CREATE TABLE IF NOT EXISTS policy_log (
    ordinal INTEGER NOT NULL,
    generation INTEGER NOT NULL,
    old_policy TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS owner_policies (
    owner TEXT NOT NULL,
    policy TEXT NOT NULL,
    generation INTEGER NOT NULL,
    replaced_generation INTEGER
);
CREATE UNIQUE INDEX IF NOT EXISTS owner_policies_live ON owner_policies(owner)
    WHERE replaced_generation IS NULL;
CREATE TABLE IF NOT EXISTS owner_log (
    ordinal INTEGER NOT NULL,
    generation INTEGER NOT NULL,
    old_owner TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS conflicts (
    conflict_id INTEGER PRIMARY KEY AUTOINCREMENT,
    ordinal INTEGER NOT NULL,
    other_ordinal INTEGER NOT NULL,
    ranges TEXT NOT NULL,
    created_at REAL NOT NULL,
    generation INTEGER NOT NULL,
    resolved_generation INTEGER,
    resolved_by TEXT NOT NULL DEFAULT '',
    note TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS conflicts_ordinal ON conflicts(ordinal);
CREATE INDEX IF NOT EXISTS conflicts_other ON conflicts(other_ordinal);
"""


def read_manifest(path: Path) -> tuple[dict, AudioParams]:
    """A catalog's ``manifest.json`` and the audio parameters it names; CatalogCorrupt for
    what is not a manifest of this format, VersionMismatch for an older format or unknown
    parameters."""
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise CatalogCorrupt(f"{path}: unreadable manifest ({exc})") from exc
    if manifest.get("format") != FORMAT:
        raise CatalogCorrupt(f"{path}: not a Nanhu catalog manifest")
    if manifest.get("version") in OLD_FORMATS:
        raise VersionMismatch(
            f"{path}: catalog format version {manifest['version']} "
            f"({OLD_FORMATS[manifest['version']]}) is not supported by this Nanhu "
            f"(format {FORMAT_VERSION}, fingerprints {AudioParams().tag()}). Rebuild it: "
            "register the works again into a new catalog, e.g. `nanhu ingest MANIFEST "
            "--catalog NEW_DIR` with the manifest used to build it"
        )
    version = manifest.get("version")
    if isinstance(version, int) and version > max(READABLE_VERSIONS):
        raise VersionMismatch(
            f"{path}: catalog format version {version} was written by a newer Nanhu (this one "
            f"reads versions {', '.join(map(str, READABLE_VERSIONS))}); open it with that "
            "version or a later one")
    if version not in READABLE_VERSIONS:
        raise CatalogCorrupt(
            f"{path}: catalog format version {version} is not supported "
            f"(this Nanhu reads versions {', '.join(map(str, READABLE_VERSIONS))})"
        )
    if not _fits(manifest, version):
        raise CatalogCorrupt(
            f"{path}: format version {version} does not fit its contents (compact keyframe "
            "segments need version 3, local-feature segments version 4 and reference-peak "
            "segments version 5, and only they)")
    return manifest, audio_params_from_dict(manifest.get("audio_params"), path)


def audio_params_from_dict(data: dict | None, where: Path | str) -> AudioParams:
    """:class:`AudioParams` from their stored JSON form (lists back to tuples);
    VersionMismatch, naming ``where``, for parameters this Nanhu does not know."""
    try:
        return AudioParams(**{
            k: tuple(tuple(x) if isinstance(x, list) else x for x in v)
            if isinstance(v, list) else v
            for k, v in data.items()
        })
    except (TypeError, AttributeError) as exc:  # unknown fields, or none stored
        raise VersionMismatch(
            f"{where}: catalog was made with audio parameters this Nanhu does not know "
            f"({exc}); re-register its works with this version"
        ) from exc


def check_meta_version(db: sqlite3.Connection, path: Path) -> None:
    """Refuse metadata (``path``: the catalog directory) written by a newer Nanhu."""
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version > META_VERSION:
        raise VersionMismatch(
            f"{path / 'meta.sqlite'}: metadata schema version {version} was written by a "
            f"newer Nanhu (this one reads up to version {META_VERSION}); upgrade Nanhu"
        )


def migrate(db: sqlite3.Connection, path: Path) -> None:
    """Bring metadata of an older schema version to :data:`META_VERSION` in one transaction
    (the tables themselves come from :data:`SCHEMA`, which recovery runs): label
    policies become action policies (:func:`engine.policy.migrate_stored`). Readers read both
    forms alike, so readers open during the migration see no change of meaning."""
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version >= META_VERSION:
        return
    with db:
        db.execute("BEGIN IMMEDIATE")
        changed = 0
        for ordinal, ref_id, text in db.execute(
                "SELECT ordinal, ref_id, policy FROM refs").fetchall():
            try:
                new = migrate_stored(json.loads(text))
            except (ValueError, NanhuError) as exc:
                log.warning("%s: reference %r: policy %s cannot be read (%s); cleared",
                            path, ref_id, text[:200], exc)
                new = {}
            if new is None:
                continue
            if new.get("legacy_label"):
                log.warning("%s: reference %r: policy label %r is not an action; migrated as "
                            "action %r (the label is kept as legacy_label)", path, ref_id,
                            new["legacy_label"], new["action"])
            db.execute("UPDATE refs SET policy = ? WHERE ordinal = ?", (json.dumps(new), ordinal))
            changed += 1
        db.execute(f"PRAGMA user_version = {META_VERSION}")
    log.info("%s: metadata migrated from schema version %d to %d (%d policies rewritten)",
             path, version, META_VERSION, changed)


def segment_files(manifest: dict) -> list[str]:
    """Every file the manifest names: segments, the graphs of large vector segments, compact
    vector segments and their quantiser, local-feature segments, reference-peak segments."""
    files = [s["file"] for s in manifest["audio_segments"] + manifest["video_segments"]]
    files += [s["graph"] for s in manifest["video_segments"] if s.get("graph")]
    files += [s["file"] for s in manifest.get("video_compact", [])]
    files += [s["file"] for s in manifest.get("video_local", [])]
    files += [s["file"] for s in manifest.get("audio_peaks", [])]
    if manifest.get("video_quantiser"):
        files.append(manifest["video_quantiser"]["file"])
    return files
