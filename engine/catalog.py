"""The embedded catalog: one directory, one writer, readers never blocked.

Layout (format version 1)::

    DIR/manifest.json        {"format": "nanhu-catalog", "version": 1, "generation": g, ...}
    DIR/meta.sqlite          references (SQLite, WAL mode); each row carries the generation
                             that committed it and the generation that deleted it (tombstone);
                             owners' default policies and reference conflicts, versioned the
                             same way
    DIR/claims.sqlite        claims and webhooks (engine.claims; not versioned by generations)
    DIR/audio/seg-*.pst      immutable postings segments (engine.store.postings)
    DIR/video/seg-*.vec      immutable keyframe-vector segments (engine.store.vectors)
    DIR/video/seg-*.hnsw     HNSW graph of a large vector segment (FAISS format, derived data)
    DIR/video/seg-*.vcx      compact keyframe segments: PQ codes (engine.store.vectors_compact),
                             once the catalog holds COMPACT_MIN_VECTORS keyframes
    DIR/video/quantiser-*.vqz  the trained quantiser the compact segments are coded with
    DIR/writer.lock          flock()ed by the single writer

Commit protocol: new segment files are written under temporary names, fsynced and renamed;
the metadata rows are committed to SQLite tagged with generation ``g + 1``; then
``manifest.json`` is replaced atomically (write temp, fsync, rename, fsync the directory).
Readers see exactly the rows and segments of the manifest's generation, so a crash at any
point leaves the last committed catalog readable and complete; the next writer rolls back
rows of uncommitted generations and removes files no manifest names.

The metadata schema has its own version (SQLite's ``user_version``, :data:`META_VERSION`): a
writer brings an older catalog's metadata up to date in one SQLite transaction when it opens it
(:func:`engine.store.catalog_schema.migrate`), readers read either; metadata of a newer Nanhu
is refused.

Code: :class:`Catalog` (here) opens, locks, stages and commits; it composes the parts in
``engine/store/``: ``catalog_schema`` (manifest format, metadata DDL, migrations),
``catalog_records`` (Reference, Overlap, Conflict), ``catalog_reader`` (reads at a
generation), ``catalog_policies`` (works' and owners' policies), ``catalog_conflicts``
(reference conflicts, owner changes), ``catalog_recovery`` (rollback of an interrupted commit,
scratch cleanup) and ``catalog_segments`` (segment and manifest writing, tiered merges,
compaction). The names importers use are all importable from here.
"""

from __future__ import annotations

import fcntl
import json
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from nanhu.engine.audio.params import AudioParams
from nanhu.engine.errors import (
    AlreadyExists,
    CatalogCorrupt,
    CatalogLocked,
    InvalidArgument,
    NotFound,
    VersionMismatch,
)
from nanhu.engine.fingerprint import Fingerprint
from nanhu.engine.policy import Policy
from nanhu.engine.store.catalog_conflicts import ConflictsMixin
from nanhu.engine.store.catalog_policies import PoliciesMixin, policy_dict
from nanhu.engine.store.catalog_reader import CatalogReader
from nanhu.engine.store.catalog_records import Conflict, Overlap, Reference, is_valid_reference_id
from nanhu.engine.store.catalog_recovery import recover, remove_unnamed
from nanhu.engine.store.catalog_schema import (
    FORMAT,
    FORMAT_VERSION,
    META_VERSION,
    SCHEMA,
    check_meta_version,
    migrate,
    read_manifest,
)
from nanhu.engine.store.catalog_segments import TIER_FANOUT, SegmentsMixin
from nanhu.engine.store.postings import SegmentPostings
from nanhu.engine.store.vectors import FaissVectorIndex
from nanhu.engine.validate import validate_fingerprint

__all__ = [
    "FORMAT", "FORMAT_VERSION", "META_VERSION", "TIER_FANOUT", "Catalog", "Conflict", "Overlap",
    "Reference", "is_valid_reference_id",
]


class Catalog(CatalogReader, PoliciesMixin, ConflictsMixin, SegmentsMixin):
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
            check_meta_version(self._db, self.path)
            if writable:
                recover(self._db, self.path, self.manifest)
                migrate(self._db, self.path)
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
            db.executescript(SCHEMA)
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
        self.manifest, self.audio_params = read_manifest(self.path / "manifest.json")

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
            "digest": fp.digest, "metadata": metadata or {}, "policy": policy_dict(policy),
            "overlaps": list(overlaps),
        })

    def delete(self, ref_id: str) -> Reference:
        """Stage a tombstone for ``ref_id``."""
        self._require_writer()
        reference = self.get(ref_id)
        if reference.ordinal not in self._staged_deletes:
            self._staged_deletes.append(reference.ordinal)
        return reference

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
                self._insert_conflicts(cursor.lastrowid, ref["overlaps"], inserted, now, g)
            self._commit_owner_changes(g)
            for ordinal in dict.fromkeys([*self._staged_deletes, *drop_ordinals]):
                self._db.execute(
                    "UPDATE refs SET deleted_generation = ? WHERE ordinal = ?", (g, ordinal)
                )
            self._commit_policies(g)
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
            recover(self._db, self.path, self.manifest)
            if self.generation == g:  # the swap itself went through: the commit stands
                self.rollback()
            self._postings = None
            self._vectors = None
            raise
        self.rollback()
        self._load_manifest()
        remove_unnamed(self.path, self.manifest)
        self._postings = None
        self._vectors = None
        return g
