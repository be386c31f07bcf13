"""Reference hygiene: a new work is screened against the catalog before it is registered.

Material it shares with a work already registered is an *overlap* (both works, the time
ranges on each side). Committed with the new work (:meth:`engine.catalog.Catalog.add`), an
overlap with **another owner's** work is a conflict: the new work's overlapping stretches are
held out of screening (matches there are cut, as excluded ranges cut them) until it is
resolved: the later work deleted, both works given one owner (``nanhu owner set``), or the
conflict accepted (``nanhu conflicts resolve``). An overlap with a work of the **same owner**
(an edit, a remaster) is reported and allowed.

Only strong evidence counts: a match in the medium band or better (chance expects it once in
100,000 registrations) and at least :data:`MIN_OVERLAP_S` long, so a catalog does not fill up
with chance conflicts as it grows.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import tempfile
from pathlib import Path

import numpy as np

from nanhu.engine.catalog import Catalog, Overlap
from nanhu.engine.fingerprint import Fingerprint
from nanhu.engine.matcher import Matcher, fuse
from nanhu.engine.segments import BAND_EDGES, score_from_log10_expected

log = logging.getLogger(__name__)

#: shortest shared stretch (seconds of the new work) that counts as an overlap
MIN_OVERLAP_S = 5.0
#: weakest match that counts: the edge of the medium band (E = 1e-5)
MIN_OVERLAP_SCORE = score_from_log10_expected(dict(BAND_EDGES)["medium"])


def find_overlaps(catalog: Catalog, fp: Fingerprint, *, matcher: Matcher | None = None,
                  min_overlap_s: float = MIN_OVERLAP_S,
                  min_score: float = MIN_OVERLAP_SCORE) -> list[Overlap]:
    """What the (reference) fingerprint ``fp`` shares with the works ``catalog`` holds at its
    generation, longest first. Pass a ``matcher`` of the catalog to reuse it across works."""
    if catalog.generation == 0 or fp.is_empty:
        return []
    matcher = matcher or Matcher(catalog)
    segments = [s for s in fuse(matcher.segments(fp))
                if s.score >= min_score and s.query_duration_s >= min_overlap_s]
    if not segments:
        return []
    refs = catalog.by_ordinals(np.array([s.reference for s in segments], np.int64))
    out = [Overlap(other_ordinal=int(s.reference), other_ref_id=refs[s.reference].ref_id,
                   other_owner=refs[s.reference].owner, start_s=float(s.query_start_s),
                   end_s=float(s.query_end_s), other_start_s=float(s.reference_start_s),
                   other_end_s=float(s.reference_end_s), score=float(s.score))
           for s in segments if s.reference in refs]
    out.sort(key=lambda o: (-(o.end_s - o.start_s), o.other_ref_id))
    log.debug("registration overlaps: %s", [(o.other_ref_id, o.start_s, o.end_s) for o in out])
    return out


class BatchScreen:
    """Screens the works of one batch (registered together, committed together) against the
    catalog's committed works *and* the batch's earlier works, which no matcher of the catalog
    sees before the commit: those are kept in a scratch catalog of their own (a ``*.tmp``
    folder in the catalog's) and their overlaps name the work by id only (``other_ordinal`` -1), which the
    commit resolves. Call :meth:`overlaps` before ``catalog.add``, :meth:`added` after it."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self._matcher: Matcher | None = None
        self._folder: Path | None = None
        self._scratch: Catalog | None = None
        self._owners: dict[str, str] = {}
        self._generation = catalog.generation

    def overlaps(self, fp: Fingerprint) -> list[Overlap]:
        if self.catalog.generation != self._generation:  # the batch so far was committed
            self._drop_scratch()
            self._generation = self.catalog.generation
        if self._matcher is None or self._matcher.catalog is not self.catalog:
            self._matcher = Matcher(self.catalog)
        found = find_overlaps(self.catalog, fp, matcher=self._matcher)
        if self._scratch is not None:
            found += [dataclasses.replace(o, other_ordinal=-1, other_owner=self._owners[o.other_ref_id])
                      for o in find_overlaps(self._scratch, fp)]
            found.sort(key=lambda o: (-(o.end_s - o.start_s), o.other_ref_id))
        return found

    def added(self, ref_id: str, fp: Fingerprint, owner: str) -> None:
        """``ref_id`` was staged in the catalog: later works of the batch are checked against it."""
        if self._scratch is None:
            # Inside the catalog, named *.tmp: if this process is killed, the next writer's
            # recovery removes it with the other leftovers of an interrupted commit.
            self._folder = Path(tempfile.mkdtemp(prefix="batch-", suffix=".tmp",
                                                 dir=self.catalog.path))
            self._scratch = Catalog(self._folder / "catalog", writable=True, create=True,
                                    audio_params=self.catalog.audio_params)
        self._scratch.add(ref_id, dataclasses.replace(fp, digest=""), title=ref_id, owner=owner)
        self._scratch.commit()
        self._owners[ref_id] = owner

    def _drop_scratch(self) -> None:
        if self._scratch is not None:
            self._scratch.close()
            shutil.rmtree(self._folder, ignore_errors=True)
        self._scratch, self._folder, self._owners = None, None, {}

    def close(self) -> None:
        self._drop_scratch()

    def __enter__(self) -> BatchScreen:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def describe(ref_id: str, owner: str, overlaps: list[Overlap]) -> list[str]:
    """Lines for people: one per overlap, saying whether it is a conflict (held) or allowed."""
    lines = []
    for o in overlaps:
        where = (f"{o.start_s:.1f}-{o.end_s:.1f} s of {ref_id} = {o.other_start_s:.1f}-"
                 f"{o.other_end_s:.1f} s of {o.other_ref_id}")
        if o.other_owner == owner:
            lines.append(f"{ref_id}: note: overlaps {o.other_ref_id} of the same owner ({where}); "
                         "allowed")
        else:
            whose = f"owner {o.other_owner}" if o.other_owner else "no owner"
            lines.append(f"{ref_id}: CONFLICT with {o.other_ref_id} ({whose}): {where}; held out "
                         "of screening until resolved (see `nanhu conflicts`)")
    return lines
