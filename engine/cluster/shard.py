"""One shard's reads, as the federated view asks for them (:class:`ShardReads`).

A shard is an ordinary catalog directory. :class:`ShardReads` opens it read-only and answers
in plain values (numpy arrays, :class:`~nanhu.engine.store.catalog_records.Reference` s, dicts),
so the same object serves in-process (:class:`~nanhu.engine.cluster.view.LocalFanout`) and
inside a Ray actor (:mod:`nanhu.server.cluster_ray`). It picks up a new commit when
:meth:`ShardReads.state` finds the manifest's generation moved, or :meth:`ShardReads.checked`
(a query's first call, carrying the state check); every other call answers at the generation
the last of those saw, so one query sees one generation of each shard.

Ordinals here are the shard's own; the view makes them cluster-wide.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from nanhu.engine.catalog import Catalog
from nanhu.engine.cluster.fanout import keys_token
from nanhu.engine.cluster.wire import PackedCounts, pack_counts, pack_postings
from nanhu.engine.errors import CatalogCorrupt, NotFound
from nanhu.engine.store.catalog_records import Reference
from nanhu.engine.store.postings import select

if TYPE_CHECKING:
    from nanhu.engine.video.local import LocalFeatures

#: records sent with a lookup's postings: those of the references that hold most of them. A
#: match names one of a shard's three most-posted references in 97 % of the 195 matched
#: screenings of ``nanhu bench cluster`` (88 % with one, 99 % with five) at a few hundred
#: bytes a record, so a matched query rarely needs a reference read after its looks
RECORDS_WITH_POSTINGS = 3


class ShardReads:
    """Read-only answers of one shard catalog (see the module docstring)."""

    def __init__(self, path: str) -> None:
        self.path = str(path)
        self.catalog = Catalog(self.path)
        # {keys token: (generation, spans)} the last lookup call kept for a second phase
        self._kept: dict[str, tuple] = {}

    def state(self, known: int | None = None) -> dict | None:
        """Pick up a new commit, then this shard's figures for the view: generation, the
        catalog-size figures the scores use, the tombstoned ordinals and the parameter tags.
        None when the generation is still ``known`` (the view's figures stand; a smaller
        answer, as most queries find no new commit)."""
        self.catalog.refresh()
        for attempt in range(3):
            try:
                postings = self.catalog.postings()
                vectors = self.catalog.vectors()
                local = self.catalog.local_index()
                break
            except (CatalogCorrupt, FileNotFoundError):
                # a compaction replaced the segments between the manifest and the mapping
                if attempt == 2:
                    raise
                self.catalog.close()
                self.catalog = Catalog(self.path)
        if known is not None and self.catalog.generation == known:
            return None
        manifest = self.catalog.manifest
        return {
            "generation": self.catalog.generation,
            "audio_seconds": self.catalog.audio_seconds,
            "n_postings": len(postings),
            "n_vectors": len(vectors),
            "dim": int(getattr(vectors, "dim", 0) or 0) if len(vectors) else 0,
            "deleted": np.asarray(self.catalog.deleted_ordinals(), np.int64),
            # the references with local features, and their ORB keyframes (the verification's
            # candidates and catalog size, engine.cluster.lookup.ShardedLocalIndex)
            "local_ordinals": np.array(sorted(local.features), np.uint32),
            "local_keyframes": len(local),
            "audio_params": self.catalog.audio_params,
            "audio_params_tag": manifest["audio_params_tag"],
            # whether the peak check can read this shard's references' peaks (format 5)
            "audio_peaks": bool(manifest.get("audio_peaks")),
            "video_params_tag": manifest.get("video_params_tag") or "",
        }

    def checked(self, known: int | None, method: str | None, *args):
        """A query's first call: :meth:`state` (``known``: the generation the view knows) and
        ``method(*args)`` at the generation it saw, in one round trip: (state or None, answer;
        None without ``method``)."""
        state = self.state(known)
        return state, (getattr(self, method)(*args) if method else None)

    # --- audio: a bounded lookup, in one round trip where it can -------------------------
    def lookups(self, looks: list[tuple]) -> list[tuple]:
        """Several announced looks in one round trip: ``[lookup(*look) for look in looks]``,
        each look ``(keys, max_postings, within, budget)``; the spans of every look whose
        candidates were too many are kept for :meth:`postings_of`."""
        self._kept = {}
        return [self._lookup(*look) for look in looks]

    def lookup(self, keys: np.ndarray, max_postings: int | None, within: int | None,
               budget: int | None = None
               ) -> tuple[PackedCounts, tuple[np.ndarray, np.ndarray, np.ndarray] | None,
                          dict[int, Reference]]:
        """The postings each key holds in this shard, for the cluster-wide selection, and,
        where that fits, the postings the selection may choose from here: (index into
        ``keys``, ordinal, frame), or None. Both travel compact
        (:mod:`~nanhu.engine.cluster.wire`: the counts of the keys that hold postings, narrow
        integers). Third, {ordinal: record} of the references most of those postings name
        (:meth:`_likely_records`; empty without postings).

        - ``budget`` given (this shard is the whole cluster): the selection is this shard's
          own, made here (:func:`~nanhu.engine.store.postings.select`); its postings always come
          back.
        - else the candidates are the keys at most ``max_postings`` hold here (a key above the
          cap here is above it in the cluster). When they hold at most ``within`` postings,
          they come back, and the view keeps those of the keys it chooses. Else None, and the
          keys' spans are kept for the :meth:`postings_of` that follows (the second phase).
        """
        self._kept = {}
        return self._lookup(keys, max_postings, within, budget)

    def _lookup(self, keys: np.ndarray, max_postings: int | None, within: int | None,
                budget: int | None = None):
        keys = np.asarray(keys, np.uint32)
        postings = self.catalog.postings()
        spans = postings.spans(keys)
        counts = (np.sum([count for _, count in spans], axis=0) if spans
                  else np.zeros(keys.size, np.int64))
        # alone, the selection is made here; else the candidates are all keys under the cap
        candidates = select(counts, max_postings=max_postings, budget=budget) & (counts > 0)
        if budget is None and within is not None and int(counts[candidates].sum()) > within:
            self._kept[keys_token(keys)] = (self.catalog.generation, spans)
            return pack_counts(counts), None, {}
        picked = np.flatnonzero(candidates)
        key_index, ordinals, frames = postings.read(
            [(first[picked], count[picked]) for first, count in spans])
        return (pack_counts(counts), pack_postings(picked[key_index], ordinals, frames),
                self._likely_records(ordinals))

    def _likely_records(self, ordinals: np.ndarray) -> dict[int, Reference]:
        """The records of the :data:`RECORDS_WITH_POSTINGS` references that hold most of
        ``ordinals`` (a lookup's postings): those a match is most likely to name, sent with
        the postings so that the view need not ask for them after the match (a round trip
        saved when they were not known yet; :meth:`ShardedCatalog.by_ordinals`)."""
        if ordinals.size == 0:
            return {}
        found, counts = np.unique(ordinals, return_counts=True)
        top = found[np.argsort(-counts, kind="stable")[:RECORDS_WITH_POSTINGS]]
        return self.catalog.by_ordinals(top.astype(np.int64))

    def postings_of(self, keys: np.ndarray | None, picked: np.ndarray, token: str = ""
                    ) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray],
                               dict[int, Reference]] | None:
        """Every posting of ``keys[picked]`` (the keys the view selected): (index into
        ``picked``, ordinal, frame), narrow (:func:`~nanhu.engine.cluster.wire.pack_postings`),
        and the likely records (as :meth:`lookup`).

        ``keys`` may be None with the ``token`` (:func:`keys_token`) of keys the last
        :meth:`lookup` or :meth:`lookups` kept the spans of: their spans are reused (no second
        directory search, and the keys are not sent twice). Returns None when this shard does not hold
        those spans (another replica answered the counts, or a commit came between): ask again
        with the keys."""
        picked = np.asarray(picked, np.int64)
        postings = self.catalog.postings()
        kept = self._kept.get(token)
        if keys is None:
            if kept is None or kept[0] != self.catalog.generation:
                return None
            spans = [(first[picked], count[picked]) for first, count in kept[1]]
        else:
            spans = postings.spans(np.asarray(keys, np.uint32)[picked])
        key_index, ordinals, frames = postings.read(spans)
        return pack_postings(key_index, ordinals, frames), self._likely_records(ordinals)

    def peak_windows(self, requests: list[tuple[int, float, float]]
                     ) -> list[tuple[np.ndarray, np.ndarray]]:
        """The stored peaks the peak check reads, for each (ordinal, first frame, last frame):
        (frames u32, log-frequency u16) as stored
        (:meth:`~nanhu.engine.store.audio_peaks.ReferencePeaks.raw_window`), copied out of the
        mapped file to travel; empty where this shard stores no peaks."""
        if not self.catalog.manifest.get("audio_peaks"):
            return [(np.zeros(0, np.uint32), np.zeros(0, np.uint16)) for _ in requests]
        store = self.catalog.reference_peaks()
        return [tuple(np.array(a) for a in store.raw_window(int(o), float(lo), float(hi)))
                for o, lo, hi in requests]

    # --- video --------------------------------------------------------------------------------
    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """This shard's ``k`` nearest keyframes of each query vector."""
        index = self.catalog.vectors()
        if len(index) == 0:
            m = len(queries)
            return (np.full((m, k), -1, np.int64), np.zeros((m, k), np.float32),
                    np.full((m, k), -np.inf, np.float32))
        return index.search(np.asarray(queries, np.float32), k)

    def local_features(self, wanted: list[tuple[int, np.ndarray, np.ndarray]], most: int
                       ) -> dict[int, LocalFeatures]:
        """The local features of the verification's candidates here, ``wanted`` as (ordinal,
        hit times, hit similarities), each cut to the at most ``most`` keyframes the view's
        verification will try (:func:`~nanhu.engine.video.verify.features_to_try`)."""
        from nanhu.engine.video.verify import features_to_try

        features = self.catalog.local_index().features
        return {int(o): features_to_try(features[int(o)], times, sims, most)
                for o, times, sims in wanted if int(o) in features}

    # --- references -----------------------------------------------------------------------------
    def by_ordinals(self, ordinals: np.ndarray) -> dict[int, Reference]:
        return self.catalog.by_ordinals(np.asarray(ordinals, np.int64))

    def reference_frames(self) -> tuple[np.ndarray, np.ndarray]:
        """(local ordinals, audio frames) of every visible reference (the chance model's
        reference sizes)."""
        return self.catalog.reference_frames()

    def get(self, ref_id: str) -> Reference | None:
        try:
            return self.catalog.get(ref_id)
        except NotFound:
            return None

    def find_digest(self, digest: str) -> Reference | None:
        return self.catalog.find_digest(digest)

    def list(self, owner: str | None, limit: int, after_id: str | None) -> list[Reference]:
        return self.catalog.list(owner=owner, limit=limit, after_id=after_id)

    def list_ids(self, ref_ids: list[str]) -> dict[str, Reference]:
        """{id: reference} of those of ``ref_ids`` this shard holds."""
        out = {}
        for ref_id in ref_ids:
            ref = self.get(ref_id)
            if ref is not None:
                out[ref_id] = ref
        return out

    def owner_policies(self) -> dict:
        return self.catalog.owner_policies()

    def held_ranges(self) -> dict:
        return self.catalog.held_ranges()

    def stats(self) -> dict:
        return self.catalog.stats()

    def conflicts(self, ordinals: list[int] | None, include_resolved: bool) -> list:
        return self.catalog.conflicts(ordinals=ordinals, include_resolved=include_resolved)

    def close(self) -> None:
        self.catalog.close()
