"""The cluster's postings, keyframe index and local features as the matcher asks them, answered
by the shards (:class:`ShardedPostings`, :class:`ShardedVectors`, :class:`ShardedLocalIndex`;
the view is :class:`~nanhu.engine.cluster.view.ShardedCatalog`).

**Audio lookups, decided for the cluster.** A bounded lookup
(:func:`engine.store.postings.select`) decides which keys to read from their posting counts: the
stop-key cap and the per-query budget. Every shard answers its counts of the query's keys and, in
the same round trip, the postings the cluster-wide choice may take from it (the keys at most the
cap holds there), when those are at most the budget. The view sums the counts, makes the choice
once for the cluster and keeps the chosen keys' postings; only a shard that held too many
candidates is asked again, for the chosen keys' postings (the second phase). A lone shard makes
the choice itself. The postings returned are those one catalog holding every reference would
return.

**Announced looks.** The matcher looks at a window's keys in stages (the unwarped keys, then the
resampling warps', then the rest), each only when the looks before did not cover the window, and
says so up front (:meth:`ShardedPostings.plan`). The first look is asked alone (it also carries
the query's state check, :meth:`ShardedCatalog.refresh`). With ``ahead`` (``looks_ahead`` of the
view), when a second is asked, every look left is asked in the same round trip and kept, so a
window costs each shard at most two round trips however many looks it takes; each look is
answered exactly as if asked alone. It is off by default: the looks left are then computed
whether needed or not, and a window that the second look settles waits for the third's work
too. On one machine with 2 cores that cost as much as the trip saved, or more at 4 shards
(docs/results/cluster-fanout-2026-12-02/); it pays where a round trip costs more than a look.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from nanhu.engine.cluster.fanout import keys_token
from nanhu.engine.cluster.wire import unpack_counts, unpack_postings
from nanhu.engine.store.postings import select

if TYPE_CHECKING:
    from nanhu.engine.cluster.view import ShardedCatalog
    from nanhu.engine.video.local import LocalFeatures

Look = tuple[np.ndarray, "int | None", "int | None"]  # (keys, max_postings, budget)


def _empty() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return np.zeros(0, np.int64), np.zeros(0, np.uint32), np.zeros(0, np.uint32)


class ShardedPostings:
    """The cluster's postings, looked up for the whole cluster (see the module docstring)."""

    def __init__(self, view: ShardedCatalog, *, ahead: bool = False) -> None:
        self.view = view
        #: ask a window's looks left together when a second is asked (else one trip a look;
        #: the module docstring says when each measured better)
        self.ahead = ahead
        self._plan: list[Look] = []
        self._ahead: dict[int, list] = {}  # planned look -> [(shard, its answer)], asked ahead

    def __len__(self) -> int:
        return sum(s["n_postings"] for s in self.view._known())

    def plan(self, looks: Sequence[Look]) -> None:
        """The lookups a window will make, in order, each only if the ones before did not
        settle it: ``(keys, max_postings, budget)`` as :meth:`lookup` will be called."""
        self._plan = [(np.asarray(k, np.uint32), m, b) for k, m, b in looks]
        self._ahead = {}

    def forget(self) -> None:
        """Drop the plan and what was asked ahead (a new query, or the state moved)."""
        self._plan, self._ahead = [], {}

    def _planned(self, keys: np.ndarray, max_postings: int | None, budget: int | None
                 ) -> int | None:
        for i, (k, m, b) in enumerate(self._plan):
            if m == max_postings and b == budget and k.shape == keys.shape and \
                    np.array_equal(k, keys):
                return i
        return None

    def lookup(self, keys: np.ndarray, *, max_postings: int | None = None,
               budget: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        view = self.view
        keys = np.asarray(keys, np.uint32)
        if keys.size == 0:
            return _empty()
        shards = [s for s in view.live_shards() if view._states[s]["n_postings"]]
        if not shards:
            view.check_state(for_matcher=True)  # a query's first call: a new commit may bring postings
            return _empty()
        alone = len(shards) == 1  # its counts are the cluster's: it chooses itself

        def wire(look: Look) -> tuple:
            k, m, b = look
            return k, m, b, (b if alone else None)

        at = self._planned(keys, max_postings, budget)
        together = self._together(at)
        if at is not None and at in self._ahead:
            answers = self._ahead.pop(at)
        elif together:
            # this look and the next ones (that have keys), in one round trip
            ahead = [at] + together
            per_shard = view._ask("lookups", shards, [wire(self._plan[j]) for j in ahead],
                                  for_matcher=True)
            answers = [(s, got[0]) for s, got in per_shard]
            for place, j in enumerate(ahead[1:], 1):
                self._ahead[j] = [(s, got[place]) for s, got in per_shard]
        else:
            answers = view._ask("lookup", shards, *wire((keys, max_postings, budget)),
                                for_matcher=True)
        return self._choose(keys, answers, max_postings, budget)

    def _together(self, at: int | None) -> list[int]:
        """The planned looks after ``at`` to ask in the same round trip as ``at``: every one
        left (that has keys) when ``ahead`` and ``at`` is a later look, else none."""
        if not self.ahead or not at:
            return []
        return [j for j in range(at + 1, len(self._plan)) if self._plan[j][0].size]

    def _choose(self, keys: np.ndarray, answers: list, max_postings: int | None,
                budget: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The cluster-wide selection over every shard's (counts, candidates or None)."""
        view = self.view
        if not answers:
            return _empty()
        for s, (_, _, records) in answers:
            view.remember(s, records)
        answers = [(s, (unpack_counts(c), got if got is None else unpack_postings(got)))
                   for s, (c, got, _) in answers]
        per_key = np.sum([c for _, (c, _) in answers], axis=0)
        keep = select(per_key, max_postings=max_postings, budget=budget) & (per_key > 0)
        picked = np.flatnonzero(keep)
        if picked.size == 0:
            return _empty()
        found = {s: got for s, (_, got) in answers if got is not None}
        # the shards whose candidates were too many to send: the second phase, by token
        later = [s for s, (c, got) in answers if got is None and c[picked].any()]
        if later:
            small = picked.astype(np.uint32)
            second = view._ask("postings_of", later, None, small, keys_token(keys),
                               for_matcher=True)
            again = [s for s, answer in second if answer is None]  # another replica's spans
            second = [(s, answer) for s, answer in second if answer is not None]
            if again:
                second += view._ask("postings_of", again, keys, small, for_matcher=True)
            for shard, (answer, records) in second:
                view.remember(shard, records)
                k, o, f = unpack_postings(answer)
                found[shard] = (picked[k.astype(np.int64)], o, f)
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
            return _empty()
        return np.concatenate(key_index), np.concatenate(ordinals), np.concatenate(frames)


class ShardedVectors:
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
        if m and not shards:
            view.check_state(for_matcher=True)  # a query's first call: a new commit may bring keyframes
        found = view._ask("search", shards, queries, k, for_matcher=True) if shards and m else []
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


class ShardedLocalIndex:
    """The cluster's local features as :func:`engine.video.verify.verify` asks them
    (:class:`~nanhu.engine.video.verify.LocalIndex`'s questions), so that verification runs once,
    at the view, on the whole evidence, as on one catalog:

    - the ORB keyframes the chance model counts are the cluster's (each shard's state has its
      count), and the references that have local features, which the candidates are chosen
      among, are known from the states too: no round trip;
    - the candidates' features come in one round trip, asked only of the shards that hold a
      candidate, each cut by its shard to the keyframes the verification will try
      (:func:`~nanhu.engine.video.verify.features_to_try`: at most ``keyframes_per_reference``
      a candidate, ~1.6 kB each, whatever the reference's length).
    """

    def __init__(self, view: ShardedCatalog) -> None:
        self.view = view
        self._ordinals: tuple[tuple, np.ndarray] | None = None

    @property
    def keyframes(self) -> int:
        return sum(int(s.get("local_keyframes", 0)) for s in self.view._known())

    def __len__(self) -> int:
        return self.keyframes

    def _global_ordinals(self) -> np.ndarray:
        view = self.view
        if self._ordinals is None or self._ordinals[0] != view.generation:
            parts = [view.to_global(s.get("local_ordinals", np.zeros(0, np.uint32)), i)
                     for i, s in enumerate(view._states) if s is not None]
            self._ordinals = (view.generation,
                              np.sort(np.concatenate(parts)) if parts else np.zeros(0, np.int64))
        return self._ordinals[1]

    def has_features(self, ordinals: np.ndarray) -> np.ndarray:
        return np.isin(np.asarray(ordinals, np.int64), self._global_ordinals())

    def features_to_verify(self, hits: dict[int, tuple[np.ndarray, np.ndarray]], most: int
                           ) -> dict[int, LocalFeatures]:
        view = self.view
        calls = [(shard, ([(int(o), *hits[int(o) * view.n + shard]) for o in local.tolist()],
                          most))
                 for shard, local in view.split(np.array(sorted(hits), np.int64)).items()]
        out = {}
        for shard, found in view._ask_each("local_features", calls, for_matcher=True):
            out.update({int(o) * view.n + shard: f for o, f in found.items()})
        return out


class ShardedReferencePeaks:
    """The cluster's stored reference peaks as the audio peak check reads them
    (:meth:`~nanhu.engine.store.audio_peaks.ReferencePeaks.windows`), so that the check runs at
    the view, on the same peaks, as on one catalog: a query window's hypotheses are read in one
    round trip, asked only of the shards that hold one of their references; peaks travel as
    stored (u32 frames, u16 log-frequency: 6 bytes a peak) and are decoded here as one catalog
    decodes them."""

    def __init__(self, view: ShardedCatalog) -> None:
        self.view = view

    def window(self, ordinal: int, lo: float, hi: float) -> tuple[np.ndarray, np.ndarray]:
        return self.windows([(ordinal, lo, hi)])[0]

    def windows(self, requests: Sequence[tuple[int, float, float]]
                ) -> list[tuple[np.ndarray, np.ndarray]]:
        from nanhu.engine.store.audio_peaks import decode_window

        view = self.view
        out = [(np.zeros(0), np.zeros(0)) for _ in requests]  # a shard lost: nothing to check
        by_shard: dict[int, list[int]] = {}
        for i, (ordinal, _, _) in enumerate(requests):
            by_shard.setdefault(int(ordinal) % view.n, []).append(i)
        calls = [(shard, ([(int(requests[i][0]) // view.n, float(requests[i][1]),
                            float(requests[i][2])) for i in wanted],))
                 for shard, wanted in sorted(by_shard.items())]
        for shard, found in view._ask_each("peak_windows", calls, for_matcher=True):
            for i, (frames, lf) in zip(by_shard[shard], found):
                out[i] = decode_window(frames, lf)
        return out
