"""Crash recovery and scratch cleanup: what the single writer does so that a crash at any
point of a commit leaves the last committed catalog readable and complete.

- :func:`recover` (every writer, on opening; and a commit whose manifest swap failed) rolls
  back rows of generations after the manifest's and removes the files no manifest names
  (uncommitted segments, a merge's scratch folder, half-written temporaries).
- :func:`remove_unnamed` (after each commit) deletes the segment files the new manifest no
  longer names: inputs of a tier merge, segments a repair replaced.
"""

from __future__ import annotations

import logging
import shutil
import sqlite3
from pathlib import Path

from nanhu.engine.store.catalog_schema import SCHEMA, segment_files

#: the catalog's one logger (these functions moved out of engine.catalog; its name stays)
log = logging.getLogger("nanhu.engine.catalog")


def recover(db: sqlite3.Connection, path: Path, manifest: dict) -> None:
    """Roll back what an interrupted commit left: rows and files of later generations."""
    g = int(manifest["generation"])
    with db:
        db.executescript(SCHEMA)
        dropped = db.execute("DELETE FROM refs WHERE generation > ?", (g,)).rowcount
        undeleted = db.execute(
            "UPDATE refs SET deleted_generation = NULL WHERE deleted_generation > ?", (g,)
        ).rowcount
        for ordinal, old in db.execute(
            "SELECT ordinal, old_policy FROM policy_log WHERE generation > ? "
            "ORDER BY generation DESC, rowid DESC", (g,)
        ).fetchall():
            db.execute("UPDATE refs SET policy = ? WHERE ordinal = ?", (old, ordinal))
        db.execute("DELETE FROM policy_log WHERE generation > ?", (g,))
        owner_rows = db.execute(
            "DELETE FROM owner_policies WHERE generation > ?", (g,)).rowcount
        owner_rows += db.execute(
            "UPDATE owner_policies SET replaced_generation = NULL WHERE replaced_generation > ?",
            (g,)).rowcount
        for ordinal, old in db.execute(
            "SELECT ordinal, old_owner FROM owner_log WHERE generation > ? "
            "ORDER BY generation DESC, rowid DESC", (g,)
        ).fetchall():
            db.execute("UPDATE refs SET owner = ? WHERE ordinal = ?", (old, ordinal))
        db.execute("DELETE FROM owner_log WHERE generation > ?", (g,))
        db.execute("DELETE FROM conflicts WHERE generation > ?", (g,))
        db.execute("UPDATE conflicts SET resolved_generation = NULL, resolved_by = '', "
                   "note = '' WHERE resolved_generation > ?", (g,))
    named = set(segment_files(manifest))
    orphans = 0
    for folder in ("audio", "video"):
        (path / folder).mkdir(exist_ok=True)
        for file in (path / folder).iterdir():
            if f"{folder}/{file.name}" not in named:
                # a merge's scratch folder, or a file of an uncommitted generation
                shutil.rmtree(file) if file.is_dir() else file.unlink()
                orphans += 1
    for tmp in path.glob("*.tmp"):
        # a half-written manifest, or a registration batch's scratch catalog
        shutil.rmtree(tmp) if tmp.is_dir() else tmp.unlink()
    if dropped or undeleted or orphans or owner_rows:
        log.warning(
            "%s: rolled back an interrupted commit (%d rows, %d tombstones, %d files, "
            "%d owner policy rows)", path, dropped, undeleted, orphans, owner_rows,
        )


def remove_unnamed(path: Path, manifest: dict) -> None:
    """Delete segment files the committed manifest no longer names (inputs of a tier merge,
    including the segment this very commit wrote; segments a repair replaced). Only the
    writer creates files there; readers that mapped a removed file keep their mapping."""
    named = set(segment_files(manifest))
    for folder, pattern in (("audio", "*.pst"), ("video", "*.vec"), ("video", "*.hnsw"),
                            ("video", "*.vcx"), ("video", "*.vqz"), ("video", "*.vlf")):
        for file in (path / folder).glob(pattern):
            if f"{folder}/{file.name}" not in named:
                file.unlink(missing_ok=True)
