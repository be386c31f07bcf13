"""The cluster seen as one catalog: :class:`ShardedCatalog`, what the matcher runs over.

The matcher (:class:`~nanhu.engine.matcher.Matcher`) needs a catalog's postings, keyframe
index, tombstones, size figures and references. :class:`ShardedCatalog` gives it those of the
whole cluster, asking every shard through a :class:`Fanout` (in-process here, Ray actors in
:mod:`nanhu.server.cluster_ray`), so the alignment, the chance model and the verdict run once,
on the whole evidence, exactly as on one catalog:

- **Audio lookups, keyframe search and local features** are answered by the shards and merged
  as one catalog would answer them (:mod:`nanhu.engine.cluster.lookup`): the lookup's stop keys
  and budget are decided once, for the cluster; the cluster's ``k`` nearest keyframes are kept
  of each shard's; verification's candidates' features come from their shards.
- **Catalog size.** The frames, keyframes and ORB keyframes the chance model counts are the
  cluster's sums, so a score means the same whether the catalog is split or not.
- **Ordinals** are made cluster-wide: ``local * n_shards + shard`` (uint32 throughout, so a
  shard holds at most ``2**32 / n_shards`` ordinals).

**The state check rides on the first call.** A query starts with :meth:`ShardedCatalog.refresh`,
which asks nothing yet: the query's first call to the shards (its first look, or keyframe
search) carries the generation the view knows to every shard
(:meth:`~nanhu.engine.cluster.shard.ShardReads.checked`), and each shard picks up its new
commits and answers that call at the generation it then holds, with its new state when that
moved. Until then the matcher works from the last known state (sizes,
tombstones, parameters). If a shard moved, that state was stale: the view takes the new state
and raises :class:`~nanhu.engine.errors.CatalogMoved`, and the matcher runs the query again
(the retry asks no state; it is exactly the query on the new generations). Calls that do not
depend on the state (``get``, ``list``, ``stats``, ...) just answer at the new generation;
answers cached until a commit (references, owner defaults, held ranges) are read only once the
state is checked (:meth:`ShardedCatalog.check_state`).

A shard that does not answer (no live replica) is left out of the evidence until the next
:meth:`ShardedCatalog.refresh` and named in :attr:`ShardedCatalog.missing`; the caller must say
the answer is partial. A shard that answered a look of the query and then fails a later one
raises :class:`~nanhu.engine.errors.CatalogMoved` too: the query runs again without it, so a
partial answer is exactly the answer of the shards that answered, never a mix. Its last known
size figures stay in the catalog size, so the scores of what was found keep their meaning.
"""

from __future__ import annotations

import dataclasses
import heapq
import logging
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from nanhu.engine.cluster.fanout import MISSING, Fanout, LocalFanout, keys_token
from nanhu.engine.cluster.lookup import (
    ShardedLocalIndex,
    ShardedPostings,
    ShardedReferencePeaks,
    ShardedVectors,
)
from nanhu.engine.errors import CatalogMoved, NotFound, VersionMismatch
from nanhu.engine.store.catalog_records import Reference

log = logging.getLogger(__name__)

__all__ = ["MISSING", "Fanout", "LocalFanout", "ShardedCatalog", "keys_token"]


