"""The embedded catalog: one directory, one writer, readers never blocked.

Layout (format version 1)::

    DIR/manifest.json        {"format": "nanhu-catalog", "version": 1, "generation": g, ...}
    DIR/meta.sqlite          references (SQLite, WAL mode); each row carries the generation
                             that committed it and the generation that deleted it (tombstone);
                             owners' default policies and reference conflicts, versioned the
                             same way
    DIR/claims.sqlite        claims and webhooks (engine.claims; not versioned by generations)
    DIR/audio/seg-*.pst      immutable postings segments (engine.store.postings)
    DIR/video/seg-*.vec      immutable keyframe-vector segments (engine.vectors)
    DIR/video/seg-*.hnsw     HNSW graph of a large vector segment (FAISS format, derived data)
    DIR/writer.lock          flock()ed by the single writer

Commit protocol: new segment files are written under temporary names, fsynced and renamed;
the metadata rows are committed to SQLite tagged with generation ``g + 1``; then
``manifest.json`` is replaced atomically (write temp, fsync, rename, fsync the directory).
Readers see exactly the rows and segments of the manifest's generation, so a crash at any
point leaves the last committed catalog readable and complete; the next writer rolls back
rows of uncommitted generations and removes files no manifest names.

The metadata schema has its own version (SQLite's ``user_version``, :data:`META_VERSION`): a
writer brings an older catalog's metadata up to date in one SQLite transaction when it opens it
(:func:`_migrate`), readers read either; metadata of a newer Nanhu is refused.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import shutil
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine import vectors as vector_store
from engine.audio.keys import KEY_BITS
from engine.audio.params import AudioParams
from engine.errors import (
    AlreadyExists,
    CatalogCorrupt,
    CatalogLocked,
    InvalidArgument,
    NanhuError,
    NotFound,
    VersionMismatch,
)
from engine.fingerprint import Fingerprint
from engine.policy import Policy, merge_ranges, migrate_stored
from engine.store.postings import (
    MAX_SEGMENT_FRAMES,
    Segment,
    SegmentPostings,
    merge_segments,
    write_segment,
)
from engine.validate import validate_fingerprint
from engine.vectors import FaissVectorIndex, VectorSegment, write_vector_segment

log = logging.getLogger(__name__)

FORMAT = "nanhu-catalog"
FORMAT_VERSION = 2
#: what each older catalog format lacks, for the rebuild message
_OLD_FORMATS = {1: "audio-v2 pair keys and version-1 postings segments"}
#: a size tier holding this many audio segments is merged into one (tiered, log-structured:
#: a posting is rewritten about log_8(catalog / batch) times over its life)
TIER_FANOUT = 8
#: metadata schema version (``PRAGMA user_version``): 0 = label policies, no owner defaults;
#: 2 = policies with actions and conditions, owners' default policies; 3 = reference conflicts
#: and owner changes (an older Nanhu would screen works that are held)
META_VERSION = 3
_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@+\-]{0,199}$")


def is_valid_reference_id(ref_id: str) -> bool:
    """1-200 letters, digits and ``._:@+-``, starting with a letter or digit."""
    return bool(_ID_PATTERN.match(ref_id or ""))
_SCHEMA = """
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


_COLUMNS = (
    "ordinal, ref_id, title, owner, duration_s, digest, metadata, policy, n_hashes, "
    "n_keyframes, created_at"
)


