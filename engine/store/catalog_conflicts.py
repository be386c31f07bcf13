"""Reference conflicts and owner changes: stored overlaps between works, read at the catalog's
generation (and the stretches they hold out of screening), staged owner changes and
resolutions, and their rows in the writer's commit (:class:`ConflictsMixin`, a mixin of
:class:`engine.catalog.Catalog`).

A conflict row is versioned by generation (``generation``, ``resolved_generation``); an owner
changes in place in ``refs``, with the old one in ``owner_log`` so that recovery can undo an
uncommitted change.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable

import numpy as np

from nanhu.engine.errors import InvalidArgument, NotFound
from nanhu.engine.policy import merge_ranges
from nanhu.engine.store.catalog_records import Conflict, Overlap, Reference


class ConflictsMixin:
    """The host provides ``path``, ``generation``, ``_db``, the ``_held`` cache, the staging
    dicts ``_staged_owners`` / ``_staged_resolutions``, :meth:`get`, :meth:`by_ordinals` and
    :meth:`_require_writer`."""

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

    def _insert_conflicts(self, ordinal: int, overlaps: Iterable[Overlap], inserted: dict[str, int],
                          now: float, g: int) -> None:
        """Store a new work's overlaps as conflicts of generation ``g`` (inside the commit's
        transaction); ``inserted``: ids -> ordinals of the works this commit inserted so far."""
        for other, grouped in by_other(overlaps, inserted).items():
            self._db.execute(
                "INSERT INTO conflicts (ordinal, other_ordinal, ranges, created_at, "
                "generation) VALUES (?,?,?,?,?)",
                (ordinal, other, json.dumps([o.to_dict() for o in grouped]), now, g))

    def _commit_owner_changes(self, g: int) -> None:
        """Write the staged owner changes and resolutions as generation ``g`` (inside the
        commit's transaction)."""
        for ordinal, owner in self._staged_owners.items():
            # Changed in place like policies; the log lets recovery undo it.
            self._db.execute("INSERT INTO owner_log (ordinal, generation, old_owner) "
                             "SELECT ordinal, ?, owner FROM refs WHERE ordinal = ?", (g, ordinal))
            self._db.execute("UPDATE refs SET owner = ? WHERE ordinal = ?", (owner, ordinal))
        for conflict_id, (by, note) in self._staged_resolutions.items():
            self._db.execute("UPDATE conflicts SET resolved_generation = ?, resolved_by = ?, "
                             "note = ? WHERE conflict_id = ?", (g, by, note, conflict_id))


def by_other(overlaps: Iterable[Overlap], inserted: dict[str, int]) -> dict[int, list[Overlap]]:
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
