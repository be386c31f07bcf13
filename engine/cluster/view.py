"""The cluster seen as one catalog: :class:`ShardedCatalog`, what the matcher runs over.

The matcher (:class:`~nanhu.engine.matcher.Matcher`) needs a catalog's postings, keyframe
index, tombstones, size figures and references. :class:`ShardedCatalog` gives it those of the
whole cluster, asking every shard through a :class:`Fanout` (in-process here, Ray actors in
:mod:`nanhu.server.cluster_ray`), so the alignment, the chance model and the verdict run once,
on the whole evidence, exactly as on one catalog:

- **Audio lookups, decided for the cluster.** A bounded lookup
  (:func:`engine.store.postings.select`) decides which keys to read from their posting counts:
  the stop-key cap and the per-query budget. Every shard answers its counts of the query's keys
  and, in the same round trip, the postings the cluster-wide choice may take from it (the keys
  at most the cap holds there), when those are at most the budget. The view sums the counts,
  makes the choice once for the cluster and keeps the chosen keys' postings; only a shard that
  held too many candidates is asked again, for the chosen keys' postings (the second phase).
  A lone shard makes the choice itself. The postings returned are those one catalog holding
  every reference would return.
- **Keyframe search** asks every shard for its ``k`` nearest and keeps the cluster's ``k``
  nearest of those (exact for exact indexes; each shard's HNSW or compact index is as
  approximate as it is alone).
- **Catalog size.** The frames and keyframes the chance model counts are the cluster's sums, so
  a score means the same whether the catalog is split or not.
- **Ordinals** are made cluster-wide: ``local * n_shards + shard`` (uint32 throughout, so a
  shard holds at most ``2**32 / n_shards`` ordinals).

A shard that does not answer (no live replica) is left out of the evidence until the next
:meth:`ShardedCatalog.refresh` (a query starts with one) and named in
:attr:`ShardedCatalog.missing`; the caller must say the answer is partial. Its last known size
figures stay in the catalog size, so the scores of what was found keep their meaning.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import heapq
import logging
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from nanhu.engine.errors import NotFound, VersionMismatch
from nanhu.engine.store.catalog_records import Reference
from nanhu.engine.store.postings import select

log = logging.getLogger(__name__)


class Fanout(Protocol):
    """Calls one :class:`~nanhu.engine.cluster.shard.ShardReads` method on several shards."""

    n_shards: int

    def call_each(self, method: str, calls: Sequence[tuple[int, tuple]]) -> list:
        """``[result or MISSING for each (shard, args) in calls]``: ``method(*args)`` on each
        shard, all asked in parallel where the transport allows; a shard with no live replica
        gives :data:`MISSING`."""


def keys_token(keys: np.ndarray) -> str:
    """A short name for an array of keys (BLAKE2b of its bytes), so that the second phase of a
    lookup can name the keys of the first instead of sending them again."""
    return hashlib.blake2b(np.ascontiguousarray(keys, np.uint32).tobytes(),
                           digest_size=16).hexdigest()


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


#: what a :class:`Fanout` returns for a shard that did not answer
MISSING = _Missing()


class LocalFanout:
    """Every shard opened in this process (:class:`~nanhu.engine.cluster.shard.ShardReads`):
    the cluster without Ray, for one machine, for tests and as the differential twin."""

    def __init__(self, shard_dirs: Sequence[str]) -> None:
        from nanhu.engine.cluster.shard import ShardReads

        self.shards = [ShardReads(str(d)) for d in shard_dirs]
        self.n_shards = len(self.shards)

    def call_each(self, method: str, calls: Sequence[tuple[int, tuple]]) -> list:
        return [getattr(self.shards[s], method)(*args) for s, args in calls]

    def close(self) -> None:
        for shard in self.shards:
            shard.close()


class ShardedCatalog:
    """A read-only catalog over the shards of a cluster (see the module docstring)."""

    def __init__(self, fanout: Fanout, *, name: str = "cluster",
                 shard_names: Sequence[str] | None = None) -> None:
        self.fanout = fanout
        self.n = fanout.n_shards
        self.path = name
        self.shard_names = list(shard_names or [f"shard-{i:03d}" for i in range(self.n)])
        self.missing: set[int] = set()
        #: fan-out calls made, by shard method (each is one round trip, all shards asked at
        #: once): what ``nanhu bench cluster`` reports per query
        self.round_trips: collections.Counter[str] = collections.Counter()
        self._states: list[dict | None] = [None] * self.n
        # answers that only a commit changes (references by ordinal, owner defaults, held
        # ranges), kept until a shard's generation moves: fewer round trips per query
        self._cache: dict = {}
        self._postings = _ShardedPostings(self)
        self._vectors = _ShardedVectors(self)
        self.refresh()
        if all(s is None for s in self._states):
            raise NotFound(f"{name}: no shard of the cluster answered")

    # --- state --------------------------------------------------------------------------------
    def refresh(self) -> bool:
        """Ask every shard for its state (each picks up new commits); True if any moved.

        This starts a new look at the cluster: :attr:`missing` holds the shards that did not
        answer since, and they are not asked again until the next refresh, so a partial answer
        is exactly the answer of the shards that answered."""
        self.missing = set()
        before = self.generation if any(s is not None for s in self._states) else None
        self.round_trips["state"] += 1
        asks = [(i, () if s is None else (s["generation"],)) for i, s in enumerate(self._states)]
        for shard, state in enumerate(self.fanout.call_each("state", asks)):
            if state is MISSING:
                self.missing.add(shard)
            elif state is not None:  # None: still the generation the view knows
                self._states[shard] = state
        if before != self.generation:
            self._cache = {}
        known = [s for s in self._states if s is not None]
        tags = {(s["audio_params_tag"], s["video_params_tag"] or None) for s in known}
        audio_tags = {a for a, _ in tags}
        video_tags = {v for _, v in tags if v}
        if len(audio_tags) > 1 or len(video_tags) > 1:
            raise VersionMismatch(f"{self.path}: shards use different parameters "
                                  f"({sorted(audio_tags)} / {sorted(video_tags)}): rebuild them")
        return before != self.generation

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
                                          if s["video_params_tag"]), "")}

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

    def _ask(self, method: str, shards: Sequence[int], *args: Any) -> list[tuple[int, Any]]:
        """``method(*args)`` on each of ``shards``: [(shard, answer)] of those that answered."""
        return self._ask_each(method, [(s, args) for s in shards])

    def _ask_each(self, method: str, calls: list[tuple[int, tuple]]) -> list[tuple[int, Any]]:
        calls = [(s, a) for s, a in calls if s not in self.missing]
        if not calls:
            return []
        self.round_trips[method] += 1
        out = []
        for (shard, _), value in zip(calls, self.fanout.call_each(method, calls)):
            if value is MISSING:
                self.missing.add(shard)
            else:
                out.append((shard, value))
        return out

    def deleted_ordinals(self) -> np.ndarray:
        parts = [self.to_global(s["deleted"], i) for i, s in enumerate(self._states)
                 if s is not None]
        return np.sort(np.concatenate(parts)) if parts else np.zeros(0, np.int64)

    def postings(self) -> _ShardedPostings:
        return self._postings

    def vectors(self) -> _ShardedVectors:
        return self._vectors

    # --- references -----------------------------------------------------------------------------
    def by_ordinals(self, ordinals: np.ndarray) -> dict[int, Reference]:
        known = self._cache.setdefault("refs", {})
        wanted = np.unique(np.asarray(ordinals, np.int64))
        asked = [o for o in wanted.tolist() if o not in known]
        if asked:
            calls = [(s, (local,)) for s, local in self.split(np.array(asked, np.int64)).items()]
            answered = set()
            for shard, refs in self._ask_each("by_ordinals", calls):
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
        frames = self._cache.setdefault("frames", {})
        wanted = [s for s in self.live_shards() if s not in frames and s not in self.missing]
        for shard, (local, lengths) in self._ask("reference_frames", wanted):
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
        if "held" in self._cache:
            return self._cache["held"]
        out = {}
        answers = self._ask("held_ranges", self.live_shards())
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


class _ShardedPostings:
    """The cluster's postings, looked up for the whole cluster (see the module docstring)."""

    def __init__(self, view: ShardedCatalog) -> None:
        self.view = view

    def __len__(self) -> int:
        return sum(s["n_postings"] for s in self.view._known())

    def lookup(self, keys: np.ndarray, *, max_postings: int | None = None,
               budget: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        view = self.view
        keys = np.asarray(keys, np.uint32)
        empty = np.zeros(0, np.int64), np.zeros(0, np.uint32), np.zeros(0, np.uint32)
        shards = [s for s in view.live_shards() if view._states[s]["n_postings"]]
        if keys.size == 0 or not shards:
            return empty
        alone = budget if len(shards) == 1 else None  # its counts are the cluster's
        answers = view._ask("lookup", shards, keys, max_postings, budget, alone)
        if not answers:
            return empty
        per_key = np.sum([c.astype(np.int64) for _, (c, _) in answers], axis=0)
        keep = select(per_key, max_postings=max_postings, budget=budget) & (per_key > 0)
        picked = np.flatnonzero(keep)
        if picked.size == 0:
            return empty
        found = {s: got for s, (_, got) in answers if got is not None}
        # the shards whose candidates were too many to send: the second phase, by token
        later = [s for s, (c, got) in answers if got is None and c[picked].any()]
        if later:
            small = picked.astype(np.uint32)
            second = view._ask("postings_of", later, None, small, keys_token(keys))
            again = [s for s, answer in second if answer is None]  # another replica's spans
            second = [(s, answer) for s, answer in second if answer is not None]
            if again:
                second += view._ask("postings_of", again, keys, small)
            for shard, (k, o, f) in second:
                found[shard] = (picked[np.asarray(k, np.int64)], o, f)
        key_index, ordinals, frames = [], [], []
        for shard in sorted(found):
            k, o, f = found[shard]
            k = np.asarray(k, np.int64)
            chosen = keep[k]  # not the candidates the cluster-wide selection left out
            k, o, f = k[chosen], np.asarray(o)[chosen], np.asarray(f)[chosen]
            key_index.append(k)
            ordinals.append(view.to_global(o, shard).astype(np.uint32))
            frames.append(np.asarray(f, np.uint32))
        if not key_index:
            return empty
        return np.concatenate(key_index), np.concatenate(ordinals), np.concatenate(frames)


class _ShardedVectors:
    """The cluster's keyframe index: each shard's ``k`` nearest, the cluster's ``k`` kept."""

    def __init__(self, view: ShardedCatalog) -> None:
        self.view = view

    def __len__(self) -> int:
        return sum(s["n_vectors"] for s in self.view._known())

    @property
    def dim(self) -> int:
        return next((s["dim"] for s in self.view._known() if s["dim"]), 0)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        view = self.view
        queries = np.ascontiguousarray(queries, np.float32)
        m = queries.shape[0]
        shards = [s for s in view.live_shards() if view._states[s]["n_vectors"]]
        found = view._ask("search", shards, queries, k) if shards and m else []
        if not found:
            return (np.full((m, k), -1, np.int64), np.zeros((m, k), np.float32),
                    np.full((m, k), -np.inf, np.float32))
        ordinals = np.concatenate([np.where(o >= 0, np.asarray(o, np.int64) * view.n + s, -1)
                                   for s, (o, _, _) in found], axis=1)
        times = np.concatenate([t for _, (_, t, _) in found], axis=1)
        sims = np.concatenate([np.where(o >= 0, x, -np.inf) for _, (o, _, x) in found], axis=1)
        top = np.argsort(-sims, axis=1, kind="stable")[:, :k]
        return (np.take_along_axis(ordinals, top, 1),
                np.take_along_axis(times, top, 1).astype(np.float32),
                np.take_along_axis(sims, top, 1).astype(np.float32))
