"""Writing a cluster: each change goes to the one shard that holds its reference, as one commit
of that shard's catalog (:class:`ShardWrites`), routed by :class:`ClusterWriter`.

A registration lands on its placement shard (:mod:`~nanhu.engine.cluster.placement`) after the
id and the content digest were checked on every shard, so a work is registered once in the
whole cluster. A delete or a policy change goes to the shard that holds the work now (during a
rebalance that may be its old shard). Owner-wide default policies are written to every shard,
one commit each, so that each shard can judge its matches alone; the write is idempotent and a
failed one is retried by calling it again.

Conflicts between works (``engine.conflicts``) are found within the registration's shard: a
new work overlapping a work on another shard is registered without a held conflict
(docs/cluster.md lists this limit).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from nanhu.engine.catalog import Catalog
from nanhu.engine.cluster.view import MISSING, ShardedCatalog
from nanhu.engine.errors import AlreadyExists, InvalidArgument, NotFound, ShardUnavailable
from nanhu.engine.fingerprint import Fingerprint, VideoPrint
from nanhu.engine.store.catalog_records import Reference

log = logging.getLogger(__name__)

#: buckets of a postings segment read at a time when a reference's keys are exported
_EXPORT_BUCKETS = 1 << 15


class ShardWrites:
    """The writes of one shard catalog. Each :meth:`apply` is one commit (all its operations or
    none); the catalog's lock makes it the shard's only writer meanwhile."""

    def __init__(self, path: str) -> None:
        self.path = str(path)

    def apply(self, ops: Sequence[dict]) -> list[Any]:
        """Run ``ops`` and commit them together; returns each operation's result.

        Operations: ``{"op": "add", "ref_id", "fingerprint" (bytes), "title", "owner",
        "metadata", "policy"}``, ``{"op": "delete", "ref_id"}``, ``{"op": "set_policy",
        "ref_id", "policy"}``, ``{"op": "set_owner_policy", "owner", "policy"}``,
        ``{"op": "set_owner", "ref_id", "owner"}``, ``{"op": "resolve_conflict",
        "conflict_id" (the shard's own), "by", "note"}``."""
        from nanhu.engine.conflicts import find_overlaps

        results: list[Any] = []
        with Catalog(self.path, writable=True) as catalog:
            try:
                for op in ops:
                    kind = op["op"]
                    if kind == "add":
                        fp = Fingerprint.from_bytes(op["fingerprint"])
                        overlaps = find_overlaps(catalog, fp) if op.get("overlaps", True) else []
                        catalog.add(op["ref_id"], fp, title=op.get("title", ""),
                                    owner=op.get("owner", ""), metadata=op.get("metadata"),
                                    policy=op.get("policy") or {}, overlaps=overlaps)
                        results.append(len(overlaps))
                    elif kind == "delete":
                        results.append(catalog.delete(op["ref_id"]).ref_id)
                    elif kind == "set_policy":
                        results.append(catalog.set_policy(op["ref_id"], op["policy"]).ref_id)
                    elif kind == "set_owner_policy":
                        catalog.set_owner_policy(op["owner"], op["policy"])
                        results.append(op["owner"])
                    elif kind == "set_owner":
                        results.append(catalog.set_owner(op["ref_id"], op["owner"]).ref_id)
                    elif kind == "resolve_conflict":
                        catalog.resolve_conflict(op["conflict_id"], by=op.get("by", ""),
                                                 note=op.get("note", ""))
                        results.append(op["conflict_id"])
                    else:
                        raise InvalidArgument(f"unknown shard operation {kind!r}")
                if catalog.has_staged:
                    catalog.commit()
            except BaseException:
                catalog.rollback()
                raise
        return results

    def export(self, ref_ids: Sequence[str]) -> dict[str, bytes]:
        """The stored fingerprints of ``ref_ids`` (keys and frames as registered, reference
        peaks, keyframe vectors and times, local features), as :meth:`Fingerprint.to_bytes`, to
        register them elsewhere.

        One pass over the shard's postings for all of them, a bounded number of buckets at a
        time. References whose keyframes live only in a compact (product-quantised) segment
        cannot be exported: the float vectors are gone; re-register them from their media."""
        from nanhu.engine.store.postings import unmix_keys
        from nanhu.engine.store.vectors import VectorSegment

        with Catalog(self.path) as catalog:
            refs = {}
            for ref_id in ref_ids:
                try:
                    refs[ref_id] = catalog.get(ref_id)
                except NotFound:
                    continue
            if not refs:
                return {}
            by_ordinal = {r.ordinal: r for r in refs.values()}
            wanted = np.array(sorted(by_ordinal), np.uint32)
            keys: dict[int, list] = {o: [] for o in by_ordinal}
            frames: dict[int, list] = {o: [] for o in by_ordinal}
            for segment in catalog.postings().segments:
                stop = 1 << segment.dir_bits
                for first in range(0, stop, _EXPORT_BUCKETS):
                    mixed, posting = segment.keys_in(first, min(stop, first + _EXPORT_BUCKETS))
                    if not posting.size:
                        continue
                    ordinals, frame = segment.resolve(posting)
                    hit = np.isin(ordinals, wanted)
                    if not hit.any():
                        continue
                    found_keys = unmix_keys(mixed[hit], segment.key_bits)
                    found_ords, found_frames = ordinals[hit], frame[hit]
                    for o in np.unique(found_ords).tolist():
                        mine = found_ords == o
                        keys[o].append(found_keys[mine])
                        frames[o].append(found_frames[mine])
            vectors: dict[int, list] = {o: [] for o in by_ordinal}
            for entry in catalog.manifest["video_segments"]:
                segment = VectorSegment(catalog.path / entry["file"])
                for o in np.unique(segment.ordinals[np.isin(segment.ordinals, wanted)]).tolist():
                    rows = segment.ordinals == o
                    vectors[o].append((np.array(segment.vectors[rows]),
                                       np.array(segment.times_s[rows])))
            local = catalog.local_index().features
            # the peak check's reference peaks move with the work (catalog format 5)
            peak_store = (catalog.reference_peaks() if catalog.manifest.get("audio_peaks")
                          else None)
            out = {}
            for o, ref in by_ordinal.items():
                if ref.n_keyframes and not vectors[o]:
                    raise InvalidArgument(
                        f"{ref.ref_id!r}: its keyframes are stored only in compact form in "
                        f"{self.path}; re-register it from its media to move it")
                fp = _fingerprint(ref, keys[o], frames[o], vectors[o], catalog)
                if fp.video is not None and o in local:  # the ORB keyframes move with it
                    fp = dataclasses.replace(fp, video=dataclasses.replace(
                        fp.video, local=local[o]))
                if fp.audio is not None and peak_store is not None and o in peak_store:
                    fp = dataclasses.replace(fp, reference_peaks=_stored_peaks(peak_store, o))
                out[ref.ref_id] = fp.to_bytes()
            return out


def _stored_peaks(store, ordinal: int):
    """A reference's stored peaks as a fingerprint carries them (the stored log-frequency
    sixteenths decode exactly, so registering them elsewhere stores the same integers)."""
    from nanhu.engine.audio.peaks import Peaks

    frames, log_freq = store.window(ordinal, 0.0, float(2**32))
    return Peaks(frames.astype(np.int64), log_freq.astype(np.float32),
                 np.zeros(frames.size, np.float32))


def _fingerprint(ref: Reference, keys: list, frames: list, vectors: list,
                 catalog: Catalog) -> Fingerprint:
    from nanhu.engine.audio.keys import Landmarks

    audio = None
    if keys:
        hashes = np.concatenate(keys).astype(np.uint32)
        at = np.concatenate(frames).astype(np.int32)
        order = np.lexsort((hashes, at))
        audio = Landmarks(hashes[order], at[order], np.zeros(hashes.size, np.uint8),
                          np.ones(1, np.float32), np.ones(1, np.float32))
    video = None
    if vectors:
        v = np.concatenate([a for a, _ in vectors]).astype(np.float32)
        t = np.concatenate([b for _, b in vectors]).astype(np.float32)
        order = np.argsort(t, kind="stable")
        video = VideoPrint(v[order], t[order], catalog.manifest.get("video_params_tag") or "")
    return Fingerprint(duration_s=ref.duration_s, digest=ref.digest, audio=audio,
                       audio_params_tag=catalog.manifest["audio_params_tag"] if audio else "",
                       video=video)


class LocalWrites:
    """Every shard's writes in this process: the cluster without Ray (and its test twin)."""

    def __init__(self, shard_dirs: Sequence[str]) -> None:
        self.shards = [ShardWrites(str(d)) for d in shard_dirs]
        self.n_shards = len(self.shards)

    def call_each(self, method: str, calls: Sequence[tuple[int, tuple]]) -> list:
        return [getattr(self.shards[s], method)(*args) for s, args in calls]


class ClusterWriter:
    """Routes registrations, deletes and policy changes to their shards (module docstring).

    view : the cluster's reads (ids and digests are checked on every shard).
    writes : a fanout over the shards' writers (:class:`LocalWrites`, or Ray actors)."""

    def __init__(self, layout, view: ShardedCatalog, writes) -> None:
        self.layout = layout
        self.view = view
        self.writes = writes

    def _one(self, shard: int, ops: list[dict]) -> list:
        (answer,) = self.writes.call_each("apply", [(shard, (ops,))])
        if answer is MISSING:
            raise ShardUnavailable(f"shard {self.layout.shard_names[shard]} has no live writer; "
                                   "nothing was written (try again)")
        return answer

    def holder(self, ref_id: str) -> tuple[int, Reference]:
        """(shard, reference) of a registered work, wherever it is now."""
        self.view.refresh()
        reference = self.view.get(ref_id)
        return reference.ordinal % self.view.n, reference

    def register(self, ref_id: str, fp: Fingerprint, *, title: str = "", owner: str = "",
                 metadata: dict | None = None, policy: dict | None = None) -> tuple[int, int]:
        """Register one work on its placement shard; returns (that shard, how many overlaps
        with that shard's works were stored as conflicts)."""
        self.view.refresh()
        try:
            self.view.get(ref_id)
        except NotFound:
            pass
        else:
            raise AlreadyExists(f"reference id {ref_id!r} already exists", existing_id=ref_id)
        if fp.digest:
            twin = self.view.find_digest(fp.digest)
            if twin is not None:
                raise AlreadyExists(f"same content is already registered as {twin.ref_id!r}",
                                    existing_id=twin.ref_id)
        shard = self.layout.shard_for(ref_id)
        (overlaps,) = self._one(shard, [{
            "op": "add", "ref_id": ref_id, "fingerprint": fp.keyed().to_bytes(), "title": title,
            "owner": owner, "metadata": metadata or {}, "policy": policy or {}}])
        log.info("registered reference=%s shard=%s", ref_id, self.layout.shard_names[shard])
        return shard, overlaps

    def delete(self, ref_id: str) -> Reference:
        shard, reference = self.holder(ref_id)
        self._one(shard, [{"op": "delete", "ref_id": ref_id}])
        return reference

    def set_policy(self, ref_id: str, policy: dict | None) -> None:
        shard, _ = self.holder(ref_id)
        self._one(shard, [{"op": "set_policy", "ref_id": ref_id, "policy": policy}])

    def set_owner(self, ref_id: str, owner: str) -> None:
        shard, _ = self.holder(ref_id)
        self._one(shard, [{"op": "set_owner", "ref_id": ref_id, "owner": owner}])

    def resolve_conflict(self, conflict_id: int, *, by: str, note: str) -> None:
        """Resolve a conflict by its cluster-wide id (:meth:`ShardedCatalog.conflicts`)."""
        shard, local = int(conflict_id) % self.view.n, int(conflict_id) // self.view.n
        self._one(shard, [{"op": "resolve_conflict", "conflict_id": local, "by": by,
                           "note": note}])

    def set_owner_policy(self, owner: str, policy) -> None:
        """Written to every shard, one commit each (idempotent: call again after a failure)."""
        op = {"op": "set_owner_policy", "owner": owner, "policy": policy}
        answers = self.writes.call_each("apply", [(s, ([op],)) for s in range(self.view.n)])
        missing = [self.layout.shard_names[s] for s, a in enumerate(answers) if a is MISSING]
        if missing:
            raise ShardUnavailable(f"owner policy of {owner!r} not written to shards "
                                   f"{', '.join(missing)} (no live writer): call again")