def _row_to_reference(row: tuple) -> Reference:
    return Reference(
        ordinal=row[0], ref_id=row[1], title=row[2], owner=row[3], duration_s=row[4],
        digest=row[5], metadata=json.loads(row[6]), policy=json.loads(row[7]), n_hashes=row[8],
        n_keyframes=row[9], created_at=row[10],
    )


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Catalog:
    """A catalog directory, opened for reading (default) or as the single writer.

    Readers take no lock. ``Catalog(path, writable=True)`` takes the writer lock (or raises
    :class:`CatalogLocked`), creates the catalog if ``create`` and it does not exist, and
    recovers from an interrupted commit. Mutations (:meth:`add`, :meth:`delete`,
    :meth:`set_policy`, :meth:`set_owner_policy`, :meth:`set_owner`,
    :meth:`resolve_conflict`) are staged until :meth:`commit`.
    """

    def __init__(
        self, path: str | Path, *, writable: bool = False, create: bool = False,
        audio_params: AudioParams | None = None,
    ) -> None:
        self.path = Path(path)
        self.writable = writable
        self._lock_handle = None
        manifest_path = self.path / "manifest.json"
        if not manifest_path.exists():
            if not (writable and create):
                raise NotFound(f"{self.path}: no catalog here (register something to create one)")
            self._create(audio_params or AudioParams())
        if writable:
            self._acquire_lock()
        try:
            self._load_manifest()
            self._db = sqlite3.connect(self.path / "meta.sqlite", check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._check_meta_version()
            if writable:
                self._recover()
                _migrate(self._db, self.path)
        except sqlite3.DatabaseError as exc:
            self._release_lock()
            raise CatalogCorrupt(f"{self.path / 'meta.sqlite'}: unreadable metadata ({exc})") from exc
        except BaseException:
            self._release_lock()
            raise
        self._staged_refs: list[dict] = []
        self._staged_deletes: list[int] = []
        self._staged_policies: dict[int, dict] = {}
        self._staged_owner_policies: dict[str, Policy | None] = {}
        self._staged_owners: dict[int, str] = {}
        self._staged_resolutions: dict[int, tuple[str, str]] = {}
        self._owner_policies: tuple[int, dict[str, Policy]] | None = None
        self._held: tuple[int, dict[int, tuple[tuple[float, float], ...]]] | None = None
        self._postings: SegmentPostings | None = None
        self._vectors: FaissVectorIndex | None = None

    # --- lifecycle -----------------------------------------------------------------------
    def _create(self, audio_params: AudioParams) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        (self.path / "audio").mkdir(exist_ok=True)
        (self.path / "video").mkdir(exist_ok=True)
        self._acquire_lock()
        try:
            if (self.path / "manifest.json").exists():  # another writer created it meanwhile
                return
            db = sqlite3.connect(self.path / "meta.sqlite")
            db.executescript(_SCHEMA)
            db.execute(f"PRAGMA user_version = {META_VERSION}")
            db.commit()
            db.close()
            self._write_manifest({
                "format": FORMAT, "version": FORMAT_VERSION, "generation": 0,
                "audio_params": audio_params.to_dict(), "audio_params_tag": audio_params.tag(),
                "video_params_tag": "", "audio_segments": [], "video_segments": [],
                "created_at": time.time(), "committed_at": time.time(),
            })
        finally:
            self._release_lock()

    def _acquire_lock(self) -> None:
        if self._lock_handle is not None:
            return
        handle = open(self.path / "writer.lock", "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise CatalogLocked(
                f"{self.path}: another process is writing to this catalog (writer.lock is held)"
            ) from None
        self._lock_handle = handle

    def _release_lock(self) -> None:
        if self._lock_handle is not None:
            fcntl.flock(self._lock_handle, fcntl.LOCK_UN)
            self._lock_handle.close()
            self._lock_handle = None

    def close(self) -> None:
        if getattr(self, "_db", None) is not None:
            self._db.close()
            self._db = None
        self._release_lock()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _load_manifest(self) -> None:
        path = self.path / "manifest.json"
        try:
            manifest = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise CatalogCorrupt(f"{path}: unreadable manifest ({exc})") from exc
        if manifest.get("format") != FORMAT:
            raise CatalogCorrupt(f"{path}: not a Nanhu catalog manifest")
        if manifest.get("version") in _OLD_FORMATS:
            raise VersionMismatch(
                f"{path}: catalog format version {manifest['version']} "
                f"({_OLD_FORMATS[manifest['version']]}) is not supported by this Nanhu "
                f"(format {FORMAT_VERSION}, fingerprints {AudioParams().tag()}). Rebuild it: "
                "register the works again into a new catalog, e.g. `nanhu ingest MANIFEST "
                "--catalog NEW_DIR` with the manifest used to build it"
            )
        if manifest.get("version") != FORMAT_VERSION:
            raise CatalogCorrupt(
                f"{path}: catalog format version {manifest.get('version')} is not supported "
                f"(this Nanhu reads version {FORMAT_VERSION})"
            )
        try:
            self.audio_params = AudioParams(**{
                k: tuple(tuple(x) if isinstance(x, list) else x for x in v)
                if isinstance(v, list) else v
                for k, v in manifest["audio_params"].items()
            })
        except (TypeError, KeyError) as exc:
            raise VersionMismatch(
                f"{path}: catalog was made with audio parameters this Nanhu does not know "
                f"({exc}); re-register its works with this version"
            ) from exc
        self.manifest = manifest

    def _check_meta_version(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > META_VERSION:
            raise VersionMismatch(
                f"{self.path / 'meta.sqlite'}: metadata schema version {version} was written by a "
                f"newer Nanhu (this one reads up to version {META_VERSION}); upgrade Nanhu"
            )

    @property
    def generation(self) -> int:
        return int(self.manifest["generation"])

    def refresh(self) -> bool:
        """Re-read the manifest if another process committed; returns True when it changed."""
        try:
            on_disk = json.loads((self.path / "manifest.json").read_text())["generation"]
        except (OSError, ValueError, KeyError):
            return False
        if on_disk == self.generation:
            return False
        self._load_manifest()
        self._postings = None
        self._vectors = None
        return True

    def _recover(self) -> None:
        """Roll back what an interrupted commit left: rows and files of later generations."""
        g = self.generation
        with self._db:
            self._db.executescript(_SCHEMA)
            dropped = self._db.execute("DELETE FROM refs WHERE generation > ?", (g,)).rowcount
            undeleted = self._db.execute(
                "UPDATE refs SET deleted_generation = NULL WHERE deleted_generation > ?", (g,)
            ).rowcount
            for ordinal, old in self._db.execute(
                "SELECT ordinal, old_policy FROM policy_log WHERE generation > ? "
                "ORDER BY generation DESC, rowid DESC", (g,)
            ).fetchall():
                self._db.execute("UPDATE refs SET policy = ? WHERE ordinal = ?", (old, ordinal))
            self._db.execute("DELETE FROM policy_log WHERE generation > ?", (g,))
            owner_rows = self._db.execute(
                "DELETE FROM owner_policies WHERE generation > ?", (g,)).rowcount
            owner_rows += self._db.execute(
                "UPDATE owner_policies SET replaced_generation = NULL WHERE replaced_generation > ?",
                (g,)).rowcount
            for ordinal, old in self._db.execute(
                "SELECT ordinal, old_owner FROM owner_log WHERE generation > ? "
                "ORDER BY generation DESC, rowid DESC", (g,)
            ).fetchall():
                self._db.execute("UPDATE refs SET owner = ? WHERE ordinal = ?", (old, ordinal))
            self._db.execute("DELETE FROM owner_log WHERE generation > ?", (g,))
            self._db.execute("DELETE FROM conflicts WHERE generation > ?", (g,))
            self._db.execute("UPDATE conflicts SET resolved_generation = NULL, resolved_by = '', "
                             "note = '' WHERE resolved_generation > ?", (g,))
        named = set(_segment_files(self.manifest))
        orphans = 0
        for folder in ("audio", "video"):
            (self.path / folder).mkdir(exist_ok=True)
            for file in (self.path / folder).iterdir():
                if f"{folder}/{file.name}" not in named:
                    # a merge's scratch folder, or a file of an uncommitted generation
                    shutil.rmtree(file) if file.is_dir() else file.unlink()
                    orphans += 1
        for tmp in self.path.glob("*.tmp"):
            # a half-written manifest, or a registration batch's scratch catalog
            shutil.rmtree(tmp) if tmp.is_dir() else tmp.unlink()
        if dropped or undeleted or orphans or owner_rows:
            log.warning(
                "%s: rolled back an interrupted commit (%d rows, %d tombstones, %d files, "
                "%d owner policy rows)", self.path, dropped, undeleted, orphans, owner_rows,
            )

    # --- reading -------------------------------------------------------------------------
    _VISIBLE = "generation <= ? AND (deleted_generation IS NULL OR deleted_generation > ?)"

    def _query(self, sql: str, args: tuple = ()) -> list[tuple]:
        g = self.generation
        return self._db.execute(sql.replace("{visible}", self._VISIBLE), (g, g, *args)).fetchall()

    def get(self, ref_id: str) -> Reference:
        rows = self._query(f"SELECT {_COLUMNS} FROM refs WHERE {{visible}} AND ref_id = ?", (ref_id,))
        if not rows:
            raise NotFound(f"no reference with id {ref_id!r} in {self.path}")
        return _row_to_reference(rows[0])

    def by_ordinals(self, ordinals: np.ndarray) -> dict[int, Reference]:
        wanted = sorted({int(o) for o in np.asarray(ordinals).tolist()})
        out: dict[int, Reference] = {}
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for row in self._query(
                f"SELECT {_COLUMNS} FROM refs WHERE {{visible}} AND ordinal IN ({marks})", tuple(chunk)
            ):
                out[row[0]] = _row_to_reference(row)
        return out

    def list(self, *, owner: str | None = None, limit: int = 1000, offset: int = 0,
             after_id: str | None = None) -> list[Reference]:
        sql = f"SELECT {_COLUMNS} FROM refs WHERE {{visible}}"
        args: list = []
        if owner is not None:
            sql += " AND owner = ?"
            args.append(owner)
        if after_id is not None:
            sql += " AND ref_id > ?"
            args.append(after_id)
        sql += " ORDER BY ref_id LIMIT ? OFFSET ?"
        args += [limit, offset]
        return [_row_to_reference(row) for row in self._query(sql, tuple(args))]

    def find_digest(self, digest: str) -> Reference | None:
        rows = self._query(f"SELECT {_COLUMNS} FROM refs WHERE {{visible}} AND digest = ?", (digest,))
        return _row_to_reference(rows[0]) if rows else None

    def owner_policies(self) -> dict[str, Policy]:
        """Every owner's default policy at this generation (cached per generation)."""
        if self._owner_policies is not None and self._owner_policies[0] == self.generation:
            return self._owner_policies[1]
        g = self.generation
        try:
            rows = self._db.execute(
                "SELECT owner, policy FROM owner_policies WHERE generation <= ? AND "
                "(replaced_generation IS NULL OR replaced_generation > ?)", (g, g)).fetchall()
        except sqlite3.OperationalError as exc:
            if "no such table" not in str(exc):
                raise
            rows = []  # metadata of version 0 (no writer has opened it since): no defaults
        policies = {}
        for owner, text in rows:
            policy = Policy.from_stored(json.loads(text))
            if policy is not None:
                policies[owner] = policy
        self._owner_policies = (g, policies)
        return policies

    def owner_policy(self, owner: str) -> Policy | None:
        """An owner's default policy for works without their own, or None."""
        return self.owner_policies().get(owner) if owner else None

    def conflicts(self, *, ordinals: Iterable[int] | None = None,
                  include_resolved: bool = False) -> list[Conflict]:
        """Stored overlaps of works visible at this generation (both works alive), oldest
        first; ``ordinals``: only those involving these works (either side)."""
        g = self.generation
        sql = ("SELECT conflict_id, ordinal, other_ordinal, ranges, created_at, resolved_generation, "
               "resolved_by, note FROM conflicts WHERE generation <= ?")
        args: list = [g]
        if ordinals is not None:
            wanted = sorted({int(o) for o in ordinals})
            if not wanted:
                return []
            marks = ",".join("?" * len(wanted))
            sql += f" AND (ordinal IN ({marks}) OR other_ordinal IN ({marks}))"
            args += wanted + wanted
        try:
            rows = self._db.execute(sql + " ORDER BY conflict_id", args).fetchall()
        except sqlite3.OperationalError as exc:
            if "no such table" not in str(exc):
                raise
            return []  # metadata older than conflicts, not opened by a writer since
        refs = self.by_ordinals(np.array([o for r in rows for o in r[1:3]], np.int64))
        out = []
        for conflict_id, ordinal, other, ranges, created_at, resolved_g, by, note in rows:
            if ordinal not in refs or other not in refs:
                continue  # one of them was deleted: nothing left to hold
            resolved = resolved_g is not None and resolved_g <= g
            if resolved and not include_resolved:
                continue
            out.append(Conflict(conflict_id, refs[ordinal], refs[other], tuple(json.loads(ranges)),
                                created_at, resolved, by if resolved else "",
                                note if resolved else ""))
        return out

    def held_ranges(self) -> dict[int, tuple[tuple[float, float], ...]]:
        """Ordinal -> the stretches of that work (seconds) held out of screening by reference
        conflicts with other owners' works (cached per generation)."""
        if self._held is not None and self._held[0] == self.generation:
            return self._held[1]
        held: dict[int, list[tuple[float, float]]] = {}
        for conflict in self.conflicts():
            if conflict.held:
                held.setdefault(conflict.reference.ordinal, []).extend(
                    (r["start_s"], r["end_s"]) for r in conflict.ranges)
        merged = {o: merge_ranges(r) for o, r in held.items()}
        self._held = (self.generation, merged)
        return merged

    def deleted_ordinals(self) -> np.ndarray:
        """Ordinals tombstoned at this generation whose postings are not yet compacted away."""
        g = self.generation
        rows = self._db.execute(
            "SELECT ordinal FROM refs WHERE deleted_generation IS NOT NULL "
            "AND deleted_generation <= ?", (g,)
        ).fetchall()
        return np.array(sorted(r[0] for r in rows), np.uint32)

    def stats(self) -> dict:
        row = self._query(
            "SELECT COUNT(*), COALESCE(SUM(duration_s), 0), COALESCE(SUM(n_hashes), 0), "
            "COALESCE(SUM(n_keyframes), 0), COALESCE(SUM(n_hashes > 0), 0), "
            "COALESCE(SUM(n_keyframes > 0), 0), COALESCE(SUM(owner = ''), 0) FROM refs "
            "WHERE {visible}"
        )[0]
        files = [self.path / f for f in _segment_files(self.manifest)]
        audio_bytes = sum(s["bytes"] for s in self.manifest["audio_segments"])
        video_bytes = sum(s["bytes"] + s.get("graph_bytes", 0)
                          for s in self.manifest["video_segments"])
        hours = row[1] / 3600.0
        return {
            "catalog": str(self.path), "format_version": FORMAT_VERSION,
            "generation": self.generation, "references": row[0],
            "audio_references": row[4], "video_references": row[5],
            "unowned_references": row[6],
            "held_conflicts": sum(c.held for c in self.conflicts()),
            "hours": round(hours, 4), "audio_hashes": row[2], "keyframes": row[3],
            "audio_segments": len(self.manifest["audio_segments"]),
            "video_segments": len(self.manifest["video_segments"]),
            "tombstones": int(self.deleted_ordinals().size),
            "audio_index_bytes": audio_bytes, "video_index_bytes": video_bytes,
            "index_bytes_per_hour": round((audio_bytes + video_bytes) / hours) if hours else 0,
            "files_present": all(f.exists() for f in files),
            "audio_params": self.manifest["audio_params_tag"],
            "video_params": self.manifest["video_params_tag"],
        }

    def postings(self) -> SegmentPostings:
        if self._postings is None:
            self._postings = SegmentPostings(
                [self.path / s["file"] for s in self.manifest["audio_segments"]]
            )
        return self._postings

    def vectors(self) -> FaissVectorIndex:
        if self._vectors is None:
            entries = self.manifest["video_segments"]
            self._vectors = FaissVectorIndex(
                [VectorSegment(self.path / s["file"]) for s in entries],
                graphs=[self.path / s["graph"] if s.get("graph") else None for s in entries],
            )
        return self._vectors

    @property
    def total_audio_frames(self) -> int:
        row = self._query("SELECT COALESCE(SUM(duration_s), 0) FROM refs WHERE {visible} "
                          "AND n_hashes > 0")[0]
        return int(row[0] * self.audio_params.frames_per_second)

    # --- writing -------------------------------------------------------------------------
    def _require_writer(self) -> None:
        if not self.writable:
            raise InvalidArgument(f"{self.path}: catalog is open read-only")

    def check_fingerprint(self, fp: Fingerprint, *, what: str = "fingerprint") -> None:
        """Refuse fingerprints made with other parameters than this catalog's."""
        if fp.audio is not None and fp.audio_params_tag != self.manifest["audio_params_tag"]:
            raise VersionMismatch(
                f"{what} has audio parameters {fp.audio_params_tag!r}; catalog {self.path} "
                f"uses {self.manifest['audio_params_tag']!r} (re-fingerprint with this Nanhu)"
            )
        video_tag = self.manifest.get("video_params_tag") or ""
        if fp.video is not None and video_tag and fp.video.params_tag != video_tag:
            raise VersionMismatch(
                f"{what} has video parameters {fp.video.params_tag!r}; catalog {self.path} "
                f"uses {video_tag!r} (re-fingerprint with this Nanhu)"
            )

    def add(
        self, ref_id: str, fp: Fingerprint, *, title: str = "", owner: str = "",
        metadata: dict | None = None, policy: dict | None = None,
        overlaps: Iterable[Overlap] = (),
    ) -> None:
        """Stage a reference; raises AlreadyExists for a taken id or already-registered bytes.

        ``overlaps`` (:func:`engine.conflicts.find_overlaps`) are committed with it as
        conflicts: stretches overlapping another owner's work are held out of screening."""
        self._require_writer()
        if not is_valid_reference_id(ref_id):
            raise InvalidArgument(
                f"invalid reference id {ref_id!r}: use 1-200 letters, digits and ._:@+- "
                "starting with a letter or digit"
            )
        fp = validate_fingerprint(fp, what=f"fingerprint of {ref_id!r}", for_reference=True,
                                  audio_params=self.audio_params)
        self.check_fingerprint(fp, what=f"fingerprint of {ref_id!r}")
        if fp.audio is not None and (np.any(fp.audio.speeds != 1.0) or np.any(fp.audio.pitches != 1.0)):
            raise InvalidArgument(f"{ref_id!r}: a reference must be fingerprinted at speed 1.0")
        if fp.is_empty:
            raise InvalidArgument(f"{ref_id!r}: fingerprint holds nothing to register")
        staged_ids = {r["ref_id"] for r in self._staged_refs}
        if ref_id in staged_ids or self._query(
            "SELECT 1 FROM refs WHERE {visible} AND ref_id = ?", (ref_id,)
        ):
            raise AlreadyExists(f"reference id {ref_id!r} already exists", existing_id=ref_id)
        if fp.digest:
            twin = self.find_digest(fp.digest)
            staged_twin = next((r for r in self._staged_refs if r["digest"] == fp.digest), None)
            existing = twin.ref_id if twin else staged_twin["ref_id"] if staged_twin else None
            if existing is not None:
                raise AlreadyExists(
                    f"same content is already registered as {existing!r}", existing_id=existing
                )
        self._staged_refs.append({
            "ref_id": ref_id, "title": title, "owner": owner, "fp": fp,
            "digest": fp.digest, "metadata": metadata or {}, "policy": _policy_dict(policy),
            "overlaps": list(overlaps),
        })

    def delete(self, ref_id: str) -> Reference:
        """Stage a tombstone for ``ref_id``."""
        self._require_writer()
        reference = self.get(ref_id)
        if reference.ordinal not in self._staged_deletes:
            self._staged_deletes.append(reference.ordinal)
        return reference

    def set_policy(self, ref_id: str, policy: Policy | dict | None) -> Reference:
        """Stage a new policy for ``ref_id``, replacing its own (``None`` or ``{}`` clears it,
        so that its owner's default applies again). A dict is validated as
        :meth:`Policy.from_dict` does: InvalidArgument for an action outside the fixed set."""
        self._require_writer()
        stored = _policy_dict(policy)
        reference = self.get(ref_id)
        self._staged_policies[reference.ordinal] = stored
        return reference

    def set_owner_policy(self, owner: str, policy: Policy | dict | None) -> None:
        """Stage ``owner``'s default policy (``None`` or ``{}`` clears it)."""
        self._require_writer()
        if not owner:
            raise InvalidArgument("an owner's default policy needs the owner (tenant) it is for")
        stored = _policy_dict(policy)
        self._staged_owner_policies[owner] = Policy.from_stored(stored)

    def set_owner(self, ref_id: str, owner: str) -> Reference:
        """Stage a new owner for ``ref_id`` (assign an unowned work, or transfer one)."""
        self._require_writer()
        owner = str(owner or "").strip()
        if not owner:
            raise InvalidArgument("give the owner (tenant) the work is assigned to")
        if not owner.replace("-", "").replace("_", "").replace(".", "").isalnum():
            raise InvalidArgument(f"owner {owner!r}: use letters, digits and -_.")
        reference = self.get(ref_id)
        self._staged_owners[reference.ordinal] = owner
        return reference

    def resolve_conflict(self, conflict_id: int, *, by: str = "", note: str = "") -> Conflict:
        """Stage the resolution of a conflict: its held stretches match again."""
        self._require_writer()
        found = [c for c in self.conflicts() if c.conflict_id == int(conflict_id)]
        if not found:
            raise NotFound(f"no open reference conflict with id {conflict_id} in {self.path}")
        if len(note) > 2000:
            raise InvalidArgument(f"note is {len(note)} characters long; at most 2000")
        self._staged_resolutions[found[0].conflict_id] = (by, note)
        return found[0]

    @property
    def has_staged(self) -> bool:
        return bool(self._staged_refs or self._staged_deletes or self._staged_policies
                    or self._staged_owner_policies or self._staged_owners
                    or self._staged_resolutions)

    def rollback(self) -> None:
        self._staged_refs.clear()
        self._staged_deletes.clear()
        self._staged_policies.clear()
        self._staged_owner_policies.clear()
        self._staged_owners.clear()
        self._staged_resolutions.clear()

    def commit(self, *, replace_segments: dict[str, list[dict]] | None = None,
               drop_ordinals: list[int] | None = None) -> int:
        """Make staged changes durable and visible; returns the new generation.

        For ``nanhu repair`` (:mod:`engine.repair`): ``replace_segments`` gives new
        ``audio_segments`` / ``video_segments`` lists for the manifest (their new files already
        written and fsynced by the caller, under names no manifest names, so a crash before the
        swap leaves them to recovery); ``drop_ordinals`` tombstones references by ordinal, rows
        that cannot be read included. Both take effect in this one commit.
        """
        self._require_writer()
        drop_ordinals = [int(o) for o in drop_ordinals or ()]
        if not self.has_staged and not replace_segments and not drop_ordinals:
            return self.generation
        g = self.generation + 1
        manifest = json.loads(json.dumps(self.manifest))
        now = time.time()
        with self._db:
            ordinals = []
            inserted: dict[str, int] = {}
            for ref in self._staged_refs:
                fp: Fingerprint = ref["fp"]
                cursor = self._db.execute(
                    "INSERT INTO refs (ref_id, title, owner, duration_s, digest, metadata, policy,"
                    " n_hashes, n_keyframes, created_at, generation) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                    (ref["ref_id"], ref["title"], ref["owner"], fp.duration_s, ref["digest"],
                     json.dumps(ref["metadata"]), json.dumps(ref["policy"]),
                     len(fp.audio) if fp.audio is not None else 0,
                     len(fp.video) if fp.video is not None else 0, now, g),
                )
                ordinals.append(cursor.lastrowid)
                inserted[ref["ref_id"]] = cursor.lastrowid
                for other, overlaps in _by_other(ref["overlaps"], inserted).items():
                    self._db.execute(
                        "INSERT INTO conflicts (ordinal, other_ordinal, ranges, created_at, "
                        "generation) VALUES (?,?,?,?,?)",
                        (cursor.lastrowid, other, json.dumps([o.to_dict() for o in overlaps]), now, g))
            for ordinal, owner in self._staged_owners.items():
                # Changed in place like policies; the log lets recovery undo it.
                self._db.execute("INSERT INTO owner_log (ordinal, generation, old_owner) "
                                 "SELECT ordinal, ?, owner FROM refs WHERE ordinal = ?", (g, ordinal))
                self._db.execute("UPDATE refs SET owner = ? WHERE ordinal = ?", (owner, ordinal))
            for conflict_id, (by, note) in self._staged_resolutions.items():
                self._db.execute("UPDATE conflicts SET resolved_generation = ?, resolved_by = ?, "
                                 "note = ? WHERE conflict_id = ?", (g, by, note, conflict_id))
            for ordinal in dict.fromkeys([*self._staged_deletes, *drop_ordinals]):
                self._db.execute(
                    "UPDATE refs SET deleted_generation = ? WHERE ordinal = ?", (g, ordinal)
                )
            for ordinal, policy in self._staged_policies.items():
                # Policies change in place; the log lets recovery undo an uncommitted change.
                self._db.execute(
                    "INSERT INTO policy_log (ordinal, generation, old_policy) "
                    "SELECT ordinal, ?, policy FROM refs WHERE ordinal = ?", (g, ordinal)
                )
                self._db.execute(
                    "UPDATE refs SET policy = ? WHERE ordinal = ?", (json.dumps(policy), ordinal)
                )
            for owner, owner_policy in self._staged_owner_policies.items():
                # Versioned like references: readers of generation g see g's defaults.
                self._db.execute(
                    "UPDATE owner_policies SET replaced_generation = ? WHERE owner = ? AND "
                    "replaced_generation IS NULL", (g, owner))
                if owner_policy is not None:
                    self._db.execute(
                        "INSERT INTO owner_policies (owner, policy, generation) VALUES (?,?,?)",
                        (owner, json.dumps(owner_policy.to_dict()), g))
            manifest.update(replace_segments or {})
            # Segment files go to disk before SQLite commits, and the manifest after both.
            self._write_new_segments(manifest, g, ordinals)
        manifest["generation"] = g
        manifest["committed_at"] = now
        try:
            self._write_manifest(manifest)
        except Exception:
            # SQLite already holds rows of generation g: settle the catalog now, as the next
            # writer would after a crash, or a retry would trip over them (IntegrityError).
            self._load_manifest()
            self._recover()
            if self.generation == g:  # the swap itself went through: the commit stands
                self.rollback()
            self._postings = None
            self._vectors = None
            raise
        self.rollback()
        self._load_manifest()
        self._remove_unnamed()
        self._postings = None
        self._vectors = None
        return g

    def _write_new_segments(self, manifest: dict, g: int, ordinals: list[int]) -> None:
        audio = [(o, r["fp"].audio) for o, r in zip(ordinals, self._staged_refs)
                 if r["fp"].audio is not None and len(r["fp"].audio)]
        if audio:
            keys = np.concatenate([lm.hashes for _, lm in audio])
            ords = np.concatenate([np.full(len(lm), o, np.uint32) for o, lm in audio])
            frames = np.concatenate([lm.frames for _, lm in audio])
            name = f"audio/seg-{g:08d}.pst"
            size = self._write_file(
                name, lambda p: write_segment(p, keys, ords, frames, key_bits=KEY_BITS))
            manifest["audio_segments"].append({"file": name, "count": int(keys.size),
                                               "bytes": size})
            self._merge_tiers(manifest, g)
        video = [(o, r["fp"].video) for o, r in zip(ordinals, self._staged_refs)
                 if r["fp"].video is not None and len(r["fp"].video)]
        if video:
            tags = {v.params_tag for _, v in video}
            if not manifest.get("video_params_tag"):
                manifest["video_params_tag"] = tags.pop()
            vectors = np.concatenate([v.vectors for _, v in video])
            ords = np.concatenate([np.full(len(v), o, np.uint32) for o, v in video])
            times = np.concatenate([v.times_s for _, v in video])
            manifest["video_segments"].append(
                self._write_vector_segment(f"video/seg-{g:08d}.vec", vectors, ords, times))

    def _merge_tiers(self, manifest: dict, g: int) -> None:
        """Merge audio segments of one size tier once it holds ``TIER_FANOUT`` of them.

        Tier ``t`` holds segments of ``8^t .. 8^(t+1)`` postings, so adding an hour to a large
        catalog rewrites only the small segments (cost in proportion to the hour, amortised),
        and a query searches O(log catalog) segments. Replaced files are removed once the new
        manifest is in place (:meth:`_remove_unnamed`).
        """
        while True:
            tiers: dict[int, list[dict]] = {}
            for entry in manifest["audio_segments"]:
                tiers.setdefault(max(0, int(entry["count"]).bit_length() // 3), []).append(entry)
            full = [t for t, entries in sorted(tiers.items()) if len(entries) >= TIER_FANOUT]
            if not full:
                return
            group = tiers[full[0]]
            frames = sum(Segment(self.path / e["file"]).total_frames for e in group)
            if frames > MAX_SEGMENT_FRAMES:
                return  # at 19,000 h a segment is as large as positions allow: leave the tier
            name = f"audio/seg-{g:08d}-m{len(manifest['audio_segments']):03d}.pst"
            info = {}

            def merge(path: Path, group=group, info=info) -> int:
                info.update(merge_segments([self.path / e["file"] for e in group], path,
                                           key_bits=KEY_BITS))
                return info["bytes"]

            size = self._write_file(name, merge)
            names = {e["file"] for e in group}
            manifest["audio_segments"] = [e for e in manifest["audio_segments"]
                                          if e["file"] not in names]
            manifest["audio_segments"].append({"file": name, "count": info["count"],
                                               "bytes": size})

    def _remove_unnamed(self) -> None:
        """Delete segment files the committed manifest no longer names (inputs of a tier merge,
        including the segment this very commit wrote; segments a repair replaced). Only the
        writer creates files there; readers that mapped a removed file keep their mapping."""
        named = set(_segment_files(self.manifest))
        for folder, pattern in (("audio", "*.pst"), ("video", "*.vec"), ("video", "*.hnsw")):
            for file in (self.path / folder).glob(pattern):
                if f"{folder}/{file.name}" not in named:
                    file.unlink(missing_ok=True)

    def _write_vector_segment(self, name: str, vectors: np.ndarray, ords: np.ndarray,
                              times: np.ndarray) -> dict:
        """Write a vector segment (and, when it is large, its HNSW graph); its manifest entry.
        Both files are written before the manifest names them, like every segment."""
        size = self._write_file(name, lambda p: write_vector_segment(p, vectors, ords, times))
        entry = {"file": name, "count": int(ords.size), "bytes": size}
        if ords.size >= vector_store.HNSW_MIN_VECTORS:
            graph = name.removesuffix(".vec") + ".hnsw"
            entry["graph"] = graph
            entry["graph_bytes"] = self._write_file(
                graph, lambda p: vector_store.write_hnsw_graph(p, vectors))
        return entry

    def _write_file(self, name: str, writer) -> int:
        final = self.path / name
        tmp = final.with_name(final.name + ".tmp")
        size = writer(tmp)
        os.replace(tmp, final)
        _fsync_dir(final.parent)
        return size

    def _write_manifest(self, manifest: dict) -> None:
        tmp = self.path / "manifest.json.tmp"
        with open(tmp, "w") as handle:
            json.dump(manifest, handle, indent=1)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.path / "manifest.json")
        _fsync_dir(self.path)

    def compact(self) -> dict:
        """Merge all segments into one per modality and purge tombstoned references."""
        self._require_writer()
        if self.has_staged:
            self.commit()
        dead = self.deleted_ordinals()
        g = self.generation + 1
        manifest = json.loads(json.dumps(self.manifest))
        old_files = _segment_files(manifest)
        sources = [self.path / s["file"] for s in manifest["audio_segments"]]
        manifest["audio_segments"] = []
        audio_postings = 0
        if sources:
            name = f"audio/seg-{g:08d}.pst"
            info: dict = {}

            def merge(path: Path) -> int:
                info.update(merge_segments(sources, path, key_bits=KEY_BITS, drop_ordinals=dead))
                return info["bytes"]

            size = self._write_file(name, merge)
            audio_postings = info["count"]
            if audio_postings:
                manifest["audio_segments"].append({"file": name, "count": audio_postings,
                                                   "bytes": size})
            else:
                (self.path / name).unlink()
        segments = [VectorSegment(self.path / s["file"]) for s in manifest["video_segments"]]
        manifest["video_segments"] = []
        if segments:
            # Unusable rows (another dimension, non-unit norms, bad times) are dropped, logged.
            vectors, ords, times = vector_store.merge_segments(segments)
            alive = ~np.isin(ords, dead)
            if alive.any():
                manifest["video_segments"].append(self._write_vector_segment(
                    f"video/seg-{g:08d}.vec", vectors[alive], ords[alive], times[alive]))
        manifest["generation"] = g
        manifest["committed_at"] = time.time()
        with self._db:
            # Rows stay until the manifest no longer names their postings; purged after.
            self._write_manifest(manifest)
        self._load_manifest()
        self._postings = None
        self._vectors = None
        with self._db:
            self._db.executemany("DELETE FROM refs WHERE ordinal = ?", [(int(o),) for o in dead])
            self._db.executemany("DELETE FROM conflicts WHERE ordinal = ? OR other_ordinal = ?",
                                 [(int(o), int(o)) for o in dead])
            self._db.execute("DELETE FROM owner_policies WHERE replaced_generation IS NOT NULL "
                             "AND replaced_generation <= ?", (g,))
        for file in old_files:
            (self.path / file).unlink(missing_ok=True)
        return {"generation": g, "purged_references": int(dead.size),
                "audio_postings": int(audio_postings),
                "video_vectors": sum(s["count"] for s in manifest["video_segments"])}


def _by_other(overlaps: Iterable[Overlap], inserted: dict[str, int]) -> dict[int, list[Overlap]]:
    """Overlaps per other work's ordinal; a work staged in this commit (ordinal -1) is found
    by its id among those ``inserted`` before (a batch's earlier works)."""
    out: dict[int, list[Overlap]] = {}
    for overlap in overlaps:
        other = int(overlap.other_ordinal)
        if other < 0:
            other = inserted.get(overlap.other_ref_id, -1)
            if other < 0:
                continue  # not in this commit after all (its add failed): nothing to hold against
        out.setdefault(other, []).append(overlap)
    return out


def _policy_dict(policy: Policy | dict | None) -> dict:
    """The stored form of a policy given as a Policy, a dict (validated) or None (none)."""
    if policy is None:
        return {}
    if not isinstance(policy, Policy):
        policy = Policy.from_dict(policy)
    return policy.to_dict() if policy is not None else {}


def _migrate(db: sqlite3.Connection, path: Path) -> None:
    """Bring metadata of an older schema version to :data:`META_VERSION` in one transaction
    (the tables themselves come from ``_SCHEMA``, which :meth:`Catalog._recover` runs): label
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


def _segment_files(manifest: dict) -> list[str]:
    """Every file the manifest names: segments and the graphs of large vector segments."""
    files = [s["file"] for s in manifest["audio_segments"] + manifest["video_segments"]]
    return files + [s["graph"] for s in manifest["video_segments"] if s.get("graph")]