class ShardedCatalog:
    """A read-only catalog over the shards of a cluster (see the module docstring)."""

    def __init__(self, fanout: Fanout, *, name: str = "cluster",
                 shard_names: Sequence[str] | None = None, looks_ahead: bool = False) -> None:
        self.fanout = fanout
        self.n = fanout.n_shards
        self.path = name
        self.shard_names = list(shard_names or [f"shard-{i:03d}" for i in range(self.n)])
        self.missing: set[int] = set()
        #: fan-out calls made, by shard method (each is one round trip, all shards asked at
        #: once): what ``nanhu bench cluster`` reports per query
        self.round_trips: Counter[str] = Counter()
        self._states: list[dict | None] = [None] * self.n
        # answers that only a commit changes (references by ordinal, owner defaults, held
        # ranges), kept until a shard's generation moves: fewer round trips per query
        self._cache: dict = {}
        self._pending = False  # a refresh whose state check rides on the next call
        self._answered: set[int] = set()  # shards that answered a look of this query
        self._postings = ShardedPostings(self, ahead=looks_ahead)
        self._vectors = ShardedVectors(self)
        self._local = ShardedLocalIndex(self)
        self._peaks = ShardedReferencePeaks(self)
        self.refresh(now=True)
        if all(s is None for s in self._states):
            raise NotFound(f"{name}: no shard of the cluster answered")

    # --- state --------------------------------------------------------------------------------
    def refresh(self, *, now: bool = False) -> bool:
        """Start a new look at the cluster: the shards' new commits are picked up, with the
        next call to them (the module docstring), or at once with ``now`` (one round trip).
        True if ``now`` found a shard moved; lazily, False (a move shows at that call).

        :attr:`missing` holds the shards that did not answer since, and they are not asked
        again until the next refresh, so a partial answer is exactly the answer of the shards
        that answered."""
        self.missing = set()
        self._answered = set()
        self._postings.forget()
        if not now and all(s is not None for s in self._states):
            self._pending = True
            return False
        self._pending = False
        self.round_trips["state"] += 1
        answers = self.fanout.call_each("state", [(i, (self._known_generation(i),))
                                                  for i in range(self.n)])
        return self._install(list(enumerate(answers)))

    def check_state(self, *, for_matcher: bool = False) -> None:
        """The state check now, when a refresh left it to the next call and none came (one
        round trip). ``for_matcher``: raise :class:`CatalogMoved` if a shard moved."""
        if self._pending:
            self._ask_each("state", [], for_matcher=for_matcher)

    def _known_generation(self, shard: int) -> int | None:
        state = self._states[shard]
        return None if state is None else state["generation"]

    def _install(self, answers: list[tuple[int, Any]]) -> bool:
        """Take the shards' state answers (a state, None: unchanged, or MISSING); True if the
        cluster's generation moved."""
        before = self.generation if any(s is not None for s in self._states) else None
        for shard, state in answers:
            if state is MISSING:
                self.missing.add(shard)
            elif state is not None:  # None: still the generation the view knows
                self._states[shard] = state
        moved = before != self.generation
        if moved:
            self._cache = {}
        known = [s for s in self._states if s is not None]
        tags = {(s["audio_params_tag"], s["video_params_tag"] or None) for s in known}
        audio_tags = {a for a, _ in tags}
        video_tags = {v for _, v in tags if v}
        if len(audio_tags) > 1 or len(video_tags) > 1:
            raise VersionMismatch(f"{self.path}: shards use different parameters "
                                  f"({sorted(audio_tags)} / {sorted(video_tags)}): rebuild them")
        return moved

    def _known(self) -> list[dict]:
        return [s for s in self._states if s is not None]

    @property
    def generation(self) -> tuple:
        return tuple(-1 if s is None else s["generation"] for s in self._states)

    @property
    def audio_params(self):
        return self._known()[0]["audio_params"]

    @property
    def manifest(self) -> dict:
        first = self._known()[0]
        return {"audio_params_tag": first["audio_params_tag"],
                "video_params_tag": next((s["video_params_tag"] for s in self._known()
                                          if s["video_params_tag"]), ""),
                # stored reference peaks somewhere: the matcher runs the peak check, as on one
                # catalog holding every reference
                "audio_peaks": any(s.get("audio_peaks") for s in self._known())}

    def check_fingerprint(self, fp, *, what: str = "fingerprint") -> None:
        manifest = self.manifest
        if fp.audio is not None and fp.audio_params_tag != manifest["audio_params_tag"]:
            raise VersionMismatch(f"{what} has audio parameters {fp.audio_params_tag!r}; the "
                                  f"cluster uses {manifest['audio_params_tag']!r} "
                                  "(re-fingerprint with this Nanhu)")
        video_tag = manifest["video_params_tag"]
        if fp.video is not None and video_tag and fp.video.params_tag != video_tag:
            raise VersionMismatch(f"{what} has video parameters {fp.video.params_tag!r}; the "
                                  f"cluster uses {video_tag!r} (re-fingerprint with this Nanhu)")

    @property
    def total_audio_frames(self) -> int:
        """The cluster's audio frames: its seconds summed, then converted (as one catalog does;
        summing each shard's truncated frames would lose up to a frame a shard)."""
        from nanhu.engine.store.catalog_reader import audio_frames

        seconds = sum(s["audio_seconds"] for s in self._known())
        return audio_frames(seconds, self.audio_params.frames_per_second)

    def live_shards(self) -> list[int]:
        return [i for i, s in enumerate(self._states) if s is not None]

    # --- ordinals -----------------------------------------------------------------------------
    def to_global(self, local: np.ndarray, shard: int) -> np.ndarray:
        local = np.asarray(local, np.int64)
        if local.size and int(local.max()) >= (1 << 32) // self.n:
            raise ValueError(f"shard {shard}: ordinal {int(local.max())} too large for "
                             f"{self.n} shards")
        return local * self.n + shard

    def split(self, ordinals: np.ndarray) -> dict[int, np.ndarray]:
        """Cluster-wide ordinals -> {shard: its local ordinals}."""
        ordinals = np.asarray(ordinals, np.int64)
        return {int(s): ordinals[ordinals % self.n == s] // self.n
                for s in np.unique(ordinals % self.n)}

    def _ask(self, method: str, shards: Sequence[int], *args: Any,
             for_matcher: bool = False) -> list[tuple[int, Any]]:
        """``method(*args)`` on each of ``shards``: [(shard, answer)] of those that answered."""
        return self._ask_each(method, [(s, args) for s in shards], for_matcher=for_matcher)

    def _ask_each(self, method: str, calls: list[tuple[int, tuple]], *,
                  for_matcher: bool = False) -> list[tuple[int, Any]]:
        """[(shard, answer)] of the ``calls`` answered. The first call after a lazy refresh
        also checks every shard's state (the module docstring). ``for_matcher``: the matcher
        built the call on the state it read, so a moved state, or a shard lost after it
        answered this query, raises :class:`CatalogMoved` (the matcher runs the query again)."""
        calls = [(s, a) for s, a in calls if s not in self.missing]
        if self._pending:
            return self._ask_checked(method, calls, for_matcher)
        if not calls:
            return []
        self.round_trips[method] += 1
        out = []
        for (shard, _), value in zip(calls, self.fanout.call_each(method, calls)):
            if value is MISSING:
                self.missing.add(shard)
            else:
                out.append((shard, value))
        if for_matcher:
            lost = self._answered & self.missing
            self._answered.update(s for s, _ in out)
            if lost:
                self._moved(f"shards {sorted(lost)} stopped answering in the middle of a query")
        return out

    def _ask_checked(self, method: str, calls: list[tuple[int, tuple]],
                     for_matcher: bool) -> list[tuple[int, Any]]:
        """One round trip to every shard: its state check, and ``method`` where ``calls`` ask
        it (:meth:`~nanhu.engine.cluster.shard.ShardReads.checked`)."""
        self._pending = False
        asked = dict(calls)
        self.round_trips[method] += 1
        wrapped = [(s, (self._known_generation(s), method if s in asked else None,
                        *asked.get(s, ()))) for s in range(self.n)]
        states, out = [], []
        for (shard, _), answer in zip(wrapped, self.fanout.call_each("checked", wrapped)):
            if answer is MISSING:
                states.append((shard, MISSING))
                continue
            states.append((shard, answer[0]))
            if shard in asked:
                out.append((shard, answer[1]))
        if self._install(states) and for_matcher:
            self._moved("a shard's generation moved")
        if for_matcher:
            self._answered.update(s for s, _ in out)
        return out

    def _moved(self, why: str) -> None:
        """The query's evidence so far was gathered on a state that no longer holds."""
        self._answered = set()
        self._postings.forget()
        log.info("%s: %s; the query runs again", self.path, why)
        raise CatalogMoved(f"{self.path}: {why}")

    def deleted_ordinals(self) -> np.ndarray:
        parts = [self.to_global(s["deleted"], i) for i, s in enumerate(self._states)
                 if s is not None]
        return np.sort(np.concatenate(parts)) if parts else np.zeros(0, np.int64)

    def postings(self) -> ShardedPostings:
        return self._postings

    def vectors(self) -> ShardedVectors:
        return self._vectors

    def reference_peaks(self) -> ShardedReferencePeaks:
        return self._peaks

    def local_index(self) -> ShardedLocalIndex:
        return self._local

    # --- references -----------------------------------------------------------------------------
    def remember(self, shard: int, records: dict[int, Reference]) -> None:
        """Keep records a shard sent unasked (its lookups' likely ones,
        :meth:`~nanhu.engine.cluster.shard.ShardReads.lookup`) for :meth:`by_ordinals`, until
        the next commit, as the records it reads."""
        if records:
            known = self._cache.setdefault("refs", {})
            for o, ref in records.items():
                g = int(o) * self.n + shard
                known[g] = dataclasses.replace(ref, ordinal=g)

    def by_ordinals(self, ordinals: np.ndarray) -> dict[int, Reference]:
        wanted = np.unique(np.asarray(ordinals, np.int64))
        if wanted.size == 0:
            return {}
        self.check_state()  # the cache holds until a commit
        known = self._cache.setdefault("refs", {})
        asked = [o for o in wanted.tolist() if o not in known]
        if asked:
            calls = [(s, (local,)) for s, local in self.split(np.array(asked, np.int64)).items()]
            answered = set()
            # inside a query (a shard answered its looks), a lost shard runs it again
            for shard, refs in self._ask_each("by_ordinals", calls,
                                              for_matcher=bool(self._answered)):
                answered.add(shard)
                for o, ref in refs.items():
                    g = int(o) * self.n + shard
                    known[g] = dataclasses.replace(ref, ordinal=g)
            for o in asked:  # gone (deleted) on a shard that answered: remember that too
                if o % self.n in answered:
                    known.setdefault(o, None)
        return {o: known[o] for o in wanted.tolist() if known.get(o) is not None}

    def reference_frames(self) -> tuple[np.ndarray, np.ndarray]:
        """(ordinals, audio frames) of every reference of the shards that answered, ordinals
        ascending: asked of each shard once a generation (a shard that did not answer is asked
        again at the next call), so the chance model sizes references as one catalog does."""
        self.check_state()  # the cache holds until a commit
        frames = self._cache.setdefault("frames", {})
        wanted = [s for s in self.live_shards() if s not in frames and s not in self.missing]
        # inside a query (a shard answered its looks), a lost shard runs it again
        for shard, (local, lengths) in self._ask("reference_frames", wanted,
                                                 for_matcher=bool(self._answered)):
            frames[shard] = (self.to_global(local, shard), np.asarray(lengths, np.int64))
        merged = self._cache.get("frames_merged")
        if merged is None or merged[0] != tuple(sorted(frames)):
            ordinals = np.concatenate([o for o, _ in frames.values()] + [np.zeros(0, np.int64)])
            lengths = np.concatenate([f for _, f in frames.values()] + [np.zeros(0, np.int64)])
            order = np.argsort(ordinals, kind="stable")
            merged = (tuple(sorted(frames)), ordinals[order], lengths[order])
            self._cache["frames_merged"] = merged
        return merged[1], merged[2]

    def get(self, ref_id: str) -> Reference:
        for shard, ref in self._ask("get", self.live_shards(), ref_id):
            if ref is not None:
                return dataclasses.replace(ref, ordinal=ref.ordinal * self.n + shard)
        raise NotFound(f"no reference with id {ref_id!r}")

    def find_digest(self, digest: str) -> Reference | None:
        for shard, ref in self._ask("find_digest", self.live_shards(), digest):
            if ref is not None:
                return dataclasses.replace(ref, ordinal=ref.ordinal * self.n + shard)
        return None

    def list(self, *, owner: str | None = None, limit: int = 1000, offset: int = 0,
             after_id: str | None = None) -> list[Reference]:
        """References in id order across the shards (each shard's first ``offset + limit``,
        merged)."""
        per_shard = self._ask("list", self.live_shards(), owner, offset + limit, after_id)
        merged = heapq.merge(*[[dataclasses.replace(r, ordinal=r.ordinal * self.n + s)
                                for r in refs] for s, refs in per_shard],
                             key=lambda r: r.ref_id)
        return list(merged)[offset:offset + limit]

    def owner_policies(self) -> dict:
        """Owner-wide defaults: every shard holds every owner's (writes go to all shards);
        the first shard that answers speaks."""
        self.check_state()  # the cache holds until a commit
        if "owner_policies" not in self._cache:
            for shard in self.live_shards():
                for _, policies in self._ask("owner_policies", [shard]):
                    self._cache["owner_policies"] = policies
                    return policies
            return {}
        return self._cache["owner_policies"]

    def owner_policy(self, owner: str):
        return self.owner_policies().get(owner)

    def held_ranges(self) -> dict:
        self.check_state()  # the cache holds until a commit
        if "held" in self._cache:
            return self._cache["held"]
        out = {}
        answers = self._ask("held_ranges", self.live_shards(), for_matcher=bool(self._answered))
        for shard, held in answers:
            out.update({int(o) * self.n + shard: r for o, r in held.items()})
        if len(answers) == len(self.live_shards()):
            self._cache["held"] = out
        return out

    def missing_names(self) -> list[str]:
        """Names of the shards that did not answer since the last :meth:`refresh`."""
        return [self.shard_names[s] for s in sorted(self.missing)]

    def _global_ref(self, ref: Reference, shard: int) -> Reference:
        return dataclasses.replace(ref, ordinal=ref.ordinal * self.n + shard)

    def conflicts(self, *, ordinals=None, include_resolved: bool = False) -> list:
        """Every shard's stored conflicts (each between two works of that shard), with
        cluster-wide ordinals and ids (``local id * n_shards + shard``)."""
        if ordinals is not None:
            calls = [(s, (local.tolist(), include_resolved))
                     for s, local in self.split(np.asarray(list(ordinals), np.int64)).items()]
        else:
            calls = [(s, (None, include_resolved)) for s in self.live_shards()]
        out = []
        for shard, found in self._ask_each("conflicts", calls) if calls else []:
            out.extend(dataclasses.replace(
                c, conflict_id=c.conflict_id * self.n + shard,
                reference=self._global_ref(c.reference, shard),
                other=self._global_ref(c.other, shard)) for c in found)
        return sorted(out, key=lambda c: (c.created_at, c.conflict_id))

    def stats(self) -> dict:
        per_shard = self._ask("stats", self.live_shards())
        summed = ("references", "audio_references", "video_references", "unowned_references",
                  "held_conflicts", "hours", "audio_hashes", "keyframes", "audio_segments",
                  "video_segments", "tombstones", "audio_index_bytes", "video_index_bytes")
        out: dict = {"catalog": self.path, "shards": self.n,
                     "missing_shards": sorted(self.missing)}
        for key in summed:
            out[key] = sum(s.get(key, 0) for _, s in per_shard)
        out["hours"] = round(out["hours"], 4)
        out["index_bytes_per_hour"] = (round((out["audio_index_bytes"] + out["video_index_bytes"])
                                             / out["hours"]) if out["hours"] else 0)
        out["per_shard"] = [{"shard": s, "references": st["references"], "hours": st["hours"],
                             "generation": st["generation"]} for s, st in per_shard]
        if per_shard:
            out["audio_params"] = per_shard[0][1]["audio_params"]
            out["video_params"] = per_shard[0][1]["video_params"]
        return out

    def close(self) -> None:
        close = getattr(self.fanout, "close", None)
        if close:
            close()
